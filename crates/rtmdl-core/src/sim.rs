//! The discrete-event simulator: a driver for the scheduler core on a
//! virtual clock. Seeded and deterministic: the same inputs and seed give
//! the same decisions, byte for byte.
//!
//! Execution times are drawn from each variant's profiles when a sub-task
//! starts. While n GPU lanes are busy, every running GPU sub-task progresses
//! at rate 1/`gpu_slowdown[n-1]`; when more CPU sub-tasks compute than there
//! are cores, they share the cores equally, and on a machine whose lanes run
//! a CPU engine (`Platform::lanes_on_cpu`) workers and lanes share them
//! together, slowed further by the measured `Platform::contention`. The
//! runtime's measured hand-offs (`Platform::overheads`) delay releases,
//! starts and the reports back, with the slot taken meanwhile. Injected
//! faults ([`crate::FaultSpec`] on a stage) fail or hang the calls they hit,
//! counted per worker as in a real run; the core's watchdog aborts hung
//! sub-tasks and the aborted worker starts afresh.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::fault::{FailReason, FaultMode};
use crate::model::{Assignment, ExecProfile, TaskSet, Time, VariantChoice};
use crate::policy::{Policy, PolicyKind};
use crate::releases::Releases;
use crate::report::{Recorder, RunInfo, RunReport};
use crate::sched::{Decision, JobId, SchedTask, Scheduler, Slot, TaskCounters};

/// How long and with which seed to simulate.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimOptions {
    /// Jobs are released in [0, duration); the run then drains.
    pub duration: Time,
    pub seed: u64,
    /// Record a timeline in bins of this length (on whenever the set
    /// switches variants online: its `adapt` bin then, if none is given).
    pub timeline: Option<Time>,
    /// After the last release, drain for this long, then abandon every job
    /// still pending (counted missed, no response time), as a real run
    /// does after its `grace`; `None`: drain until every job has ended. An
    /// overloaded `continue` task's backlog is then judged alike in both.
    pub grace: Option<Time>,
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
    /// No progress before this time: the hand-off to the worker, an
    /// injected hang; once `worked`, the report back to the core.
    asleep_until: Time,
    /// The hand-off back to the core once the work is done.
    tail: Time,
    /// The work is done; the core is told at `asleep_until`.
    worked: bool,
    /// An injected error or panic: the sub-task fails when its work is done.
    fails: Option<FailReason>,
}

impl Running {
    /// Whether it computes at `now` (and so shares the machine).
    fn working(&self, now: Time) -> bool {
        !self.worked && now >= self.asleep_until
    }

    /// When something next happens to it at `rate`, from `now`: it wakes,
    /// its work ends, or the core is told.
    fn next_event(&self, now: Time, rate: f64) -> Time {
        if self.worked || now < self.asleep_until {
            self.asleep_until
        } else {
            now + (self.remaining / rate).ceil().max(0.0) as Time
        }
    }

    /// Progress from `from` to `to` at `rate`.
    fn progress(&mut self, from: Time, to: Time, rate: f64) {
        if !self.worked {
            let awake = to.saturating_sub(from.max(self.asleep_until));
            self.remaining -= awake as f64 * rate;
        }
    }

    /// At `now`, after progress: whether the core is to be told now (the
    /// work is done, and the hand-off back if any).
    fn report_due(&mut self, now: Time) -> bool {
        if self.worked {
            return now >= self.asleep_until;
        }
        if self.remaining > 1e-3 || now < self.asleep_until {
            return false;
        }
        if self.tail == 0 {
            return true;
        }
        self.worked = true;
        self.asleep_until = now + self.tail;
        false
    }
}

/// The simulated workers and lanes: what runs where, and how fast.
struct Machine<'a> {
    platform: &'a crate::model::Platform,
    /// Per task, per variant of its model: each stage's profile.
    profiles: Vec<Vec<&'a [ExecProfile]>>,
    faults: Vec<Vec<Option<crate::fault::FaultSpec>>>,
    /// Calls and faults so far per (slot, task, stage): each worker counts
    /// its own, and a replaced worker starts from zero.
    calls: HashMap<(Slot, usize, usize), (u64, u64)>,
    cpu: Vec<Option<Running>>,
    gpu: Vec<Option<Running>>,
    rng: ChaCha8Rng,
}

impl Machine<'_> {
    /// The rates of CPU and GPU work at `now`, from what computes at once.
    fn rates(&self, now: Time) -> (f64, f64) {
        let count = |v: &[Option<Running>]| v.iter().flatten().filter(|r| r.working(now)).count();
        let (ncpu, ngpu) = (count(&self.cpu), count(&self.gpu));
        let p = self.platform;
        let share = |n: usize, cores: usize| {
            if n > cores {
                cores as f64 / n as f64
            } else {
                1.0
            }
        };
        if p.lanes_on_cpu {
            let n = ncpu + ngpu;
            let r = share(n, p.cores.unwrap_or(usize::MAX)) / p.contention(n);
            return (r, r);
        }
        let cores = p.cores.unwrap_or(p.cpu_workers.max(1));
        (
            share(ncpu, cores) / p.contention(ncpu),
            1.0 / p.slowdown(ngpu),
        )
    }

    /// The earliest time something happens to a running sub-task.
    fn next_event(&self, now: Time, rates: (f64, f64)) -> Option<Time> {
        let cpu = self
            .cpu
            .iter()
            .flatten()
            .map(|r| r.next_event(now, rates.0));
        let gpu = self
            .gpu
            .iter()
            .flatten()
            .map(|r| r.next_event(now, rates.1));
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
        let sides: [(_, _, SlotOf); 2] = [
            (&mut self.cpu, rates.0, Slot::Cpu),
            (&mut self.gpu, rates.1, Slot::Gpu),
        ];
        for (slots, rate, slot_of) in sides {
            for (i, slot) in slots.iter_mut().enumerate() {
                let Some(r) = slot else { continue };
                r.progress(from, to, rate);
                if r.report_due(to) {
                    let r = *r;
                    *slot = None;
                    observer.finished(to, r.job, slot_of(i));
                    match r.fails {
                        None => sched.finished(r.job, to),
                        Some(reason) => sched.failed(r.job, to, reason),
                    };
                }
            }
        }
    }

    /// A delay drawn from an overhead profile (0 without one).
    fn delay(&mut self, p: &Option<ExecProfile>) -> Time {
        p.as_ref().map_or(0, |p| p.sample(&mut self.rng))
    }

    /// Carry out a decision of the core at `now`.
    fn apply(&mut self, now: Time, d: &Decision) {
        match *d {
            Decision::Start {
                job,
                task,
                stage,
                slot,
                variant,
                ..
            } => {
                let side = matches!(slot, Slot::Gpu(_)) as usize;
                let overheads = &self.platform.overheads;
                let work = self.profiles[task][variant][stage].sample(&mut self.rng) as f64;
                let (dispatch, back) = (
                    overheads.dispatch[side].clone(),
                    overheads.back[side].clone(),
                );
                let mut run = Running {
                    job,
                    remaining: work,
                    asleep_until: now + self.delay(&dispatch),
                    tail: self.delay(&back),
                    worked: false,
                    fails: None,
                };
                self.inject(&mut run, slot, task, stage);
                match slot {
                    Slot::Cpu(s) => self.cpu[s] = Some(run),
                    Slot::Gpu(l) => self.gpu[l] = Some(run),
                }
            }
            // The hung sub-task is gone; its worker starts afresh.
            Decision::Abort { slot, .. } => {
                match slot {
                    Slot::Cpu(s) => self.cpu[s] = None,
                    Slot::Gpu(l) => self.gpu[l] = None,
                }
                self.calls.retain(|(s, _, _), _| *s != slot);
            }
            _ => {}
        }
    }

    /// Apply the stage's injected fault to this call, if it hits.
    fn inject(&mut self, run: &mut Running, slot: Slot, task: usize, stage: usize) {
        let Some(f) = self.faults[task][stage] else {
            return;
        };
        let (calls, faulted) = self.calls.entry((slot, task, stage)).or_default();
        if f.hits(*calls, *faulted) {
            *faulted += 1;
            match f.mode {
                FaultMode::Error => (run.fails, run.remaining) = (Some(FailReason::Error), 0.0),
                FaultMode::Panic => (run.fails, run.remaining) = (Some(FailReason::Panic), 0.0),
                FaultMode::Hang => run.asleep_until = run.asleep_until.saturating_add(f.hang),
            }
        }
        *calls += 1;
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
    let mut sched = Scheduler::new(SchedTask::from_taskset(ts, assign), &ts.platform, policy)
        .with_adapt(ts.adapt);
    let mut machine = Machine {
        platform: &ts.platform,
        profiles: (0..ts.tasks.len())
            .map(|i| {
                let m = ts.model_of(i);
                m.variants.iter().map(|v| v.times.as_slice()).collect()
            })
            .collect(),
        faults: (0..ts.tasks.len())
            .map(|i| ts.model_of(i).stages.iter().map(|s| s.fault).collect())
            .collect(),
        calls: HashMap::new(),
        cpu: vec![None; sched.cpu_slots()],
        gpu: vec![None; sched.gpu_lanes()],
        rng: ChaCha8Rng::seed_from_u64(opts.seed),
    };
    let mut recorder = Recorder::new(ts);
    if let Some(bin) = opts.timeline.or(ts.adapt.map(|a| a.bin)) {
        recorder = recorder.with_timeline(bin, assign.iter().map(|a| a.variant).collect());
    }
    let mut releases = Releases::new(ts, opts.duration);
    // Releases the dispatcher has yet to issue: (when, nominal time, task).
    let mut late: BinaryHeap<Reverse<(Time, Time, usize)>> = BinaryHeap::new();
    let mut now: Time = 0;
    let hard_stop = opts.grace.map(|g| opts.duration.saturating_add(g));
    loop {
        let rates = machine.rates(now);
        let next = [
            releases.next_due(),
            late.peek().map(|Reverse((t, _, _))| *t),
            machine.next_event(now, rates),
            sched.next_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else { break };
        if let Some(stop) = hard_stop
            && next > stop
        {
            // The real run's end: whatever is still pending is abandoned.
            machine.progress(now, stop, rates, &mut sched, observer);
            sched.advance(stop);
            sched.abandon_all(stop);
            while let Some(d) = sched.poll() {
                recorder.observe(&d);
                observer.decision(stop, &d);
            }
            observer.settled(stop, &sched);
            break;
        }
        // Progress, then completions (which free resources before anything
        // released at the same instant is dispatched).
        machine.progress(now, next, rates, &mut sched, observer);
        now = next;
        // One wake-up of the dispatcher releases every job due at the same
        // nominal instant, so they share one lateness (drawn once): jobs
        // released together reach the core together and are ordered by it,
        // as in a real run.
        let mut shared: Option<(Time, Time)> = None;
        while let Some((task, t)) = releases.pop_due(now) {
            match &ts.platform.overheads.release {
                None => sched.release(task, t),
                Some(_) => {
                    let delay = match shared {
                        Some((at, d)) if at == t => d,
                        _ => {
                            let d = machine.delay(&ts.platform.overheads.release);
                            shared = Some((t, d));
                            d
                        }
                    };
                    late.push(Reverse((t + delay, t, task)));
                }
            }
        }
        while let Some(&Reverse((at, t, task))) = late.peek() {
            if at > now {
                break;
            }
            late.pop();
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
    simulate_observed(ts, policy, choice, opts, &mut ())
}

/// [`simulate`], and why every missed job missed ([`crate::why`]) in the
/// report.
pub fn simulate_why(
    ts: &TaskSet,
    policy: PolicyKind,
    choice: VariantChoice,
    opts: SimOptions,
) -> RunReport {
    let mut rec = crate::why::Recorder::default();
    let mut report = simulate_observed(ts, policy, choice, opts, &mut rec);
    rec.close(opts.duration);
    let assign = ts.assignments(choice);
    let built = policy.build(ts, &assign);
    let priorities: Vec<Option<u32>> = (0..ts.tasks.len()).map(|t| built.priority(t)).collect();
    let missed = rec.missed(ts);
    let no_stalls = |_: Time, _: Time| 0;
    let schedule = crate::why::Schedule {
        ts,
        priorities: &priorities,
        execs: &rec.execs,
        missed: &missed,
        stalled: &no_stalls,
    };
    let dropped: Vec<u64> = report.tasks.iter().map(|t| t.dropped).collect();
    let failed: Vec<u64> = report.tasks.iter().map(|t| t.failed).collect();
    report.why = Some(crate::why::explain(&schedule, &dropped, &failed));
    report
}

fn simulate_observed(
    ts: &TaskSet,
    policy: PolicyKind,
    choice: VariantChoice,
    opts: SimOptions,
    observer: &mut dyn Observer,
) -> RunReport {
    let assign = ts.assignments(choice);
    let built = policy.build(ts, &assign);
    let priorities = (0..ts.tasks.len()).map(|t| built.priority(t)).collect();
    let out = simulate_with(ts, &assign, built, opts, observer);
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
            priorities,
        },
    )
}
