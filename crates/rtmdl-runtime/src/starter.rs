//! What `rtmdl inspect` (and the Python package's `inspect`) make of a
//! model: every engine tried on it, and a whole config that runs it as it
//! is, in the order a config file reads.

use rtmdl_engine::inspect::ModelInfo;
use rtmdl_engine::{Engine, EngineError, EngineKind};

/// Each engine of `kind` (`auto`: every engine this machine has) tried on
/// `info` with `runs` timed inferences ([`rtmdl_engine::inspect::try_engines`]);
/// returns the version of the engine a run with that `--engine` takes, whose
/// time the config should state. An engine named but missing is an error.
pub fn try_engines(
    info: &mut ModelInfo,
    kind: EngineKind,
    runs: usize,
) -> Result<Option<String>, EngineError> {
    let kinds = match kind {
        EngineKind::Auto => vec![EngineKind::Tract, EngineKind::Ort, EngineKind::Cuda],
        k => vec![k],
    };
    let mut engines: Vec<Box<dyn Engine>> = Vec::new();
    for k in kinds {
        match rtmdl_engine::select(k) {
            Ok((e, _)) => engines.push(e),
            Err(e) if kind != EngineKind::Auto => return Err(e),
            Err(_) => {}
        }
    }
    let engines: Vec<&dyn Engine> = engines.iter().map(|e| e.as_ref()).collect();
    rtmdl_engine::inspect::try_engines(info, &engines, runs);
    // The engine a run takes with `--engine auto` (or the one asked for):
    // the time the config states is that engine's.
    Ok(match kind {
        EngineKind::Auto => rtmdl_engine::select(EngineKind::Auto)
            .ok()
            .map(|(e, _)| e.version()),
        _ => engines.first().map(|e| e.version()),
    })
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
pub fn config(info: &ModelInfo, runs_with: Option<&str>) -> Result<String, toml::ser::Error> {
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
