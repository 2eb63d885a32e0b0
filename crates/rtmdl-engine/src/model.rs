//! Engine-independent model reading and validation: both engines go through here, so
//! they fail the same way (same messages) on the same bad input.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use prost::Message;
use tract_onnx::pb;

use crate::{EngineError, ModelSpec};

/// A decoded ONNX model plus everything the spec resolved about it.
pub(crate) struct PreparedModel {
    /// The model path (for messages).
    pub path: PathBuf,
    /// The decoded protobuf.
    pub proto: pb::ModelProto,
    /// Name of the single real (non-initializer) input.
    pub input_name: String,
    /// The fully concrete input shape.
    pub input_shape: Vec<usize>,
    /// The outputs the session will produce, in order.
    pub output_names: Vec<String>,
    /// Whether `output_names` differs from the graph's declared outputs.
    pub cut: bool,
    /// Intra-op threads (at least 1).
    pub threads: usize,
}

/// Reads, decodes and validates the model of `spec`.
pub(crate) fn prepare(spec: &ModelSpec) -> Result<PreparedModel, EngineError> {
    let path = spec.path.clone();
    let bytes = std::fs::read(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            EngineError::ModelNotFound { path: path.clone() }
        } else {
            EngineError::ModelIo {
                path: path.clone(),
                source: e,
            }
        }
    })?;
    let proto = decode(&path, &bytes)?;
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| EngineError::InvalidModel {
            path: path.clone(),
            reason: "the protobuf contains no graph".into(),
        })?;
    if graph.node.is_empty() && graph.output.is_empty() {
        return Err(EngineError::InvalidModel {
            path,
            reason: "the graph has no nodes and no outputs".into(),
        });
    }

    // Inputs: older exporters also list initializers as graph inputs.
    let inits: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let real_inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !inits.contains(i.name.as_str()))
        .collect();
    let input = match real_inputs.as_slice() {
        [one] => *one,
        [] => {
            return Err(EngineError::UnsupportedModel {
                path,
                reason: "the model has no input".into(),
            });
        }
        many => {
            let names: Vec<&str> = many.iter().map(|i| i.name.as_str()).collect();
            return Err(EngineError::UnsupportedModel {
                path,
                reason: format!(
                    "the model has {} inputs ({}); only single-input models are supported",
                    many.len(),
                    names.join(", ")
                ),
            });
        }
    };
    let (elem_type, declared) = declared_input(input);
    if elem_type != pb::tensor_proto::DataType::Float as i32 && elem_type != 0 {
        let ty = pb::tensor_proto::DataType::try_from(elem_type)
            .map(|t| t.as_str_name().to_string())
            .unwrap_or_else(|_| format!("type #{elem_type}"));
        return Err(EngineError::UnsupportedModel {
            path,
            reason: format!(
                "input {:?} has element type {ty}; only FLOAT inputs are supported",
                input.name
            ),
        });
    }
    let input_shape =
        resolve_input_shape(&path, &input.name, declared, spec.input_shape.as_deref())?;

    let declared_outputs: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    let (output_names, cut) = match &spec.outputs {
        None => (declared_outputs, false),
        Some(names) => {
            if names.is_empty() {
                return Err(EngineError::InvalidSpec {
                    path,
                    reason: "the output cut is an empty list".into(),
                });
            }
            let produced: HashSet<&str> = graph
                .node
                .iter()
                .flat_map(|n| n.output.iter().map(String::as_str))
                .filter(|s| !s.is_empty())
                .collect();
            for name in names {
                if !produced.contains(name.as_str()) {
                    let mut known: Vec<&str> = graph
                        .node
                        .iter()
                        .flat_map(|n| n.output.iter().map(String::as_str))
                        .filter(|s| !s.is_empty())
                        .take(20)
                        .collect();
                    if produced.len() > known.len() {
                        known.push("...");
                    }
                    return Err(EngineError::UnknownOutput {
                        path,
                        name: name.clone(),
                        known: known.join(", "),
                    });
                }
            }
            let cut = *names != declared_outputs;
            (names.clone(), cut)
        }
    };
    if output_names.is_empty() {
        return Err(EngineError::UnsupportedModel {
            path,
            reason: "the model declares no output".into(),
        });
    }
    let input_name = input.name.clone();
    Ok(PreparedModel {
        path,
        proto,
        input_name,
        input_shape,
        output_names,
        cut,
        threads: spec.threads.max(1),
    })
}

/// Decodes ONNX protobuf bytes, naming `path` on failure.
pub(crate) fn decode(path: &Path, bytes: &[u8]) -> Result<pb::ModelProto, EngineError> {
    if bytes.is_empty() {
        return Err(EngineError::InvalidModel {
            path: path.to_path_buf(),
            reason: "the file is empty".into(),
        });
    }
    pb::ModelProto::decode(bytes).map_err(|e| EngineError::InvalidModel {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Element type and declared dims (`None` = dynamic or unknown) of a graph input.
/// `None` dims vector means the rank itself is unknown.
fn declared_input(input: &pb::ValueInfoProto) -> (i32, Option<Vec<Option<usize>>>) {
    use pb::tensor_shape_proto::dimension::Value;
    let Some(pb::TypeProto {
        value: Some(pb::type_proto::Value::TensorType(t)),
        ..
    }) = &input.r#type
    else {
        return (0, None);
    };
    let dims = t.shape.as_ref().map(|s| {
        s.dim
            .iter()
            .map(|d| match &d.value {
                Some(Value::DimValue(v)) if *v > 0 => Some(*v as usize),
                _ => None,
            })
            .collect()
    });
    (t.elem_type, dims)
}

/// Combines the declared input dims with the spec's `input_shape`.
fn resolve_input_shape(
    path: &Path,
    input_name: &str,
    declared: Option<Vec<Option<usize>>>,
    requested: Option<&[usize]>,
) -> Result<Vec<usize>, EngineError> {
    match (declared, requested) {
        (_, Some(req)) if req.contains(&0) => Err(EngineError::InvalidSpec {
            path: path.to_path_buf(),
            reason: format!("input_shape {req:?} has a zero dim"),
        }),
        (Some(decl), Some(req)) => {
            let compatible = decl.len() == req.len()
                && decl.iter().zip(req).all(|(d, r)| d.is_none_or(|d| d == *r));
            if compatible {
                Ok(req.to_vec())
            } else {
                Err(EngineError::ShapeMismatch {
                    path: path.to_path_buf(),
                    expected: decl,
                    got: req.to_vec(),
                })
            }
        }
        (None, Some(req)) => Ok(req.to_vec()),
        (Some(decl), None) => {
            if decl.iter().all(Option::is_some) {
                Ok(decl.into_iter().flatten().collect())
            } else {
                Err(EngineError::UnsupportedModel {
                    path: path.to_path_buf(),
                    reason: format!(
                        "input {input_name:?} has dynamic dims {}; set input_shape to fix them",
                        crate::error::fmt_dims(&decl)
                    ),
                })
            }
        }
        (None, None) => Err(EngineError::UnsupportedModel {
            path: path.to_path_buf(),
            reason: format!(
                "input {input_name:?} declares no shape; set input_shape to give it one"
            ),
        }),
    }
}

/// Checks a run-time input against the session's fixed input shape.
pub(crate) fn check_input(
    path: &Path,
    expected: &[usize],
    got: &[usize],
) -> Result<(), EngineError> {
    if expected == got {
        Ok(())
    } else {
        Err(EngineError::ShapeMismatch {
            path: path.to_path_buf(),
            expected: expected.iter().copied().map(Some).collect(),
            got: got.to_vec(),
        })
    }
}

/// One inference on zeros right after loading: it gives the concrete output
/// shapes and makes the first real run as fast as the next ones.
pub(crate) fn warm_up(
    session: &mut dyn crate::Session,
    input_shape: &[usize],
) -> Result<Vec<Vec<usize>>, EngineError> {
    let zeros = ndarray::ArrayD::<f32>::zeros(input_shape.to_vec());
    let outputs = session.run(&zeros)?;
    Ok(outputs.iter().map(|o| o.shape().to_vec()).collect())
}
