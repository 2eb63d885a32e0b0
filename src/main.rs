//! The `rtmdl` command line: the entry point and the dispatch to one module
//! per command (`cmd::*`, `demo`).

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod cmd;
mod demo;

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

#[derive(Subcommand)]
enum Command {
    /// Bound every task's response time: a guarantee, not a prediction.
    Analyze(cmd::analyze::AnalyzeArgs),
    /// The driving demo end to end: data, models, variants, profile, plan,
    /// real runs of rtmdl and every baseline at a light and a heavy load,
    /// and a report (one HTML page with the verdict, tables and plots;
    /// JSON, Markdown, SVG, Chrome trace).
    ///
    /// Uses the trained models in assets/models and their committed variant
    /// families in assets/variants (re-fitted only with --refit or when a
    /// base model changed), measures them on this machine, plans, then runs
    /// each policy for real. Steps done before are reused. The report lands
    /// in OUT/report.json, OUT/report.md and OUT/*.svg.
    Demo(demo::DemoArgs),
    /// The config reference: every section and field, the inference
    /// stages' parameters, the CPU functions and the sources with their
    /// parameters and defaults (the same tables the code checks configs
    /// against; docs/reference.md is `--markdown`).
    Explain(cmd::explain::Args),
    /// Scale trained base models into families of width × depth variants.
    ///
    /// Early layers are shared (channels ranked by importance, nested
    /// prefixes of one reordered weight set, stored once); the last block
    /// and the classifier are private to each variant and re-fitted on the
    /// training data with the shared layers frozen. Every variant's
    /// accuracy is measured on the evaluation data through the runtime's
    /// engine. Writes the variant ONNX files, the shared and private parts
    /// and a manifest (JSON) per model that configs can reference. Needs
    /// the `train` feature (the same command is `rtmdl-train scale`).
    Scale(cmd::scale::Args),
    /// Simulate a task set on a virtual clock (seeded, deterministic).
    ///
    /// Execution times are drawn from the profiles in the config. Prints a
    /// table per task: jobs, misses, drops, miss rate against ζ, accuracy of
    /// the variant used, response-time percentiles.
    Simulate(cmd::simulate::Args),
    /// Simulate every baseline and rtmdl side by side.
    ///
    /// Rows: DM-NMC (dm + original), DM-MC (dm + compressed), UM-NMC (um +
    /// original), FIFO (original), EDF (original) and rtmdl with the plan
    /// (the config's variants and priorities, or --plan).
    Compare(cmd::compare::Args),
    /// Run the task set for real: real threads, real clock, real engines.
    ///
    /// CPU sub-tasks run registered functions on `cpu_workers` threads;
    /// inference sub-tasks run ONNX models on `gpu_lanes` lanes (on a
    /// machine without a GPU the lanes run the CPU engine on their own
    /// threads). Same table and JSON as `simulate`, plus the engine and
    /// whether real-time priorities were granted.
    Run(cmd::run::Args),
    /// A real run at a chosen load, watched: overload and soak tests.
    ///
    /// Runs the task set for real (like `run`) with every release rate
    /// multiplied by --load; or, with --overload F, keeps the most urgent
    /// task's rate and releases every other task F times as fast as the
    /// highest rate at which the simulator finds the set schedulable (no miss
    /// at all) for this policy and these variants. Prints the per-task table, whether every job is
    /// accounted for (released = completed + missed + dropped + failed),
    /// release lateness, the longest ready queues and the resident memory
    /// after warm-up, at the end and at its peak. E.g. an overload test:
    /// `rtmdl stress examples/driving.toml --overload 2 --duration 60s`;
    /// a soak test: `rtmdl stress examples/driving.toml --duration 10min`.
    Stress(cmd::stress::Args),
    /// Choose a variant and a priority for every task.
    ///
    /// Minimises the summed normalised accuracy loss subject to every task's
    /// predicted miss rate ≤ ζ (predicted by simulating the rtmdl policy on
    /// the profiles; for tasks with ζ = 0, and every task under --hard, its
    /// response-time bound ≤ deadline instead), the accuracy floors and the
    /// storage budget. Searches with NSGA-II, or exhaustively with --exact
    /// on small sets.
    Plan(cmd::plan::Args),
    /// Does the simulator predict the real runs? At each load, for rtmdl and
    /// every baseline, one real run and one simulation of the same config,
    /// profile, policy and seed; a table per task (miss rate, p50 and p99
    /// response, real next to simulated) and one summary line: the largest
    /// miss-rate gap and the range of p99 ratios (real / simulated).
    Fidelity(cmd::fidelity::Args),
    /// What an ONNX model declares and how each engine takes it.
    ///
    /// Inputs and outputs (names, element types, shapes with symbolic dims
    /// by name), opsets, producer and size; for each engine this machine
    /// has, whether it loads (the error if not) and one measured latency at
    /// the given or declared shapes; and a whole config that runs the model
    /// as it is (exit 1 when no engine runs it).
    Inspect(cmd::inspect::Args),
    /// Measure every variant's sub-tasks on this machine.
    ///
    /// Runs each variant's chain in isolation (after warm-up) and the GPU
    /// stage on 2..K lanes at once for the slowdown factors; writes a
    /// profile that `simulate --profile` reads instead of the config's times.
    Profile(cmd::profile::Args),
    /// Variants of any ONNX model for the planner to choose between.
    ///
    /// The same network at smaller square input sizes (where its height and
    /// width are symbolic) and, with --int8, an INT8 copy by onnxruntime's
    /// dynamic quantizer; each measured on the engine the runs will use,
    /// printed as variant blocks to paste into a config.
    Variants(cmd::variants::Args),
}

fn main() -> ExitCode {
    // Die quietly when stdout is closed (`rtmdl ... | head`), like other CLIs.
    // SAFETY: resetting a signal disposition to its default at start-up.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Analyze(a) => cmd::analyze::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Explain(a) => cmd::explain::run(a),
        Command::Scale(a) => cmd::scale::run(a),
        Command::Simulate(a) => cmd::simulate::run(a),
        Command::Compare(a) => cmd::compare::run(a),
        Command::Run(a) => cmd::run::run(a),
        Command::Stress(a) => cmd::stress::run(a),
        Command::Plan(a) => cmd::plan::run(a),
        Command::Profile(a) => cmd::profile::run(a),
        Command::Fidelity(a) => cmd::fidelity::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Variants(a) => cmd::variants::run(a),
    }
}
