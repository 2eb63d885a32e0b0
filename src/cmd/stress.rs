//! `rtmdl stress`: a real run at a chosen load, watched from outside —
//! per-task misses, job accounting, release lateness, queue lengths and the
//! process's resident memory over time. Overload runs (`--overload 2`) and
//! long soak runs (`--duration 10min`) are this one command.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use rtmdl_core::report::Percentiles;
use rtmdl_core::{PolicyKind, RunReport, SimOptions, TaskSet, Time, VariantChoice, simulate};
use serde::Serialize;

use super::common::{
    AdaptArgs, RealArgs, SetArgs, duration_arg, engine, load_config, on_off, progress_bar,
    stop_flag, write_json,
};

#[derive(clap::Args)]
pub struct Args {
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
    duration: Time,
    /// Fraction of the run before memory counts as warmed up (0 to 0.9).
    #[arg(long, default_value_t = 0.1)]
    warmup: f64,
    /// How often to sample the resident memory.
    #[arg(long, default_value = "1s", value_parser = duration_arg)]
    sample: Time,
    #[command(flatten)]
    real: RealArgs,
    /// Ask for SCHED_FIFO, CPU affinity and mlockall: off by default, since
    /// an overloaded or saturated run at real-time priority can starve the
    /// rest of the machine until the kernel's RT throttling steps in.
    #[arg(long, value_name = "on|off", default_value = "off", value_parser = on_off(), action = clap::ArgAction::Set)]
    rt: bool,
    #[command(flatten)]
    adapt: AdaptArgs,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the whole result, memory samples included, as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The highest factor on the release rates of the tasks in `which` at which
/// the simulator predicts no miss at all for this policy and these
/// variants (bisection on a log scale).
pub fn schedulable_factor(
    ts: &TaskSet,
    which: &[usize],
    policy: PolicyKind,
    choice: VariantChoice,
    seed: u64,
) -> Result<f64> {
    let slowest = ts.tasks.iter().map(|t| t.period).max().unwrap_or(1);
    let clean = |f: f64| {
        let t = ts.scale_rates(f, Some(which));
        // 200 periods of the slowest task, at least 2 s of simulated time.
        let horizon = (slowest as f64 * 200.0).max(2e9) as Time;
        (0..3).all(|s| {
            simulate(
                &t,
                policy,
                choice,
                SimOptions {
                    duration: horizon,
                    seed: seed + s,
                    ..Default::default()
                },
            )
            .miss_rate
                == 0.0
        })
    };
    let (mut lo, mut hi) = (1.0 / 64.0, 1.0);
    if !clean(lo) {
        bail!("the set misses deadlines in simulation even at 1/64 of its load");
    }
    while clean(hi) {
        lo = hi;
        hi *= 2.0;
        if hi > 1e4 {
            bail!("the set never misses in simulation (are its execution times zero?)");
        }
    }
    for _ in 0..12 {
        let mid = (lo * hi).sqrt();
        if clean(mid) { lo = mid } else { hi = mid }
    }
    Ok(lo)
}

#[derive(Serialize)]
pub struct MemorySample {
    pub t_s: f64,
    pub rss_bytes: u64,
}

#[derive(Serialize)]
pub struct StressReport {
    pub config: String,
    /// Release-rate factor the run used (every task with --load, the tasks
    /// below the most urgent one with --overload).
    pub load: f64,
    /// The schedulable factor found by simulation, with `--overload`.
    pub schedulable_load: Option<f64>,
    pub requested_s: f64,
    /// Wall time from the start of the run to its report.
    pub wall_s: f64,
    pub report: RunReport,
    /// released = completed + missed + dropped + failed, for every task.
    pub accounting_exact: bool,
    pub release_lateness_ms: Percentiles,
    pub max_queued_cpu: usize,
    pub max_queued_gpu: usize,
    pub replaced_workers: usize,
    pub rss_after_warmup_bytes: Option<u64>,
    pub rss_end_bytes: Option<u64>,
    /// (end − after warm-up) / after warm-up.
    pub rss_growth: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
    pub memory: Vec<MemorySample>,
}

pub fn run(a: Args) -> Result<()> {
    let mut cfg = load_config(&a.set.config, a.set.plan.as_deref(), a.profile.as_deref())?;
    let (choice, load, schedulable) = set_load(&mut cfg.taskset, &a)?;
    a.adapt.apply(&mut cfg);
    let engine = engine(a.real.engine)?;

    // Memory, sampled from outside the run on its own thread; a ticker
    // moves the progress bar.
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let sampler = sample_memory(done.clone(), started, a.sample);
    let opts = rtmdl_runtime::RunOptions {
        duration: a.duration,
        realtime: a.rt,
        watchdog: a.real.watchdog,
        probe: a.real.probe(),
        stop: Some(stop_flag()?),
        ..Default::default()
    };
    let bar = progress_bar(a.duration / 1_000_000_000, "{spinner} running");
    bar.set_message("s");
    let ticker = {
        let bar = bar.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                bar.set_position(started.elapsed().as_secs());
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let real = rtmdl_runtime::run_config(
        &cfg,
        a.set.policy,
        choice,
        engine,
        a.real.threads,
        &opts,
        a.seed,
    );
    let wall = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = ticker.join();
    bar.finish_and_clear();
    let memory_samples = sampler.join().unwrap_or_default();
    let real = real?;

    let o = &real.outcome;
    let accounting_exact = o
        .counters
        .iter()
        .all(|c| c.released == c.completed + c.missed + c.dropped + c.failed);
    let mem = Memory::of(&memory_samples, a.warmup.clamp(0.0, 0.9), a.duration);
    let rep = StressReport {
        config: a.set.config.display().to_string(),
        load,
        schedulable_load: schedulable,
        requested_s: a.duration as f64 / 1e9,
        wall_s: wall,
        accounting_exact,
        release_lateness_ms: o.release_lateness.percentiles(),
        max_queued_cpu: o.max_queued.cpu,
        max_queued_gpu: o.max_queued.gpu,
        replaced_workers: o.replaced.len(),
        rss_after_warmup_bytes: mem.after_warmup,
        rss_end_bytes: mem.end,
        rss_growth: mem.growth,
        peak_rss_bytes: mem.peak,
        report: real.report,
        memory: memory_samples,
    };
    print!("{}", summary(&rep, &cfg.taskset));
    if let Some(t) = &rep.report.timeline {
        print!("{}", t.switch_table());
    }
    if let Some(j) = &a.json {
        write_json(j, &rep)?;
    }
    Ok(())
}

/// Apply `--load` or `--overload` to `ts`: the variants the run then uses,
/// the load factor and, with `--overload`, the schedulable factor found.
fn set_load(ts: &mut TaskSet, a: &Args) -> Result<(VariantChoice, f64, Option<f64>)> {
    let choice = a.set.choice();
    if let Some(l) = a.load {
        if !(l.is_finite() && l > 0.0) {
            bail!("--load must be a positive number, got {l}");
        }
        *ts = ts.scale_rates(l, None);
        return Ok((choice, l, None));
    }
    let Some(o) = a.overload else {
        return Ok((choice, 1.0, None));
    };
    // Overload comes from the lower-priority tasks: the most urgent task
    // keeps its rate (alone it must stay schedulable), every other task is
    // released faster until the simulator finds the set just schedulable,
    // then `o` times faster than that. Priorities are fixed before the
    // rates change (deadline-monotonic ones would follow the shortened
    // deadlines).
    let assign = ts.assignments(choice);
    *ts = ts.with_assignments(&assign);
    let top = (0..assign.len())
        .min_by_key(|&i| assign[i].priority)
        .unwrap_or(0);
    let others: Vec<usize> = (0..assign.len()).filter(|&i| i != top).collect();
    if others.is_empty() {
        bail!("--overload needs at least two tasks (the most urgent keeps its rate)");
    }
    let s = schedulable_factor(ts, &others, a.set.policy, choice, a.seed)?;
    println!(
        "schedulable (simulated, {} + {choice}, {}): the tasks below {} at {s:.3}× their rate; running them at {o}× that = {:.3}×",
        a.set.policy.name(),
        if a.profile.is_some() {
            "measured profile"
        } else {
            "the config's times"
        },
        ts.tasks[top].name,
        s * o
    );
    *ts = ts.scale_rates(s * o, Some(&others));
    Ok((VariantChoice::Plan, s * o, Some(s)))
}

/// A thread sampling the resident memory every `every` (at least 1 ms)
/// until `done`.
fn sample_memory(
    done: Arc<AtomicBool>,
    started: Instant,
    every: Time,
) -> std::thread::JoinHandle<Vec<MemorySample>> {
    let every = Duration::from_nanos(every.max(1_000_000));
    std::thread::spawn(move || {
        let mut v = Vec::new();
        while !done.load(Ordering::Relaxed) {
            if let Some((rss, _)) = rtmdl_runtime::rt::memory() {
                v.push(MemorySample {
                    t_s: started.elapsed().as_secs_f64(),
                    rss_bytes: rss,
                });
            }
            std::thread::sleep(every);
        }
        v
    })
}

/// What the memory samples say.
struct Memory {
    after_warmup: Option<u64>,
    end: Option<u64>,
    growth: Option<f64>,
    peak: Option<u64>,
}

impl Memory {
    /// `warmup`: the fraction of the requested `duration` before memory
    /// counts as warmed up.
    fn of(samples: &[MemorySample], warmup: f64, duration: Time) -> Memory {
        // The run's clock starts about when it is built: count warm-up from
        // the first sample, as a fraction of the requested duration.
        let warm_t = samples.first().map(|s| s.t_s).unwrap_or(0.0) + warmup * duration as f64 / 1e9;
        let after_warmup = samples
            .iter()
            .find(|s| s.t_s >= warm_t)
            .map(|s| s.rss_bytes);
        let end = samples.last().map(|s| s.rss_bytes);
        let growth = match (after_warmup, end) {
            (Some(w), Some(e)) if w > 0 => Some((e as f64 - w as f64) / w as f64),
            _ => None,
        };
        // VmHWM is updated lazily by the kernel: never report a peak below a
        // sample.
        let sampled_peak = samples.iter().map(|s| s.rss_bytes).max();
        let peak = match (rtmdl_runtime::rt::memory().map(|m| m.1), sampled_peak) {
            (Some(h), Some(s)) => Some(h.max(s)),
            (h, s) => h.or(s),
        };
        Memory {
            after_warmup,
            end,
            growth,
            peak,
        }
    }
}

fn mib(b: Option<u64>) -> String {
    b.map(|b| format!("{:.1} MiB", b as f64 / (1 << 20) as f64))
        .unwrap_or_else(|| "n/a".into())
}

fn summary(r: &StressReport, ts: &TaskSet) -> String {
    let mut s = String::new();
    let periods: Vec<String> = ts
        .tasks
        .iter()
        .map(|t| format!("{} {:.2} ms", t.name, t.period as f64 / 1e6))
        .collect();
    s += &format!(
        "load factor {:.3} ({}); {:.0} s requested, {:.1} s wall\n",
        r.load,
        periods.join(", "),
        r.requested_s,
        r.wall_s
    );
    s += &r.report.table();
    s += &format!(
        "accounting (released = completed + missed + dropped + failed, every task): {}\n",
        if r.accounting_exact {
            "exact"
        } else {
            "NOT exact"
        }
    );
    let top = r
        .report
        .tasks
        .iter()
        .filter_map(|t| t.priority.map(|p| (p, t)))
        .min_by_key(|(p, _)| *p);
    if let Some((p, t)) = top {
        s += &format!(
            "highest-priority task {} (priority {p}): {} missed, {} dropped of {}\n",
            t.name, t.missed, t.dropped, t.jobs
        );
    }
    s += &format!(
        "release lateness: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms\n",
        r.release_lateness_ms.p50, r.release_lateness_ms.p99, r.release_lateness_ms.max
    );
    s += &format!(
        "longest ready queues: cpu {} / gpu {} sub-tasks; hung workers replaced: {}\n",
        r.max_queued_cpu, r.max_queued_gpu, r.replaced_workers
    );
    s += &format!(
        "memory: RSS after warm-up {}, at the end {}, growth {}; peak RSS {}\n",
        mib(r.rss_after_warmup_bytes),
        mib(r.rss_end_bytes),
        r.rss_growth
            .map(|g| format!("{:+.2} %", g * 100.0))
            .unwrap_or_else(|| "n/a".into()),
        mib(r.peak_rss_bytes)
    );
    s
}
