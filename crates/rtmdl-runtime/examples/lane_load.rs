//! How long building the GPU lanes' bodies takes, and how much memory they
//! hold, for a config run with K lanes: every lane builds the body of every
//! inference stage on its own thread, as `executor::run` does before the
//! first release.
//!
//!     cargo run --release -p rtmdl-runtime --example lane_load -- examples/driving.toml 4
//!
//! Prints one JSON line: lanes, wall and CPU milliseconds of the build, and
//! resident memory (VmRSS, KiB) before and after (the bodies still alive).
//! Run one process per measurement: RSS is per process.

use std::sync::Arc;
use std::time::Instant;

use rtmdl_core::{Resource, VariantChoice};
use rtmdl_engine::TractEngine;
use rtmdl_runtime::Bodies;
use rtmdl_runtime::bodies::ConfigBodies;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "examples/driving.toml".into());
    let lanes: usize = args.next().as_deref().unwrap_or("1").parse()?;
    let mut cfg = rtmdl_config::load(path.as_ref())?;
    cfg.taskset.platform.gpu_lanes = lanes;
    cfg.taskset.platform.gpu_slowdown = vec![1.0; lanes];
    let ts = cfg.taskset.clone();
    let assign = ts.assignments(VariantChoice::Original);
    let gpu_stages: Vec<(usize, usize)> = ts
        .tasks
        .iter()
        .enumerate()
        .flat_map(|(t, task)| {
            let stages = &ts.models[task.model].stages;
            (0..stages.len())
                .filter(move |&s| stages[s].on == Resource::Gpu)
                .map(move |s| (t, s))
        })
        .collect();

    let bodies = Arc::new(ConfigBodies::new(
        cfg,
        assign,
        Arc::new(TractEngine::new()),
        1,
        0,
    )?);
    let rss_before = rss_kib();
    let cpu_before = cpu_ms();
    let t0 = Instant::now();
    let handles: Vec<_> = (0..lanes)
        .map(|_| {
            let bodies = bodies.clone();
            let stages = gpu_stages.clone();
            std::thread::spawn(move || {
                stages
                    .iter()
                    .map(|&(t, s)| bodies.work(t, s).map_err(|e| e.to_string()))
                    .collect::<Result<Vec<_>, _>>()
            })
        })
        .collect();
    let mut works = Vec::new();
    for h in handles {
        works.push(h.join().map_err(|_| "a lane panicked")??);
    }
    let wall = t0.elapsed().as_secs_f64() * 1e3;
    let cpu = cpu_ms() - cpu_before;
    let rss_after = rss_kib();
    let line = serde_json::json!({
        "config": path,
        "lanes": lanes,
        "bodies": works.iter().map(Vec::len).sum::<usize>(),
        "wall_ms": wall,
        "cpu_ms": cpu,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "rss_delta_kib": rss_after.saturating_sub(rss_before),
    });
    println!("{line}");
    drop(works);
    Ok(())
}

/// VmRSS of this process, in KiB (0 where /proc is not there).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU time of this process (all threads), in milliseconds.
fn cpu_ms() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    ms(u.ru_utime) + ms(u.ru_stime)
}
