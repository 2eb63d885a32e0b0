//! `rtmdl fidelity`: does the simulator predict the real runs?

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::common::{
    BASELINES, RealArgs, duration_arg, engine, load_config, on_off, progress_bar, write_json,
};
use super::profile::{Calibration, measure};

#[derive(clap::Args)]
pub struct Args {
    /// The task-set config (TOML); `rtmdl explain` lists its fields.
    config: PathBuf,
    /// The profile the simulator uses (`rtmdl profile`); measured first
    /// when not given.
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Loads: every release rate multiplied by each (periods ÷ load).
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.8,1.0,1.2")]
    loads: Vec<f64>,
    /// Length of each real run and simulation.
    #[arg(long, default_value = "10s", value_parser = duration_arg)]
    duration: u64,
    /// The rows to measure, by label (default: rtmdl+plan and every
    /// baseline), e.g. `rtmdl+plan,DM-NMC,DM-split-NMC`.
    #[arg(long, value_delimiter = ',', value_parser = row_arg)]
    policies: Vec<String>,
    #[command(flatten)]
    real: RealArgs,
    /// SCHED_FIFO, CPU affinity and mlockall for the real runs: on by
    /// default, as for `run` (what the kernel refuses is reported).
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = on_off(), action = clap::ArgAction::Set)]
    rt: bool,
    /// Real runs per point, in interleaved rounds (every load and policy
    /// once per round, the order shuffled and rotated per round, seeded):
    /// the table shows the median over rounds with its 95 % bootstrap
    /// interval, and the goal is judged on the medians.
    #[arg(long, default_value_t = 3, value_parser = rounds_arg)]
    rounds: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the sweep as JSON to this path ("-" for stdout).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// `--policies`: a label of the comparison's rows.
fn row_arg(s: &str) -> Result<String, String> {
    match BASELINES.iter().find(|b| b.0.eq_ignore_ascii_case(s)) {
        Some(b) => Ok(b.0.to_string()),
        None => Err(format!(
            "no row {s:?}; the rows are {}",
            BASELINES.map(|b| b.0).join(", ")
        )),
    }
}

/// `--rounds`: a positive count.
pub fn rounds_arg(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("at least 1 round is needed (5 or more for an interval worth quoting)".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a whole number of rounds")),
    }
}

pub fn run(a: Args) -> Result<()> {
    if a.loads.is_empty() || a.loads.iter().any(|l| !(l.is_finite() && *l > 0.0)) {
        bail!("--loads: every load must be a positive number, e.g. 0.5,0.8,1.0,1.2");
    }
    let mut cfg = load_config(&a.config, None, a.profile.as_deref())?;
    let engine = engine(a.real.engine)?;
    if a.profile.is_none() {
        eprintln!("no --profile: measuring one first (as `rtmdl profile` would)");
        let lanes = cfg.taskset.platform.gpu_lanes;
        let prof = measure(
            &cfg,
            engine.clone(),
            50,
            lanes,
            a.real.threads,
            Calibration {
                realtime: a.rt,
                ..Calibration::default()
            },
            "{spinner} profiling",
        )?;
        prof.apply(&mut cfg.taskset)
            .map_err(|e| anyhow::anyhow!("{}: {e}", a.config.display()))?;
    }
    let rows = BASELINES
        .iter()
        .filter(|b| a.policies.is_empty() || a.policies.iter().any(|p| p == b.0))
        .map(|&(label, policy, variants)| rtmdl_runtime::fidelity::Row {
            label: label.to_string(),
            policy,
            variants,
        })
        .collect();
    let opts = rtmdl_runtime::fidelity::FidelityOptions {
        loads: a.loads,
        rows,
        duration: a.duration,
        seed: a.seed,
        realtime: a.rt,
        threads: a.real.threads,
        rounds: a.rounds,
        probe: a.real.probe(),
        why: true,
    };
    let bar = progress_bar(0, "{spinner} real runs");
    let f = rtmdl_runtime::fidelity::fidelity(&cfg, engine, &opts, &mut |done, total, what| {
        bar.set_length(total);
        bar.set_position(done);
        bar.set_message(what.to_string());
    });
    bar.finish_and_clear();
    let f = f?;
    if a.json.as_deref() != Some(Path::new("-")) {
        print!("{}", f.table());
    }
    if let Some(j) = a.json {
        write_json(&j, &f)?;
    }
    Ok(())
}
