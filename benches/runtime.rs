//! Runtime benchmarks (`cargo bench --bench runtime`):
//! 1. overhead of the runtime against calling the engine in a loop on the
//!    same model (throughput ratio);
//! 2. dispatch latency (release → first sub-task start) on the tiny example;
//! 3. onnxruntime against tract latency on the same models: the tiny ones and, when
//!    `scripts/fetch-models` has fetched them into `models/`, the real PP-OCRv4
//!    det / cls / rec and Silero VAD models with the shapes of `examples/ocr-vad.toml`.
//!
//! Tiny models come from `examples/models/` (`cargo run --example make_tiny_models`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rtmdl_core::{PolicyKind, VariantChoice};
use rtmdl_engine::{Engine, EngineKind, InputValue, ModelSpec, Tensor, TensorView, ndarray};
use rtmdl_runtime::{RunOptions, run_config};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn engine(kind: EngineKind) -> Option<Arc<dyn Engine>> {
    rtmdl_engine::select(kind).ok().map(|(e, _)| Arc::from(e))
}

/// Mean seconds per inference over `n` runs after a warm-up.
fn direct(engine: &dyn Engine, model: &Path, n: usize) -> f64 {
    let mut s = engine.session(&ModelSpec::new(model)).expect("model");
    let x = ndarray::ArrayD::<f32>::from_elem(s.input_shape().to_vec(), 0.5);
    for _ in 0..20 {
        s.run(&x).expect("run");
    }
    let t = Instant::now();
    for _ in 0..n {
        s.run(&x).expect("run");
    }
    t.elapsed().as_secs_f64() / n as f64
}

/// Mean seconds per inference of a spec (every input filled with 0.5) over at least
/// 10 runs and about `budget_s` seconds, after 5 warm-up runs.
fn direct_spec(engine: &dyn Engine, spec: &ModelSpec, budget_s: f64) -> f64 {
    let mut s = engine.session(spec).expect("model");
    let inputs: Vec<Tensor> = s
        .inputs()
        .iter()
        .map(|i| match i.dtype {
            d if d.is_integer() => Tensor::zeros(d, &i.shape),
            _ => Tensor::F32(ndarray::ArrayD::from_elem(i.shape.clone(), 0.5)),
        })
        .collect();
    let views: Vec<TensorView<'_>> = inputs.iter().map(Tensor::view).collect();
    for _ in 0..5 {
        s.run_many(&views).expect("run");
    }
    let t = Instant::now();
    let mut n = 0;
    while n < 10 || t.elapsed().as_secs_f64() < budget_s {
        s.run_many(&views).expect("run");
        n += 1;
    }
    t.elapsed().as_secs_f64() / n as f64
}

/// The fetched real models with the shapes of `examples/ocr-vad.toml`.
fn real_models() -> Vec<(&'static str, ModelSpec)> {
    let dir = root().join("models");
    let specs = [
        (
            "ch_PP-OCRv4_det_infer.onnx",
            "PP-OCRv4 det 1x3x320x320",
            vec![1, 3, 320, 320],
        ),
        (
            "ch_ppocr_mobile_v2.0_cls_infer.onnx",
            "PP-OCR cls 1x3x48x192",
            vec![1, 3, 48, 192],
        ),
        (
            "ch_PP-OCRv4_rec_infer.onnx",
            "PP-OCRv4 rec 1x3x48x320",
            vec![1, 3, 48, 320],
        ),
    ];
    let mut out = Vec::new();
    for (file, label, shape) in specs {
        let path = dir.join(file);
        if path.is_file() {
            out.push((label, ModelSpec::new(path).with_input_shape(shape)));
        }
    }
    let vad = dir.join("silero_vad.onnx");
    if vad.is_file() {
        out.push((
            "Silero VAD 1x576 + state",
            ModelSpec::new(vad)
                .with_input_shape([1, 576])
                .with_input_shape_of("state", [2, 1, 128])
                .with_constant("sr", InputValue::scalar(16000.0)),
        ));
    }
    out
}

fn main() {
    let models = root().join("examples/models");
    let model = models.join("tiny_lights_w100.onnx");
    if !model.exists() {
        eprintln!(
            "missing {}: run `cargo run --example make_tiny_models`",
            model.display()
        );
        return;
    }
    let tract = engine(EngineKind::Tract).expect("tract");

    // 1. Overhead: one task, one inference stage, released slightly faster
    // than the model runs so that the lane never idles.
    let per = direct(tract.as_ref(), &model, 2000);
    let period_ns = (per * 0.9 * 1e9) as u64;
    let shape = tract
        .session(&ModelSpec::new(&model))
        .unwrap()
        .input_shape()
        .to_vec();
    let text = format!(
        r#"[platform]
cpu_workers = 1
gpu_lanes = 1
[models.m]
stages = [{{ name = "infer", on = "gpu" }}]
[[models.m.variants]]
name = "w1"
accuracy = 1.0
file = "{}"
times.infer = "1 ms"
[[tasks]]
name = "saturate"
model = "m"
period = "{} us"
source = {{ kind = "tensor", shape = {:?} }}
"#,
        model.display(),
        (period_ns / 1000).max(10),
        shape
    );
    let cfg = rtmdl_config::parse(&text, &root().join("bench.toml")).expect("config");
    let secs = 3.0;
    let opts = RunOptions {
        duration: (secs * 1e9) as u64,
        grace: 0,
        realtime: false,
        ..Default::default()
    };
    let t = Instant::now();
    let real = run_config(
        &cfg,
        PolicyKind::Rtmdl,
        VariantChoice::Original,
        tract.clone(),
        1,
        &opts,
        1,
    )
    .expect("run");
    let wall = t.elapsed().as_secs_f64();
    let done = real.outcome.recorder.responses[0].len() as f64;
    let runtime_tput = done / wall.max(secs);
    println!(
        "overhead: direct loop {:.0} inferences/s, runtime {:.0} jobs/s over {:.1} s → ratio {:.3}",
        1.0 / per,
        runtime_tput,
        wall,
        runtime_tput * per
    );

    // 2. Dispatch latency on the tiny two-task example.
    let cfg = rtmdl_config::load(&root().join("examples/tiny-real.toml")).expect("tiny-real");
    let opts = RunOptions {
        duration: 5_000_000_000,
        realtime: true,
        ..Default::default()
    };
    let real = run_config(
        &cfg,
        PolicyKind::Rtmdl,
        VariantChoice::Original,
        tract.clone(),
        1,
        &opts,
        1,
    )
    .expect("run");
    let p = real.outcome.dispatch_latency.percentiles();
    let l = real.outcome.release_lateness.percentiles();
    println!(
        "dispatch latency (release → first start): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms over {} jobs; release lateness p99 {:.3} ms; realtime: {}",
        p.p50,
        p.p99,
        p.max,
        real.outcome.dispatch_latency.len(),
        l.p99,
        real.outcome.realtime.summary()
    );

    // 3. ort against tract, same models, same input.
    match engine(EngineKind::Ort) {
        None => println!("ort vs tract: onnxruntime not found, skipped"),
        Some(ort) => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&models)
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
                .collect();
            files.sort();
            for f in files {
                let (t, o) = (
                    direct(tract.as_ref(), &f, 500),
                    direct(ort.as_ref(), &f, 500),
                );
                println!(
                    "ort vs tract {:<40} tract {:>8.3} ms  ort {:>8.3} ms  ort/tract {:.2}",
                    f.file_name().unwrap_or_default().to_string_lossy(),
                    t * 1e3,
                    o * 1e3,
                    o / t
                );
            }
            let real = real_models();
            if real.is_empty() {
                println!(
                    "ort vs tract: no real models in models/ (run scripts/fetch-models), skipped"
                );
            }
            for (label, spec) in real {
                let (t, o) = (
                    direct_spec(tract.as_ref(), &spec, 3.0),
                    direct_spec(ort.as_ref(), &spec, 3.0),
                );
                println!(
                    "ort vs tract {:<40} tract {:>8.3} ms  ort {:>8.3} ms  ort/tract {:.2}",
                    label,
                    t * 1e3,
                    o * 1e3,
                    o / t
                );
            }
        }
    }
}
