//! Inference stages with several inputs, constants and fed-back state from the config,
//! and a short real run of `examples/ocr-vad.toml` with the fetched third-party models
//! (skipped with a message when `models/` lacks them, unless `RTMDL_REQUIRE_MODELS=1`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rtmdl_core::{PolicyKind, VariantChoice};
use rtmdl_runtime::bodies::ConfigBodies;
use rtmdl_runtime::{Bodies, RunOptions, RuntimeError, run_config};

fn tract() -> Arc<dyn rtmdl_engine::Engine> {
    Arc::from(
        rtmdl_engine::select(rtmdl_engine::EngineKind::Tract)
            .unwrap()
            .0,
    )
}

fn opts(secs: f64) -> RunOptions {
    RunOptions {
        duration: (secs * 1e9) as u64,
        realtime: false,
        ..Default::default()
    }
}

/// A one-task config around the tiny recurrent model (`x` [1, N], `state` [2, B, 4],
/// `rate` i64; outputs `y` and `state_out`) with the inference stage's `params`.
fn recurrent_config(dir: &Path, params: &str, lanes: usize) -> PathBuf {
    std::fs::write(
        dir.join("rec.onnx"),
        rtmdl_engine::testmodels::tiny_recurrent(),
    )
    .unwrap();
    let text = format!(
        r#"
[platform]
cpu_workers = 1
gpu_lanes = {lanes}

[models.m]
stages = [
  {{ name = "frame", on = "cpu", function = "reshape", params = {{ shape = [1, -1] }}, time = "0.1 ms" }},
  {{ name = "infer", on = "gpu", params = {params} }},
]
[[models.m.variants]]
name = "v"
accuracy = 1.0
file = "rec.onnx"
times.infer = "0.5 ms"

[[tasks]]
name = "t"
model = "m"
period = "10 ms"
source = {{ kind = "synthetic_audio", samples = 6, seed = 3 }}
"#
    );
    let path = dir.join("rec.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const GOOD: &str = r#"{ input_shape = [1, 6], inputs = { rate = 2, state = { shape = [2, 1, 4] } }, feedback = { state_out = "state" } }"#;

fn bodies(path: &Path) -> Result<ConfigBodies, RuntimeError> {
    let cfg = rtmdl_config::load(path).unwrap();
    let assign = cfg.taskset.assignments(VariantChoice::Original);
    ConfigBodies::new(cfg, assign, tract(), 1, 7)
}

#[test]
fn constants_and_feedback_from_the_config_carry_state_across_lanes() {
    let dir = tempfile::tempdir().unwrap();
    let b = bodies(&recurrent_config(dir.path(), GOOD, 2)).unwrap();
    // Two lanes' bodies of the same stage share one state: y_k = 2 m + 8 k m for a
    // constant input of mean m, whichever lane runs job k.
    let mut lanes = [b.work(0, 1).unwrap(), b.work(0, 1).unwrap()];
    let mut frame = b.work(0, 0).unwrap();
    let audio = b.input(0, 0).unwrap();
    let m = audio[0].iter().sum::<f32>() / 6.0;
    for k in 0..6 {
        let x = frame.run(audio.clone()).unwrap();
        let out = lanes[k % 2].run(x).unwrap();
        assert_eq!(out.len(), 1, "state_out is not passed on: {out:?}");
        assert_eq!(out[0].shape(), &[1, 1]);
        let want = 2.0 * m + 8.0 * k as f32 * m;
        assert!(
            (out[0][[0, 0]] - want).abs() < 1e-4 * want.abs().max(1.0),
            "job {k}: {} vs {want}",
            out[0][[0, 0]]
        );
    }

    // And a real run of it: every job accounted for, none failed.
    let cfg = rtmdl_config::load(&dir.path().join("rec.toml")).unwrap();
    let real = run_config(
        &cfg,
        PolicyKind::Rtmdl,
        VariantChoice::Original,
        tract(),
        1,
        &opts(1.0),
        1,
    )
    .unwrap();
    let c = &real.outcome.counters[0];
    assert_eq!(c.released, 100);
    assert_eq!(c.released, c.completed + c.missed + c.dropped + c.failed);
    assert_eq!(c.failed, 0, "{:?}", real.outcome.failures);
}

#[test]
fn bad_inference_params_name_the_field_or_the_input() {
    let dir = tempfile::tempdir().unwrap();
    // Errors found when the config loads: the line, column and key at fault.
    let early = [
        (
            r#"{ input_shape = [1, 0] }"#,
            "models.m.stages[1].params.input_shape: expected a list of positive integers",
        ),
        (
            r#"{ input_shape = "1x6" }"#,
            "params.input_shape: invalid type: string \"1x6\", expected a list of positive integers",
        ),
        (
            r#"{ inputs = { rate = "fast" } }"#,
            "params.inputs.rate: invalid value: string \"fast\", expected a number, \"zeros\" or",
        ),
        (
            r#"{ inputs = { state = { shap = [2, 1, 4] } } }"#,
            "params.inputs.state.shap: unknown field `shap`, expected `fill` or `shape` (did you mean `shape`?)",
        ),
        (
            r#"{ feedback = { state_out = 3 } }"#,
            "params.feedback.state_out: invalid type: integer `3`, expected a string",
        ),
        (
            r#"{ input_shapes = [1, 6] }"#,
            "params.input_shapes: unknown field `input_shapes`, expected one of `file`, `input_shape`",
        ),
        (
            r#"{ outputs = [] }"#,
            "params.outputs: expected a non-empty list",
        ),
        (
            r#"{ inputs = { state = 0 }, feedback = { state_out = "state", y = "state" } }"#,
            "params.feedback.y: input \"state\" is already fed by output \"state_out\"",
        ),
        (
            r#"{ fault = { mode = "error", every = 0 } }"#,
            "params.fault.every: `fault`: bad parameter `every`: expected a count of at least 1",
        ),
    ];
    for (params, want) in early {
        let path = recurrent_config(dir.path(), params, 1);
        let err = rtmdl_config::load(&path).expect_err(params).to_string();
        assert!(err.contains(want), "{params}: want {want:?} in: {err}");
        // The infer stage is on line 9 of the config.
        assert!(err.contains("rec.toml:9:"), "{err}");
    }
    // Errors found when the model is loaded (before the first release): the input
    // and the model file.
    let late = [
        (
            r#"{ input_shape = [1, 6], inputs = { rte = 2, state = { shape = [2, 1, 4] } }, feedback = { state_out = "state" } }"#,
            "a constant names input \"rte\"",
        ),
        (
            r#"{ input_shape = [1, 6], inputs = { rate = 2 } }"#,
            "input \"state\" has dynamic dims [2, ?, 4]",
        ),
        (
            r#"{ input_shape = [1, 6], inputs = { rate = 2.5, state = { shape = [2, 1, 4] } }, feedback = { state_out = "state" } }"#,
            "2.5 is not a whole number",
        ),
        (
            r#"{ input_shape = [1, 6], inputs = { rate = 2, state = { shape = [2, 1, 4] } }, feedback = { stateN = "state" } }"#,
            "names output \"stateN\", but the model's outputs are: y, state_out",
        ),
    ];
    for (params, want) in late {
        let path = recurrent_config(dir.path(), params, 1);
        let b = bodies(&path).unwrap();
        let err = b.work(0, 1).err().expect(params).to_string();
        assert!(err.contains(want), "{params}: want {want:?} in: {err}");
        assert!(err.contains("rec.onnx"), "{err}");
    }
}

/// `examples/ocr-vad.toml`, or `None` after saying why the test is skipped.
fn ocr_vad_or_skip() -> Option<PathBuf> {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    // crates/rtmdl-runtime -> the repository root.
    let root = crate_dir
        .parent()
        .and_then(|p| p.parent())
        .unwrap_or(crate_dir);
    let models = [
        "ch_PP-OCRv4_det_infer.onnx",
        "ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "ch_PP-OCRv4_rec_infer.onnx",
        "silero_vad.onnx",
    ];
    let missing: Vec<String> = models
        .iter()
        .map(|m| root.join("models").join(m))
        .filter(|p| !p.is_file())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        return Some(root.join("examples/ocr-vad.toml"));
    }
    let msg = format!("missing {}: run scripts/fetch-models", missing.join(", "));
    if std::env::var("RTMDL_REQUIRE_MODELS").is_ok_and(|v| v == "1") {
        panic!("RTMDL_REQUIRE_MODELS=1 but {msg}");
    }
    eprintln!("skipping: {msg}");
    None
}

#[test]
fn ocr_vad_example_runs_for_real_and_accounts_for_every_job() {
    let Some(path) = ocr_vad_or_skip() else {
        return;
    };
    let cfg = rtmdl_config::load(&path).unwrap();
    // Every stage has a real body: functions and the fetched models, nothing emulated.
    let real = run_config(
        &cfg,
        PolicyKind::Rtmdl,
        VariantChoice::Original,
        tract(),
        1,
        &opts(2.5),
        1,
    )
    .unwrap();
    eprintln!("{}", real.report.table());
    assert!(
        !real.report.notes.contains_key("emulated"),
        "{:?}",
        real.report.notes
    );
    assert!(
        real.outcome.failures.is_empty(),
        "{:?}",
        real.outcome.failures
    );
    let names: Vec<&str> = real.report.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["ocr", "vad"]);
    for (t, c) in real.report.tasks.iter().zip(&real.outcome.counters) {
        assert_eq!(
            c.released,
            c.completed + c.missed + c.dropped,
            "{}: {c:?}",
            t.name
        );
        assert!(c.released > 0 && c.completed > 0, "{}: {c:?}", t.name);
    }
    // Releases at offset + k * period within 2.5 s: 10 OCR jobs (250 ms), 79 VAD jobs (32 ms).
    assert_eq!(real.outcome.counters[0].released, 10);
    assert_eq!(real.outcome.counters[1].released, 79);
}
