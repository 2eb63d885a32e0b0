//! `rtmdl-train`: generates the synthetic data (cached), trains the base models,
//! evaluates them on the test split through an rtmdl engine and writes the ONNX files,
//! the weights and a README with the numbers.
//!
//! ```text
//! cargo run --release -p rtmdl-train -- --out assets/models
//! ```
//!
//! `rtmdl-train scale` makes the variant families of those models (see
//! `rtmdl_train::cli` and `scale --help`; the defaults make `assets/variants`):
//!
//! ```text
//! cargo run --release -p rtmdl-train -- scale -o assets/variants
//! ```

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};
use rtmdl_engine::EngineKind;
use rtmdl_train::cli::ScaleArgs;
use rtmdl_train::{
    Arch, Eval, Kind, Split, TrainOptions, Trained, evaluate, export_onnx, save_model, train,
};

/// Train rtmdl's base models (traffic lights, traffic signs) on seeded
/// synthetic data, evaluate them on the test split and write ONNX, weights
/// and a README.
#[derive(Parser)]
#[command(version, about, long_about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    train: Args,
}

#[derive(Subcommand)]
enum Command {
    /// Make the width × depth variant families of the base models (shared
    /// layers stored once, private re-fitted heads), measure them through an
    /// rtmdl engine and write the ONNX files, the parts, a manifest per model
    /// and a README with the table and every file's sha256 (the same command
    /// as `rtmdl scale`).
    Scale(ScaleArgs),
}

#[derive(clap::Args)]
struct Args {
    /// Where the models go.
    #[arg(long, default_value = "assets/models")]
    out: PathBuf,
    /// Dataset cache.
    #[arg(long, default_value = "target/rtmdl-data")]
    data: PathBuf,
    /// The models to train.
    #[arg(long, value_delimiter = ',', default_value = "lights,signs", value_parser = model_parser())]
    models: Vec<Kind>,
    /// Data and training seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Training samples per model [default: lights 10000, signs 16000].
    #[arg(long)]
    train_n: Option<usize>,
    /// Validation samples.
    #[arg(long, default_value_t = 2000)]
    val_n: usize,
    /// Test samples.
    #[arg(long, default_value_t = 2000)]
    test_n: usize,
    /// Epochs [default: 10 per model].
    #[arg(long)]
    epochs: Option<usize>,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Peak learning rate (AdamW).
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// Training threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Engine for the test evaluation.
    #[arg(long, default_value = "tract", value_parser = engine_parser())]
    engine: EngineKind,
}

fn model_parser() -> impl TypedValueParser<Value = Kind> {
    PossibleValuesParser::new(["lights", "signs"]).try_map(|s| s.parse::<Kind>())
}

fn engine_parser() -> impl TypedValueParser<Value = EngineKind> {
    PossibleValuesParser::new(["tract", "ort", "cuda", "auto"]).try_map(|s| s.parse::<EngineKind>())
}

/// Per-model defaults.
fn recipe(kind: Kind) -> (Arch, usize, usize) {
    match kind {
        Kind::Lights => (Arch::lights(), 10000, 10),
        _ => (Arch::signs(), 16000, 10),
    }
}

struct Report {
    arch: Arch,
    sizes: [usize; 3],
    trained: Trained,
    eval: Eval,
    onnx_bytes: u64,
    weight_bytes: u64,
    data_seconds: f32,
    opts: TrainOptions,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Scale(a)) => rtmdl_train::cli::scale(&a),
        None => train_all(&cli.train),
    }
}

/// Trains, exports and evaluates every model of `args`, then writes the
/// README and `metrics.json`.
fn train_all(args: &Args) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let (engine, note) = rtmdl_engine::select(args.engine)?;
    eprintln!("{note}");
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut reports = Vec::new();
    for &kind in &args.models {
        let (arch, def_n, def_epochs) = recipe(kind);
        let sizes = [args.train_n.unwrap_or(def_n), args.val_n, args.test_n];
        let td = Instant::now();
        let mut data = Vec::new();
        for (split, n) in [Split::Train, Split::Val, Split::Test]
            .into_iter()
            .zip(sizes)
        {
            let (d, hit) = rtmdl_scenes::cached(kind, split, n, args.seed, &args.data)?;
            eprintln!(
                "{kind} {split}: {n} samples {} {}",
                if hit { "loaded from" } else { "generated into" },
                args.data
                    .join(rtmdl_scenes::cache_name(kind, split, n, args.seed))
                    .display()
            );
            data.push(d);
        }
        let data_seconds = td.elapsed().as_secs_f32();
        let opts = TrainOptions {
            epochs: args.epochs.unwrap_or(def_epochs),
            batch: args.batch,
            lr: args.lr,
            seed: args.seed,
            threads: args.threads,
            ..Default::default()
        };
        let steps = sizes[0].div_ceil(opts.batch);
        let name = arch.name.clone();
        eprintln!(
            "{name}: training {} parameters, {} epochs × {steps} steps",
            arch.param_count(),
            opts.epochs
        );
        let mut last_print = Instant::now();
        let mut progress = |epoch: usize, step: usize, loss: f32| {
            if last_print.elapsed().as_secs_f32() > 10.0 {
                eprintln!(
                    "{name}: epoch {epoch} step {}/{steps} loss {loss:.4}",
                    step + 1
                );
                last_print = Instant::now();
            }
        };
        let trained = train(&arch, &data[0], &data[1], &opts, &mut progress)?;
        for e in &trained.history {
            eprintln!(
                "{}: epoch {} loss {:.4} val acc {:.4}{} ({:.1} s)",
                arch.name,
                e.epoch,
                e.train_loss,
                e.val_accuracy,
                e.val_box_iou
                    .map_or(String::new(), |v| format!(" box IoU {v:.3}")),
                e.seconds
            );
        }
        let onnx = args.out.join(format!("{}.onnx", arch.name));
        let wpath = args.out.join(format!("{}.safetensors", arch.name));
        export_onnx(&arch, &trained.weights, &onnx)?;
        save_model(&wpath, &arch, &trained.weights)?;
        let eval = evaluate(&onnx, &data[2], engine.as_ref())?;
        eprintln!(
            "{}: test accuracy {:.4}{} ({} on {} samples, {:.3} ms/run)",
            arch.name,
            eval.accuracy,
            eval.box_iou_mean
                .map_or(String::new(), |v| format!(", box IoU {v:.3}")),
            engine.name(),
            eval.n,
            eval.mean_run_ms
        );
        reports.push(Report {
            arch,
            sizes,
            onnx_bytes: std::fs::metadata(&onnx)?.len(),
            weight_bytes: std::fs::metadata(&wpath)?.len(),
            trained,
            eval,
            data_seconds,
            opts,
        });
    }
    let total = t0.elapsed().as_secs_f32();
    let readme = readme(args, &reports, total, &engine.version());
    std::fs::write(args.out.join("README.md"), readme)?;
    let metrics: Vec<_> = reports
        .iter()
        .map(|r| {
            serde_json::json!({
                "model": r.arch.name, "arch": r.arch, "options": r.opts,
                "train_n": r.sizes[0], "val_n": r.sizes[1], "test_n": r.sizes[2],
                "seed": args.seed, "history": r.trained.history, "best_epoch": r.trained.best_epoch,
                "train_seconds": r.trained.seconds, "test": r.eval,
            })
        })
        .collect();
    std::fs::write(
        args.out.join("metrics.json"),
        serde_json::to_string_pretty(&metrics)? + "\n",
    )?;
    eprintln!("wrote {} in {total:.0} s", args.out.display());
    Ok(())
}

fn readme(args: &Args, reports: &[Report], total: f32, engine: &str) -> String {
    let mut s = String::new();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let cmd = if argv.is_empty() {
        "cargo run --release -p rtmdl-train".to_string()
    } else {
        format!("cargo run --release -p rtmdl-train -- {}", argv.join(" "))
    };
    let threads = if args.threads == 0 {
        std::thread::available_parallelism().map_or(1, |t| t.get())
    } else {
        args.threads
    };
    let _ = writeln!(s, "# rtmdl base models\n");
    let _ = writeln!(
        s,
        "Small CNNs trained from scratch by `crates/rtmdl-train` (candle, CPU) on the seeded \
         synthetic data of `crates/rtmdl-scenes`, exported to ONNX with \
         `rtmdl_engine::onnx_build`. Written by:\n\n```sh\n{cmd}\n```\n"
    );
    let _ = writeln!(
        s,
        "Wall time {total:.0} s on {threads} threads (data generation, training and test \
         evaluation). Seed {} (data and training); the data is cached under `{}`. Test \
         numbers come from `{engine}` running the ONNX files, batch 1, on the test split.\n",
        args.seed,
        args.data.display()
    );
    let _ = writeln!(
        s,
        "| model | input | classes | train / val / test | epochs (best) | train time | test accuracy | test box IoU (≥ 0.5) | ONNX | weights |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
    for r in reports {
        let a = &r.arch;
        let _ = writeln!(
            s,
            "| `{}` | 1×3×{}×{} | {} | {} / {} / {} | {} ({}) | {:.0} s | {:.2} % | {} | {} | {} |",
            a.name,
            a.height,
            a.width,
            a.classes,
            r.sizes[0],
            r.sizes[1],
            r.sizes[2],
            r.opts.epochs,
            r.trained.best_epoch,
            r.trained.seconds,
            100.0 * r.eval.accuracy,
            match (r.eval.box_iou_mean, r.eval.box_iou_50) {
                (Some(m), Some(f)) => format!("{m:.3} ({:.1} %)", 100.0 * f),
                _ => "–".into(),
            },
            kib(r.onnx_bytes),
            kib(r.weight_bytes),
        );
    }
    let _ = writeln!(s, "\n## Files\n");
    let _ = writeln!(
        s,
        "* `NAME.onnx`: input `input` `[1,3,H,W]` RGB in 0..1 (`resize_normalize` with its \
         default mean 0 / std 255); outputs `logits` `[1,classes]` (raw scores) and, for \
         `lights`, `box` `[1,4]` (sigmoid; normalised `[x, y, w, h]`, top-left corner and \
         size, of the light housing). Batch norms are `BatchNormalization` nodes, not \
         folded.\n\
         * `NAME.safetensors`: the same weights by name (see the `rtmdl-train` crate docs \
         for the names), with the architecture as JSON in the metadata (`\"arch\"`); \
         `rtmdl_train::load_model` reads it.\n\
         * `metrics.json`: options, per-epoch history and the test confusion matrices.\n"
    );
    for r in reports {
        s += &model_section(r);
    }
    s
}

/// The README section of one model: architecture, options, epochs, recall.
fn model_section(r: &Report) -> String {
    let mut s = String::new();
    let a = &r.arch;
    let _ = writeln!(s, "## `{}`\n", a.name);
    let _ = writeln!(
        s,
        "Architecture: channels {}/{}/{}, {} residual blocks, {} parameters. \
         Options: batch {}, AdamW lr {} (cosine), weight decay {}{}. \
         Data generated or loaded from the cache in {:.1} s.\n",
        a.c1,
        a.c2,
        a.c3,
        a.blocks,
        a.param_count(),
        r.opts.batch,
        r.opts.lr,
        r.opts.weight_decay,
        if a.box_head {
            format!(", L1 box-loss weight {}", r.opts.box_weight)
        } else {
            String::new()
        },
        r.data_seconds
    );
    let _ = writeln!(
        s,
        "| epoch | train loss | val accuracy | val box IoU | seconds |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    for e in &r.trained.history {
        let _ = writeln!(
            s,
            "| {} | {:.4} | {:.2} % | {} | {:.1} |",
            e.epoch,
            e.train_loss,
            100.0 * e.val_accuracy,
            e.val_box_iou.map_or("–".into(), |v| format!("{v:.3}")),
            e.seconds
        );
    }
    let classes = r.arch_classes();
    let _ = writeln!(s, "\nTest recall per class:\n");
    let _ = writeln!(s, "| class | recall |\n|---|---|");
    for (c, rec) in classes.iter().zip(r.eval.recall()) {
        let _ = writeln!(s, "| {c} | {:.1} % |", 100.0 * rec);
    }
    let _ = writeln!(s);
    s
}

impl Report {
    fn arch_classes(&self) -> Vec<&'static str> {
        let kind = if self.arch.box_head {
            Kind::Lights
        } else {
            Kind::Signs
        };
        kind.classes().to_vec()
    }
}

fn kib(b: u64) -> String {
    format!("{:.0} KiB", b as f64 / 1024.0)
}
