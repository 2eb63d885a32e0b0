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
            "{load:<6} {:<11} {:>8} {:>9} {:>9}  p99 response ms per task",
            "policy", "miss %", "worst %", "acc loss"
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
                "{:<6} {:<11} {:>8.2} {:>9.2} {:>8.2}%  {}",
                "",
                row.label,
                run.miss_rate * 100.0,
                run.worst_miss_rate * 100.0,
                run.accuracy_loss * 100.0,
                p99.join(" · ")
            );
        }
    }
    s
}

/// The project's goal at the heavy load: rtmdl's miss rate ≤ 0.6 × the best
/// of DM-NMC, UM-NMC and FIFO, at an accuracy loss ≤ 1.7 %.
pub fn goal_line(heavy: &[Row]) -> String {
    let find = |l: &str| heavy.iter().find(|r| r.label == l).map(|r| &r.run);
    let Some(rt) = find("rtmdl+plan") else {
        return "goal: no rtmdl run".into();
    };
    let best = ["DM-NMC", "UM-NMC", "FIFO"]
        .iter()
        .filter_map(|l| find(l).map(|r| (l, r.miss_rate)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let Some((name, best)) = best else {
        return "goal: no baseline runs".into();
    };
    let ratio = if best > 0.0 {
        rt.miss_rate / best
    } else {
        f64::NAN
    };
    let met = (best > 0.0 && (ratio <= 0.6 || rt.miss_rate == 0.0)) && rt.accuracy_loss <= 0.017;
    format!(
        "goal (heavy): rtmdl miss {:.2} % vs best of DM-NMC/UM-NMC/FIFO ({name}) {:.2} % = {:.2}× (≤ 0.6×), accuracy loss {:.2} % (≤ 1.7 %): {}",
        rt.miss_rate * 100.0,
        best * 100.0,
        ratio,
        rt.accuracy_loss * 100.0,
        if met { "met" } else { "NOT met" }
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
    let _ = writeln!(s, "{}\n", goal_line(&r.heavy));
    for ((load, rows), (_, cfg)) in r.loads().iter().zip(cfgs) {
        s += &load_section(load, rows, &cfg.taskset);
    }
    let _ = writeln!(
        s,
        "## Variants\n\nStorage {} of a {} budget.\n\n```text\n{}```\n\n![variants](variants.svg)\n",
        fmt_size(r.storage_used),
        fmt_size(r.storage_budget),
        variant_table(manifests)
    );
    s
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
