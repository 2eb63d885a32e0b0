//! What several commands share: loading a config with its plan and profile,
//! the engine, JSON output, progress bars, the argument value parsers and
//! the argument groups of the commands that run a task set.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use rtmdl_core::units::{parse_duration, parse_size};
use rtmdl_core::{PolicyKind, Time, VariantChoice};
use rtmdl_engine::{Engine, EngineKind};

/// The error of a command that needs the training stack in a build without
/// it: how to get it.
#[cfg(not(feature = "train"))]
pub fn no_train(what: &str, args: &str) -> String {
    format!(
        "{what} needs the training stack (candle), which this rtmdl was built without: run `cargo run --release --features train -- {args}`, or the same step with the rtmdl-train binary (`cargo run --release -p rtmdl-train -- scale --help`)"
    )
}

pub use rtmdl_core::policy::BASELINES;

/// The task set a command runs, and how: policy, variants, plan.
#[derive(clap::Args)]
pub struct SetArgs {
    /// The task-set config (TOML).
    pub config: PathBuf,
    /// Scheduling policy.
    #[arg(long, default_value = "rtmdl", value_parser = policy_parser())]
    pub policy: PolicyKind,
    /// Which variants to run.
    #[arg(long, default_value = "plan", value_parser = variants_parser())]
    pub variants: VariantChoice,
    /// A plan file written by `rtmdl plan` (implies --variants plan).
    #[arg(long)]
    pub plan: Option<PathBuf>,
}

impl SetArgs {
    /// The variants to run: the plan's when a plan file is given.
    pub fn choice(&self) -> VariantChoice {
        if self.plan.is_some() {
            VariantChoice::Plan
        } else {
            self.variants
        }
    }
}

/// Online variant switching (`[adapt]` in the config says how).
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct AdaptArgs {
    /// Switch variants online: a task whose recent jobs miss more than its
    /// ζ moves to a faster variant of its model and back when its slack
    /// returns (the config's `[adapt]` section, or its defaults). The
    /// report gets a timeline of miss rate, variant and accuracy per task.
    #[arg(long)]
    pub adapt: bool,
    /// Record the timeline (miss rate and variant per task, in the
    /// `[adapt] timeline` bins) without switching too: to compare a run
    /// with `--adapt` against one without.
    #[arg(long)]
    pub timeline: bool,
}

impl AdaptArgs {
    /// Turn switching on in `cfg`'s task set when asked.
    pub fn apply(self, cfg: &mut rtmdl_config::Config) {
        if self.adapt {
            cfg.taskset.adapt = Some(cfg.adapt);
        }
    }

    /// The timeline's bins, when one is wanted.
    pub fn timeline(self, cfg: &rtmdl_config::Config) -> Option<rtmdl_core::Time> {
        (self.adapt || self.timeline).then_some(cfg.adapt.bin)
    }
}

/// `--check`: the exit code carries the verdict, the same way in every
/// command that reports one (run, simulate, compare, analyze, plan).
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct CheckArgs {
    /// Exit with status 1 when a deadline goal fails: a task above its ζ
    /// (failed jobs count as not on time) or over its (m,k)-firm bound;
    /// for `analyze`, a bound past its deadline. The report is printed and
    /// written first. Without it, a completed command exits 0.
    #[arg(long)]
    pub check: bool,
}

impl CheckArgs {
    /// Fail with the broken tolerances of `report` when `--check` is on.
    pub fn report(self, report: &rtmdl_core::RunReport) -> Result<()> {
        self.verdict(&report.tolerance_failures())
    }

    /// Fail with `broken` (one line per broken goal) when `--check` is on.
    pub fn verdict(self, broken: &[String]) -> Result<()> {
        if self.check && !broken.is_empty() {
            anyhow::bail!("check failed: {}", broken.join("; "));
        }
        Ok(())
    }
}

/// How a real run executes its sub-tasks.
#[derive(clap::Args)]
pub struct RealArgs {
    /// Inference engine.
    #[arg(long, default_value = "auto", value_parser = engine_parser())]
    pub engine: EngineKind,
    /// Intra-op threads per engine session.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Fail a job whose sub-task runs longer than this (e.g. "500ms").
    #[arg(long, value_parser = duration_arg)]
    pub watchdog: Option<Time>,
    /// The interference probe beside every real run: a thread per core at
    /// the top real-time priority wakes every 6 ms and records how late it
    /// woke; steal and interrupt time and each runtime thread's run-queue
    /// delay are read around the run. Its line ("interference:") flags a
    /// run the machine disturbed and says what the probe cost.
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = on_off(), action = clap::ArgAction::Set)]
    pub probe: bool,
    /// A probe wake-up at least this late counts as a stall (e.g. "1ms").
    #[arg(long, value_name = "DURATION", default_value = "1ms", value_parser = duration_arg)]
    pub stall: Time,
}

impl RealArgs {
    /// The probe's options (`None`: --probe off).
    pub fn probe(&self) -> Option<rtmdl_runtime::probe::ProbeOptions> {
        self.probe.then(|| rtmdl_runtime::probe::ProbeOptions {
            stall: self.stall,
            ..Default::default()
        })
    }
}

fn policy_help(p: PolicyKind) -> &'static str {
    match p {
        PolicyKind::Rtmdl => "RT-mDL: plan priorities, split CPU/GPU queues, GPU packing",
        PolicyKind::Dm => "deadline-monotonic, each job a black box, one GPU sub-task at a time",
        PolicyKind::Um => "utilisation-monotonic, black box, one GPU sub-task at a time",
        PolicyKind::Fifo => "one thread per model, first come first served",
        PolicyKind::Edf => "earliest deadline first, split queues, GPU packing",
        PolicyKind::DmSplit => {
            "deadline-monotonic priorities with rtmdl's split queues and GPU packing"
        }
        PolicyKind::UmSplit => {
            "utilisation-monotonic priorities with rtmdl's split queues and GPU packing"
        }
        PolicyKind::DmSplitSerial => {
            "deadline-monotonic, split queues, one GPU sub-task at a time (an ablation step)"
        }
    }
}

/// `--policy`: the names `PolicyKind` parses, each with its meaning in `--help`.
pub fn policy_parser() -> impl TypedValueParser<Value = PolicyKind> {
    PossibleValuesParser::new(
        PolicyKind::ALL.map(|p| PossibleValue::new(p.name()).help(policy_help(p))),
    )
    .try_map(|s| s.parse::<PolicyKind>())
}

/// `--variants`: the names `VariantChoice` parses, with their meaning.
pub fn variants_parser() -> impl TypedValueParser<Value = VariantChoice> {
    let value = |v: VariantChoice| {
        let (name, help) = match v {
            VariantChoice::Original => (
                "original",
                "the most accurate variant of every model (no compression)",
            ),
            VariantChoice::Compressed => ("compressed", "the fastest variant of every model"),
            VariantChoice::Plan => (
                "plan",
                "variants and priorities from the plan (the config's tasks, or --plan)",
            ),
        };
        PossibleValue::new(name).help(help)
    };
    PossibleValuesParser::new(
        [
            VariantChoice::Original,
            VariantChoice::Compressed,
            VariantChoice::Plan,
        ]
        .map(value),
    )
    .try_map(|s| s.parse::<VariantChoice>())
}

/// `--engine`: the names `EngineKind` parses, with what each one is.
pub fn engine_parser() -> impl TypedValueParser<Value = EngineKind> {
    let help = |k: EngineKind| match k {
        EngineKind::Auto => {
            "the CUDA engine if built and a GPU is usable, else ort if found, else tract"
        }
        EngineKind::Tract => "tract, pure Rust, always built (the same everywhere)",
        EngineKind::Ort => "onnxruntime, loaded at run time",
        EngineKind::Cuda => "tract-cuda on the GPU (build with --features cuda)",
    };
    PossibleValuesParser::new(
        [
            EngineKind::Auto,
            EngineKind::Tract,
            EngineKind::Ort,
            EngineKind::Cuda,
        ]
        .map(|k| {
            let v = PossibleValue::new(k.as_str()).help(help(k));
            match k {
                EngineKind::Ort => v.alias("onnxruntime"),
                EngineKind::Cuda => v.alias("gpu"),
                _ => v,
            }
        }),
    )
    .try_map(|s| s.parse::<EngineKind>())
}

/// `--rt on|off`: whether a real run asks for SCHED_FIFO, CPU affinity and
/// mlockall. One spelling for `run`, `stress` and `demo`; each writes its
/// default (and why) in its help.
pub fn on_off() -> impl TypedValueParser<Value = bool> {
    PossibleValuesParser::new(["on", "off"]).map(|s| s == "on")
}

/// A duration such as "500ms" or "1min", above zero, in nanoseconds.
pub fn duration_arg(s: &str) -> Result<Time, String> {
    let d = parse_duration(s)?;
    if d == 0 {
        return Err("the duration must be above 0".into());
    }
    Ok(d)
}

/// A size such as "512KiB" or "5 MiB", in bytes.
pub fn size_arg(s: &str) -> Result<u64, String> {
    parse_size(s)
}

/// A config with its plan and profile: [`rtmdl_runtime::load::config`].
pub fn load_config(
    config: &Path,
    plan: Option<&Path>,
    profile: Option<&Path>,
) -> Result<rtmdl_config::Config> {
    rtmdl_runtime::load::config(config, plan, profile)
}

/// [`load_config`] without the check that every stage has a time:
/// [`rtmdl_runtime::load::config_untimed`].
pub fn load_config_untimed(
    config: &Path,
    plan: Option<&Path>,
    profile: Option<&Path>,
) -> Result<rtmdl_config::Config> {
    rtmdl_runtime::load::config_untimed(config, plan, profile)
}

/// The engine of `kind`, after one line on stderr saying which and why.
pub fn engine(kind: EngineKind) -> Result<Arc<dyn Engine>> {
    let (engine, note) = rtmdl_engine::select(kind)?;
    eprintln!("engine: {note}");
    let engine: Arc<dyn Engine> = Arc::from(engine);
    // `auto` is per model: one that the chosen engine cannot load goes to
    // the next engine this machine has (a line says so).
    Ok(match kind {
        EngineKind::Auto => Arc::new(rtmdl_engine::Fallback::after(engine)),
        _ => engine,
    })
}

/// The note that GPU lanes run on the CPU, unless `engine` is a GPU engine.
pub fn gpu_note(engine: &dyn Engine, gpu_lanes: usize) -> Option<String> {
    (!engine.name().contains("cuda")).then(|| {
        format!(
            "no GPU engine in use: the {gpu_lanes} GPU lane(s) run the CPU engine on their own threads"
        )
    })
}

/// A flag raised by Ctrl-C (SIGINT) and SIGTERM: a real run stops its
/// releases and still writes its report.
pub fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())
        .context("cannot install the Ctrl-C handler")?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())
        .context("cannot install the SIGTERM handler")?;
    Ok(stop)
}

/// A progress bar of `len` steps (0: set later) after `label` (indicatif
/// template text, e.g. `"{spinner} planning"`), with elapsed time and ETA.
pub fn progress_bar(len: u64, label: &str) -> indicatif::ProgressBar {
    let template =
        format!("{label} [{{bar:30}}] {{pos}}/{{len}} {{msg}} ({{elapsed}}, ETA {{eta}})");
    let b = indicatif::ProgressBar::new(len);
    b.set_style(
        indicatif::ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b
}

/// `value` as pretty JSON into `path` ("-": stdout).
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)? + "\n";
    if path == Path::new("-") {
        print!("{text}");
    } else {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Whether the report goes to stdout as JSON (so no table is printed).
pub fn json_to_stdout(json: Option<&Path>) -> bool {
    json == Some(Path::new("-"))
}
