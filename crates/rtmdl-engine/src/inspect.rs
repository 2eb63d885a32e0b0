//! What a model file declares and how each engine takes it: `rtmdl inspect`.
//!
//! The graph's inputs and outputs (names, element types, shapes with the
//! symbolic dims by name), opset, producer and size from the file alone;
//! then, per engine, whether it loads at the given (or the declared, with
//! every symbolic dim at 1) input shapes, the error if not, and one
//! measured latency (the median of a few runs after a warm-up).
//!
//! Every engine runs on the same seeded inputs ([`seeded_inputs`]); when two
//! or more run, [`try_engines`] compares each one's outputs with the first
//! one's: per output the largest absolute difference and, to judge it by,
//! the largest magnitude ([`OutputParity`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tract_onnx::pb;

use crate::{Engine, EngineError, InputInfo, InputValue, ModelSpec, Tensor};

/// The seed of [`seeded_inputs`].
pub const INPUT_SEED: u64 = 0;

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
    /// The engine [`EngineRow::parity`] compares with (the first one that
    /// ran); `None` for that engine itself and for one that did not run.
    pub compared_with: Option<String>,
    /// Per output, how this engine's values differ from those of
    /// [`EngineRow::compared_with`] on the same inputs.
    pub parity: Vec<OutputParity>,
}

/// One output of an engine next to the same output of the reference engine.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct OutputParity {
    /// The output's name.
    pub name: String,
    /// The largest |this − reference| over its elements; `None` when the two
    /// cannot be compared ([`OutputParity::mismatch`] says why).
    pub max_abs_diff: Option<f64>,
    /// The largest |value| of the reference's output (NaN left out).
    pub max_abs: f64,
    /// Why the values cannot be compared: other shapes, or NaN in one only.
    pub mismatch: Option<String>,
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
    /// Inputs fixed to a value at load, as a config's `inputs = { sr = 16000 }`
    /// does (their `tried_shapes` are not used: the declared shape is).
    pub constants: Vec<(String, f64)>,
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
        constants: Vec::new(),
        engines: Vec::new(),
    })
}

/// The inputs every engine gets, one per input in order: float elements
/// (f32, f16, f64) uniform in [-1, 1] from one ChaCha8 stream seeded with
/// [`INPUT_SEED`]; integer and bool ones 0 (integer inputs are mostly
/// indices, lengths or flags, where a random value would be out of range).
pub fn seeded_inputs(inputs: &[InputInfo]) -> Vec<Tensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(INPUT_SEED);
    inputs
        .iter()
        .map(|i| {
            if i.dtype.is_integer() {
                Tensor::zeros(i.dtype, &i.shape)
            } else {
                Tensor::F32(ndarray::ArrayD::from_shape_simple_fn(
                    ndarray::IxDyn(&i.shape),
                    || rng.random_range(-1.0..=1.0),
                ))
            }
        })
        .collect()
}

/// Try `engine` on the model at `info.tried_shapes` (and `info.constants`):
/// load, run on [`seeded_inputs`] twice as a warm-up, then time `runs`
/// inferences. Returns its row and the outputs of the first run, by name.
pub fn try_engine(
    info: &ModelInfo,
    engine: &dyn Engine,
    runs: usize,
) -> (EngineRow, Option<Vec<(String, Tensor)>>) {
    try_engine_threads(info, engine, runs, 1)
}

/// [`try_engine`] with `threads` intra-op threads in the session.
pub fn try_engine_threads(
    info: &ModelInfo,
    engine: &dyn Engine,
    runs: usize,
    threads: usize,
) -> (EngineRow, Option<Vec<(String, Tensor)>>) {
    let mut spec = ModelSpec::new(&info.path).with_threads(threads);
    for (i, shape) in info.inputs.iter().zip(&info.tried_shapes) {
        if !info.constants.iter().any(|(n, _)| *n == i.name) {
            spec = spec.with_input_shape_of(i.name.clone(), shape.clone());
        }
    }
    for (name, value) in &info.constants {
        spec = spec.with_constant(name.clone(), InputValue::scalar(*value));
    }
    let row = |loads, error, latency_ms| EngineRow {
        engine: engine.version(),
        loads,
        error,
        latency_ms,
        compared_with: None,
        parity: Vec::new(),
    };
    let mut session = match engine.session(&spec) {
        Ok(s) => s,
        Err(e) => return (row(false, Some(e.to_string()), None), None),
    };
    let feeds = seeded_inputs(session.inputs());
    let views: Vec<_> = feeds.iter().map(|t| t.view()).collect();
    let mut first = None;
    let mut times = Vec::new();
    for k in 0..runs.max(1) + 2 {
        let t0 = Instant::now();
        let outputs = match session.run_many(&views) {
            Ok(o) => o,
            Err(e) => {
                let error = format!("loads, but a run fails: {e}");
                return (row(true, Some(error), None), None);
            }
        };
        if k >= 2 {
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        if first.is_none() {
            first = Some(
                session
                    .output_names()
                    .iter()
                    .cloned()
                    .zip(outputs)
                    .collect(),
            );
        }
    }
    times.sort_by(f64::total_cmp);
    (row(true, None, times.get(times.len() / 2).copied()), first)
}

/// [`try_engine`] for each engine in turn, each row pushed onto
/// `info.engines`; every engine that ran after the first one that did gets
/// its [`EngineRow::parity`] against that one.
pub fn try_engines(info: &mut ModelInfo, engines: &[&dyn Engine], runs: usize) {
    let mut reference: Option<(String, Vec<(String, Tensor)>)> = None;
    for engine in engines {
        let (mut row, outputs) = try_engine(info, *engine, runs);
        match (outputs, &reference) {
            (Some(outputs), None) => reference = Some((row.engine.clone(), outputs)),
            (Some(outputs), Some((name, base))) => {
                row.compared_with = Some(name.clone());
                row.parity = base
                    .iter()
                    .map(|(output, b)| {
                        let other = outputs.iter().find(|(n, _)| n == output).map(|(_, t)| t);
                        parity(output, b, other)
                    })
                    .collect();
            }
            (None, _) => {}
        }
        info.engines.push(row);
    }
}

/// The elements of a tensor as `f64`.
fn values(t: &Tensor) -> Vec<f64> {
    match t {
        Tensor::F32(a) => a.iter().map(|&v| f64::from(v)).collect(),
        Tensor::I64(a) => a.iter().map(|&v| v as f64).collect(),
    }
}

/// How output `name` of another engine (`other`, absent when it has none of
/// that name) differs from the reference's `base`.
pub fn parity(name: &str, base: &Tensor, other: Option<&Tensor>) -> OutputParity {
    let b = values(base);
    let max_abs = b
        .iter()
        .filter(|v| !v.is_nan())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    let result = |max_abs_diff, mismatch| OutputParity {
        name: name.to_string(),
        max_abs_diff,
        max_abs,
        mismatch,
    };
    let Some(other) = other else {
        return result(None, Some("the other engine has no such output".into()));
    };
    if other.shape() != base.shape() {
        let why = format!("shape {:?}, reference {:?}", other.shape(), base.shape());
        return result(None, Some(why));
    }
    let mut worst = 0.0f64;
    for (p, q) in values(other).iter().zip(&b) {
        match (p.is_nan(), q.is_nan()) {
            (false, false) => worst = worst.max((p - q).abs()),
            (true, true) => {}
            _ => return result(None, Some("NaN in one engine's output only".into())),
        }
    }
    result(Some(worst), None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DType, OrtEngine, TractEngine, testmodels};
    use ndarray::{ArrayD, IxDyn};

    fn f32s(shape: &[usize], v: Vec<f32>) -> Tensor {
        Tensor::F32(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
    }

    #[test]
    fn parity_reports_the_largest_difference_and_mismatches() {
        let base = f32s(&[2], vec![1.0, -4.0]);
        let p = parity("y", &base, Some(&f32s(&[2], vec![1.5, -4.25])));
        assert_eq!(
            (p.max_abs_diff, p.max_abs, p.mismatch),
            (Some(0.5), 4.0, None)
        );
        let p = parity("y", &base, Some(&f32s(&[1, 2], vec![1.0, -4.0])));
        assert!(p.max_abs_diff.is_none() && p.mismatch.unwrap().contains("[1, 2]"));
        let p = parity("y", &base, Some(&f32s(&[2], vec![f32::NAN, -4.0])));
        assert!(p.max_abs_diff.is_none() && p.mismatch.unwrap().contains("NaN"));
        assert!(parity("y", &base, None).mismatch.is_some());
        let ints = Tensor::I64(ArrayD::from_shape_vec(IxDyn(&[2]), vec![3, 5]).unwrap());
        assert_eq!(parity("i", &ints, Some(&ints)).max_abs_diff, Some(0.0));
    }

    #[test]
    fn seeded_inputs_are_the_same_every_time_and_not_all_zero() {
        let inputs = [
            InputInfo {
                name: "a".into(),
                dtype: DType::F32,
                shape: vec![2, 3],
            },
            InputInfo {
                name: "b".into(),
                dtype: DType::I64,
                shape: vec![4],
            },
        ];
        let (x, y) = (seeded_inputs(&inputs), seeded_inputs(&inputs));
        assert_eq!(x, y);
        let a = x[0].as_f32().unwrap();
        assert!(a.iter().all(|v| (-1.0..=1.0).contains(v)) && a.iter().any(|v| *v != 0.0));
        assert_eq!(x[1].shape(), &[4]);
    }

    /// Two engines on a tiny CNN: every output compared, tract against itself
    /// exactly; onnxruntime (skipped when absent) within 1e-4.
    #[test]
    fn try_engines_compares_every_engine_with_the_first() {
        let dir = std::env::temp_dir().join(format!("rtmdl-inspect-parity-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tiny_cnn.onnx");
        testmodels::write_tiny_cnn(&path, 7, 3, 16, 16, 5).unwrap();
        let (a, b) = (TractEngine::new(), TractEngine::new());
        let ort = OrtEngine::new();
        let mut engines: Vec<&dyn Engine> = vec![&a, &b];
        match &ort {
            Ok(o) => engines.push(o),
            Err(e) if std::env::var("RTMDL_REQUIRE_ORT").is_ok_and(|v| v == "1") => {
                panic!("RTMDL_REQUIRE_ORT=1 but {e}")
            }
            Err(e) => eprintln!("skipping the onnxruntime half: {e}"),
        }
        let mut info = declared(&path).unwrap();
        try_engines(&mut info, &engines, 1);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(info.engines.len(), engines.len());
        assert!(info.engines[0].parity.is_empty() && info.engines[0].compared_with.is_none());
        for row in &info.engines[1..] {
            assert!(row.loads && row.error.is_none(), "{row:?}");
            assert_eq!(
                row.compared_with.as_deref(),
                Some(info.engines[0].engine.as_str())
            );
            assert_eq!(row.parity.len(), 1);
            let p = &row.parity[0];
            assert_eq!(p.name, testmodels::TINY_CNN_OUTPUT);
            // Softmax probabilities: the largest is positive and at most 1.
            assert!(p.max_abs > 0.0 && p.max_abs <= 1.0, "{p:?}");
            let diff = p.max_abs_diff.unwrap();
            assert!(
                diff < 1e-4,
                "{} vs {}: {diff}",
                row.engine,
                info.engines[0].engine
            );
        }
        assert_eq!(info.engines[1].parity[0].max_abs_diff, Some(0.0));
    }
}
