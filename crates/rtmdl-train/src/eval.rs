//! Evaluation of an exported model through an rtmdl inference engine.

use std::path::Path;
use std::time::Instant;

use ndarray::{Axis, IxDyn};
use rtmdl_engine::{Engine, ModelSpec};
use serde::{Deserialize, Serialize};

use crate::{Dataset, Result, TrainError};

/// Results of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Eval {
    /// Samples evaluated.
    pub n: usize,
    /// Top-1 accuracy.
    pub accuracy: f32,
    /// Mean IoU of the `box` output against the true boxes (models with a box output,
    /// data with boxes).
    pub box_iou_mean: Option<f32>,
    /// Fraction of samples whose box IoU is at least 0.5.
    pub box_iou_50: Option<f32>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// Mean wall time of one `Session::run`, in milliseconds.
    pub mean_run_ms: f32,
}

impl Eval {
    /// Per-class recall (true-class accuracy), in label order.
    pub fn recall(&self) -> Vec<f32> {
        self.confusion
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let n: usize = row.iter().sum();
                if n == 0 {
                    f32::NAN
                } else {
                    row[i] as f32 / n as f32
                }
            })
            .collect()
    }
}

/// Runs every sample of `dataset` through the ONNX model at `onnx_path` on `engine`,
/// batch 1 (one thread): the same path the runtime uses. Reads the `logits` output
/// (the first output when none is named so) and, when present, `box`.
pub fn evaluate(
    onnx_path: impl AsRef<Path>,
    dataset: &Dataset,
    engine: &dyn Engine,
) -> Result<Eval> {
    evaluate_with(onnx_path.as_ref(), dataset, engine, &mut |_, _| {})
}

/// [`evaluate`] calling `progress(done, total)` after every sample.
pub(crate) fn evaluate_with(
    onnx_path: &Path,
    dataset: &Dataset,
    engine: &dyn Engine,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Eval> {
    let (h, w) = dataset.image_size();
    let spec = ModelSpec::new(onnx_path).with_input_shape(vec![1, 3, h, w]);
    let mut session = engine.session(&spec)?;
    let names = session.output_names().to_vec();
    let li = names.iter().position(|n| n == "logits").unwrap_or(0);
    let bi = names.iter().position(|n| n == "box");
    let k = dataset.classes.len();
    let mut confusion = vec![vec![0usize; k]; k];
    let mut iou_sum = 0.0f32;
    let mut iou_50 = 0usize;
    let mut run_time = 0.0f64;
    for i in 0..dataset.len() {
        let x = dataset
            .images
            .index_axis(Axis(0), i)
            .insert_axis(Axis(0))
            .to_owned()
            .into_shape_with_order(IxDyn(&[1, 3, h, w]))
            .expect("one image");
        let t = Instant::now();
        let out = session.run(&x)?;
        run_time += t.elapsed().as_secs_f64();
        let logits: Vec<f32> = out[li].iter().copied().collect();
        if logits.len() != k {
            return Err(TrainError::Data(format!(
                "the model gives {} scores, the data has {k} classes",
                logits.len()
            )));
        }
        confusion[dataset.labels[i] as usize][argmax(&logits)] += 1;
        if let (Some(bi), Some(boxes)) = (bi, &dataset.boxes) {
            let b: Vec<f32> = out[bi].iter().copied().collect();
            let v = iou([b[0], b[1], b[2], b[3]], boxes[i]);
            iou_sum += v;
            iou_50 += usize::from(v >= 0.5);
        }
        progress(i + 1, dataset.len());
    }
    let n = dataset.len();
    let correct: usize = (0..k).map(|i| confusion[i][i]).sum();
    let has_box = bi.is_some() && dataset.boxes.is_some();
    let nf = n.max(1) as f32;
    Ok(Eval {
        n,
        accuracy: correct as f32 / nf,
        box_iou_mean: has_box.then(|| iou_sum / nf),
        box_iou_50: has_box.then(|| iou_50 as f32 / nf),
        confusion,
        mean_run_ms: (run_time * 1e3 / n.max(1) as f64) as f32,
    })
}

/// Index of the largest value (the first on ties).
pub(crate) fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// IoU of two normalised `[x, y, w, h]` boxes (top-left corner and size).
pub(crate) fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let ix = ((a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0])).max(0.0);
    let iy = ((a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1])).max(0.0);
    let inter = ix * iy;
    let union = a[2].max(0.0) * a[3].max(0.0) + b[2].max(0.0) * b[3].max(0.0) - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}
