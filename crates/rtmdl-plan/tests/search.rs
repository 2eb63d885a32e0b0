//! The planner against the exact optimum on random small sets, and its
//! diagnosis of sets with no plan.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rtmdl_core::*;
use rtmdl_plan::*;

const MS: Time = 1_000_000;

/// A random set: 2..=5 tasks, 2..=4 variants each, chains cpu → gpu → cpu.
fn random_set(seed: u64) -> TaskSet {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = rng.random_range(2..=5);
    let periods = [20, 25, 40, 50, 100];
    let mut models = Vec::new();
    let mut tasks = Vec::new();
    for t in 0..n {
        let k = rng.random_range(2..=4);
        let period = periods[rng.random_range(0..periods.len())];
        let base_gpu = rng.random_range(0.15..0.5) * period as f64;
        let pre = rng.random_range(0.05..0.2) * period as f64;
        let variants = (0..k)
            .map(|v| {
                let scale = 1.0 - v as f64 * 0.22; // width 1.0, .78, .56, .34
                let jitter = |x: f64| ExecProfile::Quantiles {
                    min: (x * 0.9 * MS as f64) as Time,
                    p50: (x * MS as f64) as Time,
                    p90: (x * 1.05 * MS as f64) as Time,
                    p99: (x * 1.1 * MS as f64) as Time,
                    max: (x * 1.15 * MS as f64) as Time,
                };
                Variant {
                    name: format!("v{v}"),
                    accuracy: 0.95 - v as f64 * rng.random_range(0.005..0.03),
                    shared_with: Some("backbone".into()),
                    private_bytes: (scale * 1e6) as u64,
                    times: vec![jitter(pre), jitter(base_gpu * scale), jitter(pre / 3.0)],
                    file: None,
                }
            })
            .collect();
        models.push(Model {
            name: format!("m{t}"),
            stages: vec![
                Stage::new("pre", Resource::Cpu),
                Stage::new("infer", Resource::Gpu),
                Stage::new("post", Resource::Cpu),
            ],
            shared_parts: vec![("backbone".into(), 2_000_000)],
            variants,
        });
        tasks.push(Task {
            name: format!("t{t}"),
            model: t,
            period: period * MS,
            deadline: period * MS,
            offset: 0,
            max_miss_rate: [0.0, 0.02, 0.05, 0.1][rng.random_range(0..4)],
            min_accuracy: 0.85,
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
            cpu_workers: rng.random_range(1..=2),
            gpu_lanes: 2,
            gpu_slowdown: vec![1.0, 1.4],
            storage_budget: None,
            ..Default::default()
        },
        models,
        tasks,
        adapt: None,
    }
}

fn proxy(ts: &TaskSet) -> ProxyOptions {
    ProxyOptions {
        horizon: 2_000_000_000,
        seeds: 3,
        seed: 1,
        hard: false,
        guarantee: Guarantee::default(),
    }
    .min_horizon(ts)
}

trait MinHorizon {
    fn min_horizon(self, ts: &TaskSet) -> Self;
}

impl MinHorizon for ProxyOptions {
    fn min_horizon(mut self, ts: &TaskSet) -> Self {
        let max_p = ts.tasks.iter().map(|t| t.period).max().unwrap_or(1);
        self.horizon = self.horizon.max(50 * max_p);
        self
    }
}

#[test]
fn moea_matches_the_exact_optimum_and_its_plans_hold_on_fresh_seeds() {
    let sets = 40;
    let (mut close, mut compared) = (0, 0);
    for seed in 0..sets {
        let ts = random_set(seed);
        let moea_opts = MoeaOptions {
            population: 32,
            generations: 30,
            seed,
            threads: 1,
            patience: MoeaOptions::default().patience,
        };
        // The searches themselves, on one problem (the proxy's own seeds).
        {
            let p = rtmdl_plan::Problem::new(&ts, proxy(&ts));
            let exact = rtmdl_plan::search::exact(&p, 1e6, &mut |_, _| {}).unwrap();
            let moea = rtmdl_plan::search::moea(&p, &moea_opts, &mut |_, _| {});
            let (ef, mf) = (exact.best.eval.feasible(), moea.best.eval.feasible());
            // Exact finds a plan whenever the evolutionary search does.
            assert!(ef || !mf, "set {seed}: MOEA feasible, exact not");
            if ef {
                compared += 1;
                assert!(
                    moea.best.eval.loss >= exact.best.eval.loss - 1e-9 || !mf,
                    "set {seed}: beat the optimum?"
                );
                if mf && moea.best.eval.loss <= exact.best.eval.loss + 0.01 {
                    close += 1;
                }
            }
        }
        // A plan: searched, then judged on fresh seeds.
        let moea = plan(&ts, proxy(&ts), &Method::Moea(moea_opts), &mut |_, _| {}).unwrap();
        if moea.feasible {
            // Re-simulate with fresh seeds and a longer horizon: each task
            // within ζ up to sampling noise (3 binomial σ and one job).
            let mut fresh = ts.clone();
            for (t, a) in moea.assignments.iter().enumerate() {
                fresh.tasks[t].variant = Some(a.variant);
                fresh.tasks[t].priority = Some(a.priority);
            }
            for s in 0..3 {
                let r = simulate(
                    &fresh,
                    PolicyKind::Rtmdl,
                    VariantChoice::Plan,
                    SimOptions {
                        duration: 3_000_000_000,
                        seed: 1000 + s,
                        ..Default::default()
                    },
                );
                for t in &r.tasks {
                    let z = t.max_miss_rate;
                    let tol =
                        3.0 * (z * (1.0 - z) / t.jobs as f64).sqrt() + 1.0 / t.jobs as f64 + 0.01;
                    assert!(
                        t.miss_rate <= z + tol,
                        "set {seed}: task {} misses {} > ζ {}",
                        t.name,
                        t.miss_rate,
                        z
                    );
                }
            }
        }
    }
    eprintln!("MOEA within 1 % of the exact optimum in {close}/{compared} feasible sets of {sets}");
    assert!(
        compared >= sets / 2,
        "only {compared} feasible sets: the generator is too hard"
    );
    assert!(
        close * 100 >= compared * 95,
        "MOEA within 1 % of the optimum in {close}/{compared} sets"
    );
}

#[test]
fn a_set_without_a_plan_names_the_constraint() {
    let mut ts = random_set(3);
    // Nothing reaches this floor.
    ts.tasks[0].min_accuracy = 0.999;
    let out = plan(
        &ts,
        proxy(&ts),
        &Method::Moea(MoeaOptions {
            population: 16,
            generations: 5,
            seed: 1,
            threads: 1,
            patience: MoeaOptions::default().patience,
        }),
        &mut |_, _| {},
    )
    .unwrap();
    assert!(!out.feasible);
    assert!(
        out.diagnosis
            .iter()
            .any(|d| d.starts_with("accuracy: task `t0`")),
        "{:?}",
        out.diagnosis
    );

    // Storage: a budget below the smallest family.
    let mut ts = random_set(3);
    ts.platform.storage_budget = Some(1000);
    let out = plan(
        &ts,
        proxy(&ts),
        &Method::Exact { limit: 1e6 },
        &mut |_, _| {},
    )
    .unwrap();
    assert!(!out.feasible);
    assert!(
        out.diagnosis.iter().any(|d| d.starts_with("storage:")),
        "{:?}",
        out.diagnosis
    );

    // Load: every period far too short for any variant.
    let mut ts = random_set(3);
    for t in &mut ts.tasks {
        t.period /= 4;
        t.deadline /= 4;
        t.max_miss_rate = 0.01;
    }
    let out = plan(
        &ts,
        proxy(&ts),
        &Method::Moea(MoeaOptions {
            population: 16,
            generations: 5,
            seed: 1,
            threads: 1,
            patience: MoeaOptions::default().patience,
        }),
        &mut |_, _| {},
    )
    .unwrap();
    assert!(!out.feasible);
    assert!(
        out.diagnosis
            .iter()
            .any(|d| d.starts_with("deadline misses:")),
        "{:?}",
        out.diagnosis
    );
}

#[test]
fn hard_mode_accepts_only_plans_whose_bounds_meet_every_deadline() {
    let ts = random_set(5);
    let mut p = proxy(&ts);
    p.hard = true;
    let out = plan(&ts, p, &Method::Exact { limit: 1e6 }, &mut |_, _| {}).unwrap();
    // No simulation: every task is judged by the bound.
    assert_eq!(out.simulations, 0);
    if out.feasible {
        let a = rtmdl_analysis::analyze(&ts, &out.assignments, &Default::default()).unwrap();
        assert!(a.schedulable, "{}", a.table());
        assert!(out.eval.bound.iter().all(|b| b.is_some()));
    }
}
