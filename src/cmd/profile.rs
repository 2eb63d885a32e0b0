//! `rtmdl profile`: measure every variant's sub-tasks on this machine.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use rtmdl_core::profile::Profile;
use rtmdl_engine::{Engine, EngineKind};

use super::common::{engine, engine_parser, load_config, progress_bar, write_json};

#[derive(clap::Args)]
pub struct Args {
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
    /// Where to write the profile (JSON).
    #[arg(long, short, default_value = "profile.json")]
    out: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let cfg = load_config(&a.config, None, None)?;
    let lanes = a.lanes.unwrap_or(cfg.taskset.platform.gpu_lanes);
    let prof = measure(
        &cfg,
        engine(a.engine)?,
        a.runs,
        lanes,
        a.threads,
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
    write_json(&a.out, &prof)?;
    println!("profile written to {}", a.out.display());
    Ok(())
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
    label: &str,
) -> Result<Profile> {
    let opts = rtmdl_runtime::profile::ProfileOptions {
        runs: runs.max(1),
        warmup: (runs / 10).clamp(1, 20),
        lanes: lanes.max(1),
        threads,
        seed: 1,
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
