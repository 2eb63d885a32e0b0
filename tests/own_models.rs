//! A user's own model, end to end, as the "bring your own models" issue
//! walks it: `inspect` prints a config that runs as it is; a config may
//! leave its stage times to `rtmdl profile`; variants of one network at
//! other input sizes (`params.STAGE` on a variant); every delivered result
//! out as JSON lines. The model is a small CNN exported with symbolic
//! height and width, as detectors and classifiers are.

use std::path::Path;
use std::process::{Command, Output};

fn rtmdl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rtmdl"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run rtmdl")
}

fn ok(args: &[&str]) -> String {
    let out = rtmdl(args);
    assert!(
        out.status.success(),
        "rtmdl {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes the any-size CNN (3 channels in, 5 classes out).
fn model(dir: &Path) -> String {
    let path = dir.join("net.onnx");
    std::fs::write(&path, rtmdl_engine::testmodels::tiny_cnn_any_size(3, 3, 5)).unwrap();
    path.display().to_string()
}

/// A 1 s real run of `cfg` on tract without real-time priority or probe,
/// with `extra` arguments; its JSON report, checked to have delivered jobs
/// and failed none.
fn run_delivers(cfg: &Path, extra: &[&str]) -> serde_json::Value {
    let json = cfg.with_extension("report.json");
    let mut args = vec![
        "run",
        cfg.to_str().unwrap(),
        "--duration",
        "1s",
        "--rt",
        "off",
        "--probe",
        "off",
        "--engine",
        "tract",
        "--json",
        json.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(&args);
    let r = report(&json);
    let t = &r["tasks"][0];
    assert!(t["completed"].as_u64().unwrap() > 0, "{t}");
    assert_eq!(t["failed"].as_u64(), Some(0), "{t}");
    r
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn inspect_prints_a_config_that_runs_as_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let net = model(tmp.path());
    let out = ok(&[
        "inspect",
        &net,
        "--engine",
        "tract",
        "--shape",
        "1,3,40,40",
        "--runs",
        "1",
    ]);
    let config = &out[out.find("[platform]").expect("a whole config")..];
    let parsed: toml::Table = config.parse().expect("valid TOML");
    // The shape given is kept, and the source feeds it.
    let task = &parsed["tasks"][0];
    assert_eq!(task["source"]["kind"].as_str(), Some("tensor"));
    assert_eq!(
        task["source"]["shape"].as_array().unwrap().len(),
        4,
        "{config}"
    );
    assert!(config.contains("input_shape = [1, 3, 40, 40]"), "{config}");
    // Saved anywhere (the model path is absolute), it runs.
    let elsewhere = tempfile::tempdir().unwrap();
    let cfg = elsewhere.path().join("mine.toml");
    std::fs::write(&cfg, config).unwrap();
    run_delivers(&cfg, &[]);
}

/// Two variants of the one network: 40 px (the stage's parameters) and 24
/// px (its own `params.pre` and `params.infer`), with no stage times.
const VARIANTS: &str = r#"
[platform]
cpu_workers = 1
gpu_lanes = 1

[models.net]
stages = [
  { name = "pre", on = "cpu", function = "resize_normalize", params = { width = 40, height = 40 } },
  { name = "infer", on = "gpu", params = { input_shape = [1, 3, 40, 40], threads = 1 } },
  { name = "post", on = "cpu", function = "softmax_top1", params = { apply_softmax = false } },
]

[[models.net.variants]]
name = "40px"
accuracy = 0.9
file = "net.onnx"

[[models.net.variants]]
name = "24px"
accuracy = 0.8
file = "net.onnx"
params.pre = { width = 24, height = 24 }
params.infer = { input_shape = [1, 3, 24, 24] }

[[tasks]]
name = "cam"
model = "net"
variant = "24px"
period = "20 Hz"
max_miss_rate = 0.05
source = { kind = "synthetic_frames", width = 64, height = 48 }
"#;

#[test]
fn times_left_to_the_profile_and_variants_at_other_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    model(dir);
    let cfg = dir.join("net.toml");
    std::fs::write(&cfg, VARIANTS).unwrap();
    let cfg_s = cfg.to_str().unwrap();
    // Nothing predicts without the times...
    let out = rtmdl(&["simulate", cfg_s, "--duration", "1s"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no time for net/40px/pre"), "{err}");
    assert!(err.contains("rtmdl profile"), "{err}");
    // ...and `profile` measures them, for both variants.
    let prof = dir.join("profile.json");
    ok(&[
        "profile",
        cfg_s,
        "--engine",
        "tract",
        "--runs",
        "3",
        "--calibrate",
        "0s",
        "--rt",
        "off",
        "-o",
        prof.to_str().unwrap(),
    ]);
    let p = report(&prof);
    let variants: Vec<&str> = p["models"][0]["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(variants, ["40px", "24px"]);
    let sim = ok(&[
        "simulate",
        cfg_s,
        "--profile",
        prof.to_str().unwrap(),
        "--duration",
        "1s",
    ]);
    assert!(sim.contains("24px"), "{sim}");

    // The 24 px variant runs with its own pre and infer, and every result
    // comes out as a JSON line.
    let results = dir.join("results.jsonl");
    let r = run_delivers(
        &cfg,
        &[
            "--profile",
            prof.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
        ],
    );
    let completed = r["tasks"][0]["completed"].as_u64().unwrap();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&results)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, completed, "one line per delivered job");
    for l in &lines {
        assert_eq!(l["task"], "cam");
        assert_eq!(l["variant"], "24px");
        // softmax_top1: (class, confidence).
        assert_eq!(l["shape"], serde_json::json!([2]));
        let class = l["values"][0].as_f64().unwrap();
        assert_eq!(l["answer"].as_f64(), Some(class));
        let (rel, fin, resp) = (
            l["released_ms"].as_f64().unwrap(),
            l["finished_ms"].as_f64().unwrap(),
            l["response_ms"].as_f64().unwrap(),
        );
        assert!((fin - rel - resp).abs() < 1e-6 && resp >= 0.0, "{l}");
        assert_eq!(l["on_time"].as_bool(), Some(resp <= 50.0), "{l}");
    }

    // Without its own `params.pre`, the 24 px variant's model would get the
    // stage's 40 px input: named before the first release.
    let half = VARIANTS.replace("params.pre = { width = 24, height = 24 }\n", "");
    std::fs::write(&cfg, half).unwrap();
    let out = rtmdl(&[
        "run",
        cfg_s,
        "--profile",
        prof.to_str().unwrap(),
        "--duration",
        "1s",
        "--rt",
        "off",
        "--engine",
        "tract",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[1, 3, 24, 24]"), "{err}");
    assert!(err.contains("stage `pre`"), "{err}");
}

#[test]
fn variants_proposes_smaller_sizes_and_an_int8_copy_measured_here() {
    let tmp = tempfile::tempdir().unwrap();
    let net = model(tmp.path());
    let quantizer = Command::new("python3")
        .args(["-c", "import onnx, onnxruntime.quantization"])
        .output()
        .is_ok_and(|o| o.status.success());
    let require = std::env::var("RTMDL_REQUIRE_ORT").is_ok_and(|v| v == "1");
    assert!(
        quantizer || !require,
        "RTMDL_REQUIRE_ORT=1 but python3 lacks onnx / onnxruntime.quantization"
    );
    let mut args = vec![
        "variants",
        &net,
        "--sizes",
        "40,24",
        "--threads",
        "1,2",
        "--engine",
        "tract",
        "--runs",
        "1",
    ];
    if quantizer {
        args.push("--int8");
    } else {
        eprintln!("skipping the INT8 half: python3 has no onnxruntime quantizer");
    }
    let out = ok(&args);
    for name in ["40px", "24px", "40px-2t", "24px-2t"] {
        assert!(out.contains(name), "{out}");
    }
    let blocks = &out[out.find("[[models.net.variants]]").expect("variant blocks")..];
    let parsed: toml::Table = blocks.parse().expect("valid TOML");
    let variants = parsed["models"]["net"]["variants"].as_array().unwrap();
    let shapes: Vec<String> = variants
        .iter()
        .map(|v| v["params"]["infer"]["input_shape"].to_string())
        .collect();
    assert!(shapes.contains(&"[1, 3, 24, 24]".to_string()), "{shapes:?}");
    for v in variants {
        assert!(
            v["times"]["infer"].as_str().unwrap().ends_with(" ms"),
            "{v}"
        );
        // Each block runs at the threads its time was measured at.
        let threads = v["params"]["infer"]["threads"].as_integer();
        let two = v["name"].as_str().unwrap().ends_with("-2t");
        assert_eq!(threads, Some(if two { 2 } else { 1 }), "{v}");
    }
    if quantizer {
        let int8 = tmp.path().join("net.int8.onnx");
        assert!(int8.exists(), "the INT8 copy is written next to the model");
        assert!(out.contains("40px-int8"), "{out}");
    }
    // A model with a fixed input size gets its one size, and says why.
    let fixed = tmp.path().join("fixed.onnx");
    std::fs::write(&fixed, rtmdl_engine::testmodels::tiny_cnn(1, 3, 16, 16, 4)).unwrap();
    let o = rtmdl(&[
        "variants",
        fixed.to_str().unwrap(),
        "--engine",
        "tract",
        "--runs",
        "1",
    ]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("fixed height and width"), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("16px"));
}

#[test]
fn inspect_keeps_every_shape_of_a_multi_input_model() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("rec.onnx");
    std::fs::write(&path, rtmdl_engine::testmodels::tiny_recurrent()).unwrap();
    let p = path.to_str().unwrap();
    let out = ok(&[
        "inspect",
        p,
        "--engine",
        "tract",
        "--shape",
        "x=1,16",
        "--shape",
        "state=2,1,4",
        "--value",
        "rate=16000",
        "--runs",
        "1",
    ]);
    let config = &out[out.find("[platform]").expect("a whole config")..];
    // x takes the job's tensor; state and rate are fixed at what was given.
    assert!(config.contains("input_shape = [1, 16]"), "{config}");
    assert!(config.contains("rate = 16000"), "{config}");
    assert!(config.contains("shape = [2, 1, 4]"), "{config}");
    let cfg = tmp.path().join("rec.toml");
    std::fs::write(&cfg, config).unwrap();
    run_delivers(&cfg, &[]);
    // At the default shapes (every symbolic dim at 1) it runs too; a shape
    // no engine takes is an error, not a config.
    let bad = rtmdl(&[
        "inspect",
        p,
        "--engine",
        "tract",
        "--shape",
        "state=2,1,5",
        "--runs",
        "1",
    ]);
    assert!(!bad.status.success());
    assert!(!String::from_utf8_lossy(&bad.stdout).contains("[platform]"));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no engine ran"));
}

/// A task that cannot keep its period on its model's one variant: `plan`
/// says which command measures variants of that model's file.
#[test]
fn plan_points_a_single_variant_model_to_rtmdl_variants() {
    let tmp = tempfile::tempdir().unwrap();
    let net = model(tmp.path());
    let cfg = tmp.path().join("one.toml");
    std::fs::write(
        &cfg,
        r#"
[platform]
cpu_workers = 1
gpu_lanes = 1

[models.net]
stages = [{ name = "infer", on = "gpu", params = { input_shape = [1, 3, 24, 24] } }]

[[models.net.variants]]
name = "24px"
accuracy = 0.9
file = "net.onnx"
times.infer = "30 ms"

[[tasks]]
name = "cam"
model = "net"
period = "20 ms"
max_miss_rate = 0.05
"#,
    )
    .unwrap();
    let out = rtmdl(&[
        "plan",
        cfg.to_str().unwrap(),
        "--generations",
        "3",
        "--population",
        "8",
        "-o",
        tmp.path().join("plan.toml").to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "an infeasible plan exits non-zero");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let hint = stdout
        .lines()
        .find(|l| l.contains("has one variant"))
        .unwrap_or_else(|| panic!("no variants hint:\n{stdout}"));
    assert!(hint.contains("task `cam`"), "{hint}");
    assert!(
        hint.contains(&format!("rtmdl variants {net}")),
        "names the model's file: {hint}"
    );
}
