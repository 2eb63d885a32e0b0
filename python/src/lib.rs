//! The native half of the `rtmdl` Python package: each function loads the
//! config as the CLI does ([`rtmdl_runtime::load`]), calls the same library
//! function the CLI's command calls, and returns the result as the JSON the
//! command's `--json` writes (the Python half turns it into objects). No
//! scheduling, simulation or planning happens here.
//!
//! Errors become one exception class per kind, with the CLI's one-line
//! text: [`ConfigError`] (file, line, field), [`ModelError`] (the path),
//! [`PlanInfeasible`], [`RunError`]; a panic is caught and raised as
//! [`RunError`], never crossing into Python as an abort.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use rtmdl_core::units::parse_duration;
use rtmdl_core::{PolicyKind, SimOptions, Time, VariantChoice, simulate_why};
use rtmdl_engine::{Engine, EngineKind};

pyo3::create_exception!(_rtmdl, RtmdlError, PyException, "Every error rtmdl raises.");
pyo3::create_exception!(
    _rtmdl,
    ConfigError,
    RtmdlError,
    "A config, plan or profile that cannot be used: the message names the file, line and field."
);
pyo3::create_exception!(
    _rtmdl,
    ModelError,
    RtmdlError,
    "A model file that is missing or that no engine can load: the message names the path."
);
pyo3::create_exception!(
    _rtmdl,
    PlanInfeasible,
    RtmdlError,
    "No plan meets every constraint (`plan(..., check=True)`)."
);
pyo3::create_exception!(
    _rtmdl,
    RunError,
    RtmdlError,
    "A real run, profile or simulation that failed."
);

/// The exception of `e`'s kind, with the CLI's one-line text (the whole
/// chain, as `rtmdl` prints it).
fn to_py(e: anyhow::Error) -> PyErr {
    let text = format!("{e:#}");
    if e.downcast_ref::<rtmdl_config::ConfigError>().is_some() {
        return ConfigError::new_err(text);
    }
    if e.downcast_ref::<rtmdl_engine::EngineError>().is_some()
        || e.chain()
            .any(|c| c.downcast_ref::<rtmdl_engine::EngineError>().is_some())
    {
        return ModelError::new_err(text);
    }
    // A run's model that does not load reaches here as a stage's error.
    if text.contains("cannot load model") {
        return ModelError::new_err(text);
    }
    // A profile or plan file that is not one, or a stage time left to a
    // measurement, is the config's fault.
    if text.contains("not a profile") || text.contains("no time for") {
        return ConfigError::new_err(text);
    }
    RunError::new_err(text)
}

/// `f`, with a panic caught and raised as [`RunError`].
fn guarded<T>(f: impl FnOnce() -> anyhow::Result<T>) -> PyResult<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(to_py),
        Err(p) => {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            Err(RunError::new_err(format!("internal error (a bug): {what}")))
        }
    }
}

/// The config: from the file at `source`, or (`text`) parsed from TOML
/// text whose relative paths resolve against the working directory.
fn load(
    source: &str,
    text: bool,
    plan: Option<&Path>,
    profile: Option<&Path>,
    timed: bool,
) -> anyhow::Result<rtmdl_config::Config> {
    let cfg = if text {
        rtmdl_config::parse(source, Path::new("<config>"))?
    } else {
        rtmdl_config::load(Path::new(source))?
    };
    rtmdl_runtime::load::prepare(cfg, plan, profile, timed)
}

fn json<T: serde::Serialize>(v: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string(v)?)
}

fn duration(s: &str, what: &str) -> PyResult<Time> {
    match parse_duration(s) {
        Ok(0) => Err(PyValueError::new_err(format!(
            "{what}: the duration must be above 0"
        ))),
        Ok(d) => Ok(d),
        Err(e) => Err(PyValueError::new_err(format!("{what}: {e}"))),
    }
}

fn policy(s: &str) -> PyResult<PolicyKind> {
    s.parse().map_err(PyValueError::new_err)
}

fn variants(s: &str) -> PyResult<VariantChoice> {
    s.parse().map_err(PyValueError::new_err)
}

/// The policy and the variants to run, as `SetArgs::choice` reads them:
/// the plan's variants when a plan file is given.
fn set_choice(
    policy_name: &str,
    variant_choice: &str,
    has_plan: bool,
) -> PyResult<(PolicyKind, VariantChoice)> {
    let policy = policy(policy_name)?;
    let named = variants(variant_choice)?;
    Ok((policy, if has_plan { VariantChoice::Plan } else { named }))
}

fn engine_kind(s: &str) -> PyResult<EngineKind> {
    s.parse::<EngineKind>()
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

/// The engine `run --engine KIND` takes (with `auto`'s per-model fallback).
fn engine(kind: EngineKind) -> anyhow::Result<Arc<dyn Engine>> {
    let (engine, _) = rtmdl_engine::select(kind)?;
    let engine: Arc<dyn Engine> = Arc::from(engine);
    Ok(match kind {
        EngineKind::Auto => Arc::new(rtmdl_engine::Fallback::after(engine)),
        _ => engine,
    })
}

/// The task set as the config describes it (after the plan and profile):
/// the check that it loads, for `rtmdl.load`.
#[pyfunction]
#[pyo3(signature = (source, text, plan=None, profile=None))]
fn load_config(
    source: &str,
    text: bool,
    plan: Option<PathBuf>,
    profile: Option<PathBuf>,
) -> PyResult<String> {
    guarded(|| {
        let cfg = load(source, text, plan.as_deref(), profile.as_deref(), false)?;
        let ts = &cfg.taskset;
        let ms = |t: Time| t as f64 / 1e6;
        json(&serde_json::json!({
            "path": cfg.path,
            "platform": {
                "cpu_workers": ts.platform.cpu_workers,
                "gpu_lanes": ts.platform.gpu_lanes,
            },
            "models": ts.models.iter().map(|m| serde_json::json!({
                "name": m.name,
                "stages": m.stages.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
                "variants": m.variants.iter().map(|v| serde_json::json!({
                    "name": v.name,
                    "accuracy": v.accuracy,
                    "file": v.file,
                    "private_bytes": v.private_bytes,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "tasks": ts.tasks.iter().map(|t| serde_json::json!({
                "name": t.name,
                "model": ts.models[t.model].name,
                "period_ms": ms(t.period),
                "deadline_ms": ms(t.deadline),
                "max_miss_rate": t.max_miss_rate,
                "min_accuracy": t.min_accuracy,
                "priority": t.priority,
                "variant": t.variant.map(|v| ts.models[t.model].variants[v].name.clone()),
            })).collect::<Vec<_>>(),
            "unmeasured": cfg.unmeasured_in(ts),
        }))
    })
}

/// A config given as a dict (its JSON) as TOML text, by the toml crate.
#[pyfunction]
fn json_to_toml(text: &str) -> PyResult<String> {
    let value: toml::Value = serde_json::from_str(text)
        .map_err(|e| ConfigError::new_err(format!("<dict>: cannot be a config: {e}")))?;
    toml::to_string(&value)
        .map_err(|e| ConfigError::new_err(format!("<dict>: cannot be a config: {e}")))
}

/// `rtmdl simulate CONFIG --json -` (with `--why`: the why table too).
#[pyfunction]
#[pyo3(signature = (source, text, plan, profile, policy_name, variant_choice, length, seed, why))]
#[allow(clippy::too_many_arguments)]
fn simulate(
    py: Python<'_>,
    source: &str,
    text: bool,
    plan: Option<PathBuf>,
    profile: Option<PathBuf>,
    policy_name: &str,
    variant_choice: &str,
    length: Option<&str>,
    seed: u64,
    why: bool,
) -> PyResult<String> {
    let (policy, choice) = set_choice(policy_name, variant_choice, plan.is_some())?;
    let length = length.map(|d| duration(d, "duration")).transpose()?;
    let source = source.to_string();
    py.detach(move || {
        guarded(|| {
            let cfg = load(&source, text, plan.as_deref(), profile.as_deref(), true)?;
            let opts = SimOptions {
                duration: length.or(cfg.duration).unwrap_or(60_000_000_000),
                seed,
                grace: Some(rtmdl_runtime::RunOptions::default().grace),
                ..Default::default()
            };
            let report = if why {
                simulate_why(&cfg.taskset, policy, choice, opts)
            } else {
                rtmdl_core::simulate(&cfg.taskset, policy, choice, opts)
            };
            json(&report)
        })
    })
}

/// `rtmdl compare CONFIG --json -`: every baseline and rtmdl+plan.
#[pyfunction]
#[pyo3(signature = (source, text, plan, profile, length, seed))]
fn compare(
    py: Python<'_>,
    source: &str,
    text: bool,
    plan: Option<PathBuf>,
    profile: Option<PathBuf>,
    length: &str,
    seed: u64,
) -> PyResult<String> {
    let length = duration(length, "duration")?;
    let source = source.to_string();
    py.detach(move || {
        guarded(|| {
            let ts = load(&source, text, plan.as_deref(), profile.as_deref(), true)?.taskset;
            let opts = SimOptions {
                duration: length,
                seed,
                grace: Some(rtmdl_runtime::RunOptions::default().grace),
                ..Default::default()
            };
            let reports: Vec<serde_json::Value> = rtmdl_core::policy::BASELINES
                .iter()
                .map(|&(label, p, v)| {
                    let mut r = serde_json::to_value(rtmdl_core::simulate(&ts, p, v, opts))?;
                    r["label"] = label.into();
                    Ok(r)
                })
                .collect::<anyhow::Result<_>>()?;
            json(&reports)
        })
    })
}

/// `rtmdl analyze CONFIG --json -`.
#[pyfunction]
#[pyo3(signature = (source, text, plan, profile, margin, policy_name))]
fn analyze(
    source: &str,
    text: bool,
    plan: Option<PathBuf>,
    profile: Option<PathBuf>,
    margin: f64,
    policy_name: &str,
) -> PyResult<String> {
    let policy = policy(policy_name)?;
    if !(margin >= 1.0 && margin.is_finite()) {
        return Err(PyValueError::new_err(format!(
            "margin: expected a factor of at least 1, got {margin}"
        )));
    }
    guarded(|| {
        let ts = load(source, text, plan.as_deref(), profile.as_deref(), true)?.taskset;
        let assign = ts.assignments(VariantChoice::Plan);
        let opts = rtmdl_analysis::Options { margin, policy };
        let a = rtmdl_analysis::analyze(&ts, &assign, &opts)
            .map_err(|e| anyhow::anyhow!("{}: {e}", ts_name(source, text)))?;
        json(&a)
    })
}

fn ts_name(source: &str, text: bool) -> String {
    if text {
        "<config>".into()
    } else {
        source.into()
    }
}

/// The search's options: `rtmdl plan`'s defaults for what is not given.
fn plan_options(
    ts: &rtmdl_core::TaskSet,
    hard: bool,
    seed: u64,
    seeds: usize,
    population: usize,
    generations: usize,
) -> (rtmdl_plan::ProxyOptions, rtmdl_plan::Method) {
    let mut proxy = rtmdl_plan::ProxyOptions::default_for(ts, 10_000_000_000);
    proxy.seed = seed;
    proxy.seeds = seeds.max(1) as u64;
    proxy.hard = hard;
    let method = rtmdl_plan::Method::Moea(rtmdl_plan::MoeaOptions {
        population,
        generations,
        seed,
        ..Default::default()
    });
    (proxy, method)
}

/// A plan outcome as the Python side reads it.
fn plan_json(
    ts: &rtmdl_core::TaskSet,
    outcome: &rtmdl_plan::PlanOutcome,
    config: Option<&Path>,
) -> serde_json::Value {
    let planned = ts.with_assignments(&outcome.assignments);
    let tasks: Vec<serde_json::Value> = ts
        .tasks
        .iter()
        .enumerate()
        .map(|(t, task)| {
            let a = &outcome.assignments[t];
            serde_json::json!({
                "name": task.name,
                "variant": ts.models[task.model].variants[a.variant].name,
                "priority": a.priority,
                "predicted_miss_rate": outcome.held_out.dmr[t],
                "max_miss_rate": task.max_miss_rate,
            })
        })
        .collect();
    serde_json::json!({
        "feasible": outcome.feasible,
        "accuracy_loss": planned.accuracy_loss(&outcome.assignments),
        "tasks": tasks,
        "diagnosis": outcome.diagnosis,
        "evaluations": outcome.evaluations,
        "simulations": outcome.simulations,
        "plan_toml": rtmdl_config::plan_text(ts, &outcome.assignments, config),
    })
}

/// `rtmdl plan CONFIG`: the plan, per task its variant, priority and the
/// miss rate predicted on fresh seeds, and the plan file's text.
/// `progress(done, total)` is called as the search goes. With `verify`
/// (a duration), `rtmdl plan --verify`: the plan is run for real
/// `rounds` times, and where a task's median misses exceed its ζ the
/// model is updated from the runs and planned again (at most 3 tries,
/// [`rtmdl_runtime::verify`]); the result is the verified plan (or the
/// last), with `verified` and every try's checks. Ctrl-C ends the real
/// runs and raises `KeyboardInterrupt`.
#[pyfunction]
#[pyo3(signature = (source, text, profile, hard, seed, seeds, population, generations, progress=None, verify=None, rounds=3, engine_name="auto", rt=true))]
#[allow(clippy::too_many_arguments)]
fn plan(
    py: Python<'_>,
    source: &str,
    text: bool,
    profile: Option<PathBuf>,
    hard: bool,
    seed: u64,
    seeds: usize,
    population: usize,
    generations: usize,
    progress: Option<Py<PyAny>>,
    verify: Option<&str>,
    rounds: usize,
    engine_name: &str,
    rt: bool,
) -> PyResult<String> {
    let verify = verify.map(|d| duration(d, "verify")).transpose()?;
    if rounds == 0 {
        return Err(PyValueError::new_err("rounds: expected at least 1"));
    }
    let kind = engine_kind(engine_name)?;
    let source = source.to_string();
    // On a thread of its own, so that Ctrl-C ends the verify loop's real
    // runs (the search itself is not cut short: it ends first).
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let work = move || {
        guarded(|| {
            let mut cfg = load(&source, text, None, profile.as_deref(), true)?;
            let name = ts_name(&source, text);
            let config_path = (!text).then(|| Path::new(&source));
            let mut report = |done: usize, total: usize| {
                if let Some(cb) = &progress {
                    Python::attach(|py| {
                        if let Err(e) = cb.call1(py, (done, total)) {
                            e.print(py);
                        }
                    });
                }
            };
            let Some(length) = verify else {
                let ts = &cfg.taskset;
                let (proxy, method) = plan_options(ts, hard, seed, seeds, population, generations);
                let outcome = rtmdl_plan::plan(ts, proxy, &method, &mut report)
                    .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
                return json(&plan_json(ts, &outcome, config_path));
            };
            // The run executes what the config describes; the planner sees
            // the profile, then the refits (as `plan --verify`).
            let real_cfg = load(&source, text, None, None, false)?;
            let engine = engine(kind)?;
            let opts = rtmdl_runtime::verify::VerifyOptions {
                tries: 3,
                rounds,
                seed,
                refit_pessimistic: false,
            };
            let mut outcomes = Vec::new();
            let result = rtmdl_runtime::verify::verify(
                &mut cfg.taskset,
                &opts,
                |ts, _| {
                    let (proxy, method) =
                        plan_options(ts, hard, seed, seeds, population, generations);
                    let outcome = rtmdl_plan::plan(ts, proxy, &method, &mut report)
                        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
                    let planned = rtmdl_runtime::verify::Planned {
                        assignments: outcome.assignments.clone(),
                        predicted: outcome.held_out.dmr.clone(),
                        feasible: outcome.feasible,
                    };
                    outcomes.push(outcome);
                    Ok::<_, anyhow::Error>(planned)
                },
                |assign, _| {
                    let mut run_cfg = real_cfg.clone();
                    run_cfg.taskset = real_cfg.taskset.with_assignments(assign);
                    let opts = rtmdl_runtime::RunOptions {
                        duration: length,
                        realtime: rt,
                        stop: Some(stopped.clone()),
                        ..Default::default()
                    };
                    let real = rtmdl_runtime::run_config(
                        &run_cfg,
                        PolicyKind::Rtmdl,
                        VariantChoice::Plan,
                        engine.clone(),
                        1,
                        &opts,
                        seed,
                    )?;
                    if stopped.load(Ordering::SeqCst) {
                        anyhow::bail!("interrupted");
                    }
                    Ok(real)
                },
                |_| {},
            )?;
            let keep = result.chosen.unwrap_or(outcomes.len() - 1);
            let mut value = plan_json(&cfg.taskset, &outcomes[keep], config_path);
            value["verified"] = result.chosen.is_some().into();
            value["rounds"] = rounds.into();
            value["tries"] = result
                .tries
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "verified": t.verified,
                        "accuracy_loss": t.accuracy_loss,
                        "checks": t.checks.iter().map(|c| serde_json::json!({
                            "name": c.name,
                            "predicted": c.predicted,
                            "measured": c.measured,
                            "ci_low": c.rounds.ci_low,
                            "ci_high": c.rounds.ci_high,
                            "zeta": c.zeta,
                            "error": c.error,
                            "over": c.over(),
                        })).collect::<Vec<_>>(),
                        "interference": t.interference,
                        "refits": t.refits,
                    })
                })
                .collect::<Vec<_>>()
                .into();
            json(&value)
        })
    };
    match interruptible(py, &stop, work, |_| Ok(()))? {
        (result, None) => result,
        (_, Some(e)) => Err(e),
    }
}

/// `rtmdl inspect MODEL --json -` on one engine kind (`auto`: every engine
/// this machine has), with `config`: the TOML of a config that runs the
/// model as it is (None when no engine ran it).
#[pyfunction]
#[pyo3(signature = (model, engine_name, runs))]
fn inspect(py: Python<'_>, model: PathBuf, engine_name: &str, runs: usize) -> PyResult<String> {
    let kind = engine_kind(engine_name)?;
    py.detach(move || {
        guarded(|| {
            if !model.exists() {
                anyhow::bail!(rtmdl_engine::EngineError::ModelNotFound {
                    path: model.clone()
                });
            }
            let mut info = rtmdl_engine::inspect::declared(&model)?;
            let runs_with = rtmdl_runtime::starter::try_engines(&mut info, kind, runs)?;
            let mut value = serde_json::to_value(&info)?;
            // The config `rtmdl inspect` prints: one that runs as it is.
            value["config"] = if info.engines.iter().any(|e| e.latency_ms.is_some()) {
                rtmdl_runtime::starter::config(&info, runs_with.as_deref())?.into()
            } else {
                serde_json::Value::Null
            };
            json(&value)
        })
    })
}

/// `rtmdl profile CONFIG`: the profile JSON (written to `out` too, when
/// given). `progress(done, total, what)` is called as it goes.
#[pyfunction]
#[pyo3(signature = (source, text, engine_name, runs, threads, calibrate, rt, out=None, progress=None))]
#[allow(clippy::too_many_arguments)]
fn profile(
    py: Python<'_>,
    source: &str,
    text: bool,
    engine_name: &str,
    runs: usize,
    threads: usize,
    calibrate: &str,
    rt: bool,
    out: Option<PathBuf>,
    progress: Option<Py<PyAny>>,
) -> PyResult<String> {
    let kind = engine_kind(engine_name)?;
    let calibrate =
        parse_duration(calibrate).map_err(|e| PyValueError::new_err(format!("calibrate: {e}")))?;
    let source = source.to_string();
    py.detach(move || {
        guarded(|| {
            let cfg = load(&source, text, None, None, false)?;
            let opts = rtmdl_runtime::profile::ProfileOptions {
                runs: runs.max(1),
                warmup: (runs / 10).clamp(1, 20),
                lanes: cfg.taskset.platform.gpu_lanes.max(1),
                threads: threads.max(1),
                seed: 1,
                calibrate,
                realtime: rt,
            };
            let mut report = |done: u64, total: u64, what: &str| {
                if let Some(cb) = &progress {
                    Python::attach(|py| {
                        if let Err(e) = cb.call1(py, (done, total, what)) {
                            e.print(py);
                        }
                    });
                }
            };
            let prof = rtmdl_runtime::profile::profile(&cfg, engine(kind)?, &opts, &mut report)?;
            let text = serde_json::to_string_pretty(&prof)? + "\n";
            if let Some(out) = &out {
                std::fs::write(out, &text)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
            }
            Ok(text)
        })
    })
}

/// `rtmdl run CONFIG --json -`: the task set for real. The GIL is released
/// while it runs; every 50 ms the calling thread takes it back to hand
/// delivered results to `on_result` (one dict per job, the fields of
/// `run --results`) and to look for Ctrl-C, which stops the releases as
/// `rtmdl run` stops them: the report of what ran is still returned.
#[pyfunction]
#[pyo3(signature = (source, text, plan, profile, policy_name, variant_choice, length, engine_name, threads, rt, probe, why, seed, on_result=None))]
#[allow(clippy::too_many_arguments)]
fn run(
    py: Python<'_>,
    source: &str,
    text: bool,
    plan: Option<PathBuf>,
    profile: Option<PathBuf>,
    policy_name: &str,
    variant_choice: &str,
    length: Option<&str>,
    engine_name: &str,
    threads: usize,
    rt: bool,
    probe: bool,
    why: bool,
    seed: u64,
    on_result: Option<Py<PyAny>>,
) -> PyResult<String> {
    let (policy, choice) = set_choice(policy_name, variant_choice, plan.is_some())?;
    let length = length.map(|d| duration(d, "duration")).transpose()?;
    let kind = engine_kind(engine_name)?;
    let source = source.to_string();
    let stop = Arc::new(AtomicBool::new(false));
    // Load here (the caller's errors are the caller's), then run on a
    // thread of its own, so this one can watch for Ctrl-C.
    let (cfg, predict, engine) = py.detach(|| {
        guarded(|| {
            let cfg = load(&source, text, plan.as_deref(), None, profile.is_none())?;
            let predict = match &profile {
                Some(p) => Some(Arc::new(
                    load(&source, text, plan.as_deref(), Some(p), true)?.taskset,
                )),
                None => None,
            };
            Ok((cfg, predict, engine(kind)?))
        })
    })?;
    let mut lines = None;
    let sink = on_result.as_ref().map(|_| {
        let (sink, rx) = rtmdl_runtime::results::channel(&cfg.taskset);
        lines = Some(rx);
        sink
    });
    let deliver = |py: Python<'_>| -> PyResult<()> {
        if let (Some(rx), Some(cb)) = (&lines, &on_result) {
            for line in rx.try_iter() {
                let text =
                    serde_json::to_string(&line).map_err(|e| RunError::new_err(e.to_string()))?;
                let value = py.import("json")?.call_method1("loads", (text,))?;
                cb.call1(py, (value,))?;
            }
        }
        Ok(())
    };
    let opts = rtmdl_runtime::RunOptions {
        duration: length.or(cfg.duration).unwrap_or(10_000_000_000),
        realtime: rt,
        probe: probe.then(Default::default),
        why,
        predict,
        stop: Some(stop.clone()),
        results: sink,
        ..Default::default()
    };
    let work = move || {
        guarded(|| {
            let real =
                rtmdl_runtime::run_config(&cfg, policy, choice, engine, threads, &opts, seed)?;
            json(&real.report)
        })
    };
    match interruptible(py, &stop, work, deliver)? {
        // Ctrl-C: the report of what ran, as `rtmdl run` writes it.
        (result, None) => result,
        (result, Some(e)) if e.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) => {
            result
        }
        (_, Some(e)) => Err(e),
    }
}

/// Runs `work` on a thread of its own, releasing the GIL, while this
/// thread wakes every 50 ms to look for Ctrl-C and to call `poll` (which
/// hands results to a callback). Ctrl-C, or an error from `poll`, sets
/// `stop`, which the work watches and ends on; `poll` runs once more after
/// a work that was not stopped, for what it left. Returns the work's
/// result and what stopped it, if anything did (Ctrl-C's
/// `KeyboardInterrupt`, or `poll`'s error).
fn interruptible<T: Send + 'static>(
    py: Python<'_>,
    stop: &AtomicBool,
    work: impl FnOnce() -> PyResult<T> + Send + 'static,
    mut poll: impl FnMut(Python<'_>) -> PyResult<()>,
) -> PyResult<(PyResult<T>, Option<PyErr>)> {
    let (tx, rx) = flume::bounded::<PyResult<T>>(1);
    let worker = std::thread::Builder::new()
        .name("rtmdl-python".into())
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(|e| RunError::new_err(format!("cannot start a thread: {e}")))?;
    let mut stopped_by = None;
    let result = loop {
        match py.detach(|| rx.recv_timeout(Duration::from_millis(50))) {
            Ok(r) => break r,
            Err(flume::RecvTimeoutError::Disconnected) => {
                break Err(RunError::new_err(
                    "internal error (a bug): the work's thread ended without a result",
                ));
            }
            Err(flume::RecvTimeoutError::Timeout) => {}
        }
        if stopped_by.is_none()
            && let Err(e) = py.check_signals().and_then(|()| poll(py))
        {
            stop.store(true, Ordering::SeqCst);
            stopped_by = Some(e);
        }
    };
    let _ = py.detach(|| worker.join());
    if stopped_by.is_none() {
        stopped_by = poll(py).err();
    }
    Ok((result, stopped_by))
}

#[pymodule]
fn _rtmdl(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("RtmdlError", py.get_type::<RtmdlError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("ModelError", py.get_type::<ModelError>())?;
    m.add("PlanInfeasible", py.get_type::<PlanInfeasible>())?;
    m.add("RunError", py.get_type::<RunError>())?;
    m.add_function(wrap_pyfunction!(load_config, m)?)?;
    m.add_function(wrap_pyfunction!(json_to_toml, m)?)?;
    m.add_function(wrap_pyfunction!(simulate, m)?)?;
    m.add_function(wrap_pyfunction!(compare, m)?)?;
    m.add_function(wrap_pyfunction!(analyze, m)?)?;
    m.add_function(wrap_pyfunction!(plan, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(profile, m)?)?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add(
        "POLICIES",
        PolicyKind::ALL.iter().map(|p| p.name()).collect::<Vec<_>>(),
    )?;
    Ok(())
}
