//! What a real run produced, and what it records per job on the way (in
//! fixed-size histograms, so a run's memory does not grow with its length).

use rtmdl_core::report::{Recorder, Samples};
use rtmdl_core::{Resource, Slot, TaskCounters, Time};

use crate::rt::RtReport;
use crate::trace::Trace;

/// How many sub-task failures a run keeps with their messages.
pub const FAILURES_KEPT: usize = 64;

/// One failed sub-task (or job).
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub task: usize,
    pub seq: u64,
    pub stage: usize,
    pub message: String,
}

/// Failures seen so far: the first [`FAILURES_KEPT`] and a count.
#[derive(Default)]
pub(super) struct Failures {
    pub first: Vec<Failure>,
    pub total: u64,
}

impl Failures {
    pub fn push(&mut self, f: Failure) {
        self.total += 1;
        if self.first.len() < FAILURES_KEPT {
            self.first.push(f);
        }
    }
}

/// The thread hand-offs of a run, per resource (index 0: CPU workers,
/// 1: GPU lanes), in ns.
#[derive(Clone, Debug, Default)]
pub struct Handoffs {
    /// The core decided a start → the worker began the sub-task.
    pub dispatch: [Samples; 2],
    /// The worker ended the sub-task → the dispatcher handled it.
    pub back: [Samples; 2],
}

impl Handoffs {
    pub(super) fn side(r: Resource) -> usize {
        match r {
            Resource::Cpu => 0,
            Resource::Gpu => 1,
        }
    }
}

/// What a run produced.
pub struct RunOutcome {
    pub counters: Vec<TaskCounters>,
    pub recorder: Recorder,
    pub utilisation: (f64, f64),
    pub trace: Option<Trace>,
    pub realtime: RtReport,
    /// Release → first sub-task start decision, over all jobs (ns).
    pub dispatch_latency: Samples,
    /// How late each release was issued after its nominal time (ns).
    pub release_lateness: Samples,
    /// Thread hand-offs, measured on every sub-task.
    pub handoffs: Handoffs,
    /// Per task, per stage: how long the sub-task ran on its worker (ns),
    /// under the run's own contention.
    pub stage_times: Vec<Vec<Samples>>,
    /// Sub-task failures, the first [`FAILURES_KEPT`] of them (a model
    /// failing every job must not grow memory); `failures_total` counts
    /// them all.
    pub failures: Vec<Failure>,
    pub failures_total: u64,
    /// Tasks quarantined by the core after repeated hangs: (task, when, ns).
    pub quarantined: Vec<(usize, Time)>,
    /// When the run was stopped from outside (ns since start), if it was.
    pub stopped_at: Option<Time>,
    /// CPU worker threads and GPU lanes the run used.
    pub cpu_slots: usize,
    pub gpu_lanes: usize,
    /// The longest the CPU and GPU ready queues grew (sub-tasks waiting).
    pub max_queued: QueueHighWater,
    /// Workers the core found hung and the run replaced: (slot, when, ns).
    pub replaced: Vec<(Slot, Time)>,
    /// Hung workers that could not be replaced, and why.
    pub worker_errors: Vec<String>,
    /// Sub-tasks still running when the run ended (abandoned).
    pub hung_at_end: usize,
    /// What was built before the first release.
    pub prepared: Prepared,
    /// Per task whose frames carry their ground truth, how each job ended
    /// (score them with [`rtmdl_core::timely::score`]).
    pub answers: Vec<Option<rtmdl_core::timely::Answers>>,
    /// What the interference probe saw, when it ran.
    pub interference: Option<rtmdl_core::interference::Interference>,
}

/// The bodies the workers built before the first release: with online
/// switching, every variant a task may switch to, so nothing is loaded on
/// the hot path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prepared {
    /// (task, stage, variant) bodies over all workers and lanes.
    pub bodies: usize,
    /// Variants over all tasks.
    pub variants: usize,
    /// Resident memory they added.
    pub bytes: u64,
}

/// The longest the ready queues grew during a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueHighWater {
    pub cpu: usize,
    pub gpu: usize,
}
