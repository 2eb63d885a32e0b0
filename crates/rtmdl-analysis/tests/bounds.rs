//! Bounds worked out by hand, the refusals, the report's shape, and a small
//! validation against the simulator.

use rtmdl_analysis::validate::{random_set, validate, validate_scaled, worst_responses};
use rtmdl_analysis::{Options, Refusal, TermKind, analyze};
use rtmdl_core::Resource::{Cpu, Gpu};
use rtmdl_core::*;

const MS: Time = 1_000_000;

/// (name, period ms, priority, chain of (resource, ms)); deadline = period.
type Spec<'a> = (&'a str, u64, u32, &'a [(Resource, f64)]);

fn set(cpu_workers: usize, gpu_lanes: usize, slowdown: Vec<f64>, tasks: &[Spec]) -> TaskSet {
    let ms = |x: f64| (x * MS as f64) as Time;
    TaskSet {
        adapt: None,
        platform: Platform {
            cpu_workers,
            gpu_lanes,
            gpu_slowdown: slowdown,
            ..Default::default()
        },
        models: tasks
            .iter()
            .map(|(name, _, _, chain)| Model {
                name: format!("{name}_model"),
                stages: chain
                    .iter()
                    .enumerate()
                    .map(|(i, (r, _))| Stage::new(format!("s{i}"), *r))
                    .collect(),
                shared_parts: vec![],
                variants: vec![Variant {
                    name: "v".into(),
                    accuracy: 0.9,
                    shared_with: None,
                    private_bytes: 1,
                    times: chain
                        .iter()
                        .map(|(_, t)| ExecProfile::Fixed(ms(*t)))
                        .collect(),
                    file: None,
                }],
            })
            .collect(),
        tasks: tasks
            .iter()
            .enumerate()
            .map(|(i, (name, period, prio, _))| Task {
                floor: None,
                stop: None,
                max_misses: None,
                name: name.to_string(),
                model: i,
                period: period * MS,
                deadline: period * MS,
                offset: 0,
                max_miss_rate: 0.0,
                min_accuracy: 0.0,
                priority: Some(*prio),
                variant: Some(0),
                overrun: Overrun::Continue,
            })
            .collect(),
    }
}

fn plan(ts: &TaskSet) -> Vec<Assignment> {
    ts.assignments(VariantChoice::Plan)
}

fn bounds(ts: &TaskSet) -> Vec<Option<f64>> {
    analyze(ts, &plan(ts), &Options::default())
        .unwrap()
        .tasks
        .iter()
        .map(|t| t.bound_ns.map(|b| b as f64 / MS as f64))
        .collect()
}

fn close(got: Option<f64>, want: f64) {
    let got = got.expect("a bound");
    assert!(
        (got - want).abs() < 1e-4,
        "bound {got} ms, expected {want} ms"
    );
}

#[test]
fn a_lone_task_is_bounded_by_its_own_work() {
    let ts = set(
        1,
        1,
        vec![1.0],
        &[("a", 10, 1, &[(Cpu, 2.0), (Gpu, 3.0), (Cpu, 1.0)])],
    );
    // Each sub-task holds its slot 1 ns longer (the simulator's rounding).
    close(bounds(&ts)[0], 6.0);
}

/// The audit's non-preemptive anomaly (§6.2 S3): one worker, H released at
/// 2 ms with a 2 ms deadline, M and L at 0.
fn anomaly(m_times: ExecProfile) -> TaskSet {
    let mut ts = set(
        1,
        1,
        vec![1.0],
        &[
            ("H", 10, 1, &[(Cpu, 1.0)]),
            ("M", 10, 2, &[(Cpu, 2.0)]),
            ("L", 10, 3, &[(Cpu, 3.0)]),
        ],
    );
    ts.tasks[0].offset = 2 * MS;
    ts.tasks[0].deadline = 2 * MS;
    ts.models[1].variants[0].times[0] = m_times;
    ts
}

#[test]
fn the_non_preemptive_anomaly_is_bounded_and_rejected() {
    let mut m = vec![2 * MS; 999];
    m.push(MS);
    let ts = anomaly(ExecProfile::Samples(m));
    let a = analyze(&ts, &plan(&ts), &Options::default()).unwrap();
    // H can be blocked by L's 3 ms (L starts just before H arrives): 1 + 3.
    let h = &a.tasks[0];
    close(h.bound_ns.map(|b| b as f64 / 1e6), 4.0);
    assert!(!h.schedulable && !a.schedulable);
    let dom = h.dominant.as_ref().unwrap();
    assert_eq!(
        (dom.kind, dom.task.as_deref()),
        (TermKind::Blocking, Some("L"))
    );
    // The simulator shows the miss once M takes 1 ms: L starts at 1, H
    // waits until 4 and ends at 5, 1 ms late.
    let short = anomaly(ExecProfile::Fixed(MS));
    let (worst, misses) = worst_responses(&short, &plan(&short), 1, 1);
    assert_eq!(worst[0], Some(3 * MS));
    assert!(misses[0] > 0);
    // Every simulated response stays within its bound.
    let (worst, _) = worst_responses(&ts, &plan(&ts), 1, 6);
    for (w, t) in worst.iter().zip(&a.tasks) {
        assert!(
            w.unwrap() <= t.bound_ns.unwrap(),
            "{}: {w:?} > {:?}",
            t.name,
            t.bound_ns
        );
    }
}

#[test]
fn several_workers_are_blocked_by_the_longest_lower_priority_work_and_interfered_once() {
    // Two workers. A (most urgent) finds both held by B (4 ms) and C (2 ms)
    // at worst: 2·L > min(4, L) + min(2, L) first holds at L = 2 ms, then it
    // runs 4 ms: 6 ms.
    let ts = set(
        2,
        1,
        vec![1.0],
        &[
            ("A", 20, 1, &[(Cpu, 4.0)]),
            ("B", 20, 2, &[(Cpu, 4.0)]),
            ("C", 20, 3, &[(Cpu, 2.0)]),
        ],
    );
    let b = bounds(&ts);
    close(b[0], 6.0);
    // One lower-priority sub-task cannot hold two workers: with C alone
    // below, A starts at once.
    let ts2 = set(
        2,
        1,
        vec![1.0],
        &[("A", 20, 1, &[(Cpu, 4.0)]), ("C", 20, 2, &[(Cpu, 2.0)])],
    );
    close(bounds(&ts2)[0], 4.0);
    // Bounds hold in simulation.
    let (worst, _) = worst_responses(&ts, &plan(&ts), 3, 6);
    for (w, b) in worst.iter().zip(&b) {
        assert!(w.unwrap() as f64 / 1e6 <= b.unwrap());
    }
}

#[test]
fn packing_slows_every_inference_by_the_largest_slowdown() {
    // Two lanes, 1.5x slower when both are busy. A alone still may be
    // slowed by B packed beside it: 4 ms × 1.5.
    let ts = set(
        1,
        2,
        vec![1.0, 1.5],
        &[("A", 20, 1, &[(Gpu, 4.0)]), ("B", 20, 2, &[(Gpu, 4.0)])],
    );
    let b = bounds(&ts);
    close(b[0], 6.0);
    close(b[1], 6.0);
    // One lane: no slowdown, but A waits for B at worst.
    let mut one = ts.clone();
    one.platform.gpu_lanes = 1;
    one.platform.gpu_slowdown = vec![1.0];
    close(bounds(&one)[0], 8.0);
}

#[test]
fn the_margin_scales_the_wcet() {
    let ts = set(1, 1, vec![1.0], &[("a", 10, 1, &[(Cpu, 2.0)])]);
    let a = analyze(
        &ts,
        &plan(&ts),
        &Options {
            margin: 1.5,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(a.tasks[0].bound_ns, Some(3 * MS + 1));
    assert_eq!(a.margin, 1.5);
}

#[test]
fn a_task_whose_jobs_may_overlap_has_no_bound_and_neither_have_those_below() {
    // B takes 12 ms every 10 ms (6 on each resource): under `continue` its
    // next job may wait for the previous one.
    let ts = set(
        1,
        1,
        vec![1.0],
        &[
            ("Y", 10, 1, &[(Gpu, 1.0)]),
            ("B", 10, 2, &[(Cpu, 6.0), (Gpu, 6.0)]),
            ("G", 10, 3, &[(Gpu, 1.0)]),
        ],
    );
    let a = analyze(&ts, &plan(&ts), &Options::default()).unwrap();
    assert!(a.tasks[0].schedulable, "{}", a.table());
    assert_eq!(a.tasks[1].bound_ns, None);
    assert!(a.tasks[1].note.as_deref().unwrap().contains("overlap"));
    // G shares the GPU with B below it: no bound either.
    assert_eq!(a.tasks[2].bound_ns, None);
    assert!(a.tasks[2].note.as_deref().unwrap().contains("`B`"));
    // Under `skip` the overlap cannot happen: B gets a bound beyond its
    // period (not schedulable: the next release is dropped), and G one too.
    let mut skip = ts.clone();
    skip.tasks[1].overrun = Overrun::Skip;
    let a = analyze(&skip, &plan(&skip), &Options::default()).unwrap();
    assert!(a.tasks[1].bound_ns.is_some() && !a.tasks[1].schedulable);
    assert!(a.tasks[2].bound_ns.is_some());
}

#[test]
fn skip_and_firm_need_the_bound_within_the_period() {
    let mut ts = set(1, 1, vec![1.0], &[("a", 10, 1, &[(Cpu, 4.0)])]);
    ts.tasks[0].overrun = Overrun::Firm;
    ts.tasks[0].deadline = 30 * MS;
    ts.models[0].variants[0].times[0] = ExecProfile::Fixed(12 * MS);
    let a = analyze(&ts, &plan(&ts), &Options::default()).unwrap();
    // 12 ms ≤ D = 30 but > T = 10: the next release is dropped.
    close(a.tasks[0].bound_ns.map(|b| b as f64 / 1e6), 12.0);
    assert!(!a.tasks[0].schedulable);
    assert!(a.tasks[0].note.as_deref().unwrap().contains("dropped"));
}

#[test]
fn features_the_analysis_cannot_bound_are_refused_by_name() {
    let ts = set(1, 1, vec![1.0], &[("a", 10, 1, &[(Cpu, 1.0), (Gpu, 1.0)])]);
    for (policy, name) in [
        (PolicyKind::Dm, "dm"),
        (PolicyKind::Um, "um"),
        (PolicyKind::Fifo, "fifo"),
        (PolicyKind::Edf, "edf"),
    ] {
        let e = analyze(
            &ts,
            &plan(&ts),
            &Options {
                policy,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(matches!(e, Refusal::Policy { .. }));
        assert!(e.to_string().contains(&format!("policy `{name}`")), "{e}");
    }
    let mut late = ts.clone();
    late.tasks[0].deadline = 20 * MS;
    let e = analyze(&late, &plan(&late), &Options::default()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("task `a`: overrun = \"continue\""),
        "{e}"
    );
    let mut hang = ts.clone();
    hang.models[0].stages[1].fault = Some(rtmdl_core::FaultSpec {
        mode: rtmdl_core::FaultMode::Hang,
        skip: 0,
        every: 1,
        times: None,
        hang: MS,
    });
    let e = analyze(&hang, &plan(&hang), &Options::default()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("task `a`, stage `s1`: an injected hang"),
        "{e}"
    );
    let e = analyze(
        &ts,
        &plan(&ts),
        &Options {
            margin: 0.5,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(e, Refusal::Margin(0.5));
}

#[test]
fn the_report_serialises_as_the_cli_writes_it() {
    let ts = anomaly(ExecProfile::Fixed(2 * MS));
    let a = analyze(&ts, &plan(&ts), &Options::default()).unwrap();
    let v = serde_json::to_value(&a).unwrap();
    let t = &v["tasks"][0];
    assert_eq!(t["name"], "H");
    assert_eq!(t["deadline_ms"], 2.0);
    assert_eq!(t["schedulable"], false);
    assert!(t["bound_ms"].as_f64().unwrap() >= 4.0);
    assert_eq!(t["dominant"]["kind"], "blocking");
    assert!(a.table().contains("blocking by `L`"));
}

#[test]
fn no_simulated_response_exceeds_its_bound_on_random_sets() {
    let v = validate(150, 11, 2);
    assert_eq!(v.violations, 0, "{:?}", v.examples);
    // Every set was analysed: none skipped as refused.
    assert_eq!(v.refused, 0, "{v:?}");
    assert!(v.schedulable_tasks > 50, "{v:?}");
    assert!(v.schedulable_sets > 10, "{v:?}");
    assert!(v.tightness > 0.3 && v.tightness <= 1.0, "{v}");
    assert_eq!(
        v.to_string(),
        format!("150 sets, 0 violations, tightness {:.2}", v.tightness)
    );
    // Seeded: the same sets whatever the threads.
    assert_eq!(validate(20, 11, 1), validate(20, 11, 3));
    // The generator makes sets of two tasks or more with a plan each.
    let g = random_set(5, 0.5);
    assert!(g.ts.tasks.len() >= 2 && g.assign.len() == g.ts.tasks.len());
}

#[test]
fn the_validation_catches_a_bound_made_ten_percent_too_small() {
    // Negative control: the same sets, every bound × 0.9. A check that
    // would pass an unsound bound finds nothing here.
    let v = validate_scaled(150, 11, 2, 0.9);
    eprintln!("negative control: {v}");
    assert!(v.schedulable_sets > 10, "{v:?}");
    assert!(
        v.schedulable_sets_violated * 10 >= v.schedulable_sets,
        "only {} of {} schedulable sets violated a bound × 0.9",
        v.schedulable_sets_violated,
        v.schedulable_sets
    );
    assert!(v.to_string().contains("bounds × 0.9"), "{v}");
    assert_eq!(validate_scaled(150, 11, 2, 1.0), validate(150, 11, 2));
}

#[test]
fn packing_admission_does_not_protect_an_inference_that_arrives_second() {
    // The core holds L back where packing it beside a running H would make
    // H miss, but nothing stops H from packing beside a running L: released
    // 0.1 ms after L, H runs at 1/1.3 and ends at 0.1 + 4 × 1.3 > 5 ms.
    let mut ts = set(
        1,
        2,
        vec![1.0, 1.3],
        &[("H", 100, 1, &[(Gpu, 4.0)]), ("L", 100, 2, &[(Gpu, 4.0)])],
    );
    ts.tasks[0].deadline = 5 * MS;
    ts.tasks[0].offset = MS / 10;
    let a = analyze(&ts, &plan(&ts), &Options::default()).unwrap();
    close(a.tasks[0].bound_ns.map(|b| b as f64 / 1e6), 5.2);
    assert!(!a.tasks[0].schedulable);
    let (worst, misses) = worst_responses(&ts, &plan(&ts), 1, 1);
    assert!(worst[0].unwrap() > 5 * MS && misses[0] > 0, "{worst:?}");
}
