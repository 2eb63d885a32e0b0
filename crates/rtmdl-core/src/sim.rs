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
    /// Every decision in order, when asked for (tests, traces).
    pub log: Option<Vec<(Time, Decision)>>,
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
    keep_log: bool,
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
    let mut log = keep_log.then(Vec::new);
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
        for (slots, rate, busy) in [
            (&mut cpu, rate_cpu, &mut ncpu),
            (&mut gpu, rate_gpu, &mut ngpu),
        ] {
            for slot in slots.iter_mut() {
                if let Some(r) = slot {
                    r.remaining -= dt * rate;
                    if r.remaining <= 1e-3 {
                        let job = r.job;
                        *slot = None;
                        *busy -= 1;
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
            if let Some(log) = log.as_mut() {
                log.push((now, d));
            }
        }
    }
    SimOutcome {
        counters: sched.counters().to_vec(),
        recorder,
        utilisation: sched.utilisation(),
        log,
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
    let mut out = simulate_with(ts, &assign, policy.build(ts, &assign), opts, false);
    RunReport::build(
        ts,
        &assign,
        &out.counters,
        &mut out.recorder,
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
