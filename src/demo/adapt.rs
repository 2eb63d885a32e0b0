//! The demo's load step (`examples/load-step.toml`): real runs without and
//! with online switching, the simulator's prediction of the switches next
//! to the real ones, and a plot of miss rate and accuracy over time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;
use rtmdl_core::report::{SwitchRow, Timeline};
use rtmdl_core::{PolicyKind, SimOptions, VariantChoice, simulate};
use rtmdl_engine::Engine;
use serde::Serialize;

use crate::cmd::common::load_config;
use crate::cmd::profile::{Calibration, measure};

/// The load step's tasks and when the step is (ms).
pub struct Step {
    pub from_ms: f64,
    pub to_ms: f64,
}

/// Per task, one run: miss rate before, just after (the first second) and
/// after that (to the end of the step), and after the step.
#[derive(Serialize)]
pub struct Phases {
    pub task: String,
    pub before: f64,
    pub first_second: f64,
    pub rest_of_step: f64,
    /// The highest miss rate of one timeline bin in the rest of the step:
    /// whether it stayed within ζ throughout, not only on average.
    pub worst_bin_rest_of_step: f64,
    pub after: f64,
    /// The variant in use at the end.
    pub variant_at_end: String,
}

/// `report.json`'s `adaptation` section.
#[derive(Serialize)]
pub struct Section {
    pub config: String,
    pub step_ms: (f64, f64),
    /// Measured: real runs without and with `--adapt`.
    pub without: Vec<Phases>,
    pub with: Vec<Phases>,
    /// Measured switches, and the simulator's (same config, profile, seed).
    pub switches: Vec<SwitchRow>,
    pub predicted_switches: Vec<SwitchRow>,
    /// What the simulator was fed: the profile, refitted from the run
    /// without switching (one line per change).
    pub simulator_model: Vec<String>,
    /// Each simulated switch next to the measured one of the same task and
    /// variants nearest in time (`None`: no such switch), then the measured
    /// switches no simulated one matched.
    pub matched: Vec<(Option<SwitchRow>, Option<SwitchRow>)>,
    /// The window's length in ms for the first task (switch times are
    /// predicted "within one window").
    pub window_ms: f64,
    /// The timeline's bin (ms).
    pub bin_ms: f64,
    pub prepared_variants: usize,
    pub prepared_bytes: u64,
    /// A disturbance the config does not know: the same set without the
    /// stepping task while CPU-hog processes (one busy loop per core) run
    /// beside it over the step's window, without and with `--adapt`
    /// (measured). These runs do without real-time priority whatever
    /// `--rt` says: FIFO threads would keep their cores from the hog.
    pub cpu_hog_without: Vec<Phases>,
    pub cpu_hog: Vec<Phases>,
    pub cpu_hog_switches: Vec<SwitchRow>,
    #[serde(skip)]
    pub timelines: [Timeline; 2],
}

/// Busy-loop processes, one per core, from `from` to `to` of the run
/// (its time zero as the executor sets it in `started`).
fn cpu_hog(
    started: Arc<std::sync::OnceLock<std::time::Instant>>,
    from: std::time::Duration,
    to: std::time::Duration,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        // The run's time zero, once its bodies are ready (give up after a
        // minute: the run failed to start).
        let waited = std::time::Instant::now();
        let zero = loop {
            if let Some(z) = started.get() {
                break *z;
            }
            if waited.elapsed() > std::time::Duration::from_secs(60) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        std::thread::sleep((zero + from).saturating_duration_since(std::time::Instant::now()));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut hogs: Vec<std::process::Child> = (0..cores)
            .filter_map(|_| {
                std::process::Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .ok()
            })
            .collect();
        std::thread::sleep((zero + to).saturating_duration_since(std::time::Instant::now()));
        for h in &mut hogs {
            let _ = h.kill();
            let _ = h.wait();
        }
    })
}

/// The load-step config next to the working directory or to the sources.
pub fn config() -> Option<PathBuf> {
    [
        PathBuf::from("examples/load-step.toml"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/load-step.toml"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// Profile the load step briefly, run it for real without and with
/// switching, and simulate it with switching.
pub fn run(
    path: &Path,
    engine: Arc<dyn Engine>,
    threads: usize,
    rt: bool,
    seed: u64,
) -> Result<Section> {
    let mut cfg = load_config(path, None, None)?;
    let prof = measure(
        &cfg,
        engine.clone(),
        20,
        cfg.taskset.platform.gpu_lanes,
        threads,
        Calibration {
            length: 0,
            realtime: rt,
        },
        "      profiling",
    )?;
    prof.apply(&mut cfg.taskset)
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    size_to_this_machine(&mut cfg.taskset);
    let step =
        step_of(&cfg.taskset).context("the load-step config has no task with a stop time")?;
    let duration = cfg.duration.unwrap_or(12_000_000_000);
    let mut runs = Vec::new();
    let mut prepared = (0, 0);
    // The simulator's model, refitted from the run without switching (its
    // hand-offs, release lateness and in-run stage times, the load step
    // included): what the machine did, not what the profile measured alone.
    let mut sim = cfg.taskset.clone();
    let mut refit = Vec::new();
    for adapt in [false, true] {
        let mut c = cfg.clone();
        if adapt {
            c.taskset.adapt = Some(cfg.adapt);
        }
        let opts = rtmdl_runtime::RunOptions {
            duration,
            realtime: rt,
            timeline: Some(cfg.adapt.bin),
            ..Default::default()
        };
        let real = rtmdl_runtime::run_config(
            &c,
            PolicyKind::Rtmdl,
            VariantChoice::Plan,
            engine.clone(),
            threads,
            &opts,
            seed,
        )?;
        if adapt {
            prepared = (real.outcome.prepared.variants, real.outcome.prepared.bytes);
        } else {
            let assign = sim.assignments(VariantChoice::Plan);
            refit = rtmdl_runtime::profile::refit_from_run(&mut sim, &assign, &real.outcome);
        }
        runs.push(real.report.timeline.unwrap_or_default());
    }
    sim.adapt = Some(cfg.adapt);
    let predicted = simulate(
        &sim,
        PolicyKind::Rtmdl,
        VariantChoice::Plan,
        SimOptions {
            duration,
            seed,
            ..Default::default()
        },
    )
    .timeline
    .unwrap_or_default();
    let affected: Vec<String> = cfg
        .taskset
        .tasks
        .iter()
        .filter(|t| t.stop.is_none())
        .map(|t| t.name.clone())
        .collect();
    let phases = |t: &Timeline| phases_of(t, &affected, &step);
    let first = cfg.taskset.tasks.iter().find(|t| t.stop.is_none());
    let window_ms = first.map_or(0.0, |t| t.period as f64 / 1e6 * cfg.adapt.window as f64);
    // The hog's runs end 2 s after it stops: the climb back is shown by the
    // load step's own runs.
    let hog_ns = duration.min((step.to_ms * 1e6) as rtmdl_core::Time + 2_000_000_000);
    let hogged_without = hogged_run(&cfg, &step, hog_ns, engine.clone(), threads, false, seed)?;
    let hogged = hogged_run(&cfg, &step, hog_ns, engine.clone(), threads, true, seed)?;
    let [without, with]: [Timeline; 2] =
        runs.try_into().map_err(|_| anyhow!("two runs expected"))?;
    Ok(Section {
        config: path.display().to_string(),
        step_ms: (step.from_ms, step.to_ms),
        without: phases(&without),
        with: phases(&with),
        switches: with.switches.clone(),
        // Paired up to three windows apart.
        matched: match_switches(&with.switches, &predicted.switches, 3.0 * window_ms),
        predicted_switches: predicted.switches,
        simulator_model: refit,
        window_ms,
        prepared_variants: prepared.0,
        prepared_bytes: prepared.1,
        bin_ms: cfg.adapt.bin as f64 / 1e6,
        cpu_hog_without: phases(&hogged_without),
        cpu_hog: phases(&hogged),
        cpu_hog_switches: hogged.switches.clone(),
        timelines: [without, with],
    })
}

/// Per task of `affected`, its miss rate before the step, in its first
/// second, in the rest of it and from a second after it, and the variant at
/// the end.
fn phases_of(t: &Timeline, affected: &[String], step: &Step) -> Vec<Phases> {
    affected
        .iter()
        .map(|task| Phases {
            task: task.clone(),
            before: t.miss_rate(task, 0.0, step.from_ms).0,
            first_second: t.miss_rate(task, step.from_ms, step.from_ms + 1000.0).0,
            rest_of_step: t.miss_rate(task, step.from_ms + 1000.0, step.to_ms).0,
            worst_bin_rest_of_step: t
                .rows_in(task, step.from_ms + 1000.0, step.to_ms)
                .map(|r| r.miss_rate)
                .fold(0.0, f64::max),
            after: t.miss_rate(task, step.to_ms + 1000.0, f64::INFINITY).0,
            variant_at_end: t
                .rows
                .iter()
                .rfind(|r| &r.task == task)
                .map(|r| r.variant.clone())
                .unwrap_or_default(),
        })
        .collect()
}

/// The lane's utilisation by task `t` with its planned variant (profiled).
fn lane_share(ts: &rtmdl_core::TaskSet, t: usize) -> f64 {
    let m = ts.model_of(t);
    let v = ts.tasks[t].variant.unwrap_or_else(|| m.original());
    let gpu: f64 = m
        .stages
        .iter()
        .zip(&m.variants[v].times)
        .filter(|(st, _)| st.on == rtmdl_core::Resource::Gpu)
        .map(|(_, p)| p.mean())
        .sum();
    gpu / ts.tasks[t].period.max(1) as f64 / ts.platform.gpu_lanes.max(1) as f64
}

/// Periods sized to the measured times, whatever the engine: the steady
/// tasks use 40 % of the lane with their planned variants, the stepping
/// tasks 30 % more between them (the step overloads the planned variants,
/// not the fastest ones). Offsets and stop times stay.
fn size_to_this_machine(ts: &mut rtmdl_core::TaskSet) {
    let steady: Vec<usize> = (0..ts.tasks.len())
        .filter(|&t| ts.tasks[t].stop.is_none())
        .collect();
    let base: f64 = steady.iter().map(|&t| lane_share(ts, t)).sum();
    let stepping = (ts.tasks.len() - steady.len()).max(1) as f64;
    for t in 0..ts.tasks.len() {
        let target = if ts.tasks[t].stop.is_none() {
            base / 0.40
        } else {
            lane_share(ts, t) / (0.30 / stepping)
        };
        if !(target.is_finite() && target > 0.0) {
            continue;
        }
        let task = &mut ts.tasks[t];
        task.period = ((task.period as f64 * target) as rtmdl_core::Time).max(1_000_000);
        task.deadline = ((task.deadline as f64 * target) as rtmdl_core::Time).max(1_000_000);
    }
}

/// The set without its stepping task (every task that stops), switching
/// on or off, while [`cpu_hog`] runs over the step's window: its timeline.
/// No real-time priority: a hog at normal priority cannot take a core
/// from a SCHED_FIFO thread, and the disturbance is the point.
fn hogged_run(
    cfg: &rtmdl_config::Config,
    step: &Step,
    duration: rtmdl_core::Time,
    engine: Arc<dyn Engine>,
    threads: usize,
    adapt: bool,
    seed: u64,
) -> Result<Timeline> {
    let mut quiet = cfg.clone();
    let keep: Vec<bool> = cfg.taskset.tasks.iter().map(|t| t.stop.is_none()).collect();
    let mut k = keep.iter();
    quiet.taskset.tasks.retain(|_| *k.next().unwrap_or(&true));
    let mut k = keep.iter();
    quiet.sources.retain(|_| *k.next().unwrap_or(&true));
    quiet.taskset.adapt = adapt.then_some(cfg.adapt);
    let started = Arc::new(std::sync::OnceLock::new());
    let opts = rtmdl_runtime::RunOptions {
        duration,
        realtime: false,
        timeline: Some(cfg.adapt.bin),
        started: Some(started.clone()),
        ..Default::default()
    };
    let ms = |x: f64| std::time::Duration::from_micros((x * 1e3) as u64);
    let hog = cpu_hog(started, ms(step.from_ms), ms(step.to_ms));
    let run = rtmdl_runtime::run_config(
        &quiet,
        PolicyKind::Rtmdl,
        VariantChoice::Plan,
        engine,
        threads,
        &opts,
        seed,
    );
    let _ = hog.join();
    Ok(run?.report.timeline.unwrap_or_default())
}

/// The step: from the earliest offset to the latest stop of the tasks that
/// stop.
fn step_of(ts: &rtmdl_core::TaskSet) -> Option<Step> {
    let stepping: Vec<_> = ts.tasks.iter().filter(|t| t.stop.is_some()).collect();
    Some(Step {
        from_ms: stepping.iter().map(|t| t.offset).min()? as f64 / 1e6,
        to_ms: stepping.iter().filter_map(|t| t.stop).max()? as f64 / 1e6,
    })
}

/// Pair simulated with measured switches of the same task and variants,
/// nearest in time first (each used once), never further apart than
/// `max_ms` (a switch the other side did not make is not paired with an
/// unrelated one seconds away); the unpaired follow, measured then
/// simulated. Pairs are in the order of the measured switch.
pub fn match_switches(
    measured: &[SwitchRow],
    predicted: &[SwitchRow],
    max_ms: f64,
) -> Vec<(Option<SwitchRow>, Option<SwitchRow>)> {
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (i, m) in measured.iter().enumerate() {
        for (j, p) in predicted.iter().enumerate() {
            let d = (p.t_ms - m.t_ms).abs();
            if m.task == p.task && m.from == p.from && m.to == p.to && d <= max_ms {
                pairs.push((d, i, j));
            }
        }
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut mu, mut pu) = (vec![false; measured.len()], vec![false; predicted.len()]);
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (_, i, j) in pairs {
        if !mu[i] && !pu[j] {
            mu[i] = true;
            pu[j] = true;
            out.push((i, j));
        }
    }
    out.sort_unstable();
    let mut rows: Vec<(Option<SwitchRow>, Option<SwitchRow>)> = out
        .into_iter()
        .map(|(i, j)| (Some(measured[i].clone()), Some(predicted[j].clone())))
        .collect();
    rows.extend(
        measured
            .iter()
            .zip(&mu)
            .filter(|(_, u)| !**u)
            .map(|(m, _)| (Some(m.clone()), None)),
    );
    rows.extend(
        predicted
            .iter()
            .zip(&pu)
            .filter(|(_, u)| !**u)
            .map(|(p, _)| (None, Some(p.clone()))),
    );
    rows
}

/// The paired switches as text: measured, simulated, simulated − measured
/// ("–" where a side has none), for report.md and report.html.
pub fn switch_rows(s: &Section) -> Vec<[String; 3]> {
    let fmt = |w: &Option<SwitchRow>| {
        w.as_ref().map_or("–".to_string(), |w| {
            format!("{:.0} ms {}: {} → {}", w.t_ms, w.task, w.from, w.to)
        })
    };
    s.matched
        .iter()
        .map(|(m, p)| {
            let delta = match (m, p) {
                (Some(m), Some(p)) => format!("{:+.0} ms", p.t_ms - m.t_ms),
                _ => "–".into(),
            };
            [fmt(m), fmt(p), delta]
        })
        .collect()
}

/// "k of n simulated switches within one window (W ms) of the measured one".
pub fn within_line(s: &Section) -> String {
    let pairs: Vec<f64> = s
        .matched
        .iter()
        .filter_map(|(m, p)| Some((p.as_ref()?.t_ms - m.as_ref()?.t_ms).abs()))
        .collect();
    let within = pairs.iter().filter(|d| **d <= s.window_ms).count();
    let unmatched_real = s.matched.iter().filter(|(_, p)| p.is_none()).count();
    let unmatched_sim = s.matched.iter().filter(|(m, _)| m.is_none()).count();
    format!(
        "{within} of {} simulated switches within one window ({:.0} ms) of the measured one; {unmatched_sim} simulated without a measured switch within three windows, {unmatched_real} measured without a simulated one",
        s.predicted_switches.len(),
        s.window_ms
    )
}

/// A phases row's cells after the task and run, in percent.
pub fn phase_cells(p: &Phases) -> [String; 6] {
    [
        format!("{:.1}", p.before * 100.0),
        format!("{:.1}", p.first_second * 100.0),
        format!("{:.1}", p.rest_of_step * 100.0),
        format!("{:.1}", p.worst_bin_rest_of_step * 100.0),
        format!("{:.1}", p.after * 100.0),
        p.variant_at_end.clone(),
    ]
}

const PHASES_HEAD: &str = "| task | run | before | first second of the step | rest of the step | its worst bin | after the step (from +1 s) | variant at the end |\n|---|---|---:|---:|---:|---:|---:|---|\n";

fn phase_rows<'a>(runs: impl IntoIterator<Item = (&'a str, &'a [Phases])>) -> String {
    let mut md = String::from(PHASES_HEAD);
    for (run, rows) in runs {
        for p in rows {
            let [b, f, r, w, a, v] = phase_cells(p);
            md += &format!(
                "| {} | {run} | {b} % | {f} % | {r} % | {w} % | {a} % | {v} |\n",
                p.task
            );
        }
    }
    md
}

/// The section as Markdown: the phases table and the switches.
pub fn markdown(s: &Section) -> String {
    let mut md = format!(
        "## Online switching: a load step (measured, {})\n\nThe step lasts from {:.1} s to {:.1} s. Miss rates of real runs, rtmdl policy, planned variants; `--adapt` prepared {} variants before the first release ({}). Timeline bins of {:.0} ms.\n\n",
        s.config,
        s.step_ms.0 / 1e3,
        s.step_ms.1 / 1e3,
        s.prepared_variants,
        rtmdl_core::units::fmt_size(s.prepared_bytes),
        s.bin_ms
    );
    md += &phase_rows([
        ("without --adapt", s.without.as_slice()),
        ("with --adapt", s.with.as_slice()),
    ]);
    md += &format!(
        "\nSwitches, measured next to simulated (one window ≈ {:.0} ms):\n\n| measured | simulated | simulated − measured |\n|---|---|---:|\n",
        s.window_ms
    );
    for [m, p, delta] in switch_rows(s) {
        md += &format!("| {m} | {p} | {delta} |\n");
    }
    md += &format!(
        "\n{}\n\nThe simulator's model: {}.\n",
        within_line(s),
        s.simulator_model.join("; ")
    );
    md += "\nA CPU hog the config does not know (one busy-loop process per core over the same window, the set without the obstacle task; these two runs without real-time priority, which would keep the cores from the hog):\n\n";
    md += &phase_rows([
        ("without --adapt", s.cpu_hog_without.as_slice()),
        ("with --adapt", s.cpu_hog.as_slice()),
    ]);
    md += &format!("\n{} switch(es) under the hog:", s.cpu_hog_switches.len());
    for w in &s.cpu_hog_switches {
        md += &format!(" {:.0} ms {} {} → {};", w.t_ms, w.task, w.from, w.to);
    }
    md + "\n\n![miss rate and accuracy over time](adapt.svg)\n"
}

/// Miss rate over time per task, without and with switching (top), and
/// the accuracy of the variant in use with switching (bottom).
pub fn plot(path: &Path, s: &Section) -> Result<()> {
    let e = |x: &dyn std::fmt::Debug| anyhow!("{}: cannot draw the plot: {x:?}", path.display());
    let root = SVGBackend::new(path, (900, 620)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let (top, bottom) = root.split_vertically(360);
    let tmax = s
        .timelines
        .iter()
        .flat_map(|t| &t.rows)
        .map(|r| (r.t_ms + 250.0) / 1e3)
        .fold(1.0, f64::max);
    let colours = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
    ];
    let mut chart = ChartBuilder::on(&top)
        .caption(
            "Load step: windowed miss rate (real runs)",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..tmax, 0f64..100.0)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .y_desc("miss rate %")
        .draw()
        .map_err(|x| e(&x))?;
    for (k, p) in s.with.iter().enumerate() {
        let c = colours[k % colours.len()];
        for (t, dashed) in [(&s.timelines[0], true), (&s.timelines[1], false)] {
            let pts: Vec<(f64, f64)> = t
                .rows
                .iter()
                .filter(|r| r.task == p.task)
                .map(|r| (r.t_ms / 1e3, r.miss_rate * 100.0))
                .collect();
            let style = if dashed {
                c.mix(0.5).stroke_width(1)
            } else {
                c.stroke_width(2)
            };
            chart
                .draw_series(LineSeries::new(pts, style))
                .map_err(|x| e(&x))?
                .label(format!(
                    "{} {}",
                    p.task,
                    if dashed {
                        "without --adapt"
                    } else {
                        "with --adapt"
                    }
                ))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], style));
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    let mut acc = ChartBuilder::on(&bottom)
        .caption(
            "Accuracy of the variant in use, with --adapt",
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..tmax, 80f64..100.0)
        .map_err(|x| e(&x))?;
    acc.configure_mesh()
        .x_desc("time s")
        .y_desc("accuracy %")
        .draw()
        .map_err(|x| e(&x))?;
    for (k, p) in s.with.iter().enumerate() {
        let c = colours[k % colours.len()];
        let pts: Vec<(f64, f64)> = s.timelines[1]
            .rows
            .iter()
            .filter(|r| r.task == p.task)
            .map(|r| (r.t_ms / 1e3, r.accuracy * 100.0))
            .collect();
        acc.draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(p.task.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], c.stroke_width(2)));
    }
    acc.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sw(t_ms: f64, task: &str, from: &str, to: &str) -> SwitchRow {
        SwitchRow {
            t_ms,
            task: task.into(),
            from: from.into(),
            to: to.into(),
        }
    }

    #[test]
    fn switches_pair_nearest_first_and_never_across_seconds() {
        let measured = [
            sw(160.0, "sign", "a", "b"),
            sw(4107.0, "sign", "a", "b"),
            sw(4300.0, "light", "a", "b"),
            sw(9279.0, "sign", "b", "a"),
        ];
        let predicted = [
            sw(4039.0, "sign", "a", "b"),
            sw(4400.0, "sign", "b", "c"),
            sw(8063.0, "sign", "b", "a"),
        ];
        let rows = match_switches(&measured, &predicted, 1000.0);
        let t = |r: &Option<SwitchRow>| r.as_ref().map(|s| s.t_ms);
        let got: Vec<(Option<f64>, Option<f64>)> = rows.iter().map(|(m, p)| (t(m), t(p))).collect();
        assert_eq!(
            got,
            vec![
                // The noise-driven switch at 160 ms is not paired with the
                // step's at 4039 ms: the one at 4107 ms is nearer.
                (Some(4107.0), Some(4039.0)),
                (Some(160.0), None),
                (Some(4300.0), None),
                // 1.2 s apart: more than the limit.
                (Some(9279.0), None),
                (None, Some(4400.0)),
                (None, Some(8063.0)),
            ]
        );
    }
}
