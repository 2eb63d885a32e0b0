//! The `rtmdl` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use rtmdl_core::units::parse_duration;
use rtmdl_core::{PolicyKind, RunReport, SimOptions, TaskSet, VariantChoice, simulate};

mod analyze;
mod demo;
mod plots;
mod stress;

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

/// The task set a command runs, and how: policy, variants, plan.
#[derive(clap::Args)]
struct SetArgs {
    /// The task-set config (TOML).
    config: PathBuf,
    /// Scheduling policy.
    #[arg(long, value_enum, default_value = "rtmdl")]
    policy: PolicyArg,
    /// Which variants to run.
    #[arg(long, value_enum, default_value = "plan")]
    variants: VariantsArg,
    /// A plan file written by `rtmdl plan` (implies --variants plan).
    #[arg(long)]
    plan: Option<PathBuf>,
}

impl SetArgs {
    /// The variants to run: the plan's when a plan file is given.
    fn choice(&self) -> VariantChoice {
        if self.plan.is_some() {
            VariantChoice::Plan
        } else {
            self.variants.into()
        }
    }
}

/// How a real run executes its sub-tasks.
#[derive(clap::Args)]
struct RealArgs {
    /// Inference engine: auto (ort if found, else tract), tract, ort, cuda.
    #[arg(long, default_value = "auto")]
    engine: String,
    /// Intra-op threads per engine session.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Fail a job whose sub-task runs longer than this (e.g. "500ms").
    #[arg(long, value_parser = duration_arg)]
    watchdog: Option<u64>,
}

/// A flag raised by Ctrl-C (SIGINT) and SIGTERM: a real run stops its
/// releases and still writes its report.
fn stop_flag() -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())
        .context("cannot install the Ctrl-C handler")?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())
        .context("cannot install the SIGTERM handler")?;
    Ok(stop)
}

#[derive(Subcommand)]
enum Command {
    /// Bound every task's response time: a guarantee, not a prediction.
    Analyze(analyze::AnalyzeArgs),
    /// The driving demo end to end: data, models, variants, profile, plan,
    /// real runs of rtmdl and every baseline at a light and a heavy load,
    /// and a report (table, SVG plots, Chrome trace).
    ///
    /// Uses the trained models in assets/models (or trains them), scales
    /// them into width × depth variants within the storage budget, measures
    /// them on this machine, plans, then runs each policy for real. Steps
    /// done before are reused. The report lands in OUT/report.json,
    /// OUT/report.md and OUT/*.svg.
    Demo {
        /// Small data, few variants, 2-second runs (a smoke test, minutes).
        #[arg(long)]
        quick: bool,
        /// Length of each real run (default 20s, 2s with --quick).
        #[arg(long, value_parser = duration_arg)]
        duration: Option<u64>,
        /// Where everything goes.
        #[arg(long, default_value = "target/rtmdl-demo")]
        out: PathBuf,
        /// Inference engine: tract (pure Rust, the same everywhere), ort, cuda, auto.
        #[arg(long, default_value = "tract")]
        engine: String,
        /// Storage budget for all variants of all models (default "5 MiB").
        #[arg(long)]
        storage_budget: Option<String>,
        /// Intra-op threads per engine session.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Ask for SCHED_FIFO, CPU affinity and mlockall (off by default in
        /// the demo: on a busy 2-core machine a heavy-load run with real-time
        /// priorities was seen to crawl; see the README).
        #[arg(long)]
        rt: bool,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Scale a trained base model into a family of width × depth variants.
    ///
    /// Early layers are shared (channels ranked by importance, nested
    /// prefixes of one reordered weight set, stored once); the last block
    /// and the classifier are private to each variant and re-fitted on the
    /// training data with the shared layers frozen. Every variant's
    /// accuracy is measured on the validation data through the runtime's
    /// engine. Writes the variant ONNX files, the shared and private parts
    /// and a manifest (JSON) that configs can reference.
    Scale {
        /// The base model: an ONNX file of rtmdl's CNN family (rtmdl-train).
        base: PathBuf,
        /// Training data: a dataset folder written by rtmdl-scenes.
        #[arg(long)]
        train: PathBuf,
        /// Validation data (held out), same format.
        #[arg(long)]
        val: PathBuf,
        /// Width levels (fractions of the channels).
        #[arg(long, value_delimiter = ',', default_value = "1,0.75,0.5,0.25")]
        widths: Vec<f32>,
        /// Depth levels (residual blocks kept); default: every level.
        #[arg(long, value_delimiter = ',')]
        depths: Vec<usize>,
        /// Epochs of the private re-fit.
        #[arg(long)]
        epochs: Option<usize>,
        /// Keep only variants that fit this size (shared once + private).
        #[arg(long)]
        storage_budget: Option<String>,
        /// Model name in the manifest (default: the file stem).
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value = "tract")]
        engine: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, short, default_value = "variants")]
        out: PathBuf,
    },
    /// Simulate a task set on a virtual clock (seeded, deterministic).
    ///
    /// Execution times are drawn from the profiles in the config. Prints a
    /// table per task: jobs, misses, drops, miss rate against ζ, accuracy of
    /// the variant used, response-time percentiles.
    Simulate {
        #[command(flatten)]
        set: SetArgs,
        /// Execution times measured by `rtmdl profile` (replace the config's).
        #[arg(long)]
        profile: Option<PathBuf>,
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
        /// Execution times measured by `rtmdl profile`.
        #[arg(long)]
        profile: Option<PathBuf>,
        #[arg(long, default_value = "60s", value_parser = duration_arg)]
        duration: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write all reports as a JSON array to this path ("-" for stdout).
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Run the task set for real: real threads, real clock, real engines.
    ///
    /// CPU sub-tasks run registered functions on `cpu_workers` threads;
    /// inference sub-tasks run ONNX models on `gpu_lanes` lanes (on a
    /// machine without a GPU the lanes run the CPU engine on their own
    /// threads). Same table and JSON as `simulate`, plus the engine and
    /// whether real-time priorities were granted.
    Run {
        #[command(flatten)]
        set: SetArgs,
        #[arg(long, default_value = "10s", value_parser = duration_arg)]
        duration: u64,
        #[command(flatten)]
        real: RealArgs,
        /// Do not ask for SCHED_FIFO, CPU affinity or mlockall.
        #[arg(long)]
        no_rt: bool,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write a Chrome trace-event JSON (open it in https://ui.perfetto.dev).
        #[arg(long)]
        trace: Option<PathBuf>,
    },
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
    Stress {
        #[command(flatten)]
        set: SetArgs,
        /// Execution times measured by `rtmdl profile` (used to find the
        /// schedulable load for --overload).
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Release every task this many times as often (periods ÷ LOAD).
        #[arg(long, conflicts_with = "overload")]
        load: Option<f64>,
        /// Release the tasks below the most urgent one at this multiple of
        /// their highest schedulable rate (simulated).
        #[arg(long)]
        overload: Option<f64>,
        #[arg(long, default_value = "60s", value_parser = duration_arg)]
        duration: u64,
        /// Fraction of the run before memory counts as warmed up.
        #[arg(long, default_value_t = 0.1)]
        warmup: f64,
        /// How often to sample the resident memory.
        #[arg(long, default_value = "1s", value_parser = duration_arg)]
        sample: u64,
        #[command(flatten)]
        real: RealArgs,
        /// Ask for SCHED_FIFO, CPU affinity and mlockall.
        #[arg(long)]
        rt: bool,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write the whole result, memory samples included, as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Choose a variant and a priority for every task.
    ///
    /// Minimises the summed normalised accuracy loss subject to every task's
    /// predicted miss rate ≤ ζ (predicted by simulating the rtmdl policy on
    /// the profiles; for tasks with ζ = 0, and every task under --hard, its
    /// response-time bound ≤ deadline instead), the accuracy floors and the
    /// storage budget. Searches with NSGA-II, or exhaustively with --exact
    /// on small sets.
    Plan {
        config: PathBuf,
        /// Execution times measured by `rtmdl profile`.
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Exhaustive search (small sets only).
        #[arg(long)]
        exact: bool,
        /// Every task must meet every deadline, by its response-time bound
        /// (as `rtmdl analyze` computes it), not only tasks with ζ = 0.
        #[arg(long)]
        hard: bool,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Seeds per evaluation of a candidate plan.
        #[arg(long, default_value_t = 3)]
        seeds: u64,
        /// Simulated time per evaluation (default: 3 hyperperiods, at least
        /// 50 periods of the slowest task, at most 10 s). Shorter plans
        /// faster with noisier miss-rate predictions.
        #[arg(long, value_parser = duration_arg)]
        horizon: Option<u64>,
        /// NSGA-II population.
        #[arg(long, default_value_t = 48)]
        population: usize,
        /// NSGA-II generations.
        #[arg(long, default_value_t = 60)]
        generations: usize,
        /// Where to write the plan (TOML).
        #[arg(long, short, default_value = "plan.toml")]
        out: PathBuf,
    },
    /// Does the simulator predict the real runs? At each load, for rtmdl and
    /// every baseline, one real run and one simulation of the same config,
    /// profile, policy and seed; a table per task (miss rate, p50 and p99
    /// response, real next to simulated) and one summary line: the largest
    /// miss-rate gap and the range of p99 ratios (real / simulated).
    Fidelity {
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
        /// Ask for SCHED_FIFO, CPU affinity and mlockall.
        #[arg(long)]
        rt: bool,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write the sweep as JSON to this path ("-" for stdout).
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Measure every variant's sub-tasks on this machine.
    ///
    /// Runs each variant's chain in isolation (after warm-up) and the GPU
    /// stage on 2..K lanes at once for the slowdown factors; writes a
    /// profile that `simulate --profile` reads instead of the config's times.
    Profile {
        config: PathBuf,
        /// Measured runs per variant.
        #[arg(long, default_value_t = 50)]
        runs: usize,
        /// Measure slowdown for up to this many busy lanes (default: the platform's).
        #[arg(long)]
        lanes: Option<usize>,
        #[arg(long, default_value = "auto")]
        engine: String,
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Where to write the profile (JSON).
        #[arg(long, short, default_value = "profile.json")]
        out: PathBuf,
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
    // Die quietly when stdout is closed (`rtmdl ... | head`), like other CLIs.
    // SAFETY: resetting a signal disposition to its default at start-up.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(
    config: &Path,
    plan: Option<&Path>,
    profile: Option<&Path>,
) -> Result<rtmdl_config::Config> {
    let mut cfg = rtmdl_config::load(config)?;
    if let Some(p) = plan {
        rtmdl_config::apply_plan(&mut cfg.taskset, p)?;
    }
    if let Some(p) = profile {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        let prof: rtmdl_core::profile::Profile =
            serde_json::from_str(&text).with_context(|| {
                format!("{}: not a profile written by `rtmdl profile`", p.display())
            })?;
        prof.apply(&mut cfg.taskset)
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    }
    Ok(cfg)
}

fn load(config: &Path, plan: Option<&Path>, profile: Option<&Path>) -> Result<TaskSet> {
    Ok(load_config(config, plan, profile)?.taskset)
}

fn engine(name: &str) -> Result<std::sync::Arc<dyn rtmdl_engine::Engine>> {
    let kind: rtmdl_engine::EngineKind = name.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let (engine, note) = rtmdl_engine::select(kind)?;
    eprintln!("engine: {note}");
    Ok(std::sync::Arc::from(engine))
}

/// A progress bar of `len` steps drawn with an indicatif `template`.
fn progress_bar(len: u64, template: &str) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new(len);
    b.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b
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
        Command::Analyze(args) => analyze::run(args)?,
        Command::Demo {
            quick,
            duration,
            out,
            engine,
            storage_budget,
            threads,
            rt,
            seed,
        } => demo::demo(demo::DemoArgs {
            quick,
            duration,
            out,
            engine,
            no_rt: !rt,
            seed,
            storage_budget,
            threads,
        })?,
        Command::Scale {
            base,
            train,
            val,
            widths,
            depths,
            epochs,
            storage_budget,
            name,
            engine,
            seed,
            out,
        } => demo::scale_command(demo::ScaleArgs {
            base,
            train,
            val,
            widths,
            depths,
            epochs,
            storage_budget,
            name,
            engine,
            seed,
            out,
        })?,
        Command::Stress {
            set,
            profile,
            load,
            overload,
            duration,
            warmup,
            sample,
            real,
            rt,
            seed,
            json,
        } => stress::stress(stress::StressArgs {
            choice: set.choice(),
            policy: set.policy.into(),
            config: set.config,
            plan: set.plan,
            profile,
            load,
            overload,
            duration,
            warmup: warmup.clamp(0.0, 0.9),
            sample,
            engine: real.engine,
            threads: real.threads,
            rt,
            watchdog: real.watchdog,
            seed,
            json,
        })?,
        Command::Simulate {
            set,
            profile,
            duration,
            seed,
            json,
        } => {
            let ts = load(&set.config, set.plan.as_deref(), profile.as_deref())?;
            let opts = SimOptions { duration, seed };
            let report = simulate(&ts, set.policy.into(), set.choice(), opts);
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
            profile,
            duration,
            seed,
            json,
        } => {
            let ts = load(&config, plan.as_deref(), profile.as_deref())?;
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
        Command::Run {
            set,
            duration,
            real: real_args,
            no_rt,
            seed,
            json,
            trace,
        } => {
            let cfg = load_config(&set.config, set.plan.as_deref(), None)?;
            let choice = set.choice();
            let engine = engine(&real_args.engine)?;
            if !engine.name().contains("cuda") {
                eprintln!(
                    "note: no GPU engine in use: the {} GPU lane(s) run the CPU engine on their own threads",
                    cfg.taskset.platform.gpu_lanes
                );
            }
            // Ctrl-C stops releases; the report and trace are still written.
            let opts = rtmdl_runtime::RunOptions {
                duration,
                realtime: !no_rt,
                trace: trace.is_some(),
                watchdog: real_args.watchdog,
                stop: Some(stop_flag()?),
                ..Default::default()
            };
            let policy: PolicyKind = set.policy.into();
            let threads = real_args.threads;
            let real =
                rtmdl_runtime::run_config(&cfg, policy, choice, engine, threads, &opts, seed)?;
            if json.as_deref() != Some(Path::new("-")) {
                print!("{}", real.report.table());
            }
            if let Some(j) = json {
                write_json(&j, &real.report)?;
            }
            if let (Some(path), Some(t)) = (trace, real.outcome.trace.as_ref()) {
                let value =
                    t.to_chrome(&cfg.taskset, real.outcome.cpu_slots, real.outcome.gpu_lanes);
                write_json(&path, &value)?;
                eprintln!(
                    "trace: {} (open in https://ui.perfetto.dev)",
                    path.display()
                );
            }
        }
        Command::Plan {
            config,
            profile,
            exact,
            hard,
            seed,
            seeds,
            horizon,
            population,
            generations,
            out,
        } => {
            let ts = load(&config, None, profile.as_deref())?;
            let mut proxy = rtmdl_plan::ProxyOptions::default_for(&ts, 10_000_000_000);
            proxy.seed = seed;
            proxy.seeds = seeds.max(1);
            proxy.hard = hard;
            if let Some(h) = horizon {
                proxy.horizon = h;
            }
            let horizon = proxy.horizon;
            let method = if exact {
                rtmdl_plan::Method::Exact { limit: 5e6 }
            } else {
                rtmdl_plan::Method::Moea(rtmdl_plan::MoeaOptions {
                    population,
                    generations,
                    seed,
                    ..Default::default()
                })
            };
            let bar = progress_bar(0, "{spinner} planning [{bar:30}] {pos}/{len} {msg}");
            bar.set_message(if exact {
                "variant choices"
            } else {
                "generations"
            });
            let started = std::time::Instant::now();
            let outcome = rtmdl_plan::plan(&ts, proxy, &method, &mut |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            });
            bar.finish_and_clear();
            let outcome = outcome.map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
            println!(
                "{} in {:.2} s: {} candidates evaluated, {} simulations of {:.1} s × {} seeds",
                if exact { "exact search" } else { "NSGA-II" },
                started.elapsed().as_secs_f64(),
                outcome.evaluations,
                outcome.simulations,
                horizon as f64 / 1e9,
                seeds.max(1)
            );
            let w = ts
                .tasks
                .iter()
                .map(|t| t.name.len())
                .max()
                .unwrap_or(4)
                .max(4);
            println!(
                "{:<w$}  {:<10}  {:>4}  {:>8}  {:>6}  {:>7}",
                "task", "variant", "prio", "pred. miss %", "ζ %", "acc %"
            );
            for (t, a) in outcome.assignments.iter().enumerate() {
                let task = &ts.tasks[t];
                let v = &ts.model_of(t).variants[a.variant];
                println!(
                    "{:<w$}  {:<10}  {:>4}  {:>12.2}  {:>6.1}  {:>7.2}",
                    task.name,
                    v.name,
                    a.priority,
                    outcome.eval.dmr[t] * 100.0,
                    task.max_miss_rate * 100.0,
                    v.accuracy * 100.0
                );
            }
            println!(
                "accuracy loss {:.2} % (mean over tasks) · storage {}",
                ts.accuracy_loss(&outcome.assignments) * 100.0,
                rtmdl_core::units::fmt_size(outcome.eval.storage)
            );
            // One line against the baselines, same proxy horizon and seed.
            let mut planned = ts.clone();
            for (t, a) in outcome.assignments.iter().enumerate() {
                planned.tasks[t].variant = Some(a.variant);
                planned.tasks[t].priority = Some(a.priority);
            }
            let opts = SimOptions {
                duration: horizon,
                seed,
            };
            let line: Vec<String> = BASELINES[..4]
                .iter()
                .map(|&(label, p, v)| {
                    let r = simulate(&planned, p, v, opts);
                    format!(
                        "{label} miss {:.2} % loss {:.2} %",
                        r.miss_rate * 100.0,
                        r.accuracy_loss * 100.0
                    )
                })
                .collect();
            println!("vs baselines: {}", line.join(" · "));
            if !outcome.feasible {
                println!(
                    "no feasible plan: the closest plan is shown above and written to {}",
                    out.display()
                );
                for d in &outcome.diagnosis {
                    println!("  {d}");
                }
            }
            std::fs::write(
                &out,
                rtmdl_config::plan_text(&ts, &outcome.assignments, Some(&config)),
            )
            .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "plan written to {} (use it with --plan {})",
                out.display(),
                out.display()
            );
            if !outcome.feasible {
                bail!("no plan meets every constraint");
            }
        }
        Command::Fidelity {
            config,
            profile,
            loads,
            duration,
            real,
            rt,
            seed,
            json,
        } => {
            if loads.is_empty() || loads.iter().any(|l| !(l.is_finite() && *l > 0.0)) {
                bail!("--loads: every load must be a positive number, e.g. 0.5,0.8,1.0,1.2");
            }
            let mut cfg = load_config(&config, None, profile.as_deref())?;
            let engine = engine(&real.engine)?;
            if profile.is_none() {
                eprintln!("no --profile: measuring one first (as `rtmdl profile` would)");
                let prof = measure_profile(&cfg, engine.clone(), 50, None, real.threads)?;
                prof.apply(&mut cfg.taskset)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
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
                loads,
                rows,
                duration,
                seed,
                realtime: rt,
                threads: real.threads,
            };
            let bar = progress_bar(
                0,
                "{spinner} real runs [{bar:30}] {pos}/{len} {msg} (ETA {eta})",
            );
            let f =
                rtmdl_runtime::fidelity::fidelity(&cfg, engine, &opts, &mut |done, total, what| {
                    bar.set_length(total);
                    bar.set_position(done);
                    bar.set_message(what.to_string());
                });
            bar.finish_and_clear();
            let f = f?;
            if json.as_deref() != Some(Path::new("-")) {
                print!("{}", f.table());
            }
            if let Some(j) = json {
                write_json(&j, &f)?;
            }
        }
        Command::Profile {
            config,
            runs,
            lanes,
            engine: engine_name,
            threads,
            out,
        } => {
            let cfg = load_config(&config, None, None)?;
            let engine = engine(&engine_name)?;
            let prof = measure_profile(&cfg, engine, runs, lanes, threads)?;
            for m in &prof.models {
                for v in &m.variants {
                    let parts: Vec<String> = v
                        .stages
                        .iter()
                        .map(|s| format!("{} p50 {:.3} p99 {:.3} ms", s.name, s.p50_ms, s.p99_ms))
                        .collect();
                    println!("{}/{}: {}", m.name, v.name, parts.join(" · "));
                }
            }
            println!("gpu slowdown by busy lanes: {:?}", prof.gpu_slowdown);
            write_json(&out, &prof)?;
            println!("profile written to {}", out.display());
        }
    }
    Ok(())
}

/// Measure a config's profile with a progress bar.
fn measure_profile(
    cfg: &rtmdl_config::Config,
    engine: std::sync::Arc<dyn rtmdl_engine::Engine>,
    runs: usize,
    lanes: Option<usize>,
    threads: usize,
) -> Result<rtmdl_core::profile::Profile> {
    let opts = rtmdl_runtime::profile::ProfileOptions {
        runs: runs.max(1),
        warmup: (runs / 10).clamp(1, 20),
        lanes: lanes.unwrap_or(cfg.taskset.platform.gpu_lanes).max(1),
        threads,
        seed: 1,
    };
    let bar = progress_bar(
        0,
        "{spinner} profiling [{bar:30}] {pos}/{len} {msg} (ETA {eta})",
    );
    let prof = rtmdl_runtime::profile::profile(cfg, engine, &opts, &mut |done, total, what| {
        bar.set_length(total);
        bar.set_position(done);
        bar.set_message(what.to_string());
    });
    bar.finish_and_clear();
    Ok(prof?)
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
