//! `rtmdl inspect`: what an ONNX model declares, whether each engine loads
//! it, one measured latency, how far the engines' outputs are apart on the
//! same seeded inputs, and a whole config that runs the model as it is.

use std::path::PathBuf;

use anyhow::{Result, bail};
use rtmdl_engine::inspect::{ModelInfo, declared, try_engines};
use rtmdl_engine::{Engine, EngineKind};

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
    /// Fix an input to a number at load, e.g. `--value sr=16000` (every
    /// element; its declared shape must be fixed), as a config's
    /// `inputs = { sr = 16000 }` does. Repeat per input.
    #[arg(long, value_name = "NAME=NUMBER")]
    value: Vec<String>,
    /// Timed runs per engine (after 2 warm-up runs).
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Write the result as JSON ("-" for stdout).
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    let mut info = declared(&a.model)?;
    apply_shapes(&mut info, &a.shape)?;
    apply_values(&mut info, &a.value)?;
    let kinds = match a.engine {
        EngineKind::Auto => vec![EngineKind::Tract, EngineKind::Ort, EngineKind::Cuda],
        k => vec![k],
    };
    let mut engines: Vec<Box<dyn Engine>> = Vec::new();
    for kind in kinds {
        match rtmdl_engine::select(kind) {
            Ok((e, _)) => engines.push(e),
            Err(e) if a.engine != EngineKind::Auto => bail!("{e}"),
            Err(_) => {}
        }
    }
    let engines: Vec<&dyn Engine> = engines.iter().map(|e| e.as_ref()).collect();
    try_engines(&mut info, &engines, a.runs);
    // The engine a run takes with `--engine auto` (or the one asked for):
    // the time the config states is that engine's.
    let runs_with = match a.engine {
        EngineKind::Auto => rtmdl_engine::select(EngineKind::Auto)
            .ok()
            .map(|(e, _)| e.version()),
        _ => engines.first().map(|e| e.version()),
    };
    let ran = info.engines.iter().any(|e| e.latency_ms.is_some());
    if !json_to_stdout(a.json.as_deref()) {
        print!("{}", table(&info));
        if ran {
            println!(
                "\na config that runs as it is (save it, then `rtmdl profile FILE` and `rtmdl run FILE`):\n"
            );
            print!("{}", config(&info, runs_with.as_deref())?);
        }
    }
    if let Some(j) = &a.json {
        write_json(j, &info)?;
    }
    if !ran {
        let dynamic = info
            .inputs
            .iter()
            .any(|i| i.shape.iter().any(|d| d.parse::<usize>().is_err()));
        bail!(
            "no engine ran {} at the tried shapes{}",
            info.path.display(),
            if dynamic {
                " (its symbolic dims were tried at 1; give the real ones with --shape NAME=DIMS)"
            } else {
                ""
            }
        );
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

/// `--value` settings onto the model's constants.
fn apply_values(info: &mut ModelInfo, values: &[String]) -> Result<()> {
    for v in values {
        let parsed = v
            .split_once('=')
            .and_then(|(n, x)| Some((n.trim(), x.trim().parse::<f64>().ok()?)));
        let Some((name, value)) = parsed else {
            bail!("--value {v}: expected NAME=NUMBER, e.g. sr=16000");
        };
        if !info.inputs.iter().any(|i| i.name == name) {
            let names: Vec<&str> = info.inputs.iter().map(|i| i.name.as_str()).collect();
            bail!(
                "--value {v}: {} has no input `{name}` (its inputs: {})",
                info.path.display(),
                names.join(", ")
            );
        }
        info.constants.retain(|(n, _)| n != name);
        info.constants.push((name.to_string(), value));
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
        .map(
            |(i, d)| match info.constants.iter().find(|(n, _)| *n == i.name) {
                Some((n, v)) => format!("{n}={v} (constant)"),
                None => format!("{}={:?}", i.name, d),
            },
        )
        .collect();
    s += &format!("tried at {}\n", tried.join(" "));
    for e in &info.engines {
        s += &match (&e.error, e.latency_ms) {
            (None, Some(ms)) => format!("  {:<22} loads · {ms:.3} ms (median)\n", e.engine),
            (Some(err), _) => format!("  {:<22} does not load: {err}\n", e.engine),
            (None, None) => format!("  {:<22} loads\n", e.engine),
        };
    }
    let compared: Vec<_> = info
        .engines
        .iter()
        .filter(|e| e.compared_with.is_some())
        .collect();
    if let Some(first) = compared.first().and_then(|e| e.compared_with.as_deref()) {
        s += &format!(
            "outputs on the same seeded inputs (floats uniform in [-1, 1], integers and bool 0), next to {first}:\n"
        );
    }
    for e in compared {
        for p in &e.parity {
            let diff = match (p.max_abs_diff, &p.mismatch) {
                (Some(d), _) => format!("max |diff| {d:.2e}"),
                (None, Some(why)) => format!("not comparable: {why}"),
                (None, None) => "not comparable".to_string(),
            };
            s += &format!(
                "  {:<22} {:<24} {diff} (max |value| {:.3e})\n",
                e.engine, p.name, p.max_abs
            );
        }
    }
    s
}

/// The config `inspect` prints, in the order a config file reads.
#[derive(serde::Serialize)]
struct Snippet {
    platform: SnippetPlatform,
    models: std::collections::BTreeMap<String, SnippetModel>,
    tasks: Vec<SnippetTask>,
}

#[derive(serde::Serialize)]
struct SnippetPlatform {
    cpu_workers: usize,
    gpu_lanes: usize,
}

#[derive(serde::Serialize)]
struct SnippetModel {
    stages: Vec<toml::Table>,
    variants: Vec<toml::Table>,
}

#[derive(serde::Serialize)]
struct SnippetTask {
    name: String,
    model: String,
    period: String,
    max_miss_rate: f64,
    overrun: &'static str,
    source: toml::Table,
}

/// A whole config for the model: one task at a stated rate, fed by a
/// `tensor` source of the first input's tried shape; every other input a
/// constant at its tried shape; the inference time the engine that will
/// run it measured.
fn config(info: &ModelInfo, runs_with: Option<&str>) -> Result<String> {
    use toml::{Table, Value};
    let stem = info.path.file_stem().map_or("model".to_string(), |s| {
        s.to_string_lossy().replace(['.', ' ', '-'], "_")
    });
    let dims = |d: &[usize]| Value::Array(d.iter().map(|&d| Value::Integer(d as i64)).collect());
    let is_dynamic = |i: usize| {
        info.inputs[i]
            .shape
            .iter()
            .any(|d| d.parse::<usize>().is_err())
    };
    let constant = |name: &str| info.constants.iter().find(|(n, _)| n == name);
    // The input the job's tensor goes into: the first float input not fixed.
    let fed = (0..info.inputs.len())
        .find(|&i| constant(&info.inputs[i].name).is_none() && info.inputs[i].dtype == "FLOAT");
    let mut params = Table::new();
    let mut inputs = Table::new();
    for (i, input) in info.inputs.iter().enumerate() {
        if let Some((_, v)) = constant(&input.name) {
            let v = if v.fract() == 0.0 && v.abs() < 1e15 {
                Value::Integer(*v as i64)
            } else {
                Value::Float(*v)
            };
            inputs.insert(input.name.clone(), v);
        } else if Some(i) == fed {
            if is_dynamic(i) {
                params.insert("input_shape".into(), dims(&info.tried_shapes[i]));
            }
        } else if is_dynamic(i) {
            let mut t = Table::new();
            t.insert("fill".into(), Value::Float(0.0));
            t.insert("shape".into(), dims(&info.tried_shapes[i]));
            inputs.insert(input.name.clone(), Value::Table(t));
        } else {
            inputs.insert(input.name.clone(), "zeros".into());
        }
    }
    if !inputs.is_empty() {
        params.insert("inputs".into(), Value::Table(inputs));
    }
    let mut infer = Table::new();
    infer.insert("name".into(), "infer".into());
    infer.insert("on".into(), "gpu".into());
    if !params.is_empty() {
        infer.insert("params".into(), Value::Table(params));
    }
    let measured = info
        .engines
        .iter()
        .find(|e| Some(e.engine.as_str()) == runs_with && e.latency_ms.is_some())
        .or_else(|| info.engines.iter().find(|e| e.latency_ms.is_some()));
    let ms = measured.and_then(|e| e.latency_ms).unwrap_or(1.0);
    // Absolute, so the config runs wherever it is saved.
    let file = std::fs::canonicalize(&info.path).unwrap_or_else(|_| info.path.clone());
    let mut variant = Table::new();
    variant.insert("name".into(), "base".into());
    variant.insert("accuracy".into(), Value::Float(1.0));
    variant.insert("file".into(), file.display().to_string().into());
    let mut times = Table::new();
    times.insert("infer".into(), format!("{ms:.3} ms").into());
    variant.insert("times".into(), Value::Table(times));
    let model = SnippetModel {
        stages: vec![infer],
        variants: vec![variant],
    };
    // 30 Hz where the model takes at most two thirds of it; else the next
    // 10 ms above 1.5 × its time.
    let period_ms = if ms * 1.5 <= 33.0 {
        33.0
    } else {
        ((ms * 1.5) / 10.0).ceil() * 10.0
    };
    let source_shape = fed.map_or(vec![1], |i| info.tried_shapes[i].clone());
    let mut source = Table::new();
    source.insert("kind".into(), "tensor".into());
    source.insert("shape".into(), dims(&source_shape));
    let root = Snippet {
        platform: SnippetPlatform {
            cpu_workers: 1,
            gpu_lanes: 1,
        },
        models: std::collections::BTreeMap::from([(stem.clone(), model)]),
        tasks: vec![SnippetTask {
            name: stem.clone(),
            model: stem,
            period: format!("{period_ms} ms"),
            max_miss_rate: 0.05,
            overrun: "skip",
            source,
        }],
    };
    let who = measured.map_or("no engine", |e| e.engine.as_str());
    let note = match (runs_with, measured) {
        (Some(r), Some(m)) if r != m.engine => format!(
            " (`--engine auto` runs {r} here, which did not run it: give the stage `engine`)"
        ),
        _ => String::new(),
    };
    Ok(format!(
        "# {} as one task: the inference time is {who}'s median{note}; the source\n\
         # feeds random tensors of the input's shape (`rtmdl explain sources` for\n\
         # real data); the period is 30 Hz, or 1.5 x the inference time rounded up\n\
         # to 10 ms when that is longer; accuracy 1.0 until you measure it.\n{}",
        info.path.display(),
        toml::to_string(&root)?
    ))
}
