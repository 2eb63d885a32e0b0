//! Bad configs: each gives one clear error naming line and field.

use std::path::Path;

const GOOD: &str = r#"
[platform]
cpu_workers = 2
gpu_lanes = 2
gpu_slowdown = [1.0, 1.3]
storage_budget = "16 MiB"

[models.m]
shared = { backbone = "2 MiB" }
stages = [
  { name = "pre", on = "cpu", time = "3 ms" },
  { name = "infer", on = "gpu" },
]

[[models.m.variants]]
name = "big"
accuracy = 0.95
shared_with = "backbone"
private = "1 MiB"
times.infer = { p50 = "10 ms", p90 = "11 ms", p99 = "12 ms", max = "13 ms" }

[[models.m.variants]]
name = "small"
accuracy = 0.90
times.infer = ["4 ms", "5 ms", "4.5 ms"]

[[tasks]]
name = "a"
model = "m"
period = "33 ms"
max_miss_rate = 0.05
"#;

fn err(text: &str) -> rtmdl_config::ConfigError {
    rtmdl_config::parse(text, Path::new("cfg.toml")).expect_err("should be rejected")
}

#[test]
fn the_good_config_loads() {
    let c = rtmdl_config::parse(GOOD, Path::new("cfg.toml")).unwrap();
    let ts = c.taskset;
    assert_eq!(ts.tasks[0].deadline, 33_000_000);
    assert_eq!(ts.platform.storage_budget, Some(16 << 20));
    assert_eq!(ts.models[0].variants.len(), 2);
    assert_eq!(ts.models[0].storage([0, 1]), (2 << 20) + (1 << 20));
    assert_eq!(ts.models[0].original(), 0);
    assert_eq!(ts.models[0].compressed(), 1);
}

/// (what, replace this, with this, expected line, field contains, message contains)
const CASES: &[(&str, &str, &str, usize, &str, &str)] = &[
    (
        "wrong unit",
        "period = \"33 ms\"",
        "period = \"33 parsecs\"",
        30,
        "period",
        "parsecs",
    ),
    (
        "no unit",
        "period = \"33 ms\"",
        "period = 33",
        30,
        "period",
        "no unit",
    ),
    (
        "zero period",
        "period = \"33 ms\"",
        "period = \"0 ms\"",
        30,
        "tasks[0].period",
        "at least",
    ),
    (
        "negative period",
        "period = \"33 ms\"",
        "period = \"-5 ms\"",
        30,
        "period",
        "non-negative",
    ),
    (
        "absurd period",
        "period = \"33 ms\"",
        "period = \"9000000 min\"",
        30,
        "period",
        "year",
    ),
    (
        "zero deadline",
        "period = \"33 ms\"",
        "period = \"33 ms\"\ndeadline = \"0 ms\"",
        31,
        "tasks[0].deadline",
        "above 0",
    ),
    (
        "deadline over period with skip",
        "period = \"33 ms\"",
        "period = \"33 ms\"\ndeadline = \"40 ms\"\noverrun = \"skip\"",
        31,
        "tasks[0].deadline",
        "longer than the period",
    ),
    (
        "zeta above 1",
        "max_miss_rate = 0.05",
        "max_miss_rate = 1.5",
        31,
        "max_miss_rate",
        "between 0 and 1",
    ),
    (
        "zeta negative",
        "max_miss_rate = 0.05",
        "max_miss_rate = -0.1",
        31,
        "max_miss_rate",
        "between 0 and 1",
    ),
    (
        "unknown model",
        "model = \"m\"",
        "model = \"nope\"",
        29,
        "tasks[0].model",
        "no model `nope`",
    ),
    (
        "unknown variant",
        "max_miss_rate = 0.05",
        "max_miss_rate = 0.05\nvariant = \"huge\"",
        32,
        "tasks[0].variant",
        "no variant `huge`",
    ),
    (
        "unknown key",
        "max_miss_rate = 0.05",
        "max_miss_rat = 0.05",
        31,
        "max_miss_rat",
        "unknown field",
    ),
    (
        "empty chain",
        "stages = [\n  { name = \"pre\", on = \"cpu\", time = \"3 ms\" },\n  { name = \"infer\", on = \"gpu\" },\n]",
        "stages = []",
        10,
        "models.m.stages",
        "at least one",
    ),
    (
        "bad resource",
        "on = \"gpu\"",
        "on = \"tpu\"",
        12,
        "on",
        "unknown variant `tpu`",
    ),
    (
        "accuracy above 1",
        "accuracy = 0.95",
        "accuracy = 95",
        17,
        "accuracy",
        "between 0 and 1",
    ),
    (
        "unknown shared part",
        "shared_with = \"backbone\"",
        "shared_with = \"trunk\"",
        18,
        "shared_with",
        "no shared part",
    ),
    (
        "missing stage time",
        "times.infer = [\"4 ms\", \"5 ms\", \"4.5 ms\"]",
        "",
        22,
        "times.infer",
        "no execution time",
    ),
    (
        "time for unknown stage",
        "times.infer = [\"4 ms\", \"5 ms\", \"4.5 ms\"]",
        "times.infer = \"4 ms\"\ntimes.post = \"1 ms\"",
        26,
        "times.post",
        "no stage `post`",
    ),
    (
        "decreasing quantiles",
        "p99 = \"12 ms\"",
        "p99 = \"1 ms\"",
        20,
        "times.infer",
        "must not decrease",
    ),
    (
        "zero workers",
        "cpu_workers = 2",
        "cpu_workers = 0",
        3,
        "platform.cpu_workers",
        "between 1 and 1024",
    ),
    (
        "slowdown length",
        "gpu_slowdown = [1.0, 1.3]",
        "gpu_slowdown = [1.0]",
        5,
        "platform.gpu_slowdown",
        "one factor per GPU lane",
    ),
    (
        "slowdown below 1",
        "gpu_slowdown = [1.0, 1.3]",
        "gpu_slowdown = [1.0, 0.5]",
        5,
        "platform.gpu_slowdown",
        "≥ 1.0",
    ),
    (
        "bad size",
        "storage_budget = \"16 MiB\"",
        "storage_budget = \"16 furlongs\"",
        6,
        "storage_budget",
        "furlongs",
    ),
    (
        "malformed toml",
        "cpu_workers = 2",
        "cpu_workers = = 2",
        3,
        "cpu_workers",
        "expected",
    ),
    (
        "adapt window of 0 jobs",
        "[[tasks]]",
        "[adapt]\nwindow = 0\n\n[[tasks]]",
        28,
        "adapt.window",
        "at least 1 job",
    ),
    (
        "adapt margins out of order",
        "[[tasks]]",
        "[adapt]\nlow = 0.5\nhigh = 0.2\n\n[[tasks]]",
        29,
        "adapt.high",
        "out of order",
    ),
    (
        "a floor variant the model does not have",
        "max_miss_rate = 0.05",
        "max_miss_rate = 0.05\nfloor = \"tiny\"",
        32,
        "tasks[0].floor",
        "no variant `tiny`",
    ),
    (
        "a task that stops at 0",
        "max_miss_rate = 0.05",
        "max_miss_rate = 0.05\nstop = \"0 s\"",
        32,
        "tasks[0].stop",
        "above 0",
    ),
    (
        "an (m,k) bound that is not \"M in K\"",
        "max_miss_rate = 0.05",
        "max_miss_rate = 0.05\nmax_misses = \"2 of 10\"",
        32,
        "tasks[0].max_misses",
        "expected \"M in K\"",
    ),
    (
        "an (m,k) bound with M not below K",
        "max_miss_rate = 0.05",
        "max_miss_rate = 0.05\nmax_misses = \"10 in 10\"",
        32,
        "tasks[0].max_misses",
        "M < K",
    ),
    (
        "a scenario of no length",
        "[[tasks]]",
        "[run]\nduration = \"0 s\"\n\n[[tasks]]",
        28,
        "run.duration",
        "above 0",
    ),
];

#[test]
fn every_bad_config_is_reported_with_line_and_field() {
    for &(what, from, to, line, field, msg) in CASES {
        assert!(GOOD.contains(from), "{what}: the case does not apply");
        let e = err(&GOOD.replacen(from, to, 1));
        let shown = e.to_string();
        assert!(shown.starts_with("cfg.toml:"), "{what}: {shown}");
        assert_eq!(e.line, line, "{what}: {shown}");
        assert!(
            e.field.contains(field),
            "{what}: field {:?} in {shown}",
            e.field
        );
        assert!(e.message.contains(msg), "{what}: {shown}");
    }
}

#[test]
fn an_empty_task_set_is_rejected() {
    let text = GOOD.split("[[tasks]]").next().unwrap();
    assert!(err(text).message.contains("task set is empty"));
}

#[test]
fn duplicate_priorities_are_rejected() {
    let text = format!(
        "{GOOD}priority = 1\n\n[[tasks]]\nname = \"b\"\nmodel = \"m\"\nperiod = \"50 ms\"\npriority = 1\n"
    );
    let e = err(&text);
    assert!(e.message.contains("already used"), "{e}");
}

#[test]
fn plans_are_checked_against_the_config() {
    let mut ts = rtmdl_config::parse(GOOD, Path::new("cfg.toml"))
        .unwrap()
        .taskset;
    let ok = "[[task]]\nname = \"a\"\nvariant = \"small\"\npriority = 1\n";
    rtmdl_config::apply_plan_text(&mut ts, ok, Path::new("p.toml")).unwrap();
    assert_eq!(ts.tasks[0].variant, Some(1));
    let other = "[[task]]\nname = \"zz\"\nvariant = \"small\"\npriority = 1\n";
    let e = rtmdl_config::apply_plan_text(&mut ts, other, Path::new("p.toml")).unwrap_err();
    assert!(e.message.contains("another config"), "{e}");
    assert_eq!(e.line, 2);
    let text = rtmdl_config::plan_text(&ts, &ts.assignments(rtmdl_core::VariantChoice::Plan), None);
    rtmdl_config::apply_plan_text(&mut ts, &text, Path::new("p.toml")).unwrap();
}

#[test]
fn the_shipped_examples_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            rtmdl_config::load(&p).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 3);
}

#[test]
fn quantiles_without_a_min_have_a_lower_tail() {
    let c = rtmdl_config::parse(GOOD, Path::new("cfg.toml")).unwrap();
    let t = &c.taskset.models[0].variants[0].times[1];
    // p50 10, p90 11: the lower tail mirrors the upper, down to 9 ms.
    assert!(
        matches!(t, rtmdl_core::ExecProfile::Quantiles { min: 9_000_000, .. }),
        "{t:?}"
    );
    assert!(
        t.quantile(0.25) < 10_000_000,
        "a quarter of the draws below p50"
    );
}

#[test]
fn adapt_run_floor_and_stop_are_read() {
    let text = GOOD.replacen(
        "[[tasks]]",
        "[adapt]\nwindow = 8\nhold = \"2 s\"\n\n[run]\nduration = \"30 s\"\n\n[[tasks]]",
        1,
    ) + "floor = \"small\"\nstop = \"10 s\"\n";
    let c = rtmdl_config::parse(&text, Path::new("cfg.toml")).unwrap();
    assert_eq!((c.adapt.window, c.adapt.hold), (8, 2_000_000_000));
    assert_eq!(c.duration, Some(30_000_000_000));
    assert_eq!(c.taskset.tasks[0].floor, Some(1));
    assert_eq!(c.taskset.tasks[0].stop, Some(10_000_000_000));
    // The set switches only when a command turns it on.
    assert!(c.taskset.adapt.is_none());
}

#[test]
fn an_m_k_bound_is_read_and_implies_zeta_when_none_is_given() {
    let text = GOOD.replacen("max_miss_rate = 0.05", "max_misses = \"2 in 10\"", 1);
    let c = rtmdl_config::parse(&text, Path::new("cfg.toml")).unwrap();
    let t = &c.taskset.tasks[0];
    assert_eq!(
        t.max_misses,
        Some(rtmdl_core::MaxMisses { misses: 2, of: 10 })
    );
    assert_eq!(t.max_miss_rate, 0.2);
    // Given both, both hold.
    let text = GOOD.replacen(
        "max_miss_rate = 0.05",
        "max_miss_rate = 0.05\nmax_misses = \"1 in 4\"",
        1,
    );
    let c = rtmdl_config::parse(&text, Path::new("cfg.toml")).unwrap();
    assert_eq!(c.taskset.tasks[0].max_miss_rate, 0.05);
    assert_eq!(c.taskset.tasks[0].max_misses.map(|m| m.of), Some(4));
}
