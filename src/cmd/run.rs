//! `rtmdl run`: the task set for real (threads, clock, engines).

use std::path::PathBuf;

use anyhow::{Context, Result};
use rtmdl_core::Time;

use super::common::{
    AdaptArgs, CheckArgs, RealArgs, SetArgs, duration_arg, engine, gpu_note, json_to_stdout,
    load_config, load_config_untimed, on_off, stop_flag, write_json,
};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    set: SetArgs,
    /// How long to release jobs (default: the config's `[run] duration`,
    /// else 10 s).
    #[arg(long, value_parser = duration_arg)]
    duration: Option<Time>,
    /// Execution times measured by `rtmdl profile`: the predicted columns
    /// simulate with them (the run executes what the config describes).
    #[arg(long)]
    profile: Option<PathBuf>,
    #[command(flatten)]
    adapt: AdaptArgs,
    #[command(flatten)]
    real: RealArgs,
    /// Ask for SCHED_FIFO, CPU affinity and mlockall: on by default, a run
    /// is meant to keep deadlines (what the kernel refuses is reported).
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = on_off(), action = clap::ArgAction::Set)]
    rt: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the report as JSON to this path ("-" for stdout).
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    check: CheckArgs,
    /// Write a Chrome trace-event JSON (open it in https://ui.perfetto.dev).
    #[arg(long)]
    trace: Option<PathBuf>,
    /// Why each missed job missed: its time from release to deadline split
    /// into its own work, blocking by less urgent tasks, interference from
    /// more urgent ones, its own backlog, machine stalls the probe saw and
    /// idle hand-offs; per task, next to the same split of the simulation.
    #[arg(long)]
    why: bool,
    /// Write every delivered job's result to this file, one JSON object per
    /// line: task, seq, variant, released_ms, finished_ms, response_ms,
    /// on_time, answer (the class it names), shape and (for outputs of at
    /// most 1024 elements) values of its first output tensor.
    #[arg(long, value_name = "FILE")]
    results: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    // The run executes what the config describes; the prediction beside it
    // needs every stage's time: the config's, or the profile's.
    let mut cfg = match &a.profile {
        Some(_) => load_config_untimed(&a.set.config, a.set.plan.as_deref(), None)?,
        None => load_config(&a.set.config, a.set.plan.as_deref(), None)?,
    };
    a.adapt.apply(&mut cfg);
    let predict = match &a.profile {
        Some(p) => {
            let mut m = load_config(&a.set.config, a.set.plan.as_deref(), Some(p))?;
            a.adapt.apply(&mut m);
            Some(std::sync::Arc::new(m.taskset))
        }
        None => None,
    };
    let engine = engine(a.real.engine)?;
    if let Some(note) = gpu_note(engine.as_ref(), cfg.taskset.platform.gpu_lanes) {
        eprintln!("note: {note}");
    }
    let results = match &a.results {
        Some(path) => Some(
            rtmdl_runtime::results::json_lines(path, &cfg.taskset)
                .with_context(|| format!("--results {}", path.display()))?,
        ),
        None => None,
    };
    // Ctrl-C stops releases; the report and trace are still written.
    let opts = rtmdl_runtime::RunOptions {
        duration: a.duration.or(cfg.duration).unwrap_or(10_000_000_000),
        timeline: a.adapt.timeline(&cfg),
        realtime: a.rt,
        trace: a.trace.is_some(),
        watchdog: a.real.watchdog,
        probe: a.real.probe(),
        why: a.why,
        predict,
        stop: Some(stop_flag()?),
        results: results.as_ref().map(|(sink, _)| sink.clone()),
        ..Default::default()
    };
    let real = rtmdl_runtime::run_config(
        &cfg,
        a.set.policy,
        a.set.choice(),
        engine,
        a.real.threads,
        &opts,
        a.seed,
    )?;
    let mut real = real;
    drop(opts);
    if let (Some((sink, writer)), Some(path)) = (results, &a.results) {
        drop(sink);
        let n = writer
            .join()
            .map_err(|_| anyhow::anyhow!("--results {}: the writer panicked", path.display()))?
            .with_context(|| format!("--results {}", path.display()))?;
        eprintln!("results: {n} jobs written to {}", path.display());
    }
    real.report.notes.insert(
        "prediction".into(),
        match &a.profile {
            Some(p) => format!("simulated with the times measured in {}", p.display()),
            None => "simulated with the config's times (give --profile PROFILE for measured ones)"
                .into(),
        },
    );
    if a.adapt.adapt {
        let p = &real.outcome.prepared;
        eprintln!(
            "adapt: prepared {} variants ({} bodies) before the first release, {} resident",
            p.variants,
            p.bodies,
            rtmdl_core::units::fmt_size(p.bytes)
        );
    }
    if !json_to_stdout(a.json.as_deref()) {
        print!("{}", real.report.table());
        if let Some(t) = &real.report.timeline {
            print!("{}", t.switch_table());
        }
    }
    if let Some(j) = &a.json {
        write_json(j, &real.report)?;
    }
    if let (Some(path), Some(t)) = (&a.trace, real.outcome.trace.as_ref()) {
        let value = t.to_chrome(&cfg.taskset, real.outcome.cpu_slots, real.outcome.gpu_lanes);
        write_json(path, &value)?;
        eprintln!(
            "trace: {} (open in https://ui.perfetto.dev)",
            path.display()
        );
    }
    warn_failed(&real.report);
    a.check.report(&real.report)
}

/// A task none of whose jobs was delivered because they failed is said on
/// stderr too: its model or function is broken, not late.
fn warn_failed(report: &rtmdl_core::RunReport) {
    for t in &report.tasks {
        if t.jobs > 0 && t.completed == 0 && t.failed > 0 {
            eprintln!(
                "warning: task {}: none of its {} jobs was delivered ({} failed); {}",
                t.name,
                t.jobs,
                t.failed,
                report
                    .notes
                    .get("failures")
                    .map_or("see the failures above", String::as_str)
            );
        }
    }
}
