//! What the drivers read from the scheduler between decisions (the
//! runtime's dispatcher, its stall detector and the reports): each
//! observer says what the schedule holds at that moment, hand-computed.

mod common;

use common::*;
use rtmdl_core::*;

/// `cam`: 2 ms on the CPU, then 3 ms on the GPU, every 10 ms, planned on
/// its second variant; `mic`: 1 ms on the CPU every 20 ms. One worker, one
/// lane; `cam` first.
fn cam_and_mic() -> TaskSet {
    taskset(
        1,
        1,
        vec![],
        &[
            ("cam", 10, &[(Resource::Cpu, 2), (Resource::Gpu, 3)]),
            ("mic", 20, &[(Resource::Cpu, 1)]),
        ],
    )
}

fn scheduler() -> Scheduler {
    let mut ts = cam_and_mic();
    let other = Variant {
        name: "other".into(),
        ..ts.models[0].variants[0].clone()
    };
    ts.models[0].variants.insert(0, other);
    ts.tasks[0].variant = Some(1);
    ts.tasks[0].priority = Some(1);
    ts.tasks[1].priority = Some(2);
    let faults = FaultPolicy {
        watchdog: Some(7 * MS),
        max_hangs: 2,
    };
    Scheduler::new(
        SchedTask::from_taskset(&ts, &ts.assignments(VariantChoice::Plan)),
        &ts.platform,
        Box::new(policy::Rtmdl {
            priority: vec![1, 2],
        }),
    )
    .with_faults(faults)
}

fn start(s: &mut Scheduler) -> (JobId, usize, usize, Slot) {
    match s.poll() {
        Some(Decision::Start {
            job,
            task,
            stage,
            slot,
            ..
        }) => (job, task, stage, slot),
        other => panic!("expected a start, got {other:?}"),
    }
}

#[test]
fn observers_follow_one_hand_computed_schedule() {
    let mut s = scheduler();
    // Before anything: idle, nothing queued, no time yet.
    assert!(s.is_idle());
    assert_eq!(s.utilisation(), (0.0, 0.0));
    assert_eq!(s.faults().watchdog, Some(7 * MS));
    assert_eq!(s.faults().max_hangs, 2);
    // The static shape: which sub-tasks each slot may run, chain lengths,
    // variants.
    assert_eq!(s.stages_on(Slot::Cpu(0)), vec![(0, 0), (1, 0)]);
    assert_eq!(s.stages_on(Slot::Gpu(0)), vec![(0, 1)]);
    assert_eq!((s.stages_of(0), s.stages_of(1)), (2, 1));
    assert_eq!((s.variant(0), s.variant(1)), (1, 0));
    assert_eq!(s.variants_of(0), vec![1], "no switching: the planned one");
    assert!(!s.is_quarantined(0) && !s.is_quarantined(1));

    // t = 0: both released; cam's CPU stage starts, mic waits for the worker.
    s.release(0, 0);
    s.release(1, 0);
    let (cam, task, stage, slot) = start(&mut s);
    assert_eq!((task, stage, slot), (0, 0, Slot::Cpu(0)));
    assert_eq!(s.poll(), None);
    assert!(!s.is_idle());
    assert_eq!((s.queued(Resource::Cpu), s.queued(Resource::Gpu)), (1, 0));
    let queued = s.queued_jobs();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!((queued[0].1, queued[0].2), (1, 0), "mic's CPU stage");

    // t = 2 ms: cam's CPU stage ends; its inference takes the lane and mic
    // the worker.
    assert!(s.finished(cam, 2 * MS));
    let mut started = [start(&mut s), start(&mut s)];
    started.sort_by_key(|x| (x.1, x.2));
    assert_eq!(
        started.iter().map(|x| (x.1, x.2, x.3)).collect::<Vec<_>>(),
        vec![(0, 1, Slot::Gpu(0)), (1, 0, Slot::Cpu(0))]
    );
    assert_eq!(s.now(), 2 * MS);
    assert_eq!((s.queued(Resource::Cpu), s.queued(Resource::Gpu)), (0, 0));
    assert!(s.queued_jobs().is_empty());

    // mic ends at 3 ms, cam's inference at 5 ms: idle again.
    assert!(s.finished(started[1].0, 3 * MS));
    assert!(s.finished(started[0].0, 5 * MS));
    while s.poll().is_some() {}
    assert!(s.is_idle());
    assert_eq!(s.now(), 5 * MS);
    // Over [0, 5 ms]: the worker busy 3 ms, the lane 3 ms.
    let (cpu, gpu) = s.utilisation();
    assert!((cpu - 0.6).abs() < 1e-9, "cpu {cpu}");
    assert!((gpu - 0.6).abs() < 1e-9, "gpu {gpu}");
    let c = s.counters();
    assert_eq!((c[0].completed, c[1].completed), (1, 1));
}

#[test]
fn with_switching_a_task_may_run_its_whole_ladder() {
    // cam's planned variant (1) and a faster one (0): the ladder is both,
    // planned first; mic has one variant.
    let mut ts = cam_and_mic();
    let faster = Variant {
        name: "faster".into(),
        accuracy: 0.8,
        times: vec![ExecProfile::Fixed(MS), ExecProfile::Fixed(MS)],
        ..ts.models[0].variants[0].clone()
    };
    ts.models[0].variants.insert(0, faster);
    ts.tasks[0].variant = Some(1);
    ts.adapt = Some(AdaptOptions::default());
    let s = Scheduler::new(
        SchedTask::from_taskset(&ts, &ts.assignments(VariantChoice::Plan)),
        &ts.platform,
        Box::new(policy::Rtmdl {
            priority: vec![1, 2],
        }),
    )
    .with_adapt(ts.adapt);
    assert_eq!(s.variants_of(0), vec![1, 0]);
    assert_eq!(s.variants_of(1), vec![0]);
    assert_eq!(s.variant(0), 1);
}
