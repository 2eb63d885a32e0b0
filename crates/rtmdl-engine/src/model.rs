//! Engine-independent model reading and validation: both engines go through here, so
//! they fail the same way (same messages) on the same bad input.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use prost::Message;
use tract_onnx::pb;

use crate::{DType, EngineError, InputInfo, InputValue, ModelSpec, Tensor, TensorView};

/// A decoded ONNX model plus everything the spec resolved about it.
pub(crate) struct PreparedModel {
    /// The model path (for messages).
    pub path: PathBuf,
    /// The decoded protobuf, with the spec's constant inputs turned into initializers.
    pub proto: pb::ModelProto,
    /// The inputs left to feed at run time, in graph order, with concrete shapes.
    pub inputs: Vec<InputInfo>,
    /// The outputs the session will produce, in order.
    pub output_names: Vec<String>,
    /// Whether `output_names` differs from the graph's declared outputs.
    pub cut: bool,
    /// Whether `proto` differs from the file (constants were folded in).
    pub modified: bool,
    /// Intra-op threads (at least 1).
    pub threads: usize,
    /// The file as read (what onnxruntime gets when `proto` is unchanged).
    pub bytes: Vec<u8>,
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
    let mut proto = decode(&path, &bytes)?;
    let graph = proto
        .graph
        .as_mut()
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

    let (inputs, constants) = resolve_inputs(&path, graph, spec)?;
    let modified = !constants.is_empty();
    if modified {
        let names: HashSet<&str> = constants.iter().map(|c| c.name.as_str()).collect();
        graph.input.retain(|i| !names.contains(i.name.as_str()));
        // An initializer of the same name (an overridable default) is replaced.
        graph
            .initializer
            .retain(|t| !names.contains(t.name.as_str()));
        graph.initializer.extend(constants);
    }
    let graph = &*graph;

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
    Ok(PreparedModel {
        path,
        proto,
        inputs,
        output_names,
        cut,
        modified,
        threads: spec.threads.max(1),
        bytes,
    })
}

/// The model's real (non-initializer) inputs resolved against the spec: the inputs
/// left to feed, with concrete shapes, and the constant ones as initializers.
fn resolve_inputs(
    path: &Path,
    graph: &pb::GraphProto,
    spec: &ModelSpec,
) -> Result<(Vec<InputInfo>, Vec<pb::TensorProto>), EngineError> {
    // Older exporters also list initializers as graph inputs: those are not inputs.
    let inits: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let real: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !inits.contains(i.name.as_str()))
        .collect();
    if real.is_empty() {
        return Err(EngineError::UnsupportedModel {
            path: path.to_path_buf(),
            reason: "the model has no input".into(),
        });
    }
    let known = || {
        real.iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let unknown = |what: &str, name: &str| EngineError::UnknownInput {
        path: path.to_path_buf(),
        what: what.to_string(),
        name: name.to_string(),
        known: known(),
    };
    let is_input = |name: &str| real.iter().any(|i| i.name == name);
    let mut seen = HashSet::new();
    for (name, _) in &spec.constants {
        if !is_input(name) {
            return Err(unknown("a constant", name));
        }
        if !seen.insert(name.as_str()) {
            return Err(EngineError::InvalidSpec {
                path: path.to_path_buf(),
                reason: format!("input {name:?} is given two constant values"),
            });
        }
    }
    let mut shaped = HashSet::new();
    for (name, _) in &spec.input_shapes {
        if !is_input(name) {
            return Err(unknown("an input shape", name));
        }
        if !shaped.insert(name.as_str()) {
            return Err(EngineError::InvalidSpec {
                path: path.to_path_buf(),
                reason: format!("input {name:?} is given two shapes"),
            });
        }
        if seen.contains(name.as_str()) {
            return Err(EngineError::InvalidSpec {
                path: path.to_path_buf(),
                reason: format!(
                    "input {name:?} is a constant (its shape comes with its value) and also has an input shape"
                ),
            });
        }
    }

    let mut inputs = Vec::new();
    let mut constants = Vec::new();
    for input in real {
        let (elem_type, declared) = declared_input(input);
        let dtype = input_dtype(path, &input.name, elem_type)?;
        let constant = spec.constants.iter().find(|(n, _)| *n == input.name);
        if let Some((_, value)) = constant {
            let tensor = constant_tensor(path, &input.name, dtype, declared, value)?;
            constants.push(tensor_proto(&input.name, &tensor));
            continue;
        }
        let named = spec
            .input_shapes
            .iter()
            .find(|(n, _)| *n == input.name)
            .map(|(_, s)| s.as_slice());
        let requested = match (inputs.is_empty(), spec.input_shape.as_deref(), named) {
            (true, Some(_), Some(_)) => {
                return Err(EngineError::InvalidSpec {
                    path: path.to_path_buf(),
                    reason: format!(
                        "input {:?} is given a shape twice (input_shape and by name)",
                        input.name
                    ),
                });
            }
            (true, Some(s), None) => Some(s),
            (_, _, named) => named,
        };
        let shape = resolve_input_shape(path, &input.name, declared, requested)?;
        inputs.push(InputInfo {
            name: input.name.clone(),
            dtype,
            shape,
        });
    }
    if inputs.is_empty() && spec.input_shape.is_some() {
        return Err(EngineError::InvalidSpec {
            path: path.to_path_buf(),
            reason: "input_shape is set, but every input of the model is a constant".into(),
        });
    }
    Ok((inputs, constants))
}

/// The element type of an input, or why it is not supported. An undeclared type
/// (0) is taken as f32.
fn input_dtype(path: &Path, name: &str, elem_type: i32) -> Result<DType, EngineError> {
    use pb::tensor_proto::DataType;
    DType::from_onnx(elem_type).ok_or_else(|| {
        let ty = DataType::try_from(elem_type)
            .map(|t| t.as_str_name().to_string())
            .unwrap_or_else(|_| format!("type #{elem_type}"));
        let known: Vec<&str> = DType::ALL.iter().map(|d| d.onnx_name()).collect();
        EngineError::UnsupportedModel {
            path: path.to_path_buf(),
            reason: format!(
                "input {name:?} has element type {ty}; supported input types: {}",
                known.join(", ")
            ),
        }
    })
}

/// The tensor a constant input is fixed to, checked against the declaration.
fn constant_tensor(
    path: &Path,
    name: &str,
    dtype: DType,
    declared: Option<Vec<Option<usize>>>,
    value: &InputValue,
) -> Result<Tensor, EngineError> {
    let invalid = |reason: String| EngineError::InvalidSpec {
        path: path.to_path_buf(),
        reason: format!("constant for input {name:?}: {reason}"),
    };
    match value {
        InputValue::Fill { value, shape } => {
            let shape = match (shape, declared) {
                (Some(s), decl) => resolve_input_shape(path, name, decl, Some(s))?,
                (None, Some(decl)) if decl.iter().all(Option::is_some) => {
                    decl.into_iter().flatten().collect()
                }
                (None, Some(decl)) => {
                    return Err(invalid(format!(
                        "the model declares the shape {} with dynamic dims; give the shape",
                        crate::error::fmt_dims(&decl)
                    )));
                }
                (None, None) => {
                    return Err(invalid(
                        "the model declares no shape for it; give the shape".into(),
                    ));
                }
            };
            Tensor::filled(dtype, &shape, *value)
                .map_err(|e| invalid(format!("{e} (the input is {})", dtype.onnx_name())))
        }
        InputValue::Tensor(t) => {
            if !dtype.accepts(t.dtype()) {
                return Err(invalid(format!(
                    "the value is {}, but the model declares {}",
                    t.dtype(),
                    dtype.onnx_name()
                )));
            }
            resolve_input_shape(path, name, declared, Some(t.shape()))?;
            Ok(t.clone())
        }
    }
}

/// An ONNX initializer holding `tensor`.
fn tensor_proto(name: &str, tensor: &Tensor) -> pb::TensorProto {
    use pb::tensor_proto::DataType;
    let mut p = pb::TensorProto {
        name: name.to_string(),
        dims: tensor.shape().iter().map(|&d| d as i64).collect(),
        ..Default::default()
    };
    match tensor {
        Tensor::F32(a) => {
            p.data_type = DataType::Float as i32;
            p.float_data = a.iter().copied().collect();
        }
        Tensor::I64(a) => {
            p.data_type = DataType::Int64 as i32;
            p.int64_data = a.iter().copied().collect();
        }
    }
    p
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
            reason: format!("the shape {req:?} of input {input_name:?} has a zero dim"),
        }),
        (Some(decl), Some(req)) => {
            let compatible = decl.len() == req.len()
                && decl.iter().zip(req).all(|(d, r)| d.is_none_or(|d| d == *r));
            if compatible {
                Ok(req.to_vec())
            } else {
                Err(EngineError::ShapeMismatch {
                    path: path.to_path_buf(),
                    input: input_name.to_string(),
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
                        "input {input_name:?} has dynamic dims {}; give its shape (input_shape for the first input, or by name)",
                        crate::error::fmt_dims(&decl)
                    ),
                })
            }
        }
        (None, None) => Err(EngineError::UnsupportedModel {
            path: path.to_path_buf(),
            reason: format!(
                "input {input_name:?} declares no shape; give its shape (input_shape for the first input, or by name)"
            ),
        }),
    }
}

/// Checks run-time inputs against the session's inputs: number, types and shapes.
pub(crate) fn check_inputs(
    path: &Path,
    expected: &[InputInfo],
    got: &[TensorView<'_>],
) -> Result<(), EngineError> {
    if expected.len() != got.len() {
        return Err(EngineError::InputMismatch {
            path: path.to_path_buf(),
            reason: format!(
                "the session takes {} input(s) ({}), got {} tensor(s)",
                expected.len(),
                describe_inputs(expected),
                got.len()
            ),
        });
    }
    for (info, t) in expected.iter().zip(got) {
        if !info.dtype.accepts(t.dtype()) {
            return Err(EngineError::InputMismatch {
                path: path.to_path_buf(),
                reason: format!(
                    "input {:?} is {}, got a {} tensor (it takes {} or f32, cast at the boundary)",
                    info.name,
                    info.dtype,
                    t.dtype(),
                    info.dtype.carrier()
                ),
            });
        }
        if info.shape != t.shape() {
            return Err(EngineError::ShapeMismatch {
                path: path.to_path_buf(),
                input: info.name.clone(),
                expected: info.shape.iter().copied().map(Some).collect(),
                got: t.shape().to_vec(),
            });
        }
    }
    Ok(())
}

/// "input: f32 [1, 576], state: f32 [2, 1, 128]".
pub(crate) fn describe_inputs(inputs: &[InputInfo]) -> String {
    if inputs.is_empty() {
        return "none".into();
    }
    inputs
        .iter()
        .map(|i| format!("{}: {} {:?}", i.name, i.dtype, i.shape))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One inference on zeros right after loading: it gives the concrete output
/// shapes and makes the first real run as fast as the next ones.
pub(crate) fn warm_up(session: &mut dyn crate::Session) -> Result<Vec<Vec<usize>>, EngineError> {
    let zeros: Vec<Tensor> = session
        .inputs()
        .iter()
        .map(|i| Tensor::zeros(i.dtype, &i.shape))
        .collect();
    let views: Vec<TensorView<'_>> = zeros.iter().map(Tensor::view).collect();
    let outputs = session.run_many(&views).map_err(|e| match e {
        EngineError::Run {
            engine,
            path,
            reason,
        } => EngineError::Run {
            engine,
            path,
            reason: format!(
                "warm-up run on zeros ({}) failed: {reason}; an input whose value must not be \
                 zero can be fixed with a constant",
                describe_inputs(session.inputs())
            ),
        },
        other => other,
    })?;
    Ok(outputs.iter().map(|o| o.shape().to_vec()).collect())
}

/// The session warmed up at load (it gave the output shapes), handed to the first
/// spawn: so load + spawn costs one warm-up, as loading a session did.
pub(crate) struct Spare<S>(std::sync::Mutex<Option<S>>);

impl<S> Spare<S> {
    pub(crate) fn new(session: S) -> Self {
        Spare(std::sync::Mutex::new(Some(session)))
    }

    pub(crate) fn empty() -> Self {
        Spare(std::sync::Mutex::new(None))
    }

    pub(crate) fn take(&self) -> Option<S> {
        // Only ever holds a whole session: a panic elsewhere cannot corrupt it.
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}
