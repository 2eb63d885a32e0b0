//! rtmdl's planner: for every task, a model variant and a priority, so that
//! every task's predicted deadline-miss rate stays within its ζ, the
//! variants fit the storage budget, and the accuracy given up is as small
//! as possible.
//!
//! The miss-rate proxy is the simulator itself ([`problem::Problem::dmr`]),
//! so plans are judged by the same scheduler core the runtime uses. Tasks
//! that tolerate no miss (every task under `--hard`, and tasks with ζ = 0)
//! are judged by `rtmdl-analysis`'s response-time bound instead, in the same
//! search ([`problem::Guarantee`]). Two searches: NSGA-II ([`search::moea`])
//! for any size, and an exact search ([`search::exact`]) for small sets,
//! used to check the first.

pub mod heldout;
pub mod problem;
pub mod search;

use rtmdl_core::units::fmt_size;
use rtmdl_core::{Assignment, TaskSet};

pub use problem::{Evaluation, Guarantee, Problem, ProxyOptions};
pub use search::{Genome, MoeaOptions, Scored, SearchResult, TooLarge};

/// Which search to run.
#[derive(Clone, Debug)]
pub enum Method {
    Moea(MoeaOptions),
    /// Exhaustive, refused above this many (variant choice × order) candidates.
    Exact {
        limit: f64,
    },
}

/// A finished plan.
pub struct PlanOutcome {
    pub assignments: Vec<Assignment>,
    /// The search's own evaluation (its seeds: optimistic).
    pub eval: Evaluation,
    /// The plan on fresh seeds: the prediction to quote.
    pub held_out: heldout::HeldOut,
    /// Every constraint met, the miss rates judged on fresh seeds.
    pub feasible: bool,
    /// Search rounds: a plan that breaks a ζ on fresh seeds is searched
    /// again with that task's ζ tightened by the excess (at most 3 rounds).
    pub rounds: usize,
    /// When infeasible: which constraints cannot be met, one per line.
    pub diagnosis: Vec<String>,
    pub front: Vec<Scored>,
    pub evaluations: usize,
    pub simulations: u64,
}

/// Why the planner refused a task set.
#[derive(Clone, Debug, PartialEq)]
pub enum PlanError {
    /// Too many candidates for the exact search.
    TooLarge(TooLarge),
    /// A task must be judged by the response-time bound (`--hard`, or
    /// ζ = 0) but the analysis cannot bound this set.
    Unanalysable(rtmdl_analysis::Refusal),
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanError::TooLarge(e) => write!(
                f,
                "the set is too large for --exact ({:.0} candidates > {:.0}); drop --exact to use the evolutionary search",
                e.candidates, e.limit
            ),
            PlanError::Unanalysable(e) => write!(
                f,
                "no guarantee possible: {e} (tasks under --hard, and tasks with max_miss_rate = 0, are planned by the response-time bound)"
            ),
        }
    }
}

impl std::error::Error for PlanError {}

impl From<TooLarge> for PlanError {
    fn from(e: TooLarge) -> Self {
        PlanError::TooLarge(e)
    }
}

/// Plan a task set: search on the proxy's seeds, then judge the plan on
/// fresh ones ([`heldout`]); where it breaks a ζ there, search again with
/// that ζ tightened by the excess.
pub fn plan(
    ts: &TaskSet,
    proxy: ProxyOptions,
    method: &Method,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<PlanOutcome, PlanError> {
    let first = Problem::new(ts, proxy.clone());
    if (0..ts.tasks.len()).any(|t| first.by_bound(t)) {
        rtmdl_analysis::check(ts, &first.analysis_options()).map_err(PlanError::Unanalysable)?;
    }
    drop(first);
    let horizon = heldout::horizon(ts, proxy.horizon);
    let mut target = ts.clone();
    let mut simulations = 0;
    let mut evaluations = 0;
    for round in 1..=3 {
        let p = Problem::new(&target, proxy.clone());
        let r = match method {
            Method::Moea(o) => search::moea(&p, o, progress),
            Method::Exact { limit } => search::exact(&p, *limit, progress)?,
        };
        simulations += p.simulations.load(std::sync::atomic::Ordering::Relaxed);
        evaluations += r.evaluations;
        let assignments = r.best.genome.assignments();
        let held_out = heldout::evaluate(ts, &assignments, horizon);
        let in_sample = r.best.eval.feasible();
        let fresh = held_out.feasible(ts);
        if !in_sample || fresh || round == 3 {
            let feasible = in_sample && fresh;
            let diagnosis = if feasible {
                Vec::new()
            } else {
                diagnose_held_out(&p, &r.best, &held_out, ts)
            };
            return Ok(PlanOutcome {
                assignments,
                eval: r.best.eval.clone(),
                held_out,
                feasible,
                rounds: round,
                diagnosis,
                front: r.front,
                evaluations,
                simulations,
            });
        }
        // Tighten each ζ the fresh seeds broke by what they broke it by.
        for (t, task) in target.tasks.iter_mut().enumerate() {
            let excess = held_out.dmr[t] - ts.tasks[t].max_miss_rate;
            if excess > 0.0 {
                task.max_miss_rate = (task.max_miss_rate - excess).max(0.0);
            }
        }
    }
    unreachable!("the last round returns")
}

/// [`diagnose`], with the miss rates judged on fresh seeds.
fn diagnose_held_out(
    p: &Problem,
    closest: &Scored,
    held_out: &heldout::HeldOut,
    ts: &TaskSet,
) -> Vec<String> {
    let mut fresh = closest.clone();
    fresh.eval.dmr = held_out.dmr.clone();
    let mut out = diagnose(&Problem::new(ts, p.opts.clone()), &fresh);
    if out.iter().all(|l| l.starts_with("no plan met")) && closest.eval.feasible() {
        out = vec![
            "the plan meets every ζ on the search's seeds but not on fresh ones, even after tightening: the set is at the edge of its capacity".into(),
        ];
    }
    out
}

/// Name the constraints no plan can meet, or those the closest plan breaks.
pub fn diagnose(p: &Problem, closest: &Scored) -> Vec<String> {
    let ts = p.ts;
    let mut out = Vec::new();
    for (t, task) in ts.tasks.iter().enumerate() {
        let m = ts.model_of(t);
        if m.max_accuracy() < task.min_accuracy {
            out.push(format!(
                "accuracy: task `{}` needs min_accuracy {:.3} but its best variant reaches {:.3}",
                task.name,
                task.min_accuracy,
                m.max_accuracy()
            ));
        }
    }
    if let Some(budget) = ts.platform.storage_budget {
        // The least storage any floor-meeting choice needs (per task, the
        // smallest floor-meeting variant; shared parts counted once).
        let smallest: Vec<Assignment> = (0..ts.tasks.len())
            .map(|t| {
                let m = ts.model_of(t);
                let v = (0..m.variants.len())
                    .filter(|&v| m.variants[v].accuracy >= ts.tasks[t].min_accuracy)
                    .min_by_key(|&v| m.storage([v]))
                    .unwrap_or(0);
                Assignment {
                    variant: v,
                    priority: 1,
                }
            })
            .collect();
        let need = ts.storage(&smallest);
        if need > budget {
            out.push(format!(
                "storage: the smallest variants that meet the accuracy floors need {} > budget {}",
                fmt_size(need),
                fmt_size(budget)
            ));
        }
    }
    let hard = p.opts.hard;
    for (t, d) in closest.eval.dmr.iter().enumerate() {
        if p.by_bound(t) {
            let task = &ts.tasks[t];
            if *d > 0.0 {
                let deadline = task.deadline.min(task.period);
                out.push(match closest.eval.bound[t] {
                    Some(b) => format!(
                        "deadline bound: task `{}` has a response-time bound of {:.2} ms > {} {:.2} ms even in the closest plan",
                        task.name,
                        b as f64 / 1e6,
                        if deadline < task.deadline { "period" } else { "deadline" },
                        deadline as f64 / 1e6
                    ),
                    None => format!(
                        "deadline bound: task `{}` has no response-time bound even in the closest plan (see `rtmdl analyze`)",
                        task.name
                    ),
                });
            }
            continue;
        }
        let zeta = if hard { 0.0 } else { ts.tasks[t].max_miss_rate };
        if *d > zeta {
            out.push(format!(
                "deadline misses: task `{}` is predicted to miss {:.2} % of its jobs > ζ {:.2} %{} even in the closest plan",
                ts.tasks[t].name,
                d * 100.0,
                zeta * 100.0,
                if hard { " (hard mode)" } else { "" }
            ));
        }
    }
    if out.is_empty() {
        out.push(format!(
            "no plan met every constraint (closest violation {:.4})",
            closest.eval.violation
        ));
    }
    out
}
