//! The `rtmdl` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use rtmdl_core::units::parse_duration;
use rtmdl_core::{PolicyKind, RunReport, SimOptions, TaskSet, VariantChoice, simulate};

/// Run several periodic deep-learning tasks on one edge device and keep
/// their deadlines at the highest accuracy the device allows.
///
/// A config file (TOML) describes the platform (CPU workers, GPU lanes),
/// the models with their scaled variants, and the periodic tasks. See
/// `examples/` for complete files.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum PolicyArg {
    /// RT-mDL: plan priorities, split CPU/GPU queues, GPU packing.
    Rtmdl,
    /// Deadline-monotonic, each job a black box, one GPU sub-task at a time.
    Dm,
    /// Utilisation-monotonic, black box, one GPU sub-task at a time.
    Um,
    /// One thread per model, first come first served.
    Fifo,
    /// Earliest deadline first, split queues, GPU packing.
    Edf,
}

impl From<PolicyArg> for PolicyKind {
    fn from(p: PolicyArg) -> Self {
        match p {
            PolicyArg::Rtmdl => PolicyKind::Rtmdl,
            PolicyArg::Dm => PolicyKind::Dm,
            PolicyArg::Um => PolicyKind::Um,
            PolicyArg::Fifo => PolicyKind::Fifo,
            PolicyArg::Edf => PolicyKind::Edf,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum VariantsArg {
    /// The most accurate variant of every model (no compression).
    Original,
    /// The fastest variant of every model.
    Compressed,
    /// Variants and priorities from the plan (the config's tasks, or --plan).
    Plan,
}

impl From<VariantsArg> for VariantChoice {
    fn from(v: VariantsArg) -> Self {
        match v {
            VariantsArg::Original => VariantChoice::Original,
            VariantsArg::Compressed => VariantChoice::Compressed,
            VariantsArg::Plan => VariantChoice::Plan,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a task set on a virtual clock (seeded, deterministic).
    ///
    /// Execution times are drawn from the profiles in the config. Prints a
    /// table per task: jobs, misses, drops, miss rate against ζ, accuracy of
    /// the variant used, response-time percentiles.
    Simulate {
        /// The task-set config (TOML).
        config: PathBuf,
        #[arg(long, value_enum, default_value = "rtmdl")]
        policy: PolicyArg,
        /// Which variants to run.
        #[arg(long, value_enum, default_value = "plan")]
        variants: VariantsArg,
        /// A plan file written by `rtmdl plan` (implies --variants plan).
        #[arg(long)]
        plan: Option<PathBuf>,
        /// Length of the release window, e.g. "60s".
        #[arg(long, default_value = "60s", value_parser = duration_arg)]
        duration: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write the report as JSON to this path ("-" for stdout).
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Simulate every baseline and rtmdl side by side.
    ///
    /// Rows: DM-NMC (dm + original), DM-MC (dm + compressed), UM-NMC (um +
    /// original), FIFO (original), EDF (original) and rtmdl with the plan
    /// (the config's variants and priorities, or --plan).
    Compare {
        config: PathBuf,
        #[arg(long)]
        plan: Option<PathBuf>,
        #[arg(long, default_value = "60s", value_parser = duration_arg)]
        duration: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write all reports as a JSON array to this path ("-" for stdout).
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

fn duration_arg(s: &str) -> Result<u64, String> {
    let d = parse_duration(s)?;
    if d == 0 {
        return Err("the duration must be above 0".into());
    }
    Ok(d)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(config: &Path, plan: Option<&Path>) -> Result<TaskSet> {
    let mut cfg = rtmdl_config::load(config)?;
    if let Some(p) = plan {
        rtmdl_config::apply_plan(&mut cfg.taskset, p)?;
    }
    Ok(cfg.taskset)
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)? + "\n";
    if path == Path::new("-") {
        print!("{text}");
    } else {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The comparison rows: (label, policy, variants).
pub const BASELINES: [(&str, PolicyKind, VariantChoice); 6] = [
    ("rtmdl+plan", PolicyKind::Rtmdl, VariantChoice::Plan),
    ("DM-NMC", PolicyKind::Dm, VariantChoice::Original),
    ("DM-MC", PolicyKind::Dm, VariantChoice::Compressed),
    ("UM-NMC", PolicyKind::Um, VariantChoice::Original),
    ("FIFO", PolicyKind::Fifo, VariantChoice::Original),
    ("EDF", PolicyKind::Edf, VariantChoice::Original),
];

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Simulate {
            config,
            policy,
            variants,
            plan,
            duration,
            seed,
            json,
        } => {
            let ts = load(&config, plan.as_deref())?;
            let choice = if plan.is_some() {
                VariantChoice::Plan
            } else {
                variants.into()
            };
            let report = simulate(&ts, policy.into(), choice, SimOptions { duration, seed });
            if json.as_deref() != Some(Path::new("-")) {
                print!("{}", report.table());
            }
            if let Some(j) = json {
                write_json(&j, &report)?;
            }
        }
        Command::Compare {
            config,
            plan,
            duration,
            seed,
            json,
        } => {
            let ts = load(&config, plan.as_deref())?;
            if ts.tasks.is_empty() {
                bail!("no tasks");
            }
            let reports: Vec<(&str, RunReport)> = BASELINES
                .iter()
                .map(|&(label, p, v)| (label, simulate(&ts, p, v, SimOptions { duration, seed })))
                .collect();
            if json.as_deref() != Some(Path::new("-")) {
                if !ts.has_plan() {
                    println!(
                        "note: the config carries no full plan (variant and priority on every task): rtmdl+plan runs the original variants with deadline-monotonic priorities; make one with `rtmdl plan`"
                    );
                }
                print!("{}", compare_table(&reports));
            }
            if let Some(j) = json {
                let all: Vec<&RunReport> = reports.iter().map(|(_, r)| r).collect();
                write_json(&j, &all)?;
            }
        }
    }
    Ok(())
}

/// One line per policy: overall and worst-task miss rate, accuracy loss.
fn compare_table(rows: &[(&str, RunReport)]) -> String {
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
