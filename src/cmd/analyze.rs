//! `rtmdl analyze`: a bound on every task's response time under the rtmdl
//! scheduler (rtmdl-analysis), its validation against the simulator, and
//! the share of random sets the bound and the simulation proxy accept.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use plotters::prelude::*;
use rtmdl_analysis::validate::{self, AcceptancePoint};
use rtmdl_analysis::{Options, analyze};
use rtmdl_core::{PolicyKind, VariantChoice};

/// Bound every task's worst-case response time (a guarantee, under the
/// analysis's assumptions: every time within its profile's max × --margin,
/// every overhead within its profile's max).
///
/// Prints per task the bound, the deadline, whether it is schedulable and
/// which term dominates the bound (its own work, interference from a more
/// urgent task, blocking by a less urgent one, overheads). Exits non-zero,
/// naming the feature and the task, when the analysis cannot cover the
/// config. With --validate N: checks the bound against adversarial
/// simulations of N random sets and prints one line. With --acceptance N:
/// the share of N random sets per utilisation that the analysis and the
/// simulation proxy accept.
#[derive(clap::Args)]
pub struct AnalyzeArgs {
    /// The task-set config (TOML).
    #[arg(required_unless_present_any = ["validate", "acceptance"])]
    config: Option<PathBuf>,
    /// Execution times measured by `rtmdl profile` (replace the config's).
    #[arg(long, requires = "config")]
    profile: Option<PathBuf>,
    /// A plan file written by `rtmdl plan` (variants and priorities);
    /// default: the config's, else the original variants with
    /// deadline-monotonic priorities.
    #[arg(long, requires = "config")]
    plan: Option<PathBuf>,
    /// Write the result as JSON to this path ("-" for stdout only).
    #[arg(long)]
    json: Option<PathBuf>,
    /// WCET = profile max × MARGIN (at least 1).
    #[arg(long, default_value_t = 1.0)]
    margin: f64,
    /// The policy to analyse: only rtmdl is covered.
    #[arg(long, default_value = "rtmdl", value_parser = policy_arg)]
    policy: PolicyKind,
    /// Validate the bound on N random sets instead: the longest response in
    /// adversarial simulations never exceeds it.
    #[arg(long, value_name = "N", conflicts_with_all = ["config", "acceptance"])]
    validate: Option<u64>,
    /// The acceptance curve instead: N random sets per utilisation.
    #[arg(long, value_name = "N", conflicts_with = "config")]
    acceptance: Option<u64>,
    /// Utilisations of the acceptance curve (worst-case load on the busier
    /// resource, per worker or lane).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0"
    )]
    utilisations: Vec<f64>,
    /// Draw the acceptance curve as SVG here.
    #[arg(long, requires = "acceptance")]
    svg: Option<PathBuf>,
    /// Seed of the random sets.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Threads for --validate and --acceptance (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    #[command(flatten)]
    check: super::common::CheckArgs,
}

fn policy_arg(s: &str) -> Result<PolicyKind, String> {
    s.parse()
}

fn threads(args: &AnalyzeArgs) -> usize {
    args.threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

/// Run `rtmdl analyze`.
pub fn run(args: AnalyzeArgs) -> Result<()> {
    if let Some(n) = args.validate {
        return run_validate(n, &args);
    }
    if let Some(n) = args.acceptance {
        return run_acceptance(n, &args);
    }
    let Some(config) = &args.config else {
        bail!("a config is needed (or --validate N, or --acceptance N)");
    };
    let ts =
        super::common::load_config(config, args.plan.as_deref(), args.profile.as_deref())?.taskset;
    let assign = ts.assignments(VariantChoice::Plan);
    let opts = Options {
        margin: args.margin,
        policy: args.policy,
    };
    let a = analyze(&ts, &assign, &opts).map_err(|e| anyhow!("{}: {e}", config.display()))?;
    let stdout_json = args.json.as_deref() == Some(Path::new("-"));
    if !stdout_json {
        if !ts.has_plan() {
            println!(
                "note: the config carries no full plan (variant and priority on every task): analysing the original variants{}; give one with --plan",
                if ts.tasks.iter().all(|t| t.priority.is_some()) {
                    ""
                } else {
                    " with deadline-monotonic priorities"
                }
            );
        }
        print!("{}", a.table());
    }
    if let Some(j) = &args.json {
        super::common::write_json(j, &a)?;
    }
    let broken: Vec<String> = a
        .tasks
        .iter()
        .filter(|t| !t.schedulable)
        .map(|t| match t.bound_ms {
            Some(b) => format!(
                "{}: bound {b:.3} ms > deadline {:.3} ms",
                t.name, t.deadline_ms
            ),
            None => format!("{}: no bound", t.name),
        })
        .collect();
    args.check.verdict(&broken)
}

fn run_validate(n: u64, args: &AnalyzeArgs) -> Result<()> {
    let v = validate::validate(n, args.seed, threads(args));
    if args.json.as_deref() != Some(Path::new("-")) {
        println!("{v}");
    }
    if let Some(j) = &args.json {
        super::common::write_json(j, &v)?;
    }
    if v.violations > 0 {
        for x in &v.examples {
            eprintln!(
                "violation: set seed {} (utilisation {:.3}), task `{}`: simulated {:?} ns > bound {} ns, {} misses",
                x.seed, x.utilisation, x.task, x.observed_ns, x.bound_ns, x.misses
            );
        }
        bail!("the bound failed on {} task(s)", v.violations);
    }
    Ok(())
}

fn run_acceptance(n: u64, args: &AnalyzeArgs) -> Result<()> {
    if args.utilisations.is_empty()
        || args
            .utilisations
            .iter()
            .any(|u| !(u.is_finite() && *u > 0.0))
    {
        bail!("--utilisations: every utilisation must be a positive number, e.g. 0.2,0.5,0.8");
    }
    let points = validate::acceptance(&args.utilisations, n, args.seed, threads(args));
    if args.json.as_deref() != Some(Path::new("-")) {
        println!("| utilisation | sets | analysis accepts | simulation accepts |");
        println!("|---:|---:|---:|---:|");
        for p in &points {
            println!(
                "| {:.2} | {} | {:.1} % | {:.1} % |",
                p.utilisation,
                p.sets,
                p.analysis * 100.0,
                p.simulation * 100.0
            );
        }
    }
    if let Some(j) = &args.json {
        super::common::write_json(j, &points)?;
    }
    if let Some(svg) = &args.svg {
        acceptance_svg(svg, &points, n, args.seed)?;
        eprintln!("acceptance curve: {}", svg.display());
    }
    Ok(())
}

/// The acceptance curve: share of sets accepted against utilisation, one
/// line for the analysis and one for the simulation proxy.
fn acceptance_svg(path: &Path, points: &[AcceptancePoint], n: u64, seed: u64) -> Result<()> {
    let e = |x: &dyn std::fmt::Debug| anyhow!("{}: cannot draw the plot: {x:?}", path.display());
    let root = SVGBackend::new(path, (720, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let xmax = points.iter().map(|p| p.utilisation).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Random sets accepted ({n} per point, seed {seed})"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..xmax, 0f64..100.0)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("utilisation of the busier resource (worst case, per worker or lane)")
        .y_desc("sets accepted %")
        .draw()
        .map_err(|x| e(&x))?;
    type Line = (&'static str, RGBColor, fn(&AcceptancePoint) -> f64);
    let lines: [Line; 2] = [
        (
            "response-time bound (guarantee)",
            RGBColor(31, 119, 180),
            |p| p.analysis,
        ),
        (
            "no miss in simulation (proxy)",
            RGBColor(255, 127, 14),
            |p| p.simulation,
        ),
    ];
    for (name, colour, f) in lines {
        let pts: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.utilisation, f(p) * 100.0))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], colour.stroke_width(2)));
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, colour.filled())))
            .map_err(|x| e(&x))?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK.mix(0.3))
        .background_style(WHITE.mix(0.9))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
