//! The demo's report: `report.json`, `report.md`, the summary table and the
//! goal line.

use std::fmt::Write as _;

use rtmdl_core::RunReport;
use rtmdl_core::units::fmt_size;
use rtmdl_train::{Manifest, VariantRow};
use serde::Serialize;

/// One real run: the comparison row it stands for, the load, and the run's
/// report (the JSON of `rtmdl run --json`, flattened beside the two).
#[derive(Serialize)]
pub struct Row {
    /// The row label, e.g. "rtmdl+plan" or "DM-NMC".
    pub label: &'static str,
    /// "light" or "heavy".
    pub load: &'static str,
    #[serde(flatten)]
    pub run: RunReport,
}

/// One step of the ablation at one load (measured).
#[derive(Serialize)]
pub struct AblationRow {
    pub load: &'static str,
    pub step: &'static str,
    pub miss_rate: f64,
    pub accuracy_loss: f64,
    /// The simulator's prediction for the same run.
    pub predicted_miss_rate: Option<f64>,
    /// Which run it is: its own, or a comparison row's.
    pub source: String,
}

/// One task in one round of the demo's `plan --verify` (miss rates).
#[derive(Serialize)]
pub struct VerifyRow {
    pub load: &'static str,
    pub round: usize,
    pub task: String,
    /// Simulated on fresh seeds.
    pub predicted: f64,
    /// The verifying real run.
    pub measured: f64,
    pub zeta: f64,
}

/// `OUT/report.json`.
#[derive(Serialize)]
pub struct Report<'a> {
    pub light: Vec<Row>,
    pub heavy: Vec<Row>,
    pub variants: Vec<&'a VariantRow>,
    pub dropped: Vec<&'a VariantRow>,
    pub storage_budget: u64,
    pub storage_used: u64,
    pub heavy_period_scale: f64,
    pub machine: String,
    /// The plans' verification rounds, predicted next to measured.
    pub verify: Vec<VerifyRow>,
    /// What each part of rtmdl buys, at both loads (measured).
    pub ablation: Vec<AblationRow>,
    /// The load step without and with online switching (measured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adaptation: Option<super::adapt::Section>,
}

impl Report<'_> {
    fn loads(&self) -> [(&'static str, &[Row]); 2] {
        [("light", &self.light), ("heavy", &self.heavy)]
    }
}

/// Per load, one line per policy: miss rates, accuracy loss, p99 response
/// per task.
pub fn summary_table(r: &Report) -> String {
    let mut s = String::new();
    for (load, rows) in r.loads() {
        let _ = writeln!(
            s,
            "{load:<6} {:<11} {:>8} {:>9} {:>9} {:>9} {:>8}  p99 response ms per task",
            "policy", "miss %", "worst %", "acc loss", "timely %", "red run"
        );
        for row in rows {
            let run = &row.run;
            let p99: Vec<String> = run
                .tasks
                .iter()
                .map(|t| format!("{} {:.2}", t.name, t.response_ms.p99))
                .collect();
            let _ = writeln!(
                s,
                "{:<6} {:<11} {:>8.2} {:>9.2} {:>8.2}% {:>9} {:>8}  {}",
                "",
                row.label,
                run.miss_rate * 100.0,
                run.worst_miss_rate * 100.0,
                run.accuracy_loss * 100.0,
                run.timely_accuracy
                    .map_or("–".into(), |t| format!("{:.2}", t * 100.0)),
                run.red_lights_run.map_or("–".into(), |n| n.to_string()),
                p99.join(" · ")
            );
        }
    }
    s
}

/// Per load and policy, the drive as a driver sees it (real runs): per
/// judged task the lights or signs answered correctly in time, missed and
/// wrong within the reaction window, and the red lights run.
pub struct RouteLine {
    pub load: &'static str,
    pub label: &'static str,
    /// "task right/missed/wrong" per judged task.
    pub tasks: Vec<(String, rtmdl_core::timely::EpisodeCounts, usize)>,
    pub red_lights_run: Option<u64>,
    pub timely: Option<f64>,
    pub predicted_timely: Option<f64>,
}

/// The route counters of every row of both loads.
pub fn route_lines(r: &Report) -> Vec<RouteLine> {
    r.loads()
        .into_iter()
        .flat_map(|(load, rows)| {
            rows.iter().map(move |row| RouteLine {
                load,
                label: row.label,
                tasks: row
                    .run
                    .tasks
                    .iter()
                    .filter_map(|t| {
                        let a = t.answers.as_ref()?;
                        Some((t.name.clone(), a.episodes, a.reaction_frames))
                    })
                    .collect(),
                red_lights_run: row.run.red_lights_run,
                timely: row.run.timely_accuracy,
                predicted_timely: row.run.predicted_timely_accuracy(),
            })
        })
        .filter(|l| !l.tasks.is_empty())
        .collect()
}

/// The route counters as text (console and Markdown code block).
pub fn route_table(r: &Report) -> String {
    let lines = route_lines(r);
    let Some(first) = lines.first() else {
        return String::new();
    };
    let mut s = format!(
        "the drive (real runs; episodes answered right / missed / wrong within the first frames of {} ms):\n",
        rtmdl_core::timely::REACTION / 1_000_000
    );
    let _ = writeln!(
        s,
        "{:<6} {:<13} {:>9} {:>11} {}  {:>8}",
        "load",
        "policy",
        "timely %",
        "(predicted)",
        first
            .tasks
            .iter()
            .map(|(t, _, _)| format!("{t:>22}"))
            .collect::<String>(),
        "red run"
    );
    for l in &lines {
        let _ = writeln!(
            s,
            "{:<6} {:<13} {:>9} {:>11} {}  {:>8}",
            l.load,
            l.label,
            l.timely.map_or("–".into(), |t| format!("{:.2}", t * 100.0)),
            l.predicted_timely
                .map_or("–".into(), |t| format!("({:.2})", t * 100.0)),
            l.tasks
                .iter()
                .map(|(_, c, n)| format!(
                    "{:>22}",
                    format!("{}/{}/{} (N={n})", c.correct, c.missed, c.wrong)
                ))
                .collect::<String>(),
            l.red_lights_run.map_or("–".into(), |n| n.to_string())
        );
    }
    s
}

/// The best row on the original models other than rtmdl's own, whatever
/// its policy: (label, overall miss rate).
pub fn best_original(rows: &[Row]) -> Option<(&'static str, f64)> {
    rows.iter()
        .filter(|r| r.label != "rtmdl+plan" && r.run.variants == "original")
        .map(|r| (r.label, r.run.miss_rate))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// The tasks above their ζ in a run, "name x.xx % > ζ y %".
fn over_zeta(r: &rtmdl_core::RunReport) -> Vec<String> {
    r.tasks
        .iter()
        .filter(|t| t.miss_rate > t.max_miss_rate)
        .map(|t| {
            format!(
                "{} {:.2} % > ζ {:.1} %",
                t.name,
                t.miss_rate * 100.0,
                t.max_miss_rate * 100.0
            )
        })
        .collect()
}

/// The headline, measured: at the heavy load rtmdl+plan misses ≤ 0.6 × the
/// best original-model baseline at accuracy loss ≤ 1.7 % with every task
/// within its ζ; at the light load no task above its ζ and no more misses
/// than the best baseline. Says by how much where it is not met.
pub fn goal_line(light: &[Row], heavy: &[Row]) -> String {
    let find = |rows: &[Row]| {
        rows.iter()
            .find(|r| r.label == "rtmdl+plan")
            .map(|r| r.run.clone())
    };
    let (Some(rh), Some(rl)) = (find(heavy), find(light)) else {
        return "goal: no rtmdl run".into();
    };
    let (Some((hname, hbest)), Some((lname, lbest))) = (best_original(heavy), best_original(light))
    else {
        return "goal: no baseline runs".into();
    };
    let ratio = if hbest > 0.0 {
        rh.miss_rate / hbest
    } else if rh.miss_rate == 0.0 {
        0.0
    } else {
        f64::INFINITY
    };
    let mut unmet = Vec::new();
    if ratio > 0.6 {
        unmet.push(format!("heavy ratio {ratio:.2}× > 0.6×"));
    }
    if rh.accuracy_loss > 0.017 {
        unmet.push(format!(
            "heavy accuracy loss {:.2} % > 1.7 %",
            rh.accuracy_loss * 100.0
        ));
    }
    for (load, r) in [("heavy", &rh), ("light", &rl)] {
        for o in over_zeta(r) {
            unmet.push(format!("{load}: {o}"));
        }
    }
    if rl.miss_rate > lbest {
        unmet.push(format!(
            "light: rtmdl misses {:.2} % > {lname} {:.2} %",
            rl.miss_rate * 100.0,
            lbest * 100.0
        ));
    }
    format!(
        "goal (measured): heavy: rtmdl+plan miss {:.2} % vs the best original-model baseline ({hname}) {:.2} % = {:.2}× (≤ 0.6×), accuracy loss {:.2} % (≤ 1.7 %); light: {:.2} % vs {lname} {:.2} %: {}",
        rh.miss_rate * 100.0,
        hbest * 100.0,
        ratio,
        rh.accuracy_loss * 100.0,
        rl.miss_rate * 100.0,
        lbest * 100.0,
        if unmet.is_empty() {
            "met".to_string()
        } else {
            format!("NOT met ({})", unmet.join("; "))
        }
    )
}

/// "task → variant (prio p), ..." of a planned task set.
pub fn plan_summary(ts: &rtmdl_core::TaskSet) -> String {
    ts.tasks
        .iter()
        .enumerate()
        .map(|(t, task)| {
            let v = task
                .variant
                .map_or("?", |v| ts.model_of(t).variants[v].name.as_str());
            format!(
                "{} → {} (prio {})",
                task.name,
                v,
                task.priority.unwrap_or(0)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `OUT/report.md`: the goal, a table per load, the variants.
pub fn markdown(
    r: &Report,
    manifests: &[Manifest],
    cfgs: &[(&str, rtmdl_config::Config)],
) -> String {
    let mut s = String::from("# rtmdl demo report\n\n");
    let _ = writeln!(s, "Machine: {}.\n", r.machine);
    let _ = writeln!(s, "{}\n", goal_line(&r.light, &r.heavy));
    let route = route_table(r);
    if !route.is_empty() {
        let _ = writeln!(
            s,
            "## Timely accuracy: frames answered right and on time\n\n![timely accuracy](timely.svg)\n\n```text\n{route}```\n"
        );
    }
    for ((load, rows), (_, cfg)) in r.loads().iter().zip(cfgs) {
        s += &load_section(load, rows, &cfg.taskset);
    }
    s += &ablation_table(&r.ablation);
    let _ = writeln!(
        s,
        "## Variants\n\nStorage {} of a {} budget.\n\n```text\n{}```\n\n![variants](variants.svg)\n",
        fmt_size(r.storage_used),
        fmt_size(r.storage_budget),
        variant_table(manifests)
    );
    s
}

/// The ablation as Markdown: per step, measured (and simulated) miss rate
/// and accuracy loss at both loads.
pub fn ablation_table(rows: &[AblationRow]) -> String {
    if rows.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "## Ablation: what each part of rtmdl buys (real runs; simulated in brackets)\n\n| load | step | miss rate | accuracy loss | run |\n|---|---|---:|---:|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} % ({}) | {:.2} % | {} |",
            r.load,
            r.step,
            r.miss_rate * 100.0,
            r.predicted_miss_rate
                .map_or("–".into(), |p| format!("{:.2} %", p * 100.0)),
            r.accuracy_loss * 100.0,
            r.source
        );
    }
    s + "\n"
}

fn load_section(load: &str, rows: &[Row], ts: &rtmdl_core::TaskSet) -> String {
    let mut s = format!("## {load} load\n\n");
    let periods: Vec<String> = ts
        .tasks
        .iter()
        .map(|t| format!("{} every {:.1} ms", t.name, t.period as f64 / 1e6))
        .collect();
    let _ = writeln!(s, "{}; plan: {}.\n", periods.join(", "), plan_summary(ts));
    let names: Vec<&str> = rows.first().map_or(Vec::new(), |r| {
        r.run.tasks.iter().map(|t| t.name.as_str()).collect()
    });
    let _ = writeln!(
        s,
        "| policy | variants | miss % | worst task % | accuracy loss % | {} |",
        names
            .iter()
            .map(|n| format!("p99 {n} ms"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(s, "|---|---|---|---|---|{}", "---|".repeat(names.len()));
    for row in rows {
        let run = &row.run;
        let p99: Vec<String> = run
            .tasks
            .iter()
            .map(|t| format!("{:.2}", t.response_ms.p99))
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {:.2} | {:.2} | {:.2} | {} |",
            row.label,
            run.variants,
            run.miss_rate * 100.0,
            run.worst_miss_rate * 100.0,
            run.accuracy_loss * 100.0,
            p99.join(" | ")
        );
    }
    let _ = writeln!(
        s,
        "\n![miss rates](miss-rate.svg) ![response times](response-{load}.svg)\n"
    );
    s
}

/// Every variant of every family: size, measured accuracy and latency;
/// those dropped for the budget marked.
pub fn variant_table(manifests: &[Manifest]) -> String {
    let mut s = format!(
        "      {:<7} {:<9} {:>5} {:>5} {:>8} {:>11} {:>10} {:>10}\n",
        "model", "variant", "width", "depth", "acc %", "latency ms", "shared", "private"
    );
    for m in manifests {
        for (v, kept) in m
            .variants
            .iter()
            .map(|v| (v, true))
            .chain(m.dropped.iter().map(|v| (v, false)))
        {
            let _ = writeln!(
                s,
                "      {:<7} {:<9} {:>5.2} {:>5} {:>8.2} {:>11.3} {:>10} {:>10}{}",
                v.model,
                v.name,
                v.width,
                v.depth,
                v.accuracy * 100.0,
                v.latency_ms,
                fmt_size(v.shared_bytes),
                fmt_size(v.private_bytes),
                if kept { "" } else { "  (dropped: budget)" }
            );
        }
    }
    s
}
