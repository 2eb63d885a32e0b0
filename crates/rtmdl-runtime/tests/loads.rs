//! K GPU lanes load each model once: the lanes, and replacements built later,
//! spawn their sessions from the loaded model. Counted with an engine that
//! wraps tract and counts its loads.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rtmdl_core::{PolicyKind, VariantChoice};
use rtmdl_engine::{
    Engine, EngineError, EngineKind, LoadedModel, ModelSpec, TractEngine, testmodels,
};
use rtmdl_runtime::bodies::ConfigBodies;
use rtmdl_runtime::{Bodies, RunOptions, run_config};

/// tract, counting the models it loads.
#[derive(Default)]
struct Counting {
    loads: AtomicUsize,
}

impl Engine for Counting {
    fn name(&self) -> &'static str {
        "tract"
    }

    fn kind(&self) -> EngineKind {
        EngineKind::Tract
    }

    fn version(&self) -> String {
        TractEngine::new().version()
    }

    fn load(&self, spec: &ModelSpec) -> Result<Arc<dyn LoadedModel>, EngineError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        TractEngine::new().load(spec)
    }
}

/// Three lanes; two tasks of one model (so one model file), and a third task
/// of another model with feedback state.
const CONFIG: &str = r#"
[platform]
cpu_workers = 2
gpu_lanes = 3

[models.cnn]
stages = [
  { name = "pre", on = "cpu", function = "resize_normalize", params = { width = 16, height = 16 }, time = "1 ms" },
  { name = "infer", on = "gpu" },
  { name = "post", on = "cpu", function = "softmax_top1", params = { apply_softmax = false }, time = "0.1 ms" },
]
[[models.cnn.variants]]
name = "v"
accuracy = 0.9
file = "cnn.onnx"
times.infer = "1 ms"

[models.rec]
stages = [
  { name = "frame", on = "cpu", function = "reshape", params = { shape = [1, -1] }, time = "0.1 ms" },
  { name = "infer", on = "gpu", params = { input_shape = [1, 6], inputs = { rate = 2, state = { shape = [2, 1, 4] } }, feedback = { state_out = "state" } } },
]
[[models.rec.variants]]
name = "v"
accuracy = 1.0
file = "rec.onnx"
times.infer = "0.5 ms"

[[tasks]]
name = "a"
model = "cnn"
period = "20 ms"
source = { kind = "synthetic_frames", width = 32, height = 24, seed = 1 }

[[tasks]]
name = "b"
model = "cnn"
period = "25 ms"
source = { kind = "synthetic_frames", width = 32, height = 24, seed = 2 }

[[tasks]]
name = "r"
model = "rec"
period = "20 ms"
source = { kind = "synthetic_audio", samples = 6, seed = 3 }
"#;

fn write_config(dir: &Path) -> rtmdl_config::Config {
    testmodels::write_tiny_cnn(dir.join("cnn.onnx"), 1, 3, 16, 16, 4).unwrap();
    std::fs::write(dir.join("rec.onnx"), testmodels::tiny_recurrent()).unwrap();
    let path = dir.join("tasks.toml");
    std::fs::write(&path, CONFIG).unwrap();
    rtmdl_config::load(&path).unwrap()
}

#[test]
fn every_lane_and_replacement_spawns_from_one_load() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let engine = Arc::new(Counting::default());
    let assign = cfg.taskset.assignments(VariantChoice::Original);
    let bodies = Arc::new(ConfigBodies::new(cfg, assign, engine.clone(), 1, 0).unwrap());
    assert_eq!(
        engine.loads.load(Ordering::SeqCst),
        0,
        "nothing loads up front"
    );
    // Three lanes build every inference body at once, on their own threads,
    // like the executor; then a fourth body, as for a replaced worker.
    let lanes: Vec<_> = (0..3)
        .map(|_| {
            let bodies = bodies.clone();
            std::thread::spawn(move || {
                [(0, 1), (1, 1), (2, 1)].map(|(t, s)| bodies.work(t, s).unwrap())
            })
        })
        .collect();
    let mut lanes: Vec<_> = lanes.into_iter().map(|h| h.join().unwrap()).collect();
    let _replacement = bodies.work(2, 1).unwrap();
    // One load per model file, shared by both tasks of the CNN.
    assert_eq!(engine.loads.load(Ordering::SeqCst), 2);
    // Every session runs; the recurrent ones share one state per task.
    let frame = bodies.input(0, 0).unwrap();
    let x = bodies.work(0, 0).unwrap().run(frame).unwrap();
    for lane in &mut lanes {
        let out = lane[0].run(x.clone()).unwrap();
        assert_eq!(out[0].shape(), &[1, 4]);
    }
}

#[test]
fn a_real_run_with_three_lanes_loads_each_model_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let engine = Arc::new(Counting::default());
    let opts = RunOptions {
        duration: 300_000_000,
        realtime: false,
        ..Default::default()
    };
    let real = run_config(
        &cfg,
        PolicyKind::Rtmdl,
        VariantChoice::Original,
        engine.clone(),
        1,
        &opts,
        1,
    )
    .unwrap();
    assert_eq!(engine.loads.load(Ordering::SeqCst), 2);
    for c in &real.outcome.counters {
        assert!(c.released > 0);
        assert_eq!(c.released, c.completed + c.missed + c.dropped + c.failed);
        assert_eq!(c.failed, 0, "{:?}", real.outcome.failures);
    }
}
