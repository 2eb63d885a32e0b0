//! `rtmdl compare`: every baseline and rtmdl, simulated side by side.

use std::path::PathBuf;

use anyhow::Result;
use rtmdl_core::{RunReport, SimOptions, Time, simulate};

use super::common::{BASELINES, CheckArgs, duration_arg, json_to_stdout, load_config, write_json};

#[derive(clap::Args)]
pub struct Args {
    /// The task-set config (TOML); `rtmdl explain` lists its fields.
    config: PathBuf,
    #[arg(long)]
    plan: Option<PathBuf>,
    /// Execution times measured by `rtmdl profile`.
    #[arg(long)]
    profile: Option<PathBuf>,
    #[arg(long, default_value = "60s", value_parser = duration_arg)]
    duration: Time,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write all reports as a JSON array to this path ("-" for stdout).
    #[arg(long)]
    json: Option<PathBuf>,
    // --check judges rtmdl+plan, the first row.
    #[command(flatten)]
    check: CheckArgs,
}

pub fn run(a: Args) -> Result<()> {
    let ts = load_config(&a.config, a.plan.as_deref(), a.profile.as_deref())?.taskset;
    let opts = SimOptions {
        duration: a.duration,
        seed: a.seed,
        // As `simulate` and `run`: a backlog still pending 1 s after the
        // last release is abandoned as missed.
        grace: Some(rtmdl_runtime::RunOptions::default().grace),
        ..Default::default()
    };
    let reports: Vec<(&str, RunReport)> = BASELINES
        .iter()
        .map(|&(label, p, v)| (label, simulate(&ts, p, v, opts)))
        .collect();
    if !json_to_stdout(a.json.as_deref()) {
        if !ts.has_plan() {
            println!(
                "note: the config carries no full plan (variant and priority on every task): rtmdl+plan runs the original variants with deadline-monotonic priorities; make one with `rtmdl plan`"
            );
        }
        print!("{}", table(&reports));
    }
    if let Some(j) = &a.json {
        let all: Vec<&RunReport> = reports.iter().map(|(_, r)| r).collect();
        write_json(j, &all)?;
    }
    a.check.report(&reports[0].1)
}

/// One line per policy: overall and worst-task miss rate, accuracy loss.
fn table(rows: &[(&str, RunReport)]) -> String {
    let mut s = format!(
        "{:<11}  {:>6}  {:>10}  {:>8}  {:>9}  {:>8}  {:>6}  {:>6}\n",
        "policy", "policy", "variants", "miss %", "worst %", "acc loss", "cpu %", "gpu %"
    );
    for (label, r) in rows {
        s += &format!(
            "{:<11}  {:>6}  {:>10}  {:>8.2}  {:>9.2}  {:>7.2}%  {:>6.0}  {:>6.0}{}\n",
            label,
            r.policy,
            r.variants,
            r.miss_rate * 100.0,
            r.worst_miss_rate * 100.0,
            r.accuracy_loss * 100.0,
            r.utilisation.cpu * 100.0,
            r.utilisation.gpu * 100.0,
            if r.meets_tolerances() {
                ""
            } else {
                "  (ζ exceeded)"
            }
        );
    }
    s
}
