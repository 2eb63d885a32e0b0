//! `rtmdl plan`: a variant and a priority for every task.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rtmdl_core::{SimOptions, TaskSet, Time, simulate};
use rtmdl_plan::{Method, MoeaOptions, PlanOutcome, ProxyOptions};

use super::common::{BASELINES, duration_arg, load_config, progress_bar};

#[derive(clap::Args)]
pub struct Args {
    config: PathBuf,
    /// Execution times measured by `rtmdl profile`.
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Exhaustive search (small sets only).
    #[arg(long)]
    exact: bool,
    /// Accept only plans with no simulated miss at all, for every seed.
    #[arg(long)]
    hard: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seeds per evaluation of a candidate plan.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Simulated time per evaluation (default: 3 hyperperiods, at least
    /// 50 periods of the slowest task, at most 10 s). Shorter plans
    /// faster with noisier miss-rate predictions.
    #[arg(long, value_parser = duration_arg)]
    horizon: Option<Time>,
    /// NSGA-II population.
    #[arg(long, default_value_t = 48)]
    population: usize,
    /// NSGA-II generations.
    #[arg(long, default_value_t = 60)]
    generations: usize,
    /// Where to write the plan (TOML).
    #[arg(long, short, default_value = "plan.toml")]
    out: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let ts = load_config(&a.config, None, a.profile.as_deref())?.taskset;
    let mut proxy = ProxyOptions::default_for(&ts, 10_000_000_000);
    proxy.seed = a.seed;
    proxy.seeds = a.seeds.max(1);
    proxy.hard = a.hard;
    if let Some(h) = a.horizon {
        proxy.horizon = h;
    }
    let method = if a.exact {
        Method::Exact { limit: 5e6 }
    } else {
        Method::Moea(MoeaOptions {
            population: a.population,
            generations: a.generations,
            seed: a.seed,
            ..Default::default()
        })
    };
    let (horizon, seeds) = (proxy.horizon, proxy.seeds);
    let started = std::time::Instant::now();
    let outcome = search(&ts, proxy, &method, "{spinner} planning")?;
    println!(
        "{} in {:.2} s: {} candidates evaluated, {} simulations of {:.1} s × {} seeds",
        if a.exact { "exact search" } else { "NSGA-II" },
        started.elapsed().as_secs_f64(),
        outcome.evaluations,
        outcome.simulations,
        horizon as f64 / 1e9,
        seeds
    );
    print!("{}", table(&ts, &outcome));
    let planned = ts.with_assignments(&outcome.assignments);
    println!(
        "vs baselines: {}",
        baselines_line(&planned, horizon, a.seed)
    );
    if !outcome.feasible {
        println!(
            "no feasible plan: the closest plan is shown above and written to {}",
            a.out.display()
        );
        for d in &outcome.diagnosis {
            println!("  {d}");
        }
    }
    write(&a.out, &ts, &outcome, &a.config)?;
    println!(
        "plan written to {} (use it with --plan {})",
        a.out.display(),
        a.out.display()
    );
    if !outcome.feasible {
        bail!("no plan meets every constraint");
    }
    Ok(())
}

/// Plan `ts` behind a progress bar labelled `label`.
pub fn search(
    ts: &TaskSet,
    proxy: ProxyOptions,
    method: &Method,
    label: &str,
) -> Result<PlanOutcome> {
    let bar = progress_bar(0, label);
    bar.set_message(match method {
        Method::Exact { .. } => "variant choices",
        Method::Moea(_) => "generations",
    });
    let outcome = rtmdl_plan::plan(ts, proxy, method, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    outcome.map_err(|e| {
        anyhow::anyhow!(
            "the set is too large for --exact ({:.0} candidates > {:.0}); drop --exact to use the evolutionary search",
            e.candidates,
            e.limit
        )
    })
}

/// Write the plan file for `outcome` (made for `config`).
pub fn write(path: &Path, ts: &TaskSet, outcome: &PlanOutcome, config: &Path) -> Result<()> {
    let text = rtmdl_config::plan_text(ts, &outcome.assignments, Some(config));
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The plan per task: variant, priority, predicted miss rate, ζ, accuracy;
/// then the accuracy loss and storage.
fn table(ts: &TaskSet, outcome: &PlanOutcome) -> String {
    let w = ts
        .tasks
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut s = format!(
        "{:<w$}  {:<10}  {:>4}  {:>8}  {:>6}  {:>7}\n",
        "task", "variant", "prio", "pred. miss %", "ζ %", "acc %"
    );
    for (t, a) in outcome.assignments.iter().enumerate() {
        let task = &ts.tasks[t];
        let v = &ts.model_of(t).variants[a.variant];
        s += &format!(
            "{:<w$}  {:<10}  {:>4}  {:>12.2}  {:>6.1}  {:>7.2}\n",
            task.name,
            v.name,
            a.priority,
            outcome.eval.dmr[t] * 100.0,
            task.max_miss_rate * 100.0,
            v.accuracy * 100.0
        );
    }
    s += &format!(
        "accuracy loss {:.2} % (mean over tasks) · storage {}\n",
        ts.accuracy_loss(&outcome.assignments) * 100.0,
        rtmdl_core::units::fmt_size(outcome.eval.storage)
    );
    s
}

/// The planned set under the first four baselines, same horizon and seed.
fn baselines_line(planned: &TaskSet, horizon: Time, seed: u64) -> String {
    let opts = SimOptions {
        duration: horizon,
        seed,
    };
    BASELINES[..4]
        .iter()
        .map(|&(label, p, v)| {
            let r = simulate(planned, p, v, opts);
            format!(
                "{label} miss {:.2} % loss {:.2} %",
                r.miss_rate * 100.0,
                r.accuracy_loss * 100.0
            )
        })
        .collect::<Vec<_>>()
        .join(" · ")
}
