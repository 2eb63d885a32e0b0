use super::*;
use crate::eval::{argmax, iou};
use rand::{Rng, SeedableRng};

fn tiny(box_head: bool) -> Arch {
    Arch {
        name: "tiny".into(),
        height: 16,
        width: 12,
        c1: 4,
        c2: 6,
        c3: 8,
        blocks: 2,
        classes: 5,
        box_head,
    }
}

/// Weights with non-trivial batch-norm statistics, so layout or BN mistakes show.
fn random_weights(arch: &Arch, seed: u64) -> Weights {
    let mut w = init_weights(arch, seed);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed + 1);
    for (name, (_, data)) in w.tensors.iter_mut() {
        if name.contains(".bn") {
            for v in data.iter_mut() {
                *v = if name.ends_with("running_var") {
                    rng.random_range(0.3..2.0)
                } else if name.ends_with(".weight") {
                    rng.random_range(0.5..1.5)
                } else {
                    rng.random_range(-0.5..0.5)
                };
            }
        }
    }
    w
}

#[test]
fn tensor_names_and_counts() {
    let a = Arch::signs();
    let shapes = a.tensor_shapes();
    assert_eq!(
        shapes[0],
        ("stem.conv.weight".to_string(), vec![32, 3, 3, 3])
    );
    assert!(
        shapes
            .iter()
            .any(|(n, s)| n == "blocks.1.bn2.running_var" && s == &vec![64])
    );
    assert!(!shapes.iter().any(|(n, _)| n.starts_with("box.")));
    assert!(
        Arch::lights()
            .tensor_shapes()
            .iter()
            .any(|(n, s)| n == "box.weight" && s == &vec![4, 128])
    );
    // Well under the 2 MB file budget.
    assert!(Arch::lights().param_count() * 4 < 1 << 20);
    let w = init_weights(&a, 0);
    a.check(&w).unwrap();
    assert_eq!(w.len(), a.param_count());
}

#[test]
fn check_rejects_bad_weights() {
    let a = tiny(false);
    let mut w = init_weights(&a, 0);
    w.insert("fc.bias", vec![3], vec![0.0; 3]);
    let e = a.check(&w).unwrap_err().to_string();
    assert!(e.contains("fc.bias") && e.contains("[5]"), "{e}");
    let mut w = init_weights(&a, 0);
    w.tensors.remove("down.bn.running_mean");
    assert!(
        a.check(&w)
            .unwrap_err()
            .to_string()
            .contains("missing tensor down.bn.running_mean")
    );
    let mut w = init_weights(&a, 0);
    w.insert("box.bias", vec![4], vec![0.0; 4]);
    assert!(a.check(&w).unwrap_err().to_string().contains("not part"));
}

#[test]
fn weights_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let a = tiny(true);
    let w = random_weights(&a, 3);
    let p = dir.path().join("w.safetensors");
    w.save(&p).unwrap();
    assert_eq!(Weights::load(&p).unwrap(), w);
    let p2 = dir.path().join("sub/m.safetensors");
    save_model(&p2, &a, &w).unwrap();
    let (a2, w2) = load_model(&p2).unwrap();
    assert_eq!((a2, w2), (a.clone(), w));
    // The plain file has no arch.
    assert!(load_model(&p).unwrap_err().to_string().contains("arch"));
    std::fs::write(&p, b"nonsense").unwrap();
    assert!(Weights::load(&p).is_err());
}

#[test]
fn init_is_seeded() {
    let a = tiny(true);
    assert_eq!(init_weights(&a, 5), init_weights(&a, 5));
    assert_ne!(init_weights(&a, 5), init_weights(&a, 6));
}

#[test]
fn iou_and_argmax() {
    assert_eq!(iou([0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5]), 1.0);
    assert_eq!(iou([0.0, 0.0, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2]), 0.0);
    assert!((iou([0.0, 0.0, 0.4, 0.4], [0.2, 0.0, 0.4, 0.4]) - 1.0 / 3.0).abs() < 1e-6);
    assert_eq!(argmax(&[0.1, 0.7, 0.7, -1.0]), 1);
}

/// The exported ONNX, run by tract (batch 1), reproduces candle's forward pass.
#[test]
fn onnx_matches_framework() {
    let (engine, _) = rtmdl_engine::select(rtmdl_engine::EngineKind::Tract).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for box_head in [false, true] {
        let a = tiny(box_head);
        let w = random_weights(&a, 11);
        let path = dir.path().join(format!("m{box_head}.onnx"));
        export_onnx(&a, &w, &path).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let imgs =
            ndarray::Array4::from_shape_fn((3, 3, a.height, a.width), |_| rng.random::<f32>());
        let p = predict(&a, &w, imgs.view(), 2).unwrap();
        let spec = rtmdl_engine::ModelSpec::new(&path);
        let mut s = engine.session(&spec).unwrap();
        assert_eq!(s.input_shape(), &[1, 3, a.height, a.width]);
        let want_names: Vec<&str> = if box_head {
            vec!["logits", "box"]
        } else {
            vec!["logits"]
        };
        assert_eq!(s.output_names(), want_names.as_slice());
        for i in 0..3 {
            let x = imgs
                .slice(ndarray::s![i..i + 1, .., .., ..])
                .to_owned()
                .into_dyn();
            let out = s.run(&x).unwrap();
            assert_eq!(out[0].shape(), &[1, a.classes]);
            for (o, e) in out[0].iter().zip(p.logits.row(i)) {
                assert!((o - e).abs() < 1e-4, "logits {o} vs {e}");
            }
            if box_head {
                assert_eq!(out[1].shape(), &[1, 4]);
                for (o, e) in out[1].iter().zip(p.boxes.as_ref().unwrap().row(i)) {
                    assert!((o - e).abs() < 1e-4, "box {o} vs {e}");
                }
            }
        }
    }
}

/// A short training run on real scene data lowers the loss, moves the BN statistics,
/// and `evaluate` (tract) agrees with the framework's own predictions.
#[test]
fn short_training_lowers_loss_and_evaluates() {
    let (h, w) = Kind::Lights.image_size();
    let a = Arch {
        name: "lights-tiny".into(),
        height: h,
        width: w,
        c1: 4,
        c2: 8,
        c3: 8,
        blocks: 1,
        classes: 4,
        box_head: true,
    };
    let train_d = rtmdl_scenes::generate(Kind::Lights, Split::Train, 96, 1);
    let val_d = rtmdl_scenes::generate(Kind::Lights, Split::Val, 24, 1);
    let opts = TrainOptions {
        epochs: 3,
        batch: 16,
        lr: 1e-2,
        threads: 2,
        ..Default::default()
    };
    let mut losses = Vec::new();
    let t = train(&a, &train_d, &val_d, &opts, &mut |e, s, l| {
        losses.push((e, s, l))
    })
    .unwrap();
    assert_eq!(losses.len(), 3 * 6);
    assert_eq!(t.history.len(), 3);
    let first = t.history[0].train_loss;
    let last = t.history[2].train_loss;
    assert!(last < first, "loss {first} -> {last}: {losses:?}");
    a.check(&t.weights).unwrap();
    let rm = t.weights.get("stem.bn.running_mean").unwrap().1;
    assert!(rm.iter().any(|&v| v != 0.0), "running stats were updated");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.onnx");
    export_onnx(&a, &t.weights, &path).unwrap();
    let (engine, _) = rtmdl_engine::select(rtmdl_engine::EngineKind::Tract).unwrap();
    let ev = evaluate(&path, &val_d, engine.as_ref()).unwrap();
    let p = predict(&a, &t.weights, val_d.images.view(), 8).unwrap();
    let agree = p
        .logits
        .rows()
        .into_iter()
        .zip(&val_d.labels)
        .filter(|(r, l)| argmax(r.as_slice().unwrap()) == **l as usize)
        .count();
    assert_eq!(ev.n, 24);
    assert!((ev.accuracy - agree as f32 / 24.0).abs() < 1e-6);
    let iou = ev.box_iou_mean.unwrap();
    assert!((0.0..=1.0).contains(&iou));
    assert_eq!(ev.confusion.iter().flatten().sum::<usize>(), 24);
}

#[test]
fn data_mismatch_is_an_error() {
    let d = rtmdl_scenes::generate(Kind::Signs, Split::Train, 4, 0);
    let e = train(
        &Arch::lights(),
        &d,
        &d,
        &TrainOptions::default(),
        &mut |_, _, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("32×32"), "{e}");
}

/// Same seed, same weights: whatever the thread count.
#[test]
fn training_is_deterministic() {
    let (h, w) = Kind::Signs.image_size();
    let a = Arch {
        name: "signs-tiny".into(),
        height: h,
        width: w,
        c1: 4,
        c2: 4,
        c3: 8,
        blocks: 1,
        classes: 16,
        box_head: false,
    };
    let d = rtmdl_scenes::generate(Kind::Signs, Split::Train, 40, 3);
    let run = |threads| {
        let opts = TrainOptions {
            epochs: 1,
            batch: 20,
            threads,
            seed: 9,
            ..Default::default()
        };
        train(&a, &d, &d, &opts, &mut |_, _, _| {}).unwrap().weights
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_ne!(one, init_weights(&a, 9));
}
