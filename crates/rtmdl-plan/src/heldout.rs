//! Plans judged on fresh seeds. The search picks among thousands of
//! candidates on its own seeds, so the plan it returns tends to be the one
//! whose noise happened to be kind (the winner's curse): its in-sample
//! miss rates are optimistic. The prediction people read, the feasibility
//! verdict and the comparison with the baselines come from seeds the search
//! never saw, over a horizon long enough to estimate a rate within about a
//! percentage point, with a confidence interval from batch means (one batch
//! per seed: misses come in bursts, so jobs are not independent).

use rtmdl_core::policy::Rtmdl;
use rtmdl_core::{Assignment, SimOptions, TaskSet, Time, simulate_with};
use serde::Serialize;

/// Fresh seeds start here (the search's seeds are small numbers).
pub const FRESH_SEED: u64 = 1_000_000;
/// Fresh seeds per evaluation.
pub const SEEDS: u64 = 10;
/// Jobs of the slowest task per seed: with 10 seeds, 2000 jobs, so a 5 %
/// rate is estimated within about ±1 percentage point (binomial 95 %).
pub const JOBS_PER_SEED: u64 = 200;

/// Per task, the miss rate on fresh seeds and its 95 % half-width.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HeldOut {
    pub dmr: Vec<f64>,
    pub ci: Vec<f64>,
    pub seeds: u64,
    pub horizon: Time,
}

impl HeldOut {
    /// Whether every task's fresh estimate is within its ζ.
    pub fn feasible(&self, ts: &TaskSet) -> bool {
        self.dmr
            .iter()
            .zip(&ts.tasks)
            .all(|(d, t)| *d <= t.max_miss_rate)
    }
}

/// The horizon of a held-out evaluation: [`JOBS_PER_SEED`] periods of the
/// slowest task, and at least `min`.
pub fn horizon(ts: &TaskSet, min: Time) -> Time {
    let slowest = ts.tasks.iter().map(|t| t.period).max().unwrap_or(1);
    (slowest * JOBS_PER_SEED).max(min)
}

/// Simulate the plan (rtmdl policy) on [`SEEDS`] fresh seeds.
pub fn evaluate(ts: &TaskSet, assign: &[Assignment], horizon: Time) -> HeldOut {
    let n = ts.tasks.len();
    let mut per_seed: Vec<Vec<(u64, u64)>> = vec![Vec::new(); n];
    for s in 0..SEEDS {
        let out = simulate_with(
            ts,
            assign,
            Box::new(Rtmdl {
                priority: assign.iter().map(|a| a.priority).collect(),
            }),
            SimOptions {
                duration: horizon,
                seed: FRESH_SEED + s,
                ..Default::default()
            },
            &mut (),
        );
        for (t, c) in out.counters.iter().enumerate() {
            per_seed[t].push((c.not_on_time(), c.released));
        }
    }
    let (dmr, ci) = per_seed.iter().map(|b| batch_means(b)).unzip();
    HeldOut {
        dmr,
        ci,
        seeds: SEEDS,
        horizon,
    }
}

/// Pooled rate of (misses, jobs) batches and the 95 % half-width of the
/// mean of the batch rates (Student's t).
fn batch_means(batches: &[(u64, u64)]) -> (f64, f64) {
    let (m, j) = batches
        .iter()
        .fold((0, 0), |(m, j), &(bm, bj)| (m + bm, j + bj));
    let pooled = if j == 0 { 0.0 } else { m as f64 / j as f64 };
    let rates: Vec<f64> = batches
        .iter()
        .filter(|b| b.1 > 0)
        .map(|&(m, j)| m as f64 / j as f64)
        .collect();
    let k = rates.len();
    if k < 2 {
        return (pooled, f64::NAN);
    }
    let mean = rates.iter().sum::<f64>() / k as f64;
    let var = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (k - 1) as f64;
    // Two-sided 95 % t quantiles for k − 1 degrees of freedom.
    const T: [f64; 10] = [12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23];
    let t = T.get(k - 2).copied().unwrap_or(1.96);
    (pooled, t * (var / k as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_means_pool_the_rate_and_widen_with_spread() {
        let (r, ci) = batch_means(&[(5, 100), (5, 100), (5, 100)]);
        assert!((r - 0.05).abs() < 1e-12 && ci.abs() < 1e-12, "{r} ± {ci}");
        let (r, ci) = batch_means(&[(0, 100), (10, 100)]);
        assert!((r - 0.05).abs() < 1e-12);
        assert!(ci > 0.5, "two very different batches: wide interval, {ci}");
    }
}
