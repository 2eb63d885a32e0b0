//! What a model file declares and how each engine takes it: `rtmdl inspect`.
//!
//! The graph's inputs and outputs (names, element types, shapes with the
//! symbolic dims by name), opset, producer and size from the file alone;
//! then, per engine, whether it loads at the given (or the declared, with
//! every symbolic dim at 1) input shapes, the error if not, and one
//! measured latency (the median of a few runs after a warm-up).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tract_onnx::pb;

use crate::{Engine, EngineError, ModelSpec, Tensor};

/// One input or output as the graph declares it.
#[derive(Clone, Debug, Serialize)]
pub struct TensorDecl {
    /// The tensor's name in the graph.
    pub name: String,
    /// ONNX's name of the element type ("FLOAT", "INT64", "INT32", ...).
    pub dtype: String,
    /// Per dim its size, its symbol, or "?" when the graph says nothing.
    pub shape: Vec<String>,
}

/// How one engine took the model.
#[derive(Clone, Debug, Serialize)]
pub struct EngineRow {
    /// The engine and its version.
    pub engine: String,
    /// Whether a session was made.
    pub loads: bool,
    /// Why not (or why its run failed).
    pub error: Option<String>,
    /// Median of the timed runs, ms.
    pub latency_ms: Option<f64>,
}

/// `rtmdl inspect`'s result.
#[derive(Clone, Debug, Serialize)]
pub struct ModelInfo {
    /// The model file.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// The exporter and its version.
    pub producer: String,
    /// (domain, version) of every opset it imports.
    pub opsets: Vec<(String, i64)>,
    /// The graph inputs (initializers left out).
    pub inputs: Vec<TensorDecl>,
    /// The graph outputs.
    pub outputs: Vec<TensorDecl>,
    /// The input shapes the engines were tried at.
    pub tried_shapes: Vec<Vec<usize>>,
    /// How each engine took it.
    pub engines: Vec<EngineRow>,
}

fn dtype_name(t: i32) -> String {
    pb::tensor_proto::DataType::try_from(t)
        .map(|d| format!("{d:?}").to_uppercase())
        .unwrap_or_else(|_| format!("type {t}"))
}

fn decl(v: &pb::ValueInfoProto) -> TensorDecl {
    use pb::type_proto::Value;
    let (dtype, shape) = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(Value::TensorType(t)) => (
            dtype_name(t.elem_type),
            t.shape.as_ref().map_or_else(Vec::new, |s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(pb::tensor_shape_proto::dimension::Value::DimValue(n)) => {
                            n.to_string()
                        }
                        Some(pb::tensor_shape_proto::dimension::Value::DimParam(p)) => p.clone(),
                        None => "?".into(),
                    })
                    .collect()
            }),
        ),
        _ => ("not a tensor".into(), vec![]),
    };
    TensorDecl {
        name: v.name.clone(),
        dtype,
        shape,
    }
}

/// Read what `path` declares (no engine involved).
pub fn declared(path: &Path) -> Result<ModelInfo, EngineError> {
    let bytes = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            EngineError::ModelNotFound {
                path: path.to_path_buf(),
            }
        } else {
            EngineError::ModelIo {
                path: path.to_path_buf(),
                source: e,
            }
        }
    })?;
    let proto = crate::model::decode(path, &bytes)?;
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| EngineError::InvalidModel {
            path: path.to_path_buf(),
            reason: "the protobuf contains no graph".into(),
        })?;
    // Inputs that are initializers too are weights, not inputs.
    let weights: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|i| i.name.as_str()).collect();
    let inputs: Vec<TensorDecl> = graph
        .input
        .iter()
        .filter(|i| !weights.contains(i.name.as_str()))
        .map(decl)
        .collect();
    Ok(ModelInfo {
        path: path.to_path_buf(),
        bytes: bytes.len() as u64,
        producer: format!("{} {}", proto.producer_name, proto.producer_version)
            .trim()
            .to_string(),
        opsets: proto
            .opset_import
            .iter()
            .map(|o| {
                let domain = if o.domain.is_empty() {
                    "ai.onnx"
                } else {
                    &o.domain
                };
                (domain.to_string(), o.version)
            })
            .collect(),
        outputs: graph.output.iter().map(decl).collect(),
        tried_shapes: inputs
            .iter()
            .map(|i| {
                i.shape
                    .iter()
                    .map(|d| d.parse::<usize>().unwrap_or(1))
                    .collect()
            })
            .collect(),
        inputs,
        engines: Vec::new(),
    })
}

/// Try `engine` on the model at `info.tried_shapes`: load, warm up, time
/// `runs` inferences on zeros.
pub fn try_engine(info: &ModelInfo, engine: &dyn Engine, runs: usize) -> EngineRow {
    let mut spec = ModelSpec::new(&info.path);
    for (i, shape) in info.inputs.iter().zip(&info.tried_shapes) {
        spec = spec.with_input_shape_of(i.name.clone(), shape.clone());
    }
    let row = |loads, error, latency_ms| EngineRow {
        engine: engine.version(),
        loads,
        error,
        latency_ms,
    };
    let mut session = match engine.session(&spec) {
        Ok(s) => s,
        Err(e) => return row(false, Some(e.to_string()), None),
    };
    let feeds: Vec<Tensor> = session
        .inputs()
        .iter()
        .map(|i| Tensor::zeros(i.dtype, &i.shape))
        .collect();
    let views: Vec<_> = feeds.iter().map(|t| t.view()).collect();
    let mut times = Vec::new();
    for k in 0..runs.max(1) + 2 {
        let t0 = Instant::now();
        if let Err(e) = session.run_many(&views) {
            return row(true, Some(format!("loads, but a run fails: {e}")), None);
        }
        if k >= 2 {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    row(true, None, times.get(times.len() / 2).copied())
}
