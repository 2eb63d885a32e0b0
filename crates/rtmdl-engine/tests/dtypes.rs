//! Inputs of every supported element type (f32, f16, f64, i32, i8, u8,
//! bool) on tract always and onnxruntime when installed: sessions report
//! the declared types, take `f32` (and, for integer inputs, `i64`) tensors
//! cast at the boundary, and constants are checked against the type's
//! range.

mod common;

use common::{ort_or_skip, test_dir};
use rtmdl_engine::ndarray::{ArrayD, IxDyn};
use rtmdl_engine::{
    DType, Engine, EngineError, InputValue, ModelSpec, Tensor, TensorView, TractEngine, testmodels,
};

fn model(name: &str) -> std::path::PathBuf {
    let path = test_dir(name).join("typed.onnx");
    std::fs::write(&path, testmodels::typed_inputs()).unwrap();
    path
}

fn row(v: [f32; 4]) -> ArrayD<f32> {
    ArrayD::from_shape_vec(IxDyn(&[1, 4]), v.to_vec()).unwrap()
}

fn check(engine: &dyn Engine, path: &std::path::Path) {
    let mut s = engine.session(&ModelSpec::new(path)).unwrap();
    let types: Vec<DType> = s.inputs().iter().map(|i| i.dtype).collect();
    assert_eq!(types, testmodels::TYPED_INPUTS, "{}", engine.name());
    // f32 carriers: floats as they are (f16 rounds 0.1 to 0.0999755859375),
    // integers toward zero and saturating (u8: -3 → 0, 300 → 255; i8: 200 →
    // 127), bool "not zero".
    let f32s = row([1.0, 2.0, 3.0, 4.0]);
    let f16s = row([0.1, 0.0, 0.0, 0.0]);
    let f64s = row([0.5, 0.5, 0.5, 0.5]);
    let i32s = row([7.9, -7.9, 0.0, 1.0]);
    let i8s = row([200.0, 0.0, 0.0, 0.0]);
    let u8s = row([-3.0, 300.0, 0.0, 0.0]);
    let bools = row([0.0, 2.5, 0.0, 1.0]);
    let views: Vec<TensorView<'_>> = [&f32s, &f16s, &f64s, &i32s, &i8s, &u8s, &bools]
        .into_iter()
        .map(TensorView::from)
        .collect();
    let out = s.run_many(&views).unwrap();
    let y = out[0].as_f32().unwrap();
    let want = [
        1.0 + 0.099_975_586 + 0.5 + 7.0 + 127.0,
        2.0 + 0.5 - 7.0 + 255.0 + 1.0,
        3.0 + 0.5,
        4.0 + 0.5 + 1.0 + 1.0,
    ];
    for (k, w) in want.iter().enumerate() {
        assert!(
            (y[[0, k]] - w).abs() < 1e-4,
            "{} y[{k}] = {} ≠ {w}",
            engine.name(),
            y[[0, k]]
        );
    }
    // An integer input takes i64 too.
    let i64s = ArrayD::from_shape_vec(IxDyn(&[1, 4]), vec![1i64, 2, 3, 4]).unwrap();
    let mut views = views;
    views[3] = TensorView::from(&i64s);
    assert!(s.run_many(&views).is_ok(), "{}", engine.name());
}

#[test]
fn every_input_type_runs_on_tract() {
    check(&TractEngine::new(), &model("dtypes-tract"));
}

#[test]
fn every_input_type_runs_on_onnxruntime() {
    let Some(ort) = ort_or_skip() else { return };
    check(&ort, &model("dtypes-ort"));
}

#[test]
fn constants_are_checked_against_the_type() {
    let path = model("dtypes-constants");
    let engine = TractEngine::new();
    let fix = |name: &str, value: f64| {
        let mut spec = ModelSpec::new(&path);
        spec.constants
            .push((name.to_string(), InputValue::Fill { value, shape: None }));
        engine.session(&spec).map(drop)
    };
    assert!(fix("x5", 255.0).is_ok());
    assert!(fix("x6", 1.0).is_ok());
    for (input, value, want) in [
        ("x5", 256.0, "not a whole number in the u8 range"),
        ("x6", 2.0, "not a whole number in the bool range"),
        ("x4", 1.5, "not a whole number in the i8 range"),
        ("x1", 1e6, "not a finite f16"),
    ] {
        match fix(input, value) {
            Err(EngineError::InvalidSpec { reason, .. }) => {
                assert!(reason.contains(want) && reason.contains(input), "{reason}")
            }
            other => panic!("{input} = {value}: {other:?}"),
        }
    }
    assert_eq!(
        Tensor::filled(DType::U8, &[1], 3.0).unwrap().dtype(),
        DType::I64
    );
}
