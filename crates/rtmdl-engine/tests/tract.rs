//! The tract engine on the tiny test models, and the error paths every engine shares.

mod common;

use common::{ramp, test_dir, tiny_cnn_file};
use rtmdl_engine::onnx_build::{Attr, Dim, GraphBuilder, fixed};
use rtmdl_engine::{Engine, EngineError, ModelSpec, TractEngine, testmodels};

#[test]
fn tiny_cnn_output_is_a_distribution() {
    let dir = test_dir("tract-cnn");
    let path = tiny_cnn_file(&dir, 10);
    let engine = TractEngine::new();
    assert_eq!(engine.name(), "tract");
    assert!(engine.version().starts_with("tract 0.23"));
    let mut session = engine.session(&ModelSpec::new(&path)).unwrap();
    assert_eq!(session.input_shape(), &[1, 3, 16, 16]);
    assert_eq!(session.output_shapes(), &[vec![1, 10]]);
    assert_eq!(
        session.output_names(),
        &[testmodels::TINY_CNN_OUTPUT.to_string()]
    );
    let out = session.run(&ramp(&[1, 3, 16, 16])).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].shape(), &[1, 10]);
    let sum: f32 = out[0].iter().sum();
    assert!((sum - 1.0).abs() < 1e-5, "softmax sums to {sum}");
    assert!(out[0].iter().all(|p| *p > 0.0));
    // Same input, same output: the session keeps no state between runs.
    let again = session.run(&ramp(&[1, 3, 16, 16])).unwrap();
    assert_eq!(out, again);
}

#[test]
fn tiny_cnn_is_deterministic_per_seed() {
    assert_eq!(
        testmodels::tiny_cnn(7, 3, 8, 8, 4),
        testmodels::tiny_cnn(7, 3, 8, 8, 4)
    );
    assert_ne!(
        testmodels::tiny_cnn(7, 3, 8, 8, 4),
        testmodels::tiny_cnn(8, 3, 8, 8, 4)
    );
}

#[test]
fn missing_file_names_the_path() {
    let path = test_dir("tract-missing").join("nope.onnx");
    let err = TractEngine::new()
        .session(&ModelSpec::new(&path))
        .err()
        .unwrap();
    assert!(matches!(err, EngineError::ModelNotFound { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("file not found"), "{msg}");
}

#[test]
fn garbage_and_truncated_files_name_the_path() {
    let dir = test_dir("tract-garbage");
    let good = testmodels::tiny_cnn(1, 3, 8, 8, 4);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated.onnx", good[..good.len() / 2].to_vec()),
        ("text.onnx", b"this is not an onnx model at all\n".to_vec()),
        ("empty.onnx", vec![]),
        ("zeros.onnx", vec![0u8; 64]),
        ("ff.onnx", vec![0xffu8; 64]),
    ];
    for (name, bytes) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = TractEngine::new()
            .session(&ModelSpec::new(&path))
            .err()
            .unwrap();
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{name}: {msg}");
        assert!(
            matches!(err, EngineError::InvalidModel { .. }),
            "{name}: {err:?}"
        );
    }
}

#[test]
fn directory_instead_of_file_is_an_error() {
    let dir = test_dir("tract-dir");
    let err = TractEngine::new()
        .session(&ModelSpec::new(&dir))
        .err()
        .unwrap();
    assert!(err.to_string().contains(&dir.display().to_string()));
}

#[test]
fn wrong_input_shape_is_an_error_not_a_panic() {
    let dir = test_dir("tract-shape");
    let path = tiny_cnn_file(&dir, 5);
    let engine = TractEngine::new();
    let mut session = engine.session(&ModelSpec::new(&path)).unwrap();
    let err = session.run(&ramp(&[1, 3, 8, 8])).unwrap_err();
    assert!(matches!(err, EngineError::ShapeMismatch { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("expected [1, 3, 16, 16]"), "{msg}");
    assert!(msg.contains("got [1, 3, 8, 8]"), "{msg}");
    let err = session.run(&ramp(&[3, 16, 16])).unwrap_err();
    assert!(matches!(err, EngineError::ShapeMismatch { .. }), "{err:?}");
    // The session still works afterwards.
    assert!(session.run(&ramp(&[1, 3, 16, 16])).is_ok());

    // A spec shape that contradicts the model is caught at load.
    let err = engine
        .session(&ModelSpec::new(&path).with_input_shape([1, 4, 16, 16]))
        .err()
        .unwrap();
    assert!(matches!(err, EngineError::ShapeMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()));
}

#[test]
fn output_cut_returns_the_intermediate() {
    let dir = test_dir("tract-cut");
    let path = tiny_cnn_file(&dir, 10);
    let engine = TractEngine::new();
    let spec = ModelSpec::new(&path).with_outputs([testmodels::TINY_CNN_FEATURES]);
    let mut session = engine.session(&spec).unwrap();
    let expected = vec![1, testmodels::TINY_CNN_C2, 8, 8];
    assert_eq!(session.output_shapes(), std::slice::from_ref(&expected));
    let out = session.run(&ramp(&[1, 3, 16, 16])).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].shape(), expected.as_slice());
    assert!(out[0].iter().all(|v| *v >= 0.0), "relu output");

    // Several outputs, in the requested order.
    let spec = ModelSpec::new(&path).with_outputs(["probs", "relu1"]);
    let mut session = engine.session(&spec).unwrap();
    let out = session.run(&ramp(&[1, 3, 16, 16])).unwrap();
    assert_eq!(out[0].shape(), &[1, 10]);
    assert_eq!(out[1].shape(), &[1, testmodels::TINY_CNN_C1, 16, 16]);

    // Unknown name: error naming it and the path.
    let err = engine
        .session(&ModelSpec::new(&path).with_outputs(["no_such_tensor"]))
        .err()
        .unwrap();
    assert!(matches!(err, EngineError::UnknownOutput { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("no_such_tensor") && msg.contains(&path.display().to_string()),
        "{msg}"
    );
}

#[test]
fn dynamic_batch_needs_and_takes_input_shape() {
    let dir = test_dir("tract-dyn");
    let path = dir.join("mlp_dyn.onnx");
    std::fs::write(&path, testmodels::tiny_mlp_dynamic_batch(3, 12, 32, 5)).unwrap();
    let engine = TractEngine::new();
    let err = engine.session(&ModelSpec::new(&path)).err().unwrap();
    assert!(
        matches!(err, EngineError::UnsupportedModel { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("input_shape"), "{err}");

    let mut session = engine
        .session(&ModelSpec::new(&path).with_input_shape([4, 12]))
        .unwrap();
    assert_eq!(session.output_shapes(), &[vec![4, 5]]);
    let out = session.run(&ramp(&[4, 12])).unwrap();
    assert_eq!(out[0].shape(), &[4, 5]);
}

#[test]
fn threads_option_gives_same_result() {
    let dir = test_dir("tract-threads");
    let path = dir.join("mlp.onnx");
    testmodels::write_tiny_mlp(&path, 9, 64, 256, 10).unwrap();
    let engine = TractEngine::new();
    let x = ramp(&[1, 64]);
    let one = engine
        .session(&ModelSpec::new(&path))
        .unwrap()
        .run(&x)
        .unwrap();
    let two = engine
        .session(&ModelSpec::new(&path).with_threads(2))
        .unwrap()
        .run(&x)
        .unwrap();
    for (a, b) in one[0].iter().zip(two[0].iter()) {
        assert!((a - b).abs() < 1e-5);
    }
    // Sessions spawned from one model loaded with two threads (each its own pool).
    let model = engine.load(&ModelSpec::new(&path).with_threads(2)).unwrap();
    for _ in 0..3 {
        let out = model.spawn().unwrap().run(&x).unwrap();
        for (a, b) in one[0].iter().zip(out[0].iter()) {
            assert!((a - b).abs() < 1e-5);
        }
    }
}

#[test]
fn the_engine_says_what_it_is() {
    use rtmdl_engine::EngineKind;
    assert_eq!(TractEngine::new().kind(), EngineKind::Tract);
    let (engine, _) = rtmdl_engine::select(EngineKind::Tract).unwrap();
    assert_eq!(engine.kind(), EngineKind::Tract);
}

#[test]
fn builder_ops_compute_what_onnx_says() {
    // MaxPool + Add + Reshape + Flatten, checked by hand.
    let mut g = GraphBuilder::new("ops");
    g.input("input", &fixed(&[1, 1, 4, 4]));
    g.initializer("bias", &[1], vec![0.5]).unwrap();
    g.initializer_i64("shape", &[2], vec![1, 4]).unwrap();
    g.node(
        "MaxPool",
        &["input"],
        &["pool"],
        &[
            ("kernel_shape", Attr::Ints(vec![2, 2])),
            ("strides", Attr::Ints(vec![2, 2])),
        ],
    );
    g.node("Add", &["pool", "bias"], &["added"], &[]);
    g.node("Reshape", &["added", "shape"], &["out"], &[]);
    g.output("out", &[Dim::Fixed(1), Dim::Fixed(4)]);
    let dir = test_dir("tract-ops");
    let path = dir.join("ops.onnx");
    g.save(&path).unwrap();
    let mut s = TractEngine::new().session(&ModelSpec::new(&path)).unwrap();
    let x = rtmdl_engine::ndarray::ArrayD::from_shape_vec(
        vec![1, 1, 4, 4],
        (0..16).map(|v| v as f32).collect(),
    )
    .unwrap();
    let out = s.run(&x).unwrap();
    assert_eq!(
        out[0].iter().copied().collect::<Vec<_>>(),
        vec![5.5, 7.5, 13.5, 15.5]
    );
}

#[test]
fn two_input_model_runs_with_run_many_and_run_says_why_not() {
    let mut g = GraphBuilder::new("two");
    g.input("a", &fixed(&[1, 2]));
    g.input("b", &fixed(&[1, 2]));
    g.node("Add", &["a", "b"], &["c"], &[]);
    g.output("c", &fixed(&[1, 2]));
    let path = test_dir("tract-two").join("two.onnx");
    g.save(&path).unwrap();
    let mut s = TractEngine::new().session(&ModelSpec::new(&path)).unwrap();
    let names: Vec<&str> = s.inputs().iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let a = ramp(&[1, 2]);
    let b = a.mapv(|v| 10.0 * v);
    let out = s.run_many(&[(&a).into(), (&b).into()]).unwrap();
    let c = out[0].as_f32().unwrap();
    for ((x, y), z) in a.iter().zip(&b).zip(c) {
        assert!((x + y - z).abs() < 1e-6);
    }
    // The one-input short path names the inputs it would need.
    let err = s.run(&a).unwrap_err();
    assert!(matches!(err, EngineError::InputMismatch { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("takes 2 input(s) (a: f32 [1, 2], b: f32 [1, 2]), got 1"),
        "{err}"
    );
}

#[test]
fn unsupported_input_type_is_named() {
    let mut g = GraphBuilder::new("bool");
    g.input("a", &fixed(&[1, 2]));
    g.node("Identity", &["a"], &["c"], &[]);
    g.output("c", &fixed(&[1, 2]));
    let mut model = g.to_model();
    let graph = model.graph.as_mut().unwrap();
    if let Some(rtmdl_engine::onnx_build::pb::type_proto::Value::TensorType(t)) =
        graph.input[0].r#type.as_mut().unwrap().value.as_mut()
    {
        t.elem_type = rtmdl_engine::onnx_build::pb::tensor_proto::DataType::Uint16 as i32;
    }
    let path = test_dir("tract-u16").join("u16.onnx");
    std::fs::write(&path, prost_encode(&model)).unwrap();
    let err = TractEngine::new()
        .session(&ModelSpec::new(&path))
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(msg.contains("input \"a\" has element type UINT16"), "{msg}");
    assert!(
        msg.contains("supported input types: FLOAT, FLOAT16"),
        "{msg}"
    );
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

fn prost_encode(m: &rtmdl_engine::onnx_build::pb::ModelProto) -> Vec<u8> {
    use prost::Message;
    m.encode_to_vec()
}

/// `x: [1, N]`; an `If` on `Shape(x)[1] == 4` whose else branch cannot be typed when
/// N = 4 (it squeezes axis 1), and an `If` on the data (`sum(x) > 0`).
fn if_model(path: &std::path::Path) {
    let branch = |name: &str, op: &str, out: &str, attrs: &[(&str, Attr)]| {
        let mut b = GraphBuilder::new(name);
        b.node(op, &["x", "two"], &[out], attrs);
        b.output_unshaped(out);
        Box::new(b.graph())
    };
    let mut g = GraphBuilder::new("ifs");
    g.input("x", &[Dim::from(1), Dim::sym("N")]);
    g.initializer("two", &[], vec![2.0]).unwrap();
    g.initializer_i64("one", &[], vec![1]).unwrap();
    g.initializer_i64("four", &[], vec![4]).unwrap();
    g.initializer_i64("axis1", &[1], vec![1]).unwrap();
    g.node("Shape", &["x"], &["shape"], &[]);
    g.node(
        "Gather",
        &["shape", "one"],
        &["n"],
        &[("axis", Attr::Int(0))],
    );
    g.node("Equal", &["n", "four"], &["is4"], &[]);
    let mut squeeze = GraphBuilder::new("else");
    squeeze.node("Squeeze", &["x", "axis1"], &["sq"], &[]);
    squeeze.output_unshaped("sq");
    g.node(
        "If",
        &["is4"],
        &["y"],
        &[
            ("then_branch", Attr::Graph(branch("then", "Mul", "m2", &[]))),
            ("else_branch", Attr::Graph(Box::new(squeeze.graph()))),
        ],
    );
    g.node("ReduceSum", &["x"], &["sum"], &[("keepdims", Attr::Int(0))]);
    g.initializer("zero", &[], vec![0.0]).unwrap();
    g.node("Greater", &["sum", "zero"], &["pos"], &[]);
    g.node(
        "If",
        &["pos"],
        &["z"],
        &[
            (
                "then_branch",
                Attr::Graph(branch("then2", "Add", "a2", &[])),
            ),
            (
                "else_branch",
                Attr::Graph(branch("else2", "Sub", "s2", &[])),
            ),
        ],
    );
    g.output_unshaped("y");
    g.output_unshaped("z");
    g.save(path).unwrap();
}

#[test]
fn shape_only_ifs_are_folded_and_data_ifs_kept() {
    let path = test_dir("tract-if").join("ifs.onnx");
    if_model(&path);
    let engine = TractEngine::new();
    let mut s = engine
        .session(&ModelSpec::new(&path).with_input_shape([1, 4]))
        .unwrap();
    assert_eq!(s.output_shapes(), &[vec![1, 4], vec![1, 4]]);
    let pos = ramp(&[1, 4]).mapv(|v| v.abs() + 0.1);
    let out = s.run(&pos).unwrap();
    for (x, (y, z)) in pos.iter().zip(out[0].iter().zip(out[1].iter())) {
        assert!((y - 2.0 * x).abs() < 1e-6, "then branch: x * 2");
        assert!((z - (x + 2.0)).abs() < 1e-6, "sum > 0: x + 2");
    }
    let neg = pos.mapv(|v| -v);
    let out = s.run(&neg).unwrap();
    for (x, z) in neg.iter().zip(out[1].iter()) {
        assert!((z - (x - 2.0)).abs() < 1e-6, "sum <= 0: x - 2");
    }
}

/// Exporters' own symbols on intermediate tensors and outputs (`batch`
/// where the input says `N`): with `input_shape` fixing the input, tract
/// loads the graph by dropping the annotations, and runs it like the same
/// graph without them.
#[test]
fn symbolic_annotations_give_way_to_the_fixed_input_shape() {
    let dir = test_dir("tract-annotated");
    let annotated = dir.join("mlp_annotated.onnx");
    let plain = dir.join("mlp_plain.onnx");
    std::fs::write(&annotated, testmodels::tiny_mlp_annotated(3, 12, 32, 5)).unwrap();
    std::fs::write(&plain, testmodels::tiny_mlp_dynamic_batch(3, 12, 32, 5)).unwrap();
    let engine = TractEngine::new();
    let mut a = engine
        .session(&ModelSpec::new(&annotated).with_input_shape([1, 12]))
        .unwrap();
    let mut p = engine
        .session(&ModelSpec::new(&plain).with_input_shape([1, 12]))
        .unwrap();
    assert_eq!(a.output_shapes(), &[vec![1, 5]]);
    let x = ramp(&[1, 12]);
    let (ya, yp) = (a.run(&x).unwrap(), p.run(&x).unwrap());
    assert_eq!(ya[0].shape(), yp[0].shape());
    for (u, v) in ya[0].iter().zip(yp[0].iter()) {
        assert!((u - v).abs() < 1e-5, "{u} vs {v}");
    }
}
