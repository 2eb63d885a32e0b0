//! Sub-task bodies built from a config: CPU stages are registered Rust
//! functions (`rtmdl-ops`), GPU stages run ONNX models through an engine.
//! A stage that names neither runs calibrated busy work drawn from its
//! profile, so any config can be run for real, and says so.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rtmdl_config::Config;
use rtmdl_core::{Assignment, ExecProfile, Resource};
use rtmdl_engine::{Engine, ModelSpec, Session};
use rtmdl_ops::{CpuStage, Source};

use crate::executor::{Bodies, Work};
use crate::{Data, RuntimeError};

/// Bodies for every task of a config, with the chosen variants.
pub struct ConfigBodies {
    cfg: Config,
    assign: Vec<Assignment>,
    engine: Arc<dyn Engine>,
    /// Intra-op threads per engine session.
    threads: usize,
    sources: Vec<Mutex<Option<Box<dyn Source>>>>,
    seed: u64,
}

impl ConfigBodies {
    /// Check the config's functions and sources now, so that a bad name or
    /// parameter is an error before anything runs.
    pub fn new(
        cfg: Config,
        assign: Vec<Assignment>,
        engine: Arc<dyn Engine>,
        threads: usize,
        seed: u64,
    ) -> Result<Self, RuntimeError> {
        let mut sources = Vec::new();
        for (t, src) in cfg.sources.iter().enumerate() {
            let s = match src {
                Some(params) => Some(rtmdl_ops::source(&resolve_paths(&cfg, params)).map_err(
                    |e| RuntimeError::Body {
                        task: cfg.taskset.tasks[t].name.clone(),
                        stage: "source".into(),
                        reason: e.to_string(),
                    },
                )?),
                None => None,
            };
            sources.push(Mutex::new(s));
        }
        Ok(ConfigBodies {
            cfg,
            assign,
            engine,
            threads: threads.max(1),
            sources,
            seed,
        })
    }

    /// Stages that run emulated busy work (no function or model named).
    pub fn emulated(&self) -> Vec<String> {
        let ts = &self.cfg.taskset;
        let mut v = Vec::new();
        for (t, task) in ts.tasks.iter().enumerate() {
            let m = &ts.models[task.model];
            for (s, st) in m.stages.iter().enumerate() {
                if self.real_body(t, s).is_none() {
                    v.push(format!("{}/{}", task.name, st.name));
                }
            }
        }
        v
    }

    /// The function name or model path of a stage, if it has one.
    fn real_body(&self, task: usize, stage: usize) -> Option<String> {
        let ts = &self.cfg.taskset;
        let model = ts.tasks[task].model;
        let rt = &self.cfg.stages[model][stage];
        match ts.models[model].stages[stage].on {
            Resource::Cpu => rt.function.clone(),
            Resource::Gpu => rt
                .params
                .get("file")
                .and_then(|f| f.as_str())
                .map(String::from)
                .or_else(|| {
                    ts.models[model].variants[self.assign[task].variant]
                        .file
                        .clone()
                }),
        }
    }
}

/// `path` parameters of sources are relative to the config.
fn resolve_paths(cfg: &Config, params: &toml::Table) -> toml::Table {
    let mut p = params.clone();
    if let Some(toml::Value::String(path)) = p.get("path") {
        let abs = cfg.resolve(path).display().to_string();
        p.insert("path".into(), toml::Value::String(abs));
    }
    p
}

fn shape_param(params: &toml::Table, key: &str) -> Option<Vec<usize>> {
    params.get(key)?.as_array().map(|a| {
        a.iter()
            .filter_map(|v| v.as_integer())
            .map(|i| i.max(0) as usize)
            .collect()
    })
}

impl Bodies for ConfigBodies {
    fn work(&self, task: usize, stage: usize) -> Result<Box<dyn Work>, RuntimeError> {
        let ts = &self.cfg.taskset;
        let t = &ts.tasks[task];
        let m = &ts.models[t.model];
        let st = &m.stages[stage];
        let rt = &self.cfg.stages[t.model][stage];
        let variant = &m.variants[self.assign[task].variant];
        let err = |reason: String| RuntimeError::Body {
            task: t.name.clone(),
            stage: st.name.clone(),
            reason,
        };
        let seed = self.seed ^ ((task as u64) << 32) ^ stage as u64;
        let spin = || -> Box<dyn Work> {
            Box::new(Spin {
                profile: variant.times[stage].clone(),
                rng: ChaCha8Rng::seed_from_u64(seed),
            })
        };
        Ok(match (st.on, self.real_body(task, stage)) {
            (_, None) => spin(),
            (Resource::Cpu, Some(f)) => Box::new(OpWork(
                rtmdl_ops::build(&f, &rt.params).map_err(|e| err(e.to_string()))?,
            )),
            (Resource::Gpu, Some(file)) => {
                let mut spec = ModelSpec::new(self.cfg.resolve(&file)).with_threads(self.threads);
                if let Some(shape) = shape_param(&rt.params, "input_shape") {
                    spec = spec.with_input_shape(shape);
                }
                if let Some(outs) = rt.params.get("outputs").and_then(|o| o.as_array()) {
                    spec = spec.with_outputs(
                        outs.iter()
                            .filter_map(|o| o.as_str().map(String::from))
                            .collect::<Vec<_>>(),
                    );
                }
                let session = self.engine.load(&spec).map_err(|e| err(e.to_string()))?;
                Box::new(EngineWork(session))
            }
        })
    }

    fn input(&self, task: usize, seq: u64) -> Result<Data, String> {
        let mut src = self.sources[task].lock().map_err(|_| "source poisoned")?;
        match src.as_mut() {
            Some(s) => s.next(seq).map_err(|e| e.to_string()),
            None => Ok(Vec::new()),
        }
    }
}

/// A registered CPU function.
struct OpWork(Box<dyn CpuStage>);

impl Work for OpWork {
    fn run(&mut self, input: Data) -> Result<Data, String> {
        self.0.run(input).map_err(|e| e.to_string())
    }
}

/// An inference: the first tensor goes into the model; the others (a
/// frame kept for a later crop, say) travel on after the outputs.
struct EngineWork(Box<dyn Session>);

impl Work for EngineWork {
    fn run(&mut self, mut input: Data) -> Result<Data, String> {
        if input.is_empty() {
            return Err("no input tensor for the model".into());
        }
        let rest = input.split_off(1);
        let mut out = self.0.run(&input[0]).map_err(|e| e.to_string())?;
        out.extend(rest);
        Ok(out)
    }
}

/// Calibrated busy work: spins for a time drawn from the stage's profile.
struct Spin {
    profile: ExecProfile,
    rng: ChaCha8Rng,
}

impl Work for Spin {
    fn run(&mut self, input: Data) -> Result<Data, String> {
        let t = Duration::from_nanos(self.profile.sample(&mut self.rng));
        let start = Instant::now();
        while start.elapsed() < t {
            std::hint::spin_loop();
        }
        Ok(input)
    }
}
