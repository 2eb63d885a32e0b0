//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use rtmdl_engine::ndarray::{ArrayD, IxDyn};
use rtmdl_engine::testmodels;

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
