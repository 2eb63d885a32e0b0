//! `rtmdl simulate`: one policy on a virtual clock.

use std::path::PathBuf;

use anyhow::Result;
use rtmdl_core::{SimOptions, Time, simulate, simulate_why};

use super::common::{
    AdaptArgs, CheckArgs, SetArgs, duration_arg, json_to_stdout, load_config, write_json,
};

// The command's help is the doc comment of `Command::Simulate`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    set: SetArgs,
    /// Execution times measured by `rtmdl profile` (replace the config's).
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Length of the release window, e.g. "60s" (default: the config's
    /// `[run] duration`, else 60 s: simulated time is cheap, and a longer
    /// window puts tighter error bars on a small miss rate than `run`'s
    /// 10 s of real time can). As in `run`, jobs still pending 1 s after
    /// the last release are abandoned and counted missed.
    #[arg(long, value_parser = duration_arg)]
    duration: Option<Time>,
    #[command(flatten)]
    adapt: AdaptArgs,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the report as JSON to this path ("-" for stdout).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Why each missed job missed (its own work, blocking, interference,
    /// backlog, idle), per task.
    #[arg(long)]
    why: bool,
    #[command(flatten)]
    check: CheckArgs,
}

pub fn run(a: Args) -> Result<()> {
    let set = &a.set;
    let mut cfg = load_config(&set.config, set.plan.as_deref(), a.profile.as_deref())?;
    a.adapt.apply(&mut cfg);
    let opts = SimOptions {
        duration: a.duration.or(cfg.duration).unwrap_or(60_000_000_000),
        timeline: a.adapt.timeline(&cfg),
        seed: a.seed,
        // As `run` does: jobs still pending 1 s after the last release are
        // abandoned as missed (a backlog is judged alike in both).
        grace: Some(rtmdl_runtime::RunOptions::default().grace),
    };
    let report = if a.why {
        simulate_why(&cfg.taskset, set.policy, set.choice(), opts)
    } else {
        simulate(&cfg.taskset, set.policy, set.choice(), opts)
    };
    if !json_to_stdout(a.json.as_deref()) {
        print!("{}", report.table());
        if let Some(t) = &report.timeline {
            print!("{}", t.switch_table());
        }
    }
    if let Some(j) = &a.json {
        write_json(j, &report)?;
    }
    a.check.report(&report)
}
