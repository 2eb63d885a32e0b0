//! `rtmdl profile`: measure every variant's sub-tasks in isolation, and the
//! GPU-lane slowdown with 2..K lanes busy at once.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use rtmdl_config::Config;
use rtmdl_core::profile::{ModelProfile, Profile, StageProfile, VariantProfile};
use rtmdl_core::{Resource, Time, VariantChoice};
use rtmdl_engine::Engine;

use crate::RuntimeError;
use crate::bodies::ConfigBodies;
use crate::executor::{Bodies, Work};

/// How much to measure.
pub struct ProfileOptions {
    /// Measured runs per stage (after `warmup` unmeasured ones).
    pub runs: usize,
    pub warmup: usize,
    /// Measure the slowdown for up to this many busy lanes.
    pub lanes: usize,
    pub threads: usize,
    pub seed: u64,
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
        + (2..=opts.lanes).count() as u64;
    let mut done = 0;
    let mut models = Vec::new();
    for &(m, task) in &users {
        let model = &ts.models[m];
        let mut variants = Vec::new();
        for (v, variant) in model.variants.iter().enumerate() {
            let mut assign = ts.assignments(VariantChoice::Original);
            assign[task].variant = v;
            let bodies =
                ConfigBodies::new(cfg.clone(), assign, engine.clone(), opts.threads, opts.seed)?;
            // Inputs as a real run has them: ready, the first sub-task
            // takes its copy (inside its time, as on a worker).
            let bodies = crate::camera(cfg, Arc::new(bodies))?;
            let mut works: Vec<Box<dyn Work>> = (0..model.stages.len())
                .map(|s| bodies.work(task, s))
                .collect::<Result<_, _>>()?;
            let mut samples: Vec<Vec<Time>> = vec![Vec::new(); model.stages.len()];
            for run in 0..opts.runs + opts.warmup {
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
                done += 1;
                progress(done, total, &format!("{}/{}", model.name, variant.name));
            }
            variants.push(VariantProfile {
                name: variant.name.clone(),
                stages: model
                    .stages
                    .iter()
                    .zip(samples)
                    .map(|(st, s)| StageProfile::from_samples(&st.name, s))
                    .collect(),
            });
        }
        models.push(ModelProfile {
            name: model.name.clone(),
            variants,
        });
    }
    // GPU-lane slowdown: the original variant's GPU stage of the first model
    // that has one, on k threads at once, against one alone.
    let mut gpu_slowdown = vec![1.0];
    let gpu = users.iter().find_map(|&(m, t)| {
        ts.models[m]
            .stages
            .iter()
            .position(|s| s.on == Resource::Gpu)
            .map(|s| (m, t, s))
    });
    if let Some((m, task, stage)) = gpu {
        let assign = ts.assignments(VariantChoice::Original);
        let bodies = Arc::new(ConfigBodies::new(
            cfg.clone(),
            assign,
            engine.clone(),
            opts.threads,
            opts.seed,
        )?);
        // The stage's input: run the chain up to it once.
        let mut input = bodies
            .input(task, 0)
            .map_err(|e| body_err(cfg, task, "source", e))?;
        for s in 0..stage {
            input = bodies
                .work(task, s)?
                .run(input)
                .map_err(|e| body_err(cfg, task, &ts.models[m].stages[s].name, e))?;
        }
        let alone = concurrent_mean(&bodies, task, stage, &input, 1, opts.runs)?;
        for k in 2..=opts.lanes {
            let busy = concurrent_mean(&bodies, task, stage, &input, k, opts.runs)?;
            gpu_slowdown.push((busy / alone).max(1.0));
            done += 1;
            progress(done, total, &format!("{k} lanes busy"));
        }
    }
    Ok(Profile {
        config: cfg.path.display().to_string(),
        engine: format!("{} {}", engine.name(), engine.version()),
        runs: opts.runs,
        gpu_slowdown,
        models,
    })
}

fn body_err(cfg: &Config, task: usize, stage: &str, reason: String) -> RuntimeError {
    RuntimeError::Body {
        task: cfg.taskset.tasks[task].name.clone(),
        stage: stage.to_string(),
        reason,
    }
}

/// Mean time of one run of the stage while `k` threads run it back to back.
fn concurrent_mean(
    bodies: &Arc<ConfigBodies>,
    task: usize,
    stage: usize,
    input: &crate::Data,
    k: usize,
    runs: usize,
) -> Result<f64, RuntimeError> {
    let barrier = Arc::new(Barrier::new(k));
    let mut works = Vec::new();
    for _ in 0..k {
        works.push(bodies.work(task, stage)?);
    }
    let handles: Vec<_> = works
        .into_iter()
        .map(|mut w| {
            let barrier = barrier.clone();
            let input = input.clone();
            std::thread::spawn(move || {
                let _ = w.run(input.clone());
                barrier.wait();
                let t0 = Instant::now();
                for _ in 0..runs.max(1) {
                    let _ = w.run(input.clone());
                }
                t0.elapsed().as_nanos() as f64 / runs.max(1) as f64
            })
        })
        .collect();
    let times: Vec<f64> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
    Ok(times.iter().sum::<f64>() / times.len().max(1) as f64)
}
