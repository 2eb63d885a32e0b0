//! `rtmdl fidelity`: does the simulator predict the real runs? At each
//! load (every release rate × load), for each policy, one real run and one
//! simulation of the same config, profile, policy, seed and length, task by
//! task: miss rate and response-time percentiles, measured and predicted.

use std::sync::Arc;

use rtmdl_config::Config;
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
}

/// One task at one load under one policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub load: f64,
    pub policy: String,
    pub task: String,
    pub jobs_real: u64,
    pub miss_real: f64,
    pub miss_sim: f64,
    pub p50_real_ms: f64,
    pub p50_sim_ms: f64,
    pub p99_real_ms: f64,
    pub p99_sim_ms: f64,
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
}

/// The whole sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fidelity {
    pub config: String,
    pub engine: String,
    pub duration_s: f64,
    pub points: Vec<Point>,
    pub max_miss_gap: f64,
    pub p99_ratio_min: f64,
    pub p99_ratio_max: f64,
    /// Every real run's report, with its prediction beside each task.
    pub runs: Vec<RunReport>,
}

/// Run the sweep. `cfg.taskset` carries the times the simulator uses (a
/// profile applied); `progress(done, total, what)` is called before each
/// real run.
pub fn fidelity(
    cfg: &Config,
    engine: Arc<dyn Engine>,
    opts: &FidelityOptions,
    progress: &mut dyn FnMut(u64, u64, &str),
) -> Result<Fidelity, RuntimeError> {
    let total = (opts.loads.len() * opts.rows.len()) as u64;
    let mut points = Vec::new();
    let mut runs = Vec::new();
    for &load in &opts.loads {
        let mut at_load = cfg.clone();
        at_load.taskset = cfg.taskset.scale_rates(load, None);
        for row in &opts.rows {
            progress(
                runs.len() as u64,
                total,
                &format!("load {load} {}", row.label),
            );
            let report = measure(&at_load, row, engine.clone(), opts)?;
            points.extend(report.tasks.iter().map(|t| {
                let p = t.predicted.unwrap_or_default();
                Point {
                    load,
                    policy: row.label.clone(),
                    task: t.name.clone(),
                    jobs_real: t.jobs,
                    miss_real: t.miss_rate,
                    miss_sim: p.miss_rate,
                    p50_real_ms: t.response_ms.p50,
                    p50_sim_ms: p.response_ms.p50,
                    p99_real_ms: t.response_ms.p99,
                    p99_sim_ms: p.response_ms.p99,
                }
            }));
            runs.push(report);
        }
    }
    progress(total, total, "done");
    let ratios = points.iter().map(Point::p99_ratio);
    Ok(Fidelity {
        config: cfg.path.display().to_string(),
        engine: format!("{} {}", engine.name(), engine.version()),
        duration_s: opts.duration as f64 / 1e9,
        max_miss_gap: points.iter().map(Point::miss_gap).fold(0.0, f64::max),
        p99_ratio_min: ratios.clone().fold(f64::INFINITY, f64::min),
        p99_ratio_max: ratios.fold(0.0, f64::max),
        points,
        runs,
    })
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
            "{:>5}  {:<11}  {:<w$}  {:>6}  {:>9}  {:>9}  {:>7}  {:>9}  {:>9}  {:>9}  {:>9}  {:>6}\n",
            "load",
            "policy",
            "task",
            "jobs",
            "miss real",
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
                "{:>5.2}  {:<11}  {:<w$}  {:>6}  {:>8.2}%  {:>8.2}%  {:>7.2}  {:>9.3}  {:>9.3}  {:>9.3}  {:>9.3}  {:>6.2}",
                p.load,
                p.policy,
                p.task,
                p.jobs_real,
                p.miss_real * 100.0,
                p.miss_sim * 100.0,
                p.miss_gap() * 100.0,
                p.p50_real_ms,
                p.p50_sim_ms,
                p.p99_real_ms,
                p.p99_sim_ms,
                p.p99_ratio()
            );
        }
        let _ = writeln!(
            s,
            "largest miss-rate gap {:.2} pp · p99 real/simulated from {:.2} to {:.2} · {} real runs of {:.1} s ({})",
            self.max_miss_gap * 100.0,
            self.p99_ratio_min,
            self.p99_ratio_max,
            self.runs.len(),
            self.duration_s,
            self.engine
        );
        s
    }
}
