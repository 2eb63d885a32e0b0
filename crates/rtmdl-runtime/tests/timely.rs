//! Timely accuracy in a real run: the project's committed light and sign
//! classifiers answer the frames of a `route` source, whose ground truth
//! the run judges. A task whose deadline nobody can meet answers correctly
//! and still scores zero: a late answer is a wrong one. And the same drive
//! with each classifier on the engine its stage names.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rtmdl_core::{PolicyKind, VariantChoice};
use rtmdl_runtime::{RunOptions, run_config};

fn asset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets/models")
        .join(name)
}

fn config(dir: &Path, late_deadline: bool) -> PathBuf {
    let model = |name: &str, size: u32| {
        format!(
            r#"
[models.{name}]
stages = [
  {{ name = "pre", on = "cpu", function = "resize_normalize", params = {{ width = {size}, height = {size} }}, time = "0.2 ms" }},
  {{ name = "infer", on = "gpu" }},
  {{ name = "post", on = "cpu", function = "softmax_top1", time = "0.02 ms" }},
]
[[models.{name}.variants]]
name = "base"
accuracy = 0.95
file = {file:?}
times.infer = "2 ms"
"#,
            file = asset(&format!("{name}.onnx")).display().to_string()
        )
    };
    let deadline = if late_deadline {
        "deadline = \"0.01 ms\"\n"
    } else {
        ""
    };
    let text = format!(
        r#"
[platform]
cpu_workers = 1
gpu_lanes = 1
{lights}
{signs}
[[tasks]]
name = "traffic_light"
model = "lights"
period = "40 ms"
{deadline}overrun = "skip"
source = {{ kind = "route", camera = "lights", seed = 1, length = "10 s" }}

[[tasks]]
name = "traffic_sign"
model = "signs"
period = "50 ms"
source = {{ kind = "route", camera = "signs", seed = 2, length = "10 s" }}
"#,
        lights = model("lights", 48),
        signs = model("signs", 32),
    );
    let path = dir.join("route.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(path: &Path, secs: f64) -> rtmdl_core::RunReport {
    let cfg = rtmdl_config::load(path).unwrap_or_else(|e| panic!("{e}"));
    let engine: Arc<dyn rtmdl_engine::Engine> = Arc::from(
        rtmdl_engine::select(rtmdl_engine::EngineKind::Tract)
            .unwrap()
            .0,
    );
    let opts = RunOptions {
        duration: (secs * 1e9) as u64,
        grace: 2_000_000_000,
        realtime: false,
        ..Default::default()
    };
    run_config(
        &cfg,
        PolicyKind::Rtmdl,
        VariantChoice::Original,
        engine,
        1,
        &opts,
        7,
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .report
}

#[test]
fn a_route_run_judges_every_answer_against_the_frames() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(&config(dir.path(), false), 4.0);
    let light = &r.tasks[0];
    let sign = &r.tasks[1];
    let la = light.answers.as_ref().expect("the light task is judged");
    let sa = sign.answers.as_ref().expect("the sign task is judged");
    // A light is always in view: every released frame is judged. Signs
    // leave gaps with nothing to answer.
    assert_eq!(la.frames, light.jobs);
    assert!(sa.frames < sign.jobs && sa.frames > 0, "{sa:?}");
    // The ground truth matches the frames: the committed models, trained
    // on the same generators, answer most of them right (their measured
    // test accuracy is above 0.9; the route's frames are scaled up and back).
    assert!(la.answer_accuracy > 0.8, "lights {la:?}");
    assert!(sa.answer_accuracy > 0.6, "signs {sa:?}");
    for (t, a) in [(light, la), (sign, sa)] {
        assert_eq!(t.timely_accuracy, Some(a.timely_accuracy));
        assert!(a.timely_correct <= a.on_time && a.on_time <= a.frames);
        assert!(a.timely_accuracy <= a.answer_accuracy);
        // Every episode whose first frame was released is counted once.
        assert!(a.episodes.total() >= 2, "{a:?}");
        let by_label: u64 = a.by_label.values().map(|c| c.total()).sum();
        assert_eq!(by_label, a.episodes.total());
        assert!(t.predicted.unwrap().timely_accuracy.is_some());
    }
    // The 4 s of the light route hold a red phase; the reaction window is
    // the frames of 100 ms at 40 ms.
    assert!(la.by_label.contains_key("red"), "{la:?}");
    assert_eq!(la.reaction_frames, 3);
    let red = la.by_label["red"];
    assert_eq!(r.red_lights_run, Some(red.missed + red.wrong));
    let overall = r.timely_accuracy.unwrap();
    let want = (la.timely_correct + sa.timely_correct) as f64 / (la.frames + sa.frames) as f64;
    assert!((overall - want).abs() < 1e-12);
}

#[test]
fn a_late_answer_counts_as_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(&config(dir.path(), true), 1.5);
    let light = &r.tasks[0];
    let a = light.answers.as_ref().unwrap();
    assert_eq!(light.miss_rate, 1.0, "a 10 us deadline is never met");
    assert_eq!((a.on_time, a.timely_correct), (0, 0));
    assert_eq!(light.timely_accuracy, Some(0.0));
    assert_eq!(a.episodes.missed, a.episodes.total());
    assert_eq!(r.red_lights_run, la_red(a));
}

fn la_red(a: &rtmdl_core::timely::TaskScore) -> Option<u64> {
    a.by_label.get("red").map(|c| c.missed + c.wrong)
}

/// `examples/mixed-engines.toml`: the light classifier on tract, the sign
/// classifier on onnxruntime, in one real run whose own engine is tract;
/// the report names each stage's engine. Skipped without onnxruntime
/// (unless `RTMDL_REQUIRE_ORT=1`).
#[test]
fn stages_run_on_the_engines_they_name() {
    if let Err(e) = rtmdl_engine::OrtEngine::new() {
        assert!(
            std::env::var("RTMDL_REQUIRE_ORT").as_deref() != Ok("1"),
            "RTMDL_REQUIRE_ORT=1 but {e}"
        );
        eprintln!("skipping: {e}");
        return;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/mixed-engines.toml");
    let r = run(&path, 1.0);
    let note = &r.notes["stage engines"];
    assert!(
        note.contains("traffic_light/infer: tract")
            && note.contains("traffic_sign/infer: onnxruntime"),
        "{note}"
    );
    assert!(r.tasks.iter().all(|t| t.completed > 0), "{}", r.table());
}
