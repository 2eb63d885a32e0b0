//! Online variant switching: when a task's recent jobs miss more than it
//! tolerates, or run out of slack, it moves to a faster variant of its
//! model; when its slack has stayed high for a while, back up towards the
//! planned one. The monitor lives in the core, so the simulator predicts
//! the switches a real run makes (the same code decides both).
//!
//! Per task, the *ladder* runs from the planned variant down through every
//! faster variant of its model that meets its accuracy floor (the task's
//! `min_accuracy`, or its `floor` variant), fastest last. The monitor keeps
//! the outcome of the task's last `window` jobs: the slack of a job that
//! completed, (deadline − response) / relative deadline, or a miss (a
//! deadline passed, or a job dropped by its overrun rule).
//!
//! - Down one step when the window's miss rate exceeds ζ, or its mean
//!   slack falls below `low`; then the window starts afresh, so the next
//!   step down is judged on jobs of the new variant.
//! - Up one step when the window is full, holds no miss, and every job in
//!   it kept at least `high` of slack plus what the slower variant would
//!   take from it (the difference of the chains' mean times over the
//!   deadline), for `hold` since the last switch: hysteresis (`low` <
//!   `high`), so a task does not flap between two variants.
//! - A step up that does not hold (a step down within `hold` of it)
//!   doubles the hold before the next step up, up to 8 ×; one that holds
//!   resets it: a task at the edge of its capacity does not keep trying.
//! - A task with an (m,k)-firm constraint (`max_misses = "m in k"`) also
//!   steps down when its last k jobs hold m misses (at least one): one
//!   more would break the constraint. Over it on the fastest variant
//!   allowed, it is starved (below).
//! - Only jobs of the variant in use count: the backlog of the old variant
//!   that finishes (or misses) after a switch says nothing about the new.
//! - A task already on its fastest allowed variant whose window still
//!   misses more than ζ is *starved*: the time it lacks is taken by the
//!   tasks ahead of it. The scheduler then steps down one of those (a more
//!   urgent task, under fixed priorities, that uses a resource of the
//!   starved task's chain and has a faster variant above its floor: the
//!   one whose step frees the most time per second), and the starved
//!   task's window starts afresh. A task stepped down for another does not
//!   step up before that one is back on its planned variant with a full
//!   window and no miss in it: the starved climb first, so a relieved task
//!   does not climb back into the load that starved them.

use serde::{Deserialize, Serialize};

use crate::model::{TaskSet, Time};

/// How the monitor decides (`[adapt]` in a config).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdaptOptions {
    /// Jobs per task in the sliding window.
    pub window: u32,
    /// Step down when the window's mean slack falls below this.
    pub low: f64,
    /// Step up only when every job of the window kept this much slack.
    pub high: f64,
    /// At least this long between a switch and the next step up.
    pub hold: Time,
    /// The reports' timeline bins.
    pub bin: Time,
}

impl Default for AdaptOptions {
    fn default() -> Self {
        AdaptOptions {
            window: 20,
            low: 0.05,
            high: 0.15,
            hold: 1_000_000_000,
            bin: 250_000_000,
        }
    }
}

/// What one job's outcome tells the monitor to do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Verdict {
    /// Nothing.
    Stay,
    /// Switch to this variant.
    To(usize),
    /// Down wanted, but the task is on its fastest allowed variant: only
    /// a task ahead of it can make room.
    Starved,
}

/// One task's monitor.
#[derive(Clone, Debug, PartialEq)]
pub struct Monitor {
    /// Variant indices from the planned one to the fastest allowed.
    pub(crate) ladder: Vec<usize>,
    /// Mean chain time of each ladder step (ns).
    means: Vec<f64>,
    deadline: f64,
    period: f64,
    zeta: f64,
    /// (m, k) of an (m,k)-firm constraint, and the last k outcomes (a
    /// miss: `true`), of the variant in use.
    firm: Option<(u32, u32)>,
    recent: std::collections::VecDeque<bool>,
    /// Where on the ladder the task is.
    pub(crate) step: usize,
    /// The last `window` outcomes: `None` a miss, `Some(slack)` otherwise.
    outcomes: std::collections::VecDeque<Option<f64>>,
    last_switch: Time,
    /// The last step up, and the hold's multiplier (back-off).
    last_up: Option<Time>,
    backoff: u32,
    /// The starved tasks this one stepped down for: it climbs only once
    /// they have.
    pub(crate) relieved: Vec<usize>,
}

impl Monitor {
    /// The ladder of task `t` starting at `planned`.
    pub(crate) fn new(ts: &TaskSet, t: usize, planned: usize) -> Monitor {
        let task = &ts.tasks[t];
        let m = ts.model_of(t);
        let mean = |v: usize| m.variants[v].mean_total();
        let floor_acc = task.floor.map_or(task.min_accuracy, |f| {
            m.variants[f].accuracy.max(task.min_accuracy)
        });
        let mut faster: Vec<usize> = (0..m.variants.len())
            .filter(|&v| v != planned && mean(v) < mean(planned))
            .filter(|&v| m.variants[v].accuracy >= floor_acc)
            .collect();
        // Slowest (most accurate, usually) first: one step at a time.
        faster.sort_by(|&a, &b| mean(b).total_cmp(&mean(a)).then(a.cmp(&b)));
        let ladder: Vec<usize> = std::iter::once(planned).chain(faster).collect();
        Monitor {
            means: ladder.iter().map(|&v| mean(v)).collect(),
            ladder,
            deadline: task.deadline.max(1) as f64,
            period: task.period.max(1) as f64,
            zeta: task.max_miss_rate,
            firm: task.max_misses.map(|f| (f.misses, f.of.max(1))),
            recent: Default::default(),
            step: 0,
            outcomes: Default::default(),
            last_switch: 0,
            last_up: None,
            backoff: 1,
            relieved: Vec::new(),
        }
    }

    /// The variant the task runs now.
    pub fn variant(&self) -> usize {
        self.ladder[self.step]
    }

    /// Record one job's outcome at `now`; what the rules say to do.
    /// `may_climb`: the tasks this one was stepped down for have climbed
    /// back (see [`Monitor::relieved`]); without it, no step up.
    pub(crate) fn record(
        &mut self,
        outcome: Option<f64>,
        now: Time,
        o: &AdaptOptions,
        may_climb: bool,
    ) -> Verdict {
        let window = o.window.max(1) as usize;
        if self.outcomes.len() == window {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back(outcome);
        let n = self.outcomes.len();
        let misses = self.outcomes.iter().filter(|x| x.is_none()).count();
        let slack: Vec<f64> = self.outcomes.iter().flatten().copied().collect();
        let mean_slack = slack.iter().sum::<f64>() / slack.len().max(1) as f64;
        // (m,k): at the limit (m misses in the last k) is reason to step
        // down; over it, to be starved.
        let (firm_limit, firm_broken) = match self.firm {
            Some((m, k)) => {
                if self.recent.len() == k as usize {
                    self.recent.pop_front();
                }
                self.recent.push_back(outcome.is_none());
                let missed = self.recent.iter().filter(|&&x| x).count() as u32;
                (missed >= m.max(1), missed > m)
            }
            None => (false, false),
        };
        // The window's miss rate counts the jobs still to come in it as on
        // time: it crosses ζ as soon as that many misses are in.
        let over_zeta = misses as f64 / window as f64 > self.zeta;
        let down =
            over_zeta || firm_limit || (n == window && !slack.is_empty() && mean_slack < o.low);
        // A step up that has held for `hold`: the back-off is over.
        if let Some(up) = self.last_up
            && now >= up.saturating_add(o.hold)
        {
            self.last_up = None;
            self.backoff = 1;
        }
        if down {
            if let Some(v) = self.step_down(now) {
                return Verdict::To(v);
            }
            if over_zeta || firm_broken {
                return Verdict::Starved;
            }
        }
        let hold = o.hold.saturating_mul(self.backoff as Time);
        if may_climb
            && self.step > 0
            && n == window
            && misses == 0
            && now >= self.last_switch.saturating_add(hold)
        {
            let costs = (self.means[self.step - 1] - self.means[self.step]) / self.deadline;
            if slack.iter().all(|&s| s >= o.high + costs) {
                self.last_up = Some(now);
                return Verdict::To(self.switch(self.step - 1, now));
            }
        }
        Verdict::Stay
    }

    /// One step down, if the ladder has one: a step up that this undoes
    /// within its hold did not hold, so the next one waits twice as long.
    pub(crate) fn step_down(&mut self, now: Time) -> Option<usize> {
        if self.step + 1 >= self.ladder.len() {
            return None;
        }
        if self.last_up.take().is_some() {
            self.backoff = (self.backoff * 2).min(8);
        }
        Some(self.switch(self.step + 1, now))
    }

    /// Lane (or core) time per second one step down would free: the
    /// difference of the chains' mean times over the period; 0 on the
    /// fastest allowed variant.
    pub(crate) fn frees(&self) -> f64 {
        match self.means.get(self.step + 1) {
            Some(next) => (self.means[self.step] - next) / self.period,
            None => 0.0,
        }
    }

    /// Back on the planned variant with a full window and no miss in it.
    pub(crate) fn settled(&self, o: &AdaptOptions) -> bool {
        self.step == 0
            && self.outcomes.len() == o.window.max(1) as usize
            && self.outcomes.iter().all(|x| x.is_some())
    }

    /// Judge the next jobs afresh (a task ahead made room).
    pub(crate) fn restart(&mut self) {
        self.outcomes.clear();
        self.recent.clear();
    }

    /// The variants the task may run, planned first.
    pub fn ladder(&self) -> &[usize] {
        &self.ladder
    }

    fn switch(&mut self, step: usize, now: Time) -> usize {
        self.step = step;
        self.outcomes.clear();
        self.recent.clear();
        self.last_switch = now;
        self.variant()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monitor(zeta: f64, means: &[f64]) -> Monitor {
        Monitor {
            ladder: (0..means.len()).collect(),
            means: means.to_vec(),
            deadline: 10.0,
            period: 10.0,
            zeta,
            firm: None,
            recent: Default::default(),
            step: 0,
            outcomes: Default::default(),
            last_switch: 0,
            last_up: None,
            backoff: 1,
            relieved: Vec::new(),
        }
    }

    #[test]
    fn a_step_up_that_does_not_hold_doubles_the_next_hold() {
        let o = AdaptOptions {
            window: 2,
            low: -1.0,
            high: 0.1,
            hold: 10,
            bin: 1,
        };
        let mut m = monitor(0.0, &[2.0, 1.0]);
        assert_eq!(m.record(None, 0, &o, true), Verdict::To(1));
        m.record(Some(0.9), 5, &o, true);
        // Up after the hold (10).
        assert_eq!(m.record(Some(0.9), 10, &o, true), Verdict::To(0));
        // A miss 3 later: down, and the next hold is 20.
        assert_eq!(m.record(None, 13, &o, true), Verdict::To(1));
        m.record(Some(0.9), 20, &o, true);
        assert_eq!(
            m.record(Some(0.9), 30, &o, true),
            Verdict::Stay,
            "within the doubled hold"
        );
        assert_eq!(m.record(Some(0.9), 33, &o, true), Verdict::To(0));
        // This one holds for 20: the back-off is reset.
        m.record(Some(0.9), 60, &o, true);
        assert_eq!(m.backoff, 1);
    }

    #[test]
    fn down_exactly_when_the_window_miss_rate_crosses_zeta() {
        let o = AdaptOptions {
            window: 10,
            low: -1.0,
            high: 0.5,
            hold: 100,
            bin: 1,
        };
        let mut m = monitor(0.1, &[5.0, 3.0, 1.0]);
        for _ in 0..9 {
            assert_eq!(m.record(Some(0.5), 1, &o, true), Verdict::Stay);
        }
        // One miss in ten is 10 %: within ζ.
        assert_eq!(m.record(None, 2, &o, true), Verdict::Stay);
        // A second one: 20 % > ζ: one step down.
        assert_eq!(m.record(None, 3, &o, true), Verdict::To(1));
        // A fresh window of the new variant: again two misses to go down.
        assert_eq!(m.record(None, 4, &o, true), Verdict::Stay);
        assert_eq!(m.record(None, 5, &o, true), Verdict::To(2));
        // Never below the last (the floor): over ζ there, it is starved.
        assert_eq!(m.record(None, 6, &o, true), Verdict::Stay);
        assert_eq!(m.record(None, 7, &o, true), Verdict::Starved);
        assert_eq!(m.variant(), 2);
    }

    #[test]
    fn up_only_after_the_hold_and_with_room_for_the_slower_variant() {
        let o = AdaptOptions {
            window: 4,
            low: 0.1,
            high: 0.3,
            hold: 100,
            bin: 1,
        };
        let mut m = monitor(0.0, &[6.0, 2.0]);
        // ζ = 0: one miss is too many.
        assert_eq!(m.record(None, 0, &o, true), Verdict::To(1));
        // Slack 0.8 ≥ high 0.3 + (6 − 2)/10: but within the hold, no switch.
        for t in 1..=4 {
            assert_eq!(m.record(Some(0.8), t, &o, true), Verdict::Stay);
        }
        assert_eq!(m.record(Some(0.8), 99, &o, true), Verdict::Stay);
        assert_eq!(m.record(Some(0.8), 100, &o, true), Verdict::To(0));
        // Slack 0.6 would not leave room for the slower variant (0.7).
        let mut m = monitor(0.0, &[6.0, 2.0]);
        m.record(None, 0, &o, true);
        for t in 100..110 {
            assert_eq!(m.record(Some(0.6), t, &o, true), Verdict::Stay);
        }
    }

    #[test]
    fn low_mean_slack_steps_down_before_any_miss() {
        let o = AdaptOptions {
            window: 3,
            low: 0.2,
            high: 0.5,
            hold: 0,
            bin: 1,
        };
        let mut m = monitor(0.5, &[5.0, 3.0]);
        assert_eq!(m.record(Some(0.1), 0, &o, true), Verdict::Stay);
        assert_eq!(m.record(Some(0.1), 1, &o, true), Verdict::Stay);
        assert_eq!(m.record(Some(0.1), 2, &o, true), Verdict::To(1));
    }

    #[test]
    fn an_m_k_firm_task_steps_down_at_m_misses_in_k_jobs() {
        let o = AdaptOptions {
            window: 100,
            low: -1.0,
            high: 0.5,
            hold: 100,
            bin: 1,
        };
        // ζ 0.5 would allow 50 misses in the window; "2 in 5" allows 2.
        let mut m = monitor(0.5, &[5.0, 3.0, 1.0]);
        m.firm = Some((2, 5));
        assert_eq!(m.record(None, 1, &o, true), Verdict::Stay);
        for t in 2..6 {
            assert_eq!(m.record(Some(0.5), t, &o, true), Verdict::Stay);
        }
        // The first miss has left the last 5 jobs: one miss in 5.
        assert_eq!(m.record(None, 6, &o, true), Verdict::Stay);
        // Two in the last five (jobs 6 and 7): at the limit, one step down.
        assert_eq!(m.record(None, 7, &o, true), Verdict::To(1));
        // On the fastest allowed variant, over the limit is starved.
        m.record(None, 8, &o, true);
        assert_eq!(m.record(None, 9, &o, true), Verdict::To(2));
        m.record(None, 10, &o, true);
        assert_eq!(m.record(None, 11, &o, true), Verdict::Stay, "at the limit");
        assert_eq!(m.record(None, 12, &o, true), Verdict::Starved, "over it");
    }

    #[test]
    fn mean_slack_exactly_at_low_is_no_reason_to_step_down() {
        let o = AdaptOptions {
            window: 4,
            low: 0.25,
            high: 0.9,
            hold: 0,
            bin: 1,
        };
        // 0.25 is exact in binary: the mean of the window is `low` itself.
        let mut m = monitor(0.5, &[5.0, 3.0]);
        for t in 0..8 {
            assert_eq!(m.record(Some(0.25), t, &o, true), Verdict::Stay);
        }
        assert_eq!(m.record(Some(0.0), 8, &o, true), Verdict::To(1));
    }

    #[test]
    fn a_step_down_frees_the_difference_of_the_means_per_period() {
        // Means 7, 4 and 1.5 (ns) over a period of 10: a step from the
        // planned variant frees 0.3 of the lane, the next 0.25, the last 0.
        let mut m = monitor(0.0, &[7.0, 4.0, 1.5]);
        assert_eq!(m.frees(), 0.3);
        assert_eq!(m.step_down(0), Some(1));
        assert_eq!(m.frees(), 0.25);
        assert_eq!(m.step_down(0), Some(2));
        assert_eq!(m.frees(), 0.0);
        assert_eq!(m.ladder(), &[0, 1, 2]);
    }

    #[test]
    fn settled_needs_the_planned_variant_and_a_full_window_without_a_miss() {
        let o = AdaptOptions {
            window: 3,
            low: -1.0,
            high: 2.0,
            hold: 0,
            bin: 1,
        };
        let mut m = monitor(0.5, &[5.0, 3.0]);
        m.record(Some(0.5), 0, &o, true);
        m.record(Some(0.5), 1, &o, true);
        assert!(!m.settled(&o), "the window is not full");
        m.record(Some(0.5), 2, &o, true);
        assert!(m.settled(&o));
        // Judged afresh: an empty window is not settled.
        m.restart();
        assert!(!m.settled(&o));
        for t in 3..6 {
            m.record(Some(0.5), t, &o, true);
        }
        assert!(m.settled(&o));
        m.record(None, 6, &o, true);
        assert!(!m.settled(&o), "a miss in the window");
        // A full window without a miss one step down is not settled.
        let mut m = monitor(0.5, &[5.0, 3.0]);
        m.step_down(0);
        for t in 0..3 {
            m.record(Some(0.5), t, &o, false);
        }
        assert_eq!(m.variant(), 1);
        assert!(!m.settled(&o));
    }
}
