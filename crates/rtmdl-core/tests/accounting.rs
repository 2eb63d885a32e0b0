//! Each job lands in its own bucket (completed, missed, dropped, failed)
//! when sub-tasks finish out of release order, and a result that arrives
//! from a worker the watchdog replaced counts for nothing — driven event
//! by event, as the runtime drives the core.

mod common;

use common::*;
use rtmdl_core::*;

fn scheduler(ts: &TaskSet) -> Scheduler {
    Scheduler::new(
        SchedTask::from_taskset(ts, &ts.assignments(VariantChoice::Original)),
        &ts.platform,
        Box::new(policy::Rtmdl {
            priority: (1..=ts.tasks.len() as u32).collect(),
        }),
    )
    .with_faults(ts.platform.faults)
}

/// Every decision the core has now.
fn drain(s: &mut Scheduler) -> Vec<Decision> {
    std::iter::from_fn(|| s.poll()).collect()
}

/// The job started for `(task, seq)` among `ds`.
fn started(ds: &[Decision], task: usize, seq: u64) -> JobId {
    ds.iter()
        .find_map(|d| match d {
            Decision::Start {
                job,
                task: t,
                seq: q,
                ..
            } if *t == task && *q == seq => Some(*job),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no start of {task}/{seq} in {ds:?}"))
}

fn buckets(s: &Scheduler, task: usize) -> (u64, u64, u64, u64, u64) {
    let c = s.counters()[task];
    (c.completed, c.missed, c.dropped, c.failed, c.pending())
}

#[test]
fn jobs_finishing_out_of_release_order_land_in_their_own_buckets() {
    // Three one-stage tasks on three workers, all released at 0.
    let mut ts = taskset(
        3,
        1,
        vec![],
        &[
            ("a", 10, &[(Resource::Cpu, 8)]),
            ("b", 10, &[(Resource::Cpu, 2)]),
            ("c", 10, &[(Resource::Cpu, 2)]),
        ],
    );
    ts.tasks[2].overrun = Overrun::Skip;
    let mut s = scheduler(&ts);
    for t in 0..3 {
        s.release(t, 0);
    }
    let ds = drain(&mut s);
    let (a0, b0, c0) = (started(&ds, 0, 0), started(&ds, 1, 0), started(&ds, 2, 0));
    // Finished in the reverse of their start order: c, then b on time.
    assert!(s.finished(c0, 2 * MS));
    assert!(s.finished(b0, 3 * MS));
    drain(&mut s);
    assert_eq!(buckets(&s, 2), (1, 0, 0, 0, 0));
    assert_eq!(buckets(&s, 1), (1, 0, 0, 0, 0));
    // a is still running at its deadline: missed then, not when it ends.
    s.advance(10 * MS + 1);
    let ds = drain(&mut s);
    assert!(
        ds.iter().any(|d| matches!(
            d,
            Decision::Miss {
                task: 0,
                seq: 0,
                ..
            }
        )),
        "{ds:?}"
    );
    assert_eq!(buckets(&s, 0), (0, 1, 0, 0, 0));
    // The second releases: c's runs and is then left pending past its next
    // release, which `skip` drops; a's second job waits for a's first.
    s.release(0, 10 * MS + 1);
    s.release(2, 10 * MS + 1);
    let ds = drain(&mut s);
    let c1 = started(&ds, 2, 1);
    // a's late first job ends now: still one miss, no completion.
    assert!(s.finished(a0, 12 * MS));
    let ds = drain(&mut s);
    let a1 = started(&ds, 0, 1);
    assert_eq!(buckets(&s, 0), (0, 1, 0, 0, 1));
    // a's second job is on time.
    assert!(s.finished(a1, 19 * MS));
    drain(&mut s);
    assert_eq!(buckets(&s, 0), (1, 1, 0, 0, 0));
    // c's third release finds its second job pending: dropped.
    s.release(2, 20 * MS);
    drain(&mut s);
    assert_eq!(
        buckets(&s, 2),
        (1, 0, 1, 0, 1),
        "c: 1 done, 1 dropped, 1 running"
    );
    // The running one ends after its deadline: one miss.
    assert!(s.finished(c1, 21 * MS));
    drain(&mut s);
    assert_eq!(buckets(&s, 2), (1, 1, 1, 0, 0));
    for t in 0..3 {
        let c = s.counters()[t];
        assert_eq!(
            c.released,
            c.completed + c.missed + c.dropped + c.failed,
            "task {t}: every job counted once"
        );
    }
}

#[test]
fn a_result_from_a_replaced_worker_counts_for_nothing() {
    let mut ts = taskset(1, 1, vec![], &[("a", 20, &[(Resource::Cpu, 2)])]);
    ts.platform.faults = FaultPolicy {
        watchdog: Some(5 * MS),
        max_hangs: 3,
    };
    let mut s = scheduler(&ts);
    s.release(0, 0);
    let ds = drain(&mut s);
    let hung = started(&ds, 0, 0);
    // The watchdog fires: the job fails, the worker is to be replaced.
    s.advance(5 * MS + 1);
    let ds = drain(&mut s);
    assert!(
        ds.iter()
            .any(|d| matches!(d, Decision::Abort { seq: 0, .. })),
        "{ds:?}"
    );
    assert!(
        ds.iter()
            .any(|d| matches!(d, Decision::Fail { seq: 0, .. })),
        "{ds:?}"
    );
    assert_eq!(buckets(&s, 0), (0, 0, 0, 1, 0));
    // The next job runs on the replacement.
    s.release(0, 20 * MS);
    let ds = drain(&mut s);
    let next = started(&ds, 0, 1);
    // The old worker wakes up and reports job 0 after all, twice.
    assert!(!s.finished(hung, 21 * MS));
    assert!(!s.failed(hung, 21 * MS, FailReason::Error));
    assert_eq!(buckets(&s, 0), (0, 0, 0, 1, 1));
    // Job 1 is untouched by it and completes on time.
    assert!(s.finished(next, 22 * MS));
    drain(&mut s);
    assert_eq!(buckets(&s, 0), (1, 0, 0, 1, 0));
}

#[test]
fn with_a_grace_the_simulator_abandons_a_backlog_where_a_real_run_does() {
    // 15 ms of work every 10 ms under `continue`: job k ends at 15 (k + 1)
    // ms, every one late. Released in [0, 100 ms).
    let ts = taskset(1, 1, vec![], &[("a", 10, &[(Resource::Cpu, 15)])]);
    let sim = |grace| {
        simulate(
            &ts,
            PolicyKind::Rtmdl,
            VariantChoice::Original,
            SimOptions {
                duration: 100 * MS,
                seed: 1,
                grace,
                ..Default::default()
            },
        )
    };
    // Drained: all 10 end, the last at 150 ms (60 ms after its release).
    let drained = sim(None);
    assert_eq!(drained.tasks[0].missed, 10);
    assert!(
        (drained.tasks[0].response_ms.max - 60.0).abs() < 1e-6,
        "{}",
        drained.tasks[0].response_ms.max
    );
    // A 20 ms grace stops at 120 ms: 8 ended (the last at 120, 50 ms after
    // its release), 2 abandoned; all 10 missed either way.
    let cut = sim(Some(20 * MS));
    let t = &cut.tasks[0];
    assert_eq!((t.jobs, t.missed, t.completed), (10, 10, 0));
    assert!(
        (t.response_ms.max - 50.0).abs() < 1e-6,
        "{}",
        t.response_ms.max
    );
}
