//! An infeasible plan explains itself: the changes that would make the set
//! feasible, each checked by planning the changed set in simulation.

use std::process::Command;

/// `rtmdl plan --exact` on `config`: it must fail (no feasible plan); its
/// stdout.
fn plan_refused(config: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg.toml");
    std::fs::write(&cfg, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rtmdl"))
        .args(["plan", cfg.to_str().unwrap(), "--exact", "--out"])
        .arg(dir.path().join("plan.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success(), "{stdout}");
    stdout
}

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
    let stdout = plan_refused(config);
    assert!(stdout.contains("no feasible plan"), "{stdout}");
    assert!(stdout.contains("what would make it feasible"), "{stdout}");
    assert!(stdout.contains("one more GPU lane (1 → 2"), "{stdout}");
    // One more CPU worker does not help a lane-bound set: not suggested.
    assert!(!stdout.contains("one more CPU worker"), "{stdout}");
}

/// The issue's case: a 0.5 ms wake-word task sharing the one lane with a
/// 160 ms detector misses most of its jobs whatever the priorities (an
/// inference is not preempted); the message names who it waits behind,
/// where and how long, and that a second lane fixes it.
#[test]
fn an_infeasible_set_names_who_waits_behind_whom() {
    let config = r#"
[platform]
cpu_workers = 1
gpu_lanes = 1

[models.det]
stages = [{ name = "infer", on = "gpu" }]
[[models.det.variants]]
name = "only"
accuracy = 0.9
times.infer = "160 ms"

[models.kws]
stages = [{ name = "infer", on = "gpu" }]
[[models.kws.variants]]
name = "only"
accuracy = 0.9
times.infer = "0.5 ms"

[[tasks]]
name = "detector"
model = "det"
period = "200 ms"
max_miss_rate = 0.05
overrun = "skip"

[[tasks]]
name = "wakeword"
model = "kws"
period = "20 ms"
max_miss_rate = 0.05
overrun = "skip"
"#;
    let stdout = plan_refused(config);
    let line = stdout
        .lines()
        .find(|l| l.contains("`wakeword`/infer waits for a GPU lane"))
        .unwrap_or_else(|| panic!("no blocking line in:\n{stdout}"));
    assert!(
        line.contains("behind `detector`/infer in 100 % of that time"),
        "{line}"
    );
    // It waits for most of the detector's 160 ms (released at random
    // points of it): tens of milliseconds, not microseconds.
    let ms: f64 = line
        .split(" ms on average")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!((10.0..=160.0).contains(&ms), "{line}");
    assert!(stdout.contains("one more GPU lane (1 → 2"), "{stdout}");
}
