//! GPU lanes in the real runtime are admitted by the same scheduler core as
//! in the simulator: same order, same K limit. Fake lane bodies (sleeps)
//! stand in for the GPU so this runs anywhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rtmdl_core::*;
use rtmdl_runtime::{Bodies, Data, RunOptions, RuntimeError, Work, run};

const MS: Time = 1_000_000;

/// Four GPU-only tasks, released together, on K = 2 lanes.
fn gpu_tasks() -> TaskSet {
    let models = (0..4)
        .map(|i| Model {
            name: format!("m{i}"),
            stages: vec![Stage::new("infer", Resource::Gpu)],
            shared_parts: vec![],
            variants: vec![Variant {
                name: "v".into(),
                accuracy: 1.0,
                shared_with: None,
                private_bytes: 0,
                times: vec![ExecProfile::Fixed(40 * MS)],
                file: None,
            }],
        })
        .collect();
    let tasks = (0..4)
        .map(|i| Task {
            name: format!("t{i}"),
            model: i,
            period: 400 * MS,
            deadline: 400 * MS,
            offset: 0,
            max_miss_rate: 0.0,
            min_accuracy: 0.0,
            // Priorities deliberately not in config order.
            priority: Some([3, 1, 4, 2][i]),
            variant: Some(0),
            overrun: Overrun::Skip,
            floor: None,
            stop: None,
            max_misses: None,
        })
        .collect();
    TaskSet {
        platform: Platform {
            cpu_workers: 1,
            gpu_lanes: 2,
            gpu_slowdown: vec![1.0, 1.0],
            storage_budget: None,
            ..Default::default()
        },
        models,
        tasks,
        adapt: None,
    }
}

/// A fake inference: sleeps 40 ms and counts how many run at once.
struct FakeLane {
    busy: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Work for FakeLane {
    fn run(&mut self, input: Data) -> Result<Data, String> {
        let now = self.busy.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(40));
        self.busy.fetch_sub(1, Ordering::SeqCst);
        Ok(input)
    }
}

struct FakeBodies {
    busy: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Bodies for FakeBodies {
    fn work(&self, _task: usize, _stage: usize) -> Result<Box<dyn Work>, RuntimeError> {
        Ok(Box::new(FakeLane {
            busy: self.busy.clone(),
            peak: self.peak.clone(),
        }))
    }
    fn input(&self, _task: usize, _seq: u64) -> Result<Data, String> {
        Ok(Vec::new())
    }
}

#[test]
fn lanes_admit_in_priority_order_up_to_k_like_the_simulator() {
    let ts = gpu_tasks();
    let assign = ts.assignments(VariantChoice::Plan);
    let (busy, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let bodies = Arc::new(FakeBodies {
        busy,
        peak: peak.clone(),
    });
    let opts = RunOptions {
        duration: 1,
        realtime: false,
        trace: true,
        ..Default::default()
    };
    let out = run(
        &ts,
        &assign,
        PolicyKind::Rtmdl.build(&ts, &assign),
        bodies,
        &opts,
    )
    .unwrap();
    assert_eq!(
        peak.load(Ordering::SeqCst),
        2,
        "never more than K = 2 inferences at once"
    );

    // Real order of lane admissions (by start time).
    let mut slices = out.trace.unwrap().slices;
    slices.sort_by_key(|s| s.start);
    let real: Vec<usize> = slices.iter().map(|s| s.task).collect();

    // The simulator's order on the same set.
    let mut log = Log::default();
    simulate_with(
        &ts,
        &assign,
        PolicyKind::Rtmdl.build(&ts, &assign),
        SimOptions {
            duration: 1,
            seed: 1,
            ..Default::default()
        },
        &mut log,
    );
    let simulated: Vec<usize> = log
        .0
        .iter()
        .filter_map(|(_, d)| match d {
            Decision::Start { task, .. } => Some(*task),
            _ => None,
        })
        .collect();
    // Priorities 1, 2 first (tasks 1 and 3), then 3, 4 (tasks 0 and 2).
    let pairs = |v: &[usize]| {
        let mut a = v[..2].to_vec();
        let mut b = v[2..].to_vec();
        a.sort();
        b.sort();
        (a, b)
    };
    assert_eq!(pairs(&simulated), (vec![1, 3], vec![0, 2]));
    assert_eq!(pairs(&real), pairs(&simulated));
    // The second pair starts only when a lane frees (~40 ms later).
    assert!(slices[2].start >= slices[0].end.min(slices[1].end));
}
