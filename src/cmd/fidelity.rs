//! `rtmdl fidelity`: does the simulator predict the real runs?

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::common::{
    BASELINES, RealArgs, duration_arg, engine, load_config, on_off, progress_bar, write_json,
};
use super::profile::{Calibration, measure};

#[derive(clap::Args)]
pub struct Args {
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
    #[command(flatten)]
    real: RealArgs,
    /// SCHED_FIFO, CPU affinity and mlockall for the real runs (as `run`
    /// asks for by default; measured fidelity is far better with it).
    #[arg(long, value_name = "on|off", default_value = "off", value_parser = on_off(), action = clap::ArgAction::Set)]
    rt: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the sweep as JSON to this path ("-" for stdout).
    #[arg(long)]
    json: Option<PathBuf>,
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
