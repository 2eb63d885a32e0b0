//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use rtmdl_engine::ndarray::{ArrayD, IxDyn};
use rtmdl_engine::{EngineError, OrtEngine, testmodels};

/// A fresh folder for one test under cargo's per-target temp dir.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("rtmdl-engine-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

/// Writes the tiny CNN used by most tests and returns its path.
pub fn tiny_cnn_file(dir: &std::path::Path, classes: usize) -> PathBuf {
    let path = dir.join("tiny_cnn.onnx");
    testmodels::write_tiny_cnn(&path, 42, 3, 16, 16, classes).expect("write model");
    path
}

/// A deterministic, non-trivial input of `shape`.
pub fn ramp(shape: &[usize]) -> ArrayD<f32> {
    let n: usize = shape.iter().product();
    let data = (0..n)
        .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
        .collect();
    ArrayD::from_shape_vec(IxDyn(shape), data).expect("shape")
}

/// The ort engine, or `None` after printing why the test is skipped.
///
/// With `RTMDL_REQUIRE_ORT=1` (CI, after installing onnxruntime) a missing or
/// unusable onnxruntime fails the test instead.
pub fn ort_or_skip() -> Option<OrtEngine> {
    match OrtEngine::new() {
        Ok(e) => Some(e),
        Err(err) => {
            if std::env::var("RTMDL_REQUIRE_ORT").is_ok_and(|v| v == "1") {
                panic!("RTMDL_REQUIRE_ORT=1 but {err}");
            }
            match err {
                EngineError::OrtNotFound { .. } => eprintln!("skipping: {err}"),
                _ => eprintln!("skipping: onnxruntime unusable: {err}"),
            }
            None
        }
    }
}

/// The repository's `models/` folder (filled by `scripts/fetch-models`).
pub fn models_dir() -> PathBuf {
    let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // crates/rtmdl-engine -> the repository root.
    let root = crate_dir
        .parent()
        .and_then(|p| p.parent())
        .unwrap_or(crate_dir);
    root.join("models")
}

/// `models/NAME`, or `None` after printing why the test is skipped.
///
/// With `RTMDL_REQUIRE_MODELS=1` (CI, after `scripts/fetch-models`) a missing model
/// fails the test instead.
pub fn model_or_skip(name: &str) -> Option<PathBuf> {
    let path = models_dir().join(name);
    if path.is_file() {
        return Some(path);
    }
    let msg = format!("{} is missing: run scripts/fetch-models", path.display());
    if std::env::var("RTMDL_REQUIRE_MODELS").is_ok_and(|v| v == "1") {
        panic!("RTMDL_REQUIRE_MODELS=1 but {msg}");
    }
    eprintln!("skipping: {msg}");
    None
}
