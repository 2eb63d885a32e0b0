//! `rtmdl analyze` through the binary: the table and JSON, the validation
//! line, and bad input (a feature the analysis cannot cover, a bad margin
//! or policy, a missing file) exiting non-zero with one `error:` line that
//! names the feature and the task.

use std::process::Command;

fn rtmdl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rtmdl"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run rtmdl")
}

/// A small config: one worker, one lane, two tasks.
const CONFIG: &str = r#"[platform]
cpu_workers = 1
gpu_lanes = 1

[models.m]
stages = [
  { name = "pre", on = "cpu", time = "1 ms" },
  { name = "infer", on = "gpu", time = { p50 = "3 ms", p90 = "3.5 ms", p99 = "3.8 ms", max = "4 ms" } },
]

[[models.m.variants]]
name = "base"
accuracy = 0.9

[[tasks]]
name = "fast"
model = "m"
period = "20 ms"
max_miss_rate = 0.0

[[tasks]]
name = "slow"
model = "m"
period = "50 ms"
max_miss_rate = 0.05
"#;

fn config(dir: &std::path::Path, text: &str) -> String {
    let p = dir.join("cfg.toml");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// One `error:` line on stderr, and a failure exit.
fn fails_with(out: &std::process::Output, fragments: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "succeeded: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for f in fragments {
        assert!(err.contains(f), "`{f}` not in: {err}");
    }
}

#[test]
fn analyze_prints_a_bound_per_task_and_the_documented_json() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), CONFIG);
    let out = rtmdl(&["analyze", &cfg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("bound ms") && text.contains("dominant term"),
        "{text}"
    );
    assert!(text.contains("schedulable: every task"), "{text}");
    let out = rtmdl(&["analyze", &cfg, "--json", "-", "--margin", "1.2"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["margin"], 1.2);
    let t = &v["tasks"][0];
    assert_eq!(t["name"], "fast");
    assert_eq!(t["deadline_ms"], 20.0);
    assert_eq!(t["schedulable"], true);
    // fast: 1.2 + 4.8 of its own (profile max × 1.2), blocked by slow's
    // 1.2 on the worker and its 4.8 on the lane, each charged in full: 12.
    // slow: its own 6, and fast's 6 in the way. No hand-offs measured (no
    // profile), so no overheads beyond 1 ns per sub-task.
    for (i, name, blocking, interference) in [(0, "fast", 6.0, 0.0), (1, "slow", 0.0, 6.0)] {
        let t = &v["tasks"][i];
        assert_eq!(t["name"], name);
        let bound = t["bound_ms"].as_f64().unwrap();
        assert!((bound - 12.0).abs() < 0.001, "{name}: bound {bound}");
        assert_eq!(t["own_ms"].as_f64(), Some(6.0), "{name}");
        let sum = |k: &str| {
            t[k].as_array()
                .unwrap()
                .iter()
                .map(|x| x["ms"].as_f64().unwrap())
                .sum::<f64>()
        };
        assert_eq!(
            (sum("blocking"), sum("interference")),
            (blocking, interference),
            "{name}"
        );
    }
    assert!(t["dominant"]["kind"].is_string());
}

#[test]
fn analyze_validate_prints_one_line() {
    let out = rtmdl(&[
        "analyze",
        "--validate",
        "30",
        "--seed",
        "2",
        "--threads",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.trim();
    assert!(
        line.starts_with("30 sets, 0 violations, tightness 0."),
        "{line}"
    );
    assert_eq!(text.lines().count(), 1);
}

#[test]
fn analyze_refuses_what_it_cannot_bound_naming_the_feature_and_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let beyond = CONFIG.replacen(
        "period = \"50 ms\"",
        "period = \"50 ms\"\ndeadline = \"80 ms\"\noverrun = \"continue\"",
        1,
    );
    let cfg = config(dir.path(), &beyond);
    fails_with(
        &rtmdl(&["analyze", &cfg]),
        &[
            "error:",
            "cfg.toml",
            "task `slow`",
            "overrun = \"continue\"",
            "beyond the period",
        ],
    );
    let cfg = config(dir.path(), CONFIG);
    fails_with(
        &rtmdl(&["analyze", &cfg, "--policy", "edf"]),
        &["error:", "policy `edf`", "not covered"],
    );
    fails_with(
        &rtmdl(&["analyze", &cfg, "--policy", "dm"]),
        &["error:", "policy `dm`", "black-box"],
    );
    fails_with(
        &rtmdl(&["analyze", &cfg, "--margin", "0.5"]),
        &["error:", "margin 0.5"],
    );
    fails_with(
        &rtmdl(&["analyze", &cfg, "--policy", "nope"]),
        &["error:", "unknown policy `nope`"],
    );
    fails_with(
        &rtmdl(&["analyze", "no/such/config.toml"]),
        &["error:", "no/such/config.toml"],
    );
    fails_with(&rtmdl(&["analyze"]), &["error:", "<CONFIG>"]);
}

#[test]
fn plan_hard_refuses_a_set_the_analysis_cannot_bound() {
    let dir = tempfile::tempdir().unwrap();
    let beyond = CONFIG.replacen(
        "period = \"50 ms\"",
        "period = \"50 ms\"\ndeadline = \"80 ms\"\noverrun = \"continue\"",
        1,
    );
    let cfg = config(dir.path(), &beyond);
    let plan = dir.path().join("plan.toml").display().to_string();
    let out = rtmdl(&["plan", &cfg, "--hard", "--exact", "--out", &plan]);
    fails_with(&out, &["error:", "no guarantee possible", "task `slow`"]);
    assert!(!std::path::Path::new(&plan).exists(), "a plan was written");
}
