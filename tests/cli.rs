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
