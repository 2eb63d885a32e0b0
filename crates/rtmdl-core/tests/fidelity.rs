//! What the simulator must model so that it predicts real runs: the
//! scheduling rules a real run follows (packing admission, jobs in order,
//! firm deadlines, exact accounting under late reports) and the machine's
//! overheads (hand-offs, release lateness, shared cores) — hand-computed.

mod common;

use common::*;
use rtmdl_core::*;

fn response(log: &[(Time, Decision)], task: usize, seq: u64) -> Option<Time> {
    log.iter().find_map(|(_, d)| match *d {
        Decision::Complete {
            task: t,
            seq: s,
            release,
            at,
            ..
        } if t == task && s == seq => Some(at - release),
        _ => None,
    })
}

#[test]
fn a_finish_reported_after_the_deadline_was_flagged_counts_once() {
    let ts = taskset(1, 1, vec![], &[("a", 10, &[(Resource::Cpu, 1)])]);
    let mut s = Scheduler::new(
        SchedTask::from_taskset(&ts, &ts.assignments(VariantChoice::Original)),
        &ts.platform,
        Box::new(policy::Rtmdl { priority: vec![1] }),
    );
    s.release(0, 0);
    let Some(Decision::Start { job, .. }) = s.poll() else {
        panic!()
    };
    s.advance(10 * MS + 1); // the dispatcher woke late
    assert!(matches!(s.poll(), Some(Decision::Miss { .. })));
    s.finished(job, 9 * MS); // the worker's clock: it ended at 9 ms
    let c = s.counters()[0];
    assert_eq!(c.released, c.completed + c.missed + c.dropped + c.failed);
    assert_eq!((c.completed, c.missed), (0, 1));
}

#[test]
fn a_low_priority_inference_is_not_packed_where_it_would_make_a_higher_one_miss() {
    let mut ts = taskset(
        1,
        2,
        vec![1.0, 1.3],
        &[
            ("H", 100, &[(Resource::Gpu, 4)]),
            ("L", 100, &[(Resource::Gpu, 4)]),
        ],
    );
    ts.tasks[0].deadline = 5 * MS;
    let (log, c) = run(&ts, PolicyKind::Rtmdl, Some(&[1, 2]), 100);
    // Packed at 0, both would run at 1/1.3 and H would end at 5.2 ms > 5 ms.
    // L waits until H has done enough alone that it ends by 5 ms under
    // packing: at t, 4 − t ms are left and t + (4 − t)·1.3 ≤ 5 from t = 2/3 ms.
    let start_l = log
        .iter()
        .find_map(|(t, d)| matches!(d, Decision::Start { task: 1, .. }).then_some(*t));
    assert_eq!(start_l, Some(666_667));
    assert_eq!(completion(&log, 0, 0), Some((5, false)));
    assert_eq!(c[0].missed, 0);
    // Where packing costs nobody a deadline, both run at once.
    ts.tasks[0].deadline = 6 * MS;
    let (log, _) = run(&ts, PolicyKind::Rtmdl, Some(&[1, 2]), 100);
    assert_eq!(start_of(&log, 1, 0, 0), Some(0));
    // Without the rule's reason (one lane, or no slowdown) nothing waits.
    ts.tasks[0].deadline = 5 * MS;
    ts.platform.gpu_slowdown = vec![1.0, 1.0];
    let (log, _) = run(&ts, PolicyKind::Rtmdl, Some(&[1, 2]), 100);
    assert_eq!(start_of(&log, 1, 0, 0), Some(0));
}

#[test]
fn the_report_shows_the_priorities_the_policy_used() {
    let ts = taskset(
        1,
        1,
        vec![],
        &[
            ("short", 5, &[(Resource::Cpu, 1)]),
            ("long", 10, &[(Resource::Cpu, 8)]),
        ],
    );
    let opts = SimOptions {
        duration: 20 * MS,
        seed: 1,
        ..Default::default()
    };
    let um = simulate(&ts, PolicyKind::Um, VariantChoice::Original, opts);
    let prio: Vec<Option<u32>> = um.tasks.iter().map(|t| t.priority).collect();
    assert_eq!(prio, vec![Some(2), Some(1)], "um ranks the 8 ms task first");
    let edf = simulate(&ts, PolicyKind::Edf, VariantChoice::Original, opts);
    assert!(edf.tasks.iter().all(|t| t.priority.is_none()));
}

#[test]
fn a_tasks_jobs_run_in_order_even_with_free_workers() {
    // 5 ms of work every 4 ms on two workers, overrun = continue: the
    // classical model runs job k+1 after job k: responses 5, 6, 7 ms.
    let ts = taskset(2, 1, vec![], &[("a", 4, &[(Resource::Cpu, 5)])]);
    let (log, _) = run(&ts, PolicyKind::Rtmdl, None, 12);
    let r: Vec<Time> = (0..3).filter_map(|k| response(&log, 0, k)).collect();
    assert_eq!(r, vec![5 * MS, 6 * MS, 7 * MS]);
}

#[test]
fn firm_retires_a_late_job_at_its_deadline_so_one_overrun_costs_one_miss() {
    let spec: &[TaskSpec] = &[
        ("L", 100, &[(Resource::Cpu, 9)]),
        ("X", 10, &[(Resource::Cpu, 3)]),
    ];
    let mut ts = taskset(1, 1, vec![], spec);
    ts.tasks[1].offset = MS;
    ts.tasks[1].overrun = Overrun::Skip;
    let (_, skip) = run(&ts, PolicyKind::Rtmdl, Some(&[2, 1]), 30);
    // skip: X0 runs 9..12, late; X1 (released at 11) is dropped; X2 on time.
    assert_eq!(
        (skip[1].missed, skip[1].dropped, skip[1].completed),
        (1, 1, 1)
    );
    ts.tasks[1].overrun = Overrun::Firm;
    let (log, firm) = run(&ts, PolicyKind::Rtmdl, Some(&[2, 1]), 30);
    // firm: X0 is retired at 11 (its sub-task still ends at 12), X1 runs
    // 12..15 and X2 21..24, both on time.
    assert_eq!(
        (firm[1].missed, firm[1].dropped, firm[1].completed),
        (1, 0, 2)
    );
    assert_eq!(start_of(&log, 1, 1, 0), Some(12));
}

#[test]
fn hand_offs_add_to_every_sub_task() {
    let mut ts = taskset(
        1,
        1,
        vec![],
        &[(
            "a",
            100,
            &[(Resource::Cpu, 1), (Resource::Gpu, 2), (Resource::Cpu, 1)],
        )],
    );
    let d = |us: u64| Some(ExecProfile::Fixed(us * 1000));
    ts.platform.overheads.dispatch = [d(100), d(100)];
    let (log, _) = run(&ts, PolicyKind::Rtmdl, None, 100);
    assert_eq!(response(&log, 0, 0), Some(4 * MS + 300_000));
    ts.platform.overheads.back = [d(50), d(50)];
    let (log, _) = run(&ts, PolicyKind::Rtmdl, None, 100);
    assert_eq!(response(&log, 0, 0), Some(4 * MS + 450_000));
    ts.platform.overheads.release = d(200);
    let (log, _) = run(&ts, PolicyKind::Rtmdl, None, 100);
    assert_eq!(response(&log, 0, 0), Some(4 * MS + 650_000));
}

#[test]
fn lanes_on_a_cpu_engine_share_the_cores_with_the_workers() {
    let spec: &[TaskSpec] = &[
        ("A", 20, &[(Resource::Cpu, 10)]),
        ("B", 20, &[(Resource::Gpu, 10)]),
        ("C", 20, &[(Resource::Cpu, 10)]),
        ("D", 20, &[(Resource::Gpu, 10)]),
    ];
    let mut ts = taskset(2, 2, vec![1.0, 1.0], spec);
    for t in &mut ts.tasks {
        t.deadline = 12 * MS;
    }
    let (_, c) = run(&ts, PolicyKind::Rtmdl, None, 20);
    assert!(c.iter().all(|c| c.completed == 1), "own capacity: on time");
    ts.platform.cores = Some(2);
    ts.platform.lanes_on_cpu = true;
    let (log, c) = run(&ts, PolicyKind::Rtmdl, None, 20);
    // Four compute threads on two cores: each at half speed, all end at 20.
    assert!(c.iter().all(|c| c.missed == 1), "{c:?}");
    assert_eq!(response(&log, 0, 0), Some(20 * MS));
}

mod late_reports {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Release(usize),
        Tick(Time),
        /// Report the i-th running sub-task finished (or failed), stamped
        /// `back` ns before the core's clock (a worker's earlier reading).
        Report {
            i: usize,
            back: Time,
            fail: bool,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..3).prop_map(Op::Release),
            (0u64..6 * MS).prop_map(Op::Tick),
            (0usize..4, 0u64..4 * MS, prop::bool::weighted(0.1))
                .prop_map(|(i, back, fail)| Op::Report { i, back, fail }),
        ]
    }

    proptest! {
        #[test]
        fn accounting_is_exact_when_reports_arrive_late_and_out_of_order(
            ops in prop::collection::vec(op(), 1..300),
            overrun in 0usize..3,
            policy in 0usize..5,
        ) {
            let spec: &[TaskSpec] = &[
                ("a", 5, &[(Resource::Cpu, 1), (Resource::Gpu, 2)]),
                ("b", 7, &[(Resource::Gpu, 1), (Resource::Cpu, 1)]),
                ("c", 4, &[(Resource::Cpu, 2)]),
            ];
            let mut ts = taskset(2, 2, vec![1.0, 1.2], spec);
            for t in &mut ts.tasks {
                t.overrun = [Overrun::Continue, Overrun::Skip, Overrun::Firm][overrun];
            }
            let assign = ts.assignments(VariantChoice::Original);
            let mut s = Scheduler::new(
                SchedTask::from_taskset(&ts, &assign),
                &ts.platform,
                PolicyKind::ALL[policy].build(&ts, &assign),
            );
            let mut now: Time = 0;
            let mut running: Vec<JobId> = Vec::new();
            let drain = |s: &mut Scheduler, running: &mut Vec<JobId>| {
                while let Some(d) = s.poll() {
                    if let Decision::Start { job, .. } = d {
                        running.push(job);
                    }
                }
            };
            for op in ops {
                match op {
                    Op::Release(t) => s.release(t, now),
                    Op::Tick(dt) => {
                        now += dt;
                        s.advance(now);
                    }
                    Op::Report { i, back, fail } if !running.is_empty() => {
                        let job = running.remove(i % running.len());
                        let at = now.saturating_sub(back);
                        if fail {
                            s.failed(job, at, FailReason::Error);
                        } else {
                            s.finished(job, at);
                        }
                    }
                    Op::Report { .. } => {}
                }
                drain(&mut s, &mut running);
            }
            // Let everything end.
            for _ in 0..10_000 {
                if s.is_idle() && running.is_empty() {
                    break;
                }
                now += MS;
                s.advance(now);
                for job in std::mem::take(&mut running) {
                    s.finished(job, now - MS / 2);
                }
                drain(&mut s, &mut running);
            }
            prop_assert!(s.is_idle());
            for c in s.counters() {
                prop_assert_eq!(c.released, c.completed + c.missed + c.dropped + c.failed, "{:?}", c);
                prop_assert_eq!(c.pending(), 0);
            }
        }
    }
}
