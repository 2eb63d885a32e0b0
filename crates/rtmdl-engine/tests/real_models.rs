//! The real third-party models of `examples/ocr-vad.toml` (PP-OCRv4 det / cls / rec from
//! `rapidocr-onnxruntime==1.4.4`, Silero VAD from `silero-vad==6.2.3`), fetched into
//! `models/` by `scripts/fetch-models`: they load with the config's fixed dims, run in
//! tract, and tract and onnxruntime agree on them.
//!
//! Every test skips (with a message) when a model is missing, unless
//! `RTMDL_REQUIRE_MODELS=1`; the onnxruntime half skips when onnxruntime is absent,
//! unless `RTMDL_REQUIRE_ORT=1`.

mod common;

use std::path::Path;

use common::{model_or_skip, ort_or_skip, ramp};
use rtmdl_engine::ndarray::{ArrayD, IxDyn};
use rtmdl_engine::{
    Engine, Feedback, InputValue, ModelSpec, RecurrentSession, Session, SharedState, Tensor,
    TensorView, TractEngine,
};

const DET: &str = "ch_PP-OCRv4_det_infer.onnx";
const CLS: &str = "ch_ppocr_mobile_v2.0_cls_infer.onnx";
const REC: &str = "ch_PP-OCRv4_rec_infer.onnx";
const VAD: &str = "silero_vad.onnx";

/// Silero VAD at 16 kHz: 512 new samples plus 64 of context per call.
const VAD_SAMPLES: usize = 576;

/// Outputs agree within 1e-4, absolute or relative (whichever is looser).
fn assert_close(what: &str, a: &[Tensor], b: &[Tensor]) {
    assert_eq!(a.len(), b.len(), "{what}: number of outputs");
    let mut worst = 0.0f32;
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.shape(), y.shape(), "{what}: output shapes");
        let (x, y) = (x.as_f32().unwrap(), y.as_f32().unwrap());
        for (p, q) in x.iter().zip(y.iter()) {
            let d = (p - q).abs();
            let tol = 1e-4 * q.abs().max(1.0);
            assert!(d <= tol, "{what}: {p} vs {q} (|diff| {d} > {tol})");
            worst = worst.max(d);
        }
    }
    eprintln!("{what}: tract and ort agree, max |diff| {worst:.2e}");
}

fn image_spec(path: &Path, h: usize, w: usize) -> ModelSpec {
    ModelSpec::new(path).with_input_shape([1, 3, h, w])
}

/// The VAD spec of `examples/ocr-vad.toml`: `sr` fixed at 16 kHz, `state` of batch 1.
fn vad_spec(path: &Path) -> ModelSpec {
    ModelSpec::new(path)
        .with_input_shape([1, VAD_SAMPLES])
        .with_input_shape_of("state", [2, 1, 128])
        .with_constant("sr", InputValue::scalar(16000.0))
}

/// A deterministic speech-band signal (two tones with a slow envelope) for call `k`.
fn audio(k: usize) -> ArrayD<f32> {
    let data = (0..VAD_SAMPLES)
        .map(|i| {
            let t = (k * 512 + i) as f32 / 16000.0;
            let env = 0.5 + 0.5 * (2.0 * std::f32::consts::PI * 3.0 * t).sin();
            env * (0.4 * (2.0 * std::f32::consts::PI * 220.0 * t).sin()
                + 0.2 * (2.0 * std::f32::consts::PI * 1250.0 * t).sin())
        })
        .collect();
    ArrayD::from_shape_vec(IxDyn(&[1, VAD_SAMPLES]), data).unwrap()
}

fn run_image(session: &mut dyn Session, shape: &[usize]) -> Vec<Tensor> {
    let x = ramp(shape);
    session.run_many(&[TensorView::from(&x)]).unwrap()
}

#[test]
fn ocr_models_load_with_fixed_dims_and_run_in_tract() {
    let tract = TractEngine::new();
    if let Some(det) = model_or_skip(DET) {
        let mut s = tract.session(&image_spec(&det, 320, 320)).unwrap();
        assert_eq!(s.input_shape(), &[1, 3, 320, 320]);
        assert_eq!(s.output_shapes(), &[vec![1, 1, 320, 320]]);
        let out = run_image(s.as_mut(), &[1, 3, 320, 320]);
        let p = out[0].as_f32().unwrap();
        assert!(p.iter().all(|v| (0.0..=1.0).contains(v)), "sigmoid map");
        // Another input size is another session; the fixed one rejects other shapes.
        assert!(s.run(&ramp(&[1, 3, 320, 640])).is_err());
    }
    if let Some(cls) = model_or_skip(CLS) {
        let mut s = tract.session(&image_spec(&cls, 48, 192)).unwrap();
        assert_eq!(s.output_shapes(), &[vec![1, 2]]);
        let out = run_image(s.as_mut(), &[1, 3, 48, 192]);
        let sum: f32 = out[0].as_f32().unwrap().iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "softmax over 0/180 sums to {sum}");
    }
    if let Some(rec) = model_or_skip(REC) {
        let mut s = tract.session(&image_spec(&rec, 48, 320)).unwrap();
        assert_eq!(s.output_shapes(), &[vec![1, 40, 6625]]);
        let out = run_image(s.as_mut(), &[1, 3, 48, 320]);
        let p = out[0].as_f32().unwrap();
        for row in p.rows() {
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-3, "CTC step sums to {sum}");
        }
    }
}

#[test]
fn ocr_dynamic_dims_need_a_shape() {
    let Some(det) = model_or_skip(DET) else {
        return;
    };
    let err = TractEngine::new()
        .session(&ModelSpec::new(&det))
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains("dynamic dims") && msg.contains("\"x\""),
        "{msg}"
    );
    assert!(msg.contains(&det.display().to_string()), "{msg}");
}

#[test]
fn silero_vad_runs_with_constant_rate_and_fed_back_state() {
    let Some(vad) = model_or_skip(VAD) else {
        return;
    };
    let tract = TractEngine::new();
    // Without `sr` fixed, the model's first If (on `sr == 16000`) depends on data: tract
    // cannot type both of its branches, and says so.
    let raw_spec = ModelSpec::new(&vad)
        .with_input_shape([1, VAD_SAMPLES])
        .with_input_shape_of("state", [2, 1, 128]);
    let err = tract
        .session(&raw_spec)
        .err()
        .expect("tract needs sr fixed");
    assert!(
        err.to_string().contains(&vad.display().to_string()),
        "{err}"
    );

    let inner = tract.session(&vad_spec(&vad)).unwrap();
    assert_eq!(inner.inputs().len(), 2, "sr is a constant now");
    let state = SharedState::new();
    let mut s =
        RecurrentSession::new(inner, &[Feedback::new("stateN", "state")], state.clone()).unwrap();
    assert_eq!(s.inputs().len(), 1);
    assert_eq!(s.output_names(), ["output"]);
    assert!(
        state.get().is_none(),
        "the checking run leaves the state alone"
    );
    let mut probs = Vec::new();
    for k in 0..4 {
        let out = s.run(&audio(k)).unwrap();
        assert_eq!(out[0].shape(), &[1, 1]);
        probs.push(out[0][[0, 0]]);
    }
    assert!(probs.iter().all(|p| (0.0..=1.0).contains(p)), "{probs:?}");
    let st = state.get().expect("state after runs");
    assert_eq!(st[0].shape(), &[2, 1, 128]);
    assert!(
        st[0].as_f32().unwrap().iter().any(|v| *v != 0.0),
        "the state moved"
    );
    // Same audio again from a reset state: the same first answer.
    state.reset();
    let again = s.run(&audio(0)).unwrap();
    assert_eq!(again[0][[0, 0]], probs[0]);
    // Feeding the state by hand gives the same sequence.
    let mut plain = tract.session(&vad_spec(&vad)).unwrap();
    let mut st = Tensor::zeros(rtmdl_engine::DType::F32, &[2, 1, 128]);
    for (k, p) in probs.iter().enumerate() {
        let x = audio(k);
        let mut out = plain.run_many(&[TensorView::from(&x), st.view()]).unwrap();
        st = out.pop().unwrap();
        let q = out[0].as_f32().unwrap()[[0, 0]];
        assert!((p - q).abs() < 1e-6, "step {k}: {p} vs {q}");
    }
}

#[test]
fn tract_and_ort_agree_on_the_real_models() {
    let models: Vec<_> = [DET, CLS, REC, VAD]
        .iter()
        .map(|m| model_or_skip(m))
        .collect();
    let Some(ort) = ort_or_skip() else { return };
    let tract = TractEngine::new();
    for (name, path) in [DET, CLS, REC].iter().zip(&models[..3]) {
        let Some(path) = path else { continue };
        let (h, w) = match *name {
            DET => (320, 320),
            CLS => (48, 192),
            _ => (48, 320),
        };
        let spec = image_spec(path, h, w);
        let mut t = tract.session(&spec).unwrap();
        let mut o = ort.session(&spec).unwrap();
        assert_eq!(t.inputs(), o.inputs());
        assert_eq!(t.output_names(), o.output_names());
        assert_eq!(t.output_shapes(), o.output_shapes());
        let shape = [1, 3, h, w];
        assert_close(
            name,
            &run_image(t.as_mut(), &shape),
            &run_image(o.as_mut(), &shape),
        );
    }
    if let Some(vad) = &models[3] {
        let spec = vad_spec(vad);
        let fb = [Feedback::new("stateN", "state")];
        let mut t =
            RecurrentSession::new(tract.session(&spec).unwrap(), &fb, SharedState::new()).unwrap();
        let mut o =
            RecurrentSession::new(ort.session(&spec).unwrap(), &fb, SharedState::new()).unwrap();
        for k in 0..5 {
            let x = audio(k);
            let (to, oo) = (t.run_many(&[(&x).into()]), o.run_many(&[(&x).into()]));
            assert_close(&format!("{VAD} step {k}"), &to.unwrap(), &oo.unwrap());
        }
        let (ts, os) = (t.state().get().unwrap(), o.state().get().unwrap());
        assert_close(&format!("{VAD} state"), &ts, &os);
    }
}
