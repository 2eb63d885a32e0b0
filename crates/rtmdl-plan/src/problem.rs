//! The planning problem and its miss-rate proxy.
//!
//! Decision per task: (variant, priority). Minimise Σᵢ (accmaxᵢ − accᵢ) /
//! accmaxᵢ subject to predicted DMRᵢ ≤ ζᵢ, accᵢ ≥ min_accuracyᵢ and the
//! storage of the chosen variants ≤ budget. The predicted DMR comes from
//! the simulator itself (the same scheduler core as the runtime) under the
//! `rtmdl` policy, over a fixed horizon and several seeds, cached by
//! decision.
//!
//! Tasks that tolerate no miss — every task under `hard`, and tasks with
//! ζ = 0 — are judged by the response-time bound of `rtmdl-analysis`
//! instead ([`Guarantee::Bound`]): their constraint is bound ≤ deadline (and
//! ≤ period under `skip` and `firm`), with violation (bound − deadline) /
//! deadline, in the same search as the soft tasks' simulated rates.

use std::collections::HashMap;
use std::sync::Mutex;

use rtmdl_core::policy::Rtmdl;
use rtmdl_core::{Assignment, ExecProfile, SimOptions, TaskCounters, TaskSet, Time, simulate_with};

/// How the proxy simulates a candidate plan.
#[derive(Clone, Debug)]
pub struct ProxyOptions {
    /// Simulated release window per seed.
    pub horizon: Time,
    /// Seeds per evaluation; DMR is pooled over them.
    pub seeds: u64,
    /// First seed.
    pub seed: u64,
    /// Every task must meet every deadline (`--hard`), not only those
    /// with ζ = 0.
    pub hard: bool,
    /// How tasks that tolerate no miss are judged.
    pub guarantee: Guarantee,
}

/// How the planner judges a task that tolerates no miss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Guarantee {
    /// The response-time bound (WCET = profile max × `margin`) must be
    /// within the deadline: a guarantee, under the analysis's assumptions.
    Bound { margin: f64 },
    /// No miss in the sampled runs nor in one run with every time at its
    /// profile's maximum. A heuristic, **not** a guarantee: non-preemptive
    /// scheduling has anomalies (a shorter time can make another task
    /// miss), and one phasing is tried. Kept to compare with.
    NoSimulatedMiss,
}

impl Default for Guarantee {
    fn default() -> Self {
        Guarantee::Bound { margin: 1.0 }
    }
}

impl ProxyOptions {
    /// A horizon of a few hyperperiods, at least 50 periods of the slowest
    /// task (fewer jobs make the predicted rates too noisy to trust), capped
    /// at `cap`; three seeds.
    pub fn default_for(ts: &TaskSet, cap: Time) -> ProxyOptions {
        let max_period = ts.tasks.iter().map(|t| t.period).max().unwrap_or(1);
        let hyper = ts.hyperperiod(cap);
        ProxyOptions {
            horizon: (3 * hyper).max(50 * max_period).min(cap.max(max_period)),
            seeds: 3,
            seed: 1,
            hard: false,
            guarantee: Guarantee::default(),
        }
    }
}

/// What one plan is predicted to do.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Per task, the predicted miss rate. For a task judged by the bound:
    /// 0 where the bound guarantees its deadlines, 1 where it does not.
    pub dmr: Vec<f64>,
    /// Per task judged by the bound, the bound (`None`: the analysis has
    /// none); `None` for the others.
    pub bound: Vec<Option<Time>>,
    /// Σ normalised accuracy loss.
    pub loss: f64,
    /// Worst constraint violation (0 = feasible): the largest of
    /// DMRᵢ − ζᵢ (or (boundᵢ − deadlineᵢ) / deadlineᵢ for a task judged by
    /// the bound, [`UNBOUNDED`] without a bound), the accuracy-floor
    /// shortfall and the storage excess as a fraction of the budget.
    pub violation: f64,
    pub storage: u64,
}

impl Evaluation {
    pub fn feasible(&self) -> bool {
        self.violation <= 0.0
    }
}

/// The violation of a task judged by the bound that has no bound.
pub const UNBOUNDED: f64 = 10.0;

/// The problem with its cached proxy.
pub struct Problem<'a> {
    pub ts: &'a TaskSet,
    /// The same set with every sub-task at its profile's maximum, for
    /// [`Guarantee::NoSimulatedMiss`].
    worst_case: TaskSet,
    pub opts: ProxyOptions,
    cache: Mutex<HashMap<Vec<Assignment>, Vec<f64>>>,
    /// Simulations run (cache misses).
    pub simulations: std::sync::atomic::AtomicU64,
}

impl<'a> Problem<'a> {
    pub fn new(ts: &'a TaskSet, opts: ProxyOptions) -> Self {
        let mut worst_case = ts.clone();
        for m in &mut worst_case.models {
            for v in &mut m.variants {
                for t in &mut v.times {
                    *t = ExecProfile::Fixed(t.max());
                }
            }
        }
        Problem {
            ts,
            worst_case,
            opts,
            cache: Mutex::new(HashMap::new()),
            simulations: 0.into(),
        }
    }

    /// Σ (accmax − acc)/accmax of a choice of variants.
    pub fn loss(&self, variants: &[usize]) -> f64 {
        variants
            .iter()
            .enumerate()
            .map(|(t, &v)| {
                let m = self.ts.model_of(t);
                let max = m.max_accuracy();
                if max > 0.0 {
                    (max - m.variants[v].accuracy) / max
                } else {
                    0.0
                }
            })
            .sum()
    }

    /// Violations that do not need a simulation: accuracy floors and storage.
    pub fn static_violation(&self, variants: &[usize]) -> f64 {
        let mut worst: f64 = 0.0;
        for (t, &v) in variants.iter().enumerate() {
            let acc = self.ts.model_of(t).variants[v].accuracy;
            worst = worst.max(self.ts.tasks[t].min_accuracy - acc);
        }
        if let Some(budget) = self.ts.platform.storage_budget {
            let assign: Vec<Assignment> = variants
                .iter()
                .map(|&v| Assignment {
                    variant: v,
                    priority: 1,
                })
                .collect();
            let s = self.ts.storage(&assign);
            if s > budget {
                worst = worst.max((s - budget) as f64 / budget.max(1) as f64);
            }
        }
        worst
    }

    /// Predicted miss rate per task (cached).
    pub fn dmr(&self, assign: &[Assignment]) -> Vec<f64> {
        if let Some(d) = self.cache.lock().ok().and_then(|c| c.get(assign).cloned()) {
            return d;
        }
        self.simulations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let n = self.ts.tasks.len();
        let run = |ts: &TaskSet, horizon: Time, seed: u64| -> Vec<TaskCounters> {
            simulate_with(
                ts,
                assign,
                Box::new(Rtmdl {
                    priority: assign.iter().map(|a| a.priority).collect(),
                }),
                SimOptions {
                    duration: horizon,
                    seed,
                    ..Default::default()
                },
                &mut (),
            )
            .counters
        };
        let rate = |c: &TaskCounters| {
            if c.released == 0 {
                0.0
            } else {
                c.not_on_time() as f64 / c.released as f64
            }
        };
        // Screen on a fifth of the horizon: a candidate that already breaks
        // a ζ by a wide margin is judged on that; only plausible ones pay
        // for the full horizon and every seed.
        let screened = run(self.ts, (self.opts.horizon / 5).max(1), self.opts.seed);
        if screened
            .iter()
            .enumerate()
            .any(|(t, c)| rate(c) > self.ts.tasks[t].max_miss_rate + 0.1)
        {
            let d: Vec<f64> = screened.iter().map(rate).collect();
            if let Ok(mut c) = self.cache.lock() {
                c.insert(assign.to_vec(), d.clone());
            }
            return d;
        }
        let (mut missed, mut jobs) = (vec![0u64; n], vec![0u64; n]);
        for s in 0..self.opts.seeds.max(1) {
            for (t, c) in run(self.ts, self.opts.horizon, self.opts.seed.wrapping_add(s))
                .iter()
                .enumerate()
            {
                missed[t] += c.not_on_time();
                jobs[t] += c.released;
            }
        }
        let mut d: Vec<f64> = missed
            .iter()
            .zip(&jobs)
            .map(|(&m, &j)| if j == 0 { 0.0 } else { m as f64 / j as f64 })
            .collect();
        let strict: Vec<usize> = (0..n).filter(|&t| self.strict(t)).collect();
        if self.opts.guarantee == Guarantee::NoSimulatedMiss && !strict.is_empty() {
            let worst = run(&self.worst_case, self.opts.horizon, self.opts.seed);
            for t in strict {
                d[t] = d[t].max(rate(&worst[t]));
            }
        }
        if let Ok(mut c) = self.cache.lock() {
            c.insert(assign.to_vec(), d.clone());
        }
        d
    }

    /// Whether task `t` tolerates no miss: every task under `hard`, and
    /// tasks with ζ = 0.
    pub fn strict(&self, t: usize) -> bool {
        self.opts.hard || self.ts.tasks[t].max_miss_rate == 0.0
    }

    /// Whether task `t` is judged by the response-time bound.
    pub fn by_bound(&self, t: usize) -> bool {
        matches!(self.opts.guarantee, Guarantee::Bound { .. }) && self.strict(t)
    }

    /// The analysis's options for the bound.
    pub fn analysis_options(&self) -> rtmdl_analysis::Options {
        let margin = match self.opts.guarantee {
            Guarantee::Bound { margin } => margin,
            Guarantee::NoSimulatedMiss => 1.0,
        };
        rtmdl_analysis::Options {
            margin,
            ..Default::default()
        }
    }

    /// Evaluate a full decision.
    pub fn evaluate(&self, assign: &[Assignment]) -> Evaluation {
        let n = self.ts.tasks.len();
        let variants: Vec<usize> = assign.iter().map(|a| a.variant).collect();
        let judged: Vec<usize> = (0..n).filter(|&t| self.by_bound(t)).collect();
        // Simulate only for the tasks the bound does not judge.
        let mut dmr = if judged.len() == n {
            vec![0.0; n]
        } else {
            self.dmr(assign)
        };
        let mut violation = self.static_violation(&variants);
        for t in (0..n).filter(|&t| !self.by_bound(t)) {
            let zeta = if self.opts.hard {
                0.0
            } else {
                self.ts.tasks[t].max_miss_rate
            };
            violation = violation.max(dmr[t] - zeta);
        }
        let mut bound = vec![None; n];
        if !judged.is_empty() {
            let analysis = rtmdl_analysis::analyze(self.ts, assign, &self.analysis_options());
            for &t in &judged {
                let tb = analysis.as_ref().ok().map(|a| &a.tasks[t]);
                bound[t] = tb.and_then(|b| b.bound_ns);
                let ok = tb.is_some_and(|b| b.schedulable);
                dmr[t] = if ok { 0.0 } else { 1.0 };
                let task = &self.ts.tasks[t];
                let deadline = task.deadline.min(task.period).max(1) as f64;
                let v = match bound[t] {
                    _ if ok => 0.0,
                    Some(b) => ((b as f64 - deadline) / deadline).max(1e-9),
                    None => UNBOUNDED,
                };
                violation = violation.max(v);
            }
        }
        Evaluation {
            loss: self.loss(&variants),
            storage: self.ts.storage(assign),
            dmr,
            bound,
            violation,
        }
    }

    /// Necessary condition for any priority order to meet the ζs with
    /// these variants: the work of the jobs that must complete fits each
    /// resource's capacity (means of the profiles).
    pub fn may_fit(&self, variants: &[usize]) -> bool {
        let ts = self.ts;
        let (mut cpu, mut gpu) = (0.0, 0.0);
        for (t, &v) in variants.iter().enumerate() {
            let task = &ts.tasks[t];
            let keep = if self.opts.hard {
                1.0
            } else {
                1.0 - task.max_miss_rate
            };
            let m = ts.model_of(t);
            for (s, stage) in m.stages.iter().enumerate() {
                let u = keep * m.variants[v].times[s].mean() / task.period as f64;
                match stage.on {
                    rtmdl_core::Resource::Cpu => cpu += u,
                    rtmdl_core::Resource::Gpu => gpu += u,
                }
            }
        }
        let p = &ts.platform;
        let gpu_cap = (1..=p.gpu_lanes)
            .map(|n| n as f64 / p.slowdown(n))
            .fold(0.0, f64::max);
        cpu <= p.cpu_workers as f64 + 1e-9 && gpu <= gpu_cap + 1e-9
    }
}
