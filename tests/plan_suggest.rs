//! An infeasible plan explains itself: the changes that would make the set
//! feasible, each checked by planning the changed set in simulation.

use std::process::Command;

#[test]
fn an_infeasible_set_gets_checked_suggestions() {
    // Two tasks of 6 ms of GPU work every 10 ms on one lane, one variant
    // each: no plan keeps both; a second lane (or longer periods) would.
    let config = r#"
[platform]
cpu_workers = 1
gpu_lanes = 1

[models.m]
stages = [{ name = "infer", on = "gpu" }]
[[models.m.variants]]
name = "only"
accuracy = 0.9
times.infer = "6 ms"

[[tasks]]
name = "a"
model = "m"
period = "10 ms"
max_miss_rate = 0.05
overrun = "skip"

[[tasks]]
name = "b"
model = "m"
period = "10 ms"
max_miss_rate = 0.05
overrun = "skip"
"#;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg.toml");
    std::fs::write(&cfg, config).unwrap();
    let plan = dir.path().join("plan.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_rtmdl"))
        .args(["plan", cfg.to_str().unwrap(), "--exact", "--out"])
        .arg(&plan)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("no feasible plan"), "{stdout}");
    assert!(stdout.contains("what would make it feasible"), "{stdout}");
    assert!(stdout.contains("one more GPU lane (1 → 2"), "{stdout}");
    // One more CPU worker does not help a lane-bound set: not suggested.
    assert!(!stdout.contains("one more CPU worker"), "{stdout}");
}
