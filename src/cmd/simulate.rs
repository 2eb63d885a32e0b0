//! `rtmdl simulate`: one policy on a virtual clock.

use std::path::PathBuf;

use anyhow::Result;
use rtmdl_core::{SimOptions, Time, simulate};

use super::common::{SetArgs, duration_arg, json_to_stdout, load_config, write_json};

// The command's help is the doc comment of `Command::Simulate`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    set: SetArgs,
    /// Execution times measured by `rtmdl profile` (replace the config's).
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Length of the release window, e.g. "60s".
    #[arg(long, default_value = "60s", value_parser = duration_arg)]
    duration: Time,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the report as JSON to this path ("-" for stdout).
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    let set = &a.set;
    let ts = load_config(&set.config, set.plan.as_deref(), a.profile.as_deref())?.taskset;
    let opts = SimOptions {
        duration: a.duration,
        seed: a.seed,
        ..Default::default()
    };
    let report = simulate(&ts, set.policy, set.choice(), opts);
    if !json_to_stdout(a.json.as_deref()) {
        print!("{}", report.table());
    }
    if let Some(j) = &a.json {
        write_json(j, &report)?;
    }
    Ok(())
}
