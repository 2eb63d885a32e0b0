//! GPU checks and benchmarks for the CUDA engine (build with `--features cuda`).
//!
//! ```text
//! gpu_bench info
//! gpu_bench parity [--tol-abs A] [--tol-rel R]
//!                  [MODEL.onnx [--shape 1x3x224x224] [--shape-of NAME 2x1x128] [--const NAME=V]...]...
//! gpu_bench packing [--lanes 1,2,4] [--seconds N] [--size 224]
//! gpu_bench priority [--seconds N] [--period-ms 20] [--hogs 3] [--size 224]
//! ```
//!
//! * `info`: the GPU (driver probe), the engine version, the CUDA libraries found, the
//!   kernel cache, the stream priority range and how long setting CUDA up took.
//! * `parity`: tract on the CPU vs the CUDA engine on the tiny test models, a 4-conv CNN
//!   at 3×224×224 ([`testmodels::conv_net`]) and any `.onnx` given: max abs diff per
//!   output, timings, and which ops ran where. After a model path, `--shape` fixes its
//!   first input, `--shape-of` another input by name and `--const` fixes an input to a
//!   value (e.g. Silero VAD: `--shape 1x576 --shape-of state 2x1x128 --const sr=16000`);
//!   every input left gets seeded uniform values in [-1, 1].
//! * `packing`: for each K in `--lanes`, K threads, each with its own CUDA session of the
//!   CNN (so its own CUDA stream), run back to back for `--seconds`: total inferences/s.
//! * `priority`: one thread runs the CNN every `--period-ms` and records its latency,
//!   (1) alone, (2) while `--hogs` threads saturate the GPU, (3) the same with the
//!   periodic thread's stream priority raised (see
//!   `CudaEngine::set_thread_stream_priority`).
//!
//! Prints one JSON object on stdout (`"ok": false` with `"error"` on failure, exit code
//! 1; exit code 2 when no usable GPU is found) and human lines on stderr.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rtmdl_engine::cuda_engine::{self, CudaEngine};
use rtmdl_engine::ndarray::IxDyn;
use rtmdl_engine::{
    ArrayD, Engine, EngineError, InputValue, ModelSpec, Session, Tensor, TensorView, TractEngine,
    testmodels,
};
use serde_json::{Value, json};

/// A failure: its message and the exit code.
struct Failure {
    msg: String,
    code: i32,
    extra: Value,
}

impl From<String> for Failure {
    fn from(msg: String) -> Self {
        Failure {
            msg,
            code: 1,
            extra: Value::Null,
        }
    }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        let code = if matches!(e, EngineError::CudaUnavailable { .. }) {
            2
        } else {
            1
        };
        Failure {
            msg: e.to_string(),
            code,
            extra: Value::Null,
        }
    }
}

type Res<T> = Result<T, Failure>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = args.first().cloned().unwrap_or_default();
    let rest = args.get(1..).unwrap_or_default();
    let result = match cmd.as_str() {
        "info" => info(),
        "parity" => parity(rest),
        "packing" => packing(rest),
        "priority" => priority(rest),
        "" | "-h" | "--help" | "help" => {
            eprintln!(
                "usage: gpu_bench info | parity [--tol-abs A] [--tol-rel R] [MODEL.onnx [--shape 1x3x224x224] [--shape-of NAME DIMS] [--const NAME=V]...]... \
                 | packing [--lanes 1,2,4] [--seconds N] [--size 224] \
                 | priority [--seconds N] [--period-ms 20] [--hogs 3] [--size 224]"
            );
            std::process::exit(if cmd.is_empty() { 1 } else { 0 });
        }
        other => Err(Failure::from(format!("unknown subcommand {other:?}"))),
    };
    match result {
        Ok(mut v) => {
            v["cmd"] = json!(cmd);
            v["ok"] = json!(true);
            println!("{v}");
        }
        Err(f) => {
            eprintln!("gpu_bench {cmd}: error: {}", f.msg);
            let mut v = if f.extra.is_object() {
                f.extra
            } else {
                json!({})
            };
            v["cmd"] = json!(cmd);
            v["ok"] = json!(false);
            v["error"] = json!(f.msg);
            println!("{v}");
            std::process::exit(f.code);
        }
    }
}

// ---------------------------------------------------------------------------- helpers

/// The value following `--name`, if any.
fn opt<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn opt_num<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Res<T> {
    match opt(args, name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| Failure::from(format!("{name}: cannot parse {v:?}"))),
    }
}

fn parse_shape(s: &str) -> Res<Vec<usize>> {
    s.split(['x', ','])
        .map(|d| {
            d.trim()
                .parse::<usize>()
                .map_err(|_| Failure::from(format!("bad shape {s:?} (expected e.g. 1x3x224x224)")))
        })
        .collect()
}

fn work_dir() -> Res<PathBuf> {
    let dir = std::env::temp_dir().join(format!("rtmdl-gpu-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(dir)
}

fn write_model(dir: &Path, name: &str, bytes: Vec<u8>) -> Res<PathBuf> {
    let path = dir.join(format!("{name}.onnx"));
    std::fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

/// Uniform values in [-1, 1] from a fixed seed.
fn random_input(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let data = (0..n).map(|_| rng.random_range(-1.0f32..=1.0)).collect();
    ArrayD::from_shape_vec(IxDyn(shape), data).expect("shape matches length")
}

fn engine() -> Res<CudaEngine> {
    let t0 = Instant::now();
    let e = CudaEngine::new()?;
    eprintln!(
        "gpu_bench: {} ready in {:.2}s",
        e.version(),
        t0.elapsed().as_secs_f64()
    );
    Ok(e)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// p50/p90/p99/max/mean of latencies in milliseconds.
fn stats(lat: &[f64]) -> Value {
    if lat.is_empty() {
        return json!({"n": 0});
    }
    let mut v = lat.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    json!({
        "n": v.len(),
        "p50_ms": round3(pct(0.50)),
        "p90_ms": round3(pct(0.90)),
        "p99_ms": round3(pct(0.99)),
        "max_ms": round3(v[v.len() - 1]),
        "mean_ms": round3(mean),
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn ratio(a: &Value, b: &Value, key: &str) -> Value {
    match (a[key].as_f64(), b[key].as_f64()) {
        (Some(x), Some(y)) if y > 0.0 => json!(round3(x / y)),
        _ => Value::Null,
    }
}

// ------------------------------------------------------------------------------- info

fn info() -> Res<Value> {
    let env: Value = [
        "LD_LIBRARY_PATH",
        "CUDA_HOME",
        "CUDA_PATH",
        "XDG_CACHE_HOME",
    ]
    .iter()
    .map(|k| (k.to_string(), json!(std::env::var(k).ok())))
    .collect::<serde_json::Map<_, _>>()
    .into();
    let base = json!({
        "tract_cuda": cuda_engine::TRACT_CUDA_VERSION,
        "cuda_api_built_for": format!("{}.{}", cuda_engine::CUDA_API_VERSION / 1000, (cuda_engine::CUDA_API_VERSION % 1000) / 10),
        "cubin_cache": cuda_engine::cubin_cache_dir(),
        "env": env,
    });
    let gpu = match cuda_engine::probe_gpu() {
        Ok(g) => g,
        Err(e) => {
            let mut f = Failure::from(e);
            f.extra = base;
            f.extra["gpu"] = Value::Null;
            return Err(f);
        }
    };
    eprintln!(
        "gpu_bench: GPU {} (sm_{}{}, {} MiB, driver API {}, {} device(s)) via {}",
        gpu.name,
        gpu.compute_capability.0,
        gpu.compute_capability.1,
        gpu.total_mem_bytes >> 20,
        gpu.driver_api_string(),
        gpu.device_count,
        gpu.driver_library
    );
    let gpu_json = json!({
        "name": gpu.name,
        "compute_capability": format!("{}.{}", gpu.compute_capability.0, gpu.compute_capability.1),
        "memory_mib": gpu.total_mem_bytes >> 20,
        "driver_api": gpu.driver_api_string(),
        "device_count": gpu.device_count,
        "driver_library": gpu.driver_library,
    });
    let t0 = Instant::now();
    let engine = match CudaEngine::new() {
        Ok(e) => e,
        Err(e) => {
            let mut f = Failure::from(e);
            f.extra = base;
            f.extra["gpu"] = gpu_json;
            return Err(f);
        }
    };
    let init_s = t0.elapsed().as_secs_f64();
    let libs: Vec<Value> = engine
        .libraries()
        .iter()
        .map(|l| json!({"lib": l.short_name, "file": l.file_name, "path": l.path}))
        .collect();
    for l in engine.libraries() {
        eprintln!(
            "gpu_bench: {:>8}: {} {}",
            l.short_name,
            l.file_name,
            l.path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }
    let versions: serde_json::Map<String, Value> = engine
        .library_versions()
        .into_iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    eprintln!(
        "gpu_bench: library versions {}",
        Value::from(versions.clone())
    );
    let range = engine.stream_priority_range();
    let mut v = base;
    v["library_versions"] = versions.into();
    v["gpu"] = gpu_json;
    v["engine"] = json!(engine.version());
    v["libraries"] = json!(libs);
    v["init_s"] = json!(round3(init_s));
    v["stream_priority_range"] = match range {
        Ok((least, greatest)) => json!({"least": least, "greatest": greatest}),
        Err(e) => json!({"error": e.to_string()}),
    };
    eprintln!("gpu_bench: {} (set up in {init_s:.2}s)", engine.version());
    Ok(v)
}

// ----------------------------------------------------------------------------- parity

struct ParityCase {
    name: String,
    spec: ModelSpec,
}

fn parity(args: &[String]) -> Res<Value> {
    let tol_abs: f32 = opt_num(args, "--tol-abs", 1e-4)?;
    let tol_rel: f32 = opt_num(args, "--tol-rel", 1e-2)?;
    // Extra models: positional paths, each optionally followed by --shape.
    let mut extras: Vec<ParityCase> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--tol-abs" | "--tol-rel" => i += 2,
            "--shape" => {
                let shape = parse_shape(args.get(i + 1).map(String::as_str).unwrap_or(""))?;
                let last = extras
                    .last_mut()
                    .ok_or_else(|| Failure::from("--shape must follow a model path".to_string()))?;
                last.spec = last.spec.clone().with_input_shape(shape);
                i += 2;
            }
            "--shape-of" => {
                let name = args.get(i + 1).cloned().unwrap_or_default();
                let shape = parse_shape(args.get(i + 2).map(String::as_str).unwrap_or(""))?;
                let last = extras.last_mut().ok_or_else(|| {
                    Failure::from("--shape-of must follow a model path".to_string())
                })?;
                last.spec = last.spec.clone().with_input_shape_of(name, shape);
                i += 3;
            }
            "--const" => {
                let arg = args.get(i + 1).map(String::as_str).unwrap_or("");
                let (name, value) = arg
                    .split_once('=')
                    .and_then(|(n, v)| Some((n, v.parse::<f64>().ok()?)))
                    .ok_or_else(|| {
                        Failure::from(format!("bad --const {arg:?} (expected NAME=NUMBER)"))
                    })?;
                let last = extras
                    .last_mut()
                    .ok_or_else(|| Failure::from("--const must follow a model path".to_string()))?;
                last.spec = last
                    .spec
                    .clone()
                    .with_constant(name, InputValue::scalar(value));
                i += 2;
            }
            p => {
                extras.push(ParityCase {
                    name: p.to_string(),
                    spec: ModelSpec::new(p),
                });
                i += 1;
            }
        }
    }
    let engine = engine()?;
    let dir = work_dir()?;
    let mut cases = vec![
        ParityCase {
            name: "tiny_cnn_3x16x16".into(),
            spec: ModelSpec::new(write_model(
                &dir,
                "tiny_cnn_16",
                testmodels::tiny_cnn(42, 3, 16, 16, 10),
            )?),
        },
        ParityCase {
            name: "tiny_cnn_3x64x64_cut".into(),
            spec: ModelSpec::new(write_model(
                &dir,
                "tiny_cnn_64",
                testmodels::tiny_cnn(43, 3, 64, 64, 10),
            )?)
            .with_outputs([testmodels::TINY_CNN_FEATURES, testmodels::TINY_CNN_OUTPUT]),
        },
        ParityCase {
            name: "tiny_mlp_64_256_10".into(),
            spec: ModelSpec::new(write_model(
                &dir,
                "tiny_mlp",
                testmodels::tiny_mlp(7, 64, 256, 10),
            )?),
        },
        ParityCase {
            name: "conv_net_3x224x224".into(),
            spec: ModelSpec::new(write_model(
                &dir,
                "conv_net_224",
                testmodels::conv_net(1, 224, 224, 1000),
            )?),
        },
    ];
    cases.extend(extras);
    let mut results = Vec::new();
    let mut all_ok = true;
    for case in &cases {
        let r = parity_case(&engine, case, tol_abs, tol_rel);
        let ok = r["ok"].as_bool().unwrap_or(false);
        all_ok &= ok;
        eprintln!(
            "gpu_bench: parity {:<24} {} max_abs_diff {} cpu {} ms gpu {} ms{}",
            case.name,
            if ok { "OK  " } else { "FAIL" },
            r["max_abs_diff"],
            r["cpu_ms"],
            r["gpu_ms"],
            r.get("error")
                .map(|e| format!(" error: {e}"))
                .unwrap_or_default()
        );
        results.push(r);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({
        "engine": engine.version(),
        "tol_abs": tol_abs,
        "tol_rel": tol_rel,
        "all_ok": all_ok,
        "models": results,
    }))
}

/// Median wall time of `n` runs, in ms.
fn time_runs(s: &mut dyn Session, x: &[Tensor], n: usize) -> Result<f64, EngineError> {
    let views: Vec<TensorView<'_>> = x.iter().map(Tensor::view).collect();
    let mut t = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        s.run_many(&views)?;
        t.push(ms(t0.elapsed()));
    }
    t.sort_by(|a, b| a.total_cmp(b));
    Ok(round3(t[t.len() / 2]))
}

/// Seeded inputs for every input of a session (f32 uniform in [-1, 1], i64 zeros).
fn session_inputs(s: &dyn Session, seed: u64) -> Vec<Tensor> {
    s.inputs()
        .iter()
        .enumerate()
        .map(|(k, i)| match i.dtype {
            d if d.is_integer() => Tensor::zeros(d, &i.shape),
            _ => Tensor::F32(random_input(&i.shape, seed * 100 + k as u64)),
        })
        .collect()
}

fn parity_case(engine: &CudaEngine, case: &ParityCase, tol_abs: f32, tol_rel: f32) -> Value {
    let mut out = json!({"model": case.name, "ok": false});
    let run = || -> Result<Value, EngineError> {
        let mut cpu = TractEngine::new().session(&case.spec)?;
        let t0 = Instant::now();
        let mut gpu = engine.session(&case.spec)?;
        let gpu_load_s = t0.elapsed().as_secs_f64();
        let shape = cpu.input_shape().to_vec();
        let inputs = [
            session_inputs(cpu.as_ref(), 1),
            session_inputs(cpu.as_ref(), 2),
        ];
        let mut max_abs = 0f32;
        let mut max_ref = 0f32;
        let mut outputs = Vec::new();
        for x in &inputs {
            let views: Vec<TensorView<'_>> = x.iter().map(Tensor::view).collect();
            let a: Vec<ArrayD<f32>> = cpu
                .run_many(&views)?
                .into_iter()
                .map(Tensor::into_f32)
                .collect();
            let b: Vec<ArrayD<f32>> = gpu
                .run_many(&views)?
                .into_iter()
                .map(Tensor::into_f32)
                .collect();
            for (i, (p, q)) in a.iter().zip(&b).enumerate() {
                if p.shape() != q.shape() {
                    return Ok(json!({
                        "error": format!("output {i}: shape {:?} on CPU vs {:?} on GPU", p.shape(), q.shape())
                    }));
                }
                let d = p
                    .iter()
                    .zip(q.iter())
                    .map(|(u, v)| (u - v).abs())
                    .fold(
                        0f32,
                        |m, v| if v.is_nan() { f32::INFINITY } else { m.max(v) },
                    );
                let r = p.iter().fold(0f32, |m, v| m.max(v.abs()));
                max_abs = max_abs.max(d);
                max_ref = max_ref.max(r);
                if outputs.len() <= i {
                    outputs.push(json!({"name": cpu.output_names()[i], "shape": p.shape(), "max_abs_diff": d, "max_abs_value": r}));
                } else if outputs[i]["max_abs_diff"].as_f64().unwrap_or(0.0) < d as f64 {
                    outputs[i]["max_abs_diff"] = json!(d);
                }
            }
        }
        let n = if shape.iter().product::<usize>() > 100_000 {
            5
        } else {
            20
        };
        let cpu_ms = time_runs(cpu.as_mut(), &inputs[0], n)?;
        let gpu_ms = time_runs(gpu.as_mut(), &inputs[0], n)?;
        let ops = engine.plan_ops(&case.spec)?;
        let is_gpu = |n: &str| n.starts_with("Cuda") || n.starts_with("Gpu");
        let cpu_ops: Vec<&String> = ops
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                !is_gpu(n) && !n.starts_with("DeviceSync") && *n != "Source" && *n != "Const"
            })
            .collect();
        let ok = max_abs <= tol_abs + tol_rel * max_ref;
        Ok(json!({
            "ok": ok,
            "input_shape": shape,
            "inputs": cpu.inputs().iter().map(|i| json!([i.name, i.dtype.to_string(), i.shape])).collect::<Vec<_>>(),
            "max_abs_diff": max_abs,
            "max_abs_value": max_ref,
            "outputs": outputs,
            "cpu_ms": cpu_ms,
            "gpu_ms": gpu_ms,
            "gpu_load_s": round3(gpu_load_s),
            "plan_ops": ops.iter().map(|(n, c)| json!([n, c])).collect::<Vec<_>>(),
            "ops_left_on_cpu": cpu_ops,
        }))
    };
    match run() {
        Ok(v) => {
            if let (Some(o), Some(v)) = (out.as_object_mut(), v.as_object()) {
                for (k, x) in v {
                    o.insert(k.clone(), x.clone());
                }
            }
        }
        Err(e) => out["error"] = json!(e.to_string()),
    }
    out
}

// ---------------------------------------------------------------------------- packing

fn conv_net_spec(dir: &Path, size: usize) -> Res<ModelSpec> {
    Ok(ModelSpec::new(write_model(
        dir,
        &format!("conv_net_{size}"),
        testmodels::conv_net(1, size, size, 1000),
    )?))
}

fn packing(args: &[String]) -> Res<Value> {
    let lanes: Vec<usize> = opt(args, "--lanes")
        .unwrap_or("1,2,4")
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<usize>()
                .ok()
                .filter(|k| *k > 0)
                .ok_or_else(|| Failure::from(format!("--lanes: bad value {s:?}")))
        })
        .collect::<Res<_>>()?;
    let seconds: f64 = opt_num(args, "--seconds", 5.0)?;
    let size: usize = opt_num(args, "--size", 224)?;
    let engine = engine()?;
    let dir = work_dir()?;
    let spec = conv_net_spec(&dir, size)?;
    let mut results = Vec::new();
    let mut base = None;
    for &k in &lanes {
        let r = run_lanes(&engine, &spec, k, seconds)?;
        let tp = r["throughput_per_s"].as_f64().unwrap_or(0.0);
        let b = *base.get_or_insert(tp);
        eprintln!(
            "gpu_bench: packing {k} lane(s): {tp:.1} inferences/s ({:.2}x of {} lane(s)), latency p50 {} ms p99 {} ms",
            if b > 0.0 { tp / b } else { 0.0 },
            lanes[0],
            r["latency"]["p50_ms"],
            r["latency"]["p99_ms"]
        );
        let mut r = r;
        r["speedup_vs_first"] = json!(if b > 0.0 { round3(tp / b) } else { 0.0 });
        results.push(r);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({
        "engine": engine.version(),
        "model": format!("conv_net 1x3x{size}x{size}"),
        "seconds": seconds,
        "results": results,
    }))
}

/// One lane's inferences, elapsed seconds, latencies (ms) and load seconds.
type LaneOutcome = (usize, f64, Vec<f64>, f64);

/// `k` threads, each loading its own session (loads serialised) and then running it
/// back to back for `seconds`.
fn run_lanes(engine: &CudaEngine, spec: &ModelSpec, k: usize, seconds: f64) -> Res<Value> {
    let barrier = Barrier::new(k);
    let load_lock = Mutex::new(());
    let outcomes: Vec<Result<LaneOutcome, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..k)
            .map(|_| {
                s.spawn(|| {
                    let t0 = Instant::now();
                    let loaded = {
                        let _g = load_lock.lock().unwrap_or_else(|e| e.into_inner());
                        engine.session(spec)
                    };
                    let load_s = t0.elapsed().as_secs_f64();
                    barrier.wait();
                    let mut session = loaded.map_err(|e| e.to_string())?;
                    let input = random_input(session.input_shape(), 3);
                    let start = Instant::now();
                    let deadline = start + Duration::from_secs_f64(seconds);
                    let mut lat = Vec::new();
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        session.run(&input).map_err(|e| e.to_string())?;
                        lat.push(ms(t.elapsed()));
                    }
                    Ok((lat.len(), start.elapsed().as_secs_f64(), lat, load_s))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|p| Err(format!("lane thread panicked: {p:?}")))
            })
            .collect()
    });
    let mut total = 0usize;
    let mut elapsed = 0f64;
    let mut per_lane = Vec::new();
    let mut all_lat = Vec::new();
    let mut load_s = Vec::new();
    for o in outcomes {
        let (n, el, lat, ls) = o.map_err(|e| Failure::from(format!("{k} lanes: {e}")))?;
        total += n;
        elapsed = elapsed.max(el);
        per_lane.push(n);
        all_lat.extend(lat);
        load_s.push(round3(ls));
    }
    Ok(json!({
        "lanes": k,
        "inferences": total,
        "elapsed_s": round3(elapsed),
        "throughput_per_s": round3(total as f64 / elapsed.max(1e-9)),
        "per_lane_inferences": per_lane,
        "latency": stats(&all_lat),
        "load_s": load_s,
    }))
}

// --------------------------------------------------------------------------- priority

fn priority(args: &[String]) -> Res<Value> {
    let seconds: f64 = opt_num(args, "--seconds", 5.0)?;
    let period_ms: f64 = opt_num(args, "--period-ms", 20.0)?;
    let hogs: usize = opt_num(args, "--hogs", 3)?;
    let size: usize = opt_num(args, "--size", 224)?;
    let engine = engine()?;
    let dir = work_dir()?;
    let spec = conv_net_spec(&dir, size)?;
    let range = engine.stream_priority_range();
    let greatest = range.as_ref().map(|r| r.1).unwrap_or(0);
    let alone = periodic_phase(&engine, &spec, 0, None, seconds, period_ms)?;
    report_phase("alone", &alone);
    let contended = periodic_phase(&engine, &spec, hogs, None, seconds, period_ms)?;
    report_phase("contended", &contended);
    let prioritised = periodic_phase(&engine, &spec, hogs, Some(greatest), seconds, period_ms)?;
    report_phase("contended+priority", &prioritised);
    let (a, c, p) = (
        &alone["latency"],
        &contended["latency"],
        &prioritised["latency"],
    );
    let ratios = json!({
        "contended_over_alone_p50": ratio(c, a, "p50_ms"),
        "contended_over_alone_p99": ratio(c, a, "p99_ms"),
        "priority_over_alone_p50": ratio(p, a, "p50_ms"),
        "priority_over_alone_p99": ratio(p, a, "p99_ms"),
        "priority_over_contended_p99": ratio(p, c, "p99_ms"),
    });
    eprintln!("gpu_bench: priority ratios {ratios}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({
        "engine": engine.version(),
        "model": format!("conv_net 1x3x{size}x{size}"),
        "seconds_per_phase": seconds,
        "period_ms": period_ms,
        "hogs": hogs,
        "stream_priority_range": match range {
            Ok((least, greatest)) => json!({"least": least, "greatest": greatest}),
            Err(e) => json!({"error": e.to_string()}),
        },
        "alone": alone,
        "contended": contended,
        "contended_with_priority": prioritised,
        "ratios": ratios,
    }))
}

fn report_phase(name: &str, v: &Value) {
    eprintln!(
        "gpu_bench: priority {name:<20} p50 {} ms p99 {} ms max {} ms (n {}, missed {}), hogs {} inferences/s",
        v["latency"]["p50_ms"],
        v["latency"]["p99_ms"],
        v["latency"]["max_ms"],
        v["latency"]["n"],
        v["missed_periods"],
        v["hog_throughput_per_s"]
    );
}

/// One periodic thread (own session, optional stream priority) running every
/// `period_ms` for `seconds`, beside `hogs` threads running back to back. All threads
/// are fresh, so each has a fresh tract-cuda stream.
fn periodic_phase(
    engine: &CudaEngine,
    spec: &ModelSpec,
    hogs: usize,
    priority: Option<i32>,
    seconds: f64,
    period_ms: f64,
) -> Res<Value> {
    let barrier = Barrier::new(hogs + 1);
    let load_lock = Mutex::new(());
    let stop = AtomicBool::new(false);
    let hog_count = AtomicU64::new(0);
    let load = |engine: &CudaEngine| -> Result<Box<dyn Session>, String> {
        let _g = load_lock.lock().unwrap_or_else(|e| e.into_inner());
        engine.session(spec).map_err(|e| e.to_string())
    };
    let result: Result<Value, String> = std::thread::scope(|s| {
        let hog_handles: Vec<_> = (0..hogs)
            .map(|_| {
                s.spawn(|| -> Result<(), String> {
                    let loaded = load(engine);
                    barrier.wait();
                    let mut session = loaded?;
                    let input = random_input(session.input_shape(), 5);
                    while !stop.load(Ordering::Relaxed) {
                        session.run(&input).map_err(|e| e.to_string())?;
                        hog_count.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        let high = s.spawn(|| -> Result<Value, String> {
            let loaded = load(engine);
            let set = match (&loaded, priority) {
                (Ok(_), Some(p)) => Some(
                    engine
                        .set_thread_stream_priority(p)
                        .map_err(|e| e.to_string()),
                ),
                _ => None,
            };
            barrier.wait();
            let result = (|| {
                let mut session = loaded?;
                let input = random_input(session.input_shape(), 6);
                // Let the hogs get going.
                std::thread::sleep(Duration::from_millis(300));
                let hogs_before = hog_count.load(Ordering::Relaxed);
                let period = Duration::from_secs_f64(period_ms / 1e3);
                let start = Instant::now();
                let end = start + Duration::from_secs_f64(seconds);
                let mut next = start;
                let mut lat = Vec::new();
                let mut missed = 0u64;
                while next < end {
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    }
                    let t = Instant::now();
                    session.run(&input).map_err(|e| e.to_string())?;
                    lat.push(ms(t.elapsed()));
                    next += period;
                    while next < Instant::now() {
                        next += period;
                        missed += 1;
                    }
                }
                let el = start.elapsed().as_secs_f64();
                let hog_n = hog_count.load(Ordering::Relaxed) - hogs_before;
                Ok(json!({
                    "latency": stats(&lat),
                    "missed_periods": missed,
                    "hog_inferences": hog_n,
                    "hog_throughput_per_s": round3(hog_n as f64 / el),
                    "priority_requested": priority,
                    "priority_set": match set {
                        None => Value::Null,
                        Some(Ok(p)) => json!(p),
                        Some(Err(e)) => json!({"error": e}),
                    },
                }))
            })();
            stop.store(true, Ordering::Relaxed);
            result
        });
        let high = high
            .join()
            .unwrap_or_else(|p| Err(format!("periodic thread panicked: {p:?}")));
        stop.store(true, Ordering::Relaxed);
        for h in hog_handles {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("hog thread: {e}")),
                Err(p) => return Err(format!("hog thread panicked: {p:?}")),
            }
        }
        high
    });
    result.map_err(Failure::from)
}
