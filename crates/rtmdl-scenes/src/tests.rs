use super::*;

const KINDS: [Kind; 3] = [Kind::Lights, Kind::Signs, Kind::SignScenes];

#[test]
fn deterministic_and_thread_independent() {
    for kind in KINDS {
        let a = generate_with_threads(kind, Split::Train, 24, 7, 1);
        let b = generate_with_threads(kind, Split::Train, 24, 7, 3);
        assert_eq!(a, b, "{kind}");
        let c = generate(kind, Split::Train, 24, 8);
        assert_ne!(a.images, c.images, "{kind}: another seed differs");
    }
}

#[test]
fn splits_differ() {
    let a = generate(Kind::Signs, Split::Train, 16, 1);
    let b = generate(Kind::Signs, Split::Test, 16, 1);
    for i in 0..16 {
        for j in 0..16 {
            assert_ne!(a.image(i), b.image(j));
        }
    }
}

#[test]
fn balanced_labels_and_sane_boxes() {
    for kind in KINDS {
        let k = kind.classes().len();
        let n = 3 * k + 2;
        let d = generate(kind, Split::Train, n, 11);
        let counts = d.class_counts();
        assert!(
            counts.iter().all(|&c| c == 3 || c == 4),
            "{kind}: {counts:?}"
        );
        assert_eq!(counts.iter().sum::<usize>(), n);
        assert_eq!(d.classes.len(), k);
        let (h, w) = kind.image_size();
        assert_eq!(d.images.shape(), &[n, 3, h, w]);
        assert!(d.images.iter().all(|&v| (0.0..=1.0).contains(&v)));
        // Not blank: real contrast in every image.
        for i in 0..n {
            let img = d.image(i);
            let (lo, hi) = img
                .iter()
                .fold((1.0f32, 0.0f32), |(a, b), &v| (a.min(v), b.max(v)));
            assert!(hi - lo > 0.15, "{kind} sample {i} is flat ({lo}..{hi})");
        }
        match (&d.boxes, kind.has_boxes()) {
            (Some(b), true) => {
                assert_eq!(b.len(), n);
                for bx in b {
                    let [x, y, bw, bh] = *bx;
                    assert!(
                        x >= 0.0 && y >= 0.0 && x + bw <= 1.0 + 1e-6 && y + bh <= 1.0 + 1e-6,
                        "{bx:?}"
                    );
                    assert!(bw > 0.05 && bh > 0.05, "{kind}: box too small {bx:?}");
                }
            }
            (None, false) => {}
            _ => panic!("{kind}: boxes presence"),
        }
    }
}

#[test]
fn light_boxes_have_housing_aspect() {
    let d = generate(Kind::Lights, Split::Test, 40, 5);
    let b = d.boxes.as_ref().unwrap();
    for bx in b {
        let r = bx[3] / bx[2];
        // Vertical (about 2.5–2.9) or horizontal housings, never square.
        assert!(!(0.6..=1.6).contains(&r), "aspect {r} of {bx:?}");
    }
}

#[test]
fn save_load_roundtrip_and_cache() {
    let dir = tempfile::tempdir().unwrap();
    for kind in KINDS {
        let d = generate(kind, Split::Val, 10, 2);
        let p = dir.path().join(kind.as_str());
        d.save(&p).unwrap();
        let e = Dataset::load(&p).unwrap();
        assert_eq!(d, e, "{kind}");
    }
    let (a, hit) = cached(Kind::Signs, Split::Train, 12, 4, dir.path()).unwrap();
    assert!(!hit);
    let (b, hit) = cached(Kind::Signs, Split::Train, 12, 4, dir.path()).unwrap();
    assert!(hit);
    assert_eq!(a, b);
}

#[test]
fn load_rejects_truncated_data() {
    let dir = tempfile::tempdir().unwrap();
    let d = generate(Kind::Signs, Split::Val, 4, 2);
    d.save(dir.path()).unwrap();
    let data = dir.path().join(DATA_FILE);
    let bytes = std::fs::read(&data).unwrap();
    std::fs::write(&data, &bytes[..bytes.len() - 3]).unwrap();
    let err = Dataset::load(dir.path()).unwrap_err();
    assert!(err.to_string().contains("expected"), "{err}");
}

#[test]
fn frame_is_hwc_0_255() {
    let d = generate(Kind::SignScenes, Split::Test, 2, 1);
    let f = d.frame(1);
    assert_eq!(f.shape(), &[SCENE_SIZE, SCENE_SIZE, 3]);
    assert_eq!(f[[3, 5, 1]], d.images[[1, 1, 3, 5]] * 255.0);
}

#[test]
fn select_keeps_alignment() {
    let d = generate(Kind::Lights, Split::Train, 6, 1);
    let s = d.select(&[4, 1]);
    assert_eq!(s.labels, vec![d.labels[4], d.labels[1]]);
    assert_eq!(s.image(0), d.image(4));
    assert_eq!(s.boxes.as_ref().unwrap()[1], d.boxes.as_ref().unwrap()[1]);
}

#[test]
fn kind_names_roundtrip() {
    for kind in KINDS {
        assert_eq!(kind.as_str().parse::<Kind>().unwrap(), kind);
    }
    assert!("lamps".parse::<Kind>().is_err());
}
