//! Why a job missed, on schedules whose answer is known by hand.

mod common;

use common::*;
use rtmdl_core::why::{Cause, Exec, Schedule, SlotIndex, explain, explain_job};
use rtmdl_core::*;

/// One lane: `urgent` (priority 1, 2 ms, deadline 5 ms) and `long`
/// (priority 2, 8 ms every 100 ms).
fn pair() -> TaskSet {
    let mut ts = taskset(
        1,
        1,
        vec![],
        &[
            ("urgent", 100, &[(Resource::Gpu, 2)]),
            ("long", 100, &[(Resource::Gpu, 8)]),
        ],
    );
    ts.tasks[0].deadline = 5 * MS;
    ts.tasks[0].offset = MS;
    ts
}

fn exec(task: usize, seq: u64, from_ms: f64, to_ms: f64) -> Exec {
    Exec {
        task,
        seq,
        stage: 0,
        variant: 0,
        slot: Slot::Gpu(0),
        start: (from_ms * 1e6) as Time,
        end: (to_ms * 1e6) as Time,
    }
}

#[test]
fn a_job_behind_a_less_urgent_sub_task_is_blocked_by_it() {
    let ts = pair();
    // long runs 0..8 on the lane; urgent, released at 1, waits until 8.
    let execs = [exec(1, 0, 0.0, 8.0), exec(0, 0, 8.0, 10.0)];
    let none = |_: Time, _: Time| 0;
    let prio = [Some(1), Some(2)];
    let s = Schedule {
        ts: &ts,
        priorities: &prio,
        execs: &execs,
        missed: &[(0, 0, MS)],
        stalled: &none,
    };
    let w = explain_job(&s, &SlotIndex::new(&ts, &execs), (0, 0, MS));
    // Its window is [1, 6): all of it waiting behind `long`.
    assert_eq!(w.terms.get(&Cause::Blocking), Some(&(5 * MS)));
    assert_eq!(w.terms.get(&Cause::Own), None);
    assert_eq!(w.dominant, Some(Cause::Blocking));
    assert_eq!(w.by.get(&(Cause::Blocking, 1)), Some(&(5 * MS)));
    let r = explain(&s, &[0, 0], &[0, 0]);
    let t = &r.tasks[0];
    assert_eq!((t.misses, t.dominant.get(&Cause::Blocking)), (1, Some(&1)));
    assert_eq!(t.top_blocker, Some(("long".to_string(), 5.0)));
    let line = r.table(None);
    assert!(line.contains("why urgent: 1 missed"), "{line}");
    assert!(line.contains("blocked most by long (5.00)"), "{line}");
    // With the priorities the other way round it is interference.
    let flipped = [Some(2), Some(1)];
    let s = Schedule {
        priorities: &flipped,
        ..s
    };
    let w = explain_job(&s, &SlotIndex::new(&ts, &execs), (0, 0, MS));
    assert_eq!(w.dominant, Some(Cause::Interference));
}

#[test]
fn a_free_lane_during_a_probe_stall_is_the_machine_and_the_rest_idle() {
    let ts = pair();
    // urgent released at 1, the lane free, starts only at 5 and runs to 7:
    // the probe saw a stall from 2 to 4.5.
    let execs = [exec(0, 0, 5.0, 7.0)];
    let stalled = |a: Time, b: Time| {
        let (s, e) = (2 * MS, 4 * MS + MS / 2);
        b.min(e).saturating_sub(a.max(s))
    };
    let prio = [Some(1), Some(2)];
    let s = Schedule {
        ts: &ts,
        priorities: &prio,
        execs: &execs,
        missed: &[(0, 0, MS)],
        stalled: &stalled,
    };
    let w = explain_job(&s, &SlotIndex::new(&ts, &execs), (0, 0, MS));
    // [1, 6): 2.5 ms machine, 1.5 ms idle, 1 ms own (5..6).
    assert_eq!(w.terms.get(&Cause::Machine), Some(&(5 * MS / 2)));
    assert_eq!(w.terms.get(&Cause::Idle), Some(&(3 * MS / 2)));
    assert_eq!(w.terms.get(&Cause::Own), Some(&MS));
    assert_eq!(w.dominant, Some(Cause::Machine));
    let total: Time = w.terms.values().sum();
    assert_eq!(total, 5 * MS, "the terms add up to the deadline");
}

#[test]
fn own_work_that_fills_the_deadline_is_the_cause_and_its_excess_is_measured() {
    let ts = pair();
    // Profiled at 2 ms, ran 7: 5 ms beyond its p99.
    let execs = [exec(0, 0, 1.0, 8.0)];
    let none = |_: Time, _: Time| 0;
    let prio = [Some(1), Some(2)];
    let s = Schedule {
        ts: &ts,
        priorities: &prio,
        execs: &execs,
        missed: &[(0, 0, MS)],
        stalled: &none,
    };
    let w = explain_job(&s, &SlotIndex::new(&ts, &execs), (0, 0, MS));
    assert_eq!(w.dominant, Some(Cause::Own));
    assert_eq!(w.terms.get(&Cause::Own), Some(&(5 * MS)));
    assert_eq!(w.exceeded, 5 * MS);
}

#[test]
fn the_simulator_names_the_less_urgent_task_that_blocks() {
    let ts = pair();
    let mut ts = ts;
    ts.tasks[0].priority = Some(1);
    ts.tasks[1].priority = Some(2);
    let r = simulate_why(
        &ts,
        PolicyKind::Rtmdl,
        VariantChoice::Plan,
        SimOptions {
            duration: 1000 * MS,
            seed: 1,
            ..Default::default()
        },
    );
    let urgent = &r.tasks[0];
    assert_eq!(urgent.missed, 10, "{}", r.table());
    let why = r.why.as_ref().expect("asked for");
    let t = &why.tasks[0];
    assert_eq!(t.misses, 10);
    assert_eq!(t.dominant.get(&Cause::Blocking), Some(&10));
    assert_eq!(t.top_blocker.as_ref().map(|b| b.0.as_str()), Some("long"));
    // The whole window, 5 ms, is blocking by `long` (8 ms from 0).
    assert!((t.mean_ms[&Cause::Blocking] - 5.0).abs() < 1e-9, "{t:?}");
    assert!(r.table().contains("why urgent: 10 missed"), "{}", r.table());
    // Nothing missed, nothing to explain.
    assert_eq!(why.tasks[1].misses, 0);
}
