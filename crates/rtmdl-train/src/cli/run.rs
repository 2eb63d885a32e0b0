//! What the `scale` command does (with the `train` feature).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use rtmdl_scenes::Dataset;

use super::ScaleArgs;
use crate::scale::{sha256_file, variant_arch};
use crate::{
    Kind, Manifest, ScaleEvent, Split, TrainOptions, evaluate, export_onnx, fit_budget, train,
};

/// Scales every base of `a` into `a.out`, applies the storage budget, prints
/// the table and writes it with the files' sha256 to `OUT/README.md`.
pub fn scale(a: &ScaleArgs) -> anyhow::Result<()> {
    a.check()?;
    let t0 = Instant::now();
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let mut manifests = Vec::new();
    let mut naive = Vec::new();
    for base in &a.bases {
        let name = match &a.name {
            Some(n) => n.clone(),
            None => base
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("model")
                .to_string(),
        };
        let kind = name.parse::<Kind>().ok().filter(|k| *k != Kind::SignScenes);
        let (train_d, eval_d) = data(a, base, &name, kind)?;
        let m = family(a, base, &name, &train_d, &eval_d)?;
        if a.naive {
            let kind = kind.with_context(|| {
                format!("--naive: no generated data for model `{name}` (lights or signs only)")
            })?;
            naive_levels(a, base, &m, kind, &train_d, &eval_d, &mut naive)?;
        }
        manifests.push(m);
    }
    let mut budget_note = String::new();
    if let Some(b) = a.storage_budget {
        // A budget applies to the whole family, whatever an earlier run dropped.
        for m in &mut manifests {
            let back: Vec<_> = m.dropped.drain(..).collect();
            m.variants.extend(back);
        }
        let before: u64 = manifests.iter().map(Manifest::storage).sum();
        fit_budget(&mut manifests, b)
            .with_context(|| format!("storage budget {}", rtmdl_core::units::fmt_size(b)))?;
        let after: u64 = manifests.iter().map(Manifest::storage).sum();
        let _ = writeln!(
            budget_note,
            "Storage budget {b} B: all variants need {before} B; kept {after} B."
        );
        for m in &manifests {
            let names: Vec<&str> = m.dropped.iter().map(|r| r.name.as_str()).collect();
            let _ = writeln!(budget_note, "* `{}` dropped: {names:?}", m.model);
            m.save(Manifest::path_in(&a.out, &m.model))?;
        }
        eprint!("{budget_note}");
    }
    let total = t0.elapsed().as_secs_f32();
    let text = report(a, &manifests, &naive, &budget_note, total)?;
    print!("{text}");
    let readme = a.out.join("README.md");
    std::fs::write(&readme, &text).with_context(|| format!("cannot write {}", readme.display()))?;
    eprintln!("wrote {} in {total:.0} s", a.out.display());
    Ok(())
}

/// The training and evaluation data for `base`: the folders given, else
/// generated (seeded, cached) for its model `kind`.
fn data(
    a: &ScaleArgs,
    base: &Path,
    name: &str,
    kind: Option<Kind>,
) -> anyhow::Result<(Dataset, Dataset)> {
    let load = |p: &Path, what: &str| {
        Dataset::load(p).with_context(|| {
            format!(
                "--{what} {}: not a dataset folder written by rtmdl-scenes (the demo writes them under OUT/data)",
                p.display()
            )
        })
    };
    let generated = |split: Split, n: usize| -> anyhow::Result<Dataset> {
        let kind = kind.with_context(|| {
            format!(
                "{}: no generated data for model `{name}` (lights or signs only): give --train and --val",
                base.display()
            )
        })?;
        Ok(rtmdl_scenes::cached(kind, split, n, a.seed, &a.data)?.0)
    };
    let train = match &a.train {
        Some(p) => load(p, "train")?,
        None => generated(Split::Train, a.train_n)?,
    };
    let eval = match &a.val {
        Some(p) => load(p, "val")?,
        None => generated(a.eval_split, a.eval_n)?,
    };
    eprintln!(
        "{name}: scaling {} (train {}, evaluation {})",
        base.display(),
        train.len(),
        eval.len()
    );
    Ok((train, eval))
}

/// One family, behind a progress bar; every finished variant on one line.
fn family(
    a: &ScaleArgs,
    base: &Path,
    name: &str,
    train_d: &Dataset,
    eval_d: &Dataset,
) -> anyhow::Result<Manifest> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "  {msg} [{bar:30}] {pos}/{len} ({elapsed}, ETA {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let progress = |e: ScaleEvent| match e {
        ScaleEvent::Stage { name, total } => {
            bar.set_length(total as u64);
            bar.set_position(0);
            bar.set_message(name);
        }
        ScaleEvent::Step { done, total } => {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
        ScaleEvent::Variant(r) => bar.suspend(|| {
            eprintln!(
                "  => {} {}: accuracy {:.2} %, {:.3} ms, private {} B ({:.0} s)",
                r.model,
                r.name,
                100.0 * r.accuracy,
                r.latency_ms,
                r.private_bytes,
                r.seconds
            )
        }),
        ScaleEvent::Reused { manifest } => {
            bar.suspend(|| eprintln!("  up to date: {}", manifest.display()))
        }
    };
    let ts = Instant::now();
    let m = crate::scale(name, base, train_d, eval_d, &a.options(), &a.out, &progress);
    bar.finish_and_clear();
    let m = m.with_context(|| format!("scaling {}", base.display()))?;
    eprintln!(
        "{name}: {} variants, storage {} B, {:.0} s",
        m.variants.len(),
        m.storage(),
        ts.elapsed().as_secs_f32()
    );
    Ok(m)
}

/// One independently trained width level (`--naive`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Naive {
    model: String,
    width: f32,
    accuracy: f64,
    bytes: u64,
    seconds: f32,
}

/// `--naive`: every width level of `m` trained from scratch at full depth
/// with the base recipe (cached in `OUT/{model}.naive.json`), into `out`.
fn naive_levels(
    a: &ScaleArgs,
    base: &Path,
    m: &Manifest,
    kind: Kind,
    train_d: &Dataset,
    eval_d: &Dataset,
    out: &mut Vec<Naive>,
) -> anyhow::Result<()> {
    let model = m.model.as_str();
    // Cached per base model and evaluation data: `{model}.naive.json`.
    let cache = a.out.join(format!("{model}.naive.json"));
    let key = format!(
        "{} {} {} {}",
        m.source.base_sha256, m.source.val.hash, m.source.train.hash, a.seed
    );
    let mut cached: Vec<Naive> = std::fs::read(&cache)
        .ok()
        .and_then(|b| serde_json::from_slice::<(String, Vec<Naive>)>(&b).ok())
        .filter(|(k, _)| *k == key)
        .map(|(_, rows)| rows)
        .unwrap_or_default();
    let (val_d, _) = rtmdl_scenes::cached(kind, Split::Val, 2000, a.seed, &a.data)?;
    let (engine, _) = rtmdl_engine::select(a.engine)?;
    for &w in &m.source.options.widths {
        if let Some(n) = cached.iter().find(|n| n.width == w) {
            eprintln!("  naive {model} w{w}: cached in {}", cache.display());
            out.push(n.clone());
            continue;
        }
        let arch = variant_arch(&m.base_arch, w, m.base_arch.blocks)?;
        if w >= 1.0 {
            // The base recipe at full width is the base model itself.
            let ev = evaluate(base, eval_d, engine.as_ref())?;
            out.push(Naive {
                model: model.into(),
                width: w,
                accuracy: ev.accuracy as f64,
                bytes: 4 * arch.param_count() as u64,
                seconds: 0.0,
            });
            cached.push(out[out.len() - 1].clone());
            continue;
        }
        let t = Instant::now();
        let opts = TrainOptions {
            epochs: 10,
            seed: a.seed,
            threads: a.threads,
            ..Default::default()
        };
        eprintln!(
            "{model}: naive width {w}: training {} from scratch",
            arch.name
        );
        let trained = train(&arch, train_d, &val_d, &opts, &mut |_, _, _| {})?;
        let path = a.out.join(format!("naive-{}.onnx", arch.name));
        export_onnx(&arch, &trained.weights, &path)?;
        let ev = evaluate(&path, eval_d, engine.as_ref())?;
        let n = Naive {
            model: model.into(),
            width: w,
            accuracy: ev.accuracy as f64,
            bytes: 4 * arch.param_count() as u64,
            seconds: t.elapsed().as_secs_f32(),
        };
        eprintln!(
            "  naive {} w{w}: accuracy {:.2} %, {} B of weights ({:.0} s)",
            n.model,
            100.0 * n.accuracy,
            n.bytes,
            n.seconds
        );
        cached.push(n.clone());
        std::fs::write(&cache, serde_json::to_vec_pretty(&(&key, &cached))?)?;
        out.push(n);
    }
    std::fs::write(&cache, serde_json::to_vec_pretty(&(&key, &cached))?)?;
    Ok(())
}

/// What `README.md` says about running the command again.
const REPRODUCE: &str = "Running the same command again on the same base models writes the same \
bytes into every `.safetensors` and `.onnx` file (the re-fit is seeded and its sums are taken \
in a fixed order, whatever the thread count); only the measured latencies, the wall times and \
the Pareto flags that follow from the latencies change in the manifests.";

/// `README.md` of the output folder: how it was made, the variants, the
/// storage, the files with their sha256 and, with `--naive`, the comparison.
fn report(
    a: &ScaleArgs,
    ms: &[Manifest],
    naive: &[Naive],
    budget: &str,
    total: f32,
) -> anyhow::Result<String> {
    let argv: Vec<String> = std::env::args()
        .skip_while(|x| x != "scale")
        .skip(1)
        .collect();
    let mut s = String::new();
    let _ = writeln!(s, "# rtmdl variant families\n");
    let _ = writeln!(
        s,
        "Written by\n\n```sh\ncargo run --release -p rtmdl-train -- scale{}{}\n```\n\n\
         in {total:.0} s (scaling runs are reused when the base, options and data are unchanged; \
         each manifest records its own time). Accuracy on {} ({} images), latency the median of \
         {} batch-1 runs, both through `{}`. {REPRODUCE}\n",
        if argv.is_empty() { "" } else { " " },
        argv.join(" "),
        match &a.val {
            Some(p) => format!("`{}`", p.display()),
            None => format!("the generated `{}` split", a.eval_split),
        },
        ms.first().map_or(0, |m| m.source.val.n),
        a.latency_runs,
        ms.first().map_or("?", |m| m.engine.as_str())
    );
    s += &variant_table(ms);
    s += &storage_table(ms);
    if !budget.is_empty() {
        let _ = writeln!(s, "\n{budget}");
    }
    s += &files_table(a, ms)?;
    if !naive.is_empty() {
        s += &naive_table(ms, naive);
    }
    Ok(s)
}

fn variant_table(ms: &[Manifest]) -> String {
    let mut s = String::from(
        "| model | variant | width | depth | channels | accuracy | box IoU | latency ms | MMACs | shared B | private B | Pareto | re-fit | time s |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for m in ms {
        for (r, kept) in m
            .variants
            .iter()
            .map(|r| (r, true))
            .chain(m.dropped.iter().map(|r| (r, false)))
        {
            let _ = writeln!(
                s,
                "| `{}` | `{}`{} | {} | {} | {}/{}/{} | {:.2} % | {} | {:.3} | {:.2} | {} | {} | {} | {} | {:.0} |",
                r.model,
                r.name,
                if kept { "" } else { " (dropped)" },
                r.width,
                r.depth,
                r.arch.c1,
                r.arch.c2,
                r.arch.c3,
                100.0 * r.accuracy,
                r.box_iou.map_or("–".into(), |v| format!("{v:.3}")),
                r.latency_ms,
                r.macs as f64 / 1e6,
                r.shared_bytes,
                r.private_bytes,
                if r.pareto { "yes" } else { "" },
                if r.refit { "yes" } else { "base" },
                r.seconds
            );
        }
    }
    s
}

fn storage_table(ms: &[Manifest]) -> String {
    let mut s = String::from(
        "\n| model | shared B | private B (all variants) | family storage B | base ONNX B | scaling time s |\n\
         |---|---|---|---|---|---|\n",
    );
    for m in ms {
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} | {} | {:.0} |",
            m.model,
            m.shared_bytes,
            m.storage_all() - m.shared_bytes,
            m.storage_all(),
            m.source.base_bytes,
            m.seconds
        );
    }
    s
}

/// Every file of the families with its size and sha256 (the manifests record
/// the same), and the base models they were made from.
fn files_table(a: &ScaleArgs, ms: &[Manifest]) -> anyhow::Result<String> {
    let mut s = String::from("\n## Files\n\n| file | bytes | sha256 |\n|---|---|---|\n");
    for m in ms {
        let _ = writeln!(
            s,
            "| `{}` (base model) | {} | `{}` |",
            m.base.display(),
            m.source.base_bytes,
            m.source.base_sha256
        );
        let files = std::iter::once(&m.shared_file)
            .chain(m.rows().flat_map(|r| [&r.private_file, &r.file]));
        for f in files {
            let path = a.out.join(f);
            let bytes = std::fs::metadata(&path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .len();
            let _ = writeln!(
                s,
                "| `{}` | {bytes} | `{}` |",
                f.display(),
                sha256_file(&path)?
            );
        }
    }
    Ok(s)
}

fn naive_table(ms: &[Manifest], naive: &[Naive]) -> String {
    let mut s = String::from(
        "\n## Against independently trained width levels\n\n\
         Each width level trained from scratch at full depth with the base recipe \
         (10 epochs; width 1 is the base model itself), stored whole (4 bytes per \
         parameter), next to the shared family's full-depth variant of that width.\n\n\
         | model | width | independent accuracy | independent B | family accuracy | family private B | train time s |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for n in naive {
        let fam = ms.iter().find(|m| m.model == n.model);
        let row = fam.and_then(|m| {
            m.rows()
                .find(|r| r.width == n.width && r.depth == m.base_arch.blocks)
        });
        let _ = writeln!(
            s,
            "| `{}` | {} | {:.2} % | {} | {} | {} | {:.0} |",
            n.model,
            n.width,
            100.0 * n.accuracy,
            n.bytes,
            row.map_or("–".into(), |r| format!("{:.2} %", 100.0 * r.accuracy)),
            row.map_or("–".into(), |r| r.private_bytes.to_string()),
            n.seconds
        );
    }
    for m in ms {
        let ind: u64 = naive
            .iter()
            .filter(|n| n.model == m.model)
            .map(|n| n.bytes)
            .sum();
        let fam_full: u64 = m.shared_bytes
            + m.rows()
                .filter(|r| r.depth == m.base_arch.blocks)
                .map(|r| r.private_bytes)
                .sum::<u64>();
        let _ = writeln!(
            s,
            "\n`{}`: the width levels as independent models need {ind} B; as one shared family (full depth) {fam_full} B.",
            m.model
        );
    }
    s
}
