//! Validation of the bound against the simulator: a seeded generator of
//! random task sets and plans ([`random_set`]), simulations built to find
//! the worst response the scheduler can produce ([`worst_responses`]), the
//! check that no simulated response ever exceeds its bound ([`validate`]),
//! and the share of sets each method accepts by utilisation
//! ([`acceptance`]).
//!
//! Deterministic: the same count and seed give the same result whatever the
//! number of threads (sets are drawn from `(seed, index)`; sums are exact).

use std::sync::atomic::{AtomicU64, Ordering};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rtmdl_core::model::ranks;
use rtmdl_core::policy::Rtmdl;
use rtmdl_core::{
    Assignment, Decision, ExecProfile, Model, Observer, Overheads, Overrun, Platform, Resource,
    SimOptions, Stage, Task, TaskCounters, TaskSet, Time, Variant, simulate_with,
};
use serde::Serialize;

use crate::{Options, analyze};

const MS: Time = 1_000_000;

/// A random task set with its plan.
#[derive(Clone, Debug)]
pub struct Generated {
    pub ts: TaskSet,
    pub assign: Vec<Assignment>,
}

fn profile(rng: &mut ChaCha8Rng, max: Time) -> ExecProfile {
    let min = (max as f64 * rng.random_range(0.3..=1.0)) as Time;
    let at = |f: f64| min + ((max - min) as f64 * f) as Time;
    ExecProfile::Quantiles {
        min,
        p50: at(0.4),
        p90: at(0.7),
        p99: at(0.9),
        max,
    }
}

fn delay(rng: &mut ChaCha8Rng, max_us: u64) -> Option<ExecProfile> {
    let max = rng.random_range(1..=max_us) * 1000;
    Some(profile(rng, max))
}

/// The machine of a random set: 1–3 CPU workers, 1–3 GPU lanes with a
/// packing slowdown that mostly grows, sometimes shared cores (lanes on a
/// CPU engine, fewer cores than workers), contention and overheads.
fn platform(rng: &mut ChaCha8Rng) -> Platform {
    let (m, k) = (rng.random_range(1..=3), rng.random_range(1..=3));
    let mut slowdown = vec![1.0];
    let flat = rng.random_bool(0.2);
    for n in 1..k {
        let step = if flat {
            0.0
        } else {
            rng.random_range(0.05..0.4)
        };
        slowdown.push(slowdown[n - 1] + step);
    }
    let lanes_on_cpu = rng.random_bool(0.15);
    let cores = if lanes_on_cpu {
        Some(rng.random_range(1..=m + k))
    } else if rng.random_bool(0.15) {
        Some(rng.random_range(1..=m))
    } else {
        None
    };
    let contention = if rng.random_bool(0.2) {
        let mut c = vec![1.0];
        for n in 1..m + k {
            c.push(c[n - 1] + rng.random_range(0.0..0.08));
        }
        c
    } else {
        Vec::new()
    };
    let overheads = if rng.random_bool(0.3) {
        Overheads {
            release: delay(rng, 300),
            dispatch: [delay(rng, 100), delay(rng, 100)],
            back: [delay(rng, 100), delay(rng, 100)],
        }
    } else {
        Overheads::default()
    };
    Platform {
        cpu_workers: m,
        gpu_lanes: k,
        gpu_slowdown: slowdown,
        cores,
        lanes_on_cpu,
        contention,
        overheads,
        ..Default::default()
    }
}

/// Per task: a period and a chain of (resource, relative weight).
fn chains(rng: &mut ChaCha8Rng, n: usize) -> Vec<(Time, Vec<(Resource, f64)>)> {
    let periods = [5, 10, 20, 25, 40, 50, 100];
    (0..n)
        .map(|_| {
            let period = periods[rng.random_range(0..periods.len())] * MS;
            let chain: Vec<Resource> = if rng.random_bool(0.6) {
                vec![Resource::Cpu, Resource::Gpu, Resource::Cpu]
            } else {
                let len = rng.random_range(1..=4);
                (0..len)
                    .map(|_| {
                        if rng.random_bool(0.5) {
                            Resource::Cpu
                        } else {
                            Resource::Gpu
                        }
                    })
                    .collect()
            };
            let weights = chain
                .into_iter()
                .map(|r| (r, rng.random_range(0.1..1.0)))
                .collect();
            (period, weights)
        })
        .collect()
}

/// A random set of 2–6 tasks whose worst-case load on its busier resource
/// is `utilisation` of that resource's slots (Σ max/T over the segments on
/// it ÷ workers or lanes), with a random plan: deadline-monotonic or random
/// priorities (now and then two tasks share one), overrun rules and
/// deadlines mixed.
pub fn random_set(seed: u64, utilisation: f64) -> Generated {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let platform = platform(&mut rng);
    let n = rng.random_range(2..=6);
    let specs = chains(&mut rng, n);
    // Split the load over tasks and stages, then scale to the target.
    let shares: Vec<f64> = (0..n).map(|_| rng.random_range(0.2..1.0)).collect();
    let mut load = [0.0f64; 2];
    for ((period, chain), share) in specs.iter().zip(&shares) {
        let total: f64 = chain.iter().map(|c| c.1).sum();
        for (r, w) in chain {
            load[crate::input::side(*r)] += share * w / total;
        }
        let _ = period;
    }
    let slots = [platform.cpu_workers as f64, platform.gpu_lanes as f64];
    let busiest = (load[0] / slots[0]).max(load[1] / slots[1]).max(1e-9);
    let scale = utilisation / busiest;
    let mut models = Vec::new();
    let mut tasks = Vec::new();
    for (t, ((period, chain), share)) in specs.iter().zip(&shares).enumerate() {
        let total: f64 = chain.iter().map(|c| c.1).sum();
        let times = chain
            .iter()
            .map(|(_, w)| {
                let max = (scale * share * w / total * *period as f64).max(1000.0) as Time;
                profile(&mut rng, max)
            })
            .collect();
        models.push(Model {
            name: format!("m{t}"),
            stages: chain
                .iter()
                .enumerate()
                .map(|(s, (r, _))| Stage::new(format!("s{s}"), *r))
                .collect(),
            shared_parts: vec![],
            variants: vec![Variant {
                name: "v".into(),
                accuracy: 0.9,
                shared_with: None,
                private_bytes: 1,
                times,
                file: None,
            }],
        });
        let deadline = if rng.random_bool(0.5) {
            *period
        } else {
            (*period as f64 * rng.random_range(0.5..1.0)) as Time
        };
        let overrun = match rng.random_range(0..5) {
            0 | 1 => Overrun::Continue,
            2 | 3 => Overrun::Skip,
            _ => Overrun::Firm,
        };
        tasks.push(Task {
            name: format!("t{t}"),
            model: t,
            period: *period,
            deadline,
            offset: 0,
            max_miss_rate: 0.0,
            min_accuracy: 0.0,
            priority: None,
            variant: Some(0),
            overrun,
            floor: None,
            stop: None,
            max_misses: None,
        });
    }
    let ts = TaskSet {
        platform,
        models,
        tasks,
        adapt: None,
    };
    let mut prio = if rng.random_bool(0.5) {
        ts.deadline_monotonic()
    } else {
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        ranks(&order)
    };
    if rng.random_bool(0.1) {
        let (a, b) = (rng.random_range(0..n), rng.random_range(0..n));
        prio[a] = prio[b];
    }
    let assign = prio
        .into_iter()
        .map(|priority| Assignment {
            variant: 0,
            priority,
        })
        .collect();
    Generated { ts, assign }
}

/// The longest response of each task over one run, and its misses.
struct Worst {
    max: Vec<Option<Time>>,
}

impl Observer for Worst {
    fn decision(&mut self, _now: Time, d: &Decision) {
        if let Decision::Complete {
            task, release, at, ..
        } = *d
        {
            let r = at - release;
            let m = &mut self.max[task];
            *m = Some(m.map_or(r, |x| x.max(r)));
        }
    }
}

/// Replace a profile by one the adversary picks: its maximum, its minimum,
/// mostly the maximum with a rare minimum (the anomaly's shape), both ends
/// equally, or the profile as it is.
fn adversarial(p: &ExecProfile, mode: u32) -> ExecProfile {
    let (lo, hi) = crate::input::span(p);
    match mode {
        0 => ExecProfile::Fixed(hi),
        1 => ExecProfile::Fixed(lo),
        2 => {
            let mut v = vec![hi; 9];
            v.push(lo);
            ExecProfile::Samples(v)
        }
        3 => ExecProfile::Samples(vec![lo, hi]),
        _ => p.clone(),
    }
}

fn adversarial_opt(p: &Option<ExecProfile>, mode: u32) -> Option<ExecProfile> {
    p.as_ref().map(|p| adversarial(p, mode))
}

/// The set as one adversarial run sees it: run 0 has every time and delay
/// at its maximum and the set's own offsets; run 1 the same with the tasks
/// released one after the other, least urgent first; the others draw
/// offsets within the period and, per task, one way to pick its times (see
/// [`adversarial`]).
fn adversary(ts: &TaskSet, prio: &[u32], run: u64, rng: &mut ChaCha8Rng) -> TaskSet {
    let mut x = ts.clone();
    if run == 0 {
        for m in &mut x.models {
            for v in &mut m.variants {
                for t in &mut v.times {
                    *t = adversarial(t, 0);
                }
            }
        }
        let o = &mut x.platform.overheads;
        o.release = adversarial_opt(&o.release, 0);
        for p in o.dispatch.iter_mut().chain(o.back.iter_mut()) {
            *p = adversarial_opt(p, 0);
        }
        return x;
    }
    if run == 1 {
        // Everything at its maximum, the least urgent released first: each
        // more urgent task 10 µs later, onto workers the others hold.
        let mut x = adversary(ts, prio, 0, rng);
        let mut order: Vec<usize> = (0..x.tasks.len()).collect();
        order.sort_by_key(|&t| std::cmp::Reverse(prio[t]));
        for (k, &t) in order.iter().enumerate() {
            x.tasks[t].offset = (k as Time * 10_000) % x.tasks[t].period;
        }
        return x;
    }
    for (t, task) in x.tasks.iter_mut().enumerate() {
        task.offset = rng.random_range(0..task.period);
        let mode = rng.random_range(0..5);
        for p in &mut x.models[t].variants[0].times {
            *p = adversarial(p, mode);
        }
    }
    let o = &mut x.platform.overheads;
    o.release = adversarial_opt(&o.release, rng.random_range(0..5));
    for p in o.dispatch.iter_mut().chain(o.back.iter_mut()) {
        *p = adversarial_opt(p, rng.random_range(0..5));
    }
    x
}

/// Simulation horizon for a set: ten of its longest periods.
fn horizon(ts: &TaskSet) -> Time {
    10 * ts.tasks.iter().map(|t| t.period).max().unwrap_or(MS)
}

fn simulate(ts: &TaskSet, assign: &[Assignment], seed: u64) -> (Vec<Option<Time>>, Vec<u64>) {
    let mut worst = Worst {
        max: vec![None; ts.tasks.len()],
    };
    let out = simulate_with(
        ts,
        assign,
        Box::new(Rtmdl {
            priority: assign.iter().map(|a| a.priority).collect(),
        }),
        SimOptions {
            duration: horizon(ts),
            seed,
            ..Default::default()
        },
        &mut worst,
    );
    let misses = out.counters.iter().map(TaskCounters::not_on_time).collect();
    (worst.max, misses)
}

/// Per task, the longest simulated response over `runs` adversarial runs
/// (see [`adversary`]), and the misses (late or dropped jobs) over them.
pub fn worst_responses(
    ts: &TaskSet,
    assign: &[Assignment],
    seed: u64,
    runs: u64,
) -> (Vec<Option<Time>>, Vec<u64>) {
    let n = ts.tasks.len();
    let (mut max, mut misses) = (vec![None::<Time>; n], vec![0; n]);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let prio: Vec<u32> = assign.iter().map(|a| a.priority).collect();
    for run in 0..runs.max(1) {
        let x = adversary(ts, &prio, run, &mut rng);
        let (m, d) = simulate(&x, assign, seed.wrapping_add(run));
        for t in 0..n {
            max[t] = match (max[t], m[t]) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            misses[t] += d[t];
        }
    }
    (max, misses)
}

/// A simulated response above its bound (or a miss of a task found
/// schedulable).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Violation {
    /// Seed of the set: `random_set(seed, utilisation)` rebuilds it.
    pub seed: u64,
    pub utilisation: f64,
    pub task: String,
    pub bound_ns: Time,
    pub observed_ns: Option<Time>,
    pub misses: u64,
}

/// The outcome of [`validate`].
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Validation {
    pub sets: u64,
    pub violations: u64,
    /// Mean of (longest simulated response / bound) over schedulable tasks.
    pub tightness: f64,
    /// Tasks with a bound, and those found schedulable.
    pub bounded_tasks: u64,
    pub schedulable_tasks: u64,
    /// Sets the analysis refused (none: the generator makes none).
    pub refused: u64,
    /// Sets whose every task the analysis found schedulable, and those of
    /// them with a violation (the negative control's measure).
    pub schedulable_sets: u64,
    pub schedulable_sets_violated: u64,
    /// Every bound was multiplied by this before the check (1: the true
    /// bound; below 1: a negative control, which must find violations).
    pub bound_scale: f64,
    /// The first violations found (by set index), at most 10.
    pub examples: Vec<Violation>,
}

impl std::fmt::Display for Validation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} sets, {} violations, tightness {:.2}",
            self.sets, self.violations, self.tightness
        )?;
        if self.refused > 0 {
            write!(f, ", {} refused by the analysis", self.refused)?;
        }
        if self.bound_scale != 1.0 {
            write!(
                f,
                " (bounds × {}: {} of {} schedulable sets violated)",
                self.bound_scale, self.schedulable_sets_violated, self.schedulable_sets
            )?;
        }
        Ok(())
    }
}

/// Adversarial runs per set in [`validate`].
pub const RUNS: u64 = 6;

/// Seed and utilisation of set `i` of a validation with seed `seed`.
pub fn set_seed(seed: u64, i: u64) -> (u64, f64) {
    let s = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(i.wrapping_mul(0xD1B5_4A32_D192_ED03))
        ^ (i << 17);
    let u = ChaCha8Rng::seed_from_u64(s ^ 0x5555).random_range(0.05..0.9);
    (s, u)
}

/// What one set contributed.
#[derive(Default)]
struct Tally {
    bounded: u64,
    schedulable: u64,
    /// Σ observed/bound over schedulable tasks, in units of 1e-9 (exact sums).
    ratio_sum: u128,
    ratio_n: u64,
    refused: u64,
    /// Every task schedulable.
    all_schedulable: bool,
    violations: Vec<Violation>,
}

fn check_set(seed: u64, u: f64, scale: f64) -> Tally {
    let g = random_set(seed, u);
    let mut tally = Tally::default();
    let Ok(a) = analyze(&g.ts, &g.assign, &Options::default()) else {
        tally.refused = 1;
        return tally;
    };
    tally.all_schedulable = a.schedulable;
    let (worst, misses) = worst_responses(&g.ts, &g.assign, seed, RUNS);
    for (t, tb) in a.tasks.iter().enumerate() {
        let Some(bound) = tb.bound_ns else { continue };
        let bound = (bound as f64 * scale) as Time;
        tally.bounded += 1;
        let over = worst[t].is_some_and(|w| w > bound);
        let missed = tb.schedulable && misses[t] > 0;
        if over || missed {
            tally.violations.push(Violation {
                seed,
                utilisation: u,
                task: tb.name.clone(),
                bound_ns: bound,
                observed_ns: worst[t],
                misses: misses[t],
            });
        }
        if tb.schedulable {
            tally.schedulable += 1;
            if let Some(w) = worst[t] {
                tally.ratio_sum += (w as u128 * 1_000_000_000) / bound.max(1) as u128;
                tally.ratio_n += 1;
            }
        }
    }
    tally
}

/// Run `count` items over `threads` threads, each item's result folded in
/// index order.
fn parallel<T: Send>(count: u64, threads: usize, f: impl Fn(u64) -> T + Sync) -> Vec<T> {
    let next = AtomicU64::new(0);
    let threads = threads.clamp(1, count.max(1) as usize);
    let mut all: Vec<(u64, T)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            break out;
                        }
                        out.push((i, f(i)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    all.sort_by_key(|x| x.0);
    all.into_iter().map(|x| x.1).collect()
}

/// Check the bound against the simulator on `sets` random sets: for every
/// task with a bound, the longest response over [`RUNS`] adversarial runs
/// must not exceed it, and a task found schedulable must never miss.
pub fn validate(sets: u64, seed: u64, threads: usize) -> Validation {
    validate_scaled(sets, seed, threads, 1.0)
}

/// [`validate`] with every bound multiplied by `scale` first: below 1, a
/// negative control (a bound made unsound on purpose must be caught).
pub fn validate_scaled(sets: u64, seed: u64, threads: usize, scale: f64) -> Validation {
    let tallies = parallel(sets, threads, |i| {
        let (s, u) = set_seed(seed, i);
        check_set(s, u, scale)
    });
    let mut v = Validation {
        sets,
        bound_scale: scale,
        ..Default::default()
    };
    let (mut sum, mut n) = (0u128, 0u64);
    for t in tallies {
        v.bounded_tasks += t.bounded;
        v.schedulable_tasks += t.schedulable;
        v.refused += t.refused;
        if t.all_schedulable {
            v.schedulable_sets += 1;
            v.schedulable_sets_violated += !t.violations.is_empty() as u64;
        }
        v.violations += t.violations.len() as u64;
        sum += t.ratio_sum;
        n += t.ratio_n;
        for x in t.violations {
            if v.examples.len() < 10 {
                v.examples.push(x);
            }
        }
    }
    v.tightness = if n == 0 {
        0.0
    } else {
        (sum / n as u128) as f64 / 1e9
    };
    v
}

/// The share of random sets each method accepts at one utilisation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AcceptancePoint {
    pub utilisation: f64,
    pub sets: u64,
    /// Every task schedulable by the analysis.
    pub analysis: f64,
    /// No miss in the simulation proxy: the sampled profiles, offsets 0,
    /// [`PROXY_SEEDS`] seeds, ten longest periods each (what the planner's
    /// proxy judges a plan by).
    pub simulation: f64,
}

/// Seeds of the simulation proxy in [`acceptance`].
pub const PROXY_SEEDS: u64 = 3;

/// For each utilisation, `sets` random sets: the share the analysis
/// accepts and the share with no miss in the simulation proxy.
pub fn acceptance(
    utilisations: &[f64],
    sets: u64,
    seed: u64,
    threads: usize,
) -> Vec<AcceptancePoint> {
    let per = sets.max(1);
    let total = per * utilisations.len() as u64;
    let verdicts = parallel(total, threads, |i| {
        let u = utilisations[(i / per) as usize];
        let (s, _) = set_seed(seed, i);
        let g = random_set(s, u);
        let analysis = analyze(&g.ts, &g.assign, &Options::default())
            .map(|a| a.schedulable)
            .unwrap_or(false);
        let simulation = (0..PROXY_SEEDS).all(|k| {
            simulate(&g.ts, &g.assign, s.wrapping_add(k))
                .1
                .iter()
                .all(|&m| m == 0)
        });
        (analysis, simulation)
    });
    utilisations
        .iter()
        .enumerate()
        .map(|(k, &u)| {
            let slice = &verdicts[k * per as usize..(k + 1) * per as usize];
            let share = |f: fn(&(bool, bool)) -> bool| {
                slice.iter().filter(|v| f(v)).count() as f64 / per as f64
            };
            AcceptancePoint {
                utilisation: u,
                sets: per,
                analysis: share(|v| v.0),
                simulation: share(|v| v.1),
            }
        })
        .collect()
}
