//! Who waits behind whom: an [`Observer`] of a simulation that measures,
//! per task and stage, how long its ready sub-tasks waited for a CPU worker
//! or GPU lane, and which task's sub-task held the slot they got when they
//! became ready. It turns "task X misses 16 %" into "X's inference waits
//! 41 ms on the lane behind Y's inference".

use std::collections::HashMap;

use crate::model::{Resource, TaskSet, Time};
use crate::sched::{Decision, JobId, Scheduler, Slot};
use crate::sim::Observer;

/// A sub-task of a task: (task, stage).
pub type Part = (usize, usize);

/// Waits of one (task, stage) behind one (task, stage) that held its slot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Wait {
    /// Sub-tasks that waited (ready, not started at once).
    pub count: u64,
    /// Their total wait, ns.
    pub total: Time,
    /// The longest, ns.
    pub max: Time,
}

/// The observer: per waiting (task, stage) and holder (task, stage), the
/// waits.
#[derive(Default)]
pub struct Blocking {
    /// When each job's next sub-task became ready.
    ready: HashMap<JobId, (Time, usize, usize)>,
    /// What runs on each slot: (task, stage).
    running: HashMap<Slot, Part>,
    /// What held each slot when a job's sub-task became ready (per job, per
    /// slot in use then).
    held: HashMap<JobId, Vec<(Slot, Part)>>,
    /// (waiter task, stage, resource) → holder (task, stage) → wait.
    pub waits: HashMap<(usize, usize, Resource), HashMap<Part, Wait>>,
    /// Sub-tasks that started as soon as they were ready, per (task, stage).
    pub immediate: HashMap<Part, u64>,
}

impl Observer for Blocking {
    fn decision(&mut self, now: Time, d: &Decision) {
        if let Decision::Start {
            job,
            task,
            stage,
            slot,
            release,
            ..
        } = *d
        {
            let (ready, _, _) = self.ready.remove(&job).unwrap_or((release, task, stage));
            let held = self.held.remove(&job).unwrap_or_default();
            let wait = now.saturating_sub(ready);
            match held.iter().find(|(s, _)| *s == slot) {
                Some(&(_, holder)) if wait > 0 => {
                    let w = self
                        .waits
                        .entry((task, stage, slot.resource()))
                        .or_default()
                        .entry(holder)
                        .or_default();
                    w.count += 1;
                    w.total += wait;
                    w.max = w.max.max(wait);
                }
                _ => *self.immediate.entry((task, stage)).or_default() += 1,
            }
            self.running.insert(slot, (task, stage));
        }
    }

    fn finished(&mut self, _now: Time, _job: JobId, slot: Slot) {
        self.running.remove(&slot);
    }

    fn settled(&mut self, now: Time, sched: &Scheduler) {
        // A job whose next sub-task is queued and not yet seen as ready:
        // ready now, behind whatever holds the slots.
        for (job, task, stage) in sched.queued_jobs() {
            if let std::collections::hash_map::Entry::Vacant(e) = self.ready.entry(job) {
                e.insert((now, task, stage));
                self.held
                    .insert(job, self.running.iter().map(|(s, h)| (*s, *h)).collect());
            }
        }
    }
}

impl Blocking {
    /// The longest average wait of `task`'s sub-tasks and what it waited
    /// behind, as one line ("`a`/infer waits for a GPU lane 41.0 ms on
    /// average (max 160.0 ms) in 812 of the 1000 that started, behind `b`/infer
    /// in 97 % of that time"); `None` when it never waited.
    pub fn explain(&self, ts: &TaskSet, task: usize) -> Option<String> {
        let name = |t: usize, s: usize| {
            format!(
                "`{}`/{}",
                ts.tasks[t].name, ts.models[ts.tasks[t].model].stages[s].name
            )
        };
        let ((_, stage, res), holders) = self
            .waits
            .iter()
            .filter(|((t, _, _), _)| *t == task)
            .max_by_key(|(_, h)| h.values().map(|w| w.total).sum::<Time>())?;
        let total: Time = holders.values().map(|w| w.total).sum();
        let count: u64 = holders.values().map(|w| w.count).sum();
        let max = holders.values().map(|w| w.max).max().unwrap_or(0);
        let all = count + self.immediate.get(&(task, *stage)).copied().unwrap_or(0);
        let (&(ht, hs), top) = holders.iter().max_by_key(|(_, w)| w.total)?;
        Some(format!(
            "{} waits for a {} {:.1} ms on average (max {:.1} ms) in {count} of the {all} that started, behind {} in {:.0} % of that time",
            name(task, *stage),
            match res {
                Resource::Cpu => "CPU worker",
                Resource::Gpu => "GPU lane",
            },
            total as f64 / count.max(1) as f64 / 1e6,
            max as f64 / 1e6,
            name(ht, hs),
            100.0 * top.total as f64 / total.max(1) as f64
        ))
    }
}
