//! Small task sets built in code, for tests.
#![allow(dead_code)]

use rtmdl_core::*;

pub const MS: Time = 1_000_000;

/// (name, period ms, chain of (resource, ms)).
pub type TaskSpec<'a> = (&'a str, u64, &'a [(Resource, u64)]);

/// One task per entry: (name, period ms, chain of (resource, ms)).
pub fn taskset(
    cpu_workers: usize,
    gpu_lanes: usize,
    slowdown: Vec<f64>,
    tasks: &[TaskSpec],
) -> TaskSet {
    let models = tasks
        .iter()
        .map(|(name, _, chain)| Model {
            name: format!("{name}_model"),
            stages: chain
                .iter()
                .enumerate()
                .map(|(i, (r, _))| Stage::new(format!("s{i}"), *r))
                .collect(),
            shared_parts: vec![],
            variants: vec![Variant {
                name: "only".into(),
                accuracy: 0.9,
                shared_with: None,
                private_bytes: 1,
                times: chain
                    .iter()
                    .map(|(_, ms)| ExecProfile::Fixed(ms * MS))
                    .collect(),
                file: None,
            }],
        })
        .collect();
    let tasks = tasks
        .iter()
        .enumerate()
        .map(|(i, (name, period, _))| Task {
            name: name.to_string(),
            model: i,
            period: period * MS,
            deadline: period * MS,
            offset: 0,
            max_miss_rate: 0.0,
            min_accuracy: 0.0,
            priority: None,
            variant: None,
            overrun: Overrun::Continue,
            floor: None,
            stop: None,
            max_misses: None,
        })
        .collect();
    TaskSet {
        platform: Platform {
            cpu_workers,
            gpu_lanes,
            gpu_slowdown: if slowdown.is_empty() {
                vec![1.0; gpu_lanes]
            } else {
                slowdown
            },
            storage_budget: None,
            ..Default::default()
        },
        models,
        tasks,
        adapt: None,
    }
}

/// Simulate and return the log plus the final counters.
pub fn run(
    ts: &TaskSet,
    policy: PolicyKind,
    priorities: Option<&[u32]>,
    duration_ms: u64,
) -> (Vec<(Time, Decision)>, Vec<TaskCounters>) {
    let mut assign = ts.assignments(VariantChoice::Original);
    if let Some(p) = priorities {
        for (a, p) in assign.iter_mut().zip(p) {
            a.priority = *p;
        }
    }
    let mut log = Log::default();
    let out = simulate_with(
        ts,
        &assign,
        policy.build(ts, &assign),
        SimOptions {
            duration: duration_ms * MS,
            seed: 7,
            ..Default::default()
        },
        &mut log,
    );
    (log.0, out.counters)
}

/// (task, job seq, stage, start ms, slot) of every start, in order.
pub fn starts(log: &[(Time, Decision)]) -> Vec<(usize, u64, usize, u64, Slot)> {
    log.iter()
        .filter_map(|(t, d)| match *d {
            Decision::Start {
                task,
                seq,
                stage,
                slot,
                ..
            } => Some((task, seq, stage, t / MS, slot)),
            _ => None,
        })
        .collect()
}

/// Start time (ms) of (task, seq, stage).
pub fn start_of(log: &[(Time, Decision)], task: usize, seq: u64, stage: usize) -> Option<u64> {
    starts(log)
        .into_iter()
        .find(|s| s.0 == task && s.1 == seq && s.2 == stage)
        .map(|s| s.3)
}

/// (completion ms, late) of (task, seq).
pub fn completion(log: &[(Time, Decision)], task: usize, seq: u64) -> Option<(u64, bool)> {
    log.iter().find_map(|(_, d)| match *d {
        Decision::Complete {
            task: t,
            seq: s,
            at,
            late,
            ..
        } if t == task && s == seq => Some((at / MS, late)),
        _ => None,
    })
}
