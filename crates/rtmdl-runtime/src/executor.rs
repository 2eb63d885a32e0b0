//! The real-time executor: the scheduler core driven by a monotonic clock.
//!
//! One dispatcher thread owns the [`Scheduler`]; it releases jobs at
//! `offset + k·period` (computed, so releases never drift), forwards each
//! `Start` decision to the CPU worker or GPU lane it names, and feeds the
//! workers' completions back as `finished`/`failed` events. Workers and
//! lanes own their sub-task bodies (functions, engine sessions), which are
//! built and warmed before the first release: the hot path only moves data.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded, unbounded};
use rtmdl_core::policy::Dispatch;
use rtmdl_core::report::{Recorder, Samples};
use rtmdl_core::{
    Decision, JobId, Policy, Resource, SchedTask, Scheduler, Slot, TaskCounters, TaskSet, Time,
};

use crate::rt::{self, RtReport};
use crate::trace::{Trace, TraceSlice};
use crate::{Data, RuntimeError};

/// The executable body of one sub-task, owned by one worker or lane.
pub trait Work: Send {
    fn run(&mut self, input: Data) -> Result<Data, String>;
}

/// Builds the bodies and produces the jobs' inputs.
pub trait Bodies: Send + Sync {
    /// The body of stage `stage` of task `task`, for one worker or lane.
    fn work(&self, task: usize, stage: usize) -> Result<Box<dyn Work>, RuntimeError>;
    /// The input of job `seq` of `task` (called when its first sub-task starts).
    fn input(&self, task: usize, seq: u64) -> Result<Data, String>;
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
    /// A sub-task running longer than this fails its job.
    pub watchdog: Option<Time>,
    /// Set from outside (Ctrl-C) to stop early: releases stop at once,
    /// running sub-tasks get `stop_grace` to finish, then the rest count as
    /// missed and the report is written as usual.
    pub stop: Option<Arc<std::sync::atomic::AtomicBool>>,
    pub stop_grace: Time,
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
        }
    }
}

/// How many sub-task failures a run keeps with their messages.
pub const FAILURES_KEPT: usize = 64;

/// After this many of its sub-tasks hung, a task is quarantined: its jobs
/// are still released and counted, but fail at once instead of running.
/// Each hang leaves a thread behind, so this bounds the threads one broken
/// model can cost, and the other tasks keep their workers.
pub const MAX_HANGS: u32 = 3;

/// Failures seen so far: the first [`FAILURES_KEPT`] and a count.
#[derive(Default)]
struct Failures {
    first: Vec<(usize, u64, usize, String)>,
    total: u64,
}

impl Failures {
    fn push(&mut self, f: (usize, u64, usize, String)) {
        self.total += 1;
        if self.first.len() < FAILURES_KEPT {
            self.first.push(f);
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
    /// Release → first sub-task start, over all jobs (ns).
    pub dispatch_latency: Samples,
    /// How late each release was issued after its nominal time (ns).
    pub release_lateness: Samples,
    /// Sub-task failures: (task, seq, stage, message), the first
    /// [`FAILURES_KEPT`] of them (a model failing every job must not grow
    /// memory); `failures_total` counts them all.
    pub failures: Vec<(usize, u64, usize, String)>,
    pub failures_total: u64,
    /// Tasks quarantined after [`MAX_HANGS`] hung sub-tasks: (task, when, ns).
    pub quarantined: Vec<(usize, Time)>,
    /// When the run was stopped from outside (ns since start), if it was.
    pub stopped_at: Option<Time>,
    /// CPU worker threads and GPU lanes the run used.
    pub cpu_slots: usize,
    pub gpu_lanes: usize,
    /// The longest the CPU and GPU ready queues grew (sub-tasks waiting).
    pub max_queued: (usize, usize),
    /// Workers found hung by the watchdog and replaced: (slot, when, ns).
    pub replaced: Vec<(Slot, Time)>,
    /// Hung workers that could not be replaced, and why.
    pub worker_errors: Vec<String>,
    /// Sub-tasks still running when the run ended (abandoned).
    pub hung_at_end: usize,
}

enum Cmd {
    Run {
        job: JobId,
        task: usize,
        seq: u64,
        stage: usize,
        input: Option<Data>,
    },
    Stop,
}

struct Done {
    job: JobId,
    task: usize,
    seq: u64,
    stage: usize,
    slot: Slot,
    start: Time,
    end: Time,
    out: Result<Data, String>,
}

/// The clock all threads share: nanoseconds since the run's epoch.
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn now(&self) -> Time {
        Instant::now().saturating_duration_since(self.0).as_nanos() as Time
    }
    fn at(&self, t: Time) -> Instant {
        self.0 + Duration::from_nanos(t)
    }
}

/// A sub-task handed to a worker and not yet reported back.
struct InFlight {
    job: JobId,
    start: Time,
    task: usize,
    seq: u64,
    stage: usize,
}

struct Worker {
    tx: Sender<Cmd>,
    handle: Option<JoinHandle<()>>,
}

/// How many worker panics a process prints (one line each).
const PANICS_PRINTED: u32 = 20;

/// Makes a panic on a worker or lane thread print one line instead of going
/// through the default hook: with `RUST_BACKTRACE` set, that hook resolves a
/// backtrace, which stalls the thread for hundreds of milliseconds, long
/// enough to make the next jobs of every task late. The panic is still
/// caught and reported as the job's failure. Other threads keep the hook
/// they had. Installed once per process; it prints the first
/// [`PANICS_PRINTED`] panics and then says it stops printing.
fn quiet_worker_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let name = std::thread::current().name().unwrap_or("").to_string();
            if name.starts_with("rtmdl-cpu") || name.starts_with("rtmdl-gpu") {
                let msg = panic_message(info.payload());
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                // A model that panics on every job would flood the
                // terminal: the first lines say what, the report counts all.
                static PRINTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                match PRINTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) {
                    n if n < PANICS_PRINTED => {
                        eprintln!("{name}: sub-task panicked{at}: {msg} (its job fails)")
                    }
                    PANICS_PRINTED => eprintln!(
                        "{name}: further sub-task panics are not printed (the report counts every failure)"
                    ),
                    _ => {}
                }
            } else {
                previous(info);
            }
        }));
    });
}

/// What a starting worker reports: whether its real-time settings were
/// granted, or why its bodies could not be built.
type Ready = Receiver<Result<Result<(), String>, RuntimeError>>;

/// The text a panic was raised with (`panic!` payloads are a `String` or a
/// `&str`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Run `ts` for real with the given variants/priorities and policy.
pub fn run(
    ts: &TaskSet,
    policy: Box<dyn Policy>,
    bodies: Arc<dyn Bodies>,
    opts: &RunOptions,
) -> Result<RunOutcome, RuntimeError> {
    quiet_worker_panics();
    let sched_tasks = SchedTask::from_taskset(ts);
    let mut sched = Scheduler::new(sched_tasks.clone(), &ts.platform, policy);
    let rt_report = if opts.realtime {
        rt::lock_memory()
    } else {
        RtReport::disabled()
    };
    let (done_tx, done_rx) = unbounded::<Done>();
    // The epoch is set once everything is built and warm.
    let epoch = Arc::new(std::sync::OnceLock::<Clock>::new());
    let per_task = sched.dispatch_mode() == Dispatch::ThreadPerTask;

    // A worker or lane builds its own bodies (engine sessions, functions)
    // for the stages it runs, on its own thread, then reports whether it is
    // ready. The same for the first workers and for replacements.
    let stages_of = |slot: Slot| match slot {
        Slot::Cpu(s) => cpu_stages(&sched_tasks, per_task.then_some(s)),
        Slot::Gpu(_) => gpu_stages(&sched_tasks),
    };
    let spawn = |slot: Slot| -> Result<(Worker, Ready), RuntimeError> {
        let stages = stages_of(slot);
        let rt_prio = opts.realtime.then_some(rt::WORKER_PRIO);
        let (tx, rx) = bounded::<Cmd>(4);
        let done_tx = done_tx.clone();
        let bodies = bodies.clone();
        let epoch = epoch.clone();
        let name = slot_name(slot);
        let (ready_tx, ready_rx) = bounded(1);
        let pin = match slot {
            Slot::Cpu(i) if opts.realtime => Some(i),
            _ => None,
        };
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let mut works: HashMap<(usize, usize), Box<dyn Work>> = HashMap::new();
                for (task, stage) in stages {
                    match bodies.work(task, stage) {
                        Ok(w) => {
                            works.insert((task, stage), w);
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    }
                }
                let status = rt::configure_thread(rt_prio, pin);
                let _ = ready_tx.send(Ok(status));
                worker_loop(slot, works, rx, done_tx, bodies, epoch)
            })
            .map_err(|e| RuntimeError::Thread(e.to_string()))?;
        Ok((
            Worker {
                tx,
                handle: Some(handle),
            },
            ready_rx,
        ))
    };

    let mut rt_log = rt_report;
    let slots: Vec<Slot> = (0..sched.cpu_slots())
        .map(Slot::Cpu)
        .chain((0..sched.gpu_lanes()).map(Slot::Gpu))
        .collect();
    // Every worker builds at once; then wait for all of them.
    let mut starting = Vec::new();
    for &slot in &slots {
        starting.push(spawn(slot)?);
    }
    let mut cpu_workers = Vec::new();
    let mut gpu_lanes = Vec::new();
    let mut first_error = None;
    for (&slot, (worker, ready)) in slots.iter().zip(starting) {
        match ready.recv() {
            Ok(Ok(status)) => {
                // Only threads that asked for a real-time priority are
                // reported (with `realtime` off the report says "off").
                if opts.realtime {
                    rt_log.thread(&slot_name(slot), status);
                }
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert(RuntimeError::Thread(format!(
                    "{} stopped while building its sub-tasks",
                    slot_name(slot)
                )));
            }
        }
        match slot {
            Slot::Cpu(_) => cpu_workers.push(worker),
            Slot::Gpu(_) => gpu_lanes.push(worker),
        }
    }
    if let Some(e) = first_error {
        for w in cpu_workers.iter().chain(gpu_lanes.iter()) {
            let _ = w.tx.try_send(Cmd::Stop);
        }
        return Err(e);
    }
    if opts.realtime {
        let status = rt::configure_thread(Some(rt::DISPATCHER_PRIO), None);
        rt_log.thread("rtmdl-dispatcher", status);
    }
    // Replacements for hung workers that are still building: (slot, ready).
    let mut rebuilding: Vec<(Slot, Ready)> = Vec::new();
    let mut replaced = Vec::new();
    let mut worker_errors = Vec::new();

    // Start shortly after now, so that the first releases are on time.
    let clock = Clock(Instant::now() + Duration::from_millis(20));
    let _ = epoch.set(clock);

    let mut next_release: Vec<Time> = ts.tasks.iter().map(|t| t.offset).collect();
    // What a run records per job goes into fixed-size histograms, allocated
    // here: memory does not grow with the length of the run.
    let mut recorder = Recorder::new(ts.tasks.len());

    let mut data: HashMap<JobId, Data> = HashMap::new();
    let mut running: HashMap<Slot, InFlight> = HashMap::new();
    let mut trace = opts.trace.then(Trace::default);
    let mut dispatch_latency = Samples::new();
    let mut release_lateness = Samples::new();
    let mut max_queued = (0usize, 0usize);
    let mut failures = Failures::default();
    // Hung sub-tasks per task; at MAX_HANGS the task is quarantined.
    let mut hangs = vec![0u32; ts.tasks.len()];
    let mut quarantined = Vec::new();
    let mut end_of_releases = opts.duration;
    let mut hard_stop = opts.duration.saturating_add(opts.grace);
    let mut stopped_early = None;

    let handle_done = |d: Done,
                       sched: &mut Scheduler,
                       data: &mut HashMap<JobId, Data>,
                       running: &mut HashMap<Slot, InFlight>,
                       trace: &mut Option<Trace>,
                       failures: &mut Failures| {
        if running.get(&d.slot).map(|r| r.job) == Some(d.job) {
            running.remove(&d.slot);
        }
        if let Some(t) = trace.as_mut() {
            t.slices.push(TraceSlice {
                slot: d.slot,
                task: d.task,
                seq: d.seq,
                stage: d.stage,
                start: d.start,
                end: d.end,
                failed: d.out.is_err(),
            });
        }
        match d.out {
            Ok(out) => {
                // Keep the output for the job's next sub-task; the last
                // one's output has no reader (kept, it leaked every job).
                let more = d.stage + 1 < sched_tasks[d.task].chain.len();
                if sched.finished(d.job, d.end) && more {
                    data.insert(d.job, out);
                }
            }
            Err(e) => {
                failures.push((d.task, d.seq, d.stage, e));
                data.remove(&d.job);
                sched.failed(d.job, d.end);
            }
        }
    };

    loop {
        let now = clock.now();
        if stopped_early.is_none()
            && opts
                .stop
                .as_ref()
                .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
        {
            stopped_early = Some(now);
            end_of_releases = end_of_releases.min(now);
            hard_stop = hard_stop.min(now.saturating_add(opts.stop_grace));
        }
        // Releases due now, at their nominal times.
        for (task, t) in next_release.iter_mut().enumerate() {
            while *t < end_of_releases && *t <= now {
                release_lateness.record(now - *t);
                sched.release(task, *t);
                *t = t.saturating_add(ts.tasks[task].period.max(1));
            }
        }
        // Watchdog: a sub-task running too long fails its job.
        if let Some(limit) = opts.watchdog {
            let stuck: Vec<Slot> = running
                .iter()
                .filter(|(_, r)| now.saturating_sub(r.start) > limit)
                .map(|(s, _)| *s)
                .collect();
            for slot in stuck {
                let Some(r) = running.remove(&slot) else {
                    continue;
                };
                data.remove(&r.job);
                failures.push((
                    r.task,
                    r.seq,
                    r.stage,
                    format!("watchdog: still running after {:.1} ms", limit as f64 / 1e6),
                ));
                sched.failed(r.job, now);
                hangs[r.task] += 1;
                if hangs[r.task] == MAX_HANGS {
                    quarantined.push((r.task, now));
                }
                // The hung thread is left behind (it cannot be killed); a new
                // one takes its slot and builds its own bodies. Work sent to
                // the slot meanwhile waits in its queue.
                match spawn(slot) {
                    Ok((fresh, ready)) => {
                        let w = match slot {
                            Slot::Cpu(s) => &mut cpu_workers[s],
                            Slot::Gpu(l) => &mut gpu_lanes[l],
                        };
                        let old = std::mem::replace(w, fresh);
                        drop(old.tx);
                        rebuilding.push((slot, ready));
                        replaced.push((slot, now));
                    }
                    Err(e) => {
                        worker_errors.push(format!("cannot replace hung {}: {e}", slot_name(slot)))
                    }
                }
            }
        }
        rebuilding.retain(|(slot, ready)| match ready.try_recv() {
            Ok(Ok(_)) => false,
            Ok(Err(e)) => {
                worker_errors.push(format!(
                    "replacement for {} failed to build: {e}",
                    slot_name(*slot)
                ));
                false
            }
            Err(crossbeam_channel::TryRecvError::Empty) => true,
            Err(crossbeam_channel::TryRecvError::Disconnected) => false,
        });
        sched.advance(now);
        while let Some(d) = sched.poll() {
            recorder.observe(&d);
            match d {
                Decision::Start {
                    job,
                    task,
                    seq,
                    stage,
                    slot,
                    release,
                } => {
                    if stage == 0 {
                        dispatch_latency.record(now.saturating_sub(release));
                    }
                    let input = data.remove(&job);
                    if hangs[task] >= MAX_HANGS {
                        failures.push((
                            task,
                            seq,
                            stage,
                            format!("quarantined after {MAX_HANGS} hung sub-tasks"),
                        ));
                        sched.failed(job, now);
                        continue;
                    }
                    let w = match slot {
                        Slot::Cpu(s) => &cpu_workers[s],
                        Slot::Gpu(l) => &gpu_lanes[l],
                    };
                    let cmd = Cmd::Run {
                        job,
                        task,
                        seq,
                        stage,
                        input,
                    };
                    // A worker whose queue is full is stuck in a hung
                    // sub-task: fail the job rather than block dispatch.
                    if w.tx.try_send(cmd).is_ok() {
                        running.insert(
                            slot,
                            InFlight {
                                job,
                                start: now,
                                task,
                                seq,
                                stage,
                            },
                        );
                    } else {
                        failures.push((task, seq, stage, format!("{slot:?} is not responding")));
                        sched.failed(job, now);
                    }
                }
                Decision::Miss { task, seq, at, .. } => {
                    if let Some(t) = trace.as_mut() {
                        t.misses.push((task, seq, at));
                    }
                }
                Decision::Complete { .. } | Decision::Fail { .. } | Decision::Drop { .. } => {}
            }
        }
        max_queued.0 = max_queued.0.max(sched.queued(Resource::Cpu));
        max_queued.1 = max_queued.1.max(sched.queued(Resource::Gpu));
        let released_all = next_release.iter().all(|&t| t >= end_of_releases);
        if released_all && sched.is_idle() {
            break;
        }
        if now >= hard_stop {
            sched.abandon_all(now);
            while let Some(d) = sched.poll() {
                if let (Decision::Miss { task, seq, at, .. }, Some(t)) = (d, trace.as_mut()) {
                    t.misses.push((task, seq, at));
                }
            }
            break;
        }
        // Sleep until the next release, deadline check or completion.
        let mut wake = hard_stop;
        if let Some(&t) = next_release.iter().filter(|&&t| t < end_of_releases).min() {
            wake = wake.min(t);
        }
        if let Some(t) = sched.next_timeout() {
            wake = wake.min(t);
        }
        if opts.stop.is_some() {
            // Look at the stop flag at least every 50 ms.
            wake = wake.min(now + 50_000_000);
        }
        if let Some(limit) = opts.watchdog
            && let Some(first) = running.values().map(|r| r.start).min()
        {
            wake = wake.min(first + limit + 1);
        }
        match done_rx.recv_deadline(clock.at(wake)) {
            Ok(d) => {
                handle_done(
                    d,
                    &mut sched,
                    &mut data,
                    &mut running,
                    &mut trace,
                    &mut failures,
                );
                while let Ok(d) = done_rx.try_recv() {
                    handle_done(
                        d,
                        &mut sched,
                        &mut data,
                        &mut running,
                        &mut trace,
                        &mut failures,
                    );
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(RuntimeError::Thread("all workers stopped".into()));
            }
        }
    }

    let utilisation = sched.utilisation();
    // Stop the workers. A worker stuck in a hung sub-task is left behind
    // rather than blocking the report.
    for w in cpu_workers.iter_mut().chain(gpu_lanes.iter_mut()) {
        let _ = w.tx.try_send(Cmd::Stop);
    }
    let deadline = Instant::now() + Duration::from_millis(500);
    let hung_at_end = running.len();
    for w in cpu_workers.iter_mut().chain(gpu_lanes.iter_mut()) {
        if let Some(h) = w.handle.take() {
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
    }
    if opts.realtime {
        rt::reset_thread();
    }
    Ok(RunOutcome {
        counters: sched.counters().to_vec(),
        recorder,
        utilisation,
        trace,
        realtime: rt_log,
        dispatch_latency,
        release_lateness,
        failures: failures.first,
        failures_total: failures.total,
        quarantined,
        stopped_at: stopped_early,
        cpu_slots: sched.cpu_slots(),
        gpu_lanes: sched.gpu_lanes(),
        max_queued,
        replaced,
        worker_errors,
        hung_at_end,
    })
}

fn slot_name(slot: Slot) -> String {
    match slot {
        Slot::Cpu(i) => format!("rtmdl-cpu{i}"),
        Slot::Gpu(i) => format!("rtmdl-gpu{i}"),
    }
}

fn cpu_stages(tasks: &[SchedTask], only: Option<usize>) -> Vec<(usize, usize)> {
    stages_on(tasks, Resource::Cpu, only)
}

fn gpu_stages(tasks: &[SchedTask]) -> Vec<(usize, usize)> {
    stages_on(tasks, Resource::Gpu, None)
}

fn stages_on(tasks: &[SchedTask], r: Resource, only: Option<usize>) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    for (t, task) in tasks.iter().enumerate() {
        if only.is_some_and(|o| o != t) {
            continue;
        }
        for (s, res) in task.chain.iter().enumerate() {
            if *res == r {
                v.push((t, s));
            }
        }
    }
    v
}

fn worker_loop(
    slot: Slot,
    mut works: HashMap<(usize, usize), Box<dyn Work>>,
    rx: Receiver<Cmd>,
    done: Sender<Done>,
    bodies: Arc<dyn Bodies>,
    epoch: Arc<std::sync::OnceLock<Clock>>,
) {
    while let Ok(cmd) = rx.recv() {
        let Cmd::Run {
            job,
            task,
            seq,
            stage,
            input,
        } = cmd
        else {
            break;
        };
        let Some(clock) = epoch.get().copied() else {
            break;
        };
        let start = clock.now();
        let out = catch_unwind(AssertUnwindSafe(|| {
            let input = match input {
                Some(d) => d,
                None if stage == 0 => bodies.input(task, seq)?,
                None => Vec::new(),
            };
            match works.get_mut(&(task, stage)) {
                Some(w) => w.run(input),
                None => Err(format!("no body for task {task} stage {stage} on {slot:?}")),
            }
        }))
        .unwrap_or_else(|p| Err(format!("panicked: {}", panic_message(p.as_ref()))));
        let end = clock.now();
        if done
            .send(Done {
                job,
                task,
                seq,
                stage,
                slot,
                start,
                end,
                out,
            })
            .is_err()
        {
            break;
        }
    }
}
