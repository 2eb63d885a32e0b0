//! Plan, run the plan for real, and re-plan on what the runs measured: the
//! one loop behind `rtmdl plan --verify` and the demo's planning step.
//!
//! A try plans on the model (the caller's planner), runs the plan for real
//! in `rounds` rounds (the caller's run), and judges every task on the
//! median of its rounds ([`rtmdl_core::rounds`]): over its ζ when the
//! median is above ζ by more than the 95 % sampling error of a rate of ζ in
//! one round's jobs. A try with a task over ζ — or, where asked, one whose
//! model is pessimistic for a task while the plan gives accuracy away —
//! updates the model from the median round ([`crate::profile::refit_from_run`])
//! and plans again, at most `tries` times. The plan to keep is the verified
//! try with the least accuracy loss.
//!
//! Nothing here prints: each try is handed to the caller as it ends.

use rtmdl_core::rounds::{Summary, median, run_rounds, summarize};
use rtmdl_core::{Assignment, TaskSet, VariantChoice};

use crate::RealRun;

/// How to verify.
#[derive(Clone, Copy, Debug)]
pub struct VerifyOptions {
    /// At most this many plans (each followed by its real rounds).
    pub tries: usize,
    /// Real runs per try (≥ 1).
    pub rounds: usize,
    /// Seeds the bootstrap of the intervals.
    pub seed: u64,
    /// Also re-plan when the model predicts a task well above what it
    /// measured while the plan gives accuracy away (the demo: accuracy
    /// given away for nothing); `plan --verify` stops at the first plan
    /// that holds.
    pub refit_pessimistic: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            tries: 3,
            rounds: 1,
            seed: 1,
            refit_pessimistic: false,
        }
    }
}

/// What the planner hands the loop.
#[derive(Clone, Debug)]
pub struct Planned {
    pub assignments: Vec<Assignment>,
    /// Per task, the predicted miss rate (on fresh seeds).
    pub predicted: Vec<f64>,
    /// Every constraint met on the model.
    pub feasible: bool,
}

/// One task of a try: predicted next to measured over the rounds.
#[derive(Clone, Debug)]
pub struct Check {
    pub name: String,
    pub predicted: f64,
    /// The median over rounds of the measured miss rate.
    pub measured: f64,
    /// Median, spread and interval over the rounds.
    pub rounds: Summary,
    pub zeta: f64,
    /// 95 % sampling error of a rate of ζ in one round's jobs.
    pub error: f64,
}

impl Check {
    /// Measured above ζ beyond the sampling error.
    pub fn over(&self) -> bool {
        self.measured > self.zeta + self.error
    }

    /// The model predicts well above what was measured (by more than the
    /// sampling error and 2 points).
    pub fn pessimistic(&self) -> bool {
        self.predicted - self.measured > self.error.max(0.02)
    }
}

/// Every task judged on `runs` (the rounds of one plan); `predicted` per task.
pub fn checks(
    ts: &TaskSet,
    predicted: &[f64],
    runs: &[&rtmdl_core::RunReport],
    seed: u64,
) -> Vec<Check> {
    (0..ts.tasks.len())
        .map(|t| {
            let zeta = ts.tasks[t].max_miss_rate;
            let rates: Vec<f64> = runs.iter().map(|r| r.tasks[t].miss_rate).collect();
            let jobs = runs.iter().map(|r| r.tasks[t].jobs).min().unwrap_or(0);
            Check {
                name: ts.tasks[t].name.clone(),
                predicted: predicted.get(t).copied().unwrap_or(0.0),
                measured: median(&rates),
                rounds: summarize(&rates, seed ^ t as u64),
                zeta,
                error: 1.96 * (zeta * (1.0 - zeta) / jobs.max(1) as f64).sqrt(),
            }
        })
        .collect()
}

/// One plan and its real rounds.
#[derive(Debug)]
pub struct Try {
    pub planned: Planned,
    pub checks: Vec<Check>,
    /// Tasks over ζ, and tasks the model is pessimistic for (only where
    /// the plan gives accuracy away).
    pub over: Vec<String>,
    pub pessimistic: Vec<String>,
    /// The model updates made after it (none for the last try).
    pub refits: Vec<String>,
    /// The rounds' interference lines (the probe's), one per round.
    pub interference: Vec<String>,
    /// Within every ζ on the real rounds (and feasible on the model).
    pub verified: bool,
    pub accuracy_loss: f64,
}

/// The loop's result.
#[derive(Debug)]
pub struct Verification {
    pub tries: Vec<Try>,
    /// The try whose plan to keep: the verified one with the least
    /// accuracy loss; `None` when none was verified.
    pub chosen: Option<usize>,
}

/// Runs the loop on `model` (updated in place by the refits): `plan`
/// plans a task set, `run(assignments, round)` runs it for real once,
/// `seen` gets every try as it ends.
pub fn verify<E>(
    model: &mut TaskSet,
    opts: &VerifyOptions,
    mut plan: impl FnMut(&TaskSet, usize) -> Result<Planned, E>,
    mut run: impl FnMut(&[Assignment], usize) -> Result<RealRun, E>,
    mut seen: impl FnMut(&Try),
) -> Result<Verification, E> {
    let mut tries: Vec<Try> = Vec::new();
    for k in 0..opts.tries.max(1) {
        let planned = plan(model, k)?;
        let per_round = run_rounds(1, opts.rounds.max(1), opts.seed, |_, round| {
            run(&planned.assignments, round)
        })?;
        let runs = &per_round[0];
        let reports: Vec<&rtmdl_core::RunReport> = runs.iter().map(|r| &r.report).collect();
        let checks = checks(model, &planned.predicted, &reports, opts.seed);
        let accuracy_loss = model.accuracy_loss(&planned.assignments);
        let gives_away = accuracy_loss > 0.0;
        let over: Vec<String> = checks
            .iter()
            .filter(|c| c.over())
            .map(|c| c.name.clone())
            .collect();
        let pessimistic: Vec<String> = checks
            .iter()
            .filter(|c| gives_away && !c.over() && c.pessimistic())
            .map(|c| c.name.clone())
            .collect();
        let verified = over.is_empty() && planned.feasible;
        let done = (verified && (pessimistic.is_empty() || !opts.refit_pessimistic))
            || k + 1 == opts.tries.max(1);
        let mut refits = Vec::new();
        if !done {
            // Refit from the round whose worst task is the median one.
            let worst = |r: &RealRun| {
                r.report
                    .tasks
                    .iter()
                    .map(|t| t.miss_rate)
                    .fold(0.0, f64::max)
            };
            let mut order: Vec<usize> = (0..runs.len()).collect();
            order.sort_by(|&a, &b| worst(&runs[a]).total_cmp(&worst(&runs[b])));
            let mid = &runs[order[order.len() / 2]];
            let assign = model
                .with_assignments(&planned.assignments)
                .assignments(VariantChoice::Plan);
            refits = crate::profile::refit_from_run(model, &assign, &mid.outcome);
        }
        let t = Try {
            interference: runs
                .iter()
                .filter_map(|r| r.report.interference.as_ref().map(|i| i.summary()))
                .collect(),
            planned,
            checks,
            over,
            pessimistic,
            refits,
            verified,
            accuracy_loss,
        };
        seen(&t);
        tries.push(t);
        if done {
            break;
        }
    }
    let chosen = tries
        .iter()
        .enumerate()
        .filter(|(_, t)| t.verified)
        .min_by(|a, b| a.1.accuracy_loss.total_cmp(&b.1.accuracy_loss))
        .map(|(i, _)| i);
    Ok(Verification { tries, chosen })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(measured: f64, zeta: f64, jobs: f64) -> Check {
        Check {
            name: "t".into(),
            predicted: 0.0,
            measured,
            rounds: Summary::default(),
            zeta,
            error: 1.96 * (zeta * (1.0 - zeta) / jobs).sqrt(),
        }
    }

    #[test]
    fn over_means_above_zeta_beyond_the_sampling_error() {
        // ζ 5 % over 100 jobs: the 95 % error of a rate of ζ is 4.27 pp.
        let c = check(0.09, 0.05, 100.0);
        assert!((c.error - 0.0427).abs() < 1e-4, "{}", c.error);
        assert!(!c.over(), "9 % is within 5 % ± 4.27");
        assert!(check(0.0928, 0.05, 100.0).over());
        // More jobs, a tighter error: 9 % of 1000 jobs is over.
        assert!(check(0.09, 0.05, 1000.0).over());
        // ζ = 0 has no error band: one miss in any number of jobs is over.
        let zero = check(0.0001, 0.0, 10_000.0);
        assert_eq!(zero.error, 0.0);
        assert!(zero.over());
        assert!(!check(0.0, 0.0, 10.0).over());
    }

    #[test]
    fn pessimistic_means_predicted_above_measured_by_the_error_and_two_points() {
        let mut c = check(0.01, 0.05, 100.0);
        c.predicted = 0.05;
        assert!(!c.pessimistic(), "4 pp is within the 4.27 pp error");
        c.predicted = 0.06;
        assert!(c.pessimistic());
        let mut tight = check(0.0, 0.05, 1_000_000.0);
        tight.predicted = 0.019;
        assert!(!tight.pessimistic(), "below 2 points is never pessimistic");
    }
}
