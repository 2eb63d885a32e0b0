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
//! - Only jobs of the variant in use count: the backlog of the old variant
//!   that finishes (or misses) after a switch says nothing about the new.

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

/// One task's monitor.
#[derive(Clone, Debug, PartialEq)]
pub struct Monitor {
    /// Variant indices from the planned one to the fastest allowed.
    pub(crate) ladder: Vec<usize>,
    /// Mean chain time of each ladder step (ns).
    means: Vec<f64>,
    deadline: f64,
    zeta: f64,
    /// Where on the ladder the task is.
    pub(crate) step: usize,
    /// The last `window` outcomes: `None` a miss, `Some(slack)` otherwise.
    outcomes: std::collections::VecDeque<Option<f64>>,
    last_switch: Time,
    /// The last step up, and the hold's multiplier (back-off).
    last_up: Option<Time>,
    backoff: u32,
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
            zeta: task.max_miss_rate,
            step: 0,
            outcomes: Default::default(),
            last_switch: 0,
            last_up: None,
            backoff: 1,
        }
    }

    /// The variant the task runs now.
    pub fn variant(&self) -> usize {
        self.ladder[self.step]
    }

    /// Record one job's outcome at `now`; the variant to switch to, if the
    /// rules say so.
    pub(crate) fn record(
        &mut self,
        outcome: Option<f64>,
        now: Time,
        o: &AdaptOptions,
    ) -> Option<usize> {
        let window = o.window.max(1) as usize;
        if self.outcomes.len() == window {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back(outcome);
        let n = self.outcomes.len();
        let misses = self.outcomes.iter().filter(|x| x.is_none()).count();
        let slack: Vec<f64> = self.outcomes.iter().flatten().copied().collect();
        let mean_slack = slack.iter().sum::<f64>() / slack.len().max(1) as f64;
        // The window's miss rate counts the jobs still to come in it as on
        // time: it crosses ζ as soon as that many misses are in.
        let down = misses as f64 / window as f64 > self.zeta
            || (n == window && !slack.is_empty() && mean_slack < o.low);
        // A step up that has held for `hold`: the back-off is over.
        if let Some(up) = self.last_up
            && now >= up.saturating_add(o.hold)
        {
            self.last_up = None;
            self.backoff = 1;
        }
        if down && self.step + 1 < self.ladder.len() {
            if self.last_up.take().is_some() {
                self.backoff = (self.backoff * 2).min(8);
            }
            return Some(self.switch(self.step + 1, now));
        }
        let hold = o.hold.saturating_mul(self.backoff as Time);
        if self.step > 0
            && n == window
            && misses == 0
            && now >= self.last_switch.saturating_add(hold)
        {
            let costs = (self.means[self.step - 1] - self.means[self.step]) / self.deadline;
            if slack.iter().all(|&s| s >= o.high + costs) {
                self.last_up = Some(now);
                return Some(self.switch(self.step - 1, now));
            }
        }
        None
    }

    /// The variants the task may run, planned first.
    pub fn ladder(&self) -> &[usize] {
        &self.ladder
    }

    fn switch(&mut self, step: usize, now: Time) -> usize {
        self.step = step;
        self.outcomes.clear();
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
            zeta,
            step: 0,
            outcomes: Default::default(),
            last_switch: 0,
            last_up: None,
            backoff: 1,
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
        assert_eq!(m.record(None, 0, &o), Some(1));
        m.record(Some(0.9), 5, &o);
        // Up after the hold (10).
        assert_eq!(m.record(Some(0.9), 10, &o), Some(0));
        // A miss 3 later: down, and the next hold is 20.
        assert_eq!(m.record(None, 13, &o), Some(1));
        m.record(Some(0.9), 20, &o);
        assert_eq!(m.record(Some(0.9), 30, &o), None, "within the doubled hold");
        assert_eq!(m.record(Some(0.9), 33, &o), Some(0));
        // This one holds for 20: the back-off is reset.
        m.record(Some(0.9), 60, &o);
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
            assert_eq!(m.record(Some(0.5), 1, &o), None);
        }
        // One miss in ten is 10 %: within ζ.
        assert_eq!(m.record(None, 2, &o), None);
        // A second one: 20 % > ζ: one step down.
        assert_eq!(m.record(None, 3, &o), Some(1));
        // A fresh window of the new variant: again two misses to go down.
        assert_eq!(m.record(None, 4, &o), None);
        assert_eq!(m.record(None, 5, &o), Some(2));
        // Never below the last (the floor).
        assert_eq!(m.record(None, 6, &o), None);
        assert_eq!(m.record(None, 7, &o), None);
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
        assert_eq!(m.record(None, 0, &o), Some(1));
        // Slack 0.8 ≥ high 0.3 + (6 − 2)/10: but within the hold, no switch.
        for t in 1..=4 {
            assert_eq!(m.record(Some(0.8), t, &o), None);
        }
        assert_eq!(m.record(Some(0.8), 99, &o), None);
        assert_eq!(m.record(Some(0.8), 100, &o), Some(0));
        // Slack 0.6 would not leave room for the slower variant (0.7).
        let mut m = monitor(0.0, &[6.0, 2.0]);
        m.record(None, 0, &o);
        for t in 100..110 {
            assert_eq!(m.record(Some(0.6), t, &o), None);
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
        assert_eq!(m.record(Some(0.1), 0, &o), None);
        assert_eq!(m.record(Some(0.1), 1, &o), None);
        assert_eq!(m.record(Some(0.1), 2, &o), Some(1));
    }
}
