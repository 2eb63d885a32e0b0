//! The dispatcher: an event loop around the scheduler core on the real
//! clock. Each turn it releases the jobs that are due, tells the core the
//! time, forwards the core's decisions to the workers, then waits for the
//! next [`Event`]: a worker's report, a timer (the next release, or the
//! core's next timeout: a deadline or a watchdog), or a stop request.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use flume::{Receiver, RecvTimeoutError, unbounded};
use rtmdl_core::fault::FailReason;
use rtmdl_core::report::{Recorder, Samples};
use rtmdl_core::timely::Answers;
use rtmdl_core::{Decision, JobId, Releases, Resource, Scheduler, Slot, TaskSet, Time};

use super::outcome::{Failure, Failures, Handoffs, Prepared, QueueHighWater, RunOutcome};
use super::workers::{Clock, Cmd, Crew, Done, FromWorker, Worker, slot_name};
use super::{Bodies, JobResult, RunOptions};
use crate::probe::{Probe, ProbeOptions};
use crate::rt::{self, RtReport};
use crate::trace::{Trace, TraceSlice};
use crate::{Data, RuntimeError};

/// What the dispatcher waits for.
enum Event {
    /// A worker or lane reported.
    Worker(FromWorker),
    /// A timer is due: a release, one of the core's timeouts, the end.
    Due,
    /// Stop was requested from outside (Ctrl-C).
    Stop,
}

/// A sub-task handed to a worker and not yet reported back.
struct InFlight {
    job: JobId,
}

/// Which sub-task of which job, on which slot.
#[derive(Clone, Copy)]
struct SubTask {
    job: JobId,
    task: usize,
    seq: u64,
    stage: usize,
    slot: Slot,
    variant: usize,
}

/// What a run records as it goes.
struct Record {
    recorder: Recorder,
    trace: Option<Trace>,
    dispatch_latency: Samples,
    release_lateness: Samples,
    handoffs: Handoffs,
    stage_times: Vec<Vec<Samples>>,
    failures: Failures,
    quarantined: Vec<(usize, Time)>,
    replaced: Vec<(Slot, Time)>,
    worker_errors: Vec<String>,
    max_queued: QueueHighWater,
    /// Per task whose frames carry their ground truth, how each job ended.
    answers: Vec<Option<Answers>>,
}

pub(super) struct Dispatcher<'a> {
    sched: Scheduler,
    crew: Crew,
    reports: Receiver<FromWorker>,
    cpu: Vec<Worker>,
    gpu: Vec<Worker>,
    clock: Clock,
    releases: Releases,
    /// The output of each job's last sub-task, for its next one.
    data: HashMap<JobId, Data>,
    running: HashMap<Slot, InFlight>,
    rec: Record,
    rt_log: RtReport,
    prepared: Prepared,
    opts: &'a RunOptions,
    hard_stop: Time,
    stopped_at: Option<Time>,
    /// The interference probe, from just before time zero to the end.
    probe: Option<Probe>,
}

impl<'a> Dispatcher<'a> {
    /// Spawn every worker and lane, wait until all have built their bodies,
    /// then set the clock's epoch.
    pub fn start(
        ts: &'a TaskSet,
        sched: Scheduler,
        bodies: Arc<dyn Bodies>,
        opts: &'a RunOptions,
    ) -> Result<Self, RuntimeError> {
        let mut rt_log = if opts.realtime {
            rt::lock_memory()
        } else {
            RtReport::disabled()
        };
        let (tx, reports) = unbounded();
        let crew = Crew {
            bodies,
            epoch: Arc::new(OnceLock::new()),
            reports: tx,
            realtime: opts.realtime,
            cpu_slots: sched.cpu_slots(),
            threads: sched.cpu_slots() + sched.gpu_lanes(),
        };
        let slots: Vec<Slot> = (0..sched.cpu_slots())
            .map(Slot::Cpu)
            .chain((0..sched.gpu_lanes()).map(Slot::Gpu))
            .collect();
        let rss_before = rt::memory().map_or(0, |m| m.0);
        let mut workers = Vec::new();
        let mut bodies = 0;
        for &slot in &slots {
            let stages = bodies_of(&sched, slot);
            bodies += stages.len();
            workers.push(crew.spawn(slot, stages)?);
        }
        let first_error = wait_ready(&reports, slots.len(), opts.realtime, &mut rt_log);
        let prepared = Prepared {
            bodies,
            variants: (0..ts.tasks.len())
                .map(|t| sched.variants_of(t).len())
                .sum(),
            bytes: rt::memory().map_or(0, |m| m.0.saturating_sub(rss_before)),
        };
        let gpu = workers.split_off(sched.cpu_slots());
        let cpu = workers;
        if let Some(e) = first_error {
            for w in cpu.iter().chain(gpu.iter()) {
                let _ = w.tx.try_send(Cmd::Stop);
            }
            return Err(e);
        }
        if opts.realtime {
            let status = rt::configure_thread(Some(rt::DISPATCHER_PRIO), None);
            rt_log.thread("rtmdl-dispatcher", status);
        }
        // Start shortly after now, so that the first releases are on time:
        // wait for the epoch (before it the clock reads 0, and jobs released
        // then would gain slack).
        let clock = Clock(Instant::now() + Duration::from_millis(20));
        let probe = opts.probe.map(|p| {
            let mut probe = Probe::start(
                ProbeOptions {
                    realtime: p.realtime && opts.realtime,
                    ..p
                },
                clock.0,
            );
            probe.watch_threads();
            probe
        });
        let _ = crew.epoch.set(clock);
        if let Some(s) = &opts.started {
            let _ = s.set(clock.0);
        }
        std::thread::sleep(clock.0.saturating_duration_since(Instant::now()));
        let n = ts.tasks.len();
        let answers = (0..n)
            .map(|t| crew.bodies.judged(t).then(Answers::default))
            .collect();
        Ok(Dispatcher {
            crew,
            reports,
            cpu,
            gpu,
            clock,
            releases: Releases::new(ts, opts.duration),
            data: HashMap::new(),
            running: HashMap::new(),
            rec: Record {
                // Fixed-size histograms, allocated here: memory does not
                // grow with the length of the run.
                recorder: match opts.timeline.or(ts.adapt.map(|a| a.bin)) {
                    Some(bin) => Recorder::new(ts)
                        .with_timeline(bin, (0..n).map(|t| sched.variant(t)).collect()),
                    None => Recorder::new(ts),
                },
                trace: opts.trace.then(Trace::default),
                dispatch_latency: Samples::new(),
                release_lateness: Samples::new(),
                handoffs: Handoffs::default(),
                stage_times: (0..n)
                    .map(|t| (0..sched.stages_of(t)).map(|_| Samples::new()).collect())
                    .collect(),
                failures: Failures::default(),
                quarantined: Vec::new(),
                replaced: Vec::new(),
                worker_errors: Vec::new(),
                max_queued: QueueHighWater::default(),
                answers,
            },
            sched,
            rt_log,
            prepared,
            opts,
            hard_stop: opts.duration.saturating_add(opts.grace),
            stopped_at: None,
            probe,
        })
    }

    /// The event loop, until every job has ended (or the hard stop).
    pub fn run(mut self) -> Result<RunOutcome, RuntimeError> {
        loop {
            let now = self.clock.now();
            while let Some((task, t)) = self.releases.pop_due(now) {
                self.rec.release_lateness.record(now - t);
                self.sched.release(task, t);
            }
            self.sched.advance(now);
            self.forward(now);
            if self.releases.is_done() && self.sched.is_idle() {
                break;
            }
            if now >= self.hard_stop {
                self.sched.abandon_all(now);
                self.forward(now);
                break;
            }
            match self.next_event(now)? {
                Event::Worker(msg) => {
                    self.handle(msg);
                    while let Ok(msg) = self.reports.try_recv() {
                        self.handle(msg);
                    }
                }
                Event::Due => {}
                Event::Stop => {
                    self.stopped_at = Some(now);
                    self.releases.stop_at(now);
                    self.hard_stop = self.hard_stop.min(now.saturating_add(self.opts.stop_grace));
                }
            }
        }
        Ok(self.finish())
    }

    /// Wait for the next event, at the latest until the next release, the
    /// core's next timeout or the hard stop.
    fn next_event(&mut self, now: Time) -> Result<Event, RuntimeError> {
        let stop_requested = self
            .opts
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed));
        if stop_requested && self.stopped_at.is_none() {
            return Ok(Event::Stop);
        }
        let mut wake = self.hard_stop;
        for t in [self.releases.next_due(), self.sched.next_timeout()]
            .into_iter()
            .flatten()
        {
            wake = wake.min(t);
        }
        if self.opts.stop.is_some() {
            // Look at the stop flag at least every 50 ms.
            wake = wake.min(now + 50_000_000);
        }
        match self.reports.recv_deadline(self.clock.at(wake)) {
            Ok(msg) => Ok(Event::Worker(msg)),
            Err(RecvTimeoutError::Timeout) => Ok(Event::Due),
            Err(RecvTimeoutError::Disconnected) => {
                Err(RuntimeError::Thread("all workers stopped".into()))
            }
        }
    }

    /// Carry out everything the core has decided.
    fn forward(&mut self, now: Time) {
        while let Some(d) = self.sched.poll() {
            self.rec.recorder.observe(&d);
            match d {
                Decision::Start {
                    job,
                    task,
                    seq,
                    stage,
                    slot,
                    release,
                    variant,
                } => {
                    if stage == 0 {
                        self.rec
                            .dispatch_latency
                            .record(now.saturating_sub(release));
                    }
                    self.send(
                        SubTask {
                            job,
                            task,
                            seq,
                            stage,
                            slot,
                            variant,
                        },
                        now,
                    );
                }
                Decision::Abort {
                    job,
                    task,
                    seq,
                    stage,
                    slot,
                    ..
                } => self.abort(
                    SubTask {
                        job,
                        task,
                        seq,
                        stage,
                        slot,
                        variant: 0,
                    },
                    now,
                ),
                Decision::Miss { task, seq, at, .. } => {
                    if let Some(t) = self.rec.trace.as_mut() {
                        t.misses.push((task, seq, at));
                    }
                    if let Some(a) = self.rec.answers[task].as_mut() {
                        a.late(seq);
                    }
                }
                Decision::Fail {
                    task,
                    seq,
                    reason: FailReason::Quarantined,
                    ..
                } => self.rec.failures.push(Failure {
                    task,
                    seq,
                    stage: 0,
                    message: format!(
                        "quarantined after {} hung sub-tasks",
                        self.sched.faults().max_hangs
                    ),
                }),
                Decision::Quarantine { task, at } => self.rec.quarantined.push((task, at)),
                Decision::Complete { .. }
                | Decision::Fail { .. }
                | Decision::Drop { .. }
                | Decision::Switch { .. } => {}
            }
        }
        let q = &mut self.rec.max_queued;
        q.cpu = q.cpu.max(self.sched.queued(Resource::Cpu));
        q.gpu = q.gpu.max(self.sched.queued(Resource::Gpu));
    }

    /// Hand a sub-task to the worker of `slot`.
    fn send(&mut self, s: SubTask, now: Time) {
        let SubTask {
            job,
            task,
            seq,
            stage,
            slot,
            variant,
        } = s;
        let input = self.data.remove(&job);
        let cmd = Cmd::Run {
            job,
            task,
            seq,
            stage,
            input,
            sent: now,
            variant,
        };
        // A worker whose queue is full is stuck in a hung sub-task: fail the
        // job rather than block dispatch.
        if self.worker(slot).tx.try_send(cmd).is_ok() {
            self.running.insert(slot, InFlight { job });
        } else {
            self.rec.failures.push(Failure {
                task,
                seq,
                stage,
                message: format!("{slot:?} is not responding"),
            });
            self.sched.failed(job, now, FailReason::Unresponsive);
        }
    }

    /// The core found the sub-task on `slot` hung: the thread is left
    /// behind (it cannot be killed) and a new one takes the slot, building
    /// its own bodies. Work sent to the slot meanwhile waits in its queue.
    fn abort(&mut self, s: SubTask, now: Time) {
        let SubTask {
            job,
            task,
            seq,
            stage,
            slot,
            ..
        } = s;
        self.running.remove(&slot);
        self.data.remove(&job);
        let limit = self.sched.faults().watchdog.unwrap_or(0);
        self.rec.failures.push(Failure {
            task,
            seq,
            stage,
            message: format!("watchdog: still running after {:.1} ms", limit as f64 / 1e6),
        });
        match self.crew.spawn(slot, bodies_of(&self.sched, slot)) {
            Ok(fresh) => {
                let old = std::mem::replace(self.worker_mut(slot), fresh);
                drop(old.tx);
                self.rec.replaced.push((slot, now));
            }
            Err(e) => self
                .rec
                .worker_errors
                .push(format!("cannot replace hung {}: {e}", slot_name(slot))),
        }
    }

    fn handle(&mut self, msg: FromWorker) {
        match msg {
            FromWorker::Done(d) => self.on_done(d),
            // A replacement finished building (the first workers were
            // waited for in `start`).
            FromWorker::Ready { status: Ok(_), .. } => {}
            FromWorker::Ready {
                slot,
                status: Err(e),
            } => self.rec.worker_errors.push(format!(
                "replacement for {} failed to build: {e}",
                slot_name(slot)
            )),
        }
    }

    /// A worker reported a sub-task: tell the core.
    fn on_done(&mut self, d: Done) {
        let handled = self.clock.now();
        if self.running.get(&d.slot).map(|r| r.job) == Some(d.job) {
            self.running.remove(&d.slot);
        }
        let side = Handoffs::side(d.slot.resource());
        let h = &mut self.rec.handoffs;
        h.dispatch[side].record(d.start.saturating_sub(d.sent));
        h.back[side].record(handled.saturating_sub(d.end));
        self.rec.stage_times[d.task][d.stage].record(d.end.saturating_sub(d.start));
        if let Some(t) = self.rec.trace.as_mut() {
            t.slices.push(TraceSlice {
                slot: d.slot,
                task: d.task,
                seq: d.seq,
                stage: d.stage,
                start: d.start,
                end: d.end,
                failed: d.out.is_err(),
                variant: d.variant,
            });
        }
        match d.out {
            Ok(out) => {
                // Keep the output for the job's next sub-task; the last
                // one's output has no reader (kept, it leaked every job).
                // The core is told at the dispatcher's time: that is when
                // the result is known and the next stage can start (the
                // simulator adds the same hand-off, measured).
                let more = d.stage + 1 < self.sched.stages_of(d.task);
                if !more {
                    self.judge(d.task, d.seq, &out);
                    if let Some(sink) = &self.opts.results {
                        (sink.0)(&JobResult {
                            task: d.task,
                            seq: d.seq,
                            finished: handled,
                            variant: d.variant,
                            out: &out,
                        });
                    }
                }
                if self.sched.finished(d.job, handled) && more {
                    self.data.insert(d.job, out);
                }
            }
            Err((reason, message)) => {
                self.data.remove(&d.job);
                if self.sched.failed(d.job, handled, reason) {
                    self.rec.failures.push(Failure {
                        task: d.task,
                        seq: d.seq,
                        stage: d.stage,
                        message,
                    });
                }
            }
        }
    }

    /// Judge the answer of a job of a task whose frames carry their ground
    /// truth (a late job's miss, reported after this, overrides it).
    fn judge(&mut self, task: usize, seq: u64, out: &Data) {
        let Some(a) = self.rec.answers[task].as_mut() else {
            return;
        };
        if let Some(truth) = self.crew.bodies.truth(task, seq) {
            a.answered(seq, rtmdl_ops::answer(out) == Some(truth.class as i64));
        }
    }

    fn worker(&self, slot: Slot) -> &Worker {
        match slot {
            Slot::Cpu(s) => &self.cpu[s],
            Slot::Gpu(l) => &self.gpu[l],
        }
    }

    fn worker_mut(&mut self, slot: Slot) -> &mut Worker {
        match slot {
            Slot::Cpu(s) => &mut self.cpu[s],
            Slot::Gpu(l) => &mut self.gpu[l],
        }
    }

    /// Stop the workers and gather the outcome. A worker stuck in a hung
    /// sub-task is left behind rather than blocking the report.
    fn finish(mut self) -> RunOutcome {
        let utilisation = self.sched.utilisation();
        // Before the workers stop: their threads' statistics are read here.
        let interference = self.probe.take().map(Probe::finish);
        for w in self.cpu.iter().chain(self.gpu.iter()) {
            let _ = w.tx.try_send(Cmd::Stop);
        }
        let deadline = Instant::now() + Duration::from_millis(500);
        for w in self.cpu.iter_mut().chain(self.gpu.iter_mut()) {
            if let Some(h) = w.handle.take() {
                while !h.is_finished() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
                if h.is_finished() {
                    let _ = h.join();
                }
            }
        }
        if self.opts.realtime {
            rt::reset_thread();
        }
        let rec = self.rec;
        RunOutcome {
            counters: self.sched.counters().to_vec(),
            recorder: rec.recorder,
            utilisation,
            trace: rec.trace,
            realtime: self.rt_log,
            dispatch_latency: rec.dispatch_latency,
            release_lateness: rec.release_lateness,
            handoffs: rec.handoffs,
            stage_times: rec.stage_times,
            failures: rec.failures.first,
            failures_total: rec.failures.total,
            quarantined: rec.quarantined,
            stopped_at: self.stopped_at,
            cpu_slots: self.sched.cpu_slots(),
            gpu_lanes: self.sched.gpu_lanes(),
            max_queued: rec.max_queued,
            replaced: rec.replaced,
            worker_errors: rec.worker_errors,
            hung_at_end: self.running.len(),
            prepared: self.prepared,
            answers: rec.answers,
            interference,
        }
    }
}

/// The bodies a worker on `slot` holds: (task, stage, variant) for every
/// sub-task it may be given, in every variant the task may run.
fn bodies_of(sched: &Scheduler, slot: Slot) -> Vec<(usize, usize, usize)> {
    sched
        .stages_on(slot)
        .into_iter()
        .flat_map(|(t, s)| sched.variants_of(t).into_iter().map(move |v| (t, s, v)))
        .collect()
}

/// Wait until `n` workers said they are ready; the first build error, if
/// any. Only threads that asked for real-time priority are logged.
fn wait_ready(
    reports: &Receiver<FromWorker>,
    n: usize,
    realtime: bool,
    rt_log: &mut RtReport,
) -> Option<RuntimeError> {
    let mut first_error = None;
    for _ in 0..n {
        match reports.recv() {
            Ok(FromWorker::Ready {
                slot,
                status: Ok(status),
            }) => {
                if realtime {
                    rt_log.thread(&slot_name(slot), status);
                }
            }
            Ok(FromWorker::Ready { status: Err(e), .. }) => {
                first_error.get_or_insert(e);
            }
            Ok(FromWorker::Done(_)) => {}
            Err(_) => {
                first_error.get_or_insert(RuntimeError::Thread(
                    "a worker stopped while building its sub-tasks".into(),
                ));
                break;
            }
        }
    }
    first_error
}
