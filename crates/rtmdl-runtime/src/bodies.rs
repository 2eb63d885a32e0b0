//! Sub-task bodies built from a config: CPU stages are registered Rust
//! functions (`rtmdl-ops`), GPU stages run ONNX models through an engine.
//! A stage that names neither runs calibrated busy work drawn from its
//! profile, so any config can be run for real, and says so.
//!
//! # GPU stage parameters
//!
//! `params` of an inference stage (all optional):
//!
//! * `file = "m.onnx"`: the model, instead of the variant's `file`;
//! * `input_shape = [1, 3, 320, 320]`: the shape of the model's first input that
//!   `inputs` does not fix to a constant (normally the one the job's first tensor
//!   goes into), fixing its dynamic dims;
//! * `outputs = ["name", ...]`: an output cut;
//! * `inputs = { NAME = VALUE, ... }`: the model's other inputs. `VALUE` is a number
//!   (every element; converted to the input's type, e.g. `sr = 16000` for an int64
//!   scalar), `"zeros"`, or a table `{ fill = 0.0, shape = [2, 1, 128] }` (`shape`
//!   for inputs with dynamic dims). An input named here is a constant fixed at load,
//!   unless `feedback` feeds it, in which case this is its initial value;
//! * `feedback = { OUTPUT = "INPUT", ... }`: recurrent state: the input gets the
//!   output of the job before (Silero VAD: `feedback = { stateN = "state" }`). The
//!   state is one per task and stage, shared by the GPU lanes; fed-back outputs are
//!   not passed on to the next stage;
//! * `fault = { mode = "error" | "panic" | "hang", skip, every, times, hang_ms }`:
//!   fault injection into the inference itself (the `fault` CPU function's
//!   parameters, run before each inference), to test failure isolation.
//!
//! The model inputs that `inputs` does not name take the job's first tensors, in the
//! model's input order (each must be f32); the tensors after them travel on, after the
//! model's outputs.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rtmdl_config::Config;
use rtmdl_core::{Assignment, ExecProfile, Resource};
use rtmdl_engine::{
    DType, Engine, Feedback, InputValue, ModelSpec, RecurrentSession, Session, SharedState,
    TensorView,
};
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
    /// Per model, per stage: the parsed parameters of inference stages.
    gpu: Vec<Vec<Option<GpuParams>>>,
    /// Recurrent state per (task, stage), shared by the lanes' sessions.
    states: Mutex<HashMap<(usize, usize), SharedState>>,
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
                        reason: format!("{}: tasks[{t}].source: {e}", cfg.path.display()),
                    },
                )?),
                None => None,
            };
            sources.push(Mutex::new(s));
        }
        let ts = &cfg.taskset;
        let mut gpu = Vec::new();
        for (m, model) in ts.models.iter().enumerate() {
            let mut per_stage = Vec::new();
            for (s, st) in model.stages.iter().enumerate() {
                let field = format!("models.{}.stages[{s}]", model.name);
                let body_err = |reason: String| {
                    let task = ts
                        .tasks
                        .iter()
                        .find(|t| t.model == m)
                        .map_or_else(|| model.name.clone(), |t| t.name.clone());
                    RuntimeError::Body {
                        task,
                        stage: st.name.clone(),
                        reason: format!("{}: {field}.{reason}", cfg.path.display()),
                    }
                };
                if st.on != Resource::Gpu {
                    // Built once here to check the name and parameters; each
                    // worker builds its own.
                    if let Some(f) = &cfg.stages[m][s].function {
                        rtmdl_ops::build(f, &cfg.stages[m][s].params).map_err(|e| {
                            let key = match e {
                                rtmdl_ops::OpError::UnknownFunction { .. } => "function",
                                _ => "params",
                            };
                            body_err(format!("{key}: {e}"))
                        })?;
                    }
                    per_stage.push(None);
                    continue;
                }
                let parsed = GpuParams::parse(&cfg.stages[m][s].params)
                    .map_err(|reason| body_err(format!("params.{reason}")))?;
                per_stage.push(Some(parsed));
            }
            gpu.push(per_stage);
        }
        Ok(ConfigBodies {
            cfg,
            assign,
            engine,
            threads: threads.max(1),
            sources,
            gpu,
            states: Mutex::new(HashMap::new()),
            seed,
        })
    }

    /// The recurrent state of a task's stage (created on first use).
    fn state(&self, task: usize, stage: usize) -> SharedState {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        states.entry((task, stage)).or_default().clone()
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

    /// The shape of the first tensor that the stage before `stage` hands on,
    /// where its function and parameters fix it: (stage, function, shape).
    /// Checked against the model's input when an inference body is built, so
    /// a mismatch is an error before the first release, not a failed job.
    fn produced_shape(&self, model: usize, stage: usize) -> Option<(String, String, Vec<usize>)> {
        let prev = stage.checked_sub(1)?;
        let st = &self.cfg.taskset.models[model].stages[prev];
        let rt = &self.cfg.stages[model][prev];
        let function = rt.function.as_deref().filter(|_| st.on == Resource::Cpu)?;
        // Both write NCHW [1, 3, height, width] (see rtmdl-ops).
        if !matches!(function, "resize_normalize" | "crop_resize") {
            return None;
        }
        let dim = |k: &str| {
            rt.params
                .get(k)?
                .as_integer()
                .and_then(|v| usize::try_from(v).ok())
        };
        Some((
            st.name.clone(),
            function.to_string(),
            vec![1, 3, dim("height")?, dim("width")?],
        ))
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

/// The value of one entry of a GPU stage's `inputs`.
#[derive(Clone, Debug, PartialEq)]
struct InputParam {
    fill: f64,
    shape: Option<Vec<usize>>,
}

/// The parameters of an inference stage (see the module docs).
#[derive(Clone, Debug, Default, PartialEq)]
struct GpuParams {
    input_shape: Option<Vec<usize>>,
    outputs: Option<Vec<String>>,
    inputs: BTreeMap<String, InputParam>,
    /// (output, input)
    feedback: Vec<(String, String)>,
    /// Parameters of a `fault` run before each inference (fault injection:
    /// an inference that errors, panics or hangs on chosen calls).
    fault: Option<toml::Table>,
}

const GPU_PARAMS: &[&str] = &[
    "file",
    "input_shape",
    "outputs",
    "inputs",
    "feedback",
    "fault",
];

impl GpuParams {
    /// Parses and checks the table; the error starts with the key at fault
    /// (`inputs.sr: expected ...`).
    fn parse(params: &toml::Table) -> Result<Self, String> {
        let mut p = GpuParams::default();
        for (key, value) in params {
            match key.as_str() {
                "file" => {
                    if !value.is_str() {
                        return Err(format!("file: expected a path string, got {value}"));
                    }
                }
                "input_shape" => {
                    p.input_shape = Some(shape(value).map_err(|e| format!("input_shape: {e}"))?)
                }
                "outputs" => {
                    let list = value.as_array().filter(|a| !a.is_empty()).ok_or_else(|| {
                        format!("outputs: expected a non-empty list of output names, got {value}")
                    })?;
                    let names = list
                        .iter()
                        .map(|v| v.as_str().map(String::from))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| {
                            format!("outputs: expected output names (strings), got {value}")
                        })?;
                    p.outputs = Some(names);
                }
                "inputs" => {
                    let table = value.as_table().ok_or_else(|| {
                        format!("inputs: expected a table {{ NAME = value, ... }}, got {value}")
                    })?;
                    for (name, v) in table {
                        let parsed = input_param(v).map_err(|e| {
                            // Errors of a sub-key start with ".key".
                            if e.starts_with('.') {
                                format!("inputs.{name}{e}")
                            } else {
                                format!("inputs.{name}: {e}")
                            }
                        })?;
                        p.inputs.insert(name.clone(), parsed);
                    }
                }
                "feedback" => {
                    let table = value.as_table().ok_or_else(|| {
                        format!(
                            "feedback: expected a table {{ OUTPUT = \"INPUT\", ... }}, got {value}"
                        )
                    })?;
                    for (output, input) in table {
                        let input = input.as_str().ok_or_else(|| {
                            format!("feedback.{output}: expected the name of the input it feeds (a string), got {input}")
                        })?;
                        if p.feedback.iter().any(|(_, i)| i == input) {
                            return Err(format!(
                                "feedback.{output}: input {input:?} is already fed by another output"
                            ));
                        }
                        p.feedback.push((output.clone(), input.to_string()));
                    }
                }
                "fault" => {
                    let table = value.as_table().ok_or_else(|| {
                        format!("fault: expected a table {{ mode = \"error\" | \"panic\" | \"hang\", ... }}, got {value}")
                    })?;
                    rtmdl_ops::build("fault", table).map_err(|e| format!("fault: {e}"))?;
                    p.fault = Some(table.clone());
                }
                other => {
                    return Err(format!(
                        "{other}: unknown parameter of an inference stage; known: {}",
                        GPU_PARAMS.join(", ")
                    ));
                }
            }
        }
        Ok(p)
    }

    /// The engine spec for `path`, and the feedback links.
    fn spec(&self, path: std::path::PathBuf, threads: usize) -> (ModelSpec, Vec<Feedback>) {
        let mut spec = ModelSpec::new(path).with_threads(threads);
        spec.input_shape = self.input_shape.clone();
        spec.outputs = self.outputs.clone();
        let mut feedback = Vec::new();
        for (output, input) in &self.feedback {
            let init = self.inputs.get(input);
            if let Some(shape) = init.and_then(|i| i.shape.clone()) {
                spec.input_shapes.push((input.clone(), shape));
            }
            feedback.push(Feedback {
                output: output.clone(),
                input: input.clone(),
                initial: InputValue::scalar(init.map_or(0.0, |i| i.fill)),
            });
        }
        for (name, value) in &self.inputs {
            if self.feedback.iter().any(|(_, i)| i == name) {
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
}

/// A list of positive integers.
fn shape(value: &toml::Value) -> Result<Vec<usize>, String> {
    let list = value.as_array().ok_or_else(|| {
        format!("expected a list of positive integers like [1, 3, 320, 320], got {value}")
    })?;
    list.iter()
        .map(|d| match d.as_integer() {
            Some(i) if i > 0 => usize::try_from(i).map_err(|_| format!("dim {i} is too large")),
            _ => Err(format!("expected a list of positive integers, got {value}")),
        })
        .collect()
}

fn input_param(value: &toml::Value) -> Result<InputParam, String> {
    let number = |v: &toml::Value| match v {
        toml::Value::Integer(i) => Some(*i as f64),
        toml::Value::Float(f) => Some(*f),
        _ => None,
    };
    if let Some(fill) = number(value) {
        return Ok(InputParam { fill, shape: None });
    }
    match value {
        toml::Value::String(s) if s == "zeros" => Ok(InputParam {
            fill: 0.0,
            shape: None,
        }),
        toml::Value::Table(t) => {
            let mut p = InputParam {
                fill: 0.0,
                shape: None,
            };
            for (k, v) in t {
                match k.as_str() {
                    "fill" => {
                        p.fill =
                            number(v).ok_or_else(|| format!(".fill: expected a number, got {v}"))?
                    }
                    "shape" => p.shape = Some(shape(v).map_err(|e| format!(".shape: {e}"))?),
                    other => {
                        return Err(format!(".{other}: unknown key; expected fill and/or shape"));
                    }
                }
            }
            Ok(p)
        }
        other => Err(format!(
            "expected a number, \"zeros\" or {{ fill = number, shape = [..] }}, got {other}"
        )),
    }
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
        let work: Box<dyn Work> = match (st.on, self.real_body(task, stage)) {
            (_, None) => spin(),
            (Resource::Cpu, Some(f)) => Box::new(OpWork(
                rtmdl_ops::build(&f, &rt.params).map_err(|e| err(e.to_string()))?,
            )),
            (Resource::Gpu, Some(file)) => {
                let params = self.gpu[t.model][stage]
                    .as_ref()
                    .ok_or_else(|| err("no parsed parameters for an inference stage".into()))?;
                let (spec, feedback) = params.spec(self.cfg.resolve(&file), self.threads);
                let mut session = self.engine.session(&spec).map_err(|e| err(e.to_string()))?;
                if !feedback.is_empty() {
                    session = Box::new(
                        RecurrentSession::new(session, &feedback, self.state(task, stage))
                            .map_err(|e| err(e.to_string()))?,
                    );
                }
                if let Some(i) = session.inputs().iter().find(|i| i.dtype != DType::F32) {
                    return Err(err(format!(
                        "model {}: input {:?} is {} but the job's tensors are f32; fix it with params.inputs.{} = VALUE",
                        spec.path.display(),
                        i.name,
                        i.dtype,
                        i.name
                    )));
                }
                if let (Some(input), Some((producer, function, produced))) = (
                    session.inputs().first(),
                    self.produced_shape(t.model, stage),
                ) && input.shape != produced
                {
                    return Err(err(format!(
                        "model {}: input {:?} takes {:?}, but stage `{producer}` ({function}) produces {:?}; make the stage's width and height match the model",
                        spec.path.display(),
                        input.name,
                        input.shape,
                        produced
                    )));
                }
                Box::new(EngineWork(session))
            }
        };
        let fault = self.gpu[t.model][stage]
            .as_ref()
            .and_then(|p| p.fault.as_ref());
        Ok(match fault {
            Some(params) => Box::new(Faulty {
                fault: rtmdl_ops::build("fault", params).map_err(|e| err(e.to_string()))?,
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

/// An inference with injected faults: the `fault` function runs first (it
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
