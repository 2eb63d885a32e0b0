//! onnxruntime: parity with tract, and selection. Every test here skips (with a
//! message) when onnxruntime is not installed.

mod common;

use common::{ort_or_skip, ramp, test_dir, tiny_cnn_file};
use rtmdl_engine::{
    Engine, EngineError, EngineKind, ModelSpec, OrtEngine, TractEngine, select, testmodels,
};

fn is_ort_error(e: &EngineError) -> bool {
    matches!(
        e,
        EngineError::OrtNotFound { .. }
            | EngineError::OrtInit { .. }
            | EngineError::OrtVersion { .. }
    )
}

fn assert_close(a: &[rtmdl_engine::ArrayD<f32>], b: &[rtmdl_engine::ArrayD<f32>], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.shape(), y.shape());
        for (p, q) in x.iter().zip(y.iter()) {
            assert!((p - q).abs() <= tol, "{p} vs {q}");
        }
    }
}

#[test]
fn parity_tiny_cnn() {
    let Some(ort) = ort_or_skip() else { return };
    eprintln!("ort: {} from {}", ort.version(), ort.dylib().path.display());
    assert_eq!(ort.name(), "ort");
    assert_eq!(ort.kind(), EngineKind::Ort);
    assert!(ort.version().starts_with("onnxruntime 1."));
    let dir = test_dir("ort-parity");
    let path = tiny_cnn_file(&dir, 10);
    let spec = ModelSpec::new(&path);
    let mut t = TractEngine::new().session(&spec).unwrap();
    let mut o = ort.session(&spec).unwrap();
    assert_eq!(o.input_shape(), t.input_shape());
    assert_eq!(o.output_shapes(), t.output_shapes());
    assert_eq!(o.output_names(), t.output_names());
    for k in 0..3 {
        let x = ramp(&[1, 3, 16, 16]).mapv(|v| v * (k as f32 + 0.5));
        let to = t.run(&x).unwrap();
        let oo = o.run(&x).unwrap();
        assert_close(&to, &oo, 1e-4);
    }
}

#[test]
fn parity_output_cut_and_mlp() {
    let Some(ort) = ort_or_skip() else { return };
    let dir = test_dir("ort-parity-cut");
    let path = tiny_cnn_file(&dir, 6);
    let spec = ModelSpec::new(&path).with_outputs([testmodels::TINY_CNN_FEATURES, "probs"]);
    let mut t = TractEngine::new().session(&spec).unwrap();
    let mut o = ort.session(&spec).unwrap();
    assert_eq!(
        o.output_shapes(),
        &[vec![1, testmodels::TINY_CNN_C2, 8, 8], vec![1, 6]]
    );
    let x = ramp(&[1, 3, 16, 16]);
    assert_close(&t.run(&x).unwrap(), &o.run(&x).unwrap(), 1e-4);

    let mlp = dir.join("mlp_dyn.onnx");
    std::fs::write(&mlp, testmodels::tiny_mlp_dynamic_batch(5, 20, 64, 7)).unwrap();
    let spec = ModelSpec::new(&mlp)
        .with_input_shape([3, 20])
        .with_threads(2);
    let mut t = TractEngine::new().session(&spec).unwrap();
    let mut o = ort.session(&spec).unwrap();
    let x = ramp(&[3, 20]);
    assert_close(&t.run(&x).unwrap(), &o.run(&x).unwrap(), 1e-4);
}

#[test]
fn ort_errors_name_the_path() {
    let Some(ort) = ort_or_skip() else { return };
    let dir = test_dir("ort-errors");
    let missing = dir.join("missing.onnx");
    let err = ort.session(&ModelSpec::new(&missing)).err().unwrap();
    assert!(err.to_string().contains(&missing.display().to_string()));
    let garbage = dir.join("garbage.onnx");
    std::fs::write(&garbage, b"\x08\x07garbage").unwrap();
    let err = ort.session(&ModelSpec::new(&garbage)).err().unwrap();
    assert!(
        err.to_string().contains(&garbage.display().to_string()),
        "{err}"
    );

    let path = tiny_cnn_file(&dir, 3);
    let mut s = ort.session(&ModelSpec::new(&path)).unwrap();
    let err = s.run(&ramp(&[1, 3, 15, 16])).unwrap_err();
    assert!(matches!(err, EngineError::ShapeMismatch { .. }), "{err:?}");
}

#[test]
fn a_foreign_library_is_an_error_not_a_crash() {
    let dir = test_dir("ort-foreign");
    let fake = dir.join("libonnxruntime.so");
    std::fs::write(&fake, b"not a shared library").unwrap();
    let err = OrtEngine::from_path(&fake).err().unwrap();
    assert!(
        err.to_string().contains(&fake.display().to_string()),
        "{err}"
    );
    let err = OrtEngine::from_path(dir.join("absent.so")).err().unwrap();
    assert!(err.to_string().contains("absent.so"), "{err}");
}

#[test]
fn select_auto_prefers_ort_and_falls_back_to_tract() {
    let (engine, note) = select(EngineKind::Auto).unwrap();
    eprintln!("{note}");
    assert!(note.starts_with("auto: "), "{note}");
    match OrtEngine::new() {
        Ok(_) => {
            assert_eq!(engine.name(), "ort");
            assert!(note.contains("onnxruntime"), "{note}");
        }
        Err(err) => {
            assert_eq!(engine.name(), "tract");
            assert!(is_ort_error(&err), "{err:?}");
            assert!(note.contains(&err.to_string()), "{note}");
            assert!(note.contains("using tract 0.23"), "{note}");
        }
    }
    let (t, note) = select(EngineKind::Tract).unwrap();
    assert_eq!(t.name(), "tract");
    assert!(note.contains("tract"));
    match select(EngineKind::Ort) {
        Ok((o, _)) => assert_eq!(o.name(), "ort"),
        Err(e) => assert!(is_ort_error(&e), "{e:?}"),
    }
}

#[test]
fn engine_kind_parses_and_prints() {
    for k in [EngineKind::Auto, EngineKind::Tract, EngineKind::Ort] {
        assert_eq!(k.to_string().parse::<EngineKind>().unwrap(), k);
    }
    assert_eq!(" ORT ".parse::<EngineKind>().unwrap(), EngineKind::Ort);
    assert_eq!(
        "onnxruntime".parse::<EngineKind>().unwrap(),
        EngineKind::Ort
    );
    let err = "cuda9".parse::<EngineKind>().unwrap_err();
    assert!(err.to_string().contains("cuda9"));
}
