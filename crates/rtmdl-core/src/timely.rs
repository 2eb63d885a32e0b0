//! Timely accuracy: the share of released frames a task answered correctly
//! *and* on time — a late, dropped or failed answer counts as wrong. It
//! merges the miss rate and the accuracy into the number a user needs.
//!
//! A driver records one [`Answer`] per job of a task whose frames carry
//! their ground truth (a `route` source): [`Answers`] keeps them by
//! sequence number, a byte each. [`score`] then counts, per task, frames,
//! on-time answers and correct ones, and per *episode* (one light phase, one
//! sign in view) whether the task answered it correctly in time within its
//! first frames (the reaction window, [`REACTION`]): correct, missed (no
//! on-time answer at all), or wrong (on-time answers, none correct). A red
//! phase that is not answered correctly in time is a red light run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::Time;

/// How long after a light turns (or a sign comes into view) the answer must
/// be there: 100 ms, the perception budget usually given to a driving
/// stack's detection (at 50 km/h the car moves 1.4 m in it). The window
/// is the frames released in it: ⌈100 ms / period⌉, at least one — 4 frames
/// at 33 ms, 2 at 50 ms; at a heavier load (shorter periods) more frames
/// fit in the same time.
pub const REACTION: Time = 100_000_000;

/// The frames of the reaction window at `period`.
pub fn reaction_frames(period: Time) -> usize {
    (REACTION.div_ceil(period.max(1)) as usize).max(1)
}

/// How one job ended, for the judging of its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Answer {
    /// No answer: dropped, failed, not yet finished.
    None = 0,
    /// Answered on time, wrong.
    Wrong = 1,
    /// Answered on time, right.
    Right = 2,
    /// Missed its deadline (whatever it answered later).
    Late = 3,
}

/// Per job (by sequence number), how it ended; a byte each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answers(Vec<u8>);

impl Answers {
    fn slot(&mut self, seq: u64) -> &mut u8 {
        let i = seq as usize;
        if self.0.len() <= i {
            self.0.resize(i + 1, Answer::None as u8);
        }
        &mut self.0[i]
    }

    /// The job's last sub-task returned an answer, judged `right`. A job
    /// already marked late stays late.
    pub fn answered(&mut self, seq: u64, right: bool) {
        let s = self.slot(seq);
        if *s == Answer::None as u8 {
            *s = if right { Answer::Right } else { Answer::Wrong } as u8;
        }
    }

    /// The job missed its deadline: whatever it answers is too late.
    pub fn late(&mut self, seq: u64) {
        *self.slot(seq) = Answer::Late as u8;
    }

    /// How job `seq` ended.
    pub fn get(&self, seq: u64) -> Answer {
        match self.0.get(seq as usize).copied().unwrap_or(0) {
            1 => Answer::Wrong,
            2 => Answer::Right,
            3 => Answer::Late,
            _ => Answer::None,
        }
    }
}

/// What a frame shows, as far as the score needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shown {
    /// The appearance it belongs to, numbered over the run.
    pub episode: u64,
    /// Its class's name.
    pub label: &'static str,
}

/// Episodes of one label (or of all): answered correctly in time, missed,
/// wrong.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpisodeCounts {
    pub correct: u64,
    pub missed: u64,
    pub wrong: u64,
}

impl EpisodeCounts {
    /// All episodes counted.
    pub fn total(&self) -> u64 {
        self.correct + self.missed + self.wrong
    }
}

/// One task's judged answers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskScore {
    /// Released frames with something to answer.
    pub frames: u64,
    /// Of those, answered on time.
    pub on_time: u64,
    /// Of those, answered correctly on time.
    pub timely_correct: u64,
    /// timely_correct / frames.
    pub timely_accuracy: f64,
    /// timely_correct / on_time: the model's accuracy on these frames,
    /// measured.
    pub answer_accuracy: f64,
    /// The reaction window in frames ([`REACTION`] at the task's period).
    pub reaction_frames: usize,
    /// Every episode whose first frame was released.
    pub episodes: EpisodeCounts,
    /// The same per class name.
    pub by_label: BTreeMap<String, EpisodeCounts>,
}

/// Score `released` jobs of one task: `shown(seq)` is what frame `seq`
/// shows (`None`: nothing to answer), `window` the reaction window in
/// frames.
pub fn score(
    answers: &Answers,
    released: u64,
    window: usize,
    shown: impl Fn(u64) -> Option<Shown>,
) -> TaskScore {
    let mut s = TaskScore {
        reaction_frames: window,
        ..Default::default()
    };
    // The episode being read: (id, label, frames seen, any right, any on time).
    let mut open: Option<(u64, &'static str, usize, bool, bool)> = None;
    let close = |s: &mut TaskScore, ep: Option<(u64, &'static str, usize, bool, bool)>| {
        if let Some((_, label, _, right, on_time)) = ep {
            let c = s.by_label.entry(label.to_string()).or_default();
            let (a, b) = match (right, on_time) {
                (true, _) => (&mut c.correct, &mut s.episodes.correct),
                (false, false) => (&mut c.missed, &mut s.episodes.missed),
                (false, true) => (&mut c.wrong, &mut s.episodes.wrong),
            };
            *a += 1;
            *b += 1;
        }
    };
    for seq in 0..released {
        let Some(f) = shown(seq) else { continue };
        let a = answers.get(seq);
        let on_time = matches!(a, Answer::Right | Answer::Wrong);
        let right = a == Answer::Right;
        s.frames += 1;
        s.on_time += on_time as u64;
        s.timely_correct += right as u64;
        if open.is_none_or(|o| o.0 != f.episode) {
            close(&mut s, open.take());
            open = Some((f.episode, f.label, 0, false, false));
        }
        let o = open.as_mut().expect("just opened");
        if o.2 < window {
            o.2 += 1;
            o.3 |= right;
            o.4 |= on_time;
        }
    }
    close(&mut s, open);
    s.timely_accuracy = s.timely_correct as f64 / s.frames.max(1) as f64;
    s.answer_accuracy = s.timely_correct as f64 / s.on_time.max(1) as f64;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_the_frames_of_100_ms() {
        assert_eq!(reaction_frames(33_000_000), 4);
        assert_eq!(reaction_frames(50_000_000), 2);
        assert_eq!(reaction_frames(100_000_000), 1);
        assert_eq!(reaction_frames(400_000_000), 1);
        assert_eq!(reaction_frames(6_600_000), 16);
    }

    #[test]
    fn late_stays_late_and_an_answer_is_kept_once() {
        let mut a = Answers::default();
        a.late(3);
        a.answered(3, true);
        assert_eq!(a.get(3), Answer::Late);
        a.answered(1, false);
        a.answered(1, true);
        assert_eq!(a.get(1), Answer::Wrong);
        // A job that answered and then turned out late (the miss is
        // reported after the answer) is late.
        a.answered(5, true);
        a.late(5);
        assert_eq!(a.get(5), Answer::Late);
        assert_eq!((a.get(0), a.get(99)), (Answer::None, Answer::None));
    }

    /// A hand-built case: known answers, known lateness.
    /// Frames 0..4 red (episode 0), 4..8 green (1), 8..10 nothing, 10..14
    /// red (2); window 2 frames.
    #[test]
    fn timely_accuracy_and_episodes_on_a_hand_built_case() {
        let shown = |seq: u64| match seq {
            0..4 => Some(Shown {
                episode: 0,
                label: "red",
            }),
            4..8 => Some(Shown {
                episode: 1,
                label: "green",
            }),
            10..14 => Some(Shown {
                episode: 2,
                label: "red",
            }),
            _ => None,
        };
        let mut a = Answers::default();
        // Episode 0: first frame late, second right: answered in time.
        a.late(0);
        a.answered(1, true);
        a.answered(2, true);
        a.answered(3, false);
        // Episode 1: first two answered but wrong; right only after the window.
        a.answered(4, false);
        a.answered(5, false);
        a.answered(6, true);
        a.answered(7, true);
        // Frames 8, 9 show nothing: not judged whatever they answer.
        a.answered(8, false);
        a.answered(9, true);
        // Episode 2: the first two dropped and late, then right: a red light run.
        a.late(11);
        a.answered(12, true);
        a.answered(13, true);
        let s = score(&a, 14, 2, shown);
        assert_eq!(s.frames, 12);
        // On time: 1,2,3,4,5,6,7,12,13; right: 1,2,6,7,12,13.
        assert_eq!(s.on_time, 9);
        assert_eq!(s.timely_correct, 6);
        assert_eq!(s.timely_accuracy, 0.5);
        assert!((s.answer_accuracy - 6.0 / 9.0).abs() < 1e-12);
        assert_eq!(
            s.episodes,
            EpisodeCounts {
                correct: 1,
                missed: 1,
                wrong: 1
            }
        );
        assert_eq!(
            s.by_label["red"],
            EpisodeCounts {
                correct: 1,
                missed: 1,
                wrong: 0
            }
        );
        assert_eq!(s.by_label["green"].wrong, 1);
        // Only the released jobs count: at 12 released, episode 2 has seen
        // frames 10 and 11, neither on time.
        let s = score(&a, 12, 2, shown);
        assert_eq!((s.frames, s.by_label["red"].missed), (10, 1));
    }
}
