//! Planning time for 20 tasks × 8 variants and 50 × 8, with the default
//! search and two proxy settings. Run with `cargo bench --bench plan`.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rtmdl_core::*;
use rtmdl_plan::{Method, MoeaOptions, ProxyOptions, plan};

const MS: Time = 1_000_000;

/// `n` tasks with 8 width-scaled variants each, on 4 CPU workers and 4
/// lanes, loaded so that a plan must give up some accuracy.
fn set(n: usize, seed: u64) -> TaskSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let periods = [25u64, 40, 50, 100, 200];
    let mut models = Vec::new();
    let mut tasks = Vec::new();
    for t in 0..n {
        let period = periods[rng.random_range(0..periods.len())];
        // Enough GPU load that the original variants do not all fit.
        let gpu = rng.random_range(0.05..0.2) * 20.0 / n as f64 * period as f64;
        let pre = rng.random_range(0.01..0.05) * period as f64;
        models.push(Model {
            name: format!("m{t}"),
            stages: vec![
                Stage::new("pre", Resource::Cpu),
                Stage::new("infer", Resource::Gpu),
                Stage::new("post", Resource::Cpu),
            ],
            shared_parts: vec![],
            variants: (0..8)
                .map(|v| {
                    let w = 1.0 - v as f64 * 0.1;
                    let q = |x: f64| ExecProfile::Quantiles {
                        min: (x * 0.9 * MS as f64) as Time,
                        p50: (x * MS as f64) as Time,
                        p90: (x * 1.1 * MS as f64) as Time,
                        p99: (x * 1.25 * MS as f64) as Time,
                        max: (x * 1.4 * MS as f64) as Time,
                    };
                    Variant {
                        name: format!("w{w:.1}"),
                        accuracy: 0.95 - 0.01 * v as f64,
                        shared_with: None,
                        private_bytes: 1 << 20,
                        times: vec![q(pre), q(gpu * w * w), q(pre / 4.0)],
                        file: None,
                    }
                })
                .collect(),
        });
        tasks.push(Task {
            name: format!("t{t}"),
            model: t,
            period: period * MS,
            deadline: period * MS,
            offset: 0,
            max_miss_rate: 0.05,
            min_accuracy: 0.0,
            priority: None,
            variant: None,
            overrun: Overrun::Skip,
            floor: None,
            stop: None,
            max_misses: None,
        });
    }
    TaskSet {
        platform: Platform {
            cpu_workers: 4,
            gpu_lanes: 4,
            gpu_slowdown: vec![1.0, 1.2, 1.45, 1.7],
            storage_budget: None,
            ..Default::default()
        },
        models,
        tasks,
        adapt: None,
    }
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    for n in [20, 50] {
        let ts = set(n, 7);
        let default = ProxyOptions::default_for(&ts, 10_000_000_000);
        let fast = ProxyOptions {
            horizon: 20 * ts.tasks.iter().map(|t| t.period).max().unwrap_or(1),
            seeds: 1,
            ..default.clone()
        };
        for (label, proxy) in [("fast proxy", fast), ("default proxy", default)] {
            let (h, s) = (proxy.horizon, proxy.seeds);
            let t0 = Instant::now();
            let out = plan(
                &ts,
                proxy,
                &Method::Moea(MoeaOptions::default()),
                &mut |_, _| {},
            )
            .unwrap();
            println!(
                "plan {n:>2} tasks × 8 variants, {label:<13} ({:.1} s × {s} seeds): {:>7.3} s, {} evaluations, {} simulations, feasible {}, accuracy loss {:.2} %",
                h as f64 / 1e9,
                t0.elapsed().as_secs_f64(),
                out.evaluations,
                out.simulations,
                out.feasible,
                ts.accuracy_loss(&out.assignments) * 100.0
            );
        }
    }
}
