//! Experiments in rounds: what makes a real measurement on a shared
//! machine evidence. An experiment is a set of arms (policy × config ×
//! load); each round runs every arm once, in an order that is a seeded
//! shuffle rotated by one place per round, so that over as many rounds as
//! arms each arm runs once in every position and a slow drift of the
//! machine hits every arm alike. Per arm the rounds are summarised by their
//! median, their spread (min–max) and a 95 % confidence interval of the
//! median: a percentile bootstrap over rounds ([`BOOTSTRAP`] resamples,
//! seeded, so a report is reproducible from its numbers). Paired arms (a
//! policy against a baseline in the same rounds) get the ratio of their
//! medians with a paired bootstrap interval (rounds resampled together).
//!
//! Nothing here runs anything: [`run_rounds`] calls the driver's closure
//! per arm and round, in the order above.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Bootstrap resamples per interval.
pub const BOOTSTRAP: usize = 2000;
/// Confidence level of every interval.
pub const LEVEL: f64 = 0.95;

/// The order in which round `round` runs `arms` arms: a seeded shuffle of
/// the arms, rotated left by `round` places.
pub fn order(arms: usize, round: usize, seed: u64) -> Vec<usize> {
    let mut base: Vec<usize> = (0..arms).collect();
    base.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    if arms > 0 {
        base.rotate_left(round % arms);
    }
    base
}

/// Run every arm once per round, in [`order`]; `run(arm, round)` does one
/// run. Returns, per arm, its results in round order. Stops at the first
/// error. `rounds` must be at least 1 (the caller says why not, once).
pub fn run_rounds<T, E>(
    arms: usize,
    rounds: usize,
    seed: u64,
    mut run: impl FnMut(usize, usize) -> Result<T, E>,
) -> Result<Vec<Vec<T>>, E> {
    let mut out: Vec<Vec<T>> = (0..arms).map(|_| Vec::with_capacity(rounds)).collect();
    for round in 0..rounds {
        for arm in order(arms, round, seed) {
            let r = run(arm, round)?;
            out[arm].push(r);
        }
    }
    Ok(out)
}

/// The median of `xs` (the mean of the two middle values for an even
/// count; NaN for none).
pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One quantity over rounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Rounds it stands on.
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// The 95 % percentile-bootstrap interval of the median.
    pub ci_low: f64,
    pub ci_high: f64,
}

impl Summary {
    /// "median [lo, hi] (min–max)" with `scale` applied and `digits`.
    pub fn show(&self, scale: f64, digits: usize) -> String {
        if self.n == 0 {
            return "-".into();
        }
        format!(
            "{:.d$} [{:.d$}, {:.d$}]",
            self.median * scale,
            self.ci_low * scale,
            self.ci_high * scale,
            d = digits
        )
    }
}

/// The lower and upper percentile-bootstrap bounds from resampled
/// statistics (sorted here).
fn percentile_interval(mut stats: Vec<f64>) -> (f64, f64) {
    stats.sort_by(f64::total_cmp);
    let b = stats.len();
    let tail = (1.0 - LEVEL) / 2.0;
    let lo = ((tail * b as f64).floor() as usize).min(b - 1);
    let hi = (((1.0 - tail) * b as f64).ceil() as usize)
        .saturating_sub(1)
        .min(b - 1);
    (stats[lo], stats[hi])
}

/// Median, spread and the bootstrap interval of the median of `xs`.
pub fn summarize(xs: &[f64], seed: u64) -> Summary {
    let n = xs.len();
    if n == 0 {
        return Summary::default();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut draw = vec![0.0; n];
    let stats: Vec<f64> = (0..BOOTSTRAP)
        .map(|_| {
            for d in draw.iter_mut() {
                *d = xs[rng.random_range(0..n)];
            }
            median(&draw)
        })
        .collect();
    let (ci_low, ci_high) = percentile_interval(stats);
    Summary {
        n,
        median: median(xs),
        min: xs.iter().copied().fold(f64::INFINITY, f64::min),
        max: xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        ci_low,
        ci_high,
    }
}

/// Paired arms `a` and `b` over the same rounds (`a[i]` and `b[i]` ran in
/// round `i`): median(a) / median(b), with a bootstrap interval that
/// resamples rounds together. The per-round ratios' min and max are the
/// spread. `None` when `b`'s median is 0 (no ratio to speak of; say the
/// two medians instead) or the lengths differ.
pub fn paired_ratio(a: &[f64], b: &[f64], seed: u64) -> Option<Summary> {
    let n = a.len();
    if n == 0 || n != b.len() || median(b) <= 0.0 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut da, mut db) = (vec![0.0; n], vec![0.0; n]);
    let stats: Vec<f64> = (0..BOOTSTRAP)
        .map(|_| {
            for i in 0..n {
                let k = rng.random_range(0..n);
                da[i] = a[k];
                db[i] = b[k];
            }
            let mb = median(&db);
            if mb > 0.0 {
                median(&da) / mb
            } else {
                f64::INFINITY
            }
        })
        .collect();
    let (ci_low, ci_high) = percentile_interval(stats);
    let per_round: Vec<f64> = a
        .iter()
        .zip(b)
        .filter(|(_, y)| **y > 0.0)
        .map(|(x, y)| x / y)
        .collect();
    Some(Summary {
        n,
        median: median(a) / median(b),
        min: per_round.iter().copied().fold(f64::INFINITY, f64::min),
        max: per_round.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        ci_low,
        ci_high,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_round_runs_every_arm_once_and_rotation_moves_each_through_every_place() {
        let arms = 5;
        let orders: Vec<Vec<usize>> = (0..arms).map(|r| order(arms, r, 9)).collect();
        for o in &orders {
            let mut s = o.clone();
            s.sort();
            assert_eq!(s, (0..arms).collect::<Vec<_>>());
        }
        for arm in 0..arms {
            let mut places: Vec<usize> = orders
                .iter()
                .map(|o| o.iter().position(|&a| a == arm).unwrap())
                .collect();
            places.sort();
            assert_eq!(places, (0..arms).collect::<Vec<_>>(), "arm {arm}");
        }
        // Seeded: the same seed, the same order; another seed, another.
        assert_eq!(order(arms, 2, 9), orders[2]);
        assert!((0..20).any(|s| order(arms, 0, s) != orders[0]));
    }

    #[test]
    fn run_rounds_interleaves_arms_and_returns_them_in_round_order() {
        let mut calls = Vec::new();
        let out = run_rounds(3, 2, 4, |arm, round| {
            calls.push((round, arm));
            Ok::<_, ()>(arm * 10 + round)
        })
        .unwrap();
        // All of round 0 before any of round 1.
        assert_eq!(calls.len(), 6);
        assert!(calls[..3].iter().all(|c| c.0 == 0));
        assert!(calls[3..].iter().all(|c| c.0 == 1));
        assert_eq!(
            calls[..3].iter().map(|c| c.1).collect::<Vec<_>>(),
            order(3, 0, 4)
        );
        assert_eq!(out, vec![vec![0, 1], vec![10, 11], vec![20, 21]]);
        let err = run_rounds(3, 2, 4, |arm, round| {
            if (arm, round) == (1, 0) {
                Err("boom")
            } else {
                Ok(())
            }
        });
        assert_eq!(err, Err("boom"));
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn the_interval_is_the_percentile_bootstrap_of_the_median() {
        // Seven rounds 0..6: a resampled median is ≤ x(j) when at least 4
        // of 7 draws are, P = P(Bin(7, j/7) ≥ 4): 0.010 for x(1) = 0 and
        // 0.108 for x(2) = 1, so the 2.5 % point is 1; by symmetry the
        // 97.5 % point is 5.
        let xs: Vec<f64> = (0..7).map(f64::from).collect();
        let s = summarize(&xs, 1);
        assert_eq!((s.n, s.median, s.min, s.max), (7, 3.0, 0.0, 6.0));
        assert_eq!((s.ci_low, s.ci_high), (1.0, 5.0));
        // Identical rounds: a point interval.
        let same = summarize(&[2.0; 5], 3);
        assert_eq!((same.ci_low, same.ci_high), (2.0, 2.0));
        // One round: the interval is the value itself (no evidence of
        // spread, and `n` says so).
        let one = summarize(&[0.4], 3);
        assert_eq!((one.n, one.ci_low, one.ci_high), (1, 0.4, 0.4));
        // Seeded: the same interval again.
        assert_eq!(summarize(&xs, 1), s);
    }

    #[test]
    fn a_paired_ratio_resamples_rounds_together() {
        // a is b / 2 in every round: every resample's ratio is 0.5.
        let b = [0.2, 0.4, 0.1, 0.3, 0.25];
        let a: Vec<f64> = b.iter().map(|x| x / 2.0).collect();
        let r = paired_ratio(&a, &b, 5).unwrap();
        assert!((r.median - 0.5).abs() < 1e-12);
        assert!((r.ci_low - 0.5).abs() < 1e-12 && (r.ci_high - 0.5).abs() < 1e-12);
        assert!((r.min - 0.5).abs() < 1e-12 && (r.max - 0.5).abs() < 1e-12);
        // No ratio against a baseline that never missed.
        assert_eq!(paired_ratio(&a, &[0.0; 5], 5), None);
        assert_eq!(paired_ratio(&a, &b[..4], 5), None);
    }
}
