//! `rtmdl inspect`: what an ONNX model declares, whether each engine loads
//! it, one measured latency, and a stage to paste into a config.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Result, bail};
use rtmdl_engine::EngineKind;
use rtmdl_engine::inspect::{ModelInfo, declared, try_engine};
use serde::Serialize;

use super::common::{engine_parser, json_to_stdout, write_json};

#[derive(clap::Args)]
pub struct Args {
    /// The ONNX model file.
    model: PathBuf,
    /// Which engines to try: `auto` tries every one this machine has
    /// (tract always; onnxruntime when found; CUDA when built and usable).
    #[arg(long, default_value = "auto", value_parser = engine_parser())]
    engine: EngineKind,
    /// Fix an input's shape, e.g. `--shape images=1,3,640,640` (repeat per
    /// input; a model with one input takes `--shape 1,3,640,640`). Without
    /// it every symbolic dim is tried at 1.
    #[arg(long, value_name = "[NAME=]DIMS")]
    shape: Vec<String>,
    /// Timed runs per engine (after 2 warm-up runs).
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Write the result as JSON ("-" for stdout).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// A stage and a variant for a config, as TOML.
#[derive(Serialize)]
struct Snippet {
    models: BTreeMap<String, SnippetModel>,
}

#[derive(Serialize)]
struct SnippetModel {
    stages: Vec<BTreeMap<&'static str, toml::Value>>,
    variants: Vec<BTreeMap<&'static str, toml::Value>>,
}

pub fn run(a: Args) -> Result<()> {
    let mut info = declared(&a.model)?;
    apply_shapes(&mut info, &a.shape)?;
    let kinds = match a.engine {
        EngineKind::Auto => vec![EngineKind::Tract, EngineKind::Ort, EngineKind::Cuda],
        k => vec![k],
    };
    for kind in kinds {
        match rtmdl_engine::select(kind) {
            Ok((e, _)) => info.engines.push(try_engine(&info, e.as_ref(), a.runs)),
            Err(e) if a.engine != EngineKind::Auto => bail!("{e}"),
            Err(_) => {}
        }
    }
    if !json_to_stdout(a.json.as_deref()) {
        print!("{}", table(&info));
        println!("\na stage for a config (paste under your model; shapes as tried):\n");
        print!("{}", snippet(&info)?);
    }
    if let Some(j) = &a.json {
        write_json(j, &info)?;
    }
    Ok(())
}

/// `--shape` values onto the inputs' tried shapes.
fn apply_shapes(info: &mut ModelInfo, shapes: &[String]) -> Result<()> {
    for s in shapes {
        let (name, dims) = match s.split_once('=') {
            Some((n, d)) => (Some(n.trim()), d),
            None => (None, s.as_str()),
        };
        let dims: Vec<usize> = dims
            .split(',')
            .map(|d| d.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|_| {
                anyhow::anyhow!("--shape {s}: expected [NAME=]DIMS, e.g. images=1,3,640,640")
            })?;
        let i = match name {
            Some(n) => info
                .inputs
                .iter()
                .position(|i| i.name == n)
                .ok_or_else(|| {
                    let names: Vec<&str> = info.inputs.iter().map(|i| i.name.as_str()).collect();
                    anyhow::anyhow!(
                        "--shape {s}: {} has no input `{n}` (its inputs: {})",
                        info.path.display(),
                        names.join(", ")
                    )
                })?,
            None if info.inputs.len() == 1 => 0,
            None => bail!(
                "--shape {s}: {} has {} inputs; name the one it is for (NAME=DIMS)",
                info.path.display(),
                info.inputs.len()
            ),
        };
        info.tried_shapes[i] = dims;
    }
    Ok(())
}

fn table(info: &ModelInfo) -> String {
    let mut s = format!(
        "{} · {} bytes · producer {} · opsets {}\n",
        info.path.display(),
        info.bytes,
        if info.producer.is_empty() {
            "?"
        } else {
            &info.producer
        },
        info.opsets
            .iter()
            .map(|(d, v)| format!("{d} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (kind, list) in [("input ", &info.inputs), ("output", &info.outputs)] {
        for t in list {
            s += &format!(
                "  {kind} {:<24} {:<8} [{}]\n",
                t.name,
                t.dtype,
                t.shape.join(", ")
            );
        }
    }
    let tried: Vec<String> = info
        .inputs
        .iter()
        .zip(&info.tried_shapes)
        .map(|(i, d)| format!("{}={:?}", i.name, d))
        .collect();
    s += &format!("tried at {}\n", tried.join(" "));
    for e in &info.engines {
        s += &match (&e.error, e.latency_ms) {
            (None, Some(ms)) => format!("  {:<22} loads · {ms:.3} ms (median)\n", e.engine),
            (Some(err), _) => format!("  {:<22} does not load: {err}\n", e.engine),
            (None, None) => format!("  {:<22} loads\n", e.engine),
        };
    }
    s
}

fn snippet(info: &ModelInfo) -> Result<String> {
    let stem = info.path.file_stem().map_or("model".to_string(), |s| {
        s.to_string_lossy().replace(['.', ' ', '-'], "_")
    });
    let mut infer: BTreeMap<&'static str, toml::Value> = BTreeMap::new();
    infer.insert("name", "infer".into());
    infer.insert("on", "gpu".into());
    if info.inputs.len() == 1
        && info.inputs[0]
            .shape
            .iter()
            .any(|d| d.parse::<usize>().is_err())
    {
        let dims: Vec<toml::Value> = info.tried_shapes[0]
            .iter()
            .map(|&d| toml::Value::Integer(d as i64))
            .collect();
        let mut params = toml::Table::new();
        params.insert("input_shape".into(), toml::Value::Array(dims));
        infer.insert("params", toml::Value::Table(params));
    }
    let mut variant: BTreeMap<&'static str, toml::Value> = BTreeMap::new();
    variant.insert("name", "base".into());
    variant.insert("accuracy", toml::Value::Float(1.0));
    variant.insert("file", info.path.display().to_string().into());
    if let Some(ms) = info.engines.iter().find_map(|e| e.latency_ms) {
        let mut times = toml::Table::new();
        times.insert("infer".into(), format!("{ms:.3} ms").into());
        variant.insert("times", toml::Value::Table(times));
    }
    let snippet = Snippet {
        models: BTreeMap::from([(
            stem,
            SnippetModel {
                stages: vec![infer],
                variants: vec![variant],
            },
        )]),
    };
    Ok(toml::to_string(&snippet)?)
}
