//! The scheduler core: a pure, deterministic state machine.
//!
//! It has no clock and no threads. A driver (the simulator or the real-time
//! runtime) tells it what happened — a job was released, a sub-task
//! finished or failed, time advanced — and then polls [`Decision`]s (work is
//! handed out when polled, so events of one instant are all known first):
//! start this sub-task on that CPU worker or GPU lane, a job was dropped,
//! missed its deadline, failed or completed, a hung worker must be replaced,
//! a task is quarantined. The [`Policy`] only orders queues and picks the
//! dispatch mode; every decision is made here, once, for both drivers. The
//! core owns every timer it needs: deadlines and the watchdog
//! ([`FaultPolicy`]); [`Scheduler::next_timeout`] says when to call
//! [`Scheduler::advance`] next.
//!
//! Invariants (checked by the property tests):
//! - at most `cpu_slots()` CPU sub-tasks and `gpu_lanes()` GPU sub-tasks run
//!   at once, and a slot never runs two sub-tasks;
//! - sub-tasks are never preempted; queues are re-ordered only at sub-task
//!   boundaries;
//! - with split dispatch, no worker or lane idles while work for it waits;
//! - every released job ends as exactly one of completed (on time), missed,
//!   dropped or failed: `released = completed + missed + dropped + failed +
//!   pending`;
//! - a job that is not delivered on time is a miss, whatever the reason:
//!   the miss rate every tolerance is checked against counts missed,
//!   dropped and failed jobs alike ([`TaskCounters::miss_rate`]), and the
//!   switching monitor hears of a failure as of a miss.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use serde::Serialize;

use crate::adapt::{AdaptOptions, Monitor, Verdict};
use crate::fault::{FailReason, FaultPolicy};
use crate::model::{Assignment, Overrun, Platform, Resource, TaskSet, Time};
use crate::policy::{Dispatch, JobView, Policy};

/// What the core needs to know about a task.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedTask {
    /// Resource of each sub-task in the job's chain.
    pub chain: Vec<Resource>,
    /// Relative deadline.
    pub deadline: Time,
    pub overrun: Overrun,
    /// Per variant of the task's model, a high estimate (the profile's
    /// 99th percentile) of each sub-task's time alone, for packing
    /// admission: a GPU sub-task is not packed beside a more urgent one that
    /// the packing would make miss.
    pub estimate: Vec<Vec<Time>>,
    /// The variant the task runs (planned).
    pub variant: usize,
    /// Online switching's monitor, when on.
    pub monitor: Option<Monitor>,
}

impl SchedTask {
    /// The scheduling view of every task of a task set, running the
    /// assigned variants.
    pub fn from_taskset(ts: &TaskSet, assign: &[Assignment]) -> Vec<SchedTask> {
        ts.tasks
            .iter()
            .zip(assign)
            .map(|(t, a)| SchedTask {
                chain: ts.models[t.model].stages.iter().map(|s| s.on).collect(),
                deadline: t.deadline,
                overrun: t.overrun,
                estimate: ts.models[t.model]
                    .variants
                    .iter()
                    .map(|v| v.times.iter().map(|p| p.quantile(0.99)).collect())
                    .collect(),
                variant: a.variant,
                monitor: None,
            })
            .enumerate()
            .map(|(i, mut st)| {
                if ts.adapt.is_some() {
                    st.monitor = Some(Monitor::new(ts, i, st.variant));
                }
                st
            })
            .collect()
    }
}

/// A live job, as the driver refers to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JobId {
    idx: u32,
    uid: u64,
}

/// Where a sub-task runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    /// CPU worker index.
    Cpu(usize),
    /// GPU lane index.
    Gpu(usize),
}

impl Slot {
    /// The resource the slot belongs to.
    pub fn resource(self) -> Resource {
        match self {
            Slot::Cpu(_) => Resource::Cpu,
            Slot::Gpu(_) => Resource::Gpu,
        }
    }
}

/// What the core tells its driver.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decision {
    /// Run sub-task `stage` of job `job` (the `seq`-th job of `task`) on `slot` now.
    Start {
        job: JobId,
        task: usize,
        seq: u64,
        stage: usize,
        slot: Slot,
        /// The job's release time.
        release: Time,
        /// The variant the job runs (the task's at its release).
        variant: usize,
    },
    /// Online switching moved `task` to `variant` (jobs released from now
    /// on run it).
    Switch {
        task: usize,
        variant: usize,
        at: Time,
    },
    /// A released job was dropped by the `skip` overrun rule.
    Drop { task: usize, seq: u64, at: Time },
    /// A job passed its absolute deadline unfinished (or finished late).
    Miss {
        task: usize,
        seq: u64,
        deadline: Time,
        at: Time,
    },
    /// The job failed (a sub-task failed or hung, the task is quarantined);
    /// it is abandoned. A failure is a job not delivered on time: it counts
    /// in the miss rate, unless the job had already missed its deadline
    /// (`after_miss`: then it was counted once, as missed).
    Fail {
        task: usize,
        seq: u64,
        at: Time,
        reason: FailReason,
        after_miss: bool,
    },
    /// The sub-task on `slot` ran past the watchdog: its job fails (a `Fail`
    /// follows) and the slot is free again. The driver replaces the worker
    /// of `slot` (a real thread cannot be stopped) before it runs anything
    /// else there.
    Abort {
        job: JobId,
        task: usize,
        seq: u64,
        stage: usize,
        slot: Slot,
        at: Time,
    },
    /// After [`FaultPolicy::max_hangs`] hung sub-tasks, `task` is
    /// quarantined: from now on its jobs are released and fail at once.
    Quarantine { task: usize, at: Time },
    /// A job finished its whole chain.
    Complete {
        task: usize,
        seq: u64,
        release: Time,
        at: Time,
        late: bool,
    },
}

/// Per-task accounting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TaskCounters {
    pub released: u64,
    /// Completed on or before the deadline.
    pub completed: u64,
    /// Missed the deadline (finished late, or never finished).
    pub missed: u64,
    /// Dropped at release by the `skip` rule (also a deadline miss).
    pub dropped: u64,
    /// Ended by an error in one of its sub-tasks (a failing model), a hang
    /// or quarantine; not delivered, so also counted in the miss rate.
    pub failed: u64,
}

impl TaskCounters {
    /// Jobs released but not yet accounted as completed, missed, dropped or
    /// failed.
    pub fn pending(&self) -> u64 {
        self.released - self.completed - self.missed - self.dropped - self.failed
    }
    /// Jobs not delivered on time: missed + dropped + failed. A failed job
    /// is no more use to its consumer than a late one, so every tolerance
    /// (ζ, the planner's constraint, `plan --verify`, `--check`) counts it.
    pub fn not_on_time(&self) -> u64 {
        self.missed + self.dropped + self.failed
    }
    /// [`Self::not_on_time`] / released.
    pub fn miss_rate(&self) -> f64 {
        if self.released == 0 {
            0.0
        } else {
            self.not_on_time() as f64 / self.released as f64
        }
    }
}

#[derive(Clone, Debug)]
struct Job {
    task: u32,
    uid: u64,
    seq: u64,
    release: Time,
    deadline: Time,
    stage: u16,
    missed: bool,
    live: bool,
    /// The CPU worker held through the chain (black-box dispatch).
    holder: Option<usize>,
    running: Option<Slot>,
    /// When the running sub-task started.
    started: Time,
    /// Firm overrun: retired at its deadline; no longer pending, only its
    /// running sub-task (if any) is left to end.
    retired: bool,
    /// Waiting for the task's previous job to finish this stage (a task's
    /// jobs run in order).
    blocked: bool,
    /// GPU work done on the running sub-task, at full speed (ns), for
    /// packing admission.
    gpu_done: f64,
    /// The queue key the job was ordered with (lower = more urgent).
    key: u64,
    /// The variant it runs.
    variant: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CpuSlot {
    Free,
    Running(u32),
    /// Held by a black-box job while its GPU sub-task waits or runs.
    Held(u32),
}

/// Queue entry: (key, release, enqueue order, job index, job uid);
/// smallest first. Entries of jobs retired while queued are skipped.
type Entry = Reverse<(u64, Time, u64, u32, u64)>;

/// The scheduler core. See the module documentation.
pub struct Scheduler {
    tasks: Vec<SchedTask>,
    policy: Box<dyn Policy>,
    mode: Dispatch,
    jobs: Vec<Job>,
    free_jobs: Vec<u32>,
    next_uid: u64,
    next_seq: Vec<u64>,
    pending: Vec<u32>,
    counters: Vec<TaskCounters>,
    cpu_queue: BinaryHeap<Entry>,
    gpu_queue: BinaryHeap<Entry>,
    /// Thread-per-task dispatch: jobs waiting for their task's thread.
    waiting: Vec<VecDeque<(u32, u64)>>,
    /// Per task, its live (unretired) jobs in release order.
    in_order: Vec<VecDeque<u32>>,
    platform: Platform,
    /// When the GPU lanes' work was last integrated (packing admission).
    gpu_clock: Time,
    cpu: Vec<CpuSlot>,
    gpu: Vec<Option<u32>>,
    deadlines: BinaryHeap<Reverse<(Time, u64, u32)>>,
    out: VecDeque<Decision>,
    /// Something changed since the last dispatch.
    dirty: bool,
    order: u64,
    now: Time,
    start: Option<Time>,
    cpu_cores: usize,
    gpu_capacity: usize,
    cpu_running: usize,
    cpu_busy: u128,
    gpu_busy: u128,
    faults: FaultPolicy,
    /// Watchdog timers: (due, job uid, job index, stage); stale ones are
    /// skipped when they come up.
    watch: BinaryHeap<Reverse<(Time, u64, u32, u16)>>,
    /// Hung sub-tasks per task.
    hangs: Vec<u32>,
    quarantined: Vec<bool>,
    /// Online switching: the options, and each task's current variant.
    adapt: Option<AdaptOptions>,
    variant: Vec<usize>,
    /// The variant of each task's last admitted job: a drop is its doing.
    admitted: Vec<usize>,
}

impl Scheduler {
    /// A scheduler for `tasks` on `platform`, ordering work by `policy`.
    pub fn new(tasks: Vec<SchedTask>, platform: &Platform, policy: Box<dyn Policy>) -> Self {
        let variant: Vec<usize> = tasks.iter().map(|t| t.variant).collect();
        let mode = policy.dispatch();
        let n = tasks.len();
        let cpu_slots = match mode {
            Dispatch::ThreadPerTask => n,
            _ => platform.cpu_workers.max(1),
        };
        let lanes = policy.gpu_lanes(platform.gpu_lanes.max(1)).max(1);
        Scheduler {
            tasks,
            policy,
            mode,
            jobs: Vec::new(),
            free_jobs: Vec::new(),
            next_uid: 0,
            next_seq: vec![0; n],
            pending: vec![0; n],
            counters: vec![TaskCounters::default(); n],
            cpu_queue: BinaryHeap::new(),
            gpu_queue: BinaryHeap::new(),
            waiting: vec![
                VecDeque::new();
                if mode == Dispatch::ThreadPerTask {
                    n
                } else {
                    0
                }
            ],
            in_order: vec![VecDeque::new(); n],
            platform: platform.clone(),
            gpu_clock: 0,
            cpu: vec![CpuSlot::Free; cpu_slots],
            gpu: vec![None; lanes],
            deadlines: BinaryHeap::new(),
            out: VecDeque::new(),
            dirty: false,
            order: 0,
            now: 0,
            start: None,
            cpu_cores: platform.cpu_workers.max(1),
            gpu_capacity: platform.gpu_lanes.max(1),
            cpu_running: 0,
            cpu_busy: 0,
            gpu_busy: 0,
            faults: platform.faults,
            watch: BinaryHeap::new(),
            hangs: vec![0; n],
            quarantined: vec![false; n],
            adapt: None,
            admitted: variant.clone(),
            variant,
        }
    }

    /// The same scheduler switching variants online (the tasks carry their
    /// monitors: [`SchedTask::from_taskset`] of a set with `adapt` on).
    pub fn with_adapt(mut self, adapt: Option<AdaptOptions>) -> Self {
        self.adapt = adapt;
        self
    }

    /// The variant `task` runs now.
    pub fn variant(&self, task: usize) -> usize {
        self.variant[task]
    }

    /// Every variant `task` may run: its ladder with online switching,
    /// else the planned one.
    pub fn variants_of(&self, task: usize) -> Vec<usize> {
        match (&self.adapt, &self.tasks[task].monitor) {
            (Some(_), Some(m)) => m.ladder().to_vec(),
            _ => vec![self.tasks[task].variant],
        }
    }

    /// The same scheduler with a watchdog and a quarantine rule.
    pub fn with_faults(mut self, faults: FaultPolicy) -> Self {
        self.faults = faults;
        self
    }

    /// The failure rules in use.
    pub fn faults(&self) -> FaultPolicy {
        self.faults
    }

    /// Whether `task` is quarantined.
    pub fn is_quarantined(&self, task: usize) -> bool {
        self.quarantined[task]
    }

    /// The (task, stage) sub-tasks that `slot` may be given: under one
    /// thread per task a CPU slot runs only its own task's CPU stages.
    pub fn stages_on(&self, slot: Slot) -> Vec<(usize, usize)> {
        let (resource, only) = match slot {
            Slot::Cpu(s) => (
                Resource::Cpu,
                (self.mode == Dispatch::ThreadPerTask).then_some(s),
            ),
            Slot::Gpu(_) => (Resource::Gpu, None),
        };
        let mut v = Vec::new();
        for (t, task) in self.tasks.iter().enumerate() {
            if only.is_some_and(|o| o != t) {
                continue;
            }
            for (s, r) in task.chain.iter().enumerate() {
                if *r == resource {
                    v.push((t, s));
                }
            }
        }
        v
    }

    /// How jobs are dispatched under this policy.
    pub fn dispatch_mode(&self) -> Dispatch {
        self.mode
    }

    /// Sub-tasks in a job of `task`.
    pub fn stages_of(&self, task: usize) -> usize {
        self.tasks[task].chain.len()
    }

    /// Number of CPU slots (workers, or one thread per task).
    pub fn cpu_slots(&self) -> usize {
        self.cpu.len()
    }

    /// Number of GPU lanes in use.
    pub fn gpu_lanes(&self) -> usize {
        self.gpu.len()
    }

    /// The current time as last told.
    pub fn now(&self) -> Time {
        self.now
    }

    /// Accounting per task.
    pub fn counters(&self) -> &[TaskCounters] {
        &self.counters
    }

    /// Whether no job is pending anywhere.
    pub fn is_idle(&self) -> bool {
        self.pending.iter().all(|&p| p == 0)
    }

    /// Running CPU sub-tasks (not counting workers merely held).
    pub fn cpu_running(&self) -> usize {
        self.cpu_running
    }

    /// Sub-tasks waiting for a resource. Under black-box dispatch, jobs
    /// waiting for a thread count as CPU work.
    /// Every job whose next sub-task waits in a ready queue (for a worker,
    /// a lane, or its thread): (job, task, stage). For observers.
    pub fn queued_jobs(&self) -> Vec<(JobId, usize, usize)> {
        let idxs = self
            .cpu_queue
            .iter()
            .chain(self.gpu_queue.iter())
            .map(|e| (e.0.3, e.0.4))
            .chain(self.waiting.iter().flatten().copied());
        idxs.filter_map(|(idx, uid)| {
            let j = self.jobs.get(idx as usize)?;
            (j.live && j.uid == uid).then_some((
                JobId { idx, uid },
                j.task as usize,
                j.stage as usize,
            ))
        })
        .collect()
    }

    pub fn queued(&self, r: Resource) -> usize {
        match r {
            Resource::Cpu => {
                self.cpu_queue.len() + self.waiting.iter().map(VecDeque::len).sum::<usize>()
            }
            Resource::Gpu => self.gpu_queue.len(),
        }
    }

    /// Whether the most urgent waiting GPU sub-task is held back by packing
    /// admission (a free lane stays idle so that a more urgent running
    /// inference keeps its deadline).
    pub fn packing_holds_back(&self) -> bool {
        self.packing_timeout().is_some()
    }

    /// Busy GPU lanes.
    pub fn gpu_running(&self) -> usize {
        self.gpu.iter().filter(|l| l.is_some()).count()
    }

    /// CPU and GPU utilisation since the first event: the time-average of
    /// busy cores / `cpu_workers` and busy lanes / `gpu_lanes`.
    pub fn utilisation(&self) -> (f64, f64) {
        let span = self.now.saturating_sub(self.start.unwrap_or(self.now));
        if span == 0 {
            return (0.0, 0.0);
        }
        (
            self.cpu_busy as f64 / (self.cpu_cores as f64 * span as f64),
            self.gpu_busy as f64 / (self.gpu_capacity as f64 * span as f64),
        )
    }

    /// The next decision, if any. Work is dispatched here, lazily, so that
    /// everything that happened at one instant (two releases at once, a
    /// finish and a release) is known before anything starts.
    pub fn poll(&mut self) -> Option<Decision> {
        if self.dirty {
            self.dirty = false;
            self.dispatch();
        }
        self.out.pop_front()
    }

    /// When the driver must call [`advance`](Self::advance) next, at the
    /// latest: one nanosecond after the earliest pending deadline, when the
    /// watchdog of a running sub-task expires, or when packing admission may
    /// let a held-back inference start.
    pub fn next_timeout(&mut self) -> Option<Time> {
        let mut next = None;
        while let Some(&Reverse((deadline, uid, idx))) = self.deadlines.peek() {
            let j = &self.jobs[idx as usize];
            if j.live && j.uid == uid && !j.missed {
                next = Some(deadline + 1);
                break;
            }
            self.deadlines.pop();
        }
        while let Some(&Reverse((due, uid, idx, stage))) = self.watch.peek() {
            if self.watched(uid, idx, stage) {
                next = Some(next.map_or(due, |n: Time| n.min(due)));
                break;
            }
            self.watch.pop();
        }
        match self.packing_timeout() {
            Some(t) => Some(next.map_or(t, |n| n.min(t))),
            None => next,
        }
    }

    /// Whether a watchdog entry still refers to a running sub-task.
    fn watched(&self, uid: u64, idx: u32, stage: u16) -> bool {
        let j = &self.jobs[idx as usize];
        j.live && j.uid == uid && j.stage == stage && j.running.is_some()
    }

    /// Job `task` is released at `now` (absolute deadline `now + deadline`).
    pub fn release(&mut self, task: usize, now: Time) {
        self.tick(now);
        let seq = self.next_seq[task];
        self.next_seq[task] += 1;
        self.counters[task].released += 1;
        if self.quarantined[task] {
            self.counters[task].failed += 1;
            self.out.push_back(Decision::Fail {
                task,
                seq,
                at: now,
                reason: FailReason::Quarantined,
                after_miss: false,
            });
            return;
        }
        let overrun = self.tasks[task].overrun;
        if overrun == Overrun::Firm {
            // A job still pending at its deadline can no longer be on time
            // (completions at this instant are already in): it gives way.
            self.retire_late(task, now);
        }
        if overrun != Overrun::Continue && self.pending[task] > 0 {
            self.counters[task].dropped += 1;
            self.out.push_back(Decision::Drop { task, seq, at: now });
            self.outcome(task, self.admitted[task], None, now);
            return;
        }
        let uid = self.next_uid;
        self.next_uid += 1;
        let deadline = now.saturating_add(self.tasks[task].deadline);
        let job = Job {
            task: task as u32,
            uid,
            seq,
            release: now,
            deadline,
            stage: 0,
            missed: false,
            live: true,
            holder: None,
            running: None,
            started: now,
            retired: false,
            blocked: false,
            gpu_done: 0.0,
            key: 0,
            variant: self.variant[task] as u32,
        };
        self.admitted[task] = self.variant[task];
        let idx = match self.free_jobs.pop() {
            Some(i) => {
                self.jobs[i as usize] = job;
                i
            }
            None => {
                self.jobs.push(job);
                (self.jobs.len() - 1) as u32
            }
        };
        self.pending[task] += 1;
        self.in_order[task].push_back(idx);
        self.deadlines.push(Reverse((deadline, uid, idx)));
        self.enqueue(idx);
        self.dirty = true;
    }

    /// Firm overrun: retire the pending jobs of `task` whose deadline is at
    /// or before `now`.
    fn retire_late(&mut self, task: usize, now: Time) {
        while let Some(&idx) = self.in_order[task].front() {
            if self.jobs[idx as usize].deadline > now {
                break;
            }
            self.flag_missed(idx, now);
            self.retire_firm(idx);
        }
    }

    /// The running sub-task of `job` finished at `now` (as told; the core's
    /// clock never goes back, so a report that arrives late counts at the
    /// core's time). Unknown or stale ids are ignored (and reported as
    /// `false`).
    pub fn finished(&mut self, job: JobId, now: Time) -> bool {
        let Some(idx) = self.stop_running(job, now) else {
            return false;
        };
        let now = self.now;
        if self.jobs[idx as usize].retired {
            self.forget_retired(idx);
            return true;
        }
        let j = &mut self.jobs[idx as usize];
        j.stage += 1;
        let task = j.task as usize;
        if j.stage as usize == self.tasks[task].chain.len() {
            self.complete(idx, now);
        } else {
            self.enqueue(idx);
            self.unblock_next(idx);
        }
        self.dirty = true;
        true
    }

    /// The running sub-task of `job` failed at `now` (an engine error, a
    /// panic, a worker that does not take work): its resources are freed
    /// and the job ends as failed, unless it had already missed its deadline.
    pub fn failed(&mut self, job: JobId, now: Time, reason: FailReason) -> bool {
        let Some(idx) = self.stop_running(job, now) else {
            return false;
        };
        if self.jobs[idx as usize].retired {
            self.forget_retired(idx);
        } else {
            self.fail(idx, self.now, reason);
        }
        true
    }

    /// Job `idx` (not running) fails: free the worker it holds, count it,
    /// forget it.
    fn fail(&mut self, idx: u32, now: Time, reason: FailReason) {
        let j = &mut self.jobs[idx as usize];
        if let Some(s) = j.holder.take() {
            self.cpu[s] = CpuSlot::Free;
        }
        let (task, seq, variant) = (j.task as usize, j.seq, j.variant as usize);
        let after_miss = j.missed;
        self.out.push_back(Decision::Fail {
            task,
            seq,
            at: now,
            reason,
            after_miss,
        });
        if !after_miss {
            self.counters[task].failed += 1;
            // Not delivered: the monitor hears of it as of a miss (a
            // quarantined task's jobs fail at release and never get here).
            // It may move the task to another variant; but an error says
            // nothing about time, so only a hang may have a healthy task
            // ahead of it step down for it.
            let relief = matches!(reason, FailReason::Hung);
            self.outcome_as(task, variant, None, now, relief);
        }
        self.retire(idx);
        self.dirty = true;
    }

    /// Common start of `finished` and `failed`: check the id, advance time
    /// and free the slot the sub-task ran on (a black-box job keeps its CPU
    /// worker, as held). Returns the job's index, or `None` for an unknown
    /// or stale id.
    fn stop_running(&mut self, job: JobId, now: Time) -> Option<u32> {
        let j = self.jobs.get(job.idx as usize)?;
        if !j.live || j.uid != job.uid || j.running.is_none() {
            return None;
        }
        self.tick(now);
        let idx = job.idx;
        let j = &mut self.jobs[idx as usize];
        match j.running.take() {
            Some(Slot::Gpu(l)) => self.gpu[l] = None,
            Some(Slot::Cpu(s)) => {
                self.cpu_running -= 1;
                self.cpu[s] = match j.holder {
                    Some(_) => CpuSlot::Held(idx),
                    None => CpuSlot::Free,
                };
            }
            None => unreachable!("checked above"),
        }
        Some(idx)
    }

    /// A job has ended: forget it.
    fn retire(&mut self, idx: u32) {
        if !self.jobs[idx as usize].retired {
            self.retire_firm(idx);
        }
        self.forget_retired(idx);
    }

    /// The job no longer counts as pending nor blocks its task's next job;
    /// a running sub-task of it may still be ending (firm overrun).
    fn retire_firm(&mut self, idx: u32) {
        let j = &mut self.jobs[idx as usize];
        j.retired = true;
        let task = j.task as usize;
        self.pending[task] -= 1;
        let at = self.in_order[task].iter().position(|&i| i == idx);
        let next = at.and_then(|at| {
            self.in_order[task].remove(at);
            self.in_order[task].get(at).copied()
        });
        if let Some(next) = next {
            self.try_unblock(next);
        }
        if self.jobs[idx as usize].running.is_none() {
            self.forget_retired(idx);
        }
    }

    /// Forget a retired job whose last sub-task has ended; free the worker
    /// it held.
    fn forget_retired(&mut self, idx: u32) {
        let j = &mut self.jobs[idx as usize];
        if !j.live {
            return;
        }
        if let Some(s) = j.holder.take() {
            self.cpu[s] = CpuSlot::Free;
        }
        j.live = false;
        self.free_jobs.push(idx);
        self.dirty = true;
    }

    /// Time advanced to `now`: flag jobs whose deadline has passed (firm
    /// tasks retire them), and abort sub-tasks that ran past the watchdog.
    pub fn advance(&mut self, now: Time) {
        self.tick(now);
        self.flag_misses(now);
        self.watchdog(now);
        // Packing admission may have held an inference back until now.
        if self.gpu_running() < self.gpu.len() && !self.gpu_queue.is_empty() {
            self.dirty = true;
        }
    }

    fn flag_misses(&mut self, now: Time) {
        while let Some(&Reverse((deadline, uid, idx))) = self.deadlines.peek() {
            if deadline >= now {
                break;
            }
            self.deadlines.pop();
            let j = &self.jobs[idx as usize];
            if j.live && j.uid == uid && !j.missed {
                let firm = self.tasks[j.task as usize].overrun == Overrun::Firm;
                self.flag_missed(idx, now);
                if firm {
                    self.retire_firm(idx);
                }
            }
        }
    }

    /// Count job `idx` as missed, once.
    fn flag_missed(&mut self, idx: u32, now: Time) {
        let j = &mut self.jobs[idx as usize];
        if j.missed {
            return;
        }
        j.missed = true;
        let (task, variant) = (j.task as usize, j.variant as usize);
        self.counters[task].missed += 1;
        self.out.push_back(Decision::Miss {
            task,
            seq: j.seq,
            deadline: j.deadline,
            at: now,
        });
        self.outcome(task, variant, None, now);
    }

    /// Tell `task`'s monitor how a job of `variant` ended (`None`: it
    /// missed), and switch variant if it says so; a starved task has a
    /// task ahead of it step down instead. Jobs of another variant than
    /// the current one (the backlog of a switch) say nothing about it.
    fn outcome(&mut self, task: usize, variant: usize, slack: Option<f64>, now: Time) {
        self.outcome_as(task, variant, slack, now, true);
    }

    /// [`Self::outcome`]; `relief`: whether a starved verdict may step
    /// down a task ahead of this one.
    fn outcome_as(
        &mut self,
        task: usize,
        variant: usize,
        slack: Option<f64>,
        now: Time,
        relief: bool,
    ) {
        let Some(options) = self.adapt else { return };
        let Some(m) = self.tasks[task].monitor.as_ref() else {
            return;
        };
        if m.variant() != variant {
            return;
        }
        let may_climb = self.victims_settled(task, &options);
        let Some(m) = self.tasks[task].monitor.as_mut() else {
            return;
        };
        match m.record(slack, now, &options, may_climb) {
            Verdict::Stay => {}
            Verdict::To(variant) => {
                if may_climb {
                    m.relieved.clear();
                }
                self.switched(task, variant, now);
            }
            Verdict::Starved => {
                if relief
                    && let Some(h) = self.helper(task)
                    && let Some(v) = self.tasks[h].monitor.as_mut().and_then(|m| {
                        if !m.relieved.contains(&task) {
                            m.relieved.push(task);
                        }
                        m.step_down(now)
                    })
                {
                    if let Some(m) = self.tasks[task].monitor.as_mut() {
                        m.restart();
                    }
                    self.switched(h, v, now);
                }
            }
        }
    }

    /// Every task `task` was stepped down for is back where it was planned.
    fn victims_settled(&self, task: usize, o: &AdaptOptions) -> bool {
        let Some(m) = self.tasks[task].monitor.as_ref() else {
            return true;
        };
        m.relieved.iter().all(|&v| {
            self.quarantined[v] || self.tasks[v].monitor.as_ref().is_none_or(|m| m.settled(o))
        })
    }

    /// The task to step down for starved `task`: one ahead of it (more
    /// urgent under fixed priorities; any other without them) that uses a
    /// resource of its chain and has a faster variant left, the one whose
    /// step frees the most time per second (ties: the more urgent).
    fn helper(&self, task: usize) -> Option<usize> {
        let own = self.policy.priority(task);
        let chain = &self.tasks[task].chain;
        (0..self.tasks.len())
            .filter(|&h| h != task && !self.quarantined[h])
            .filter(|&h| match (self.policy.priority(h), own) {
                (Some(p), Some(q)) => p < q,
                _ => true,
            })
            .filter(|&h| self.tasks[h].chain.iter().any(|r| chain.contains(r)))
            .filter_map(|h| Some((h, self.tasks[h].monitor.as_ref()?.frees())))
            .filter(|&(_, f)| f > 0.0)
            .max_by(|a, b| {
                a.1.total_cmp(&b.1).then_with(|| {
                    let p = |t: usize| self.policy.priority(t).unwrap_or(u32::MAX);
                    p(b.0).cmp(&p(a.0))
                })
            })
            .map(|(h, _)| h)
    }

    /// `task` runs `variant` from now on.
    fn switched(&mut self, task: usize, variant: usize, now: Time) {
        self.variant[task] = variant;
        self.out.push_back(Decision::Switch {
            task,
            variant,
            at: now,
        });
    }

    /// Abort every sub-task that has run for longer than the watchdog
    /// allows (started more than `watchdog` before `now`).
    fn watchdog(&mut self, now: Time) {
        while let Some(&Reverse((due, uid, idx, stage))) = self.watch.peek() {
            if due > now {
                break;
            }
            self.watch.pop();
            if !self.watched(uid, idx, stage) {
                continue;
            }
            let j = &self.jobs[idx as usize];
            let (task, seq) = (j.task as usize, j.seq);
            let Some(slot) = j.running else {
                continue;
            };
            let job = JobId { idx, uid };
            self.stop_running(job, now);
            self.out.push_back(Decision::Abort {
                job,
                task,
                seq,
                stage: stage as usize,
                slot,
                at: now,
            });
            if self.jobs[idx as usize].retired {
                self.forget_retired(idx);
            } else {
                self.fail(idx, now, FailReason::Hung);
            }
            self.hangs[task] += 1;
            if self.hangs[task] == self.faults.max_hangs {
                self.quarantined[task] = true;
                self.out.push_back(Decision::Quarantine { task, at: now });
            }
        }
    }

    /// End of a run: every job still pending counts as missed and is
    /// forgotten. Returns how many were abandoned.
    pub fn abandon_all(&mut self, now: Time) -> u64 {
        self.tick(now);
        let mut n = 0;
        for idx in 0..self.jobs.len() as u32 {
            let j = &self.jobs[idx as usize];
            if !j.live {
                continue;
            }
            n += 1;
            self.flag_missed(idx, now);
            self.jobs[idx as usize].running = None;
            self.retire(idx);
        }
        self.cpu_queue.clear();
        self.gpu_queue.clear();
        self.waiting.iter_mut().for_each(VecDeque::clear);
        self.cpu.iter_mut().for_each(|s| *s = CpuSlot::Free);
        self.gpu.iter_mut().for_each(|l| *l = None);
        self.cpu_running = 0;
        n
    }

    fn tick(&mut self, now: Time) {
        // Driver clocks may report slightly out of order across threads:
        // time never goes backwards here.
        let now = now.max(self.now);
        if self.start.is_none() {
            self.start = Some(now);
        }
        let dt = (now - self.now) as u128;
        if dt > 0 && self.start.is_some() {
            self.cpu_busy += dt * self.cpu_running.min(self.cpu_cores) as u128;
            self.gpu_busy += dt * self.gpu_running().min(self.gpu_capacity) as u128;
        }
        self.integrate_gpu(now);
        self.now = now;
    }

    /// Account the GPU work done since the last event under the packing
    /// slowdown, for packing admission.
    fn integrate_gpu(&mut self, now: Time) {
        let dt = now.saturating_sub(self.gpu_clock) as f64;
        self.gpu_clock = now;
        if dt == 0.0 {
            return;
        }
        let rate = 1.0 / self.platform.slowdown(self.gpu_running());
        for l in 0..self.gpu.len() {
            if let Some(idx) = self.gpu[l] {
                self.jobs[idx as usize].gpu_done += dt * rate;
            }
        }
    }

    fn complete(&mut self, idx: u32, now: Time) {
        let j = &self.jobs[idx as usize];
        let (task, seq, release, deadline) = (j.task as usize, j.seq, j.release, j.deadline);
        let variant = j.variant as usize;
        let late = now > deadline;
        if late {
            self.flag_missed(idx, now);
        } else if !j.missed {
            self.counters[task].completed += 1;
            let relative = self.tasks[task].deadline.max(1) as f64;
            self.outcome(task, variant, Some((deadline - now) as f64 / relative), now);
        }
        self.out.push_back(Decision::Complete {
            task,
            seq,
            release,
            at: now,
            late,
        });
        self.retire(idx);
    }

    fn entry(&mut self, idx: u32, resource: Resource) -> Entry {
        let j = &self.jobs[idx as usize];
        let view = JobView {
            task: j.task as usize,
            release: j.release,
            deadline: j.deadline,
            enqueued: self.now,
            resource,
        };
        let key = self.policy.key(&view);
        self.order += 1;
        let (release, uid) = (j.release, j.uid);
        self.jobs[idx as usize].key = key;
        Reverse((key, release, self.order, idx, uid))
    }

    /// Whether job `idx` must wait for its task's previous job: a task's
    /// jobs run in order, stage by stage (split queues) or whole (a job
    /// that holds a thread start to end).
    fn must_wait(&self, idx: u32) -> bool {
        let j = &self.jobs[idx as usize];
        let order = &self.in_order[j.task as usize];
        let Some(at) = order.iter().position(|&i| i == idx) else {
            return false;
        };
        let Some(&prev) = at.checked_sub(1).and_then(|p| order.get(p)) else {
            return false;
        };
        self.mode != Dispatch::Split || self.jobs[prev as usize].stage <= j.stage
    }

    /// The job after `idx` in its task may have been waiting for it.
    fn unblock_next(&mut self, idx: u32) {
        let order = &self.in_order[self.jobs[idx as usize].task as usize];
        let next = order
            .iter()
            .position(|&i| i == idx)
            .and_then(|at| order.get(at + 1).copied());
        if let Some(next) = next {
            self.try_unblock(next);
        }
    }

    fn try_unblock(&mut self, idx: u32) {
        if self.jobs[idx as usize].blocked && !self.must_wait(idx) {
            self.jobs[idx as usize].blocked = false;
            self.enqueue(idx);
            self.dirty = true;
        }
    }

    /// Put job `idx` where its current stage waits.
    fn enqueue(&mut self, idx: u32) {
        if self.jobs[idx as usize].holder.is_none() && self.must_wait(idx) {
            self.jobs[idx as usize].blocked = true;
            return;
        }
        let j = &self.jobs[idx as usize];
        let res = self.tasks[j.task as usize].chain[j.stage as usize];
        match (self.mode, j.holder) {
            (Dispatch::Split, _) => {
                let e = self.entry(idx, res);
                match res {
                    Resource::Cpu => self.cpu_queue.push(e),
                    Resource::Gpu => self.gpu_queue.push(e),
                }
            }
            // Black box, no thread yet: wait for one.
            (Dispatch::ThreadPerTask, None) => {
                let uid = j.uid;
                self.waiting[j.task as usize].push_back((idx, uid))
            }
            (Dispatch::BlackBox, None) => {
                let e = self.entry(idx, Resource::Cpu);
                self.cpu_queue.push(e);
            }
            // Black box with its thread: continue on it.
            (_, Some(slot)) => self.run_on_holder(idx, slot),
        }
    }

    /// A black-box job on its thread: run a CPU stage right there, or hold
    /// the thread and queue for the GPU.
    fn run_on_holder(&mut self, idx: u32, slot: usize) {
        let j = &self.jobs[idx as usize];
        match self.tasks[j.task as usize].chain[j.stage as usize] {
            Resource::Cpu => self.start(idx, Slot::Cpu(slot)),
            Resource::Gpu => {
                self.cpu[slot] = CpuSlot::Held(idx);
                let e = self.entry(idx, Resource::Gpu);
                self.gpu_queue.push(e);
            }
        }
    }

    fn start(&mut self, idx: u32, slot: Slot) {
        let j = &mut self.jobs[idx as usize];
        j.running = Some(slot);
        j.started = self.now;
        j.gpu_done = 0.0;
        if let Some(limit) = self.faults.watchdog {
            let due = self.now.saturating_add(limit).saturating_add(1);
            self.watch.push(Reverse((due, j.uid, idx, j.stage)));
        }
        match slot {
            Slot::Cpu(s) => {
                self.cpu[s] = CpuSlot::Running(idx);
                self.cpu_running += 1;
            }
            Slot::Gpu(l) => self.gpu[l] = Some(idx),
        }
        self.out.push_back(Decision::Start {
            job: JobId { idx, uid: j.uid },
            task: j.task as usize,
            seq: j.seq,
            stage: j.stage as usize,
            slot,
            release: j.release,
            variant: j.variant as usize,
        });
    }

    /// Hand waiting work to free workers and lanes, in policy order.
    fn dispatch(&mut self) {
        for s in 0..self.cpu.len() {
            if self.cpu[s] != CpuSlot::Free {
                continue;
            }
            let Some(idx) = self.next_for_cpu(s) else {
                if self.mode == Dispatch::ThreadPerTask {
                    continue;
                }
                break;
            };
            if self.mode == Dispatch::Split {
                self.start(idx, Slot::Cpu(s));
            } else {
                self.jobs[idx as usize].holder = Some(s);
                self.run_on_holder(idx, s);
            }
        }
        for l in 0..self.gpu.len() {
            if self.gpu[l].is_some() {
                continue;
            }
            let Some(idx) = self.next_for_gpu() else {
                break;
            };
            self.start(idx, Slot::Gpu(l));
        }
    }

    /// Whether a queue entry still stands for a job waiting there.
    fn current(&self, idx: u32, uid: u64) -> bool {
        let j = &self.jobs[idx as usize];
        j.live && j.uid == uid && !j.retired
    }

    /// The next job for CPU slot `s`; queued jobs of a quarantined task
    /// fail on the way instead of running.
    fn next_for_cpu(&mut self, s: usize) -> Option<u32> {
        loop {
            let (idx, uid) = match self.mode {
                Dispatch::ThreadPerTask => self.waiting[s].pop_front(),
                _ => self.cpu_queue.pop().map(|Reverse(e)| (e.3, e.4)),
            }?;
            if self.current(idx, uid) && !self.skip_quarantined(idx) {
                return Some(idx);
            }
        }
    }

    /// The next job for a free GPU lane (see [`Self::next_for_cpu`]). A job
    /// is not packed beside a more urgent running one that the packing
    /// slowdown would make miss its deadline (it waits for a lane to free).
    fn next_for_gpu(&mut self) -> Option<u32> {
        loop {
            let &Reverse(e) = self.gpu_queue.peek()?;
            if !self.current(e.3, e.4) {
                self.gpu_queue.pop();
                continue;
            }
            if !self.packing_admits(e.0) {
                return None;
            }
            self.gpu_queue.pop();
            if !self.skip_quarantined(e.3) {
                return Some(e.3);
            }
        }
    }

    /// Whether one more GPU sub-task of queue key `key` may start now: every
    /// more urgent running one that meets its deadline as it runs still
    /// meets it at the slowdown of one more busy lane (on its estimate).
    fn packing_admits(&self, key: u64) -> bool {
        self.packing_wait(key).is_none()
    }

    /// When a GPU sub-task of queue key `key` that packing admission holds
    /// back now may start (with nothing else changing: the more urgent
    /// inferences progress until one more busy lane no longer makes them
    /// miss); `None` if it may start now.
    fn packing_wait(&self, key: u64) -> Option<Time> {
        let busy = self.gpu_running();
        if busy == 0 {
            return None;
        }
        let (now_s, then_s) = (
            self.platform.slowdown(busy),
            self.platform.slowdown(busy + 1),
        );
        if then_s <= now_s {
            return None;
        }
        let now = self.now as f64;
        let mut wait: Option<f64> = None;
        for &idx in self.gpu.iter().flatten() {
            let j = &self.jobs[idx as usize];
            if j.key >= key || j.retired {
                continue;
            }
            let est =
                self.tasks[j.task as usize].estimate[j.variant as usize][j.stage as usize] as f64;
            let left = (est - j.gpu_done).max(0.0);
            let deadline = j.deadline as f64;
            if now + left * then_s <= deadline || now + left * now_s > deadline {
                continue;
            }
            // At t its end under one more lane is t + (left − (t − now)/now_s)·then_s,
            // falling in t: admission from where it reaches the deadline.
            let r = then_s / now_s;
            let t = (now * r + left * then_s - deadline) / (r - 1.0);
            wait = Some(wait.map_or(t, |w| w.max(t)));
        }
        wait.map(|t| (t.ceil() as Time).max(self.now + 1))
    }

    /// When packing admission may let the most urgent waiting inference
    /// start, if it holds one back.
    fn packing_timeout(&self) -> Option<Time> {
        if self.gpu_running() >= self.gpu.len() {
            return None;
        }
        let Reverse(e) = self.gpu_queue.peek()?;
        if !self.current(e.3, e.4) {
            return None;
        }
        self.packing_wait(e.0)
    }

    /// Fail job `idx` if its task is quarantined; whether it did.
    fn skip_quarantined(&mut self, idx: u32) -> bool {
        let task = self.jobs[idx as usize].task as usize;
        if self.quarantined[task] {
            self.fail(idx, self.now, FailReason::Quarantined);
            true
        } else {
            false
        }
    }
}
