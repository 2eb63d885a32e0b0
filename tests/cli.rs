//! The command line as a user runs it.

use std::process::Command;

fn rtmdl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rtmdl"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run rtmdl")
}

#[test]
fn simulate_prints_the_documented_json() {
    let out = rtmdl(&[
        "simulate",
        "examples/heavy.toml",
        "--policy",
        "dm",
        "--variants",
        "original",
        "--duration",
        "5s",
        "--seed",
        "3",
        "--json",
        "-",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["policy"], "dm");
    assert_eq!(v["variants"], "original");
    assert_eq!(v["duration_s"], 5.0);
    for key in ["miss_rate", "accuracy_loss"] {
        assert!(v[key].is_f64(), "{key}");
    }
    assert!(v["utilisation"]["cpu"].is_f64() && v["utilisation"]["gpu"].is_f64());
    let tasks = v["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 5);
    for t in tasks {
        for key in [
            "name",
            "variant",
            "priority",
            "jobs",
            "missed",
            "dropped",
            "miss_rate",
            "accuracy",
        ] {
            assert!(!t[key].is_null(), "task key {key}");
        }
        for key in ["p50", "p99", "max"] {
            assert!(t["response_ms"][key].is_f64(), "response_ms.{key}");
        }
    }
    // Same seed, same bytes.
    let again = rtmdl(&[
        "simulate",
        "examples/heavy.toml",
        "--policy",
        "dm",
        "--variants",
        "original",
        "--duration",
        "5s",
        "--seed",
        "3",
        "--json",
        "-",
    ]);
    assert_eq!(out.stdout, again.stdout);
}

#[test]
fn compare_runs_every_baseline() {
    let out = rtmdl(&[
        "compare",
        "examples/light.toml",
        "--duration",
        "2s",
        "--json",
        "-",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["policy"].as_str().unwrap().into(),
                r["variants"].as_str().unwrap().into(),
            )
        })
        .collect();
    for want in [
        ("dm", "original"),
        ("dm", "compressed"),
        ("um", "original"),
        ("fifo", "original"),
        ("edf", "original"),
        ("rtmdl", "plan"),
    ] {
        assert!(
            rows.contains(&(want.0.into(), want.1.into())),
            "{want:?} in {rows:?}"
        );
    }
}

#[test]
fn a_bad_config_is_one_clear_message_and_a_failure_code() {
    let dir = std::env::temp_dir().join(format!("rtmdl-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/light.toml"))
        .unwrap()
        .replace("period = \"33 ms\"", "period = \"33 parsecs\"");
    std::fs::write(&bad, text).unwrap();
    let out = rtmdl(&["simulate", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:") && err.contains("period") && err.contains("parsecs"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let missing = rtmdl(&["simulate", "no/such/file.toml"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no/such/file.toml"));
}

#[test]
fn run_writes_the_simulators_json_and_a_chrome_trace() {
    let dir = std::env::temp_dir().join(format!("rtmdl-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("t.json");
    let out = rtmdl(&[
        "run",
        "examples/tiny-real.toml",
        "--duration",
        "2s",
        "--engine",
        "tract",
        "--rt",
        "off",
        "--json",
        "-",
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mode"], "run");
    assert_eq!(v["policy"], "rtmdl");
    let tasks = v["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    for t in tasks {
        let n = |k: &str| t[k].as_u64().unwrap();
        assert!(n("jobs") > 0);
        assert!(
            n("completed") + n("missed") + n("dropped") + n("failed") == n("jobs"),
            "{t}"
        );
        assert_eq!(n("failed"), 0);
    }
    assert!(v["notes"]["engine"].as_str().unwrap().starts_with("tract"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("GPU lane(s) run the CPU engine"),
        "{stderr}"
    );
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let events = t["traceEvents"].as_array().unwrap();
    let tracks: Vec<&str> = events
        .iter()
        .filter(|e| e["name"] == "thread_name")
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    for want in [
        "CPU worker 0",
        "CPU worker 1",
        "GPU lane 0",
        "GPU lane 1",
        "deadline misses",
    ] {
        assert!(tracks.contains(&want), "{tracks:?}");
    }
    let slices: Vec<&serde_json::Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    assert!(slices.iter().any(|e| {
        e["name"]
            .as_str()
            .unwrap()
            .starts_with("traffic_light/0/infer")
    }));
    assert!(slices.iter().all(|e| e["dur"].as_f64().unwrap() >= 0.0));
}

/// Whether process `pid` has a thread whose name starts with `prefix`.
fn has_thread(pid: u32, prefix: &str) -> bool {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    dir.flatten().any(|t| {
        std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with(prefix))
    })
}

#[test]
fn ctrl_c_stops_the_run_and_still_writes_the_report_and_trace() {
    let dir = std::env::temp_dir().join(format!("rtmdl-sigint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, trace) = (dir.join("r.json"), dir.join("t.json"));
    let child = Command::new(env!("CARGO_BIN_EXE_rtmdl"))
        .args([
            "run",
            "examples/tiny-real.toml",
            "--duration",
            "60s",
            "--engine",
            "tract",
            "--rt",
            "off",
            "--json",
        ])
        .arg(&json)
        .arg("--trace")
        .arg(&trace)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The Ctrl-C handler is installed before the workers are spawned:
    // once a worker thread exists the signal is the run's to handle, on a
    // loaded machine as on an idle one.
    let waited = std::time::Instant::now();
    while !has_thread(child.id(), "rtmdl-cpu") {
        assert!(
            waited.elapsed().as_secs() < 120,
            "the run never started its workers"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: sending SIGINT to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(
        v["notes"]["stopped"]
            .as_str()
            .unwrap()
            .starts_with("interrupted"),
        "{v}"
    );
    assert!(v["duration_s"].as_f64().unwrap() < 30.0);
    for t in v["tasks"].as_array().unwrap() {
        let n = |k: &str| t[k].as_u64().unwrap();
        assert!(n("jobs") > 0);
        assert_eq!(
            n("completed") + n("missed") + n("dropped") + n("failed"),
            n("jobs"),
            "{t}"
        );
    }
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    assert!(
        t["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["ph"] == "X")
    );
}

/// `--help` lists the policies, variants and engines with their meaning,
/// and one spelling of the real-time switch with each command's default.
#[test]
fn help_lists_the_choices_and_the_real_time_defaults() {
    let help = |cmd: &str| {
        let o = rtmdl(&[cmd, "--help"]);
        assert!(o.status.success());
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let sim = help("simulate");
    for want in [
        "rtmdl:",
        "dm:",
        "um:",
        "fifo:",
        "edf:",
        "dm-split:",
        "um-split:",
        "deadline-monotonic",
        "original:",
        "compressed:",
        "plan:",
    ] {
        assert!(sim.contains(want), "{want} in\n{sim}");
    }
    for (cmd, default) in [
        ("run", "on"),
        ("stress", "off"),
        ("demo", "on"),
        ("plan", "on"),
    ] {
        let h = help(cmd);
        assert!(h.contains("--rt <on|off>"), "{cmd}:\n{h}");
        assert!(h.contains(&format!("[default: {default}]")), "{cmd}:\n{h}");
        assert!(!h.contains("--no-rt"), "{cmd}:\n{h}");
    }
    assert!(help("run").contains("tract:"));
    let bad = rtmdl(&["simulate", "examples/light.toml", "--policy", "edd"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("edf"));
}

/// Without the `train` feature, the commands that re-fit say how to get it.
#[cfg(not(feature = "train"))]
#[test]
fn without_the_training_stack_scale_and_refit_say_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    for args in [
        vec![
            "scale",
            "assets/models/signs.onnx",
            "-o",
            out.to_str().unwrap(),
        ],
        vec!["demo", "--quick", "--refit", "--out", out.to_str().unwrap()],
    ] {
        let o = rtmdl(&args);
        assert!(!o.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("--features train") && err.contains("rtmdl-train"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[cfg(feature = "train")]
#[test]
fn scale_names_a_missing_or_foreign_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    // Not a dataset folder.
    let out = rtmdl(&[
        "scale",
        "assets/models/signs.onnx",
        "--train",
        d,
        "--val",
        d,
        "-o",
        d,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--train") && err.contains(d), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // A width out of range is refused before any work.
    let out = rtmdl(&[
        "scale",
        "assets/models/signs.onnx",
        "--train",
        d,
        "--val",
        d,
        "--widths",
        "1,1.5",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--widths"));
    // A model file that is not ONNX: the error names it.
    let bad = dir.path().join("bad.onnx");
    std::fs::write(&bad, b"not a model").unwrap();
    let data = dir.path().join("data");
    let (train, _) = rtmdl_scenes::cached(
        rtmdl_scenes::Kind::Signs,
        rtmdl_scenes::Split::Train,
        8,
        1,
        &data,
    )
    .unwrap();
    drop(train);
    let set = std::fs::read_dir(&data)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let set = set.to_str().unwrap();
    let out = rtmdl(&[
        "scale",
        bad.to_str().unwrap(),
        "--train",
        set,
        "--val",
        set,
        "-o",
        d,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.onnx"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_broken_model_fails_its_own_task_only_and_check_makes_the_run_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let model = |name: &str, infer: &str| {
        format!(
            r#"
[models.{name}]
stages = [
  {{ name = "pre", on = "cpu", time = "0.2 ms" }},
  {{ name = "infer", on = "gpu"{infer} }},
]
[[models.{name}.variants]]
name = "full"
accuracy = 0.9
times.infer = "1 ms"
"#
        )
    };
    let cfg = format!(
        "[platform]\ncpu_workers = 1\ngpu_lanes = 1\n{}{}{}",
        model("ok", ""),
        model("bad", ", params = { fault = { mode = \"panic\" } }"),
        r#"
[[tasks]]
name = "healthy"
model = "ok"
period = "20 ms"

[[tasks]]
name = "broken"
model = "bad"
period = "30 ms"
"#
    );
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, cfg).unwrap();
    let json = dir.path().join("r.json");
    let out = rtmdl(&[
        "run",
        path.to_str().unwrap(),
        "--duration",
        "1500ms",
        "--rt",
        "off",
        "--engine",
        "tract",
        "--json",
        json.to_str().unwrap(),
        "--check",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The run completes and writes its report; --check then fails it,
    // naming the broken task (its failed jobs are not on time) and only it.
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let verdict = stderr
        .lines()
        .find(|l| l.starts_with("error: check failed"))
        .unwrap_or_else(|| panic!("no verdict line:\n{stderr}"));
    assert!(verdict.contains("broken: 100.00 %"), "{verdict}");
    assert!(verdict.contains("jobs failed"), "{verdict}");
    assert!(!verdict.contains("healthy"), "{verdict}");
    assert!(
        stderr.contains("warning: task broken: none of its 50 jobs was delivered"),
        "{stderr}"
    );
    let row = stdout
        .lines()
        .find(|l| l.starts_with("broken "))
        .unwrap_or_else(|| panic!("no row for broken:\n{stdout}"));
    assert!(row.contains("100.00") && row.ends_with(" !"), "{row}");
    assert!(stdout.contains("failed broken"), "{stdout}");
    // Each panic is one line, not a backtrace.
    assert!(
        stderr
            .lines()
            .filter(|l| l.contains("injected panic"))
            .count()
            >= 10,
        "{stderr}"
    );
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let note = v["notes"]["failures"].as_str().unwrap();
    assert!(note.contains("broken/"), "{note}");
    let task = |name: &str| {
        v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()
            .clone()
    };
    let (healthy, broken) = (task("healthy"), task("broken"));
    assert_eq!(healthy["jobs"], 75);
    assert_eq!(healthy["failed"], 0);
    assert!(healthy["completed"].as_u64().unwrap() > 0);
    assert_eq!(broken["jobs"], 50);
    assert_eq!(broken["completed"], 0);
    assert!(broken["failed"].as_u64().unwrap() * 2 > 50, "{broken}");
    assert_eq!(broken["miss_rate"], 1.0, "{broken}");
    assert_eq!(healthy["miss_rate"], 0.0, "{healthy}");
}

#[test]
fn run_predicts_with_the_profile_it_is_given() {
    use rtmdl_core::profile::{ModelProfile, Profile, StageProfile, VariantProfile};
    let dir = tempfile::tempdir().unwrap();
    // Emulated stages: the run spins the config's 2 ms; the profile says
    // the inference takes 74 ms, more than the 50 ms deadline.
    let cfg = dir.path().join("det.toml");
    std::fs::write(
        &cfg,
        r#"
[platform]
cpu_workers = 1
gpu_lanes = 1

[models.det]
stages = [
  { name = "pre", on = "cpu", time = "1 ms" },
  { name = "infer", on = "gpu" },
]
[[models.det.variants]]
name = "full"
accuracy = 0.9
times.infer = "2 ms"

[[tasks]]
name = "det"
model = "det"
period = "20 Hz"
max_miss_rate = 0.05
overrun = "skip"
"#,
    )
    .unwrap();
    let stage = |name: &str, ms: f64| StageProfile::from_samples(name, vec![(ms * 1e6) as u64; 20]);
    let profile = Profile {
        config: "det.toml".into(),
        engine: "test".into(),
        runs: 20,
        gpu_slowdown: vec![1.0],
        models: vec![ModelProfile {
            name: "det".into(),
            variants: vec![VariantProfile {
                name: "full".into(),
                stages: vec![stage("pre", 1.0), stage("infer", 74.0)],
            }],
        }],
        machine: None,
        stage_engines: Vec::new(),
    };
    let prof = dir.path().join("profile.json");
    std::fs::write(&prof, serde_json::to_string(&profile).unwrap()).unwrap();
    let run = |extra: &[&str]| {
        let json = dir.path().join("r.json");
        let mut args = vec![
            "run",
            cfg.to_str().unwrap(),
            "--duration",
            "1s",
            "--rt",
            "off",
            "--engine",
            "tract",
            "--json",
            json.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = rtmdl(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        v
    };
    let plain = run(&[]);
    // 20 Hz is a 50 ms period: 20 jobs in 1 s.
    assert_eq!(plain["tasks"][0]["jobs"], 20, "{plain}");
    assert_eq!(plain["tasks"][0]["predicted"]["miss_rate"], 0.0, "{plain}");
    assert!(
        plain["notes"]["prediction"]
            .as_str()
            .unwrap()
            .contains("config's times"),
        "{plain}"
    );
    let profiled = run(&["--profile", prof.to_str().unwrap()]);
    let p = &profiled["tasks"][0]["predicted"];
    assert!(p["miss_rate"].as_f64().unwrap() > 0.4, "{profiled}");
    assert!(
        p["response_ms"]["p99"].as_f64().unwrap() > 70.0,
        "{profiled}"
    );
    assert!(
        profiled["notes"]["prediction"]
            .as_str()
            .unwrap()
            .contains("profile.json"),
        "{profiled}"
    );
    // The run itself ran the config's 2 ms and kept its deadlines.
    assert!(profiled["tasks"][0]["response_ms"]["p50"].as_f64().unwrap() < 40.0);
}

#[test]
fn plan_compare_and_analyze_give_the_same_bytes_twice() {
    let dir = tempfile::tempdir().unwrap();
    let twice = |args: &[&str], out: Option<&std::path::Path>| {
        let once = || {
            let o = rtmdl(args);
            assert!(
                o.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            match out {
                Some(p) => std::fs::read(p).unwrap(),
                None => o.stdout,
            }
        };
        let (a, b) = (once(), once());
        assert!(!a.is_empty(), "{args:?} wrote nothing");
        assert!(a == b, "{args:?} differed between two identical calls");
    };
    twice(
        &[
            "compare",
            "examples/heavy.toml",
            "--duration",
            "3s",
            "--json",
            "-",
        ],
        None,
    );
    twice(&["analyze", "examples/heavy.toml", "--json", "-"], None);
    let plan = dir.path().join("plan.toml");
    twice(
        &[
            "plan",
            "examples/light.toml",
            "--population",
            "12",
            "--generations",
            "6",
            "--out",
            plan.to_str().unwrap(),
        ],
        Some(&plan),
    );
}

#[test]
fn every_variant_of_the_tiny_example_runs() {
    // The half-width models take smaller frames (their own `params.pre`):
    // a plan that picks them must run, not fail every job on a shape.
    for variants in ["original", "compressed"] {
        let out = rtmdl(&[
            "run",
            "examples/tiny-real.toml",
            "--variants",
            variants,
            "--duration",
            "300ms",
            "--engine",
            "tract",
            "--rt",
            "off",
            "--json",
            "-",
        ]);
        assert!(
            out.status.success(),
            "{variants}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for t in v["tasks"].as_array().unwrap() {
            assert!(t["jobs"].as_u64().unwrap() > 0, "{variants}: {t}");
            assert_eq!(t["failed"].as_u64(), Some(0), "{variants}: {t}");
        }
    }
}
