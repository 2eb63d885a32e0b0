//! rtmdl's real-time runtime: the same scheduler core as the simulator, on
//! a monotonic clock, with CPU worker threads and GPU lanes running real
//! sub-task bodies (Rust functions, ONNX engines).

pub mod bodies;
pub mod executor;
pub mod fidelity;
pub mod inputs;
pub mod load;
pub mod probe;
pub mod profile;
pub mod results;
pub mod rt;
pub mod starter;
pub mod trace;
pub mod verify;

use std::sync::Arc;

use rtmdl_config::Config;
use rtmdl_core::report::{RunInfo, RunReport};
use rtmdl_core::{PolicyKind, Time, VariantChoice};
use rtmdl_engine::Engine;

pub use executor::{Bodies, JobResult, ResultSink, RunOptions, RunOutcome, Work, run};

/// What flows between the sub-tasks of one job.
pub type Data = Vec<ndarray::ArrayD<f32>>;

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("task `{task}`, stage `{stage}`: {reason}")]
    Body {
        task: String,
        stage: String,
        reason: String,
    },
    #[error("thread: {0}")]
    Thread(String),
}

/// A real run of a config: the report plus what only a real run knows.
pub struct RealRun {
    pub report: RunReport,
    pub outcome: RunOutcome,
}

/// Run a loaded config for real and build the report (same shape as the
/// simulator's), with the simulator's prediction for the same config (its
/// times, or the profile applied to it), policy, length and seed beside
/// every task.
pub fn run_config(
    cfg: &Config,
    policy: PolicyKind,
    choice: VariantChoice,
    engine: Arc<dyn Engine>,
    threads: usize,
    opts: &RunOptions,
    seed: u64,
) -> Result<RealRun, RuntimeError> {
    let ts = &cfg.taskset;
    let assign = ts.assignments(choice);
    let bodies =
        bodies::ConfigBodies::new(cfg.clone(), assign.clone(), engine.clone(), threads, seed)?;
    let emulated = bodies.emulated();
    let stage_engines = bodies.stage_engines();
    let bodies: Arc<dyn Bodies> = Arc::new(camera(cfg, Arc::new(bodies))?);
    let built = policy.build(ts, &assign);
    let priorities: Vec<Option<u32>> = (0..ts.tasks.len()).map(|t| built.priority(t)).collect();
    let outcome = run(ts, &assign, built, bodies.clone(), opts)?;
    // The prediction ends as the run does: what is pending `grace` after
    // the last release is abandoned, in both.
    let sim_opts = rtmdl_core::SimOptions {
        duration: opts.duration,
        seed,
        grace: Some(opts.grace),
        ..Default::default()
    };
    let model = opts.predict.as_deref().unwrap_or(ts);
    let predicted = if opts.why {
        rtmdl_core::simulate_why(model, policy, choice, sim_opts)
    } else {
        rtmdl_core::simulate(model, policy, choice, sim_opts)
    };
    let mut report = RunReport::build(
        ts,
        &assign,
        &outcome.counters,
        &outcome.recorder,
        RunInfo {
            policy: policy.name(),
            variants: &choice.to_string(),
            mode: "run",
            duration: opts.duration,
            seed: Some(seed),
            utilisation: outcome.utilisation,
            priorities: priorities.clone(),
        },
    );
    report.set_predicted(&predicted);
    if opts.why {
        report.why = Some(why(ts, &priorities, &outcome));
        report.why_predicted = predicted.why.clone();
    }
    report.set_scores(scores(ts, &outcome, bodies.as_ref()));
    notes(&mut report, ts, &outcome, opts, engine.as_ref(), &emulated);
    if !stage_engines.is_empty() {
        report.notes.insert(
            "stage engines".into(),
            format!(
                "{} (the run's engine: {})",
                stage_engines.join(", "),
                engine.version()
            ),
        );
    }
    let fallbacks = engine.fallbacks();
    if !fallbacks.is_empty() {
        report
            .notes
            .insert("engine fallback".into(), fallbacks.join("; "));
    }
    report.runtime = Some(runtime_stats(ts, &outcome));
    report.interference = outcome.interference.clone();
    Ok(RealRun { report, outcome })
}

/// Why a real run's missed jobs missed, from its trace and its probe.
fn why(
    ts: &rtmdl_core::TaskSet,
    priorities: &[Option<u32>],
    o: &RunOutcome,
) -> rtmdl_core::why::WhyReport {
    use rtmdl_core::why::{Exec, Schedule, explain};
    let Some(trace) = &o.trace else {
        return Default::default();
    };
    let execs: Vec<Exec> = trace
        .slices
        .iter()
        .map(|s| Exec {
            task: s.task,
            seq: s.seq,
            stage: s.stage,
            variant: s.variant,
            slot: s.slot,
            start: s.start,
            end: s.end,
        })
        .collect();
    // Releases are at offset + seq × period (rtmdl_core::Releases).
    let missed: Vec<_> = trace
        .misses
        .iter()
        .map(|&(t, seq, _)| {
            let task = &ts.tasks[t];
            (t, seq, task.offset + seq * task.period)
        })
        .collect();
    let stalled = |a: Time, b: Time| {
        o.interference
            .as_ref()
            .map_or(0, |i| i.stalled_within(a, b))
    };
    let schedule = Schedule {
        ts,
        priorities,
        execs: &execs,
        missed: &missed,
        stalled: &stalled,
    };
    let dropped: Vec<u64> = o.counters.iter().map(|c| c.dropped).collect();
    let failed: Vec<u64> = o.counters.iter().map(|c| c.failed).collect();
    explain(&schedule, &dropped, &failed)
}

/// The judged answers of each task whose frames carry their ground truth:
/// its released jobs against what its frames showed, with the reaction
/// window at its period.
pub fn scores(
    ts: &rtmdl_core::TaskSet,
    o: &RunOutcome,
    bodies: &dyn Bodies,
) -> Vec<Option<rtmdl_core::timely::TaskScore>> {
    use rtmdl_core::timely::{Shown, reaction_frames, score};
    o.answers
        .iter()
        .enumerate()
        .map(|(t, a)| {
            let a = a.as_ref()?;
            let released = o.counters[t].released;
            let window = reaction_frames(ts.tasks[t].period);
            Some(score(a, released, window, |seq| {
                bodies.truth(t, seq).map(|x| Shown {
                    episode: x.episode,
                    label: x.label,
                })
            }))
        })
        .collect()
}

/// The run's notes: engine, real-time grant, emulated stages, failures,
/// replaced workers, quarantine, an early stop, hand-offs and dispatch
/// latency.
fn notes(
    report: &mut RunReport,
    ts: &rtmdl_core::TaskSet,
    o: &RunOutcome,
    opts: &RunOptions,
    engine: &dyn Engine,
    emulated: &[String],
) {
    report.notes.insert(
        "engine".into(),
        format!("{} {}", engine.name(), engine.version()),
    );
    report.notes.insert("realtime".into(), o.realtime.summary());
    if !emulated.is_empty() {
        report.notes.insert(
            "emulated".into(),
            format!(
                "{} stage(s) name no function or model and spin for their profiled time: {}",
                emulated.len(),
                emulated.join(", ")
            ),
        );
    }
    if let Some(f) = o.failures.first() {
        let where_ = ts
            .tasks
            .get(f.task)
            .map(|task| {
                format!(
                    "{}/{}/{}",
                    task.name, f.seq, ts.models[task.model].stages[f.stage].name
                )
            })
            .unwrap_or_default();
        let msg = &f.message;
        report.notes.insert(
            "failures".into(),
            format!(
                "{} sub-task(s) failed; first: {where_}: {msg}",
                o.failures_total
            ),
        );
    }
    if !o.replaced.is_empty() || !o.worker_errors.is_empty() {
        let when: Vec<String> = o
            .replaced
            .iter()
            .map(|(slot, t)| format!("{slot:?} at {:.3} s", *t as f64 / 1e9))
            .collect();
        report.notes.insert(
            "watchdog".into(),
            format!(
                "{} hung worker(s) replaced: {}{}",
                o.replaced.len(),
                when.join(", "),
                o.worker_errors
                    .iter()
                    .map(|e| format!("; {e}"))
                    .collect::<String>()
            ),
        );
    }
    if !o.quarantined.is_empty() {
        let which: Vec<String> = o
            .quarantined
            .iter()
            .map(|&(t, at)| {
                let name = ts.tasks.get(t).map_or("?", |t| t.name.as_str());
                format!("{name} at {:.3} s", at as f64 / 1e9)
            })
            .collect();
        report.notes.insert(
            "quarantined".into(),
            format!(
                "{} (after {} hung sub-tasks each; their later jobs failed without running)",
                which.join(", "),
                executor::MAX_HANGS
            ),
        );
    }
    if let Some(t) = o.stopped_at {
        report.notes.insert(
            "stopped".into(),
            format!(
                "interrupted after {:.3} s: releases stopped, pending jobs given {:.1} s, then counted as missed",
                t as f64 / 1e9,
                opts.stop_grace as f64 / 1e9
            ),
        );
        report.duration_s = t as f64 / 1e9;
    }
    let h = &o.handoffs;
    let ms = |s: &rtmdl_core::report::Samples| {
        let p = s.percentiles();
        format!("p50 {:.3} p99 {:.3}", p.p50, p.p99)
    };
    report.notes.insert(
        "handoffs".into(),
        format!(
            "decision → start: cpu {}, gpu {} ms; end → dispatcher: cpu {}, gpu {} ms",
            ms(&h.dispatch[0]),
            ms(&h.dispatch[1]),
            ms(&h.back[0]),
            ms(&h.back[1])
        ),
    );
    let p = o.dispatch_latency.percentiles();
    report.notes.insert(
        "dispatch_latency".into(),
        format!(
            "release → first start p50 {:.3} ms, p99 {:.3} ms",
            p.p50, p.p99
        ),
    );
}

/// The hand-off, lateness and in-run stage-time distributions of a run.
fn runtime_stats(
    ts: &rtmdl_core::TaskSet,
    outcome: &RunOutcome,
) -> rtmdl_core::report::RuntimeStats {
    let h = &outcome.handoffs;
    rtmdl_core::report::RuntimeStats {
        release_lateness: outcome.release_lateness.distribution(),
        dispatch_cpu: h.dispatch[0].distribution(),
        dispatch_gpu: h.dispatch[1].distribution(),
        back_cpu: h.back[0].distribution(),
        back_gpu: h.back[1].distribution(),
        stages: ts
            .tasks
            .iter()
            .zip(&outcome.stage_times)
            .flat_map(|(task, stages)| {
                ts.models[task.model]
                    .stages
                    .iter()
                    .zip(stages)
                    .map(|(st, d)| rtmdl_core::report::StageDistribution {
                        task: task.name.clone(),
                        stage: st.name.clone(),
                        time: d.distribution(),
                    })
            })
            .collect(),
    }
}

/// The config's job inputs produced up front (see [`inputs`]).
pub fn camera(cfg: &Config, bodies: Arc<dyn Bodies>) -> Result<inputs::Prefetched, RuntimeError> {
    inputs::Prefetched::new(bodies, cfg.taskset.tasks.len(), inputs::RING).map_err(|(t, e)| {
        RuntimeError::Body {
            task: cfg.taskset.tasks[t].name.clone(),
            stage: "source".into(),
            reason: e,
        }
    })
}

/// Nanoseconds from a `std::time::Duration`.
pub fn nanos(d: std::time::Duration) -> Time {
    d.as_nanos() as Time
}
