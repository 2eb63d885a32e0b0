//! `OUT/report.html`: one self-contained page (the SVG plots inline), the
//! verdict on top, the tables per load, the ablation, the verification
//! rounds and the load step. Rendered by askama from
//! `templates/report.html` (escaped by default).

use std::path::Path;

use anyhow::{Context, Result};
use askama::Template;

use super::report::{Report, Row};

struct RowView {
    label: String,
    miss: String,
    predicted: String,
    worst: String,
    loss: String,
    timely: String,
    timely_predicted: String,
    p99: Vec<String>,
}

struct RouteView {
    load: &'static str,
    label: &'static str,
    timely: String,
    predicted: String,
    /// "right / missed / wrong (N frames)" per judged task.
    tasks: Vec<String>,
    red: String,
}

struct LoadView {
    name: &'static str,
    periods: String,
    tasks: Vec<String>,
    rows: Vec<RowView>,
}

struct AblationView {
    load: &'static str,
    step: &'static str,
    miss: String,
    predicted: String,
    loss: String,
    source: String,
}

struct VerifyView {
    load: &'static str,
    round: usize,
    task: String,
    predicted: String,
    measured: String,
    zeta: String,
}

#[derive(Template)]
#[template(path = "report.html")]
struct Page {
    machine: String,
    verdict: String,
    met: bool,
    loads: Vec<LoadView>,
    ablation: Vec<AblationView>,
    verify: Vec<VerifyView>,
    route_tasks: Vec<String>,
    route: Vec<RouteView>,
    reaction_ms: u64,
    timely_svg: String,
    /// The load step: (task, run, before, first second, rest, after, variant).
    adapt_phases: Vec<[String; 8]>,
    /// (measured, simulated, simulated − measured) switches.
    adapt_switches: Vec<[String; 3]>,
    adapt_within: String,
    miss_svg: String,
    adapt_svg: String,
    response_svgs: Vec<String>,
    variants_svg: String,
}

fn pct(x: f64) -> String {
    format!("{:.2}", x * 100.0)
}

fn load_view(name: &'static str, rows: &[Row], ts: &rtmdl_core::TaskSet) -> LoadView {
    let periods = ts
        .tasks
        .iter()
        .map(|t| format!("{} every {:.1} ms", t.name, t.period as f64 / 1e6))
        .collect::<Vec<_>>()
        .join(" · ");
    LoadView {
        name,
        periods,
        tasks: ts.tasks.iter().map(|t| t.name.clone()).collect(),
        rows: rows
            .iter()
            .map(|r| RowView {
                label: r.label.to_string(),
                miss: pct(r.run.miss_rate),
                predicted: r.run.predicted_miss_rate().map_or("–".into(), pct),
                worst: pct(r.run.worst_miss_rate),
                loss: pct(r.run.accuracy_loss),
                timely: r.run.timely_accuracy.map_or("–".into(), pct),
                timely_predicted: r.run.predicted_timely_accuracy().map_or("–".into(), pct),
                p99: r
                    .run
                    .tasks
                    .iter()
                    .map(|t| format!("{:.2}", t.response_ms.p99))
                    .collect(),
            })
            .collect(),
    }
}

/// Write `OUT/report.html` from the report and the SVG files beside it.
pub fn write(out: &Path, r: &Report, cfgs: &[(&str, rtmdl_config::Config)]) -> Result<()> {
    let svg = |name: &str| {
        std::fs::read_to_string(out.join(name))
            .map(|s| {
                s.trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
                    .to_string()
            })
            .unwrap_or_default()
    };
    let verdict = super::report::goal_line(&r.light, &r.heavy);
    let loads = [("light", &r.light), ("heavy", &r.heavy)]
        .into_iter()
        .zip(cfgs)
        .map(|((name, rows), (_, cfg))| load_view(name, rows, &cfg.taskset))
        .collect();
    let lines = super::report::route_lines(r);
    let route_tasks = lines.first().map_or(Vec::new(), |l| {
        l.tasks.iter().map(|(t, _, _)| t.clone()).collect()
    });
    let route = lines
        .iter()
        .map(|l| RouteView {
            load: l.load,
            label: l.label,
            timely: l.timely.map_or("–".into(), pct),
            predicted: l.predicted_timely.map_or("–".into(), pct),
            tasks: l
                .tasks
                .iter()
                .map(|(_, c, n)| format!("{} / {} / {} (N = {n})", c.correct, c.missed, c.wrong))
                .collect(),
            red: l.red_lights_run.map_or("–".into(), |n| n.to_string()),
        })
        .collect();
    let (adapt_phases, adapt_switches, adapt_within) = match &r.adaptation {
        None => (Vec::new(), Vec::new(), String::new()),
        Some(a) => (
            [
                ("without --adapt", &a.without),
                ("with --adapt", &a.with),
                ("CPU hog, without --adapt", &a.cpu_hog_without),
                ("CPU hog, with --adapt", &a.cpu_hog),
            ]
            .into_iter()
            .flat_map(|(run, rows)| {
                rows.iter().map(move |p| {
                    let [b, f, r, w, a, v] = super::adapt::phase_cells(p);
                    [p.task.clone(), run.to_string(), b, f, r, w, a, v]
                })
            })
            .collect(),
            super::adapt::switch_rows(a),
            super::adapt::within_line(a),
        ),
    };
    let page = Page {
        adapt_phases,
        adapt_switches,
        adapt_within,
        route_tasks,
        route,
        reaction_ms: rtmdl_core::timely::REACTION / 1_000_000,
        timely_svg: svg("timely.svg"),
        machine: r.machine.clone(),
        met: verdict.ends_with(": met"),
        verdict,
        loads,
        ablation: r
            .ablation
            .iter()
            .map(|a| AblationView {
                load: a.load,
                step: a.step,
                miss: pct(a.miss_rate),
                predicted: a.predicted_miss_rate.map_or("–".into(), pct),
                loss: pct(a.accuracy_loss),
                source: a.source.clone(),
            })
            .collect(),
        verify: r
            .verify
            .iter()
            .map(|v| VerifyView {
                load: v.load,
                round: v.round,
                task: v.task.clone(),
                predicted: pct(v.predicted),
                measured: pct(v.measured),
                zeta: format!("{:.1}", v.zeta * 100.0),
            })
            .collect(),
        miss_svg: svg("miss-rate.svg"),
        adapt_svg: svg("adapt.svg"),
        response_svgs: vec![svg("response-light.svg"), svg("response-heavy.svg")],
        variants_svg: svg("variants.svg"),
    };
    let path = out.join("report.html");
    let html = page.render().context("cannot render report.html")?;
    std::fs::write(&path, html).with_context(|| format!("cannot write {}", path.display()))
}
