//! Plan files written by `plan_text` read back through `apply_plan_text`,
//! whatever the names in the config.

use std::path::Path;

use rtmdl_core::Assignment;

/// Two tasks whose names carry a control character, a quote, a backslash
/// and non-ASCII text; the variants' names too.
const CONFIG: &str = r#"
[platform]
cpu_workers = 1
gpu_lanes = 1

[models.m]
stages = [
  { name = "pre", on = "cpu", time = "1 ms" },
  { name = "infer", on = "gpu" },
]

[[models.m.variants]]
name = "big\u007f"
accuracy = 0.95
times.infer = "4 ms"

[[models.m.variants]]
name = "small \"s\""
accuracy = 0.90
times.infer = "2 ms"

[[tasks]]
name = "bell\u0007task"
model = "m"
period = "33 ms"
max_miss_rate = 0.05

[[tasks]]
name = "tab\tand \\ back – ünï"
model = "m"
period = "50 ms"
max_miss_rate = 0.05
"#;

#[test]
fn names_with_control_characters_round_trip_through_a_plan_file() {
    let cfg = rtmdl_config::parse(CONFIG, Path::new("cfg.toml")).unwrap();
    let ts = cfg.taskset;
    assert_eq!(ts.tasks[0].name, "bell\u{7}task");
    let assign = [
        Assignment {
            variant: 1,
            priority: 2,
        },
        Assignment {
            variant: 0,
            priority: 1,
        },
    ];
    let text = rtmdl_config::plan_text(&ts, &assign, Some(Path::new("dir/\u{1}cfg.toml")));
    let mut applied = ts.clone();
    rtmdl_config::apply_plan_text(&mut applied, &text, Path::new("plan.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(applied, ts.with_assignments(&assign));
    assert_eq!(applied.tasks[0].variant, Some(1));
    assert_eq!(applied.tasks[0].priority, Some(2));
    assert_eq!(applied.tasks[1].variant, Some(0));
    assert_eq!(applied.tasks[1].priority, Some(1));
}

#[test]
fn with_assignments_sets_every_task_and_leaves_the_rest() {
    let ts = rtmdl_config::parse(CONFIG, Path::new("cfg.toml"))
        .unwrap()
        .taskset;
    let assign = ts.assignments(rtmdl_core::VariantChoice::Compressed);
    let planned = ts.with_assignments(&assign);
    assert!(planned.has_plan());
    assert_eq!(planned.assignments(rtmdl_core::VariantChoice::Plan), assign);
    assert_eq!(planned.models, ts.models);
    assert_eq!(planned.platform, ts.platform);
}
