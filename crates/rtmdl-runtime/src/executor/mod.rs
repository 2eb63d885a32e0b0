//! The real-time executor: the scheduler core driven by a monotonic clock.
//!
//! One dispatcher thread owns the [`Scheduler`] and runs an event loop
//! ([`dispatcher`]): it releases jobs at `offset + k·period`
//! ([`rtmdl_core::Releases`], the simulator's own release schedule, so
//! releases never drift), forwards the core's decisions (start a sub-task
//! on a CPU worker or GPU lane, replace a hung worker) and feeds the
//! workers' reports back as `finished`/`failed` events. It decides nothing
//! itself: deadlines, the watchdog and quarantine are the core's timers and
//! decisions. Workers and lanes ([`workers`]) own their sub-task bodies
//! (functions, engine sessions), built and warmed before the first
//! release: the hot path only moves data.

mod dispatcher;
mod outcome;
mod workers;

use std::sync::Arc;

use rtmdl_core::fault::FaultPolicy;
use rtmdl_core::{Assignment, Policy, SchedTask, Scheduler, TaskSet, Time};

use crate::{Data, RuntimeError};

pub use outcome::{FAILURES_KEPT, Failure, Handoffs, Prepared, RunOutcome};
pub use rtmdl_core::fault::MAX_HANGS;

/// The executable body of one sub-task, owned by one worker or lane.
pub trait Work: Send {
    fn run(&mut self, input: Data) -> Result<Data, String>;
}

/// Builds the bodies and produces the jobs' inputs.
pub trait Bodies: Send + Sync {
    /// The body of stage `stage` of task `task` (its planned variant), for
    /// one worker or lane.
    fn work(&self, task: usize, stage: usize) -> Result<Box<dyn Work>, RuntimeError>;
    /// The same with variant `variant` of the task's model (online
    /// switching prepares every variant a task may run). By default the
    /// planned one: bodies whose variants all run alike.
    fn work_variant(
        &self,
        task: usize,
        stage: usize,
        _variant: usize,
    ) -> Result<Box<dyn Work>, RuntimeError> {
        self.work(task, stage)
    }
    /// The input of job `seq` of `task` (called when its first sub-task starts).
    fn input(&self, task: usize, seq: u64) -> Result<Data, String>;
    /// Whether `task`'s frames carry their ground truth, so its answers are
    /// judged (timely accuracy).
    fn judged(&self, _task: usize) -> bool {
        false
    }
    /// What frame `seq` of `task` shows (`None`: nothing to answer).
    fn truth(&self, _task: usize, _seq: u64) -> Option<rtmdl_ops::Truth> {
        None
    }
}

/// One job's result, as a run hands it to [`RunOptions::results`]: the
/// output of its last sub-task.
pub struct JobResult<'a> {
    pub task: usize,
    /// The job's release number (its nominal release is `offset + seq ×
    /// period`).
    pub seq: u64,
    /// When the dispatcher had the result, ns after the run's time zero.
    pub finished: Time,
    /// The variant that ran it.
    pub variant: usize,
    pub out: &'a Data,
}

/// Where a run delivers every job's result. Called on the dispatcher
/// thread, between two scheduling decisions: copy what you keep and hand
/// it to a thread of your own (a file writer, a callback), never block.
#[derive(Clone)]
pub struct ResultSink(pub Arc<dyn Fn(&JobResult<'_>) + Send + Sync>);

impl std::fmt::Debug for ResultSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResultSink")
    }
}

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Jobs are released in [0, duration).
    pub duration: Time,
    /// After the last release, wait this long for pending jobs, then count
    /// them as missed.
    pub grace: Time,
    /// Ask for SCHED_FIFO, CPU affinity and mlockall.
    pub realtime: bool,
    /// Keep a trace of every sub-task.
    pub trace: bool,
    /// A sub-task running longer than this fails its job (overrides the
    /// platform's watchdog).
    pub watchdog: Option<Time>,
    /// Set from outside (Ctrl-C) to stop early: releases stop at once,
    /// running sub-tasks get `stop_grace` to finish, then the rest count as
    /// missed and the report is written as usual.
    pub stop: Option<Arc<std::sync::atomic::AtomicBool>>,
    pub stop_grace: Time,
    /// Record a timeline in bins of this length (always with online
    /// switching, in the set's `adapt` bins unless given).
    pub timeline: Option<Time>,
    /// Told the run's time zero (the first releases) once every body is
    /// ready: for what must happen at a time of the run from outside it
    /// (a disturbance started at 4 s of the run, not of the process).
    pub started: Option<Arc<std::sync::OnceLock<std::time::Instant>>>,
    /// The interference probe beside the run (`None`: off). Its threads
    /// ask for SCHED_FIFO only when `realtime` is on too.
    pub probe: Option<crate::probe::ProbeOptions>,
    /// The task set the prediction beside every task simulates (a measured
    /// profile applied to the run's own); `None`: the run's own times.
    pub predict: Option<Arc<TaskSet>>,
    /// Split every missed job's time by cause ([`rtmdl_core::why`]); keeps
    /// a record of every sub-task (as `trace` does) for it.
    pub why: bool,
    /// Every job's result, as it is delivered (`None`: results are judged
    /// where the source knows the truth, and dropped).
    pub results: Option<ResultSink>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            duration: 10_000_000_000,
            grace: 1_000_000_000,
            realtime: true,
            trace: false,
            watchdog: None,
            stop: None,
            stop_grace: 500_000_000,
            timeline: None,
            started: None,
            probe: Some(crate::probe::ProbeOptions::default()),
            why: false,
            predict: None,
            results: None,
        }
    }
}

/// Run `ts` for real with the assigned variants under `policy`.
pub fn run(
    ts: &TaskSet,
    assign: &[Assignment],
    policy: Box<dyn Policy>,
    bodies: Arc<dyn Bodies>,
    opts: &RunOptions,
) -> Result<RunOutcome, RuntimeError> {
    workers::quiet_worker_panics();
    let faults = FaultPolicy {
        watchdog: opts.watchdog.or(ts.platform.faults.watchdog),
        ..ts.platform.faults
    };
    let sched = Scheduler::new(SchedTask::from_taskset(ts, assign), &ts.platform, policy)
        .with_faults(faults)
        .with_adapt(ts.adapt);
    let traced;
    let opts = if opts.why && !opts.trace {
        traced = RunOptions {
            trace: true,
            ..opts.clone()
        };
        &traced
    } else {
        opts
    };
    dispatcher::Dispatcher::start(ts, sched, bodies, opts)?.run()
}
