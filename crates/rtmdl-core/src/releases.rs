//! When jobs are released: task `i`'s k-th job at `offset + k·period`, for
//! releases before the end of the run. One definition for both drivers:
//! the simulator pops releases on its virtual clock, the real-time
//! dispatcher on the monotonic one, in the same order (time, then task).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::model::{TaskSet, Time};

/// The release times still to come.
#[derive(Clone, Debug)]
pub struct Releases {
    due: BinaryHeap<Reverse<(Time, usize)>>,
    periods: Vec<Time>,
    /// Per task: no release at or after this (the run's end, or the task's
    /// `stop`).
    ends: Vec<Time>,
    end: Time,
}

impl Releases {
    /// Every task's releases in `[offset, min(end, stop))`.
    pub fn new(ts: &TaskSet, end: Time) -> Self {
        let ends: Vec<Time> = ts
            .tasks
            .iter()
            .map(|t| t.stop.map_or(end, |s| s.min(end)))
            .collect();
        Releases {
            due: ts
                .tasks
                .iter()
                .enumerate()
                .filter(|(i, t)| t.offset < ends[*i])
                .map(|(i, t)| Reverse((t.offset, i)))
                .collect(),
            periods: ts.tasks.iter().map(|t| t.period.max(1)).collect(),
            ends,
            end,
        }
    }

    /// The nominal time of the next release, if any is left.
    pub fn next_due(&self) -> Option<Time> {
        self.due.peek().map(|Reverse((t, _))| *t)
    }

    /// The next release due at or before `now`: (task, nominal time).
    pub fn pop_due(&mut self, now: Time) -> Option<(usize, Time)> {
        let &Reverse((t, task)) = self.due.peek()?;
        if t > now {
            return None;
        }
        self.due.pop();
        let next = t.saturating_add(self.periods[task]);
        if next < self.ends[task] {
            self.due.push(Reverse((next, task)));
        }
        Some((task, t))
    }

    /// No release at or after `at` (a run stopped early).
    pub fn stop_at(&mut self, at: Time) {
        self.end = self.end.min(at);
        self.ends.iter_mut().for_each(|e| *e = (*e).min(at));
        self.due.retain(|Reverse((t, _))| *t < at);
    }

    /// Whether every release has been popped.
    pub fn is_done(&self) -> bool {
        self.due.is_empty()
    }

    /// The end of the release window.
    pub fn end(&self) -> Time {
        self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Model, Overrun, Platform, Task};

    fn ts(tasks: &[(Time, Time)]) -> TaskSet {
        TaskSet {
            platform: Platform::default(),
            models: vec![Model {
                name: "m".into(),
                stages: vec![],
                shared_parts: vec![],
                variants: vec![],
            }],
            tasks: tasks
                .iter()
                .enumerate()
                .map(|(i, &(period, offset))| Task {
                    name: format!("t{i}"),
                    model: 0,
                    period,
                    deadline: period,
                    offset,
                    max_miss_rate: 0.0,
                    min_accuracy: 0.0,
                    priority: None,
                    variant: None,
                    overrun: Overrun::Continue,
                    floor: None,
                    stop: None,
                    max_misses: None,
                })
                .collect(),
            adapt: None,
        }
    }

    #[test]
    fn releases_come_in_time_then_task_order_and_stop_at_the_end() {
        let mut r = Releases::new(&ts(&[(10, 0), (4, 2)]), 12);
        let mut got = Vec::new();
        while let Some(t) = r.next_due() {
            while let Some(x) = r.pop_due(t) {
                got.push(x);
            }
        }
        assert_eq!(got, vec![(0, 0), (1, 2), (1, 6), (0, 10), (1, 10)]);
        assert!(r.is_done());
    }

    #[test]
    fn a_task_that_stops_is_released_until_then() {
        let mut set = ts(&[(10, 0), (10, 5)]);
        set.tasks[1].stop = Some(20);
        let mut r = Releases::new(&set, 40);
        let mut got = Vec::new();
        while let Some(t) = r.next_due() {
            while let Some(x) = r.pop_due(t) {
                got.push(x);
            }
        }
        assert_eq!(
            got,
            vec![(0, 0), (1, 5), (0, 10), (1, 15), (0, 20), (0, 30)]
        );
    }

    #[test]
    fn stopping_early_drops_what_is_left() {
        let mut r = Releases::new(&ts(&[(10, 0)]), 100);
        assert_eq!(r.pop_due(0), Some((0, 0)));
        assert_eq!(r.pop_due(5), None);
        r.stop_at(10);
        assert_eq!(r.next_due(), None);
        assert!(r.is_done());
    }

    #[test]
    fn stopping_keeps_the_releases_before_the_stop_and_ends_the_window_there() {
        // Releases at 0, 5, 10, … of one task, 3, 7, 11, … of another.
        let mut r = Releases::new(&ts(&[(5, 0), (4, 3)]), 100);
        assert_eq!(r.end(), 100);
        assert!(!r.is_done());
        assert_eq!(r.pop_due(0), Some((0, 0)));
        // Stopped at 8: the releases due at 3, 5 and 7 are still to come,
        // none at or after 8.
        r.stop_at(8);
        assert_eq!(r.end(), 8);
        assert!(!r.is_done());
        let mut got = Vec::new();
        while let Some(x) = r.pop_due(100) {
            got.push(x);
        }
        assert_eq!(got, vec![(1, 3), (0, 5), (1, 7)]);
        assert!(r.is_done());
        // A later stop does not move the end back out.
        r.stop_at(50);
        assert_eq!(r.end(), 8);
    }
}
