//! The discrete-event simulator: a driver for the scheduler core on a
//! virtual clock. Seeded and deterministic: the same inputs and seed give
//! the same decisions, byte for byte.
//!
//! Execution times are drawn from each variant's profiles when a sub-task
//! starts. While n GPU lanes are busy, every running GPU sub-task progresses
//! at rate 1/`gpu_slowdown[n-1]`; when more CPU sub-tasks run than there are
//! cores (one thread per task), they share the cores equally. Injected
//! faults ([`crate::FaultSpec`] on a stage) fail or hang the calls they hit,
//! counted per worker as in a real run; the core's watchdog aborts hung
//! sub-tasks and the aborted worker starts afresh.

use std::collections::HashMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::fault::{FailReason, FaultMode};
use crate::model::{Assignment, ExecProfile, TaskSet, Time, VariantChoice};
use crate::policy::{Policy, PolicyKind};
use crate::releases::Releases;
use crate::report::{Recorder, RunInfo, RunReport};
use crate::sched::{Decision, JobId, SchedTask, Scheduler, Slot, TaskCounters};

/// How long and with which seed to simulate.
#[derive(Clone, Copy, Debug)]
pub struct SimOptions {
    /// Jobs are released in [0, duration); the run then drains.
    pub duration: Time,
    pub seed: u64,
}

/// What a simulation produced.
pub struct SimOutcome {
    pub counters: Vec<TaskCounters>,
    pub recorder: Recorder,
    pub utilisation: (f64, f64),
}

/// Watches a simulation as it goes (tests, traces). Every method has a
/// do-nothing default.
pub trait Observer {
    /// The core decided `d` at `now`.
    fn decision(&mut self, _now: Time, _d: &Decision) {}
    /// The sub-task of `job` running on `slot` finished at `now`.
    fn finished(&mut self, _now: Time, _job: JobId, _slot: Slot) {}
    /// Everything that happens at `now` has been handled.
    fn settled(&mut self, _now: Time, _sched: &Scheduler) {}
}

impl Observer for () {}

/// An observer that keeps every decision with its time.
#[derive(Default)]
pub struct Log(pub Vec<(Time, Decision)>);

impl Observer for Log {
    fn decision(&mut self, now: Time, d: &Decision) {
        self.0.push((now, *d));
    }
}

#[derive(Clone, Copy)]
struct Running {
    job: JobId,
    /// Work left, in nanoseconds at full speed.
    remaining: f64,
    /// An injected hang: no progress before this time.
    asleep_until: Time,
    /// An injected error or panic: the sub-task fails when its work is done.
    fails: Option<FailReason>,
}

impl Running {
    /// When the work ends at `rate`, from `now`.
    fn finish_at(&self, now: Time, rate: f64) -> Time {
        now.max(self.asleep_until) + (self.remaining / rate).ceil().max(0.0) as Time
    }

    /// Progress from `from` to `to` at `rate`.
    fn progress(&mut self, from: Time, to: Time, rate: f64) {
        let awake = to.saturating_sub(from.max(self.asleep_until));
        self.remaining -= awake as f64 * rate;
    }
}

/// The simulated workers and lanes: what runs where, and how fast.
struct Machine<'a> {
    profiles: Vec<&'a [ExecProfile]>,
    faults: Vec<Vec<Option<crate::fault::FaultSpec>>>,
    /// Calls and faults so far per (slot, task, stage): each worker counts
    /// its own, and a replaced worker starts from zero.
    calls: HashMap<(Slot, usize, usize), (u64, u64)>,
    cpu: Vec<Option<Running>>,
    gpu: Vec<Option<Running>>,
    ncpu: usize,
    ngpu: usize,
    cores: usize,
    rng: ChaCha8Rng,
}

impl Machine<'_> {
    fn rates(&self, ts: &TaskSet) -> (f64, f64) {
        let cpu = if self.ncpu > self.cores {
            self.cores as f64 / self.ncpu as f64
        } else {
            1.0
        };
        (cpu, 1.0 / ts.platform.slowdown(self.ngpu))
    }

    /// The earliest time a running sub-task ends.
    fn next_finish(&self, now: Time, rates: (f64, f64)) -> Option<Time> {
        let cpu = self.cpu.iter().flatten().map(|r| r.finish_at(now, rates.0));
        let gpu = self.gpu.iter().flatten().map(|r| r.finish_at(now, rates.1));
        cpu.chain(gpu).min()
    }

    /// Advance the running work from `from` to `to`; report each sub-task
    /// done by then to the core (CPU slots first, then lanes, in order).
    fn progress(
        &mut self,
        from: Time,
        to: Time,
        rates: (f64, f64),
        sched: &mut Scheduler,
        observer: &mut dyn Observer,
    ) {
        type SlotOf = fn(usize) -> Slot;
        let sides: [(_, _, _, SlotOf); 2] = [
            (&mut self.cpu, rates.0, &mut self.ncpu, Slot::Cpu),
            (&mut self.gpu, rates.1, &mut self.ngpu, Slot::Gpu),
        ];
        for (slots, rate, busy, slot_of) in sides {
            for (i, slot) in slots.iter_mut().enumerate() {
                let Some(r) = slot else { continue };
                r.progress(from, to, rate);
                if r.remaining <= 1e-3 && to >= r.asleep_until {
                    let r = *r;
                    *slot = None;
                    *busy -= 1;
                    observer.finished(to, r.job, slot_of(i));
                    match r.fails {
                        None => sched.finished(r.job, to),
                        Some(reason) => sched.failed(r.job, to, reason),
                    };
                }
            }
        }
    }

    /// Carry out a decision of the core at `now`.
    fn apply(&mut self, now: Time, d: &Decision) {
        match *d {
            Decision::Start {
                job,
                task,
                stage,
                slot,
                ..
            } => {
                let work = self.profiles[task][stage].sample(&mut self.rng) as f64;
                let mut run = Running {
                    job,
                    remaining: work,
                    asleep_until: 0,
                    fails: None,
                };
                if let Some(f) = self.faults[task][stage] {
                    let (calls, faulted) = self.calls.entry((slot, task, stage)).or_default();
                    if f.hits(*calls, *faulted) {
                        *faulted += 1;
                        match f.mode {
                            FaultMode::Error => {
                                (run.fails, run.remaining) = (Some(FailReason::Error), 0.0)
                            }
                            FaultMode::Panic => {
                                (run.fails, run.remaining) = (Some(FailReason::Panic), 0.0)
                            }
                            FaultMode::Hang => run.asleep_until = now.saturating_add(f.hang),
                        }
                    }
                    *calls += 1;
                }
                match slot {
                    Slot::Cpu(s) => {
                        self.cpu[s] = Some(run);
                        self.ncpu += 1;
                    }
                    Slot::Gpu(l) => {
                        self.gpu[l] = Some(run);
                        self.ngpu += 1;
                    }
                }
            }
            // The hung sub-task is gone; its worker starts afresh.
            Decision::Abort { slot, .. } => {
                let (side, busy) = match slot {
                    Slot::Cpu(s) => (&mut self.cpu[s], &mut self.ncpu),
                    Slot::Gpu(l) => (&mut self.gpu[l], &mut self.ngpu),
                };
                if side.take().is_some() {
                    *busy -= 1;
                }
                self.calls.retain(|(s, _, _), _| *s != slot);
            }
            _ => {}
        }
    }
}

/// Simulate `ts` with the given variants and priorities under `policy`.
pub fn simulate_with(
    ts: &TaskSet,
    assign: &[Assignment],
    policy: Box<dyn Policy>,
    opts: SimOptions,
    observer: &mut dyn Observer,
) -> SimOutcome {
    let mut sched = Scheduler::new(SchedTask::from_taskset(ts), &ts.platform, policy);
    let mut machine = Machine {
        profiles: (0..ts.tasks.len())
            .map(|i| ts.model_of(i).variants[assign[i].variant].times.as_slice())
            .collect(),
        faults: (0..ts.tasks.len())
            .map(|i| ts.model_of(i).stages.iter().map(|s| s.fault).collect())
            .collect(),
        calls: HashMap::new(),
        cpu: vec![None; sched.cpu_slots()],
        gpu: vec![None; sched.gpu_lanes()],
        ncpu: 0,
        ngpu: 0,
        cores: ts.platform.cpu_workers.max(1),
        rng: ChaCha8Rng::seed_from_u64(opts.seed),
    };
    let mut recorder = Recorder::new(ts.tasks.len());
    let mut releases = Releases::new(ts, opts.duration);
    let mut now: Time = 0;
    loop {
        let rates = machine.rates(ts);
        let next = [
            releases.next_due(),
            machine.next_finish(now, rates),
            sched.next_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else { break };
        // Progress, then completions (which free resources before anything
        // released at the same instant is dispatched).
        machine.progress(now, next, rates, &mut sched, observer);
        now = next;
        while let Some((task, t)) = releases.pop_due(now) {
            sched.release(task, t);
        }
        sched.advance(now);
        while let Some(d) = sched.poll() {
            machine.apply(now, &d);
            recorder.observe(&d);
            observer.decision(now, &d);
        }
        observer.settled(now, &sched);
    }
    SimOutcome {
        counters: sched.counters().to_vec(),
        recorder,
        utilisation: sched.utilisation(),
    }
}

/// Simulate and build the report, with variants resolved by `choice` and
/// the policy built by name.
pub fn simulate(
    ts: &TaskSet,
    policy: PolicyKind,
    choice: VariantChoice,
    opts: SimOptions,
) -> RunReport {
    let assign = ts.assignments(choice);
    let out = simulate_with(ts, &assign, policy.build(ts, &assign), opts, &mut ());
    RunReport::build(
        ts,
        &assign,
        &out.counters,
        &out.recorder,
        RunInfo {
            policy: policy.name(),
            variants: &choice.to_string(),
            mode: "simulate",
            duration: opts.duration,
            seed: Some(opts.seed),
            utilisation: out.utilisation,
        },
    )
}
