//! SVG plots of the demo report (plotters, SVG backend: text is left to the
//! viewer's fonts, so no font library is needed).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use rtmdl_train::Manifest;

use super::report::Row;

const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn err<E: std::fmt::Debug>(path: &Path) -> impl Fn(E) -> anyhow::Error + '_ {
    move |e| anyhow!("{}: cannot draw the plot: {e:?}", path.display())
}

/// Grouped bars: overall miss rate by policy, one bar per load.
pub fn miss_rates(path: &Path, light: &[Row], heavy: &[Row]) -> Result<()> {
    let e = err(path);
    let root = SVGBackend::new(path, (800, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(&e)?;
    let n = light.len().max(heavy.len()).max(1);
    let ymax = light
        .iter()
        .chain(heavy)
        .map(|r| r.run.miss_rate * 100.0)
        .fold(1.0f64, f64::max)
        * 1.15;
    let names: Vec<&str> = light.iter().chain(heavy).take(n).map(|r| r.label).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Deadline-miss rate by policy (real runs)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..n as f64, 0f64..ymax)
        .map_err(&e)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.26 || x.fract() == 0.0 {
                names.get(i).map(|s| s.to_string()).unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("miss rate %")
        .draw()
        .map_err(&e)?;
    for (k, (runs, name)) in [(light, "light load"), (heavy, "heavy load")]
        .iter()
        .enumerate()
    {
        let colour = COLOURS[k];
        chart
            .draw_series(runs.iter().enumerate().map(|(i, r)| {
                let x0 = i as f64 + 0.1 + 0.4 * k as f64;
                Rectangle::new(
                    [(x0, 0.0), (x0 + 0.38, r.run.miss_rate * 100.0)],
                    colour.filled(),
                )
            }))
            .map_err(&e)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(&e)?;
    root.present().map_err(&e)?;
    Ok(())
}

/// Empirical CDF of response time / deadline over every released job, one
/// line per policy; jobs that never completed (missed, dropped) keep the
/// curve below 1.
pub fn response_cdf(path: &Path, load: &str, series: &[(String, Vec<f64>)]) -> Result<()> {
    let e = err(path);
    let root = SVGBackend::new(path, (800, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(&e)?;
    let xmax = 1.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Response time / deadline, {load} load (all tasks)"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..xmax, 0f64..1.02)
        .map_err(&e)?;
    chart
        .configure_mesh()
        .x_desc("response / deadline (1 = deadline)")
        .y_desc("fraction of jobs")
        .draw()
        .map_err(&e)?;
    chart
        .draw_series(LineSeries::new([(1.0, 0.0), (1.0, 1.02)], BLACK.mix(0.4)))
        .map_err(&e)?;
    for (k, (name, values)) in series.iter().enumerate() {
        let mut v: Vec<f64> = values.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len().max(1) as f64;
        let colour = COLOURS[k % COLOURS.len()];
        let mut pts = vec![(0.0, 0.0)];
        let step = (v.len() / 400).max(1);
        for (i, &x) in v.iter().enumerate() {
            if !x.is_finite() || x > xmax {
                break;
            }
            if i % step == 0 || i + 1 == v.len() {
                pts.push((x, (i + 1) as f64 / n));
            }
        }
        let last = pts.last().map_or(0.0, |p| p.1);
        pts.push((xmax, last));
        chart
            .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
            .map_err(&e)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(&e)?;
    root.present().map_err(&e)?;
    Ok(())
}

/// Accuracy against measured latency of every variant, one colour per model;
/// dropped variants (storage budget) hollow.
pub fn variants(path: &Path, manifests: &[Manifest]) -> Result<()> {
    let e = err(path);
    let root = SVGBackend::new(path, (800, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(&e)?;
    let all = manifests
        .iter()
        .flat_map(|m| m.variants.iter().chain(&m.dropped));
    let (mut lmax, mut amin) = (0.01f64, 1.0f64);
    for v in all {
        lmax = lmax.max(v.latency_ms);
        amin = amin.min(v.accuracy);
    }
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Variants: accuracy vs latency (filled: kept, hollow: dropped)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..lmax * 1.15, (amin * 100.0 - 2.0).max(0.0)..100.5)
        .map_err(&e)?;
    chart
        .configure_mesh()
        .x_desc("inference latency, ms (batch 1, this machine)")
        .y_desc("validation accuracy %")
        .draw()
        .map_err(&e)?;
    for (k, m) in manifests.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        chart
            .draw_series(m.variants.iter().map(|v| {
                EmptyElement::at((v.latency_ms, v.accuracy * 100.0))
                    + Circle::new((0, 0), 5, colour.filled())
                    + Text::new(v.name.clone(), (7, -7), ("sans-serif", 11))
            }))
            .map_err(&e)?
            .label(m.model.as_str())
            .legend(move |(x, y)| Circle::new((x + 5, y), 5, colour.filled()));
        chart
            .draw_series(m.dropped.iter().map(|v| {
                EmptyElement::at((v.latency_ms, v.accuracy * 100.0))
                    + Circle::new((0, 0), 5, colour.stroke_width(1))
                    + Text::new(v.name.clone(), (7, -7), ("sans-serif", 11))
            }))
            .map_err(&e)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(&e)?;
    root.present().map_err(&e)?;
    Ok(())
}
