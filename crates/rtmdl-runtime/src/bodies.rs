//! Sub-task bodies built from a config: CPU stages are registered Rust
//! functions (`rtmdl-ops`), GPU stages run ONNX models through an engine.
//! A stage that names neither runs calibrated busy work drawn from its
//! profile, so any config can be run for real, and says so.
//!
//! What runs is what the config describes, typed and checked at load
//! ([`rtmdl_config::StageBody`]; the parameters of an inference stage are
//! documented there). Each distinct model (file and spec) is loaded once,
//! by the first body that needs it: the executor builds every body before
//! the first release, so no model is loaded after it; every GPU lane, and
//! every replacement of a hung worker, spawns its own session from the
//! loaded model.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rtmdl_config::{Config, InferenceParams, StageBody, StageEngine};
use rtmdl_core::{Assignment, ExecProfile};
use rtmdl_engine::{
    Engine, EngineKind, Feedback, InputValue, LoadedModel, ModelSpec, RecurrentModel, Session,
    SharedState, TensorView,
};
use rtmdl_ops::{CpuStage, Source};

use crate::executor::{Bodies, Work};
use crate::{Data, RuntimeError};

/// A model loaded once, or why it could not be (the same for every lane).
type Loaded = Arc<OnceLock<Result<Arc<dyn LoadedModel>, String>>>;

/// An engine a stage names, or why it cannot be made.
type EngineOrWhyNot = Result<Arc<dyn Engine>, String>;

/// Bodies for every task of a config, with the chosen variants.
pub struct ConfigBodies {
    cfg: Config,
    assign: Vec<Assignment>,
    engine: Arc<dyn Engine>,
    /// Intra-op threads per engine session.
    threads: usize,
    sources: Vec<Mutex<Option<Box<dyn Source>>>>,
    /// Each distinct model spec (on its engine), loaded by the first body
    /// that needs it.
    models: Mutex<Vec<(ModelSpec, &'static str, Loaded)>>,
    /// The engines stages name (`engine = "ort"`), made on first use, or
    /// why they cannot be.
    stage_engines: Mutex<HashMap<StageEngine, EngineOrWhyNot>>,
    /// Recurrent state per (task, stage), shared by the lanes' sessions.
    states: Mutex<HashMap<(usize, usize), SharedState>>,
    seed: u64,
}

impl ConfigBodies {
    /// Builds the tasks' input sources (a `folder` source reads its images
    /// here); functions and parameters were checked when the config loaded.
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
                Some(spec) => Some(spec.build().map_err(|e| RuntimeError::Body {
                    task: cfg.taskset.tasks[t].name.clone(),
                    stage: "source".into(),
                    reason: format!("{}: tasks[{t}].source: {e}", cfg.path.display()),
                })?),
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
            models: Mutex::new(Vec::new()),
            stage_engines: Mutex::new(HashMap::new()),
            states: Mutex::new(HashMap::new()),
            seed,
        })
    }

    /// The recurrent state of a task's stage (created on first use).
    fn state(&self, task: usize, stage: usize) -> SharedState {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        states.entry((task, stage)).or_default().clone()
    }

    /// The model of `spec`, loaded on the first call; later calls (other
    /// lanes, replacements) wait for that load and share it.
    fn model(
        &self,
        spec: &ModelSpec,
        engine: &Arc<dyn Engine>,
    ) -> Result<Arc<dyn LoadedModel>, String> {
        let cell = {
            let mut models = self.models.lock().unwrap_or_else(|p| p.into_inner());
            match models
                .iter()
                .find(|(s, e, _)| s == spec && *e == engine.name())
            {
                Some((_, _, cell)) => cell.clone(),
                None => {
                    let cell = Loaded::default();
                    models.push((spec.clone(), engine.name(), cell.clone()));
                    cell
                }
            }
        };
        // Loads of different models run at once; one model loads once.
        cell.get_or_init(|| engine.load(spec).map_err(|e| e.to_string()))
            .clone()
    }

    /// The engine of an inference stage: the one it names, else the run's.
    fn engine_of(&self, p: &InferenceParams) -> Result<Arc<dyn Engine>, String> {
        let Some(kind) = p.engine else {
            return Ok(self.engine.clone());
        };
        let mut engines = self.stage_engines.lock().unwrap_or_else(|p| p.into_inner());
        engines
            .entry(kind)
            .or_insert_with(|| {
                let k = match kind {
                    StageEngine::Tract => EngineKind::Tract,
                    StageEngine::Ort => EngineKind::Ort,
                    StageEngine::Cuda => EngineKind::Cuda,
                };
                rtmdl_engine::select(k)
                    .map(|(e, _)| Arc::from(e))
                    .map_err(|e| format!("the stage names engine = {:?}: {e}", kind.as_str()))
            })
            .clone()
    }

    /// Per inference stage that names its engine, "task/stage: engine
    /// version"; every other inference stage runs on the run's engine.
    pub fn stage_engines(&self) -> Vec<String> {
        let ts = &self.cfg.taskset;
        let named = self.cfg.named_engines();
        let mut v = Vec::new();
        for task in &ts.tasks {
            for &(m, s, p, _) in named.iter().filter(|n| n.0 == task.model) {
                if let Ok(e) = self.engine_of(p) {
                    let stage = &ts.models[m].stages[s].name;
                    v.push(format!("{}/{stage}: {}", task.name, e.version()));
                }
            }
        }
        v
    }

    /// Stages that run emulated busy work (no function or model named).
    pub fn emulated(&self) -> Vec<String> {
        let ts = &self.cfg.taskset;
        let mut v = Vec::new();
        for (t, task) in ts.tasks.iter().enumerate() {
            let m = &ts.models[task.model];
            for (s, st) in m.stages.iter().enumerate() {
                if matches!(self.body(t, s, self.assign[t].variant), Body::Spin) {
                    v.push(format!("{}/{}", task.name, st.name));
                }
            }
        }
        v
    }

    /// What runs for a task's stage, with variant `v`.
    fn body(&self, task: usize, stage: usize, v: usize) -> Body<'_> {
        let ts = &self.cfg.taskset;
        let model = ts.tasks[task].model;
        match self.cfg.body(model, v, stage) {
            StageBody::Emulated => Body::Spin,
            StageBody::Function(f) => Body::Function(f),
            StageBody::Inference(p) => {
                let variant = &ts.models[model].variants[v];
                let file = p
                    .file
                    .clone()
                    .or_else(|| variant.file.as_deref().map(|f| self.cfg.resolve(f)));
                match file {
                    Some(file) => Body::Inference(p, file),
                    None => Body::Spin,
                }
            }
        }
    }

    /// The shape of the first tensor that the stage before `stage` hands on
    /// (for the first stage: the task's source), where its function and
    /// parameters fix it: (producer, what it is, shape). Checked against the
    /// model's input when an inference body is built, so a mismatch is an
    /// error before the first release, not a failed job.
    fn produced_shape(
        &self,
        task: usize,
        stage: usize,
        variant: usize,
    ) -> Option<(String, String, Vec<usize>)> {
        let model = self.cfg.taskset.tasks[task].model;
        let Some(prev) = stage.checked_sub(1) else {
            let source = self.cfg.sources.get(task)?.as_ref()?;
            return Some((
                format!("tasks.{}.source", self.cfg.taskset.tasks[task].name),
                format!("a {} source", source.kind()),
                source.output_shape()?,
            ));
        };
        let StageBody::Function(f) = self.cfg.body(model, variant, prev) else {
            return None;
        };
        let st = &self.cfg.taskset.models[model].stages[prev];
        Some((
            format!("stage `{}`", st.name),
            f.name().to_string(),
            f.output_shape()?,
        ))
    }

    /// A session of the stage's model, checked against what the job feeds it.
    fn inference(
        &self,
        task: usize,
        stage: usize,
        variant: usize,
        params: &InferenceParams,
        file: PathBuf,
    ) -> Result<Box<dyn Session>, String> {
        let (spec, feedback) = spec(params, file, params.threads.unwrap_or(self.threads));
        let engine = self.engine_of(params)?;
        let mut model = self.model(&spec, &engine)?;
        if !feedback.is_empty() {
            model = Arc::new(
                RecurrentModel::new(model, &feedback, self.state(task, stage))
                    .map_err(|e| e.to_string())?,
            );
        }
        // The job's tensors are f32; an input of another type takes them
        // cast at the engine's boundary (`DType::accepts`).
        if let (Some(input), Some((producer, what, produced))) = (
            model.inputs().first(),
            self.produced_shape(task, stage, variant),
        ) && input.shape != produced
        {
            let fix = if stage == 0 {
                format!("give the source shape = {:?}", input.shape)
            } else {
                "make the stage's width and height match the model".to_string()
            };
            return Err(format!(
                "model {}: input {:?} takes {:?}, but {producer} ({what}) produces {:?}; {fix}",
                spec.path.display(),
                input.name,
                input.shape,
                produced
            ));
        }
        model.spawn().map_err(|e| e.to_string())
    }
}

/// What runs for one stage.
enum Body<'a> {
    Spin,
    Function(&'a rtmdl_ops::FunctionSpec),
    Inference(&'a InferenceParams, PathBuf),
}

/// The engine spec of an inference stage for the model at `path`, and its
/// feedback links.
fn spec(p: &InferenceParams, path: PathBuf, threads: usize) -> (ModelSpec, Vec<Feedback>) {
    let mut spec = ModelSpec::new(path).with_threads(threads);
    spec.input_shape = p.input_shape.clone();
    spec.outputs = p.outputs.clone();
    let mut feedback = Vec::new();
    for (output, input) in &p.feedback {
        let init = p.inputs.get(input);
        if let Some(shape) = init.and_then(|i| i.shape.clone()) {
            spec.input_shapes.push((input.clone(), shape));
        }
        feedback.push(Feedback {
            output: output.clone(),
            input: input.clone(),
            initial: InputValue::scalar(init.map_or(0.0, |i| i.fill)),
        });
    }
    for (name, value) in &p.inputs {
        if p.feedback.values().any(|i| i == name) {
            continue;
        }
        spec.constants.push((
            name.clone(),
            InputValue::Fill {
                value: value.fill,
                shape: value.shape.clone(),
            },
        ));
    }
    (spec, feedback)
}

impl Bodies for ConfigBodies {
    fn work(&self, task: usize, stage: usize) -> Result<Box<dyn Work>, RuntimeError> {
        self.work_variant(task, stage, self.assign[task].variant)
    }

    fn work_variant(
        &self,
        task: usize,
        stage: usize,
        variant: usize,
    ) -> Result<Box<dyn Work>, RuntimeError> {
        let ts = &self.cfg.taskset;
        let t = &ts.tasks[task];
        let m = &ts.models[t.model];
        let st = &m.stages[stage];
        let err = |reason: String| RuntimeError::Body {
            task: t.name.clone(),
            stage: st.name.clone(),
            reason,
        };
        let seed = self.seed ^ ((task as u64) << 32) ^ stage as u64;
        let work: Box<dyn Work> = match self.body(task, stage, variant) {
            Body::Spin => Box::new(Spin {
                profile: m.variants[variant].times[stage].clone(),
                rng: ChaCha8Rng::seed_from_u64(seed),
            }),
            Body::Function(f) => Box::new(OpWork(f.build().map_err(|e| err(e.to_string()))?)),
            Body::Inference(p, file) => Box::new(EngineWork(
                self.inference(task, stage, variant, p, file).map_err(err)?,
            )),
        };
        // An inference stage's injected faults (with or without a model).
        let fault = match &self.cfg.bodies[t.model][stage] {
            StageBody::Inference(p) => p.fault,
            _ => None,
        };
        Ok(match fault {
            Some(spec) => Box::new(Faulty {
                fault: rtmdl_ops::fault_body(&spec),
                inner: work,
            }),
            None => work,
        })
    }

    fn input(&self, task: usize, seq: u64) -> Result<Data, String> {
        let mut src = self.sources[task].lock().map_err(|_| "source poisoned")?;
        match src.as_mut() {
            Some(s) => s.next(seq).map_err(|e| e.to_string()),
            None => Ok(Vec::new()),
        }
    }

    fn judged(&self, task: usize) -> bool {
        let src = self.sources[task].lock().unwrap_or_else(|p| p.into_inner());
        src.as_ref().is_some_and(|s| s.judged())
    }

    fn truth(&self, task: usize, seq: u64) -> Option<rtmdl_ops::Truth> {
        let src = self.sources[task].lock().unwrap_or_else(|p| p.into_inner());
        src.as_ref()?.truth(seq)
    }
}

/// A registered CPU function.
struct OpWork(Box<dyn CpuStage>);

impl Work for OpWork {
    fn run(&mut self, input: Data) -> Result<Data, String> {
        self.0.run(input).map_err(|e| e.to_string())
    }
}

/// An inference: the first tensors go into the model's inputs (one each); the
/// others (a frame kept for a later crop, say) travel on after the outputs.
struct EngineWork(Box<dyn Session>);

impl Work for EngineWork {
    fn run(&mut self, mut input: Data) -> Result<Data, String> {
        let n = self.0.inputs().len();
        if input.len() < n {
            let names: Vec<&str> = self.0.inputs().iter().map(|i| i.name.as_str()).collect();
            return Err(format!(
                "the model takes {n} input tensor(s) ({}), the job has {}",
                names.join(", "),
                input.len()
            ));
        }
        let rest = input.split_off(n);
        let views: Vec<TensorView<'_>> = input.iter().map(TensorView::from).collect();
        let out = self.0.run_many(&views).map_err(|e| e.to_string())?;
        let mut out: Data = out
            .into_iter()
            .map(rtmdl_engine::Tensor::into_f32)
            .collect();
        out.extend(rest);
        Ok(out)
    }
}

/// An inference with injected faults: the `fault` body runs first (it
/// passes the data on, or errors, panics or sleeps on its chosen calls).
struct Faulty {
    fault: Box<dyn CpuStage>,
    inner: Box<dyn Work>,
}

impl Work for Faulty {
    fn run(&mut self, input: Data) -> Result<Data, String> {
        let input = self.fault.run(input).map_err(|e| e.to_string())?;
        self.inner.run(input)
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
