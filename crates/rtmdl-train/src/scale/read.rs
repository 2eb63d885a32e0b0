//! Reading an exported model back: [`read_onnx`].

use std::collections::BTreeSet;
use std::path::Path;

use prost::Message;
use rtmdl_engine::onnx_build::pb;

use crate::{Arch, Result, TrainError, Weights};

/// Reads an ONNX file written by [`export_onnx`](crate::export_onnx) (or any graph of
/// the same architecture, node for node): the architecture, inferred from the
/// initializers and the input shape, and the weights.
///
/// Errors name `path` and say what does not match: not ONNX, a non-f32 initializer, a
/// missing or misshapen tensor, an input that is not `[1, 3, H, W]`, or a node that
/// differs from the graph [`export_onnx`](crate::export_onnx) would write for the
/// inferred architecture.
pub fn read_onnx(path: &Path) -> Result<(Arch, Weights)> {
    let bytes = std::fs::read(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let model = pb::ModelProto::decode(bytes.as_slice())
        .map_err(|e| bad(path, format!("not an ONNX model: {e}")))?;
    let g = model
        .graph
        .as_ref()
        .ok_or_else(|| bad(path, "the ONNX model has no graph".into()))?;
    let w = initializers(path, g)?;
    let (height, width) = image_size(path, g)?;
    let dim0 = |name: &str| {
        w.tensors
            .get(name)
            .and_then(|(s, _)| s.first().copied())
            .ok_or_else(|| not_ours(path, format!("no initializer {name}")))
    };
    let blocks = (0..)
        .take_while(|i| w.tensors.contains_key(&format!("blocks.{i}.conv1.weight")))
        .count();
    let name = if g.name.is_empty() {
        path.file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().into_owned())
    } else {
        g.name.clone()
    };
    let arch = Arch {
        name,
        height,
        width,
        c1: dim0("stem.conv.weight")?,
        c2: dim0("down.conv.weight")?,
        c3: dim0("head.conv.weight")?,
        blocks,
        classes: dim0("fc.weight")?,
        box_head: w.tensors.contains_key("box.weight"),
    };
    arch.check(&w).map_err(|e| not_ours(path, e.to_string()))?;
    check_nodes(path, g, &arch, &w)?;
    Ok((arch, w))
}

fn bad(path: &Path, why: String) -> TrainError {
    TrainError::Scale(format!("{}: {why}", path.display()))
}

fn not_ours(path: &Path, why: String) -> TrainError {
    bad(
        path,
        format!("not an rtmdl-train network (see the rtmdl-train crate docs): {why}"),
    )
}

/// The graph's initializers as weights (float32 only).
fn initializers(path: &Path, g: &pb::GraphProto) -> Result<Weights> {
    let mut w = Weights::default();
    for t in &g.initializer {
        if t.data_type != pb::tensor_proto::DataType::Float as i32 {
            return Err(not_ours(
                path,
                format!(
                    "initializer {} has ONNX data type {}, not float32",
                    t.name, t.data_type
                ),
            ));
        }
        let shape: Vec<usize> = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| bad(path, format!("initializer {} has a negative dim", t.name)))?;
        let n: usize = shape.iter().product();
        let data: Vec<f32> = if !t.raw_data.is_empty() {
            t.raw_data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect()
        } else {
            t.float_data.clone()
        };
        if data.len() != n {
            return Err(bad(
                path,
                format!(
                    "initializer {} holds {} values, its shape {shape:?} needs {n}",
                    t.name,
                    data.len()
                ),
            ));
        }
        w.insert(t.name.clone(), shape, data);
    }
    Ok(w)
}

/// `(height, width)` of the one image input `[1, 3, H, W]`.
fn image_size(path: &Path, g: &pb::GraphProto) -> Result<(usize, usize)> {
    let init: BTreeSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&pb::ValueInfoProto> = g
        .input
        .iter()
        .filter(|i| !init.contains(i.name.as_str()))
        .collect();
    if inputs.len() != 1 {
        return Err(not_ours(
            path,
            format!(
                "{} graph inputs, the network has one image input",
                inputs.len()
            ),
        ));
    }
    let dims = input_dims(inputs[0]);
    match dims.as_slice() {
        [_, Some(3), Some(h), Some(w)] if *h > 0 && *w > 0 => Ok((*h as usize, *w as usize)),
        _ => Err(not_ours(
            path,
            format!(
                "input {} has shape {dims:?}, expected [1, 3, H, W]",
                inputs[0].name
            ),
        )),
    }
}

/// The nodes and outputs must be exactly the ones the exporter writes for `arch`.
fn check_nodes(path: &Path, g: &pb::GraphProto, arch: &Arch, w: &Weights) -> Result<()> {
    let want = crate::export::build_graph(arch, w)?.to_model();
    let want = want.graph.expect("the builder makes a graph");
    if want.node.len() != g.node.len() {
        return Err(not_ours(
            path,
            format!(
                "{} nodes, the architecture inferred from the initializers ({} blocks) has {}",
                g.node.len(),
                arch.blocks,
                want.node.len()
            ),
        ));
    }
    let attrs = |n: &pb::NodeProto| {
        let mut v: Vec<(String, i64, u32, Vec<i64>)> = n
            .attribute
            .iter()
            .map(|a| (a.name.clone(), a.i, a.f.to_bits(), a.ints.clone()))
            .collect();
        v.sort();
        v
    };
    for (k, (a, b)) in g.node.iter().zip(&want.node).enumerate() {
        if a.op_type != b.op_type || a.input != b.input || a.output != b.output {
            return Err(not_ours(
                path,
                format!(
                    "node {k} is {} {:?} -> {:?}, expected {} {:?} -> {:?}",
                    a.op_type, a.input, a.output, b.op_type, b.input, b.output
                ),
            ));
        }
        if attrs(a) != attrs(b) {
            return Err(not_ours(
                path,
                format!(
                    "node {k} ({} -> {:?}) has other attributes than the exporter writes",
                    a.op_type, a.output
                ),
            ));
        }
    }
    let outs: Vec<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
    let want_outs: Vec<&str> = want.output.iter().map(|o| o.name.as_str()).collect();
    if outs != want_outs {
        return Err(not_ours(
            path,
            format!("outputs {outs:?}, expected {want_outs:?}"),
        ));
    }
    Ok(())
}

/// The declared dims of a graph input (`None` for a symbolic or missing dim).
fn input_dims(v: &pb::ValueInfoProto) -> Vec<Option<i64>> {
    use pb::tensor_shape_proto::dimension::Value;
    let Some(pb::type_proto::Value::TensorType(t)) =
        v.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Vec::new();
    };
    t.shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(Value::DimValue(x)) => Some(x),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}
