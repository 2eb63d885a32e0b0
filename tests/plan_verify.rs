//! `rtmdl plan --verify`: a profile that is deliberately optimistic makes
//! the first plan miss for real; the command updates the model from the
//! run and plans again. Bad input: a zero duration, models that cannot
//! load. Emulated stages (busy work), so no model file is needed.

use std::path::Path;
use std::process::Command;

use rtmdl_core::profile::{ModelProfile, Profile, StageProfile, VariantProfile};

fn rtmdl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rtmdl"))
        .args(args)
        .output()
        .expect("run rtmdl")
}

/// Two tasks on one lane, every 10 ms; the big variant takes 6 ms of the
/// lane, the small one 1.5 ms: two big ones cannot both keep deadlines.
const CONFIG: &str = r#"
[platform]
cpu_workers = 1
gpu_lanes = 1

[models.cam]
stages = [
  { name = "pre", on = "cpu", time = "0.2 ms" },
  { name = "infer", on = "gpu" },
]
[[models.cam.variants]]
name = "big"
accuracy = 0.95
times.infer = "6 ms"
[[models.cam.variants]]
name = "small"
accuracy = 0.90
times.infer = "1.5 ms"

[[tasks]]
name = "a"
model = "cam"
period = "10 ms"
max_miss_rate = 0.05
overrun = "skip"

[[tasks]]
name = "b"
model = "cam"
period = "10 ms"
max_miss_rate = 0.05
overrun = "skip"
"#;

/// A profile that says every inference takes half as long as it does.
fn optimistic_profile(path: &Path) {
    let stage = |name: &str, ms: f64| StageProfile::from_samples(name, vec![(ms * 1e6) as u64; 50]);
    let variant = |name: &str, infer_ms: f64| VariantProfile {
        name: name.into(),
        stages: vec![stage("pre", 0.2), stage("infer", infer_ms)],
    };
    let p = Profile {
        config: "cfg.toml".into(),
        engine: "test".into(),
        runs: 50,
        gpu_slowdown: vec![1.0],
        models: vec![ModelProfile {
            name: "cam".into(),
            variants: vec![variant("big", 3.0), variant("small", 0.75)],
        }],
        machine: None,
        stage_engines: Vec::new(),
    };
    std::fs::write(path, serde_json::to_string(&p).unwrap()).unwrap();
}

#[test]
fn verify_replans_when_the_real_run_misses_more_than_the_model_said() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let prof = dir.path().join("profile.json");
    optimistic_profile(&prof);
    let plan = dir.path().join("plan.toml");
    let out = rtmdl(&[
        "plan",
        cfg.to_str().unwrap(),
        "--profile",
        prof.to_str().unwrap(),
        "--exact",
        "--verify",
        "2s",
        "--rounds",
        "2",
        "--rt",
        "off",
        "--engine",
        "tract",
        "--out",
        plan.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // On the optimistic model both tasks keep the big variant; for real
    // they miss, so round 1 is not verified and the model is refitted
    // (the inference ran about twice as long as the profile said).
    assert!(stdout.contains("verify try 1"), "{stdout}");
    assert!(stdout.contains("2 round(s)"), "{stdout}");
    assert!(stdout.contains("try 1: not verified"), "{stdout}\n{stderr}");
    // The refit moves the model toward what ran: the inference took 6 ms
    // where the profile said 3, so its factor is about 2 (a loaded machine
    // can only stretch it).
    let factor: f64 = stdout
        .split("cam/infer: × ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("no refit factor for cam/infer:\n{stdout}"));
    assert!((1.5..=6.0).contains(&factor), "refit × {factor}:\n{stdout}");
    assert!(stdout.contains("verify try 2"), "{stdout}");
    // On the refitted model one task takes the small variant (1.5 ms of a
    // 10 ms lane beside 6 ms): that plan keeps ζ for real, on any machine.
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "verified in try 2: every task within its ζ on the median of 2 real round(s)"
        ),
        "{stdout}"
    );
    assert!(plan.exists());
    let written = std::fs::read_to_string(&plan).unwrap();
    assert!(written.contains("small"), "{written}");
}

#[test]
fn verify_gives_up_after_three_rounds_when_a_task_never_delivers() {
    // b's inference errors on every call: its jobs all fail, which is 100 %
    // not on time whatever the plan, so no round can verify.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg.toml");
    let broken = CONFIG.replace(
        "[[tasks]]\nname = \"b\"\nmodel = \"cam\"",
        "[models.bad]\nstages = [{ name = \"infer\", on = \"gpu\", params = { fault = { mode = \"error\" } } }]\n[[models.bad.variants]]\nname = \"only\"\naccuracy = 0.9\ntimes.infer = \"1 ms\"\n\n[[tasks]]\nname = \"b\"\nmodel = \"bad\"",
    );
    assert_ne!(broken, CONFIG);
    std::fs::write(&cfg, broken).unwrap();
    let plan = dir.path().join("plan.toml");
    let out = rtmdl(&[
        "plan",
        cfg.to_str().unwrap(),
        "--exact",
        "--verify",
        "1s",
        "--rounds",
        "1",
        "--rt",
        "off",
        "--engine",
        "tract",
        "--out",
        plan.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    for k in 1..=3 {
        assert!(
            stdout.contains(&format!("try {k}: not verified (b 100.00 % > ζ")),
            "try {k}:\n{stdout}"
        );
    }
    assert!(!stdout.contains("verify try 4"), "{stdout}");
    assert!(stdout.contains("over ζ"), "{stdout}");
    assert!(
        stderr.contains("no plan could be verified in 3 tries"),
        "{stderr}"
    );
    assert!(!plan.exists(), "an unverified plan was written as verified");
    assert!(dir.path().join("plan.unverified.toml").exists());
}

#[test]
fn verify_refuses_a_zero_duration_and_models_that_cannot_load() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let plan = dir.path().join("plan.toml");
    let out = rtmdl(&[
        "plan",
        cfg.to_str().unwrap(),
        "--verify",
        "0s",
        "--out",
        plan.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--verify") && err.contains("above 0"), "{err}");
    assert!(!plan.exists());

    let missing = CONFIG.replace(
        "times.infer = \"6 ms\"",
        "times.infer = \"6 ms\"\nfile = \"no/such/model.onnx\"",
    );
    std::fs::write(&cfg, missing).unwrap();
    let out = rtmdl(&[
        "plan",
        cfg.to_str().unwrap(),
        "--exact",
        "--verify",
        "1s",
        "--rt",
        "off",
        "--engine",
        "tract",
        "--out",
        plan.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no/such/model.onnx"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        !plan.exists(),
        "a plan was written although it was never run"
    );
}
