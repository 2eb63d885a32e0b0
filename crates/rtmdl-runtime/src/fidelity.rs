//! `rtmdl fidelity`: does the simulator predict the real runs? At each
//! load (every release rate × load), for each policy, real runs in
//! interleaved rounds ([`rtmdl_core::rounds`]) and the simulation of the
//! same config, profile, policy, seed and length, task by task: the median
//! miss rate and response-time percentiles over rounds with their spread
//! and interval, measured next to predicted, and what the interference
//! probe saw in each run.

use std::sync::Arc;

use rtmdl_config::Config;
use rtmdl_core::rounds::{self, Summary};
use rtmdl_core::{PolicyKind, RunReport, Time, VariantChoice};
use rtmdl_engine::Engine;
use serde::{Deserialize, Serialize};

use crate::{RunOptions, RuntimeError, run_config};

/// One row of the comparison: a label, a policy and its variants.
#[derive(Clone, Debug)]
pub struct Row {
    pub label: String,
    pub policy: PolicyKind,
    pub variants: VariantChoice,
}

/// What to sweep.
#[derive(Clone, Debug)]
pub struct FidelityOptions {
    /// Release-rate multipliers (periods ÷ load).
    pub loads: Vec<f64>,
    pub rows: Vec<Row>,
    /// Length of each real run and simulation.
    pub duration: Time,
    pub seed: u64,
    pub realtime: bool,
    pub threads: usize,
    /// Real runs per point, interleaved (at least 1).
    pub rounds: usize,
    /// The interference probe beside each real run.
    pub probe: Option<crate::probe::ProbeOptions>,
    /// Split each run's misses by cause, real next to simulated
    /// ([`rtmdl_core::why`]), for the points off the goal.
    pub why: bool,
}

/// The fidelity goal of a point: |median real − simulated| miss rate at
/// most this, ...
pub const GOAL_GAP: f64 = 0.03;
/// ... and the median p99 ratio real / simulated within this range.
pub const GOAL_RATIO: (f64, f64) = (0.8, 1.25);

/// One task at one load under one policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub load: f64,
    pub policy: String,
    pub task: String,
    /// Jobs of one real run (the median over rounds).
    pub jobs_real: u64,
    /// Medians over rounds.
    pub miss_real: f64,
    pub miss_sim: f64,
    pub p50_real_ms: f64,
    pub p50_sim_ms: f64,
    pub p99_real_ms: f64,
    pub p99_sim_ms: f64,
    /// The real miss rate and p99 over rounds: median, min–max and the
    /// bootstrap interval of the median.
    #[serde(default)]
    pub miss_rounds: Summary,
    #[serde(default)]
    pub p99_rounds: Summary,
}

impl Point {
    /// Real p99 over simulated p99 (1 when both are empty).
    pub fn p99_ratio(&self) -> f64 {
        if self.p99_sim_ms > 0.0 {
            self.p99_real_ms / self.p99_sim_ms
        } else if self.p99_real_ms > 0.0 {
            f64::INFINITY
        } else {
            1.0
        }
    }

    /// |real − simulated| miss rate.
    pub fn miss_gap(&self) -> f64 {
        (self.miss_real - self.miss_sim).abs()
    }

    /// Whether the point meets the fidelity goal ([`GOAL_GAP`],
    /// [`GOAL_RATIO`]).
    pub fn meets_goal(&self) -> bool {
        let r = self.p99_ratio();
        self.miss_gap() <= GOAL_GAP && r >= GOAL_RATIO.0 && r <= GOAL_RATIO.1
    }
}

/// The whole sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fidelity {
    pub config: String,
    pub engine: String,
    pub duration_s: f64,
    /// Real runs per point.
    #[serde(default)]
    pub rounds: usize,
    pub points: Vec<Point>,
    pub max_miss_gap: f64,
    pub p99_ratio_min: f64,
    pub p99_ratio_max: f64,
    /// Every real run's report, with its prediction beside each task.
    pub runs: Vec<RunReport>,
}

/// Run the sweep: every (load, row) arm once per round, the arms of a round
/// in [`rounds::order`]. `cfg.taskset` carries the times the simulator
/// uses (a profile applied); `progress(done, total, what)` is called before
/// each real run.
pub fn fidelity(
    cfg: &Config,
    engine: Arc<dyn Engine>,
    opts: &FidelityOptions,
    progress: &mut dyn FnMut(u64, u64, &str),
) -> Result<Fidelity, RuntimeError> {
    let rounds = opts.rounds.max(1);
    let arms: Vec<(f64, &Row)> = opts
        .loads
        .iter()
        .flat_map(|&l| opts.rows.iter().map(move |r| (l, r)))
        .collect();
    let at_load: Vec<Config> = opts
        .loads
        .iter()
        .map(|&load| {
            let mut c = cfg.clone();
            c.taskset = cfg.taskset.scale_rates(load, None);
            c
        })
        .collect();
    let total = (arms.len() * rounds) as u64;
    let mut done = 0;
    let per_arm = rounds::run_rounds(arms.len(), rounds, opts.seed, |arm, round| {
        let (load, row) = arms[arm];
        progress(
            done,
            total,
            &format!("round {}/{rounds} · load {load} {}", round + 1, row.label),
        );
        done += 1;
        let li = arm / opts.rows.len();
        let mut report = measure(&at_load[li], row, engine.clone(), opts)?;
        report.notes.insert("round".into(), (round + 1).to_string());
        report.notes.insert("load".into(), load.to_string());
        Ok(report)
    })?;
    progress(total, total, "done");
    let mut points = Vec::new();
    for (arm, reports) in per_arm.iter().enumerate() {
        let (load, row) = arms[arm];
        points.extend(arm_points(
            load,
            &row.label,
            reports,
            opts.seed ^ arm as u64,
        ));
    }
    let ratios = points.iter().map(Point::p99_ratio);
    Ok(Fidelity {
        config: cfg.path.display().to_string(),
        engine: format!("{} {}", engine.name(), engine.version()),
        duration_s: opts.duration as f64 / 1e9,
        rounds,
        max_miss_gap: points.iter().map(Point::miss_gap).fold(0.0, f64::max),
        p99_ratio_min: ratios.clone().fold(f64::INFINITY, f64::min),
        p99_ratio_max: ratios.fold(0.0, f64::max),
        points,
        runs: per_arm.into_iter().flatten().collect(),
    })
}

/// One point per task of an arm, from its rounds' reports.
fn arm_points(load: f64, label: &str, reports: &[RunReport], seed: u64) -> Vec<Point> {
    let Some(first) = reports.first() else {
        return Vec::new();
    };
    (0..first.tasks.len())
        .map(|t| {
            let of = |f: &dyn Fn(&rtmdl_core::TaskReport) -> f64| -> Vec<f64> {
                reports.iter().map(|r| f(&r.tasks[t])).collect()
            };
            let miss = of(&|x| x.miss_rate);
            let p99 = of(&|x| x.response_ms.p99);
            let pred = |f: &dyn Fn(&rtmdl_core::Predicted) -> f64| {
                rounds::median(&of(&|x| x.predicted.map_or(0.0, |p| f(&p))))
            };
            Point {
                load,
                policy: label.to_string(),
                task: first.tasks[t].name.clone(),
                jobs_real: rounds::median(&of(&|x| x.jobs as f64)) as u64,
                miss_real: rounds::median(&miss),
                miss_sim: pred(&|p| p.miss_rate),
                p50_real_ms: rounds::median(&of(&|x| x.response_ms.p50)),
                p50_sim_ms: pred(&|p| p.response_ms.p50),
                p99_real_ms: rounds::median(&p99),
                p99_sim_ms: pred(&|p| p.response_ms.p99),
                miss_rounds: rounds::summarize(&miss, seed ^ ((t as u64) << 8)),
                p99_rounds: rounds::summarize(&p99, seed ^ ((t as u64) << 16)),
            }
        })
        .collect()
}

/// One real run of `row` (its report carries the simulator's prediction).
fn measure(
    cfg: &Config,
    row: &Row,
    engine: Arc<dyn Engine>,
    opts: &FidelityOptions,
) -> Result<RunReport, RuntimeError> {
    let run_opts = RunOptions {
        duration: opts.duration,
        realtime: opts.realtime,
        probe: opts.probe,
        why: opts.why,
        ..Default::default()
    };
    let real = run_config(
        cfg,
        row.policy,
        row.variants,
        engine,
        opts.threads,
        &run_opts,
        opts.seed,
    )?;
    let mut report = real.report;
    report.notes.insert("label".into(), row.label.clone());
    Ok(report)
}

impl Fidelity {
    /// The table people read: one line per point, then the summary.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let w = self
            .points
            .iter()
            .map(|p| p.task.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let mut s = format!(
            "{:>5}  {:<11}  {:<w$}  {:>6}  {:>22}  {:>9}  {:>7}  {:>9}  {:>9}  {:>9}  {:>9}  {:>6}\n",
            "load",
            "policy",
            "task",
            "jobs",
            "miss real % [95% CI]",
            "miss sim",
            "gap pp",
            "p50 real",
            "p50 sim",
            "p99 real",
            "p99 sim",
            "ratio"
        );
        for p in &self.points {
            let _ = writeln!(
                s,
                "{:>5.2}  {:<11}  {:<w$}  {:>6}  {:>22}  {:>8.2}%  {:>7.2}  {:>9.3}  {:>9.3}  {:>9.3}  {:>9.3}  {:>6.2}{}",
                p.load,
                p.policy,
                p.task,
                p.jobs_real,
                p.miss_rounds.show(100.0, 2),
                p.miss_sim * 100.0,
                p.miss_gap() * 100.0,
                p.p50_real_ms,
                p.p50_sim_ms,
                p.p99_real_ms,
                p.p99_sim_ms,
                p.p99_ratio(),
                if p.meets_goal() { "" } else { " !" }
            );
        }
        let met = self.points.iter().filter(|p| p.meets_goal()).count();
        let _ = writeln!(
            s,
            "over {} round(s) of {:.1} s: largest |median real − simulated| miss rate {:.2} pp · median p99 real/simulated from {:.2} to {:.2} · goal (≤ {:.0} pp and a ratio in [{}, {}]) met at {met} of {} points ({})",
            self.rounds,
            self.duration_s,
            self.max_miss_gap * 100.0,
            self.p99_ratio_min,
            self.p99_ratio_max,
            GOAL_GAP * 100.0,
            GOAL_RATIO.0,
            GOAL_RATIO.1,
            self.points.len(),
            self.engine
        );
        s += &self.why_lines();
        s += &self.interference_lines();
        s
    }

    /// For each point off the goal: why its task missed in the run of the
    /// median round (by that task's miss rate), real next to simulated.
    pub fn why_lines(&self) -> String {
        let mut s = String::new();
        for p in self.points.iter().filter(|p| !p.meets_goal()) {
            let mut of_arm: Vec<&RunReport> = self
                .runs
                .iter()
                .filter(|r| {
                    r.notes.get("label") == Some(&p.policy)
                        && r.notes.get("load").and_then(|l| l.parse::<f64>().ok()) == Some(p.load)
                })
                .collect();
            let miss = |r: &RunReport| {
                r.tasks
                    .iter()
                    .find(|t| t.name == p.task)
                    .map_or(0.0, |t| t.miss_rate)
            };
            of_arm.sort_by(|a, b| miss(a).total_cmp(&miss(b)));
            let Some(r) = of_arm.get(of_arm.len() / 2) else {
                continue;
            };
            let Some(w) = &r.why else { continue };
            let one = |w: &rtmdl_core::why::WhyReport| rtmdl_core::why::WhyReport {
                tasks: w
                    .tasks
                    .iter()
                    .filter(|t| t.task == p.task)
                    .cloned()
                    .collect(),
            };
            let lines = one(w).table(r.why_predicted.as_ref().map(one).as_ref());
            if !lines.is_empty() {
                s += &format!(
                    "load {} {} (round {}, its median): {lines}",
                    p.load,
                    p.policy,
                    r.notes.get("round").map_or("?", String::as_str)
                );
            }
        }
        s
    }

    /// The probe over every real run: the quietest and the worst run, and
    /// each run it flagged.
    pub fn interference_lines(&self) -> String {
        use std::fmt::Write;
        let probed: Vec<&RunReport> = self
            .runs
            .iter()
            .filter(|r| r.interference.is_some())
            .collect();
        if probed.is_empty() {
            return "interference: not probed\n".into();
        }
        let name = |r: &RunReport| {
            format!(
                "round {} load {} {}",
                r.notes.get("round").map_or("?", String::as_str),
                r.notes.get("load").map_or("?", String::as_str),
                r.notes
                    .get("label")
                    .map_or(r.policy.as_str(), String::as_str)
            )
        };
        let stalled = |r: &RunReport| r.interference.as_ref().map_or(0.0, |i| i.stalled_ms);
        let flagged: Vec<&&RunReport> = probed
            .iter()
            .filter(|r| r.interference.as_ref().is_some_and(|i| i.flag().is_some()))
            .collect();
        let mut s = format!(
            "interference: {} of {} real runs flagged as disturbed\n",
            flagged.len(),
            probed.len()
        );
        let worst = probed
            .iter()
            .max_by(|a, b| stalled(a).total_cmp(&stalled(b)))
            .expect("not empty");
        let quiet = probed
            .iter()
            .min_by(|a, b| stalled(a).total_cmp(&stalled(b)))
            .expect("not empty");
        for (what, r) in [("quietest", quiet), ("worst", worst)] {
            let i = r.interference.as_ref().expect("probed");
            let _ = writeln!(s, "  {what} ({}): {}", name(r), i.summary());
        }
        for r in flagged.iter().take(10) {
            let i = r.interference.as_ref().expect("probed");
            let _ = writeln!(s, "  flagged {}: {}", name(r), i.flag().unwrap_or_default());
        }
        s
    }
}
