//! `rtmdl inspect`: what an ONNX model declares, whether each engine loads
//! it, one measured latency, how far the engines' outputs are apart on the
//! same seeded inputs, and a whole config that runs the model as it is.

use std::path::PathBuf;

use anyhow::{Result, bail};
use rtmdl_engine::EngineKind;
use rtmdl_engine::inspect::{ModelInfo, declared};

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
    let runs_with = rtmdl_runtime::starter::try_engines(&mut info, a.engine, a.runs)?;
    let ran = info.engines.iter().any(|e| e.latency_ms.is_some());
    if !json_to_stdout(a.json.as_deref()) {
        print!("{}", table(&info));
        if ran {
            println!(
                "\na config that runs as it is (save it, then `rtmdl profile FILE` and `rtmdl run FILE`):\n"
            );
            print!(
                "{}",
                rtmdl_runtime::starter::config(&info, runs_with.as_deref())?
            );
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
