//! Hand-computed schedules on one CPU worker and one GPU lane (plus a
//! packing case with two lanes), for every policy.
//!
//! Task A: period 10 ms, chain cpu 2 → gpu 3 → cpu 1.
//! Task B: period 20 ms, chain cpu 3 → gpu 4 → cpu 2.
//! The expected start times below were worked out by hand (see comments).

mod common;
use common::*;
use rtmdl_core::Resource::{Cpu, Gpu};
use rtmdl_core::*;

const A: &[(Resource, u64)] = &[(Cpu, 2), (Gpu, 3), (Cpu, 1)];
const B: &[(Resource, u64)] = &[(Cpu, 3), (Gpu, 4), (Cpu, 2)];

fn two_tasks() -> TaskSet {
    taskset(1, 1, vec![], &[("A", 10, A), ("B", 20, B)])
}

/// (task, seq, stage) → start ms, for the first hyperperiod (20 ms).
fn expect(log: &[(Time, Decision)], want: &[((usize, u64, usize), u64)]) {
    for &((task, seq, stage), t) in want {
        assert_eq!(
            start_of(log, task, seq, stage),
            Some(t),
            "start of task {task} job {seq} stage {stage}"
        );
    }
}

#[test]
fn rtmdl_splits_cpu_and_gpu_work() {
    // 0: A0.pre (prio 1) | 2: A0.gpu, B0.pre | 5: A0.post, B0.gpu
    // 6: A0 done | 9: B0.post | 10: A1 released, CPU busy until 11
    // 11: A1.pre | 13: A1.gpu | 16: A1.post | 17: A1 done
    let (log, counters) = run(&two_tasks(), PolicyKind::Rtmdl, Some(&[1, 2]), 20);
    expect(
        &log,
        &[
            ((0, 0, 0), 0),
            ((0, 0, 1), 2),
            ((0, 0, 2), 5),
            ((1, 0, 0), 2),
            ((1, 0, 1), 5),
            ((1, 0, 2), 9),
            ((0, 1, 0), 11),
            ((0, 1, 1), 13),
            ((0, 1, 2), 16),
        ],
    );
    assert_eq!(completion(&log, 0, 0), Some((6, false)));
    assert_eq!(completion(&log, 1, 0), Some((11, false)));
    assert_eq!(completion(&log, 0, 1), Some((17, false)));
    assert!(
        counters
            .iter()
            .all(|c| c.missed == 0 && c.completed == c.released)
    );
}

#[test]
fn dm_black_box_holds_the_worker_through_the_gpu_part() {
    // A0 runs its whole chain on the worker: 0 pre, 2 gpu, 5 post, done 6.
    // B0 then: 6 pre, 9 gpu, 13 post, done 15. A1 (released 10) waits for
    // the worker until 15: 15 pre, 17 gpu, 20 post, done 21 > deadline 20.
    let (log, counters) = run(&two_tasks(), PolicyKind::Dm, None, 20);
    expect(
        &log,
        &[
            ((0, 0, 0), 0),
            ((0, 0, 1), 2),
            ((0, 0, 2), 5),
            ((1, 0, 0), 6),
            ((1, 0, 1), 9),
            ((1, 0, 2), 13),
            ((0, 1, 0), 15),
            ((0, 1, 1), 17),
            ((0, 1, 2), 20),
        ],
    );
    assert_eq!(completion(&log, 0, 1), Some((21, true)));
    assert_eq!(counters[0].missed, 1);
}

#[test]
fn the_papers_motivating_example_rtmdl_meets_what_dm_misses() {
    // Same set, same priorities (A above B), same hardware: only the
    // dispatch differs. rtmdl runs B's CPU part while A's GPU part runs.
    let ts = two_tasks();
    let (_, rt) = run(&ts, PolicyKind::Rtmdl, Some(&[1, 2]), 200);
    let (_, dm) = run(&ts, PolicyKind::Dm, None, 200);
    let misses = |c: &[TaskCounters]| c.iter().map(|c| c.missed + c.dropped).sum::<u64>();
    assert_eq!(misses(&rt), 0);
    assert!(misses(&dm) >= 10, "dm missed only {}", misses(&dm));
}

#[test]
fn fifo_threads_share_the_core_and_queue_for_the_gpu() {
    // Both threads start at 0 and share one core: A0.pre (2 ms of work)
    // ends at 4, B0.pre (3 ms) at 5. The GPU serves A0 (4..7) then B0
    // (7..11). A0.post 7..8. A1.pre starts at 10 on A's thread.
    let (log, _) = run(&two_tasks(), PolicyKind::Fifo, None, 20);
    expect(
        &log,
        &[
            ((0, 0, 0), 0),
            ((1, 0, 0), 0),
            ((0, 0, 1), 4),
            ((1, 0, 1), 7),
            ((0, 0, 2), 7),
            ((1, 0, 2), 11),
            ((0, 1, 0), 10),
            ((0, 1, 1), 13),
            ((0, 1, 2), 16),
        ],
    );
    // B0.post (2 ms) shares the core with A1.pre from 11 to 13: ends at 14.
    assert_eq!(completion(&log, 1, 0), Some((14, false)));
    // Each task has its own thread.
    for (task, _, _, _, slot) in starts(&log) {
        if let Slot::Cpu(s) = slot {
            assert_eq!(s, task);
        }
    }
}

#[test]
fn edf_follows_deadlines_where_fixed_priorities_do_not() {
    // Priorities B above A: B0.pre 0..3, A0.pre 3..5, B0.gpu 3..7, A0.gpu
    // 7..10, B0.post 7..9, A0.post 10..11: A0 finishes at 11, late.
    let ts = two_tasks();
    let (log, _) = run(&ts, PolicyKind::Rtmdl, Some(&[2, 1]), 20);
    expect(
        &log,
        &[
            ((1, 0, 0), 0),
            ((0, 0, 0), 3),
            ((1, 0, 1), 3),
            ((0, 0, 1), 7),
            ((1, 0, 2), 7),
            ((0, 0, 2), 10),
        ],
    );
    assert_eq!(completion(&log, 0, 0), Some((11, true)));
    // EDF serves A0 (deadline 10) before B0 (deadline 20): the rtmdl
    // schedule with A first, no miss.
    let (log, counters) = run(&ts, PolicyKind::Edf, None, 20);
    expect(
        &log,
        &[
            ((0, 0, 0), 0),
            ((1, 0, 0), 2),
            ((0, 0, 1), 2),
            ((0, 1, 0), 11),
        ],
    );
    assert!(counters.iter().all(|c| c.missed == 0));
}

#[test]
fn gpu_packing_runs_k_inferences_at_once_with_slowdown() {
    // Two GPU-only tasks, two lanes, 1.5x slower when both run: both start
    // at 0 and finish at 6 (4 ms of work at rate 1/1.5).
    let ts = taskset(
        1,
        2,
        vec![1.0, 1.5],
        &[("A", 10, &[(Gpu, 4)]), ("B", 10, &[(Gpu, 4)])],
    );
    let (log, _) = run(&ts, PolicyKind::Rtmdl, Some(&[1, 2]), 10);
    let s = starts(&log);
    assert!(s.contains(&(0, 0, 0, 0, Slot::Gpu(0))));
    assert!(s.contains(&(1, 0, 0, 0, Slot::Gpu(1))));
    assert_eq!(completion(&log, 0, 0), Some((6, false)));
    assert_eq!(completion(&log, 1, 0), Some((6, false)));
    // Black-box DM uses one lane: B waits for A.
    let (log, _) = run(&ts, PolicyKind::Dm, None, 10);
    assert_eq!(start_of(&log, 1, 0, 0), Some(4));
}

#[test]
fn skip_drops_a_job_released_while_the_previous_is_pending() {
    let mut ts = taskset(1, 1, vec![], &[("A", 10, &[(Cpu, 15)])]);
    ts.tasks[0].overrun = Overrun::Skip;
    let (log, counters) = run(&ts, PolicyKind::Rtmdl, Some(&[1]), 40);
    // Releases at 0, 10, 20, 30: job 0 runs 0..15 (late), job 1 dropped at
    // 10, job 2 runs 20..35 (late), job 3 dropped at 30.
    assert!(
        log.iter()
            .any(|(t, d)| *t == 10 * MS && matches!(d, Decision::Drop { seq: 1, .. }))
    );
    assert!(
        log.iter()
            .any(|(t, d)| *t == 30 * MS && matches!(d, Decision::Drop { seq: 3, .. }))
    );
    assert_eq!(start_of(&log, 0, 2, 0), Some(20));
    let c = counters[0];
    assert_eq!((c.released, c.completed, c.missed, c.dropped), (4, 0, 2, 2));
    assert_eq!(c.miss_rate(), 1.0);
    // Under `continue` the backlog is kept and every job runs.
    ts.tasks[0].overrun = Overrun::Continue;
    let (log, counters) = run(&ts, PolicyKind::Rtmdl, Some(&[1]), 40);
    assert_eq!(start_of(&log, 0, 1, 0), Some(15));
    assert_eq!(counters[0].missed, 4);
}

#[test]
fn a_miss_is_flagged_at_the_deadline_not_at_completion() {
    let ts = taskset(1, 1, vec![], &[("A", 10, &[(Cpu, 25)])]);
    let (log, _) = run(&ts, PolicyKind::Rtmdl, Some(&[1]), 10);
    let miss_at = log
        .iter()
        .find_map(|(t, d)| matches!(d, Decision::Miss { .. }).then_some(*t));
    assert_eq!(miss_at, Some(10 * MS + 1));
    assert_eq!(completion(&log, 0, 0), Some((25, true)));
}

#[test]
fn um_ranks_by_utilisation_where_dm_ranks_by_deadline() {
    // A: period 10, cpu 1 → gpu 1 (U = 0.2). B: period 20, cpu 3 → gpu 4
    // (U = 0.35). UM puts B first: B0 0..3 cpu, 3..7 gpu; A0 7..8, 8..9;
    // A1 10..11, 11..12. DM puts A first: A0 0..1, 1..2; B0 2..5, 5..9.
    let ts = taskset(
        1,
        1,
        vec![],
        &[
            ("A", 10, &[(Cpu, 1), (Gpu, 1)]),
            ("B", 20, &[(Cpu, 3), (Gpu, 4)]),
        ],
    );
    let (log, _) = run(&ts, PolicyKind::Um, None, 20);
    expect(
        &log,
        &[
            ((1, 0, 0), 0),
            ((1, 0, 1), 3),
            ((0, 0, 0), 7),
            ((0, 0, 1), 8),
            ((0, 1, 0), 10),
            ((0, 1, 1), 11),
        ],
    );
    let (log, _) = run(&ts, PolicyKind::Dm, None, 20);
    expect(
        &log,
        &[
            ((0, 0, 0), 0),
            ((0, 0, 1), 1),
            ((1, 0, 0), 2),
            ((1, 0, 1), 5),
        ],
    );
}

#[test]
fn jobs_released_at_one_instant_share_the_release_lateness_and_go_by_priority() {
    // One CPU worker; both tasks released together every 10 ms with a
    // random release lateness of up to 1 ms. One dispatcher wake-up
    // releases both, so the more urgent one always starts first (drawn
    // per job, the less urgent one was released first about half the time
    // and held the worker: the x10 set's simulated 20 % misses).
    let mut ts = taskset(
        1,
        1,
        vec![],
        &[("a", 10, &[(Cpu, 2)]), ("b", 10, &[(Cpu, 2)])],
    );
    ts.platform.overheads.release = Some(ExecProfile::Quantiles {
        min: 0,
        p50: MS / 2,
        p90: 9 * MS / 10,
        p99: 99 * MS / 100,
        max: MS,
    });
    let (log, _) = run(&ts, PolicyKind::Rtmdl, Some(&[1, 2]), 200);
    let firsts: Vec<usize> = (0..20u64)
        .map(|seq| {
            let (a, b) = (
                start_of(&log, 0, seq, 0).expect("a started"),
                start_of(&log, 1, seq, 0).expect("b started"),
            );
            usize::from(b < a)
        })
        .collect();
    assert_eq!(firsts, vec![0; 20], "b went first in some periods");
}
