//! `rtmdl profile`: measure what the simulator needs to predict a real run
//! on this machine.
//!
//! 1. Every variant's sub-tasks, one job at a time, timed over the same
//!    span a worker times in a run (the first sub-task takes its copy of
//!    the job's input from the ring, [`crate::inputs`]).
//! 2. The GPU-lane slowdown with 2..K lanes busy at once.
//! 3. Contention: a CPU sub-task and an inference computing at the same
//!    time, against each alone (on a machine whose lanes run a CPU engine
//!    they share the cores and the memory; the simulator slows both while
//!    both compute).
//! 4. A short real run of the config through the real executor, at a load
//!    where the busiest resource is about half used: the runtime's own
//!    delays — release lateness, the hand-off from the core's decision to
//!    the worker starting, and back from the worker's end to the core (the
//!    simulator adds them, with the slot taken meanwhile) — and how much
//!    slower each stage runs there than alone (its p50 ratio; every
//!    variant's samples of that stage are scaled by it).

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use rtmdl_config::Config;
use rtmdl_core::model::Overheads;
use rtmdl_core::profile::{Machine, ModelProfile, Profile, StageProfile, VariantProfile};
use rtmdl_core::report::Samples;
use rtmdl_core::{ExecProfile, PolicyKind, Resource, Time, VariantChoice};
use rtmdl_engine::Engine;

use crate::bodies::ConfigBodies;
use crate::executor::{Bodies, Work};
use crate::{Data, RunOptions, RuntimeError};

/// How much to measure.
pub struct ProfileOptions {
    /// Measured runs per stage (after `warmup` unmeasured ones).
    pub runs: usize,
    pub warmup: usize,
    /// Measure the slowdown for up to this many busy lanes.
    pub lanes: usize,
    pub threads: usize,
    pub seed: u64,
    /// Length of the real run that measures the runtime's delays (0: skip).
    pub calibrate: Time,
    /// Run that real run with real-time priorities (as the runs it is for).
    pub realtime: bool,
}

/// Measure a config. `progress(done, total, what)` is called as it goes.
pub fn profile(
    cfg: &Config,
    engine: Arc<dyn Engine>,
    opts: &ProfileOptions,
    progress: &mut dyn FnMut(u64, u64, &str),
) -> Result<Profile, RuntimeError> {
    let ts = &cfg.taskset;
    // Each model is measured through the first task that uses it (its source).
    let users: Vec<(usize, usize)> = (0..ts.models.len())
        .filter_map(|m| ts.tasks.iter().position(|t| t.model == m).map(|t| (m, t)))
        .collect();
    let total: u64 = users
        .iter()
        .map(|&(m, _)| ts.models[m].variants.len() as u64)
        .sum::<u64>()
        * (opts.runs + opts.warmup) as u64
        + (2..=opts.lanes).count() as u64
        + 2;
    let mut done = 0;
    let mut models = Vec::new();
    let mut others = Others::new(cfg, &engine, opts)?;
    for &(m, task) in &users {
        let mut variants = Vec::new();
        for v in 0..ts.models[m].variants.len() {
            variants.push(variant(
                cfg,
                &engine,
                opts,
                task,
                v,
                &mut others,
                &mut |what| {
                    done += 1;
                    progress(done, total, what)
                },
            )?);
        }
        models.push(ModelProfile {
            name: ts.models[m].name.clone(),
            variants,
        });
    }
    let probe = Probe::new(cfg, &engine, opts)?;
    let mut gpu_slowdown = vec![1.0];
    if let Some(probe) = &probe {
        for k in 2..=opts.lanes {
            gpu_slowdown.push(probe.lane_slowdown(k, opts.runs)?);
            done += 1;
            progress(done, total, &format!("{k} lanes busy"));
        }
    }
    progress(done, total, "contention");
    let contention = match &probe {
        Some(p) => p.contention(opts.runs)?,
        None => Vec::new(),
    };
    done += 1;
    progress(done, total, "hand-offs (a short real run)");
    let (overheads, inflation, calibration_load) = if opts.calibrate > 0 {
        let c = calibrate(cfg, engine.clone(), opts, &models)?;
        inflate(&mut models, ts, &c.inflation);
        (c.overheads, c.inflation, Some(c.load))
    } else {
        (Overheads::default(), Vec::new(), None)
    };
    progress(total, total, "done");
    let mut stage_engines: Vec<String> = cfg
        .named_engines()
        .into_iter()
        .map(|(m, st, _, e)| {
            let model = &ts.models[m];
            format!("{}/{}: {}", model.name, model.stages[st].name, e.as_str())
        })
        .collect();
    stage_engines.extend(engine.fallbacks());
    Ok(Profile {
        stage_engines,
        config: cfg.path.display().to_string(),
        engine: format!("{} {}", engine.name(), engine.version()),
        runs: opts.runs,
        gpu_slowdown,
        models,
        machine: Some(Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            lanes_on_cpu: !engine.name().contains("cuda"),
            contention,
            overheads,
            inflation,
            calibration_load,
        }),
    })
}

/// The other tasks' jobs (original variants), run between two measured
/// jobs as a real run interleaves them: on a worker or lane one model's
/// sub-task follows another's, with caches that hold the other's weights
/// and frames, and a job measured back to back after itself would be
/// faster than any job in a run.
struct Others {
    bodies: Arc<dyn Bodies>,
    works: Vec<(usize, Vec<Box<dyn Work>>)>,
    seq: u64,
}

impl Others {
    fn new(
        cfg: &Config,
        engine: &Arc<dyn Engine>,
        opts: &ProfileOptions,
    ) -> Result<Self, RuntimeError> {
        let ts = &cfg.taskset;
        let assign = ts.assignments(VariantChoice::Original);
        let bodies =
            ConfigBodies::new(cfg.clone(), assign, engine.clone(), opts.threads, opts.seed)?;
        let bodies: Arc<dyn Bodies> = Arc::new(crate::camera(cfg, Arc::new(bodies))?);
        let mut works = Vec::new();
        for task in 0..ts.tasks.len() {
            let stages = (0..ts.model_of(task).stages.len())
                .map(|s| bodies.work(task, s))
                .collect::<Result<_, _>>()?;
            works.push((task, stages));
        }
        Ok(Others {
            bodies,
            works,
            seq: 0,
        })
    }

    /// One job of every task but `except` (errors are not this
    /// measurement's: the job is just dropped).
    fn run(&mut self, except: usize) {
        self.seq += 1;
        for (task, stages) in &mut self.works {
            if *task == except {
                continue;
            }
            let Ok(mut data) = self.bodies.input(*task, self.seq) else {
                continue;
            };
            for w in stages.iter_mut() {
                match w.run(data) {
                    Ok(d) => data = d,
                    Err(_) => break,
                }
            }
        }
    }
}

/// Time every stage of variant `v` of `task`'s model, one job at a time,
/// with one job of every other task between two measured ones.
fn variant(
    cfg: &Config,
    engine: &Arc<dyn Engine>,
    opts: &ProfileOptions,
    task: usize,
    v: usize,
    others: &mut Others,
    tick: &mut dyn FnMut(&str),
) -> Result<VariantProfile, RuntimeError> {
    let ts = &cfg.taskset;
    let model = ts.model_of(task);
    let mut assign = ts.assignments(VariantChoice::Original);
    assign[task].variant = v;
    let bodies = ConfigBodies::new(cfg.clone(), assign, engine.clone(), opts.threads, opts.seed)?;
    // Inputs as a real run has them: ready, the first sub-task takes its
    // copy (inside its time, as on a worker).
    let bodies = crate::camera(cfg, Arc::new(bodies))?;
    let mut works: Vec<Box<dyn Work>> = (0..model.stages.len())
        .map(|s| bodies.work(task, s))
        .collect::<Result<_, _>>()?;
    let mut samples: Vec<Vec<Time>> = vec![Vec::new(); model.stages.len()];
    let what = format!("{}/{}", model.name, model.variants[v].name);
    for run in 0..opts.runs + opts.warmup {
        others.run(task);
        let mut data = Vec::new();
        for (s, w) in works.iter_mut().enumerate() {
            let t0 = Instant::now();
            if s == 0 {
                data = bodies
                    .input(task, run as u64)
                    .map_err(|e| body_err(cfg, task, "source", e))?;
            }
            data = w
                .run(data)
                .map_err(|e| body_err(cfg, task, &model.stages[s].name, e))?;
            if run >= opts.warmup {
                samples[s].push(t0.elapsed().as_nanos() as Time);
            }
        }
        tick(&what);
    }
    Ok(VariantProfile {
        name: model.variants[v].name.clone(),
        stages: model
            .stages
            .iter()
            .zip(samples)
            .map(|(st, s)| StageProfile::from_samples(&st.name, s))
            .collect(),
    })
}

fn body_err(cfg: &Config, task: usize, stage: &str, reason: String) -> RuntimeError {
    RuntimeError::Body {
        task: cfg.taskset.tasks[task].name.clone(),
        stage: stage.to_string(),
        reason,
    }
}

/// A CPU stage and an inference (of the original variants) with their
/// inputs, for the slowdown and contention measurements.
struct Probe {
    bodies: Arc<dyn Bodies>,
    /// (task, stage, input) of the inference: the first model that has one.
    gpu: (usize, usize, Data),
    /// The longest CPU stage of that task, if it has one.
    cpu: Option<(usize, usize, Data)>,
}

impl Probe {
    fn new(
        cfg: &Config,
        engine: &Arc<dyn Engine>,
        opts: &ProfileOptions,
    ) -> Result<Option<Probe>, RuntimeError> {
        let ts = &cfg.taskset;
        let Some((task, stage)) = (0..ts.tasks.len()).find_map(|t| {
            let stages = &ts.model_of(t).stages;
            stages
                .iter()
                .position(|s| s.on == Resource::Gpu)
                .map(|s| (t, s))
        }) else {
            return Ok(None);
        };
        let assign = ts.assignments(VariantChoice::Original);
        let bodies = ConfigBodies::new(
            cfg.clone(),
            assign.clone(),
            engine.clone(),
            opts.threads,
            opts.seed,
        )?;
        let bodies: Arc<dyn Bodies> = Arc::new(crate::camera(cfg, Arc::new(bodies))?);
        // Every stage's input: run the chain once.
        let mut inputs = Vec::new();
        let mut data = bodies
            .input(task, 0)
            .map_err(|e| body_err(cfg, task, "source", e))?;
        let stages = &ts.model_of(task).stages;
        for (s, st) in stages.iter().enumerate() {
            inputs.push(data.clone());
            data = bodies
                .work(task, s)?
                .run(data)
                .map_err(|e| body_err(cfg, task, &st.name, e))?;
        }
        let times = &ts.model_of(task).variants[assign[task].variant].times;
        let cpu = (0..stages.len())
            .filter(|&s| stages[s].on == Resource::Cpu)
            .max_by(|&a, &b| times[a].mean().total_cmp(&times[b].mean()))
            .map(|s| (task, s, inputs[s].clone()));
        Ok(Some(Probe {
            bodies,
            gpu: (task, stage, inputs[stage].clone()),
            cpu,
        }))
    }

    /// Slowdown of one inference while `k` run at once.
    fn lane_slowdown(&self, k: usize, runs: usize) -> Result<f64, RuntimeError> {
        let alone = together(&self.bodies, &[&self.gpu], runs)?[0];
        let jobs: Vec<_> = (0..k).map(|_| &self.gpu).collect();
        let busy = together(&self.bodies, &jobs, runs)?;
        Ok((busy.iter().sum::<f64>() / busy.len() as f64 / alone).max(1.0))
    }

    /// `[1.0, c]`: c is the slowdown of a CPU sub-task and an inference
    /// computing at the same time (the mean of the two), against each alone.
    fn contention(&self, runs: usize) -> Result<Vec<f64>, RuntimeError> {
        let Some(cpu) = &self.cpu else {
            return Ok(Vec::new());
        };
        let gpu_alone = together(&self.bodies, &[&self.gpu], runs)?[0];
        let cpu_alone = together(&self.bodies, &[cpu], runs)?[0];
        let both = together(&self.bodies, &[cpu, &self.gpu], runs)?;
        let c = (both[0] / cpu_alone + both[1] / gpu_alone) / 2.0;
        Ok(vec![1.0, c.max(1.0)])
    }
}

/// Mean time of one run of each sub-task while all of them run back to
/// back on their own threads at once: each is timed only while every
/// thread is still running (no tail where fewer run).
fn together(
    bodies: &Arc<dyn Bodies>,
    jobs: &[&(usize, usize, Data)],
    runs: usize,
) -> Result<Vec<f64>, RuntimeError> {
    let mut works = Vec::new();
    for (task, stage, input) in jobs.iter().map(|j| (j.0, j.1, &j.2)) {
        let mut w = bodies.work(task, stage)?;
        // Warm-up, and how long one run takes alone, to size the window.
        let t0 = Instant::now();
        let _ = w.run(input.clone());
        works.push((w, input.clone(), t0.elapsed()));
    }
    let longest = works.iter().map(|w| w.2).max().unwrap_or_default();
    let window =
        (longest * runs.max(1) as u32).clamp(Duration::from_millis(50), Duration::from_secs(5));
    // Each thread stops itself at the end of the window: with real-time
    // priorities a coordinator waiting for a core might never get one.
    let barrier = Arc::new(Barrier::new(works.len()));
    let start = Arc::new(std::sync::OnceLock::new());
    let handles: Vec<_> = works
        .into_iter()
        .map(|(mut w, input, _)| {
            let (barrier, start) = (barrier.clone(), start.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let t0 = *start.get_or_init(Instant::now);
                let mut n = 0u64;
                while t0.elapsed() < window {
                    let _ = w.run(input.clone());
                    n += 1;
                }
                // The last run ended after the window; count the time up
                // to its end.
                t0.elapsed().as_nanos() as f64 / n.max(1) as f64
            })
        })
        .collect();
    Ok(handles
        .into_iter()
        .map(|h| h.join().unwrap_or(f64::NAN))
        .collect())
}

/// What the calibration run measured.
struct Calibration {
    overheads: Overheads,
    /// Per model, per stage: in-run p50 over the isolated p50.
    inflation: Vec<Vec<f64>>,
    load: f64,
}

/// A short real run of the config through the real executor (original
/// variants, rtmdl policy) at a load where the busiest resource is about
/// half used: the runtime's delays (release lateness, hand-offs), and how
/// much slower each stage runs among the others than alone, one job at a
/// time (caches shared with the other threads and processes, wake-ups).
fn calibrate(
    cfg: &Config,
    engine: Arc<dyn Engine>,
    opts: &ProfileOptions,
    models: &[ModelProfile],
) -> Result<Calibration, RuntimeError> {
    let alone = Profile {
        config: String::new(),
        engine: String::new(),
        runs: 0,
        gpu_slowdown: vec![],
        models: models.to_vec(),
        machine: None,
        stage_engines: Vec::new(),
    };
    let mut at = cfg.clone();
    alone.apply(&mut at.taskset).map_err(RuntimeError::Thread)?;
    let load = (0.5 / busiest(&at.taskset)).clamp(1.0, 100.0);
    at.taskset = at.taskset.scale_rates(load, None);
    let run_opts = RunOptions {
        duration: opts.calibrate,
        realtime: opts.realtime,
        ..Default::default()
    };
    let real = crate::run_config(
        &at,
        PolicyKind::Rtmdl,
        VariantChoice::Original,
        engine,
        opts.threads,
        &run_opts,
        opts.seed,
    )?;
    let o = &real.outcome;
    let h = &o.handoffs;
    let ts = &cfg.taskset;
    let inflation = (0..ts.models.len())
        .map(|m| {
            let user = ts.tasks.iter().position(|t| t.model == m);
            let original = ts.models[m].original();
            (0..ts.models[m].stages.len())
                .map(|s| {
                    let run = user.map_or(0, |t| o.stage_times[t][s].quantile(0.5));
                    let alone = at.taskset.models[m].variants[original].times[s].quantile(0.5);
                    if run == 0 || alone == 0 {
                        1.0
                    } else {
                        run as f64 / alone as f64
                    }
                })
                .collect()
        })
        .collect();
    Ok(Calibration {
        overheads: Overheads {
            release: samples(&o.release_lateness),
            dispatch: [samples(&h.dispatch[0]), samples(&h.dispatch[1])],
            back: [samples(&h.back[0]), samples(&h.back[1])],
        },
        inflation,
        load,
    })
}

/// The utilisation of the busiest resource with the original variants
/// (CPU work over the workers, inference over the lanes).
fn busiest(ts: &rtmdl_core::TaskSet) -> f64 {
    let assign = ts.assignments(VariantChoice::Original);
    let mut busy = [0.0, 0.0];
    for (t, task) in ts.tasks.iter().enumerate() {
        let m = ts.model_of(t);
        for (s, st) in m.stages.iter().enumerate() {
            let mean = m.variants[assign[t].variant].times[s].mean();
            busy[(st.on == Resource::Gpu) as usize] += mean / task.period as f64;
        }
    }
    let p = &ts.platform;
    (busy[0] / p.cpu_workers.max(1) as f64)
        .max(busy[1] / p.gpu_lanes.max(1) as f64)
        .max(1e-6)
}

/// Update the simulator's model `ts` from a real run of it (`assign` the
/// variants that ran): the run's release lateness and hand-offs become the
/// platform's overheads, and a stage that ran slower or faster than the
/// model says (its p50 against the p50 of the variant that ran; over the
/// tasks of a model the factor furthest from 1, clamped to [0.5, 2]) is
/// scaled by that factor in every variant of its model. Returns one line
/// per change.
pub fn refit_from_run(
    ts: &mut rtmdl_core::TaskSet,
    assign: &[rtmdl_core::Assignment],
    o: &crate::RunOutcome,
) -> Vec<String> {
    let h = &o.handoffs;
    ts.platform.overheads = Overheads {
        release: samples(&o.release_lateness),
        dispatch: [samples(&h.dispatch[0]), samples(&h.dispatch[1])],
        back: [samples(&h.back[0]), samples(&h.back[1])],
    };
    let mut changes = vec!["hand-offs and release lateness: as measured in the run".to_string()];
    for m in 0..ts.models.len() {
        for s in 0..ts.models[m].stages.len() {
            let factor = (0..ts.tasks.len())
                .filter(|&t| ts.tasks[t].model == m)
                .filter_map(|t| {
                    let run = o.stage_times.get(t)?.get(s)?.quantile(0.5);
                    let model = ts.models[m].variants[assign[t].variant].times[s].quantile(0.5);
                    (run > 0 && model > 0).then(|| run as f64 / model as f64)
                })
                .fold(1.0f64, |a, f| {
                    if (f - 1.0).abs() > (a - 1.0).abs() {
                        f
                    } else {
                        a
                    }
                })
                .clamp(0.5, 2.0);
            if (factor - 1.0).abs() > 0.02 {
                for v in &mut ts.models[m].variants {
                    v.times[s] = v.times[s].scaled(factor);
                }
                changes.push(format!(
                    "{}/{}: × {factor:.2} (in-run p50 over the model's)",
                    ts.models[m].name, ts.models[m].stages[s].name
                ));
            }
        }
    }
    changes
}

/// Scale every variant's stage samples by the measured in-run inflation.
fn inflate(models: &mut [ModelProfile], ts: &rtmdl_core::TaskSet, inflation: &[Vec<f64>]) {
    for mp in models {
        let Some(m) = ts.models.iter().position(|m| m.name == mp.name) else {
            continue;
        };
        for vp in &mut mp.variants {
            for (s, sp) in vp.stages.iter_mut().enumerate() {
                let f = inflation[m].get(s).copied().unwrap_or(1.0);
                let scaled = sp
                    .samples_ns
                    .iter()
                    .map(|&t| (t as f64 * f).round() as Time)
                    .collect();
                *sp = StageProfile::from_samples(&sp.name, scaled);
            }
        }
    }
}

/// A measured distribution as profile samples (at most about 2000, in
/// proportion to the histogram's bins).
fn samples(s: &Samples) -> Option<ExecProfile> {
    if s.is_empty() {
        return None;
    }
    let scale = (s.len() as f64 / 2000.0).max(1.0);
    let mut v = Vec::new();
    for (value, n) in s.bins() {
        let k = (n as f64 / scale).round().max(1.0) as usize;
        v.extend(std::iter::repeat_n(value, k));
    }
    Some(ExecProfile::Samples(v))
}
