//! The driving scenario: its tasks, the optional voice-activity task, the
//! platform for this machine, the config written from the variant manifests
//! (a typed value serialised with `toml`) and the heavy load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rtmdl_core::{PolicyKind, SimOptions, TaskSet, VariantChoice, simulate};
use rtmdl_train::Manifest;
use serde::Serialize;
use toml::Value;

/// One cycle of the demo's drive: longer than a run (8 s) and its grace,
/// so no run sees a scene twice.
const ROUTE_LENGTH: &str = "12 s";

/// One camera task of the demo scenario.
pub struct DemoTask {
    pub name: &'static str,
    pub model: &'static str,
    /// Period at the light load, in ms.
    pub period_ms: f64,
    pub source_seed: u64,
}

pub const TASKS: [DemoTask; 2] = [
    DemoTask {
        name: "traffic_light",
        model: "lights",
        period_ms: 33.0,
        source_seed: 1,
    },
    DemoTask {
        name: "traffic_sign",
        model: "signs",
        period_ms: 50.0,
        source_seed: 2,
    },
];

/// The third task, voice activity on the cabin microphone (Silero VAD on
/// 32 ms chunks of 16 kHz audio), when `scripts/fetch-models` has fetched
/// the model: it makes the mix mixed (audio next to camera tasks, a model
/// with one variant and a recurrent state). Its period stays at 32 ms at
/// both loads (audio chunks come at the sample rate; cameras can speed up).
pub fn vad_model() -> Option<PathBuf> {
    [
        PathBuf::from("models/silero_vad.onnx"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/silero_vad.onnx"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .and_then(|p| std::fs::canonicalize(p).ok())
}

/// CPU workers and GPU lanes for the demo's platform: on a machine with two
/// cores or fewer, one of each, so the threads doing work never outnumber
/// the cores; otherwise two of each.
pub fn platform_for_this_machine() -> (usize, usize) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores <= 2 { (1, 1) } else { (2, 2) }
}

/// What the demo's configs are made of besides the load.
pub struct Scenario<'a> {
    pub manifests: &'a [Manifest],
    pub cpu_workers: usize,
    pub gpu_lanes: usize,
    /// Storage budget, bytes.
    pub budget: u64,
    /// The VAD model, when fetched.
    pub vad: Option<&'a Path>,
}

/// A config file as `rtmdl-config` reads it.
#[derive(Serialize)]
struct ConfigFile {
    platform: PlatformFile,
    models: BTreeMap<String, ModelFile>,
    tasks: Vec<TaskFile>,
}

#[derive(Serialize)]
struct PlatformFile {
    cpu_workers: usize,
    gpu_lanes: usize,
    gpu_slowdown: Vec<f64>,
    storage_budget: String,
}

#[derive(Serialize)]
struct ModelFile {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    shared: BTreeMap<String, String>,
    stages: Vec<StageFile>,
    variants: Vec<VariantFile>,
}

#[derive(Serialize)]
struct StageFile {
    name: &'static str,
    on: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    function: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<&'static str>,
}

#[derive(Serialize)]
struct VariantFile {
    name: String,
    accuracy: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    shared_with: Option<&'static str>,
    private: String,
    file: String,
    times: BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct TaskFile {
    name: &'static str,
    model: &'static str,
    period: String,
    max_miss_rate: f64,
    overrun: &'static str,
    source: Value,
}

/// A TOML value from a serialisable one (tables of numbers and strings).
fn value<T: Serialize>(v: T) -> Value {
    Value::try_from(v).expect("numbers, strings and tables are TOML values")
}

fn bytes(n: u64) -> String {
    format!("{n} B")
}

impl Scenario<'_> {
    /// The demo's task set as a config file at `path`, camera periods ×
    /// `period_scale`. Times are the variants' measured engine latencies
    /// until the profile replaces them.
    pub fn write_config(&self, path: &Path, period_scale: f64) -> Result<()> {
        let mut models: BTreeMap<String, ModelFile> = self
            .manifests
            .iter()
            .map(|m| (m.model.clone(), camera_model(m)))
            .collect();
        let mut tasks = Vec::new();
        if let Some(vad) = self.vad {
            models.insert("vad".into(), vad_model_file(vad));
            tasks.push(TaskFile {
                name: "voice",
                model: "vad",
                period: "32 ms".into(),
                max_miss_rate: 0.05,
                overrun: "skip",
                source: value(BTreeMap::from([
                    ("kind", value("synthetic_audio")),
                    ("samples", value(576)),
                    ("sample_rate", value(16000)),
                    ("seed", value(3)),
                ])),
            });
        }
        for t in TASKS.iter().filter(|t| models.contains_key(t.model)) {
            tasks.push(TaskFile {
                name: t.name,
                model: t.model,
                period: format!("{:.3} ms", t.period_ms * period_scale),
                max_miss_rate: 0.05,
                overrun: "skip",
                // The drive: frames with their ground truth, so the runs
                // count timely accuracy and the lights and signs answered.
                source: value(BTreeMap::from([
                    ("kind", value("route")),
                    ("camera", value(t.model)),
                    ("length", value(ROUTE_LENGTH)),
                    ("scale", value(4)),
                    ("seed", value(t.source_seed as i64)),
                ])),
            });
        }
        let file = ConfigFile {
            platform: PlatformFile {
                cpu_workers: self.cpu_workers,
                gpu_lanes: self.gpu_lanes,
                gpu_slowdown: (0..self.gpu_lanes)
                    .map(|i| ((1.0 + 0.3 * i as f64) * 100.0).round() / 100.0)
                    .collect(),
                storage_budget: bytes(self.budget),
            },
            models,
            tasks,
        };
        let text = format!(
            "# Written by `rtmdl demo`: the driving scenario with the scaled variants of\n\
             # the project's own models. Camera periods × {period_scale:.2} of the nominal ones.\n\
             # Run it again with `rtmdl run` on this file.\n\n{}",
            toml::to_string(&file).context("the demo config does not serialise")?
        );
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// A camera model: pre-processing to the base model's input size, the
/// inference of one variant, the top-1 class.
fn camera_model(m: &Manifest) -> ModelFile {
    let (w, h) = (m.base_arch.width, m.base_arch.height);
    ModelFile {
        shared: BTreeMap::from([("backbone".to_string(), bytes(m.shared_bytes))]),
        stages: vec![
            StageFile {
                name: "pre",
                on: "cpu",
                function: Some("resize_normalize"),
                params: Some(value(BTreeMap::from([("width", w), ("height", h)]))),
                time: Some("0.3 ms"),
            },
            StageFile {
                name: "infer",
                on: "gpu",
                function: None,
                params: None,
                time: None,
            },
            StageFile {
                name: "post",
                on: "cpu",
                function: Some("softmax_top1"),
                params: Some(value(BTreeMap::from([("threshold", 0.5)]))),
                time: Some("0.02 ms"),
            },
        ],
        variants: m
            .variants
            .iter()
            .map(|v| VariantFile {
                name: v.name.clone(),
                accuracy: v.accuracy,
                shared_with: Some("backbone"),
                private: bytes(v.private_bytes),
                file: Path::new("variants").join(&v.file).display().to_string(),
                times: BTreeMap::from([("infer", format!("{:.4} ms", v.latency_ms.max(0.001)))]),
            })
            .collect(),
    }
}

/// Silero VAD (silero-vad==6.2.3, MIT), fetched by scripts/fetch-models:
/// one variant, its LSTM state fed from one job to the next.
fn vad_model_file(vad: &Path) -> ModelFile {
    let infer = BTreeMap::from([
        ("input_shape", value([1, 576])),
        (
            "inputs",
            value(BTreeMap::from([
                ("sr", value(16000)),
                ("state", value(BTreeMap::from([("shape", [2, 1, 128])]))),
            ])),
        ),
        ("feedback", value(BTreeMap::from([("stateN", "state")]))),
    ]);
    ModelFile {
        shared: BTreeMap::new(),
        stages: vec![
            StageFile {
                name: "frame",
                on: "cpu",
                function: Some("reshape"),
                params: Some(value(BTreeMap::from([("shape", [1, -1])]))),
                time: Some("0.01 ms"),
            },
            StageFile {
                name: "vad",
                on: "gpu",
                function: None,
                params: Some(value(infer)),
                time: None,
            },
            StageFile {
                name: "speech",
                on: "cpu",
                function: Some("softmax_top1"),
                params: Some(value(BTreeMap::from([
                    ("apply_softmax", value(false)),
                    ("threshold", value(0.5)),
                ]))),
                time: Some("0.01 ms"),
            },
        ],
        variants: vec![VariantFile {
            name: "silero-v6".into(),
            accuracy: 1.0,
            shared_with: None,
            private: bytes(std::fs::metadata(vad).map_or(0, |m| m.len())),
            file: vad.display().to_string(),
            times: BTreeMap::from([("vad", "0.5 ms".to_string())]),
        }],
    }
}

/// The original-model baselines a competent engineer would build, the
/// black-box ones, FIFO and EDF: the heavy load is set against the best.
pub const ORIGINAL_BASELINES: [PolicyKind; 6] = [
    PolicyKind::Dm,
    PolicyKind::Um,
    PolicyKind::DmSplit,
    PolicyKind::UmSplit,
    PolicyKind::Fifo,
    PolicyKind::Edf,
];

/// The best (lowest) simulated miss rate of the original-model baselines.
pub fn best_baseline(ts: &TaskSet, seed: u64) -> f64 {
    let opts = SimOptions {
        duration: 10_000_000_000,
        seed,
        ..Default::default()
    };
    ORIGINAL_BASELINES
        .iter()
        .map(|&p| simulate(ts, p, VariantChoice::Original, opts).miss_rate)
        .fold(f64::INFINITY, f64::min)
}

/// The shortest camera period the heavy load goes down to.
const MIN_PERIOD_MS: f64 = 4.0;

/// The simulator's proposal for the heavy load: shorten every camera
/// task's period by 10 % steps until the best original-model baseline
/// misses at least 10 % of its jobs in simulation (on the measured
/// profile). Real runs then decide (`demo::heavy_by_real_runs`).
pub fn heavy_scale(ts: &TaskSet, seed: u64) -> f64 {
    let mut scale = 1.0;
    for _ in 0..30 {
        let mut t = ts.clone();
        for task in t
            .tasks
            .iter_mut()
            .filter(|t| TASKS.iter().any(|c| c.name == t.name))
        {
            task.period = (task.period as f64 * scale) as u64;
            task.deadline = (task.deadline as f64 * scale) as u64;
        }
        if best_baseline(&t, seed) >= 0.10 {
            return scale;
        }
        // Below a few milliseconds per frame the runtime's own overheads
        // (thread hand-offs, wake-ups) are no longer small against the
        // work, and the profile stops predicting the run: stop there.
        let shortest = TASKS
            .iter()
            .map(|c| c.period_ms)
            .fold(f64::INFINITY, f64::min);
        if shortest * scale * 0.9 < MIN_PERIOD_MS {
            return scale;
        }
        scale *= 0.9;
    }
    scale
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The written config loads, with the sizes, files and tasks it was
    /// given, whatever the characters in the VAD model's path.
    #[test]
    fn the_written_config_loads() {
        let dir = tempfile::tempdir().unwrap();
        let vad = dir.path().join("odd \"name\"\n\u{7}.onnx");
        std::fs::write(&vad, b"not read here").unwrap();
        let sc = Scenario {
            manifests: &[],
            cpu_workers: 1,
            gpu_lanes: 2,
            budget: 5 << 20,
            vad: Some(&vad),
        };
        let path = dir.path().join("light.toml");
        sc.write_config(&path, 0.5).unwrap();
        let cfg = rtmdl_config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let ts = &cfg.taskset;
        assert_eq!(ts.platform.gpu_lanes, 2);
        assert_eq!(ts.platform.storage_budget, Some(5 << 20));
        assert_eq!(ts.tasks.len(), 1);
        assert_eq!(ts.tasks[0].name, "voice");
        assert_eq!(ts.tasks[0].period, 32_000_000);
        let file = ts.models[0].variants[0].file.as_deref().unwrap();
        assert!(file.ends_with("odd \"name\"\n\u{7}.onnx"), "{file}");
    }
}
