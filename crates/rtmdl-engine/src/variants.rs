//! Variants of any ONNX model, for the planner to choose between: the same
//! network at smaller input sizes (where its height and width are symbolic,
//! as detectors and most classifiers are exported) and an INT8 copy made by
//! onnxruntime's dynamic quantizer (`onnxruntime.quantization.
//! quantize_dynamic`, run by the Python that has onnxruntime), each with
//! its latency measured on one engine: `rtmdl variants`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::inspect::{ModelInfo, declared, try_engine_threads};
use crate::{Engine, EngineError};

/// One proposed variant, measured.
#[derive(Clone, Debug, Serialize)]
pub struct Proposal {
    /// `"320px"`, `"256px-int8"`, ...
    pub name: String,
    /// The model file it runs.
    pub file: PathBuf,
    /// The file's size.
    pub bytes: u64,
    /// The image input and the shape this variant runs it at.
    pub input: String,
    /// The image input's shape in this variant.
    pub shape: Vec<usize>,
    /// Intra-op threads of its session.
    pub threads: usize,
    /// Median latency on the engine, ms; `None` with `error` when it did
    /// not run.
    pub latency_ms: Option<f64>,
    /// Why it did not run.
    pub error: Option<String>,
}

/// The model's image input: (index, name, declared dims) of the first
/// float input of rank 4, and whether its height and width are symbolic.
fn image_input(info: &ModelInfo) -> Option<(usize, String, bool)> {
    info.inputs
        .iter()
        .enumerate()
        .find(|(_, i)| i.dtype == "FLOAT" && i.shape.len() == 4)
        .map(|(k, i)| {
            let dynamic = i.shape[2..].iter().all(|d| d.parse::<usize>().is_err());
            (k, i.name.clone(), dynamic)
        })
}

/// Why a model gets no size variants, if it gets none.
pub fn sizes_refused(model: &Path) -> Result<Option<String>, EngineError> {
    let info = declared(model)?;
    Ok(match image_input(&info) {
        None => Some(format!(
            "{} has no image input (a float input [N, C, H, W]): no size variants",
            model.display()
        )),
        Some((_, name, false)) => Some(format!(
            "{}: input `{name}` has a fixed height and width ({}): size variants need a model exported with them symbolic (e.g. ultralytics `dynamic=True`)",
            model.display(),
            info.inputs
                .iter()
                .find(|i| i.name == name)
                .map(|i| i.shape.join(" × "))
                .unwrap_or_default()
        )),
        Some(_) => None,
    })
}

/// Measures `model` at each square `size` (the image input's height and
/// width; other dims as declared, symbolic ones at 1) and each count of
/// intra-op `threads` and, for each file in `files` beyond the model itself
/// (an INT8 copy), the same. Without symbolic height and width, only the
/// declared size is measured. A variant of more than one thread is named
/// `-Nt`.
pub fn propose(
    files: &[(String, PathBuf)],
    sizes: &[usize],
    threads: &[usize],
    engine: &dyn Engine,
    runs: usize,
) -> Result<Vec<Proposal>, EngineError> {
    let mut out = Vec::new();
    for (suffix, file) in files {
        let mut info = declared(file)?;
        let Some((k, name, dynamic)) = image_input(&info) else {
            continue;
        };
        let declared_hw = info.tried_shapes[k][2];
        let sizes: Vec<usize> = if dynamic {
            sizes.to_vec()
        } else {
            vec![declared_hw]
        };
        for &size in &sizes {
            info.tried_shapes[k][2] = size;
            info.tried_shapes[k][3] = size;
            for &n in threads {
                let (row, _) = try_engine_threads(&info, engine, runs, n);
                let threaded = if n > 1 {
                    format!("-{n}t")
                } else {
                    String::new()
                };
                out.push(Proposal {
                    name: format!("{size}px{suffix}{threaded}"),
                    file: file.clone(),
                    bytes: info.bytes,
                    input: name.clone(),
                    shape: info.tried_shapes[k].clone(),
                    threads: n,
                    latency_ms: row.latency_ms,
                    error: row.error,
                });
            }
        }
    }
    Ok(out)
}

/// An INT8 copy of `model` at `out` by onnxruntime's dynamic quantizer
/// (weights to signed 8 bit, activations quantized at run time), run by
/// `python3`. The error says what to install when the quantizer is not
/// there.
pub fn quantize_int8(model: &Path, out: &Path) -> Result<(), String> {
    let script = "import sys\n\
        from onnxruntime.quantization import quantize_dynamic, QuantType\n\
        quantize_dynamic(sys.argv[1], sys.argv[2], weight_type=QuantType.QInt8)\n";
    let result = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(model)
        .arg(out)
        .output()
        .map_err(|e| format!("cannot run python3 for onnxruntime's quantizer: {e}"))?;
    if result.status.success() && out.exists() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&result.stderr);
    let last = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    if err.contains("No module named") {
        Err(format!(
            "INT8 needs onnxruntime's quantizer in python3 (`pip install onnxruntime onnx`): {last}"
        ))
    } else {
        Err(format!(
            "onnxruntime's quantizer failed on {}: {last}",
            model.display()
        ))
    }
}
