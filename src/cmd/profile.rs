//! `rtmdl profile`: measure every variant's sub-tasks on this machine.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use rtmdl_core::profile::Profile;
use rtmdl_engine::{Engine, EngineKind};

use super::common::{engine, engine_parser, load_config_untimed, on_off, progress_bar, write_json};

#[derive(clap::Args)]
pub struct Args {
    /// The task-set config (TOML); `rtmdl explain` lists its fields.
    config: PathBuf,
    /// Measured runs per variant.
    #[arg(long, default_value_t = 50)]
    runs: usize,
    /// Measure slowdown for up to this many busy lanes (default: the platform's).
    #[arg(long)]
    lanes: Option<usize>,
    /// Inference engine.
    #[arg(long, default_value = "auto", value_parser = engine_parser())]
    engine: EngineKind,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Length of the short real run that measures the runtime's hand-offs,
    /// release lateness and in-run stage times ("0s" to skip).
    #[arg(long, default_value = "5s", value_parser = rtmdl_core::units::parse_duration)]
    calibrate: u64,
    /// Measure with real-time priorities, as the runs it is for (`run`,
    /// `plan --verify` and `fidelity` ask for them by default too; what the
    /// kernel refuses is reported).
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = on_off(), action = clap::ArgAction::Set)]
    rt: bool,
    /// Where to write the profile (JSON).
    #[arg(long, short, default_value = "profile.json")]
    out: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let cfg = load_config_untimed(&a.config, None, None)?;
    let lanes = a.lanes.unwrap_or(cfg.taskset.platform.gpu_lanes);
    let prof = measure(
        &cfg,
        engine(a.engine)?,
        a.runs,
        lanes,
        a.threads,
        Calibration {
            length: a.calibrate,
            realtime: a.rt,
        },
        "{spinner} profiling",
    )?;
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
    if let Some(m) = &prof.machine {
        let p50 = |p: &Option<rtmdl_core::ExecProfile>| {
            p.as_ref().map_or("-".into(), |p| {
                format!("{:.3}", p.quantile(0.5) as f64 / 1e6)
            })
        };
        let o = &m.overheads;
        println!(
            "machine: {} cores, lanes on the CPU: {}, contention {:?}; hand-offs p50 ms: release {}, start cpu {} gpu {}, back cpu {} gpu {}",
            m.cores,
            m.lanes_on_cpu,
            m.contention,
            p50(&o.release),
            p50(&o.dispatch[0]),
            p50(&o.dispatch[1]),
            p50(&o.back[0]),
            p50(&o.back[1])
        );
        if let Some(load) = m.calibration_load {
            println!(
                "calibration run at load {load:.1}: in-run / alone stage time (p50) per model and stage: {:?}",
                m.inflation
            );
        }
    }
    write_json(&a.out, &prof)?;
    println!("profile written to {}", a.out.display());
    Ok(())
}

/// The short real run at the end of a profile.
#[derive(Clone, Copy, Debug)]
pub struct Calibration {
    /// Its length (0: none).
    pub length: u64,
    /// With real-time priorities.
    pub realtime: bool,
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration {
            length: 5_000_000_000,
            realtime: false,
        }
    }
}

/// Profile `cfg` with `runs` measured runs per variant (a tenth of them,
/// 1 to 20, as warm-up) and the slowdown on up to `lanes` busy lanes, behind
/// a progress bar labelled `label`.
pub fn measure(
    cfg: &rtmdl_config::Config,
    engine: Arc<dyn Engine>,
    runs: usize,
    lanes: usize,
    threads: usize,
    calibration: Calibration,
    label: &str,
) -> Result<Profile> {
    let opts = rtmdl_runtime::profile::ProfileOptions {
        runs: runs.max(1),
        warmup: (runs / 10).clamp(1, 20),
        lanes: lanes.max(1),
        threads,
        seed: 1,
        calibrate: calibration.length,
        realtime: calibration.realtime,
    };
    let bar = progress_bar(0, label);
    let prof = rtmdl_runtime::profile::profile(cfg, engine, &opts, &mut |done, total, what| {
        bar.set_length(total);
        bar.set_position(done);
        bar.set_message(what.to_string());
    });
    bar.finish_and_clear();
    Ok(prof?)
}
