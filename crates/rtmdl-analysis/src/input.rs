//! The analysis's view of a task set: per task a chain of segments, each
//! with a bound on how long it holds its worker or lane and on how soon the
//! next segment can arrive; per resource its slots; and the features the
//! analysis refuses.

use rtmdl_core::fault::FaultMode;
use rtmdl_core::{Assignment, ExecProfile, Overrun, Platform, PolicyKind, Resource, TaskSet, Time};

use crate::{Options, Refusal};

/// Times above this (about 78 hours) are refused: the arithmetic stays far
/// from overflow.
pub(crate) const TIME_LIMIT: Time = 1 << 48;

/// Index of a resource in per-resource arrays: CPU 0, GPU 1.
pub(crate) fn side(r: Resource) -> usize {
    match r {
        Resource::Cpu => 0,
        Resource::Gpu => 1,
    }
}

/// One sub-task of a task's chain.
#[derive(Clone, Debug)]
pub(crate) struct Seg {
    pub name: String,
    pub res: Resource,
    /// C: the profile's max × the margin.
    pub wcet: Time,
    /// Bound on the work once begun, at the slowest rate: ⌈C·f⌉.
    pub exec: Time,
    /// Bound on how long the sub-task holds its worker or lane: dispatch
    /// delay + `exec` + back delay, plus 1 ns for the simulator's rounding.
    pub occ: Time,
    /// Lower bound on the time from its arrival in the queue to the next
    /// stage's arrival (dispatch + work at the fastest rate + back).
    pub bcet: Time,
}

/// One task as the analysis sees it.
#[derive(Clone, Debug)]
pub(crate) struct TaskModel {
    pub name: String,
    pub period: Time,
    pub deadline: Time,
    /// Queue key: lower is more urgent.
    pub prio: u32,
    pub overrun: Overrun,
    /// Release lateness bounds (nominal release → the job is released).
    pub release_min: Time,
    pub release_max: Time,
    pub segs: Vec<Seg>,
}

impl TaskModel {
    /// Whether one of its segments runs on `side`.
    pub fn uses(&self, side_: usize) -> bool {
        self.segs.iter().any(|s| side(s.res) == side_)
    }
}

/// The machine as the analysis sees it.
#[derive(Clone, Debug)]
pub(crate) struct Machine {
    /// CPU workers and GPU lanes.
    pub slots: [usize; 2],
    /// Packing admission can hold a free lane idle (two or more lanes and a
    /// slowdown that grows with the busy lanes somewhere).
    pub holds: bool,
    /// S: the largest packing slowdown the core's admission rule uses.
    pub pack_max: f64,
    /// Per resource (`[cpu, gpu]`), the factor every WCET is stretched by:
    /// the worst CPU contention or GPU-lane slowdown the platform admits.
    pub stretch: [f64; 2],
}

/// Smallest and largest value a profile admits.
pub(crate) fn span(p: &ExecProfile) -> (Time, Time) {
    match p {
        ExecProfile::Fixed(t) => (*t, *t),
        ExecProfile::Samples(s) => (
            s.iter().copied().min().unwrap_or(0),
            s.iter().copied().max().unwrap_or(0),
        ),
        ExecProfile::Quantiles { min, max, .. } => (*min.min(max), *max),
    }
}

fn span_opt(p: &Option<ExecProfile>) -> (Time, Time) {
    p.as_ref().map_or((0, 0), span)
}

/// The refusals that do not depend on the plan: the policy, the margin, the
/// machine's factors, deadlines beyond the period under `continue`, injected
/// hangs.
pub(crate) fn check(ts: &TaskSet, opts: &Options) -> Result<(), Refusal> {
    match opts.policy {
        PolicyKind::Rtmdl | PolicyKind::DmSplit | PolicyKind::UmSplit => {}
        PolicyKind::Dm | PolicyKind::Um => {
            return Err(Refusal::Policy {
                policy: opts.policy.name(),
                why: "black-box dispatch (a job holds its CPU worker through its GPU part)",
            });
        }
        PolicyKind::DmSplitSerial => {
            return Err(Refusal::Policy {
                policy: "dm-split-serial",
                why: "split queues limited to one GPU sub-task at a time (an ablation step)",
            });
        }
        PolicyKind::Fifo => {
            return Err(Refusal::Policy {
                policy: "fifo",
                why: "one thread per task sharing the cores, first come first served",
            });
        }
        PolicyKind::Edf => {
            return Err(Refusal::Policy {
                policy: "edf",
                why: "earliest-deadline-first queues",
            });
        }
    }
    if !(opts.margin.is_finite() && opts.margin >= 1.0) {
        return Err(Refusal::Margin(opts.margin));
    }
    factors(&ts.platform)?;
    for (t, task) in ts.tasks.iter().enumerate() {
        if task.period == 0 || task.deadline == 0 {
            return Err(Refusal::ZeroTime {
                task: task.name.clone(),
            });
        }
        if task.overrun == Overrun::Continue && task.deadline > task.period {
            return Err(Refusal::ContinueBeyondPeriod {
                task: task.name.clone(),
                deadline: task.deadline,
                period: task.period,
            });
        }
        let model = ts.model_of(t);
        for stage in &model.stages {
            if stage.fault.is_some_and(|f| f.mode == FaultMode::Hang) {
                return Err(Refusal::InjectedHang {
                    task: task.name.clone(),
                    stage: stage.name.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Per resource, the largest and the smallest time factor of running work
/// (1 / its rate): `[cpu, gpu]` each.
fn factors(p: &Platform) -> Result<([f64; 2], [f64; 2]), Refusal> {
    let (m, k) = (p.cpu_workers.max(1), p.gpu_lanes.max(1));
    let bad = |what: &'static str, value: f64| Refusal::Factor { what, value };
    for n in 1..=k {
        let s = p.slowdown(n);
        if !(s.is_finite() && s > 0.0) {
            return Err(bad("gpu_slowdown", s));
        }
    }
    if let Some(&c) = p.contention.iter().find(|c| !c.is_finite()) {
        return Err(bad("contention", c));
    }
    let cores = match p.cores {
        Some(0) => return Err(bad("cores", 0.0)),
        Some(c) => c,
        None if p.lanes_on_cpu => usize::MAX,
        None => m,
    };
    let share = |n: usize| {
        if n > cores {
            n as f64 / cores as f64
        } else {
            1.0
        }
    };
    // Every computing thread counts: the workers, and the lanes too when
    // they run a CPU engine.
    let threads = if p.lanes_on_cpu { m + k } else { m };
    let cpu = (1..=threads)
        .map(|n| share(n) * p.contention(n))
        .fold(1.0, f64::max);
    if p.lanes_on_cpu {
        return Ok(([cpu, cpu], [1.0, 1.0]));
    }
    let slow = (1..=k).map(|n| p.slowdown(n));
    let gpu_max = slow.clone().fold(f64::MIN, f64::max);
    let gpu_min = slow.fold(f64::MAX, f64::min);
    Ok(([cpu, gpu_max], [1.0, gpu_min]))
}

/// The task set under a plan, as the analysis sees it.
pub(crate) fn build(
    ts: &TaskSet,
    assign: &[Assignment],
    opts: &Options,
) -> Result<(Vec<TaskModel>, Machine), Refusal> {
    check(ts, opts)?;
    if assign.len() != ts.tasks.len() {
        return Err(Refusal::Plan {
            what: format!("{} assignments for {} tasks", assign.len(), ts.tasks.len()),
        });
    }
    let p = &ts.platform;
    let (fmax, fmin) = factors(p)?;
    let ov = &p.overheads;
    let (dispatch, back) = (
        [span_opt(&ov.dispatch[0]), span_opt(&ov.dispatch[1])],
        [span_opt(&ov.back[0]), span_opt(&ov.back[1])],
    );
    let (release_min, release_max) = span_opt(&ov.release);
    let mut tasks = Vec::with_capacity(ts.tasks.len());
    for (t, (task, a)) in ts.tasks.iter().zip(assign).enumerate() {
        let model = ts.model_of(t);
        let Some(variant) = model.variants.get(a.variant) else {
            return Err(Refusal::Plan {
                what: format!("task `{}` has no variant {}", task.name, a.variant),
            });
        };
        if variant.times.len() != model.stages.len() {
            return Err(Refusal::Plan {
                what: format!(
                    "task `{}`: variant `{}` has {} times for {} stages",
                    task.name,
                    variant.name,
                    variant.times.len(),
                    model.stages.len()
                ),
            });
        }
        let mut segs = Vec::with_capacity(model.stages.len());
        for (stage, prof) in model.stages.iter().zip(&variant.times) {
            let r = side(stage.on);
            let (lo, hi) = span(prof);
            let wcet = (hi as f64 * opts.margin).ceil();
            let exec = (wcet * fmax[r]).ceil();
            let occ = dispatch[r].1 as f64 + exec + back[r].1 as f64 + 1.0;
            if occ >= TIME_LIMIT as f64 {
                return Err(Refusal::TooLong {
                    task: task.name.clone(),
                    stage: stage.name.clone(),
                });
            }
            let work_min = ((lo as f64 * fmin[r]).floor() as Time).saturating_sub(1);
            segs.push(Seg {
                name: stage.name.clone(),
                res: stage.on,
                wcet: wcet as Time,
                exec: exec as Time,
                occ: occ as Time,
                bcet: dispatch[r].0 + work_min + back[r].0,
            });
        }
        if task.period >= TIME_LIMIT || task.deadline >= TIME_LIMIT || release_max >= TIME_LIMIT {
            return Err(Refusal::TooLong {
                task: task.name.clone(),
                stage: "(period, deadline or release lateness)".into(),
            });
        }
        tasks.push(TaskModel {
            name: task.name.clone(),
            period: task.period,
            deadline: task.deadline,
            prio: a.priority,
            overrun: task.overrun,
            release_min,
            release_max,
            segs,
        });
    }
    let k = p.gpu_lanes.max(1);
    let holds = (1..k).any(|n| p.slowdown(n + 1) > p.slowdown(n));
    let pack_max = (1..=k).map(|n| p.slowdown(n)).fold(1.0, f64::max);
    let machine = Machine {
        slots: [p.cpu_workers.max(1), k],
        holds,
        pack_max,
        stretch: fmax,
    };
    Ok((tasks, machine))
}
