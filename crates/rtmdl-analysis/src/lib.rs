//! rtmdl's response-time analysis: an upper bound on the response time of
//! every task as [`rtmdl_core::Scheduler`] runs it under the `rtmdl` policy,
//! so a plan can be *guaranteed* rather than predicted by simulation.
//!
//! The crate is pure, like the core: no clock, no thread, no file (the
//! validation in [`validate`] is the one exception that spawns threads, to
//! simulate many sets in parallel; it too reads no clock and no file).
//!
//! # What is bounded
//!
//! A task releases a job every period `T` (at any phasing: offsets are
//! ignored, so the bound covers every phasing); the job is a chain of
//! non-preemptive sub-tasks ("segments"), each on the CPU (one of `m`
//! workers) or the GPU (one of `K` lanes). The bound `R` is on the time
//! from a job's nominal release to the moment the core learns that its
//! last sub-task ended — exactly the response the simulator and the runtime
//! report. A task is *schedulable* when `R ≤ D`, and also `R ≤ T` under
//! `skip` and `firm`, where a release during a pending job is dropped.
//!
//! # Assumptions (inputs)
//!
//! - **WCET**: a segment's execution time never exceeds its profile's
//!   `max()` times the `--margin` the user gives (default 1: the largest
//!   measured sample is taken as the WCET). Nothing here can check that a
//!   measured maximum is a true worst case; the margin is the user's
//!   statement of how far to trust it. **Best case**: never below the
//!   profile's minimum (used only for jitter, where a smaller best case is
//!   more pessimistic).
//! - **Overheads**: release lateness, dispatch and back delays never exceed
//!   the maxima of their profiles in [`rtmdl_core::Overheads`] (nor fall
//!   below their minima).
//! - **Rates**: while a sub-task runs it progresses at least at the slowest
//!   rate the platform model allows: `1/max_{n≤K} s(n)` on the GPU (packing
//!   slowdown); on the CPU `1/max_n (max(1, n/cores)·contention(n))` over
//!   every number `n` of compute threads that can run at once (the workers,
//!   plus the lanes when they run a CPU engine, `lanes_on_cpu`, in which
//!   case the lanes get the same factor). So a segment holds its slot at
//!   most `occ = dispatch + ⌈C·f⌉ + back + 1 ns` (the 1 ns covers the
//!   simulator's rounding up of end times).
//! - **Priorities**: a task's queue key is its plan priority (1 = most
//!   urgent). Tasks of *equal* priority are counted as interfering with each
//!   other (the tie-break by release time may go either way).
//!
//! # The analysis, step by step
//!
//! **Holistic chains** (Tindell & Clark, "Holistic schedulability analysis
//! for distributed hard real-time systems", 1994). Every segment `(i, s)` is
//! a sporadic stream of period `T_i` whose `k`-th job arrives in its queue
//! within `[k·T_i + Φmin(i,s), k·T_i + Φmax(i,s)]`: its *release jitter* is
//! `Φmax − Φmin`. Stage 0 arrives within the release lateness; stage `s+1`
//! arrives when the core learns that stage `s` ended, so `Φmax(i,s+1) =
//! Φmax(i,s) + w(i,s)` with `w` the segment's bound from arrival to end, and
//! `Φmin(i,s+1) = Φmin(i,s) + best case of s`. The chain's bound is
//! `R_i = Φmax(i,n)`. Levels are solved most urgent first (a level depends
//! only on itself and the levels above); tasks of one priority iterate to
//! the least fixed point from below (every step is monotone). This is the
//! *jitter* treatment of the gaps between a task's segments: each segment
//! is its own task whose jitter is the full width of its arrival window, not
//! the "suspension as jitter of the same task" shortcut that Chen et al.
//! ("Many suspensions, many problems", 2019, §5) showed unsound when the
//! jitter is taken smaller than the window.
//!
//! **No overlap of a task's jobs.** The per-segment bounds below assume that
//! a job of task `i` never runs while the previous one is still live, so its
//! stages never wait for the previous job (the core keeps a task's jobs in
//! order) and never share a resource with it. Under `skip` that holds by the
//! rule (a release while a job is pending is dropped). Under `continue` it
//! holds when `R_i ≤ T_i + Φmin(i,0)`, and under `firm` when `R_i ≤ D_i` (no
//! job is ever retired). Proof sketch: consider the first instant `t*` at
//! which some job exceeds its bound; before `t*` every job met its bound, so
//! the previous job of its task had ended by then, every interfering
//! segment arrived within its window, and the interference terms below hold
//! on the window up to `t*` — so the job meets its bound, a contradiction.
//! Where the condition fails the task has **no bound** (reported as such),
//! and neither has any task of lower or equal priority sharing a resource
//! with it (its arrivals would no longer follow the windows).
//!
//! **One worker (or one lane).** The MPI-SWS crate `response-time-analysis`
//! (Bozhko & Brandenburg, "Abstract Response-Time Analysis", ECRTS 2020; the
//! Coq-verified fully non-preemptive fixed-priority RTA of Prosa): each
//! segment stream is a sporadic task with release jitter and WCET `occ`, the
//! higher-or-equal-priority streams interfere, and the blocking bound is the
//! longest lower-priority segment. The task's own other stages on the same
//! resource (e.g. `pre` and `post` on one CPU worker) belong to other jobs
//! of the task; by the no-overlap condition they can start only at an
//! instant when nothing of the level is pending, so they count as blocking
//! (with a peer of equal priority they may run ahead of it and count as
//! interference instead). At a load of 1 or more the busy window need not
//! end and there is no bound.
//!
//! **m workers (or K lanes), global non-preemptive fixed priority** (our
//! own; the structure of Guan et al., "New schedulability test conditions
//! for non-preemptive scheduling on multiprocessor platforms", RTSS 2008).
//! Let segment `J` arrive at `r`. The core is work-conserving on the CPU and
//! no lower-priority segment starts while `J` waits (a free slot always
//! takes the most urgent waiting work), so if `J` has not started by
//! `r + L − 1`, every slot was held during all of `[r, r + L)`, by
//! lower-priority segments already running at `r` (at most the `m` longest:
//! one per task under `skip`, one per stage under `continue`, `m` per stage
//! under `firm`, whose retired sub-tasks run on) or by higher-or-equal
//! priority work. Work of a task `j` in a window of length `L` is bounded by
//! Bertogna & Cirinei's workload ("Response-time analysis for globally
//! scheduled symmetric multiprocessor platforms", RTSS 2007): its jobs run
//! within `jitter + w` of their reference points, so `W(L) = N·occ +
//! min(occ, L + jitter + w − occ − N·T)` with `N = ⌊(L + jitter + w −
//! occ)/T⌋`, summed over `j`'s segments on the resource and capped at `L`
//! (`j`'s jobs never overlap, so it holds one slot at a time). So `J`
//! starts within `L − 1` for the least `L` with `m·L > B + Σ_j min(W_j(L),
//! L)`, and `w = L − 1 + occ`.
//!
//! **Packing admission** (our own). On the GPU the core may keep a lane
//! idle while `J` waits: a GPU sub-task is not started beside a *more
//! urgent* running one `H` whose estimated end would pass its deadline
//! under one more busy lane. At such an instant `H` holds a lane. So during
//! `J`'s wait every instant has either all `K` lanes held or a lane held by a
//! *holder* of higher priority: `K·x_a + x_b ≤ B + W` with `x_a + x_b = L` and
//! `x_b ≤ min(L, Σ_h min(W_h(L), L))`, which gives the condition `K·L > B +
//! Σ_j min(W_j(L), L) + (K − 1)·min(L, Σ_h min(W_h(L), L))`. A GPU stream of
//! task `h` can hold only if `Φmax + wait + C·S > D_h` (with `S` the largest
//! slowdown the admission rule uses): the core's estimated end `t + left·s(n+1)`
//! never exceeds its value at the start, `start + estimate·S`, since `left`
//! falls at rate `1/s(n) ≥ 1/S`, and the estimate (the profile's p99) never
//! exceeds `C`. With one lane, or a slowdown that never grows, nothing holds.
//! The packing slowdown a lower-priority inference inflicts on `J` is in the
//! rate bound above.
//!
//! # What is refused
//!
//! [`Refusal`]: the policies `dm` and `um` (black box: a job holds its CPU
//! worker through its GPU part), `fifo` (one thread per task) and `edf`;
//! `continue` with a deadline beyond the period (jobs may queue up without
//! bound); injected hangs (a fault that stretches a sub-task past any WCET);
//! a margin below 1; non-finite or non-positive machine factors.
//! Everything else is analysed, and a task without a bound says why.

mod input;
mod report;
mod rta;
pub mod validate;

use rtmdl_core::{Assignment, PolicyKind, TaskSet, Time};

pub use report::{Analysis, Share, StageBound, TaskBound, Term, TermKind};

/// How to analyse.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options {
    /// WCET = profile max × margin (≥ 1).
    pub margin: f64,
    /// The policy the set runs under; only `rtmdl` is covered.
    pub policy: PolicyKind,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            margin: 1.0,
            policy: PolicyKind::Rtmdl,
        }
    }
}

fn ms(t: Time) -> String {
    rtmdl_core::units::fmt_ms(t)
}

/// A feature the analysis cannot bound, named with the task it concerns.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the analysis covers the `rtmdl` policy only (fixed priorities, split CPU/GPU queues): policy `{policy}` ({why}) is not covered"
    )]
    Policy {
        policy: &'static str,
        why: &'static str,
    },
    #[error(
        "task `{task}`: overrun = \"continue\" with a deadline ({}) beyond the period ({}) is not covered: its jobs may queue up without bound; use a deadline within the period, or overrun = \"skip\" or \"firm\"",
        ms(*.deadline), ms(*.period)
    )]
    ContinueBeyondPeriod {
        task: String,
        deadline: Time,
        period: Time,
    },
    #[error(
        "task `{task}`, stage `{stage}`: an injected hang fault is not covered (it stretches the sub-task past any WCET)"
    )]
    InjectedHang { task: String, stage: String },
    #[error("task `{task}`: a zero period or deadline is not covered")]
    ZeroTime { task: String },
    #[error("task `{task}`, {stage}: times of 2^48 ns (78 hours) or more are not covered")]
    TooLong { task: String, stage: String },
    #[error("margin {0}: the WCET is the profile max times a finite margin of at least 1")]
    Margin(f64),
    #[error("platform: {what} = {value} is not covered (a finite factor above 0 is needed)")]
    Factor { what: &'static str, value: f64 },
    #[error("the plan does not fit the task set: {what}")]
    Plan { what: String },
}

/// The refusals that do not depend on the plan (variants and priorities):
/// the planner checks these once before a search.
pub fn check(ts: &TaskSet, opts: &Options) -> Result<(), Refusal> {
    input::check(ts, opts)
}

/// Bound every task's response time under the plan `assign` (a variant and
/// a priority per task), or refuse a feature the analysis cannot bound.
pub fn analyze(ts: &TaskSet, assign: &[Assignment], opts: &Options) -> Result<Analysis, Refusal> {
    // The split baselines run rtmdl's dispatch with their own priorities.
    let mut assign = assign.to_vec();
    if let Some(p) = opts.policy.fixed_priorities(ts, &assign) {
        for (a, p) in assign.iter_mut().zip(p) {
            a.priority = p;
        }
    }
    let (tasks, machine) = input::build(ts, &assign, opts)?;
    let rta = rta::Rta {
        tasks: &tasks,
        machine: &machine,
        cap: rta::cap_for(&tasks),
    };
    let sol = rta.solve();
    Ok(report::build(&tasks, &machine, &sol, opts.margin))
}
