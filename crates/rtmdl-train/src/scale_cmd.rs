//! `rtmdl-train scale`: the variant families of the base models (see
//! `rtmdl_train::scale`), with a table, an optional storage budget and an optional
//! comparison against independently trained width levels.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use rtmdl_train::scale::variant_arch;
use rtmdl_train::{
    Kind, Manifest, ScaleEvent, ScaleOptions, Split, TrainOptions, evaluate, export_onnx,
    fit_budget, scale, train,
};

pub const HELP: &str = "\
rtmdl-train scale: make the width/depth variant families of the base models (shared
layers stored once, private re-fitted heads), measure them through an rtmdl engine
and write ONNX files, the parts, a manifest per model and a README with the table.

USAGE: rtmdl-train scale [OPTIONS]

OPTIONS:
  --base DIR          base models, NAME.onnx               [assets/models]
  --out DIR           where the variants go                [target/variants]
  --data DIR          dataset cache                        [target/rtmdl-data]
  --models LIST       comma-separated: lights,signs        [lights,signs]
  --seed N            data seed                            [1]
  --train-n N         training samples for the re-fit      [per model: lights 10000, signs 16000]
  --eval-split NAME   split the accuracy is measured on    [test]
  --eval-n N          its samples                          [2000]
  --widths LIST       width levels                         [1,0.75,0.5,0.25]
  --depths LIST       depth levels (blocks kept)           [all levels of the base]
  --epochs N          head re-fit epochs (cached features) [1]
  --tune-epochs N     private tuning epochs (end to end)   [4]
  --batch N           re-fit batch size                    [64]
  --lr X              re-fit peak learning rate            [2e-2]
  --calib-n N         images for the BN re-calibration     [1024]
  --threads N         threads (0: all cores)               [0]
  --engine NAME       engine for accuracy and latency      [tract]
  --latency-runs N    batch-1 runs per latency median      [100]
  --budget SIZE       storage budget over all families (bytes, or with KiB / MiB)
  --naive             also train each width level as an independent model (full
                      depth, the base recipe) and compare storage and accuracy
  -h, --help          this text
";

struct Args {
    base: PathBuf,
    out: PathBuf,
    data: PathBuf,
    models: Vec<Kind>,
    seed: u64,
    train_n: Option<usize>,
    eval_split: Split,
    eval_n: usize,
    opts: ScaleOptions,
    budget: Option<u64>,
    naive: bool,
    argv: Vec<String>,
}

fn parse_size(v: &str) -> anyhow::Result<u64> {
    let v = v.trim();
    let (num, mul) = if let Some(n) = v.strip_suffix("MiB") {
        (n, 1u64 << 20)
    } else if let Some(n) = v.strip_suffix("KiB") {
        (n, 1u64 << 10)
    } else if let Some(n) = v.strip_suffix('B') {
        (n, 1)
    } else {
        (v, 1)
    };
    let x: f64 = num
        .trim()
        .parse()
        .with_context(|| format!("--budget: not a size: {v}"))?;
    Ok((x * mul as f64) as u64)
}

fn parse(argv: Vec<String>) -> anyhow::Result<Args> {
    let mut a = Args {
        base: "assets/models".into(),
        out: "target/variants".into(),
        data: "target/rtmdl-data".into(),
        models: vec![Kind::Lights, Kind::Signs],
        seed: 1,
        train_n: None,
        eval_split: Split::Test,
        eval_n: 2000,
        opts: ScaleOptions::default(),
        budget: None,
        naive: false,
        argv: argv.clone(),
    };
    let mut it = argv.into_iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                std::process::exit(0);
            }
            "--naive" => {
                a.naive = true;
                continue;
            }
            _ => {}
        }
        let v = it
            .next()
            .with_context(|| format!("{flag} needs a value (see scale --help)"))?;
        let num = |v: &str| {
            v.parse::<usize>()
                .with_context(|| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--base" => a.base = v.into(),
            "--out" => a.out = v.into(),
            "--data" => a.data = v.into(),
            "--models" => {
                a.models = v
                    .split(',')
                    .map(|m| match m.trim() {
                        "lights" => Ok(Kind::Lights),
                        "signs" => Ok(Kind::Signs),
                        o => bail!("--models: unknown model {o:?} (lights, signs)"),
                    })
                    .collect::<anyhow::Result<_>>()?
            }
            "--seed" => a.seed = v.parse().with_context(|| format!("--seed: {v}"))?,
            "--train-n" => a.train_n = Some(num(&v)?),
            "--eval-split" => {
                a.eval_split = match v.as_str() {
                    "test" => Split::Test,
                    "val" => Split::Val,
                    o => bail!("--eval-split: {o:?} (test, val)"),
                }
            }
            "--eval-n" => a.eval_n = num(&v)?,
            "--widths" => {
                a.opts.widths = v
                    .split(',')
                    .map(|x| x.trim().parse::<f32>())
                    .collect::<Result<_, _>>()
                    .with_context(|| format!("--widths: {v}"))?
            }
            "--depths" => {
                a.opts.depths = v
                    .split(',')
                    .map(|x| x.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .with_context(|| format!("--depths: {v}"))?
            }
            "--epochs" => a.opts.epochs = num(&v)?,
            "--batch" => a.opts.batch = num(&v)?,
            "--lr" => a.opts.lr = v.parse().with_context(|| format!("--lr: {v}"))?,
            "--calib-n" => a.opts.calib_n = num(&v)?,
            "--threads" => a.opts.threads = num(&v)?,
            "--engine" => a.opts.engine = v.parse()?,
            "--latency-runs" => a.opts.latency_runs = num(&v)?,
            "--tune-epochs" => a.opts.tune_epochs = num(&v)?,
            "--budget" => a.budget = Some(parse_size(&v)?),
            _ => bail!("unknown option {flag} (see scale --help)"),
        }
    }
    Ok(a)
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

pub fn main(argv: Vec<String>) -> anyhow::Result<()> {
    let args = parse(argv)?;
    let t0 = Instant::now();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut manifests = Vec::new();
    let mut naive = Vec::new();
    for &kind in &args.models {
        let def_n = if kind == Kind::Lights { 10000 } else { 16000 };
        let train_n = args.train_n.unwrap_or(def_n);
        let (train_d, _) =
            rtmdl_scenes::cached(kind, Split::Train, train_n, args.seed, &args.data)?;
        let (eval_d, _) =
            rtmdl_scenes::cached(kind, args.eval_split, args.eval_n, args.seed, &args.data)?;
        let model = kind.as_str();
        let base = args.base.join(format!("{model}.onnx"));
        eprintln!(
            "{model}: scaling {} (train {train_n}, {} {})",
            base.display(),
            args.eval_split,
            args.eval_n
        );
        let last = std::cell::Cell::new(Instant::now());
        let progress = |e: ScaleEvent| match e {
            ScaleEvent::Stage { name, total } => {
                eprintln!(
                    "  {name}{}",
                    if total > 0 {
                        format!(" ({total} steps)")
                    } else {
                        String::new()
                    }
                );
                last.set(Instant::now());
            }
            ScaleEvent::Step { done, total } => {
                if last.get().elapsed().as_secs_f32() > 10.0 {
                    eprintln!("    {done}/{total}");
                    last.set(Instant::now());
                }
            }
            ScaleEvent::Variant(r) => eprintln!(
                "  => {} {}: accuracy {:.2} %, {:.3} ms, private {} B ({:.0} s)",
                r.model,
                r.name,
                100.0 * r.accuracy,
                r.latency_ms,
                r.private_bytes,
                r.seconds
            ),
            ScaleEvent::Reused { manifest } => {
                eprintln!("  up to date: {}", manifest.display())
            }
        };
        let ts = Instant::now();
        let m = scale(
            model, &base, &train_d, &eval_d, &args.opts, &args.out, &progress,
        )?;
        eprintln!(
            "{model}: {} variants, storage {} B, {:.0} s",
            m.variants.len(),
            m.storage(),
            ts.elapsed().as_secs_f32()
        );
        if args.naive {
            // Cached per base model and evaluation data: `{model}.naive.json`.
            let cache = args.out.join(format!("{model}.naive.json"));
            let key = format!(
                "{} {} {} {}",
                m.source.base_hash, m.source.val.hash, train_n, args.seed
            );
            let mut cached: Vec<Naive> = std::fs::read(&cache)
                .ok()
                .and_then(|b| serde_json::from_slice::<(String, Vec<Naive>)>(&b).ok())
                .filter(|(k, _)| *k == key)
                .map(|(_, rows)| rows)
                .unwrap_or_default();
            let (val_d, _) = rtmdl_scenes::cached(kind, Split::Val, 2000, args.seed, &args.data)?;
            let (engine, _) = rtmdl_engine::select(args.opts.engine)?;
            for &w in &m.source.options.widths {
                if let Some(n) = cached.iter().find(|n| n.width == w) {
                    eprintln!("  naive {model} w{w}: cached in {}", cache.display());
                    naive.push(n.clone());
                    continue;
                }
                let arch = variant_arch(&m.base_arch, w, m.base_arch.blocks)?;
                if w >= 1.0 {
                    // The base recipe at full width is the base model itself.
                    let ev = evaluate(&base, &eval_d, engine.as_ref())?;
                    naive.push(Naive {
                        model: model.into(),
                        width: w,
                        accuracy: ev.accuracy as f64,
                        bytes: 4 * arch.param_count() as u64,
                        seconds: 0.0,
                    });
                    cached.push(naive[naive.len() - 1].clone());
                    continue;
                }
                let t = Instant::now();
                let opts = TrainOptions {
                    epochs: 10,
                    seed: args.seed,
                    threads: args.opts.threads,
                    ..Default::default()
                };
                eprintln!(
                    "{model}: naive width {w}: training {} from scratch",
                    arch.name
                );
                let trained = train(&arch, &train_d, &val_d, &opts, &mut |_, _, _| {})?;
                let path = args.out.join(format!("naive-{}.onnx", arch.name));
                export_onnx(&arch, &trained.weights, &path)?;
                let ev = evaluate(&path, &eval_d, engine.as_ref())?;
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
                naive.push(n);
            }
            std::fs::write(&cache, serde_json::to_vec_pretty(&(&key, &cached))?)?;
        }
        manifests.push(m);
    }
    let mut budget_note = String::new();
    if let Some(b) = args.budget {
        let before: u64 = manifests.iter().map(Manifest::storage).sum();
        fit_budget(&mut manifests, b)?;
        let after: u64 = manifests.iter().map(Manifest::storage).sum();
        let _ = writeln!(
            budget_note,
            "Storage budget {b} B: all variants need {before} B; kept {after} B."
        );
        for m in &manifests {
            let names: Vec<&str> = m.dropped.iter().map(|r| r.name.as_str()).collect();
            let _ = writeln!(budget_note, "* `{}` dropped: {names:?}", m.model);
        }
        eprint!("{budget_note}");
        for m in &manifests {
            m.save(Manifest::path_in(&args.out, &m.model))?;
        }
    }
    let total = t0.elapsed().as_secs_f32();
    let text = report(&args, &manifests, &naive, &budget_note, total);
    print!("{text}");
    std::fs::write(args.out.join("README.md"), &text)?;
    eprintln!("wrote {} in {total:.0} s", args.out.display());
    Ok(())
}

fn report(args: &Args, ms: &[Manifest], naive: &[Naive], budget: &str, total: f32) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# rtmdl variant families\n");
    let _ = writeln!(
        s,
        "Written by `cargo run --release -p rtmdl-train -- scale {}` in {total:.0} s \
         (scaling runs are reused when the base, options and data are unchanged; each \
         manifest records its own time). Accuracy on the `{}` split ({} samples), latency \
         the median of {} batch-1 runs, both through `{}`.\n",
        args.argv.join(" "),
        args.eval_split,
        args.eval_n,
        args.opts.latency_runs,
        ms.first().map_or("?", |m| m.engine.as_str())
    );
    let _ = writeln!(
        s,
        "| model | variant | width | depth | channels | accuracy | box IoU | latency ms | MMACs | shared B | private B | Pareto | re-fit | time s |"
    );
    let _ = writeln!(
        s,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
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
    let _ = writeln!(
        s,
        "\n| model | shared B | private B (all variants) | family storage B | base ONNX B | scaling time s |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|");
    for m in ms {
        let base_b = std::fs::metadata(&m.base).map_or(0, |x| x.len());
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} | {} | {:.0} |",
            m.model,
            m.shared_bytes,
            m.storage_all() - m.shared_bytes,
            m.storage_all(),
            base_b,
            m.seconds
        );
    }
    if !budget.is_empty() {
        let _ = writeln!(s, "\n{budget}");
    }
    if !naive.is_empty() {
        let _ = writeln!(
            s,
            "\n## Against independently trained width levels\n\n\
             Each width level trained from scratch at full depth with the base recipe \
             (10 epochs; width 1 is the base model itself), stored whole (4 bytes per \
             parameter), next to the shared family's full-depth variant of that width.\n"
        );
        let _ = writeln!(
            s,
            "| model | width | independent accuracy | independent B | family accuracy | family private B | train time s |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        for n in naive {
            let fam = ms.iter().find(|m| m.model == n.model);
            let row = fam.and_then(|m| {
                m.variants
                    .iter()
                    .chain(&m.dropped)
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
                + m.variants
                    .iter()
                    .chain(&m.dropped)
                    .filter(|r| r.depth == m.base_arch.blocks)
                    .map(|r| r.private_bytes)
                    .sum::<u64>();
            let _ = writeln!(
                s,
                "\n`{}`: the width levels as independent models need {ind} B; as one shared family (full depth) {fam_full} B.",
                m.model
            );
        }
    }
    s
}
