//! Why a job missed: a missed job's time from its release to its deadline,
//! split by what it was doing, from a run's own record of every executed
//! sub-task (the simulator's schedule, or a real run's trace).
//!
//! Each instant of `[release, deadline)` of a missed job is one of:
//! - **own**: one of its sub-tasks ran (`exceeded`: how much longer they
//!   ran than their profile's p99);
//! - **blocking**: its next sub-task was ready and every worker (or lane)
//!   of its resource was busy, one of them with a less urgent task's
//!   sub-task — named;
//! - **interference**: ... busy with more urgent (or, without fixed
//!   priorities, other) tasks' sub-tasks — named;
//! - **backlog**: ... busy with an earlier job of its own task;
//! - **machine**: ready, a worker free, and the interference probe saw the
//!   machine stall then (a real run only);
//! - **idle**: ready, a worker free, and nothing of the run accounts for
//!   it: hand-offs between threads, release lateness, a packing wait or a
//!   black-box job holding its worker.
//!
//! The terms add up to the job's relative deadline. A miss's dominant
//! cause is its largest term but own work, unless own work alone (beyond
//! the profile) fills the deadline. The simulator fills the same table
//! from its schedule, with no machine term, so a real run and its
//! prediction are compared term by term.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::model::{TaskSet, Time};
use crate::sched::{Decision, JobId, Slot};
use crate::sim::Observer;

/// One executed sub-task.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exec {
    pub task: usize,
    pub seq: u64,
    pub stage: usize,
    pub variant: usize,
    pub slot: Slot,
    pub start: Time,
    pub end: Time,
}

/// A missed job: (task, seq, nominal release).
pub type Missed = (usize, u64, Time);

/// A piece of a waiting window: `[from, to)` and the job that held the
/// resource then (`None`: a worker or lane of it was free).
type Piece = (Time, Time, Option<(usize, u64)>);

/// Per task while summing: misses, misses per dominant cause, ns per cause,
/// ns beyond the profile.
#[derive(Clone, Default)]
struct Sums {
    misses: u64,
    dominant: BTreeMap<Cause, u64>,
    terms: BTreeMap<Cause, Time>,
    exceeded: Time,
}

/// One cause of a miss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    Own,
    Blocking,
    Interference,
    Backlog,
    Machine,
    Idle,
}

impl Cause {
    pub const ALL: [Cause; 6] = [
        Cause::Own,
        Cause::Blocking,
        Cause::Interference,
        Cause::Backlog,
        Cause::Machine,
        Cause::Idle,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cause::Own => "own",
            Cause::Blocking => "blocking",
            Cause::Interference => "interference",
            Cause::Backlog => "backlog",
            Cause::Machine => "machine",
            Cause::Idle => "idle",
        }
    }
}

/// One missed job's split.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobWhy {
    pub task: usize,
    pub seq: u64,
    /// ns per cause.
    pub terms: BTreeMap<Cause, Time>,
    /// Own work beyond the profile's p99, ns.
    pub exceeded: Time,
    /// ns of blocking / interference per other task.
    pub by: BTreeMap<(Cause, usize), Time>,
    pub dominant: Option<Cause>,
}

/// One task's misses by cause, in a report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskWhy {
    pub task: String,
    /// Misses explained (those with a record of their window).
    pub misses: u64,
    /// Misses per dominant cause.
    pub dominant: BTreeMap<Cause, u64>,
    /// Mean ms per missed job, per cause.
    pub mean_ms: BTreeMap<Cause, f64>,
    /// Mean ms of own work beyond the profile per missed job.
    pub exceeded_ms: f64,
    /// The task that blocked it most, and the one that interfered most
    /// (mean ms per missed job).
    pub top_blocker: Option<(String, f64)>,
    pub top_interferer: Option<(String, f64)>,
    /// Jobs dropped (the skip rule: its previous job still ran) and
    /// failed, which have no window to split.
    pub dropped: u64,
    pub failed: u64,
}

/// The split of every missed job of a run, per task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WhyReport {
    pub tasks: Vec<TaskWhy>,
}

/// Everything needed to explain a run's misses.
pub struct Schedule<'a> {
    pub ts: &'a TaskSet,
    /// The policy's fixed priority per task (1 = most urgent), if any.
    pub priorities: &'a [Option<u32>],
    pub execs: &'a [Exec],
    pub missed: &'a [Missed],
    /// Summed probe stalls overlapping `[from, to)`, ns (0 in a simulation).
    pub stalled: &'a dyn Fn(Time, Time) -> Time,
}

/// Explain one missed job.
pub fn explain_job(s: &Schedule<'_>, by_slot: &SlotIndex, job: Missed) -> JobWhy {
    let (task, seq, release) = job;
    let t = &s.ts.tasks[task];
    let deadline = release.saturating_add(t.deadline);
    let mut own: Vec<&Exec> = s
        .execs
        .iter()
        .filter(|e| e.task == task && e.seq == seq)
        .collect();
    own.sort_by_key(|e| e.stage);
    let chain = &s.ts.model_of(task).stages;
    let mut w = JobWhy {
        task,
        seq,
        ..Default::default()
    };
    let add = |w: &mut JobWhy, c: Cause, who: Option<usize>, ns: Time| {
        if ns == 0 {
            return;
        }
        *w.terms.entry(c).or_default() += ns;
        if let Some(h) = who {
            *w.by.entry((c, h)).or_default() += ns;
        }
    };
    let mut cursor = release;
    for (stage, st) in chain.iter().enumerate() {
        if cursor >= deadline {
            break;
        }
        let exec = own.iter().find(|e| e.stage == stage);
        let ready_until = exec.map_or(deadline, |e| e.start.min(deadline));
        // Waiting for this stage: who held the resource it needs.
        let resource = st.on;
        for (a, b, holder) in by_slot.occupancy(resource, cursor, ready_until, (task, seq)) {
            match holder {
                Some((h, _)) if h == task => add(&mut w, Cause::Backlog, None, b - a),
                Some((h, _)) => {
                    let c = match (
                        s.priorities.get(h).copied().flatten(),
                        s.priorities.get(task).copied().flatten(),
                    ) {
                        (Some(ph), Some(pt)) if ph > pt => Cause::Blocking,
                        _ => Cause::Interference,
                    };
                    add(&mut w, c, Some(h), b - a);
                }
                None => {
                    let stall = (s.stalled)(a, b).min(b - a);
                    add(&mut w, Cause::Machine, None, stall);
                    add(&mut w, Cause::Idle, None, b - a - stall);
                }
            }
        }
        let Some(e) = exec else { break };
        let ran = e.end.min(deadline).saturating_sub(e.start.max(cursor));
        add(&mut w, Cause::Own, None, ran);
        let p99 = s.ts.model_of(task).variants[e.variant].times[stage].quantile(0.99);
        w.exceeded += (e.end - e.start).saturating_sub(p99).min(ran);
        cursor = e.end.max(cursor);
    }
    // The chain ended before the deadline (late only by a hand-off after
    // it, or a miss decided at the deadline): the rest is idle.
    if cursor < deadline && own.len() == chain.len() {
        let stall = (s.stalled)(cursor, deadline).min(deadline - cursor);
        add(&mut w, Cause::Machine, None, stall);
        add(&mut w, Cause::Idle, None, deadline - cursor - stall);
    }
    let own_ns = w.terms.get(&Cause::Own).copied().unwrap_or(0);
    w.dominant = if own_ns >= t.deadline {
        Some(Cause::Own)
    } else {
        w.terms
            .iter()
            .filter(|(c, _)| **c != Cause::Own)
            .max_by_key(|(c, ns)| (**ns, std::cmp::Reverse(**c)))
            .map(|(c, _)| *c)
            .or(Some(Cause::Own))
    };
    w
}

/// The executions per resource kind, sorted by start, for occupancy
/// queries.
pub struct SlotIndex {
    /// Per resource kind: every exec (task, seq, slot, start, end).
    by_kind: HashMap<crate::model::Resource, Vec<Exec>>,
    /// Slots per resource kind.
    slots: HashMap<crate::model::Resource, usize>,
}

impl SlotIndex {
    pub fn new(ts: &TaskSet, execs: &[Exec]) -> SlotIndex {
        use crate::model::Resource;
        let mut by_kind: HashMap<Resource, Vec<Exec>> = HashMap::new();
        for e in execs {
            by_kind.entry(e.slot.resource()).or_default().push(*e);
        }
        for v in by_kind.values_mut() {
            v.sort_by_key(|e| e.start);
        }
        let slots = [
            (Resource::Cpu, ts.platform.cpu_workers.max(1)),
            (Resource::Gpu, ts.platform.gpu_lanes.max(1)),
        ]
        .into_iter()
        .collect();
        SlotIndex { by_kind, slots }
    }

    /// `[from, to)` cut into pieces by who held the resource: `Some(holder)`
    /// where every slot of it was busy (the holder: the least urgent
    /// running one is not known here, so the one that started first),
    /// `None` where a slot was free. `me` is left out (its own sub-tasks).
    fn occupancy(
        &self,
        r: crate::model::Resource,
        from: Time,
        to: Time,
        me: (usize, u64),
    ) -> Vec<Piece> {
        if from >= to {
            return Vec::new();
        }
        let slots = self.slots.get(&r).copied().unwrap_or(1);
        let empty = Vec::new();
        let execs = self.by_kind.get(&r).unwrap_or(&empty);
        let live: Vec<&Exec> = execs
            .iter()
            .filter(|e| e.start < to && e.end > from && (e.task, e.seq) != me)
            .collect();
        // Cut points: from, to and every start and end inside.
        let mut cuts: Vec<Time> = vec![from, to];
        for e in &live {
            for x in [e.start, e.end] {
                if x > from && x < to {
                    cuts.push(x);
                }
            }
        }
        cuts.sort_unstable();
        cuts.dedup();
        let mut out: Vec<Piece> = Vec::new();
        for w in cuts.windows(2) {
            let (a, b) = (w[0], w[1]);
            let running: Vec<&&Exec> = live.iter().filter(|e| e.start <= a && e.end >= b).collect();
            let holder = if running.len() >= slots {
                running
                    .iter()
                    .min_by_key(|e| e.start)
                    .map(|e| (e.task, e.seq))
            } else {
                None
            };
            match out.last_mut() {
                Some(last) if last.1 == a && last.2 == holder => last.1 = b,
                _ => out.push((a, b, holder)),
            }
        }
        out
    }
}

/// Explain every missed job of a schedule, summed per task. `dropped` and
/// `failed`: per task, the jobs that have no window to split.
pub fn explain(s: &Schedule<'_>, dropped: &[u64], failed: &[u64]) -> WhyReport {
    let index = SlotIndex::new(s.ts, s.execs);
    let n = s.ts.tasks.len();
    let mut sums: Vec<Sums> = vec![Sums::default(); n];
    let mut who: Vec<BTreeMap<(Cause, usize), Time>> = vec![BTreeMap::new(); n];
    for &job in s.missed {
        let w = explain_job(s, &index, job);
        let e = &mut sums[w.task];
        e.misses += 1;
        if let Some(d) = w.dominant {
            *e.dominant.entry(d).or_default() += 1;
        }
        for (c, ns) in &w.terms {
            *e.terms.entry(*c).or_default() += ns;
        }
        e.exceeded += w.exceeded;
        for (k, ns) in w.by {
            *who[w.task].entry(k).or_default() += ns;
        }
    }
    let tasks = (0..n)
        .map(|t| {
            let Sums {
                misses,
                dominant,
                terms,
                exceeded,
            } = &sums[t];
            let per = |ns: Time| ns as f64 / 1e6 / (*misses).max(1) as f64;
            let top = |c: Cause| {
                who[t]
                    .iter()
                    .filter(|((k, _), _)| *k == c)
                    .max_by_key(|(_, ns)| **ns)
                    .map(|((_, h), ns)| (s.ts.tasks[*h].name.clone(), per(*ns)))
            };
            TaskWhy {
                task: s.ts.tasks[t].name.clone(),
                misses: *misses,
                dominant: dominant.clone(),
                mean_ms: terms.iter().map(|(c, ns)| (*c, per(*ns))).collect(),
                exceeded_ms: per(*exceeded),
                top_blocker: top(Cause::Blocking),
                top_interferer: top(Cause::Interference),
                dropped: dropped.get(t).copied().unwrap_or(0),
                failed: failed.get(t).copied().unwrap_or(0),
            }
        })
        .collect();
    WhyReport { tasks }
}

impl WhyReport {
    /// One line per task with misses, causes by dominance; `other`: the
    /// same run's other side (a real run's simulation) to difference.
    pub fn table(&self, other: Option<&WhyReport>) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        for t in &self.tasks {
            if t.misses + t.dropped + t.failed == 0 {
                continue;
            }
            let mut parts: Vec<String> = Vec::new();
            let mut dom: Vec<(&Cause, &u64)> = t.dominant.iter().collect();
            dom.sort_by(|a, b| b.1.cmp(a.1));
            for (c, k) in dom {
                parts.push(format!("{} {k}", c.name()));
            }
            let terms: Vec<String> = Cause::ALL
                .iter()
                .filter_map(|c| {
                    let ms = t.mean_ms.get(c).copied().unwrap_or(0.0);
                    let o = other.and_then(|o| o.tasks.iter().find(|x| x.task == t.task));
                    let diff = o.map(|o| ms - o.mean_ms.get(c).copied().unwrap_or(0.0));
                    (ms > 0.0 || diff.is_some_and(|d| d.abs() > 0.0005)).then(|| match diff {
                        Some(d) => format!("{} {ms:.2} ({d:+.2})", c.name()),
                        None => format!("{} {ms:.2}", c.name()),
                    })
                })
                .collect();
            let _ = write!(
                s,
                "why {}: {} missed · by dominant cause: {} · mean ms per miss{}: {}",
                t.task,
                t.misses,
                if parts.is_empty() {
                    "-".into()
                } else {
                    parts.join(", ")
                },
                if other.is_some() {
                    " (vs simulated)"
                } else {
                    ""
                },
                if terms.is_empty() {
                    "-".into()
                } else {
                    terms.join(", ")
                }
            );
            if t.exceeded_ms > 0.0 {
                let _ = write!(s, " · own beyond profile p99 {:.2}", t.exceeded_ms);
            }
            if let Some((h, ms)) = &t.top_blocker {
                let _ = write!(s, " · blocked most by {h} ({ms:.2})");
            }
            if let Some((h, ms)) = &t.top_interferer {
                let _ = write!(s, " · delayed most by {h} ({ms:.2})");
            }
            if t.dropped > 0 {
                let _ = write!(s, " · {} dropped (own backlog)", t.dropped);
            }
            if t.failed > 0 {
                let _ = write!(s, " · {} failed", t.failed);
            }
            s.push('\n');
        }
        s
    }
}

/// An observer of a simulation that keeps what [`explain`] needs: every
/// executed sub-task and every miss.
#[derive(Default)]
pub struct Recorder {
    running: HashMap<JobId, Exec>,
    pub execs: Vec<Exec>,
    /// (task, seq, absolute deadline) of each miss.
    pub missed: Vec<Missed>,
}

impl Observer for Recorder {
    fn decision(&mut self, now: Time, d: &Decision) {
        match *d {
            Decision::Start {
                job,
                task,
                seq,
                stage,
                slot,
                variant,
                ..
            } => {
                self.running.insert(
                    job,
                    Exec {
                        task,
                        seq,
                        stage,
                        variant,
                        slot,
                        start: now,
                        end: now,
                    },
                );
            }
            Decision::Miss {
                task,
                seq,
                deadline,
                ..
            } => {
                // The nominal release: the deadline less the task's.
                self.missed.push((task, seq, deadline));
            }
            _ => {}
        }
    }

    fn finished(&mut self, now: Time, job: JobId, _slot: Slot) {
        if let Some(mut e) = self.running.remove(&job) {
            e.end = now;
            self.execs.push(e);
        }
    }
}

impl Recorder {
    /// The misses as (task, seq, release), given the tasks' deadlines.
    pub fn missed(&self, ts: &TaskSet) -> Vec<Missed> {
        self.missed
            .iter()
            .map(|&(t, seq, deadline)| (t, seq, deadline.saturating_sub(ts.tasks[t].deadline)))
            .collect()
    }

    /// Close sub-tasks still running at the end of the run at `now`.
    pub fn close(&mut self, now: Time) {
        for (_, mut e) in self.running.drain() {
            e.end = now;
            self.execs.push(e);
        }
    }
}
