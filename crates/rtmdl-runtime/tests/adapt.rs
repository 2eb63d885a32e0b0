//! Online switching in a real run: a load step (a more urgent task takes
//! the lane from 1 s to 2.5 s) makes the camera task switch to a faster
//! variant; every variant is prepared before the first release. Emulated
//! stages (calibrated busy work), so the test needs no model file.

use std::sync::Arc;

use rtmdl_core::{PolicyKind, VariantChoice};
use rtmdl_runtime::{RunOptions, run_config};

const CONFIG: &str = r#"
[platform]
cpu_workers = 1
gpu_lanes = 1

[run]
duration = "3.5s"

[adapt]
window = 20
hold = "500ms"
timeline = "100ms"

[models.camera]
stages = [
  { name = "pre", on = "cpu", time = "0.2 ms" },
  { name = "infer", on = "gpu" },
]
[[models.camera.variants]]
name = "big"
accuracy = 0.95
times.infer = "5 ms"
[[models.camera.variants]]
name = "mid"
accuracy = 0.93
times.infer = "3 ms"
[[models.camera.variants]]
name = "small"
accuracy = 0.90
times.infer = "1 ms"

[models.hog]
stages = [{ name = "infer", on = "gpu" }]
[[models.hog.variants]]
name = "base"
accuracy = 0.9
times.infer = "6 ms"

[[tasks]]
name = "hog"
model = "hog"
period = "10 ms"
offset = "1s"
stop = "2.5s"
priority = 1
variant = "base"
max_miss_rate = 1.0
overrun = "skip"

[[tasks]]
name = "camera"
model = "camera"
period = "10 ms"
priority = 2
variant = "big"
max_miss_rate = 0.05
overrun = "skip"
"#;

fn run(adapt: bool) -> rtmdl_runtime::RealRun {
    run_text(CONFIG, adapt)
}

fn run_text(config: &str, adapt: bool) -> rtmdl_runtime::RealRun {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("step.toml");
    std::fs::write(&path, config).unwrap();
    let mut cfg = rtmdl_config::load(&path).unwrap();
    if adapt {
        cfg.taskset.adapt = Some(cfg.adapt);
    }
    let engine: Arc<dyn rtmdl_engine::Engine> = Arc::from(
        rtmdl_engine::select(rtmdl_engine::EngineKind::Tract)
            .unwrap()
            .0,
    );
    let opts = RunOptions {
        duration: cfg.duration.unwrap(),
        realtime: false,
        timeline: Some(cfg.adapt.bin),
        ..Default::default()
    };
    run_config(
        &cfg,
        PolicyKind::Rtmdl,
        VariantChoice::Plan,
        engine,
        1,
        &opts,
        1,
    )
    .unwrap()
}

#[test]
fn a_real_run_with_a_load_step_switches_down_in_the_step_and_prepares_every_variant_first() {
    let real = run(true);
    let o = &real.outcome;
    // Every job accounted for.
    for c in &o.counters {
        assert_eq!(c.released, c.completed + c.missed + c.dropped + c.failed);
    }
    // The three camera variants and the hog's one, before the first release.
    assert_eq!(o.prepared.variants, 4, "{:?}", o.prepared);
    let t = real.report.timeline.expect("a timeline with --adapt");
    let camera: Vec<_> = t.switches.iter().filter(|s| s.task == "camera").collect();
    // With 5 + 6 ms of lane work every 10 ms, the camera cannot keep its
    // planned variant in the step: it steps down after the step starts.
    // (Before the step the planned variant leaves half the lane free, so a
    // loaded test machine does not push it down early.)
    let rank = |v: &str| {
        ["big", "mid", "small"]
            .iter()
            .position(|x| *x == v)
            .unwrap()
    };
    assert!(
        camera
            .iter()
            .any(|s| s.t_ms >= 1000.0 && rank(&s.to) > rank(&s.from)),
        "no switch down in the step: {camera:?}"
    );
    assert!(
        t.switches.iter().all(|s| s.task == "camera"),
        "{:?}",
        t.switches
    );
    // The timeline's rows carry the variant in use and its accuracy.
    assert!(
        t.rows
            .iter()
            .filter(|r| r.task == "camera")
            .any(|r| r.variant != "big" && r.accuracy < 0.95)
    );
}

#[test]
fn without_adapt_a_real_run_keeps_its_variant() {
    let real = run(false);
    let t = real.report.timeline.expect("a timeline was asked for");
    assert!(t.switches.is_empty(), "{:?}", t.switches);
    assert!(
        t.rows
            .iter()
            .all(|r| r.task != "camera" || r.variant == "big")
    );
}

#[test]
fn a_real_run_reports_how_an_m_k_firm_task_kept_its_bound() {
    // The camera as an (m,k)-firm task: the step (5 + 6 ms of lane work
    // every 10 ms, no switching) breaks "1 in 10" over and over.
    let config = CONFIG.replacen(
        "max_miss_rate = 0.05",
        "max_miss_rate = 0.05\nmax_misses = \"1 in 10\"",
        1,
    );
    let real = run_text(&config, false);
    let camera = real
        .report
        .tasks
        .iter()
        .find(|t| t.name == "camera")
        .unwrap();
    let f = camera.max_misses.expect("the bound is reported");
    assert_eq!((f.misses, f.of), (1, 10));
    // Every ended job judged in windows of 10: at most jobs − 9 windows.
    assert!(f.windows > 0 && f.windows <= camera.jobs - 9, "{f:?}");
    assert!(f.violations > 0 && f.worst > 1, "{f:?}");
    assert!(real.report.table().contains("at most 1 in 10"));
    // The hog has no bound, and none is reported.
    let hog = real.report.tasks.iter().find(|t| t.name == "hog").unwrap();
    assert!(hog.max_misses.is_none());
}
