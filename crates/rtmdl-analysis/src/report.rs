//! What the analysis says per task, as JSON (serde) and as a table: the
//! bound, the deadline, the verdict, and which term dominates the bound.

use rtmdl_core::{Overrun, Time};
use serde::Serialize;

use crate::input::{Machine, TaskModel};
use crate::rta::{Cause, NoBound, Solution};

fn ms(t: f64) -> f64 {
    (t / 1e3).round() / 1e3
}

/// The analysis of one task set under one plan.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Analysis {
    /// The policy analysed (always `rtmdl`).
    pub policy: &'static str,
    /// WCET = profile max × this.
    pub margin: f64,
    pub cpu_workers: usize,
    pub gpu_lanes: usize,
    /// The factor a CPU sub-task's WCET is stretched by: the worst
    /// contention of the threads on the cores (1 when none is measured).
    pub cpu_stretch: f64,
    /// The same for a GPU sub-task: the worst lane slowdown (or, for lanes
    /// on a CPU engine, the CPU contention).
    pub gpu_stretch: f64,
    /// Every task has a bound within its deadline (and period).
    pub schedulable: bool,
    pub tasks: Vec<TaskBound>,
}

/// One task's bound and where it comes from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskBound {
    pub name: String,
    pub priority: u32,
    /// Bound on the response time (nominal release → end of the last
    /// stage); `None` where the analysis has none (see `note`).
    pub bound_ms: Option<f64>,
    pub bound_ns: Option<Time>,
    pub deadline_ms: f64,
    pub period_ms: f64,
    /// The bound is within the deadline, and within the period where a
    /// release during a pending job is dropped (`skip`, `firm`).
    pub schedulable: bool,
    /// The largest of the terms below.
    pub dominant: Option<Term>,
    /// The task's own work at the slowest rate (C × slowdown or contention).
    pub own_ms: f64,
    /// Release lateness and the hand-offs around each sub-task.
    pub overheads_ms: f64,
    /// Waiting owed to tasks of higher or equal priority (packing-admission
    /// idling included), largest first.
    pub interference: Vec<Share>,
    /// Waiting owed to lower-priority sub-tasks already running, largest first.
    pub blocking: Vec<Share>,
    pub stages: Vec<StageBound>,
    /// Why there is no bound, or why a bound within the deadline is not
    /// enough.
    pub note: Option<String>,
}

/// A share of a bound owed to another task.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Share {
    pub task: String,
    pub ms: f64,
}

/// Which kind of term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TermKind {
    Own,
    Overheads,
    Interference,
    Blocking,
}

/// The dominant term of a bound.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Term {
    pub kind: TermKind,
    /// The other task, for interference and blocking.
    pub task: Option<String>,
    pub ms: f64,
}

impl std::fmt::Display for Term {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = self.task.as_deref().unwrap_or("?");
        match self.kind {
            TermKind::Own => write!(f, "own work"),
            TermKind::Overheads => write!(f, "overheads"),
            TermKind::Interference => write!(f, "interference from `{who}`"),
            TermKind::Blocking => write!(f, "blocking by `{who}`"),
        }?;
        write!(f, " ({:.2} ms)", self.ms)
    }
}

/// One stage of a task's chain.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageBound {
    pub name: String,
    pub resource: rtmdl_core::Resource,
    /// Earliest and latest arrival in its queue after the nominal release.
    pub arrival_min_ms: f64,
    pub arrival_max_ms: f64,
    /// Bound on the wait for a worker or lane.
    pub wait_ms: f64,
    /// Bound on how long it holds the worker or lane.
    pub occupancy_ms: f64,
}

fn note(t: &TaskModel, v: &Result<Time, NoBound>, names: &[String]) -> Option<String> {
    let effective = t.deadline.min(t.period);
    match v {
        Err(NoBound::Diverged) => Some("no bound: the waiting-time fixed point diverges (the load on a shared resource is too high)".into()),
        Err(NoBound::Overlap) => Some("no bound: its jobs may overlap (overrun = \"continue\" and a response beyond the period), so a job may wait for the previous one".into()),
        Err(NoBound::Retired) => Some("no bound: a late job is retired (overrun = \"firm\") while its sub-task runs on beside the next job".into()),
        Err(NoBound::DependsOn(j)) => Some(format!("no bound: it shares a resource with `{}` (of higher or equal priority), which has none", names[*j])),
        Ok(r) if *r > t.deadline => None,
        Ok(r) if *r > effective && t.overrun != Overrun::Continue => Some(format!(
            "the bound is beyond the period: a release while the previous job is pending is dropped (overrun = \"{}\")",
            if t.overrun == Overrun::Skip { "skip" } else { "firm" }
        )),
        Ok(_) => None,
    }
}

fn shares(v: Vec<f64>, names: &[String]) -> Vec<Share> {
    let mut out: Vec<Share> = v
        .into_iter()
        .enumerate()
        .filter(|(_, x)| *x >= 1.0)
        .map(|(j, x)| Share {
            task: names[j].clone(),
            ms: ms(x),
        })
        .collect();
    out.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    out
}

fn task_bound(i: usize, tasks: &[TaskModel], sol: &Solution, names: &[String]) -> TaskBound {
    let t = &tasks[i];
    let c = &sol.chains[i];
    let v = &sol.verdict[i];
    let bound = v.as_ref().ok().copied();
    let (mut inter, mut block) = (vec![0.0; tasks.len()], vec![0.0; tasks.len()]);
    let mut stages = Vec::new();
    let causes: Vec<&(Cause, f64)> = match &c.job_causes {
        Some(job) => job.iter().collect(),
        None => c.causes.iter().flatten().collect(),
    };
    for &&(cause, x) in &causes {
        match cause {
            Cause::Interference(j) => inter[j] += x,
            Cause::Blocking(j) => block[j] += x,
        }
    }
    for (s, seg) in t.segs.iter().enumerate() {
        stages.push(StageBound {
            name: seg.name.clone(),
            resource: seg.res,
            arrival_min_ms: ms(c.amin[s] as f64),
            arrival_max_ms: ms(c.amax[s] as f64),
            wait_ms: ms(c.wait[s] as f64),
            occupancy_ms: ms(seg.occ as f64),
        });
    }
    let own: Time = t.segs.iter().map(|s| s.exec).sum();
    let hand_offs: Time = t.segs.iter().map(|s| s.occ - s.exec).sum();
    let overheads = t.release_max + hand_offs;
    let (interference, blocking) = (shares(inter, names), shares(block, names));
    let dominant = bound.map(|_| {
        let mut best = Term {
            kind: TermKind::Own,
            task: None,
            ms: ms(own as f64),
        };
        let others = [(TermKind::Overheads, None, ms(overheads as f64))]
            .into_iter()
            .chain(
                interference
                    .first()
                    .map(|s| (TermKind::Interference, Some(s.task.clone()), s.ms)),
            )
            .chain(
                blocking
                    .first()
                    .map(|s| (TermKind::Blocking, Some(s.task.clone()), s.ms)),
            );
        for (kind, task, x) in others {
            if x > best.ms {
                best = Term { kind, task, ms: x };
            }
        }
        best
    });
    let schedulable = bound.is_some_and(|r| r <= t.deadline.min(t.period));
    TaskBound {
        name: t.name.clone(),
        priority: t.prio,
        bound_ms: bound.map(|r| ms(r as f64)),
        bound_ns: bound,
        deadline_ms: ms(t.deadline as f64),
        period_ms: ms(t.period as f64),
        schedulable,
        dominant,
        own_ms: ms(own as f64),
        overheads_ms: ms(overheads as f64),
        interference: if bound.is_some() {
            interference
        } else {
            Vec::new()
        },
        blocking: if bound.is_some() {
            blocking
        } else {
            Vec::new()
        },
        stages,
        note: note(t, v, names),
    }
}

pub(crate) fn build(
    tasks: &[TaskModel],
    machine: &Machine,
    sol: &Solution,
    margin: f64,
) -> Analysis {
    let names: Vec<String> = tasks.iter().map(|t| t.name.clone()).collect();
    let tasks: Vec<TaskBound> = (0..tasks.len())
        .map(|i| task_bound(i, tasks, sol, &names))
        .collect();
    Analysis {
        policy: "rtmdl",
        margin,
        cpu_workers: machine.slots[0],
        gpu_lanes: machine.slots[1],
        cpu_stretch: machine.stretch[0],
        gpu_stretch: machine.stretch[1],
        schedulable: tasks.iter().all(|t| t.schedulable),
        tasks,
    }
}

impl Analysis {
    /// The human table: one line per task, then where each bound comes from.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let w = rtmdl_core::units::column_width(self.tasks.iter().map(|t| t.name.as_str()), 4);
        let mut s = format!(
            "response-time bounds · policy {} · {} CPU worker(s), {} GPU lane(s) · WCET = profile max × {}\n\
             each sub-task occupies its worker or lane for its WCET × the worst slowdown there (CPU ×{:.2}, GPU ×{:.2}: contention for the cores, lanes busy at once) + the measured hand-offs\n",
            self.policy,
            self.cpu_workers,
            self.gpu_lanes,
            self.margin,
            self.cpu_stretch,
            self.gpu_stretch
        );
        let _ = writeln!(
            s,
            "{:<w$}  {:>4}  {:>10}  {:>11}  {:>11}  dominant term",
            "task", "prio", "bound ms", "deadline ms", "schedulable"
        );
        for t in &self.tasks {
            let bound = t.bound_ms.map_or("none".to_string(), |b| format!("{b:.3}"));
            let dom = t
                .dominant
                .as_ref()
                .map_or("-".to_string(), |d| d.to_string());
            let _ = writeln!(
                s,
                "{:<w$}  {:>4}  {:>10}  {:>11.3}  {:>11}  {}",
                t.name,
                t.priority,
                bound,
                t.deadline_ms,
                if t.schedulable { "yes" } else { "no" },
                dom
            );
        }
        s.push('\n');
        for t in &self.tasks {
            let list = |v: &[Share]| {
                if v.is_empty() {
                    "none".to_string()
                } else {
                    v.iter()
                        .map(|x| format!("{} {:.2}", x.task, x.ms))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            };
            if t.bound_ms.is_some() {
                let _ = writeln!(
                    s,
                    "{:<w$}  own {:.2} · overheads {:.2} · interference: {} · blocking: {}",
                    t.name,
                    t.own_ms,
                    t.overheads_ms,
                    list(&t.interference),
                    list(&t.blocking)
                );
            }
            if let Some(n) = &t.note {
                let _ = writeln!(s, "{:<w$}  {n}", t.name);
            }
        }
        let _ = writeln!(
            s,
            "{}",
            if self.schedulable {
                "schedulable: every task's bound is within its deadline"
            } else {
                "not schedulable: some task's bound is missing or beyond its deadline"
            }
        );
        s
    }
}
