//! Several inputs, i64 inputs, constants and fed-back state, on the tiny recurrent model
//! (no download needed): tract always, onnxruntime when it is installed.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{ort_or_skip, test_dir};
use rtmdl_engine::ndarray::{ArrayD, IxDyn};
use rtmdl_engine::{
    DType, Engine, EngineError, Feedback, InputValue, LoadedModel, ModelSpec, RecurrentModel,
    RecurrentSession, Session, SharedState, Tensor, TensorView, TractEngine, testmodels,
};

fn model(name: &str) -> PathBuf {
    let path = test_dir(name).join("recurrent.onnx");
    std::fs::write(&path, testmodels::tiny_recurrent()).unwrap();
    path
}

/// `x` of shape [1, n] with mean `m`.
fn x_with_mean(n: usize, m: f32) -> ArrayD<f32> {
    let data = (0..n)
        .map(|i| m + if i % 2 == 0 { 0.25 } else { -0.25 })
        .collect();
    ArrayD::from_shape_vec(IxDyn(&[1, n]), data).unwrap()
}

fn spec(path: &PathBuf) -> ModelSpec {
    ModelSpec::new(path)
        .with_input_shape([1, 6])
        .with_input_shape_of("state", [2, 1, 4])
}

fn y(out: &[Tensor]) -> f32 {
    out[0].as_f32().unwrap()[[0, 0]]
}

/// The same checks for every engine.
fn check_engine(engine: &dyn Engine, path: &PathBuf) {
    // All three inputs, the rate as i64.
    let mut s = engine.session(&spec(path)).unwrap();
    let kinds: Vec<_> = s
        .inputs()
        .iter()
        .map(|i| (i.name.as_str(), i.dtype, i.shape.clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("x", DType::F32, vec![1, 6]),
            ("state", DType::F32, vec![2, 1, 4]),
            ("rate", DType::I64, vec![]),
        ]
    );
    assert_eq!(s.output_names(), ["y", "state_out"]);
    assert_eq!(s.output_shapes(), &[vec![1, 1], vec![2, 1, 4]]);
    let x = x_with_mean(6, 0.5);
    let state = Tensor::filled(DType::F32, &[2, 1, 4], 1.0).unwrap();
    let rate = Tensor::I64(ArrayD::from_elem(IxDyn(&[]), 3));
    let out = s
        .run_many(&[(&x).into(), state.view(), rate.view()])
        .unwrap();
    // y = 0.5 * 3 + 8 * 1; state_out = 1 + 0.5.
    assert!((y(&out) - 9.5).abs() < 1e-5, "{}", y(&out));
    assert!(
        out[1]
            .as_f32()
            .unwrap()
            .iter()
            .all(|v| (v - 1.5).abs() < 1e-6)
    );

    // Wrong number, type or shape of inputs: errors naming the input, never a panic.
    let err = s.run(&x).unwrap_err();
    assert!(matches!(err, EngineError::InputMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("rate: i64 []"), "{err}");
    // An f32 tensor for the i64 input is cast at the boundary; an i64 one
    // for an f32 input is not taken.
    let rate_f = Tensor::F32(ArrayD::from_elem(IxDyn(&[]), 3.0));
    let cast = s
        .run_many(&[(&x).into(), state.view(), rate_f.view()])
        .unwrap();
    assert!((y(&cast) - 9.5).abs() < 1e-5, "{}", y(&cast));
    let state_i = Tensor::I64(ArrayD::from_elem(IxDyn(&[2, 1, 4]), 1));
    let err = s
        .run_many(&[(&x).into(), state_i.view(), rate.view()])
        .unwrap_err();
    assert!(err.to_string().contains("\"state\" is f32"), "{err}");
    let small = Tensor::zeros(DType::F32, &[2, 1, 3]);
    let err = s
        .run_many(&[(&x).into(), small.view(), rate.view()])
        .unwrap_err();
    assert!(matches!(err, EngineError::ShapeMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("\"state\""), "{err}");

    // The rate as a constant: two inputs left.
    let fixed = spec(path).with_constant("rate", InputValue::scalar(2.0));
    let mut c = engine.session(&fixed).unwrap();
    assert_eq!(c.inputs().len(), 2);
    let out = c.run_many(&[(&x).into(), state.view()]).unwrap();
    assert!((y(&out) - 9.0).abs() < 1e-5, "{}", y(&out));

    // And the state fed back, from zeros: y_k = m * rate + 8 * k * m.
    let shared = SharedState::new();
    let mut r = RecurrentSession::new(
        engine.session(&fixed).unwrap(),
        &[Feedback::new("state_out", "state")],
        shared.clone(),
    )
    .unwrap();
    assert_eq!(r.inputs().len(), 1);
    assert_eq!(r.output_names(), ["y"]);
    for k in 0..4 {
        let got = r.run(&x).unwrap()[0][[0, 0]];
        let want = 0.5 * 2.0 + 8.0 * k as f32 * 0.5;
        assert!((got - want).abs() < 1e-4, "step {k}: {got} vs {want}");
    }
    // A second session on the same state continues the sequence (one state per task,
    // whichever lane runs the job).
    let mut r2 = RecurrentSession::new(
        engine.session(&fixed).unwrap(),
        &[Feedback::new("state_out", "state")],
        shared.clone(),
    )
    .unwrap();
    let got = r2.run(&x).unwrap()[0][[0, 0]];
    assert!((got - (1.0 + 8.0 * 4.0 * 0.5)).abs() < 1e-4, "{got}");
    shared.reset();
    assert!((r.run(&x).unwrap()[0][[0, 0]] - 1.0).abs() < 1e-5);

    // A non-zero initial state.
    let mut r3 = RecurrentSession::new(
        engine.session(&fixed).unwrap(),
        &[Feedback {
            output: "state_out".into(),
            input: "state".into(),
            initial: InputValue::scalar(0.25),
        }],
        SharedState::new(),
    )
    .unwrap();
    assert!((r3.run(&x).unwrap()[0][[0, 0]] - 3.0).abs() < 1e-5);
}

/// One loaded model, many sessions (one per lane): each has its own execution state,
/// they run at once on their own threads and agree; a recurrent model's sessions share
/// one state.
fn check_shared_model(engine: &dyn Engine, path: &PathBuf) {
    let fixed = spec(path).with_constant("rate", InputValue::scalar(2.0));
    let model = engine.load(&fixed).unwrap();
    assert_eq!(model.path(), path.as_path());
    assert_eq!(model.inputs().len(), 2);
    assert_eq!(model.output_names(), ["y", "state_out"]);
    assert_eq!(model.output_shapes(), &[vec![1, 1], vec![2, 1, 4]]);
    let x = x_with_mean(6, 0.5);
    let state = Tensor::filled(DType::F32, &[2, 1, 4], 1.0).unwrap();
    let ys: Vec<f32> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let model = model.clone();
                let (x, state) = (&x, &state);
                scope.spawn(move || {
                    let mut s = model.spawn().unwrap();
                    assert_eq!(s.output_shapes(), model.output_shapes());
                    (0..5)
                        .map(|_| y(&s.run_many(&[x.into(), state.view()]).unwrap()))
                        .last()
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(ys.iter().all(|y| (y - 9.0).abs() < 1e-5), "{ys:?}");

    let shared = SharedState::new();
    let fb = [Feedback::new("state_out", "state")];
    let recurrent: Arc<dyn LoadedModel> =
        Arc::new(RecurrentModel::new(model.clone(), &fb, shared.clone()).unwrap());
    assert_eq!(recurrent.inputs().len(), 1);
    assert_eq!(recurrent.output_names(), ["y"]);
    let mut lanes = [recurrent.spawn().unwrap(), recurrent.spawn().unwrap()];
    for k in 0..4 {
        let got = lanes[k % 2].run(&x).unwrap()[0][[0, 0]];
        let want = 0.5 * 2.0 + 8.0 * k as f32 * 0.5;
        assert!((got - want).abs() < 1e-4, "step {k}: {got} vs {want}");
    }
    // A link to an output the model lacks fails when wrapping, before any session.
    let err = RecurrentModel::new(model, &[Feedback::new("nope", "state")], shared)
        .err()
        .unwrap();
    assert!(err.to_string().contains("names output \"nope\""), "{err}");
}

#[test]
fn tract_runs_several_inputs_constants_and_feedback() {
    let path = model("multi-tract");
    check_engine(&TractEngine::new(), &path);
    check_shared_model(&TractEngine::new(), &path);
}

#[test]
fn ort_runs_several_inputs_constants_and_feedback_like_tract() {
    let Some(ort) = ort_or_skip() else { return };
    let path = model("multi-ort");
    check_engine(&ort, &path);
    check_shared_model(&ort, &path);
    // And the two agree on a recurrent sequence.
    let fixed = spec(&path).with_constant("rate", InputValue::scalar(16000.0));
    let fb = [Feedback::new("state_out", "state")];
    let mut t = RecurrentSession::new(
        TractEngine::new().session(&fixed).unwrap(),
        &fb,
        SharedState::new(),
    )
    .unwrap();
    let mut o =
        RecurrentSession::new(ort.session(&fixed).unwrap(), &fb, SharedState::new()).unwrap();
    for k in 0..5 {
        let x = x_with_mean(6, 0.1 * k as f32 - 0.2);
        let (a, b) = (t.run(&x).unwrap(), o.run(&x).unwrap());
        assert!((a[0][[0, 0]] - b[0][[0, 0]]).abs() <= 1e-4 * b[0][[0, 0]].abs().max(1.0));
    }
}

#[test]
fn bad_specs_name_the_input_and_the_file() {
    let path = model("multi-errors");
    let engine = TractEngine::new();
    let shown = path.display().to_string();
    let cases: Vec<(ModelSpec, &str)> = vec![
        (
            spec(&path).with_constant("rte", InputValue::scalar(1.0)),
            "constant names input \"rte\"",
        ),
        (
            spec(&path).with_input_shape_of("stat", [2, 1, 4]),
            "input shape names input \"stat\"",
        ),
        (
            ModelSpec::new(&path).with_input_shape([1, 6]),
            "input \"state\" has dynamic dims [2, ?, 4]",
        ),
        (
            spec(&path).with_constant("rate", InputValue::scalar(0.5)),
            "0.5 is not a whole number",
        ),
        (
            spec(&path).with_constant("state", InputValue::scalar(0.0)),
            "is a constant (its shape comes with its value) and also has an input shape",
        ),
        (
            ModelSpec::new(&path)
                .with_input_shape([1, 6])
                .with_constant("state", InputValue::scalar(0.0)),
            "give the shape",
        ),
        (
            ModelSpec::new(&path)
                .with_input_shape([1, 6])
                .with_constant(
                    "state",
                    InputValue::Tensor(Tensor::I64(ArrayD::zeros(IxDyn(&[2, 1, 4])))),
                ),
            "the value is i64, but the model declares FLOAT",
        ),
        (
            spec(&path).with_input_shape_of("x", [1, 6]),
            "given a shape twice",
        ),
        (
            ModelSpec::new(&path)
                .with_input_shape([1, 6])
                .with_input_shape_of("state", [3, 1, 4]),
            "expected [2, ?, 4], got [3, 1, 4]",
        ),
    ];
    for (spec, want) in cases {
        let err = engine.session(&spec).err().expect(want);
        let msg = err.to_string();
        assert!(msg.contains(want), "want {want:?} in: {msg}");
        assert!(msg.contains(&shown), "{msg}");
    }

    // Feedback links that do not fit.
    let fixed = spec(&path).with_constant("rate", InputValue::scalar(1.0));
    let bad: Vec<(Vec<Feedback>, &str)> = vec![
        (
            vec![Feedback::new("state_out", "nope")],
            "names input \"nope\"",
        ),
        (
            vec![Feedback::new("nope", "state")],
            "names output \"nope\", but the model's outputs are: y, state_out",
        ),
        (
            vec![Feedback::new("y", "state")],
            "the output has shape [1, 1], the input [2, 1, 4]",
        ),
        (
            vec![
                Feedback::new("state_out", "state"),
                Feedback::new("y", "state"),
            ],
            "fed back from two outputs",
        ),
        (
            vec![Feedback {
                output: "state_out".into(),
                input: "state".into(),
                initial: InputValue::Fill {
                    value: 0.0,
                    shape: Some(vec![2, 2, 4]),
                },
            }],
            "initial value of fed-back input \"state\"",
        ),
    ];
    for (fb, want) in bad {
        let session = engine.session(&fixed).unwrap();
        let err = RecurrentSession::new(session, &fb, SharedState::new()).expect_err(want);
        let msg = err.to_string();
        assert!(msg.contains(want), "want {want:?} in: {msg}");
        assert!(msg.contains(&shown), "{msg}");
    }

    // A recurrent session fed the wrong number of tensors says which inputs it takes.
    let mut r = RecurrentSession::new(
        engine.session(&fixed).unwrap(),
        &[Feedback::new("state_out", "state")],
        SharedState::new(),
    )
    .unwrap();
    let x = x_with_mean(6, 0.0);
    let err = r.run_many(&[(&x).into(), (&x).into()]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("takes 1 input(s) (x: f32 [1, 6])"), "{msg}");
    assert!(msg.contains("state: f32 [2, 1, 4]"), "{msg}");
    let _: &dyn Session = &r;
    let _ = TensorView::from(&x);
}
