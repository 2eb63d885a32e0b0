//! `rtmdl plan`: a variant and a priority for every task.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rtmdl_core::{SimOptions, TaskSet, Time, simulate};
use rtmdl_plan::{Method, MoeaOptions, PlanOutcome, ProxyOptions};

use super::common::{
    BASELINES, RealArgs, duration_arg, engine, load_config, load_config_untimed, on_off,
    progress_bar,
};

#[derive(clap::Args)]
pub struct Args {
    /// The task-set config (TOML); `rtmdl explain` lists its fields.
    config: PathBuf,
    /// Execution times measured by `rtmdl profile`.
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Exhaustive search (small sets only).
    #[arg(long)]
    exact: bool,
    /// Every task must meet every deadline, by its response-time bound
    /// (as `rtmdl analyze` computes it), not only tasks with ζ = 0.
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
    /// After planning, run the plan for real this long, --rounds times;
    /// where a task's median miss rate exceeds its ζ beyond the sampling
    /// error, update the model from the runs (in-run stage times,
    /// hand-offs, release lateness) and plan again, at most 3 tries. Only a verified
    /// plan is written to --out (else OUT.unverified.toml, and a failure).
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    verify: Option<Time>,
    /// Real runs per --verify try, in rounds: each task is judged on its
    /// median over them (one run on a shared machine is not evidence).
    #[arg(long, default_value_t = 3, value_parser = super::fidelity::rounds_arg)]
    rounds: usize,
    #[command(flatten)]
    real: RealArgs,
    /// SCHED_FIFO, CPU affinity and mlockall for the --verify runs.
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = on_off(), action = clap::ArgAction::Set)]
    rt: bool,
}

pub fn run(a: Args) -> Result<()> {
    let cfg = load_config(&a.config, None, a.profile.as_deref())?;
    if let Some(d) = a.verify {
        return verify(&a, cfg, d);
    }
    let ts = &cfg.taskset;
    let outcome = plan_and_print(&a, ts)?;
    if !outcome.feasible {
        println!(
            "no feasible plan: the closest plan is shown above and written to {}",
            a.out.display()
        );
        for d in &outcome.diagnosis {
            println!("  {d}");
        }
        let waits = blocking(ts, &outcome);
        if !waits.is_empty() {
            println!("what holds them up (the closest plan, simulated on a fresh seed):");
            for w in waits {
                println!("  {w}");
            }
        }
        let fixes = suggestions(&a, ts, &outcome);
        if fixes.is_empty() {
            println!(
                "no single change tried (one more worker or lane, a longer period) makes it feasible in simulation"
            );
        } else {
            println!("what would make it feasible (each checked by planning again in simulation):");
            for f in fixes {
                println!("  {f}");
            }
        }
        for hint in variant_hints(&cfg, &outcome) {
            println!("{hint}");
        }
    }
    write(&a.out, ts, &outcome, &a.config)?;
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

/// The search's options from the arguments.
fn options(a: &Args, ts: &TaskSet) -> (ProxyOptions, Method) {
    let mut proxy = ProxyOptions::default_for(ts, 10_000_000_000);
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
    (proxy, method)
}

/// Plan `ts` and print the search line, the plan table and the baselines.
fn plan_and_print(a: &Args, ts: &TaskSet) -> Result<PlanOutcome> {
    let (proxy, method) = options(a, ts);
    let (horizon, seeds) = (proxy.horizon, proxy.seeds);
    let started = std::time::Instant::now();
    let outcome = search(ts, proxy, &method, "{spinner} planning")
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.config.display()))?;
    println!(
        "{} in {:.2} s: {} candidates evaluated, {} simulations of {:.1} s × {} seeds",
        if a.exact { "exact search" } else { "NSGA-II" },
        started.elapsed().as_secs_f64(),
        outcome.evaluations,
        outcome.simulations,
        horizon as f64 / 1e9,
        seeds
    );
    print!("{}", table(ts, &outcome, seeds));
    let planned = ts.with_assignments(&outcome.assignments);
    println!(
        "vs baselines (fresh seeds): {}",
        baselines_line(&planned, &outcome.held_out)
    );
    Ok(outcome)
}

/// For each task the closest plan leaves above its ζ (on fresh seeds):
/// where its sub-tasks wait and behind whom, from a simulation of that plan
/// with [`rtmdl_core::blocking::Blocking`] watching.
fn blocking(ts: &TaskSet, outcome: &PlanOutcome) -> Vec<String> {
    let planned = ts.with_assignments(&outcome.assignments);
    let mut watch = rtmdl_core::blocking::Blocking::default();
    let opts = rtmdl_core::SimOptions {
        duration: 10_000_000_000,
        seed: 0x0062_6c6f_636b,
        ..Default::default()
    };
    let policy = rtmdl_core::PolicyKind::Rtmdl.build(&planned, &outcome.assignments);
    rtmdl_core::simulate_with(&planned, &outcome.assignments, policy, opts, &mut watch);
    (0..ts.tasks.len())
        .filter(|&t| outcome.held_out.dmr[t] > ts.tasks[t].max_miss_rate)
        .filter_map(|t| watch.explain(ts, t))
        .collect()
}

/// Single changes to the set that make it plannable, each checked by a
/// (smaller) search on the changed set: one more CPU worker, one more GPU
/// lane, the period of the task furthest above its ζ made 25 % or 50 %
/// longer.
fn suggestions(a: &Args, ts: &TaskSet, outcome: &PlanOutcome) -> Vec<String> {
    let worst = (0..ts.tasks.len()).max_by(|&x, &y| {
        let over = |t: usize| outcome.held_out.dmr[t] - ts.tasks[t].max_miss_rate;
        over(x).total_cmp(&over(y))
    });
    let mut candidates: Vec<(String, TaskSet)> = Vec::new();
    let mut more_cpu = ts.clone();
    more_cpu.platform.cpu_workers += 1;
    candidates.push((
        format!(
            "one more CPU worker ({} → {})",
            ts.platform.cpu_workers, more_cpu.platform.cpu_workers
        ),
        more_cpu,
    ));
    let mut more_gpu = ts.clone();
    more_gpu.platform.gpu_lanes += 1;
    let last = more_gpu
        .platform
        .gpu_slowdown
        .last()
        .copied()
        .unwrap_or(1.0);
    // The measured slowdown stops at the lanes there were: the next lane is
    // assumed 20 % slower still (a guess, said so).
    more_gpu.platform.gpu_slowdown.push(last * 1.2);
    candidates.push((
        format!(
            "one more GPU lane ({} → {}; its packing slowdown assumed ×{:.2}, not measured)",
            ts.platform.gpu_lanes,
            more_gpu.platform.gpu_lanes,
            last * 1.2
        ),
        more_gpu,
    ));
    if let Some(t) = worst {
        for f in [1.25, 1.5] {
            let mut longer = ts.clone();
            let task = &mut longer.tasks[t];
            task.period = (task.period as f64 * f) as Time;
            task.deadline = (task.deadline as f64 * f) as Time;
            candidates.push((
                format!(
                    "task `{}` every {:.1} ms instead of {:.1} ms",
                    ts.tasks[t].name,
                    task.period as f64 / 1e6,
                    ts.tasks[t].period as f64 / 1e6
                ),
                longer,
            ));
        }
    }
    let (mut proxy, method) = options(a, ts);
    proxy.seeds = proxy.seeds.min(2);
    let method = match method {
        Method::Moea(o) => Method::Moea(MoeaOptions {
            generations: (o.generations / 3).max(5),
            ..o
        }),
        m => m,
    };
    candidates
        .into_iter()
        .filter_map(|(what, changed)| {
            let o = rtmdl_plan::plan(&changed, proxy.clone(), &method, &mut |_, _| {}).ok()?;
            o.feasible.then(|| {
                let planned = changed.with_assignments(&o.assignments);
                let loss = planned.accuracy_loss(&o.assignments);
                format!(
                    "{what}: feasible, accuracy loss {:.2} % (worst task predicted {:.2} % on fresh seeds)",
                    loss * 100.0,
                    o.held_out.dmr.iter().copied().fold(0.0, f64::max) * 100.0
                )
            })
        })
        .collect()
}

/// For each task the closest plan leaves above its ζ whose model has a
/// single variant from a file: the command that measures variants of it
/// (smaller inputs, INT8, threads) for the planner to choose between.
/// Not checked: their times do not exist until they are measured.
fn variant_hints(cfg: &rtmdl_config::Config, outcome: &PlanOutcome) -> Vec<String> {
    let ts = &cfg.taskset;
    let mut seen = Vec::new();
    (0..ts.tasks.len())
        .filter(|&t| outcome.held_out.dmr[t] > ts.tasks[t].max_miss_rate)
        .filter_map(|t| {
            let m = ts.tasks[t].model;
            let model = &ts.models[m];
            if model.variants.len() != 1 || seen.contains(&m) {
                return None;
            }
            seen.push(m);
            let file = (0..model.stages.len()).find_map(|s| match cfg.body(m, 0, s) {
                rtmdl_config::StageBody::Inference(p) => p
                    .file
                    .clone()
                    .or_else(|| model.variants[0].file.as_deref().map(|f| cfg.resolve(f))),
                _ => None,
            })?;
            Some(format!(
                "model `{}` (task `{}`) has one variant to choose from: `rtmdl variants {} --int8 --threads 1,2` measures it at smaller inputs, as INT8 and with more threads; add its blocks under [models.{}] and plan again",
                model.name,
                ts.tasks[t].name,
                file.display(),
                model.name
            ))
        })
        .collect()
}

/// `--verify`: plan, run the plan for real in rounds, and where a task's
/// median over the rounds misses more than its ζ beyond the sampling error,
/// update the model from the runs and plan again (at most 3 tries); the
/// loop is `rtmdl_runtime::verify`.
fn verify(a: &Args, mut model: rtmdl_config::Config, duration: Time) -> Result<()> {
    // The run executes what the config describes (its own times for
    // emulated stages); the planner sees the profile, then the refits.
    let real_cfg = load_config_untimed(&a.config, None, None)?;
    let engine = engine(a.real.engine)?;
    let opts = rtmdl_runtime::verify::VerifyOptions {
        tries: 3,
        rounds: a.rounds,
        seed: a.seed,
        refit_pessimistic: false,
    };
    let mut outcomes: Vec<PlanOutcome> = Vec::new();
    let mut tried = 0;
    let result = rtmdl_runtime::verify::verify(
        &mut model.taskset,
        &opts,
        |ts, k| {
            println!(
                "── verify try {}: plan on the model, then {} round(s) of a {:.1} s real run",
                k + 1,
                a.rounds,
                duration as f64 / 1e9
            );
            let outcome = plan_and_print(a, ts)?;
            let planned = rtmdl_runtime::verify::Planned {
                assignments: outcome.assignments.clone(),
                predicted: outcome.held_out.dmr.clone(),
                feasible: outcome.feasible,
            };
            outcomes.push(outcome);
            Ok::<_, anyhow::Error>(planned)
        },
        |assign, _round| {
            let mut run_cfg = real_cfg.clone();
            run_cfg.taskset = real_cfg.taskset.with_assignments(assign);
            let opts = rtmdl_runtime::RunOptions {
                duration,
                realtime: a.rt,
                watchdog: a.real.watchdog,
                probe: a.real.probe(),
                ..Default::default()
            };
            rtmdl_runtime::run_config(
                &run_cfg,
                rtmdl_core::PolicyKind::Rtmdl,
                rtmdl_core::VariantChoice::Plan,
                engine.clone(),
                a.real.threads,
                &opts,
                a.seed,
            )
            .with_context(|| format!("{}: the verifying run", a.config.display()))
        },
        |t| {
            tried += 1;
            print!("{}", verdict(&t.checks));
            for line in &t.interference {
                println!("  {line}");
            }
            if !t.verified {
                let mut why: Vec<String> = t
                    .checks
                    .iter()
                    .filter(|c| c.over())
                    .map(|c| {
                        format!(
                            "{} {:.2} % > ζ {:.1} %",
                            c.name,
                            c.measured * 100.0,
                            c.zeta * 100.0
                        )
                    })
                    .collect();
                if !t.planned.feasible {
                    why.push("no plan meets every constraint on the model".into());
                }
                let why = why.join("; ");
                println!("try {tried}: not verified ({why}); updating the model from the runs:");
                for c in &t.refits {
                    println!("  {c}");
                }
            }
        },
    )?;
    if let Some(k) = result.chosen {
        write(&a.out, &model.taskset, &outcomes[k], &a.config)?;
        println!(
            "verified in try {}: every task within its ζ on the median of {} real round(s); plan written to {}",
            k + 1,
            a.rounds,
            a.out.display()
        );
        return Ok(());
    }
    let unverified = a.out.with_extension("unverified.toml");
    if let Some(outcome) = outcomes.last() {
        write(&unverified, &model.taskset, outcome, &a.config)?;
    }
    bail!(
        "no plan could be verified in {} tries: the last one is in {} (not {}, which is for verified plans)",
        result.tries.len(),
        unverified.display(),
        a.out.display()
    )
}

/// The verdict table of one try: per task predicted next to the median
/// measured over the rounds, its interval, ζ and the sampling error, with
/// the tasks above ζ beyond that error marked.
fn verdict(checks: &[rtmdl_runtime::verify::Check]) -> String {
    let mut s = format!(
        "{:<16}  {:>11}  {:>10}  {:>18}  {:>6}  {:>6}\n",
        "task", "predicted %", "measured %", "95 % interval", "ζ %", "± %"
    );
    for c in checks {
        s += &format!(
            "{:<16}  {:>11.2}  {:>10.2}  {:>18}  {:>6.1}  {:>6.2}{}\n",
            c.name,
            c.predicted * 100.0,
            c.measured * 100.0,
            format!(
                "[{:.2}, {:.2}]",
                c.rounds.ci_low * 100.0,
                c.rounds.ci_high * 100.0
            ),
            c.zeta * 100.0,
            c.error * 100.0,
            if c.over() { "  over ζ" } else { "" }
        );
    }
    s
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
    outcome.map_err(|e| anyhow::anyhow!("{e}"))
}

/// Write the plan file for `outcome` (made for `config`).
pub fn write(path: &Path, ts: &TaskSet, outcome: &PlanOutcome, config: &Path) -> Result<()> {
    let text = rtmdl_config::plan_text(ts, &outcome.assignments, Some(config));
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// The plan per task: variant, priority, predicted miss rate on fresh
/// seeds (± its 95 % interval) next to the search seeds', ζ, accuracy; then
/// what the prediction is, the accuracy loss and storage.
fn table(ts: &TaskSet, outcome: &PlanOutcome, search_seeds: u64) -> String {
    let w = rtmdl_core::units::column_width(ts.tasks.iter().map(|t| t.name.as_str()), 4);
    let held = &outcome.held_out;
    let mut s = format!(
        "{:<w$}  {:<10}  {:>4}  {:>17}  {:>13}  {:>6}  {:>7}\n",
        "task", "variant", "prio", "pred. miss %", "search seeds", "ζ %", "acc %"
    );
    for (t, a) in outcome.assignments.iter().enumerate() {
        let task = &ts.tasks[t];
        let v = &ts.model_of(t).variants[a.variant];
        s += &format!(
            "{:<w$}  {:<10}  {:>4}  {:>9.2} ± {:>5.2}  {:>13.2}  {:>6.1}  {:>7.2}\n",
            task.name,
            v.name,
            a.priority,
            held.dmr[t] * 100.0,
            held.ci[t] * 100.0,
            outcome.eval.dmr[t] * 100.0,
            task.max_miss_rate * 100.0,
            v.accuracy * 100.0
        );
    }
    s += &format!(
        "pred. miss %: simulated on {} fresh seeds × {:.1} s (± 95 % interval, batch means), not the {} search seed(s){}\n",
        held.seeds,
        held.horizon as f64 / 1e9,
        search_seeds.max(1),
        if outcome.rounds > 1 {
            format!(
                "; {} search rounds (ζ tightened where fresh seeds broke it)",
                outcome.rounds
            )
        } else {
            String::new()
        }
    );
    s += &format!(
        "accuracy loss {:.2} % (mean over tasks) · storage {}\n",
        ts.accuracy_loss(&outcome.assignments) * 100.0,
        rtmdl_core::units::fmt_size(outcome.eval.storage)
    );
    s
}

/// The planned set under every baseline, on the plan's fresh seeds.
fn baselines_line(planned: &TaskSet, held: &rtmdl_plan::heldout::HeldOut) -> String {
    BASELINES
        .iter()
        .map(|&(label, p, v)| {
            let (mut missed, mut jobs, mut loss) = (0, 0, 0.0);
            for s in 0..held.seeds {
                let opts = SimOptions {
                    duration: held.horizon,
                    seed: rtmdl_plan::heldout::FRESH_SEED + s,
                    ..Default::default()
                };
                let r = simulate(planned, p, v, opts);
                missed += r
                    .tasks
                    .iter()
                    .map(|t| t.missed + t.dropped + t.failed)
                    .sum::<u64>();
                jobs += r.tasks.iter().map(|t| t.jobs).sum::<u64>();
                loss = r.accuracy_loss;
            }
            format!(
                "{label} miss {:.2} % loss {:.2} %",
                missed as f64 * 100.0 / jobs.max(1) as f64,
                loss * 100.0
            )
        })
        .collect::<Vec<_>>()
        .join(" · ")
}
