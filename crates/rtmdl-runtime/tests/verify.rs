//! The plan → real rounds → refit loop, with a planner that first picks a
//! variant too slow for its period and then a fast one: the first try is
//! over ζ on the median of its rounds and updates the model, the second is
//! verified and kept.

use std::sync::Arc;

use rtmdl_core::{Assignment, PolicyKind, VariantChoice};
use rtmdl_runtime::verify::{Planned, VerifyOptions, verify};
use rtmdl_runtime::{RunOptions, run_config};

/// Emulated stages: `slow` takes 15 ms of a 10 ms period (half its
/// releases dropped), `fast` 1 ms.
const CONFIG: &str = r#"
[platform]
cpu_workers = 1
gpu_lanes = 1

[models.m]
stages = [{ name = "infer", on = "gpu" }]

[[models.m.variants]]
name = "slow"
accuracy = 0.9
times.infer = "15 ms"

[[models.m.variants]]
name = "fast"
accuracy = 0.8
times.infer = "1 ms"

[[tasks]]
name = "t"
model = "m"
period = "10 ms"
max_miss_rate = 0.05
"#;

#[test]
fn a_plan_over_its_zeta_is_refit_and_the_next_verified_one_is_kept() {
    let cfg = rtmdl_config::parse(CONFIG, std::path::Path::new("/v.toml")).unwrap();
    let mut model = cfg.taskset.clone();
    let engine: Arc<dyn rtmdl_engine::Engine> = Arc::from(
        rtmdl_engine::select(rtmdl_engine::EngineKind::Tract)
            .unwrap()
            .0,
    );
    let opts = VerifyOptions {
        tries: 3,
        rounds: 3,
        seed: 4,
        refit_pessimistic: false,
    };
    let mut runs = Vec::new();
    let mut seen = 0;
    let result = verify(
        &mut model,
        &opts,
        |_, k| {
            // Try 0: the slow variant; after it, the fast one.
            let variant = if k == 0 { 0 } else { 1 };
            Ok::<_, rtmdl_runtime::RuntimeError>(Planned {
                assignments: vec![Assignment {
                    variant,
                    priority: 1,
                }],
                predicted: vec![0.0],
                feasible: true,
            })
        },
        |assign: &[Assignment], round| {
            runs.push((assign[0].variant, round));
            let mut c = cfg.clone();
            c.taskset = cfg.taskset.with_assignments(assign);
            let o = RunOptions {
                duration: 1_000_000_000,
                realtime: false,
                probe: None,
                ..Default::default()
            };
            run_config(
                &c,
                PolicyKind::Rtmdl,
                VariantChoice::Plan,
                engine.clone(),
                1,
                &o,
                1,
            )
        },
        |t| {
            seen += 1;
            assert_eq!(t.checks[0].rounds.n, 3, "judged on 3 rounds");
        },
    )
    .unwrap();
    assert_eq!(seen, 2);
    assert_eq!(runs, vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]);
    let first = &result.tries[0];
    assert_eq!(first.over, vec!["t".to_string()], "{:?}", first.checks);
    assert!(first.checks[0].measured > 0.3, "{:?}", first.checks);
    assert!(!first.verified);
    assert!(
        !first.refits.is_empty(),
        "the model is updated after an over-ζ try"
    );
    let second = &result.tries[1];
    assert!(second.verified, "{:?}", second.checks);
    assert!(second.refits.is_empty());
    assert_eq!(result.chosen, Some(1));
}
