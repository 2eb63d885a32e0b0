//! Properties of the scheduler core under the simulator, on random task sets:
//! no oversubscription, work conservation (CPU workers never idle while CPU
//! work waits; lanes idle only where packing admission holds an inference
//! back), exact accounting, determinism.

mod common;
use std::collections::HashMap;

use common::*;
use proptest::prelude::*;
use rtmdl_core::*;

type Chain = Vec<(Resource, u64)>;

fn chain() -> impl Strategy<Value = Chain> {
    prop::collection::vec(
        (
            prop_oneof![Just(Resource::Cpu), Just(Resource::Gpu)],
            1u64..=8,
        ),
        1..=4,
    )
}

fn setup() -> impl Strategy<Value = (TaskSet, usize, u64)> {
    (
        1usize..=3,
        1usize..=3,
        prop::collection::vec((chain(), 5u64..=60, any::<bool>()), 1..=5),
        0usize..5,
        any::<u64>(),
    )
        .prop_map(|(cpu, lanes, tasks, policy, seed)| {
            let named: Vec<(String, u64, Chain)> = tasks
                .iter()
                .enumerate()
                .map(|(i, (c, p, _))| (format!("t{i}"), *p, c.clone()))
                .collect();
            let refs: Vec<TaskSpec> = named
                .iter()
                .map(|(n, p, c)| (n.as_str(), *p, c.as_slice()))
                .collect();
            let slowdown = (0..lanes).map(|n| 1.0 + 0.25 * n as f64).collect();
            let mut ts = taskset(cpu, lanes, slowdown, &refs);
            for (i, (_, _, skip)) in tasks.iter().enumerate() {
                if *skip {
                    ts.tasks[i].overrun = Overrun::Skip;
                }
                // Jitter: draw each time from a spread around the nominal one.
                let v = &mut ts.models[i].variants[0];
                for t in v.times.iter_mut() {
                    let base = t.max();
                    *t = ExecProfile::Quantiles {
                        min: base / 2,
                        p50: base,
                        p90: base + base / 4,
                        p99: base + base / 2,
                        max: base * 2,
                    };
                }
            }
            (ts, policy, seed)
        })
}

/// Checks the invariants at every instant of a simulation.
struct Invariants {
    cpu_workers: usize,
    k: usize,
    split: bool,
    running: HashMap<Slot, JobId>,
    violations: Vec<String>,
}

impl Observer for Invariants {
    fn decision(&mut self, now: Time, d: &Decision) {
        if let Decision::Start { job, slot, .. } = *d
            && self.running.insert(slot, job).is_some()
        {
            self.violations
                .push(format!("{now}: {slot:?} given two sub-tasks"));
        }
    }
    fn finished(&mut self, now: Time, job: JobId, slot: Slot) {
        if self.running.remove(&slot) != Some(job) {
            self.violations
                .push(format!("{now}: {slot:?} finished a job it did not run"));
        }
    }
    fn settled(&mut self, now: Time, s: &Scheduler) {
        if s.gpu_running() > self.k || s.gpu_running() > s.gpu_lanes() {
            self.violations
                .push(format!("{now}: {} GPU sub-tasks at once", s.gpu_running()));
        }
        if s.dispatch_mode() != Dispatch::ThreadPerTask && s.cpu_running() > self.cpu_workers {
            self.violations
                .push(format!("{now}: {} CPU sub-tasks at once", s.cpu_running()));
        }
        if self.split {
            if s.cpu_running() < s.cpu_slots() && s.queued(Resource::Cpu) > 0 {
                self.violations
                    .push(format!("{now}: a CPU worker idles while CPU work waits"));
            }
            // A lane may idle only where packing would make a more urgent
            // running inference miss.
            if s.gpu_running() < s.gpu_lanes()
                && s.queued(Resource::Gpu) > 0
                && !s.packing_holds_back()
            {
                self.violations
                    .push(format!("{now}: a GPU lane idles while GPU work waits"));
            }
        }
    }
}

fn simulate_checked(
    ts: &TaskSet,
    policy: PolicyKind,
    seed: u64,
) -> (Invariants, Vec<TaskCounters>, (f64, f64)) {
    let assign = ts.assignments(VariantChoice::Original);
    let mut inv = Invariants {
        cpu_workers: ts.platform.cpu_workers,
        k: ts.platform.gpu_lanes,
        split: matches!(policy, PolicyKind::Rtmdl | PolicyKind::Edf),
        running: HashMap::new(),
        violations: vec![],
    };
    let out = simulate_with(
        ts,
        &assign,
        policy.build(ts, &assign),
        SimOptions {
            duration: 300 * MS,
            seed,
            ..Default::default()
        },
        &mut inv,
    );
    (inv, out.counters, out.utilisation)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn resources_are_never_oversubscribed_and_rtmdl_is_work_conserving(
        (ts, policy, seed) in setup()
    ) {
        let policy = PolicyKind::ALL[policy];
        let (inv, counters, (ucpu, ugpu)) = simulate_checked(&ts, policy, seed);
        prop_assert!(inv.violations.is_empty(), "{policy}: {:?}", &inv.violations[..inv.violations.len().min(5)]);
        prop_assert!(inv.running.is_empty(), "sub-tasks left running after the drain");
        for c in &counters {
            prop_assert_eq!(c.released, c.completed + c.missed + c.dropped, "accounting: {:?}", c);
        }
        prop_assert!((0.0..=1.0 + 1e-9).contains(&ucpu), "cpu utilisation {}", ucpu);
        prop_assert!((0.0..=1.0 + 1e-9).contains(&ugpu), "gpu utilisation {}", ugpu);
    }

    #[test]
    fn same_seed_same_result((ts, policy, seed) in setup()) {
        let policy = PolicyKind::ALL[policy];
        let report = |s| serde_json::to_string(&simulate(&ts, policy, VariantChoice::Original, SimOptions { duration: 300 * MS, seed: s, ..Default::default() })).unwrap();
        prop_assert_eq!(report(seed), report(seed));
    }
}
