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
    bars(
        path,
        "Deadline-miss rate by policy (real runs)",
        "miss rate %",
        light,
        heavy,
        None,
        |r| Some(r.run.miss_rate * 100.0),
    )
}

/// Grouped bars: timely accuracy (frames answered correctly and on time) by
/// policy, one bar per load; the demo report's first figure.
pub fn timely_accuracy(path: &Path, light: &[Row], heavy: &[Row]) -> Result<()> {
    bars(
        path,
        "Timely accuracy by policy: frames answered right and on time (real runs)",
        "timely accuracy %",
        light,
        heavy,
        Some(100.0),
        |r| r.run.timely_accuracy.map(|t| t * 100.0),
    )
}

/// Grouped bars by policy (the light load's rows name the groups), one bar
/// per load, each policy's name centred under its group; `ymax` fixed or
/// from the data.
fn bars(
    path: &Path,
    caption: &str,
    y_desc: &str,
    light: &[Row],
    heavy: &[Row],
    ymax: Option<f64>,
    value: impl Fn(&Row) -> Option<f64>,
) -> Result<()> {
    let e = err(path);
    let root = SVGBackend::new(path, (800, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(&e)?;
    let n = light.len().max(heavy.len()).max(1);
    // Room above the tallest bar (or the fixed top) for the legend; no
    // tick labels above the top.
    let top = ymax.unwrap_or_else(|| {
        light
            .iter()
            .chain(heavy)
            .filter_map(&value)
            .fold(1.0f64, f64::max)
    });
    let ymax = top * 1.25;
    let names: Vec<&str> = if light.len() >= heavy.len() {
        light.iter().map(|r| r.label).collect()
    } else {
        heavy.iter().map(|r| r.label).collect()
    };
    // Group i is centred on x = i, where the axis puts its integer ticks:
    // each name sits under its own bars.
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..ymax)
        .map_err(&e)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() > 1e-6 || i < 0.0 {
                return String::new();
            }
            names
                .get(i as usize)
                .map(|s| s.to_string())
                .unwrap_or_default()
        })
        .y_label_formatter(&|y| {
            if *y > top * 1.0001 {
                String::new()
            } else if top < 10.0 {
                format!("{y:.1}")
            } else {
                format!("{y:.0}")
            }
        })
        .y_desc(y_desc)
        .draw()
        .map_err(&e)?;
    for (k, (runs, name)) in [(light, "light load"), (heavy, "heavy load")]
        .iter()
        .enumerate()
    {
        let colour = COLOURS[k];
        chart
            .draw_series(runs.iter().enumerate().filter_map(|(i, r)| {
                let x0 = i as f64 - 0.4 + 0.4 * k as f64;
                let v = value(r)?;
                Some(Rectangle::new([(x0, 0.0), (x0 + 0.38, v)], colour.filled()))
            }))
            .map_err(&e)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
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
    // Points first, then the names where they do not overlap another name
    // or a point (tried right, left, above and below the point); a name
    // that fits nowhere is left out (the table lists every variant).
    let mut points = Vec::new();
    for (k, m) in manifests.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        chart
            .draw_series(
                m.variants
                    .iter()
                    .map(|v| Circle::new((v.latency_ms, v.accuracy * 100.0), 5, colour.filled())),
            )
            .map_err(&e)?
            .label(m.model.as_str())
            .legend(move |(x, y)| Circle::new((x + 5, y), 5, colour.filled()));
        chart
            .draw_series(m.dropped.iter().map(|v| {
                Circle::new(
                    (v.latency_ms, v.accuracy * 100.0),
                    5,
                    colour.stroke_width(1),
                )
            }))
            .map_err(&e)?;
        points.extend(m.variants.iter().chain(&m.dropped).map(|v| {
            let at = chart.backend_coord(&(v.latency_ms, v.accuracy * 100.0));
            (at, v.name.clone())
        }));
    }
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    for (text, (x, y)) in place_labels(&points, [xs.start, ys.start, xs.end, ys.end]) {
        root.draw(&Text::new(text, (x, y), ("sans-serif", 11)))
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

/// Where to write each point's name (the backend's pixel position of its
/// top-left corner; the points are in the same pixels), so that
/// no two names and no name and point overlap and every name stays inside
/// `area` (x0, y0, x1, y1: the plotting area, off the axes' labels): tried
/// right, left, above, below; names that fit nowhere are left out.
fn place_labels(points: &[((i32, i32), String)], area: [i32; 4]) -> Vec<(String, (i32, i32))> {
    const H: i32 = 12;
    let width = |s: &str| 6 * s.chars().count() as i32 + 2;
    let overlaps =
        |a: [i32; 4], b: [i32; 4]| a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
    let mut taken: Vec<[i32; 4]> = points
        .iter()
        .map(|((x, y), _)| [x - 5, y - 5, x + 5, y + 5])
        .collect();
    let mut out = Vec::new();
    for ((x, y), name) in points {
        let w = width(name);
        let tries = [
            (x + 7, y - H / 2),
            (x - 7 - w, y - H / 2),
            (x - w / 2, y - 7 - H),
            (x - w / 2, y + 7),
            (x + 7, y - H - 4),
            (x + 7, y + 4),
        ];
        if let Some(&(lx, ly)) = tries.iter().find(|&&(lx, ly)| {
            let b = [lx, ly, lx + w, ly + H];
            let inside = b[0] >= area[0] && b[1] >= area[1] && b[2] <= area[2] && b[3] <= area[3];
            inside && !taken.iter().any(|&t| overlaps(t, b))
        }) {
            taken.push([lx, ly, lx + w, ly + H]);
            out.push((name.clone(), (lx, ly)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_overlap_each_other_or_a_point() {
        // Eight variants bunched together, as the small ones of a family are.
        let points: Vec<((i32, i32), String)> = (0..8)
            .map(|i| ((100 + 3 * i, 200 - 2 * i), format!("w0{i}5-d1")))
            .chain([((400, 50), "w100-d2".to_string())])
            .collect();
        let placed = place_labels(&points, [0, 0, 800, 400]);
        let boxes: Vec<[i32; 4]> = placed
            .iter()
            .map(|(n, (x, y))| [*x, *y, x + 6 * n.len() as i32 + 2, y + 12])
            .collect();
        for (i, a) in boxes.iter().enumerate() {
            for b in &boxes[i + 1..] {
                assert!(
                    !(a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]),
                    "{a:?} {b:?}"
                );
            }
            for ((x, y), _) in &points {
                assert!(!(a[0] < x + 5 && x - 5 < a[2] && a[1] < y + 5 && y - 5 < a[3]));
            }
        }
        // The lone point keeps its name, to its right.
        assert!(placed.iter().any(|(n, (x, _))| n == "w100-d2" && *x == 407));
        // At the right edge of the area a name goes to the left.
        let edge = place_labels(&[((795, 100), "w100-d1".to_string())], [0, 0, 800, 400]);
        assert!(edge[0].1.0 + 44 <= 800, "{edge:?}");
    }
}
