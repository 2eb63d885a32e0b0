//! Failures decided in the core: errors, hangs caught by the watchdog,
//! quarantine — hand-computed, and as properties under the simulator.

mod common;

use common::*;
use proptest::prelude::*;
use rtmdl_core::*;

fn hang_every_call() -> FaultSpec {
    FaultSpec {
        mode: FaultMode::Hang,
        skip: 0,
        every: 1,
        times: None,
        hang: 3_600_000 * MS,
    }
}

#[test]
fn a_failed_sub_task_fails_its_job_and_frees_its_worker() {
    let ts = taskset(1, 1, vec![], &[("a", 10, &[(Resource::Cpu, 2)])]);
    let mut s = Scheduler::new(
        SchedTask::from_taskset(&ts, &ts.assignments(VariantChoice::Original)),
        &ts.platform,
        Box::new(policy::Rtmdl { priority: vec![1] }),
    );
    s.release(0, 0);
    s.release(0, 1);
    let Some(Decision::Start { job, .. }) = s.poll() else {
        panic!("no start")
    };
    assert!(s.failed(job, MS, FailReason::Error));
    assert_eq!(
        s.poll(),
        Some(Decision::Fail {
            task: 0,
            seq: 0,
            at: MS,
            reason: FailReason::Error,
            after_miss: false,
        })
    );
    // The worker is free again: the second job starts at once.
    assert!(matches!(s.poll(), Some(Decision::Start { seq: 1, .. })));
    // A stale id is ignored.
    assert!(!s.failed(job, 2 * MS, FailReason::Error));
    let c = s.counters()[0];
    assert_eq!((c.released, c.failed, c.pending()), (2, 1, 1));
    // Not delivered on time: the failure is in the miss rate.
    assert_eq!((c.not_on_time(), c.miss_rate()), (1, 0.5));
}

#[test]
fn the_watchdog_aborts_a_hung_sub_task_and_the_third_hang_quarantines_the_task() {
    let mut ts = taskset(1, 1, vec![], &[("stuck", 10, &[(Resource::Cpu, 2)])]);
    ts.models[0].stages[0].fault = Some(hang_every_call());
    ts.platform.faults = FaultPolicy {
        watchdog: Some(5 * MS),
        max_hangs: 3,
    };
    let (log, c) = run(&ts, PolicyKind::Rtmdl, None, 40);
    let aborts: Vec<(Time, u64)> = log
        .iter()
        .filter_map(|(t, d)| match d {
            Decision::Abort { seq, .. } => Some((*t, *seq)),
            _ => None,
        })
        .collect();
    // Started at 0, 10, 20; each aborted 5 ms (and 1 ns) later.
    assert_eq!(
        aborts,
        vec![(5 * MS + 1, 0), (15 * MS + 1, 1), (25 * MS + 1, 2)]
    );
    let quarantined: Vec<Time> = log
        .iter()
        .filter_map(|(t, d)| matches!(d, Decision::Quarantine { task: 0, .. }).then_some(*t))
        .collect();
    assert_eq!(quarantined, vec![25 * MS + 1]);
    // The job released at 30 fails at its release, without running.
    assert!(log.iter().any(|(t, d)| *t == 30 * MS
        && matches!(
            d,
            Decision::Fail {
                seq: 3,
                reason: FailReason::Quarantined,
                ..
            }
        )));
    assert!(
        !log.iter()
            .any(|(_, d)| matches!(d, Decision::Start { seq: 3, .. }))
    );
    // Each job is counted once, as failed, and none was delivered: the
    // task's miss rate is 100 %.
    assert_eq!((c[0].released, c[0].failed, c[0].missed), (4, 4, 0));
    assert_eq!(c[0].miss_rate(), 1.0);
}

#[test]
fn a_hung_black_box_job_frees_the_worker_it_held() {
    // dm holds the CPU worker through the GPU part; the lane hangs.
    let mut ts = taskset(
        1,
        1,
        vec![],
        &[
            ("a", 20, &[(Resource::Cpu, 1), (Resource::Gpu, 1)]),
            ("b", 20, &[(Resource::Cpu, 1)]),
        ],
    );
    ts.models[0].stages[1].fault = Some(FaultSpec {
        times: Some(1),
        ..hang_every_call()
    });
    ts.platform.faults.watchdog = Some(4 * MS);
    let (log, c) = run(&ts, PolicyKind::Dm, None, 20);
    // a: CPU 0..1, lane from 1, aborted at 5 ms + 1 ns; b waits for the
    // worker a held and starts then.
    assert_eq!(start_of(&log, 1, 0, 0), Some(5));
    assert_eq!((c[0].failed, c[1].completed), (1, 1));
}

#[test]
fn errors_and_panics_fail_the_calls_the_fault_hits() {
    let mut ts = taskset(1, 1, vec![], &[("flaky", 10, &[(Resource::Cpu, 1)])]);
    ts.models[0].stages[0].fault = Some(FaultSpec {
        mode: FaultMode::Panic,
        skip: 1,
        every: 2,
        times: None,
        hang: 0,
    });
    let (log, c) = run(&ts, PolicyKind::Rtmdl, None, 100);
    let failed: Vec<u64> = log
        .iter()
        .filter_map(|(_, d)| match d {
            Decision::Fail {
                seq,
                reason: FailReason::Panic,
                ..
            } => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(failed, vec![1, 3, 5, 7, 9]);
    assert_eq!((c[0].completed, c[0].failed), (5, 5));
    assert_eq!(c[0].miss_rate(), 0.5);
}

/// One task whose every job fails (an engine error), one healthy task.
fn one_broken() -> TaskSet {
    let mut ts = taskset(
        1,
        1,
        vec![],
        &[
            ("broken", 10, &[(Resource::Cpu, 1), (Resource::Gpu, 2)]),
            ("healthy", 10, &[(Resource::Cpu, 1)]),
        ],
    );
    ts.tasks[0].max_miss_rate = 0.05;
    ts.tasks[1].max_miss_rate = 0.05;
    ts.models[0].stages[1].fault = Some(FaultSpec {
        mode: FaultMode::Error,
        skip: 0,
        every: 1,
        times: None,
        hang: 0,
    });
    ts
}

#[test]
fn a_task_whose_every_job_fails_is_over_its_zeta_in_the_report() {
    let ts = one_broken();
    let opts = SimOptions {
        duration: 100 * MS,
        seed: 7,
        timeline: Some(20 * MS),
        grace: None,
    };
    let r = simulate(&ts, PolicyKind::Rtmdl, VariantChoice::Original, opts);
    let broken = &r.tasks[0];
    assert_eq!((broken.jobs, broken.failed, broken.missed), (10, 10, 0));
    assert_eq!(broken.miss_rate, 1.0);
    assert!(!r.meets_tolerances(), "a task that delivered nothing met ζ");
    assert_eq!(r.tasks[1].miss_rate, 0.0);
    // Overall: 10 of 20 jobs not on time.
    assert_eq!(r.miss_rate, 0.5);
    assert!(r.table().contains("ζ"), "{}", r.table());
    // The timeline counts each failure in the bin where it ended.
    let t = r.timeline.as_ref().expect("timeline asked for");
    let (rate, jobs) = t.miss_rate("broken", 0.0, 100.0);
    assert_eq!((rate, jobs), (1.0, 10));
}

#[test]
fn a_job_that_fails_after_its_deadline_is_one_miss() {
    // 5 ms of CPU, then a stage that errors, every 10 ms with a 2 ms
    // deadline: missed at 2 ms, failed at 5.
    let mut ts = taskset(
        1,
        1,
        vec![],
        &[("late", 10, &[(Resource::Cpu, 5), (Resource::Cpu, 1)])],
    );
    ts.tasks[0].deadline = 2 * MS;
    ts.models[0].stages[1].fault = Some(FaultSpec {
        mode: FaultMode::Error,
        skip: 0,
        every: 1,
        times: None,
        hang: 0,
    });
    let (log, c) = run(&ts, PolicyKind::Rtmdl, None, 30);
    assert_eq!((c[0].released, c[0].missed, c[0].failed), (3, 3, 0));
    assert_eq!(c[0].miss_rate(), 1.0);
    assert!(log.iter().any(|(_, d)| matches!(
        d,
        Decision::Fail {
            after_miss: true,
            ..
        }
    )));
}

#[test]
fn failures_reach_the_switching_monitor_but_do_not_step_down_a_healthy_task() {
    // The broken task's model has a second, faster variant that works:
    // failures on the first move it there, as misses would.
    let mut ts = one_broken();
    let mut fast = ts.models[0].variants[0].clone();
    fast.name = "fast".into();
    fast.accuracy = 0.8;
    fast.times = vec![ExecProfile::Fixed(MS), ExecProfile::Fixed(MS)];
    ts.models[0].variants.push(fast);
    ts.models[0].stages[1].fault = Some(FaultSpec {
        mode: FaultMode::Error,
        skip: 0,
        every: 1,
        times: Some(3),
        hang: 0,
    });
    ts.adapt = Some(AdaptOptions {
        window: 4,
        ..Default::default()
    });
    let (log, c) = run(&ts, PolicyKind::Rtmdl, Some(&[1, 2]), 200);
    let switches: Vec<(usize, usize)> = log
        .iter()
        .filter_map(|(_, d)| match *d {
            Decision::Switch { task, variant, .. } => Some((task, variant)),
            _ => None,
        })
        .collect();
    assert_eq!(switches.first(), Some(&(0, 1)), "{switches:?}");
    assert_eq!(c[0].failed, 3);

    // A task whose only variant fails is starved, but an error says
    // nothing about time: the healthy, more urgent task keeps its variant.
    let mut ts = one_broken();
    ts.tasks.swap(0, 1);
    ts.tasks[0].model = 1;
    ts.tasks[1].model = 0;
    let mut fast = ts.models[1].variants[0].clone();
    fast.name = "fast".into();
    fast.times = vec![ExecProfile::Fixed(MS / 2)];
    ts.models[1].variants.push(fast);
    ts.adapt = Some(AdaptOptions {
        window: 4,
        ..Default::default()
    });
    let (log, c) = run(&ts, PolicyKind::Rtmdl, Some(&[1, 2]), 200);
    assert_eq!(c[1].failed, c[1].released);
    assert!(
        !log.iter()
            .any(|(_, d)| matches!(d, Decision::Switch { task: 0, .. })),
        "the healthy task stepped down for a broken one"
    );
}

fn fault() -> impl Strategy<Value = Option<FaultSpec>> {
    prop_oneof![
        Just(None),
        (0usize..3, 0u64..4, 1u64..4, prop::option::of(1u64..5)).prop_map(
            |(mode, skip, every, times)| Some(FaultSpec {
                mode: [FaultMode::Error, FaultMode::Panic, FaultMode::Hang][mode],
                skip,
                every,
                times,
                hang: 100 * MS,
            })
        ),
    ]
}

type Spec = (Vec<(Resource, u64)>, u64, Option<FaultSpec>);

fn setup() -> impl Strategy<Value = (TaskSet, usize)> {
    let task = (
        prop::collection::vec(
            (
                prop_oneof![Just(Resource::Cpu), Just(Resource::Gpu)],
                1u64..=6,
            ),
            1..=3,
        ),
        8u64..=40,
        fault(),
    );
    (
        1usize..=2,
        1usize..=2,
        prop::collection::vec(task, 1..=4),
        0usize..5,
        1u32..=3,
    )
        .prop_map(|(cpu, lanes, tasks, policy, max_hangs)| {
            let tasks: Vec<Spec> = tasks;
            let names: Vec<String> = (0..tasks.len()).map(|i| format!("t{i}")).collect();
            let refs: Vec<TaskSpec> = tasks
                .iter()
                .zip(&names)
                .map(|((c, p, _), n)| (n.as_str(), *p, c.as_slice()))
                .collect();
            let mut ts = taskset(cpu, lanes, vec![], &refs);
            for (i, (_, _, f)) in tasks.iter().enumerate() {
                let stage = i % ts.models[i].stages.len();
                ts.models[i].stages[stage].fault = *f;
            }
            ts.platform.faults = FaultPolicy {
                // Above any healthy sub-task, even stretched 4× by FIFO threads
                // sharing one core.
                watchdog: Some(40 * MS),
                max_hangs,
            };
            (ts, policy)
        })
}

proptest! {
    #[test]
    fn failures_are_accounted_once_and_stay_with_their_task((ts, policy) in setup()) {
        let policy = PolicyKind::ALL[policy];
        let (log, c) = run(&ts, policy, None, 400);
        let faulty = |t: usize| ts.models[t].stages.iter().any(|s| s.fault.is_some());
        let mut hangs = vec![0u32; ts.tasks.len()];
        let mut quarantined_at = vec![None; ts.tasks.len()];
        for (at, d) in &log {
            match *d {
                Decision::Fail { task, .. } => prop_assert!(faulty(task), "healthy task {task} failed"),
                // A sub-task already running when its task is quarantined
                // may still hang afterwards; nothing starts after.
                Decision::Abort { task, .. } => hangs[task] += 1,
                Decision::Quarantine { task, .. } => {
                    prop_assert_eq!(hangs[task], ts.platform.faults.max_hangs);
                    quarantined_at[task] = Some(*at);
                }
                Decision::Start { task, .. } => {
                    prop_assert!(quarantined_at[task].is_none(), "a quarantined task ran");
                }
                _ => {}
            }
        }
        for (t, c) in c.iter().enumerate() {
            prop_assert_eq!(c.released, c.completed + c.missed + c.dropped + c.failed, "task {}", t);
            prop_assert_eq!(quarantined_at[t].is_some(), hangs[t] >= ts.platform.faults.max_hangs);
        }
    }
}
