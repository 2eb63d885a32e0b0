//! `rtmdl variants`: variants of any ONNX model for the planner (smaller
//! input sizes, an INT8 copy, more intra-op threads), each measured here,
//! as config blocks.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use rtmdl_engine::EngineKind;
use rtmdl_engine::variants::{Proposal, propose, quantize_int8, sizes_refused};
use serde::Serialize;

use super::common::{engine_parser, json_to_stdout, write_json};

#[derive(clap::Args)]
pub struct Args {
    /// The ONNX model file.
    model: PathBuf,
    /// Square input sizes to measure, in pixels (the image input's height
    /// and width; needs them symbolic in the model).
    #[arg(long, value_delimiter = ',', default_values_t = [320, 256, 192])]
    sizes: Vec<usize>,
    /// Intra-op thread counts to measure each variant at; a variant of N > 1
    /// threads is named `-Nt`, and every block gets the `params.infer.threads`
    /// it was measured at. An N-thread variant keeps N cores busy while the
    /// scheduler counts it as one worker or lane: leave the cores the other
    /// tasks need.
    #[arg(long, value_delimiter = ',', default_values_t = [1])]
    threads: Vec<usize>,
    /// Also an INT8 copy by onnxruntime's dynamic quantizer (python3 with
    /// onnxruntime installed), measured at the same sizes.
    #[arg(long)]
    int8: bool,
    /// Where the INT8 copy goes (default: next to the model).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The engine to measure on: the one the runs will use (`auto` takes the
    /// one `run --engine auto` takes).
    #[arg(long, default_value = "auto", value_parser = engine_parser())]
    engine: EngineKind,
    /// Timed runs per variant (after 2 warm-up runs).
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Write the proposals as JSON ("-" for stdout).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// A variant block as a config takes it.
#[derive(Serialize)]
struct Block {
    name: String,
    accuracy: f64,
    file: String,
    /// Its file's bytes, for the storage budget.
    private: String,
    times: BTreeMap<&'static str, String>,
    params: BTreeMap<&'static str, InferParams>,
}

/// A variant's `params.infer`.
#[derive(Serialize)]
struct InferParams {
    input_shape: Vec<usize>,
    /// The threads its time was measured at, so a run's `--threads` does
    /// not change it.
    threads: usize,
}

pub fn run(a: Args) -> Result<()> {
    if a.sizes.is_empty() || a.sizes.contains(&0) {
        bail!("--sizes: expected positive pixel sizes, e.g. --sizes 320,256,192");
    }
    if a.threads.is_empty() || a.threads.iter().any(|&n| n == 0 || n > 256) {
        bail!("--threads: expected intra-op thread counts between 1 and 256, e.g. --threads 1,2");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Some(&n) = a.threads.iter().find(|&&n| n > cores) {
        eprintln!(
            "note: --threads {n} is more than this machine's {cores} cores: its time is measured, but it cannot run beside other work"
        );
    }
    if let Some(why) = sizes_refused(&a.model)? {
        eprintln!("note: {why}");
    }
    let mut files = vec![(String::new(), a.model.clone())];
    if a.int8 {
        let stem = a
            .model
            .file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().into_owned());
        let dir = match &a.out {
            Some(d) => d.clone(),
            None => a
                .model
                .parent()
                .map_or_else(|| PathBuf::from("."), PathBuf::from),
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("--out {}", dir.display()))?;
        let out = dir.join(format!("{stem}.int8.onnx"));
        eprintln!(
            "int8: quantizing {} to {} ...",
            a.model.display(),
            out.display()
        );
        quantize_int8(&a.model, &out).map_err(|e| anyhow::anyhow!("--int8: {e}"))?;
        files.push(("-int8".into(), out));
    }
    let (engine, note) = rtmdl_engine::select(a.engine)?;
    eprintln!("engine: {note}");
    let proposals = propose(&files, &a.sizes, &a.threads, engine.as_ref(), a.runs)?;
    if !json_to_stdout(a.json.as_deref()) {
        print!("{}", table(&proposals, &engine.version()));
        let blocks = blocks(&proposals);
        if !blocks.is_empty() {
            println!(
                "\nvariants for a config (rename the model to yours); set each accuracy to what it measures on your held-out data, and where a resize stage feeds the model give the variant its size too (params.pre = {{ width = N, height = N }}):\n"
            );
            #[derive(Serialize)]
            struct Variants {
                variants: Vec<Block>,
            }
            #[derive(Serialize)]
            struct Models {
                models: BTreeMap<String, Variants>,
            }
            let stem = a.model.file_stem().map_or("model".into(), |s| {
                s.to_string_lossy().replace(['.', ' ', '-'], "_")
            });
            let models = Models {
                models: BTreeMap::from([(stem, Variants { variants: blocks })]),
            };
            print!("{}", toml::to_string(&models)?);
        }
    }
    if let Some(j) = &a.json {
        write_json(j, &proposals)?;
    }
    if proposals.iter().all(|p| p.latency_ms.is_none()) {
        bail!(
            "no variant of {} ran on {}",
            a.model.display(),
            engine.version()
        );
    }
    Ok(())
}

fn table(proposals: &[Proposal], engine: &str) -> String {
    let mut s = format!(
        "{:<16}  {:<18}  {:>7}  {:>10}  {:>10}  file (on {engine})\n",
        "variant", "input", "threads", "MiB", "ms"
    );
    for p in proposals {
        let ms = match (&p.latency_ms, &p.error) {
            (Some(ms), _) => format!("{ms:.3}"),
            (None, Some(e)) => format!("fails: {e}"),
            (None, None) => "-".into(),
        };
        s += &format!(
            "{:<16}  {:<18}  {:>7}  {:>10.2}  {:>10}  {}\n",
            p.name,
            format!("{:?}", p.shape),
            p.threads,
            p.bytes as f64 / (1024.0 * 1024.0),
            ms,
            p.file.display()
        );
    }
    s
}

fn blocks(proposals: &[Proposal]) -> Vec<Block> {
    proposals
        .iter()
        .filter_map(|p| {
            let ms = p.latency_ms?;
            let file = std::fs::canonicalize(&p.file).unwrap_or_else(|_| p.file.clone());
            Some(Block {
                name: p.name.clone(),
                accuracy: 1.0,
                file: file.display().to_string(),
                private: rtmdl_core::units::fmt_size(p.bytes),
                times: BTreeMap::from([("infer", format!("{ms:.3} ms"))]),
                params: BTreeMap::from([(
                    "infer",
                    InferParams {
                        input_shape: p.shape.clone(),
                        threads: p.threads,
                    },
                )]),
            })
        })
        .collect()
}
