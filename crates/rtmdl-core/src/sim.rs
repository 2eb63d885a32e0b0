//! The discrete-event simulator: a driver for the scheduler core on a
//! virtual clock. Seeded and deterministic: the same inputs and seed give
//! the same decisions, byte for byte.
//!
//! Execution times are drawn from each variant's profiles when a sub-task
//! starts. While n GPU lanes are busy, every running GPU sub-task progresses
//! at rate 1/`gpu_slowdown[n-1]`; when more CPU sub-tasks run than there are
//! cores (one thread per task), they share the cores equally.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::model::{Assignment, ExecProfile, TaskSet, Time, VariantChoice};
use crate::policy::{Policy, PolicyKind};
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
}

/// Simulate `ts` with the given variants and priorities under `policy`.
pub fn simulate_with(
    ts: &TaskSet,
    assign: &[Assignment],
    policy: Box<dyn Policy>,
    opts: SimOptions,
    observer: &mut dyn Observer,
) -> SimOutcome {
    let profiles: Vec<&[ExecProfile]> = ts
        .tasks
        .iter()
        .enumerate()
        .map(|(i, _)| ts.model_of(i).variants[assign[i].variant].times.as_slice())
        .collect();
    let mut sched = Scheduler::new(SchedTask::from_taskset(ts), &ts.platform, policy);
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut recorder = Recorder::new(ts.tasks.len());
    let cores = ts.platform.cpu_workers.max(1);
    let mut cpu: Vec<Option<Running>> = vec![None; sched.cpu_slots()];
    let mut gpu: Vec<Option<Running>> = vec![None; sched.gpu_lanes()];
    let (mut ncpu, mut ngpu) = (0usize, 0usize);
    let mut releases: BinaryHeap<Reverse<(Time, usize)>> = ts
        .tasks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.offset < opts.duration)
        .map(|(i, t)| Reverse((t.offset, i)))
        .collect();
    let mut now: Time = 0;
    loop {
        let rate_cpu = if ncpu > cores {
            cores as f64 / ncpu as f64
        } else {
            1.0
        };
        let rate_gpu = 1.0 / ts.platform.slowdown(ngpu);
        let mut next = Time::MAX;
        if let Some(&Reverse((t, _))) = releases.peek() {
            next = t;
        }
        let finish_at = |r: &Running, rate: f64| now + (r.remaining / rate).ceil().max(0.0) as Time;
        for r in cpu.iter().flatten() {
            next = next.min(finish_at(r, rate_cpu));
        }
        for r in gpu.iter().flatten() {
            next = next.min(finish_at(r, rate_gpu));
        }
        if let Some(t) = sched.next_timeout() {
            next = next.min(t);
        }
        if next == Time::MAX {
            break;
        }
        let dt = (next - now) as f64;
        now = next;
        // Progress, then completions (which free resources before anything
        // released at the same instant is dispatched).
        type SlotOf = fn(usize) -> Slot;
        let sides: [(_, _, _, SlotOf); 2] = [
            (&mut cpu, rate_cpu, &mut ncpu, Slot::Cpu),
            (&mut gpu, rate_gpu, &mut ngpu, Slot::Gpu),
        ];
        for (slots, rate, busy, slot_of) in sides {
            for (i, slot) in slots.iter_mut().enumerate() {
                if let Some(r) = slot {
                    r.remaining -= dt * rate;
                    if r.remaining <= 1e-3 {
                        let job = r.job;
                        *slot = None;
                        *busy -= 1;
                        observer.finished(now, job, slot_of(i));
                        sched.finished(job, now);
                    }
                }
            }
        }
        while let Some(&Reverse((t, task))) = releases.peek() {
            if t != now {
                break;
            }
            releases.pop();
            sched.release(task, now);
            let next_release = now.saturating_add(ts.tasks[task].period.max(1));
            if next_release < opts.duration {
                releases.push(Reverse((next_release, task)));
            }
        }
        sched.advance(now);
        while let Some(d) = sched.poll() {
            if let Decision::Start {
                job,
                task,
                stage,
                slot,
                ..
            } = d
            {
                let work = profiles[task][stage].sample(&mut rng) as f64;
                let run = Some(Running {
                    job,
                    remaining: work,
                });
                match slot {
                    Slot::Cpu(s) => {
                        cpu[s] = run;
                        ncpu += 1;
                    }
                    Slot::Gpu(l) => {
                        gpu[l] = run;
                        ngpu += 1;
                    }
                }
            }
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
