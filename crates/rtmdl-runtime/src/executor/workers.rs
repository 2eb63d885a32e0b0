//! CPU worker threads and GPU lanes: each owns the bodies of the sub-tasks
//! it may run, builds them on its own thread, says when it is ready, then
//! runs what the dispatcher sends and reports back.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flume::{Receiver, Sender, bounded};
use rtmdl_core::fault::FailReason;
use rtmdl_core::{JobId, Slot, Time};

use super::{Bodies, Work};
use crate::rt;
use crate::{Data, RuntimeError};

/// The clock all threads share: nanoseconds since the run's epoch.
#[derive(Clone, Copy)]
pub(super) struct Clock(pub Instant);

impl Clock {
    pub fn now(&self) -> Time {
        Instant::now().saturating_duration_since(self.0).as_nanos() as Time
    }
    pub fn at(&self, t: Time) -> Instant {
        self.0 + Duration::from_nanos(t)
    }
}

/// What the dispatcher sends a worker.
pub(super) enum Cmd {
    Run {
        job: JobId,
        task: usize,
        seq: u64,
        stage: usize,
        /// The job's data from its previous sub-task (none for the first).
        input: Option<Data>,
        /// When the core decided the start.
        sent: Time,
        /// The variant of the task's model the job runs.
        variant: usize,
    },
    Stop,
}

/// A sub-task a worker ran, with its own clock readings.
pub(super) struct Done {
    pub job: JobId,
    pub task: usize,
    pub seq: u64,
    pub stage: usize,
    pub slot: Slot,
    pub sent: Time,
    pub start: Time,
    pub end: Time,
    pub variant: usize,
    pub out: Result<Data, (FailReason, String)>,
}

/// What a worker tells the dispatcher.
pub(super) enum FromWorker {
    Done(Done),
    /// The worker built its bodies (its real-time settings granted or not),
    /// or could not.
    Ready {
        slot: Slot,
        status: Result<Result<(), String>, RuntimeError>,
    },
}

/// One worker thread, as the dispatcher holds it.
pub(super) struct Worker {
    pub tx: Sender<Cmd>,
    pub handle: Option<JoinHandle<()>>,
}

/// What every worker of a run shares.
pub(super) struct Crew {
    pub bodies: Arc<dyn Bodies>,
    pub epoch: Arc<OnceLock<Clock>>,
    pub reports: Sender<FromWorker>,
    pub realtime: bool,
    /// CPU worker threads, and worker threads and lanes in all.
    pub cpu_slots: usize,
    pub threads: usize,
}

impl Crew {
    /// Start a worker for `slot` that builds the bodies of `stages` (task,
    /// stage, variant) on its own thread and reports `Ready` when done (or
    /// why it could not).
    pub fn spawn(
        &self,
        slot: Slot,
        stages: Vec<(usize, usize, usize)>,
    ) -> Result<Worker, RuntimeError> {
        let (tx, rx) = bounded::<Cmd>(4);
        let reports = self.reports.clone();
        let bodies = self.bodies.clone();
        let epoch = self.epoch.clone();
        let rt_prio = self.realtime.then_some(rt::WORKER_PRIO);
        let pin = self.realtime.then(|| self.core_of(slot)).flatten();
        let handle = std::thread::Builder::new()
            .name(slot_name(slot))
            .spawn(move || {
                let mut works = HashMap::new();
                for (task, stage, variant) in stages {
                    // A body that panics while building fails the start
                    // like one that errors (the dispatcher waits for every
                    // worker's word).
                    let built = catch_unwind(AssertUnwindSafe(|| {
                        bodies.work_variant(task, stage, variant)
                    }))
                    .unwrap_or_else(|p| {
                        Err(RuntimeError::Thread(format!(
                            "{} panicked while building its sub-tasks: {}",
                            slot_name(slot),
                            panic_message(p.as_ref())
                        )))
                    });
                    match built {
                        Ok(w) => {
                            works.insert((task, stage, variant), w);
                        }
                        Err(e) => {
                            let _ = reports.send(FromWorker::Ready {
                                slot,
                                status: Err(e),
                            });
                            return;
                        }
                    }
                }
                let status = rt::configure_thread(rt_prio, pin);
                let _ = reports.send(FromWorker::Ready {
                    slot,
                    status: Ok(status),
                });
                worker_loop(slot, works, rx, reports, bodies, epoch)
            })
            .map_err(|e| RuntimeError::Thread(e.to_string()))?;
        Ok(Worker {
            tx,
            handle: Some(handle),
        })
    }
}

impl Crew {
    /// The core a real-time worker is pinned to: one each, CPU workers
    /// first, then lanes. Only when every thread gets a core of its own:
    /// two SCHED_FIFO threads of one priority pinned to one core do not
    /// share it (a lane's inference kept a CPU worker waiting for
    /// milliseconds with a free core next door), so otherwise none is
    /// pinned and the kernel's real-time balancing places them.
    fn core_of(&self, slot: Slot) -> Option<usize> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if self.threads > cores {
            return None;
        }
        Some(match slot {
            Slot::Cpu(i) => i,
            Slot::Gpu(l) => self.cpu_slots + l,
        })
    }
}

pub(super) fn slot_name(slot: Slot) -> String {
    match slot {
        Slot::Cpu(i) => format!("rtmdl-cpu{i}"),
        Slot::Gpu(i) => format!("rtmdl-gpu{i}"),
    }
}

fn worker_loop(
    slot: Slot,
    mut works: HashMap<(usize, usize, usize), Box<dyn Work>>,
    rx: Receiver<Cmd>,
    reports: Sender<FromWorker>,
    bodies: Arc<dyn Bodies>,
    epoch: Arc<OnceLock<Clock>>,
) {
    while let Ok(Cmd::Run {
        job,
        task,
        seq,
        stage,
        input,
        sent,
        variant,
    }) = rx.recv()
    {
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
            match works.get_mut(&(task, stage, variant)) {
                Some(w) => w.run(input),
                None => Err(format!(
                    "no body for task {task} stage {stage} variant {variant} on {slot:?}"
                )),
            }
        }));
        let out = match out {
            Ok(Ok(data)) => Ok(data),
            Ok(Err(e)) => Err((FailReason::Error, e)),
            Err(p) => Err((
                FailReason::Panic,
                format!("panicked: {}", panic_message(p.as_ref())),
            )),
        };
        let end = clock.now();
        let done = Done {
            job,
            task,
            seq,
            stage,
            slot,
            sent,
            start,
            end,
            variant,
            out,
        };
        if reports.send(FromWorker::Done(done)).is_err() {
            break;
        }
    }
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
pub(super) fn quiet_worker_panics() {
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

/// The text a panic was raised with (`panic!` payloads are a `String` or a
/// `&str`).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}
