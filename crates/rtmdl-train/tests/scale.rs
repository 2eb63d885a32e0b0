//! Model scaling: the reordering preserves the function, every variant runs in tract and
//! onnxruntime, storage is what is on disk, the budget is kept, foreign graphs are
//! rejected.
//!
//! Needs the `train` feature (on by default).
//!
//! The onnxruntime checks skip (with a message) when onnxruntime is not installed;
//! with `RTMDL_REQUIRE_ORT=1` a missing onnxruntime fails them instead.

#![cfg(feature = "train")]

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use prost::Message;
use rand::{Rng, SeedableRng};
use rtmdl_engine::ndarray::{ArrayD, IxDyn};
use rtmdl_engine::onnx_build::pb;
use rtmdl_engine::{Engine, EngineError, ModelSpec, OrtEngine, TractEngine};
use rtmdl_train::scale::{
    DataKey, SCALE_FORMAT, SourceKey, permute_by_importance, scaled_channels, slice_variant,
};
use rtmdl_train::{
    Arch, Kind, Manifest, ScaleEvent, ScaleOptions, Split, VariantRow, Weights, assemble, evaluate,
    export_onnx, fit_budget, init_weights, read_onnx, scale,
};

fn tiny(kind: Kind) -> Arch {
    let (height, width) = kind.image_size();
    Arch {
        name: kind.as_str().into(),
        height,
        width,
        c1: 4,
        c2: 8,
        c3: 8,
        blocks: 2,
        classes: kind.classes().len(),
        box_head: kind.has_boxes(),
    }
}

/// Seeded weights with non-trivial batch norms (every gamma non-zero, random running
/// statistics), so that ordering or slicing mistakes show.
fn random_weights(arch: &Arch, seed: u64) -> Weights {
    let mut w = init_weights(arch, seed);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed + 1);
    for (name, (_, data)) in w.tensors.iter_mut() {
        if name.contains(".bn") {
            for v in data.iter_mut() {
                *v = if name.ends_with("running_var") {
                    rng.random_range(0.3..2.0)
                } else if name.ends_with(".weight") {
                    rng.random_range(0.3..1.5)
                } else {
                    rng.random_range(-0.5..0.5)
                };
            }
        }
    }
    w
}

fn ort_or_skip() -> Option<OrtEngine> {
    match OrtEngine::new() {
        Ok(e) => Some(e),
        Err(err) => {
            if std::env::var("RTMDL_REQUIRE_ORT").is_ok_and(|v| v == "1") {
                panic!("RTMDL_REQUIRE_ORT=1 but {err}");
            }
            match err {
                EngineError::OrtNotFound { .. } => eprintln!("skipping ort checks: {err}"),
                _ => eprintln!("skipping ort checks: onnxruntime unusable: {err}"),
            }
            None
        }
    }
}

fn inputs(arch: &Arch, n: usize, seed: u64) -> Vec<ArrayD<f32>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let shape = [1, 3, arch.height, arch.width];
            let data = (0..shape.iter().product::<usize>())
                .map(|_| rng.random::<f32>())
                .collect();
            ArrayD::from_shape_vec(IxDyn(&shape), data).unwrap()
        })
        .collect()
}

fn run_all(engine: &dyn Engine, path: &Path, xs: &[ArrayD<f32>]) -> Vec<Vec<ArrayD<f32>>> {
    let mut s = engine.session(&ModelSpec::new(path)).unwrap();
    xs.iter().map(|x| s.run(x).unwrap()).collect()
}

fn assert_close(a: &[Vec<ArrayD<f32>>], b: &[Vec<ArrayD<f32>>], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.len(), y.len(), "{what}: output count");
        for (p, q) in x.iter().zip(y) {
            assert_eq!(p.shape(), q.shape(), "{what}: shapes");
            for (u, v) in p.iter().zip(q.iter()) {
                assert!((u - v).abs() <= tol, "{what}: {u} vs {v}");
            }
        }
    }
}

/// The reordered full weight set computes the same function as the base (tract, 1e-4),
/// is not the identity reordering, and `read_onnx` gives back exactly what was exported.
#[test]
fn reordering_preserves_the_function() {
    let dir = tempfile::tempdir().unwrap();
    let tract = TractEngine::new();
    for kind in [Kind::Lights, Kind::Signs] {
        let arch = tiny(kind);
        let w = random_weights(&arch, 7);
        let base = dir.path().join(format!("{kind}.onnx"));
        export_onnx(&arch, &w, &base).unwrap();
        assert_eq!(read_onnx(&base).unwrap(), (arch.clone(), w.clone()));

        let (perm, p) = permute_by_importance(&arch, &w).unwrap();
        assert_ne!(perm, w, "the weights were reordered");
        let ident: Vec<usize> = (0..arch.c2).collect();
        assert_ne!(
            p.stream, ident,
            "random weights give a non-trivial stream order"
        );
        let (full_arch, full) = slice_variant(&arch, &perm, 1.0, arch.blocks).unwrap();
        assert_eq!(full, perm);
        let path = dir.path().join(format!("{kind}-perm.onnx"));
        export_onnx(&full_arch, &full, &path).unwrap();
        let xs = inputs(&arch, 3, 5);
        assert_close(
            &run_all(&tract, &base, &xs),
            &run_all(&tract, &path, &xs),
            1e-4,
            "reordered vs base",
        );
    }
}

fn files_on_disk(dir: &Path, m: &Manifest) -> u64 {
    let len = |p: &PathBuf| std::fs::metadata(dir.join(p)).unwrap().len();
    len(&m.shared_file) + m.variants.iter().map(|r| len(&r.private_file)).sum::<u64>()
}

/// A whole (small) family of the box-head model: files, shapes in both engines, the
/// base variant reproducing the base model, storage equal to the bytes on disk, reuse,
/// and a budget below the family.
#[test]
fn lights_family_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("variants");
    let arch = tiny(Kind::Lights);
    let base = dir.path().join("lights.onnx");
    export_onnx(&arch, &random_weights(&arch, 3), &base).unwrap();
    let train = rtmdl_scenes::generate(Kind::Lights, Split::Train, 40, 1);
    let val = rtmdl_scenes::generate(Kind::Lights, Split::Val, 12, 1);
    let opts = ScaleOptions {
        widths: vec![0.5, 1.0],
        depths: vec![0, 2],
        epochs: 1,
        tune_epochs: 1,
        batch: 16,
        calib_n: 24,
        threads: 2,
        latency_runs: 3,
        ..Default::default()
    };
    let events = RefCell::new(Vec::new());
    let m = scale("lights", &base, &train, &val, &opts, &out, &|e| {
        events.borrow_mut().push(e)
    })
    .unwrap();

    // Rows: widest and deepest first, consistent architectures.
    let names: Vec<&str> = m.variants.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["w100-d2", "w100-d0", "w050-d2", "w050-d0"]);
    assert!(m.dropped.is_empty());
    assert_eq!(m.base_arch, arch);
    for r in &m.variants {
        assert_eq!(r.model, "lights");
        assert_eq!(r.arch.c1, scaled_channels(arch.c1, r.width));
        assert_eq!(r.arch.c2, scaled_channels(arch.c2, r.width));
        assert_eq!(r.arch.c3, scaled_channels(arch.c3, r.width));
        assert_eq!(r.arch.blocks, r.depth);
        assert_eq!(r.params, r.arch.param_count());
        assert!((0.0..=1.0).contains(&r.accuracy), "{r:?}");
        assert!(r.box_iou.is_some());
        assert!(r.latency_ms > 0.0);
        assert_eq!(r.refit, r.name != "w100-d2");
    }
    assert!(m.variants.iter().any(|r| r.pareto));
    assert!(m.variants[3].macs < m.variants[0].macs);

    // Progress: stages with steps, one event per variant.
    let ev = events.borrow();
    let finished = ev
        .iter()
        .filter(|e| matches!(e, ScaleEvent::Variant(_)))
        .count();
    assert_eq!(finished, 4);
    assert!(ev.iter().any(|e| matches!(e,
        ScaleEvent::Stage { name, total } if name.contains("re-fit head") && *total == 3)));
    assert!(
        ev.iter()
            .any(|e| matches!(e, ScaleEvent::Step { done: 3, total: 3 }))
    );
    assert!(ev.iter().any(|e| matches!(e,
        ScaleEvent::Stage { name, total } if name.contains("tune private part") && *total == 3)));
    drop(ev);

    // The full variant reproduces the base model (tract, 1e-4) and its accuracy.
    let tract = TractEngine::new();
    let xs = inputs(&arch, 3, 9);
    let full = &m.variants[0];
    assert_close(
        &run_all(&tract, &base, &xs),
        &run_all(&tract, &out.join(&full.file), &xs),
        1e-4,
        "full variant vs base",
    );
    let base_eval = evaluate(&base, &val, &tract).unwrap();
    assert_eq!(full.accuracy, base_eval.accuracy as f64);

    // Every variant loads in tract and ort with the right shapes and agrees across
    // engines; the parts assemble to exactly the ONNX file's weights.
    let ort = ort_or_skip();
    for r in &m.variants {
        let path = out.join(&r.file);
        let s = tract.session(&ModelSpec::new(&path)).unwrap();
        assert_eq!(s.input_shape(), &[1, 3, arch.height, arch.width]);
        assert_eq!(s.output_names(), ["logits", "box"]);
        assert_eq!(s.output_shapes(), [vec![1, arch.classes], vec![1, 4]]);
        let t = run_all(&tract, &path, &xs);
        if let Some(ort) = &ort {
            let mut so = ort.session(&ModelSpec::new(&path)).unwrap();
            assert_eq!(so.output_shapes(), [vec![1, arch.classes], vec![1, 4]]);
            let o: Vec<_> = xs.iter().map(|x| so.run(x).unwrap()).collect();
            assert_close(&t, &o, 1e-4, &format!("{} tract vs ort", r.name));
        }
        let (aa, aw) = assemble(&out, &m, r).unwrap();
        assert_eq!(
            (aa, aw.clone()),
            (r.arch.clone(), read_onnx(&path).unwrap().1)
        );
        // The private file holds no shared tensor; the shared file no private one.
        let private = Weights::load(out.join(&r.private_file)).unwrap();
        assert!(private.tensors.keys().all(|k| k.starts_with("head.")
            || k.starts_with("fc.")
            || k.starts_with("box.")
            || k.ends_with(".running_mean")
            || k.ends_with(".running_var")));
        assert_eq!(private.len() + shared_len(&r.arch), aw.len());
    }
    let shared = Weights::load(out.join(&m.shared_file)).unwrap();
    assert!(shared.tensors.contains_key("blocks.1.conv2.weight"));
    assert!(
        !shared
            .tensors
            .keys()
            .any(|k| k.contains("running") || k.starts_with("head."))
    );

    // Storage: what the manifest says is what is on disk.
    assert_eq!(m.storage(), files_on_disk(&out, &m));
    assert_eq!(
        m.shared_bytes,
        std::fs::metadata(out.join(&m.shared_file)).unwrap().len()
    );
    for r in &m.variants {
        assert_eq!(r.shared_bytes, m.shared_bytes);
        let on_disk = std::fs::metadata(out.join(&r.private_file)).unwrap().len();
        assert_eq!(r.private_bytes, on_disk);
    }
    let mpath = Manifest::path_in(&out, "lights");
    assert_eq!(Manifest::load(&mpath).unwrap(), m);

    // Same base, options and data: the manifest is reused, nothing is rewritten.
    let mtime = std::fs::metadata(out.join(&m.variants[1].private_file))
        .unwrap()
        .modified()
        .unwrap();
    let again_events = RefCell::new(Vec::new());
    let again = scale("lights", &base, &train, &val, &opts, &out, &|e| {
        again_events.borrow_mut().push(e)
    })
    .unwrap();
    assert_eq!(again, m);
    assert_eq!(
        *again_events.borrow(),
        [ScaleEvent::Reused {
            manifest: mpath.clone()
        }]
    );
    let mtime2 = std::fs::metadata(out.join(&m.variants[1].private_file))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(mtime, mtime2);

    // Installed elsewhere from its parts: every ONNX rebuilt to the bytes measured.
    let copy = dir.path().join("copy");
    m.install(&out, &copy).unwrap();
    for r in &m.variants {
        assert_eq!(
            std::fs::read(copy.join(&r.file)).unwrap(),
            std::fs::read(out.join(&r.file)).unwrap(),
            "{}",
            r.name
        );
    }
    // A part changed after the family was made: one error naming it, from the check
    // and from installing; and the scaling run does not reuse that folder.
    let bad = copy.join(&m.variants[1].private_file);
    let mut bytes = std::fs::read(&bad).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&bad, &bytes).unwrap();
    for e in [
        m.verify_parts(&copy).unwrap_err(),
        m.install(&copy, &dir.path().join("copy2")).unwrap_err(),
    ] {
        let e = e.to_string();
        assert!(
            e.contains(&bad.display().to_string()) && e.contains("sha256"),
            "{e}"
        );
    }
    let bad_out = out.join(&m.variants[1].private_file);
    let good = std::fs::read(&bad_out).unwrap();
    std::fs::write(&bad_out, &bytes).unwrap();
    let redone = RefCell::new(Vec::new());
    let again = scale("lights", &base, &train, &val, &opts, &out, &|e| {
        redone.borrow_mut().push(e)
    })
    .unwrap();
    assert!(
        !redone
            .borrow()
            .iter()
            .any(|e| matches!(e, ScaleEvent::Reused { .. }))
    );
    assert_eq!(
        std::fs::read(&bad_out).unwrap(),
        good,
        "the re-fit is deterministic"
    );
    assert_eq!(again.variants.len(), m.variants.len());

    // A budget one byte below the family: the kept set fits, something is dropped,
    // and what is kept is still what is on disk for the kept rows.
    let mut ms = vec![m.clone()];
    let budget = m.storage() - 1;
    fit_budget(&mut ms, budget).unwrap();
    assert!(ms[0].storage() <= budget);
    assert!(!ms[0].dropped.is_empty() && !ms[0].variants.is_empty());
    assert_eq!(ms[0].variants.len() + ms[0].dropped.len(), 4);
    assert_eq!(ms[0].storage(), files_on_disk(&out, &ms[0]));
    // Below the cheapest variant: an error naming the shortfall.
    let cheapest = m.variants.iter().map(|r| r.private_bytes).min().unwrap();
    let need = m.shared_bytes + cheapest;
    let err = fit_budget(&mut ms, need - 10).unwrap_err().to_string();
    assert!(
        err.contains("10 B short") && err.contains("lights"),
        "{err}"
    );
}

fn shared_len(arch: &Arch) -> usize {
    arch.tensor_shapes()
        .iter()
        .filter(|(n, _)| rtmdl_train::scale::is_shared_tensor(n))
        .map(|(_, s)| s.iter().product::<usize>())
        .sum()
}

/// The classifier-only model: a narrow, shallow variant re-fits and runs in both engines.
#[test]
fn signs_variant_without_box_head() {
    let dir = tempfile::tempdir().unwrap();
    let arch = tiny(Kind::Signs);
    let base = dir.path().join("signs.onnx");
    export_onnx(&arch, &random_weights(&arch, 4), &base).unwrap();
    let train = rtmdl_scenes::generate(Kind::Signs, Split::Train, 32, 2);
    let val = rtmdl_scenes::generate(Kind::Signs, Split::Val, 16, 2);
    let opts = ScaleOptions {
        widths: vec![0.25],
        depths: vec![1],
        epochs: 1,
        tune_epochs: 0,
        batch: 16,
        calib_n: 16,
        threads: 1,
        latency_runs: 2,
        ..Default::default()
    };
    let out = dir.path().join("out");
    let m = scale("signs", &base, &train, &val, &opts, &out, &|_| {}).unwrap();
    assert_eq!(m.variants.len(), 1);
    let r = &m.variants[0];
    assert_eq!(
        (r.name.as_str(), r.arch.c1, r.arch.c2, r.arch.c3),
        ("w025-d1", 1, 2, 2)
    );
    assert!(r.box_iou.is_none() && r.refit);
    let path = out.join(&r.file);
    let xs = inputs(&arch, 2, 1);
    let t = run_all(&TractEngine::new(), &path, &xs);
    assert_eq!(t[0][0].shape(), &[1, 16]);
    assert_eq!(t[0].len(), 1);
    if let Some(ort) = ort_or_skip() {
        assert_close(&t, &run_all(&ort, &path, &xs), 1e-4, "tract vs ort");
    }
    assert_eq!(m.storage(), files_on_disk(&out, &m));
}

#[test]
fn bad_levels_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let arch = tiny(Kind::Signs);
    let base = dir.path().join("signs.onnx");
    export_onnx(&arch, &random_weights(&arch, 4), &base).unwrap();
    let d = rtmdl_scenes::generate(Kind::Signs, Split::Train, 4, 2);
    for (opts, want) in [
        (
            ScaleOptions {
                depths: vec![3],
                ..Default::default()
            },
            "only 2 residual blocks",
        ),
        (
            ScaleOptions {
                widths: vec![1.5],
                ..Default::default()
            },
            "not in (0, 1]",
        ),
    ] {
        let e = scale("signs", &base, &d, &d, &opts, dir.path(), &|_| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e}");
    }
    // Data of the other model.
    let l = rtmdl_scenes::generate(Kind::Lights, Split::Train, 4, 2);
    let e = scale(
        "signs",
        &base,
        &l,
        &l,
        &ScaleOptions::default(),
        dir.path(),
        &|_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("48×48"), "{e}");
}

/// `read_onnx` rejects graphs that are not this architecture, naming the file.
#[test]
fn read_onnx_rejects_foreign_graphs() {
    let dir = tempfile::tempdir().unwrap();
    // Another CNN.
    let other = dir.path().join("other.onnx");
    rtmdl_engine::testmodels::write_tiny_cnn(&other, 42, 3, 16, 16, 10).unwrap();
    let e = read_onnx(&other).unwrap_err().to_string();
    assert!(
        e.contains(&other.display().to_string()) && e.contains("not an rtmdl-train network"),
        "{e}"
    );
    // Not ONNX at all.
    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"\xff\xff not protobuf").unwrap();
    let e = read_onnx(&junk).unwrap_err().to_string();
    assert!(e.contains(&junk.display().to_string()), "{e}");
    // Missing file.
    let none = dir.path().join("none.onnx");
    assert!(
        read_onnx(&none)
            .unwrap_err()
            .to_string()
            .contains("none.onnx")
    );
    // Our initializers, but one node changed.
    let arch = tiny(Kind::Signs);
    let ours = dir.path().join("ours.onnx");
    export_onnx(&arch, &random_weights(&arch, 1), &ours).unwrap();
    let mut model = pb::ModelProto::decode(std::fs::read(&ours).unwrap().as_slice()).unwrap();
    let g = model.graph.as_mut().unwrap();
    let relu = g.node.iter_mut().find(|n| n.op_type == "Relu").unwrap();
    relu.op_type = "Sigmoid".into();
    let tampered = dir.path().join("tampered.onnx");
    std::fs::write(&tampered, model.encode_to_vec()).unwrap();
    let e = read_onnx(&tampered).unwrap_err().to_string();
    assert!(
        e.contains("tampered.onnx") && e.contains("Sigmoid") && e.contains("expected Relu"),
        "{e}"
    );
}

fn row(model: &str, name: &str, acc: f64, lat: f64, private: u64, shared: u64) -> VariantRow {
    let arch = tiny(Kind::Signs);
    VariantRow {
        model: model.into(),
        name: name.into(),
        width: 1.0,
        depth: 2,
        accuracy: acc,
        box_iou: None,
        latency_ms: lat,
        shared_bytes: shared,
        private_bytes: private,
        file: format!("{model}-{name}.onnx").into(),
        onnx_sha256: String::new(),
        private_file: format!("{model}-{name}.private.safetensors").into(),
        private_sha256: String::new(),
        params: 0,
        macs: 0,
        arch,
        pareto: false,
        refit: true,
        seconds: 0.0,
    }
}

fn manifest(model: &str, shared: u64, rows: &[(&str, f64, f64, u64)]) -> Manifest {
    let key = DataKey {
        n: 0,
        hash: String::new(),
    };
    Manifest {
        model: model.into(),
        base: format!("{model}.onnx").into(),
        shared_file: format!("{model}.shared.safetensors").into(),
        shared_bytes: shared,
        shared_sha256: String::new(),
        variants: rows
            .iter()
            .map(|&(n, a, l, p)| row(model, n, a, l, p, shared))
            .collect(),
        dropped: Vec::new(),
        base_arch: tiny(Kind::Signs),
        engine: "test".into(),
        source: SourceKey {
            format: SCALE_FORMAT,
            base_bytes: 0,
            base_sha256: String::new(),
            options: ScaleOptions::default(),
            train: key.clone(),
            val: key,
        },
        seconds: 0.0,
    }
}

fn families() -> Vec<Manifest> {
    vec![
        manifest(
            "lights",
            1000,
            &[
                ("a", 0.94, 1.0, 500),
                ("b", 0.93, 0.7, 300),
                ("c", 0.90, 0.5, 150),
                ("dominated", 0.85, 0.6, 100),
                ("d", 0.80, 0.3, 60),
            ],
        ),
        manifest(
            "signs",
            800,
            &[
                ("a", 0.95, 0.8, 400),
                ("b", 0.91, 0.4, 120),
                ("dominated", 0.88, 0.45, 90),
                ("c", 0.70, 0.2, 40),
            ],
        ),
    ]
}

fn kept(ms: &[Manifest]) -> Vec<Vec<String>> {
    ms.iter()
        .map(|m| m.variants.iter().map(|r| r.name.clone()).collect())
        .collect()
}

/// Exhaustive best (Pareto rows kept, rows kept) over every subset that keeps at least
/// one row per family and fits.
fn brute_force(ms: &[Manifest], budget: u64) -> (usize, usize) {
    let rows: Vec<(usize, &VariantRow)> = ms
        .iter()
        .enumerate()
        .flat_map(|(f, m)| m.variants.iter().chain(&m.dropped).map(move |r| (f, r)))
        .collect();
    let mut best = (0, 0);
    for mask in 0u32..(1 << rows.len()) {
        let mut per = vec![0usize; ms.len()];
        let mut bytes = 0u64;
        let mut score = (0, 0);
        for (i, (f, r)) in rows.iter().enumerate() {
            if mask & (1 << i) != 0 {
                per[*f] += 1;
                bytes += r.private_bytes;
                score.0 += usize::from(r.pareto);
                score.1 += 1;
            }
        }
        bytes += ms.iter().map(|m| m.shared_bytes).sum::<u64>();
        if per.iter().all(|&c| c > 0) && bytes <= budget && score > best {
            best = score;
        }
    }
    best
}

#[test]
fn fit_budget_keeps_pareto_points_within_the_budget() {
    let all = families();
    let total: u64 = all.iter().map(Manifest::storage).sum();
    assert_eq!(total, 1000 + 1110 + 800 + 650);

    // Everything fits: nothing moves, Pareto flags are set.
    let mut ms = families();
    fit_budget(&mut ms, total).unwrap();
    assert!(ms.iter().all(|m| m.dropped.is_empty()));
    let flags: Vec<bool> = ms[0].variants.iter().map(|r| r.pareto).collect();
    assert_eq!(flags, [true, true, true, false, true]);

    // Room for every Pareto point but not the dominated rows: exactly those go.
    let mut ms = families();
    let budget = total - 100 - 90;
    fit_budget(&mut ms, budget).unwrap();
    assert_eq!(kept(&ms), [vec!["a", "b", "c", "d"], vec!["a", "b", "c"]]);
    assert!(
        ms.iter()
            .all(|m| m.dropped.len() == 1 && m.dropped[0].name == "dominated")
    );
    assert!(ms.iter().map(Manifest::storage).sum::<u64>() <= budget);

    // Every budget between the minimum and the total: fits, one row per family at
    // least, and as many Pareto points (then rows) as the best subset.
    let min = 1000 + 60 + 800 + 40;
    for budget in (min..=total).step_by(37) {
        let mut ms = families();
        fit_budget(&mut ms, budget).unwrap();
        let used: u64 = ms.iter().map(Manifest::storage).sum();
        assert!(used <= budget, "{used} > {budget}");
        assert!(ms.iter().all(|m| !m.variants.is_empty()));
        let got = (
            ms.iter()
                .flat_map(|m| &m.variants)
                .filter(|r| r.pareto)
                .count(),
            ms.iter().map(|m| m.variants.len()).sum::<usize>(),
        );
        assert_eq!(
            got,
            brute_force(&ms, budget),
            "budget {budget}: {:?}",
            kept(&ms)
        );
        assert_eq!(
            ms.iter()
                .map(|m| m.variants.len() + m.dropped.len())
                .sum::<usize>(),
            9
        );
    }

    // Dropped rows come back with a larger budget.
    let mut ms = families();
    fit_budget(&mut ms, min).unwrap();
    assert_eq!(kept(&ms), [vec!["d"], vec!["c"]]);
    fit_budget(&mut ms, total).unwrap();
    assert!(ms.iter().all(|m| m.dropped.is_empty()));
    assert_eq!(ms[0].variants.len(), 5);

    // One byte too little for the cheapest of each: an error with the shortfall, and
    // the manifests keep all their rows.
    let mut ms = families();
    let e = fit_budget(&mut ms, min - 1).unwrap_err().to_string();
    assert!(
        e.contains("1 B short") && e.contains("lights: shared 1000 B + d 60 B"),
        "{e}"
    );
    assert_eq!(ms[0].variants.len(), 5);
}
