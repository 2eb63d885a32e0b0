//! Image pre-processing and detection post-processing stages.

use std::borrow::Cow;

use ndarray::{ArrayD, IxDyn};
use serde::Deserialize;

use crate::imgops::{Norm, Region, Resampler, whole};
use crate::params::{bad, bad_input, first, frame_dims, is_boxes, is_frame, parse, shape_str};
use crate::{CpuStage, Data, OpError};

/// The tensor's values in logical (row-major) order, borrowed when possible.
pub(crate) fn contiguous(t: &ArrayD<f32>) -> Cow<'_, [f32]> {
    match t.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(t.iter().copied().collect()),
    }
}

fn default_mean() -> [f32; 3] {
    [0.0; 3]
}
fn default_std() -> [f32; 3] {
    [255.0; 3]
}

fn check_size(function: &str, width: usize, height: usize) -> Result<(), OpError> {
    const MAX: usize = 1 << 16;
    if width == 0 || width > MAX {
        return Err(bad(
            function,
            "width",
            format!("an integer in 1..={MAX}, got {width}"),
        ));
    }
    if height == 0 || height > MAX {
        return Err(bad(
            function,
            "height",
            format!("an integer in 1..={MAX}, got {height}"),
        ));
    }
    Ok(())
}

fn make_norm(function: &str, mean: [f32; 3], std: [f32; 3]) -> Result<Norm, OpError> {
    if mean.iter().any(|m| !m.is_finite()) {
        return Err(bad(function, "mean", "three finite numbers"));
    }
    if std.iter().any(|s| !s.is_finite() || *s == 0.0) {
        return Err(bad(
            function,
            "std",
            format!("three finite non-zero numbers, got {std:?}"),
        ));
    }
    Ok(Norm {
        mean,
        inv_std: std.map(|s| 1.0 / s),
    })
}

/// RGB → BGR: swaps the first and third planes of a planar `3 × h × w` buffer.
fn swap_rb(out: &mut [f32]) {
    let plane = out.len() / 3;
    let (r, rest) = out.split_at_mut(plane);
    r.swap_with_slice(&mut rest[plane..]);
}

/// Rotates each plane of a planar `3 × h × w` buffer by 180°.
fn rotate180(out: &mut [f32]) {
    let plane = out.len() / 3;
    if plane > 0 {
        for p in out.chunks_exact_mut(plane) {
            p.reverse();
        }
    }
}

// ---------------------------------------------------------------- resize_normalize

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResizeNormalizeParams {
    width: usize,
    height: usize,
    #[serde(default = "default_mean")]
    mean: [f32; 3],
    #[serde(default = "default_std")]
    std: [f32; 3],
    #[serde(default)]
    keep_frame: bool,
    #[serde(default)]
    bgr: bool,
}

/// `resize_normalize`: `[frame, rest..]` → `[nchw, (frame), rest..]`. `mean` and
/// `std` are in R, G, B order; `bgr` writes the planes in B, G, R order (for models
/// trained on OpenCV images, like PP-OCR's).
pub(crate) struct ResizeNormalize {
    out: (usize, usize),
    norm: Norm,
    keep_frame: bool,
    bgr: bool,
    resampler: Resampler,
}

impl ResizeNormalize {
    const NAME: &'static str = "resize_normalize";

    /// The model input it writes: `[1, 3, height, width]`.
    pub(crate) fn output_shape(params: &toml::Table) -> Option<Vec<usize>> {
        let p: ResizeNormalizeParams = parse(Self::NAME, params).ok()?;
        Some(vec![1, 3, p.height, p.width])
    }

    pub(crate) fn build(params: &toml::Table) -> Result<Box<dyn CpuStage>, OpError> {
        let p: ResizeNormalizeParams = parse(Self::NAME, params)?;
        check_size(Self::NAME, p.width, p.height)?;
        Ok(Box::new(Self {
            out: (p.height, p.width),
            norm: make_norm(Self::NAME, p.mean, p.std)?,
            keep_frame: p.keep_frame,
            bgr: p.bgr,
            resampler: Resampler::default(),
        }))
    }
}

impl CpuStage for ResizeNormalize {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn run(&mut self, mut input: Data) -> Result<Data, OpError> {
        first(Self::NAME, &input, "a frame [H, W, 3]")?;
        let dims = frame_dims(Self::NAME, &input[0])?;
        let (oh, ow) = self.out;
        let mut out = vec![0.0f32; 3 * oh * ow];
        let src = contiguous(&input[0]);
        self.resampler.resample_nchw(
            &src,
            dims,
            whole(dims.0, dims.1),
            self.out,
            &self.norm,
            &mut out,
        );
        drop(src);
        if self.bgr {
            swap_rb(&mut out);
        }
        let nchw =
            ArrayD::from_shape_vec(IxDyn(&[1, 3, oh, ow]), out).expect("shape matches length");
        if self.keep_frame {
            input.insert(0, nchw);
        } else {
            input[0] = nchw;
        }
        Ok(input)
    }
}

// ---------------------------------------------------------------- crop_resize

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CropResizeParams {
    width: usize,
    height: usize,
    #[serde(default = "default_mean")]
    mean: [f32; 3],
    #[serde(default = "default_std")]
    std: [f32; 3],
    #[serde(default)]
    margin: f32,
    #[serde(default)]
    min_score: f32,
    #[serde(default)]
    keep_frame: bool,
    #[serde(default)]
    keep_boxes: bool,
    #[serde(default)]
    bgr: bool,
    #[serde(default)]
    rotate_class: Option<i64>,
}

/// `crop_resize`: finds the first `[H, W, 3]` tensor (the frame) and the
/// first `[N, 6]` tensor (boxes) anywhere in the input; crops the
/// highest-scoring box whose score is `>= min_score` (grown by `margin` × its
/// width/height on each side, clipped to the frame; boxes smaller than a
/// pixel after clipping are skipped) or the whole frame if there is none;
/// resizes it bilinearly to `width × height` and normalises like
/// `resize_normalize` (`bgr` included). Output: `[nchw, (frame), (boxes), other
/// tensors..]`.
///
/// With `rotate_class = k` the first tensor must be a classification result `[2]`
/// (`softmax_top1`'s `(class, confidence)`): when its class is `k` the crop is rotated
/// by 180° (PP-OCR's text direction classifier says "180" with class 1). That tensor is
/// consumed.
pub(crate) struct CropResize {
    out: (usize, usize),
    norm: Norm,
    margin: f32,
    min_score: f32,
    keep_frame: bool,
    keep_boxes: bool,
    bgr: bool,
    rotate_class: Option<i64>,
    resampler: Resampler,
}

impl CropResize {
    const NAME: &'static str = "crop_resize";

    /// The model input it writes: `[1, 3, height, width]`.
    pub(crate) fn output_shape(params: &toml::Table) -> Option<Vec<usize>> {
        let p: CropResizeParams = parse(Self::NAME, params).ok()?;
        Some(vec![1, 3, p.height, p.width])
    }

    pub(crate) fn build(params: &toml::Table) -> Result<Box<dyn CpuStage>, OpError> {
        let p: CropResizeParams = parse(Self::NAME, params)?;
        check_size(Self::NAME, p.width, p.height)?;
        if !(p.margin.is_finite() && p.margin > -0.5) {
            return Err(bad(
                Self::NAME,
                "margin",
                "a number > -0.5 (fraction of the box size added on each side)",
            ));
        }
        if p.min_score.is_nan() {
            return Err(bad(Self::NAME, "min_score", "a number"));
        }
        Ok(Box::new(Self {
            out: (p.height, p.width),
            norm: make_norm(Self::NAME, p.mean, p.std)?,
            margin: p.margin,
            min_score: p.min_score,
            keep_frame: p.keep_frame,
            keep_boxes: p.keep_boxes,
            bgr: p.bgr,
            rotate_class: p.rotate_class,
            resampler: Resampler::default(),
        }))
    }

    /// The crop region for the best box, or `None`.
    fn pick(&self, boxes: &[f32], (h, w): (usize, usize)) -> Option<Region> {
        let mut best: Option<(f32, Region)> = None;
        for b in boxes.chunks_exact(6) {
            let score = b[4];
            if score.is_nan()
                || score < self.min_score
                || best.is_some_and(|(s, _)| s >= score)
                || b[..4].iter().any(|v| !v.is_finite())
            {
                continue;
            }
            let (bw, bh) = (b[2] - b[0], b[3] - b[1]);
            let r: Region = [
                (b[0] - self.margin * bw).max(0.0),
                (b[1] - self.margin * bh).max(0.0),
                (b[2] + self.margin * bw).min(w as f32),
                (b[3] + self.margin * bh).min(h as f32),
            ];
            if r[2] - r[0] >= 1.0 && r[3] - r[1] >= 1.0 {
                best = Some((score, r));
            }
        }
        best.map(|(_, r)| r)
    }
}

impl CpuStage for CropResize {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn run(&mut self, mut input: Data) -> Result<Data, OpError> {
        let rotate = match self.rotate_class {
            None => false,
            Some(k) => {
                let class = match input.first().map(|t| (t.shape(), t)) {
                    Some(([2], t)) => t.iter().next().copied().unwrap_or(f32::NAN),
                    other => {
                        return Err(bad_input(
                            Self::NAME,
                            format!(
                                "rotate_class is set: expected a classification result [2] first, got {}",
                                other.map_or("no tensors".to_string(), |(_, t)| shape_str(t))
                            ),
                        ));
                    }
                };
                input.remove(0);
                class == k as f32
            }
        };
        let shapes = || input.iter().map(shape_str).collect::<Vec<_>>().join(", ");
        let fi = input.iter().position(is_frame).ok_or_else(|| {
            bad_input(
                Self::NAME,
                format!(
                    "expected a frame [H, W, 3] among the tensors, got [{}]",
                    shapes()
                ),
            )
        })?;
        let bi = input.iter().position(is_boxes).ok_or_else(|| {
            bad_input(
                Self::NAME,
                format!(
                    "expected boxes [N, 6] among the tensors, got [{}]",
                    shapes()
                ),
            )
        })?;
        let dims = frame_dims(Self::NAME, &input[fi])?;
        let region = self
            .pick(&contiguous(&input[bi]), dims)
            .unwrap_or(whole(dims.0, dims.1));
        let (oh, ow) = self.out;
        let mut out = vec![0.0f32; 3 * oh * ow];
        self.resampler.resample_nchw(
            &contiguous(&input[fi]),
            dims,
            region,
            self.out,
            &self.norm,
            &mut out,
        );
        if self.bgr {
            swap_rb(&mut out);
        }
        if rotate {
            rotate180(&mut out);
        }
        let nchw =
            ArrayD::from_shape_vec(IxDyn(&[1, 3, oh, ow]), out).expect("shape matches length");

        // Take the frame and boxes out (higher index first), keep the rest in order.
        let (frame, boxes) = if fi > bi {
            let f = input.remove(fi);
            (f, input.remove(bi))
        } else {
            let b = input.remove(bi);
            (input.remove(fi), b)
        };
        let mut head = Vec::with_capacity(3);
        head.push(nchw);
        if self.keep_frame {
            head.push(frame);
        }
        if self.keep_boxes {
            head.push(boxes);
        }
        input.splice(0..0, head);
        Ok(input)
    }
}

// ---------------------------------------------------------------- nms

fn default_iou() -> f32 {
    0.45
}
fn default_score() -> f32 {
    0.25
}
fn default_max_boxes() -> usize {
    100
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NmsParams {
    #[serde(default = "default_iou")]
    iou_threshold: f32,
    #[serde(default = "default_score")]
    score_threshold: f32,
    #[serde(default = "default_max_boxes")]
    max_boxes: usize,
    #[serde(default)]
    class_agnostic: bool,
}

/// `nms`: `[boxes [N,6] (or [1,N,6]), rest..]` → `[kept [M,6], rest..]`.
/// Drops boxes with score `< score_threshold`, then greedily keeps the
/// highest-scoring box and suppresses the boxes of the same class (any class
/// with `class_agnostic`) whose IoU with it is `> iou_threshold`. Kept boxes
/// are sorted by descending score, at most `max_boxes`.
pub(crate) struct Nms {
    iou: f32,
    score: f32,
    max_boxes: usize,
    agnostic: bool,
    order: Vec<usize>,
    kept: Vec<usize>,
}

impl Nms {
    const NAME: &'static str = "nms";

    pub(crate) fn build(params: &toml::Table) -> Result<Box<dyn CpuStage>, OpError> {
        let p: NmsParams = parse(Self::NAME, params)?;
        if !(0.0..=1.0).contains(&p.iou_threshold) {
            return Err(bad(
                Self::NAME,
                "iou_threshold",
                format!("a number in 0..=1, got {}", p.iou_threshold),
            ));
        }
        if p.score_threshold.is_nan() {
            return Err(bad(Self::NAME, "score_threshold", "a number"));
        }
        Ok(Box::new(Self {
            iou: p.iou_threshold,
            score: p.score_threshold,
            max_boxes: p.max_boxes,
            agnostic: p.class_agnostic,
            order: Vec::new(),
            kept: Vec::new(),
        }))
    }
}

/// Intersection over union of two `(x1, y1, x2, y2, ..)` boxes.
pub(crate) fn iou(a: &[f32], b: &[f32]) -> f32 {
    let area = |r: &[f32]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

impl CpuStage for Nms {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn run(&mut self, mut input: Data) -> Result<Data, OpError> {
        first(Self::NAME, &input, "boxes [N, 6]")?;
        let n = match input[0].shape() {
            [n, 6] | [1, n, 6] => *n,
            _ => {
                return Err(bad_input(
                    Self::NAME,
                    format!(
                        "expected boxes [N, 6] first, got shape {}",
                        shape_str(&input[0])
                    ),
                ));
            }
        };
        let data = contiguous(&input[0]);
        let row = |i: usize| &data[i * 6..i * 6 + 6];
        self.order.clear();
        self.order
            .extend((0..n).filter(|&i| row(i)[4] >= self.score));
        // Equal scores keep their input order.
        self.order
            .sort_unstable_by(|&a, &b| row(b)[4].total_cmp(&row(a)[4]).then(a.cmp(&b)));
        self.kept.clear();
        for &i in &self.order {
            if self.kept.len() >= self.max_boxes {
                break;
            }
            let r = row(i);
            let suppressed = self
                .kept
                .iter()
                .any(|&k| (self.agnostic || row(k)[5] == r[5]) && iou(row(k), r) > self.iou);
            if !suppressed {
                self.kept.push(i);
            }
        }
        let mut out = Vec::with_capacity(self.kept.len() * 6);
        for &k in &self.kept {
            out.extend_from_slice(row(k));
        }
        drop(data);
        input[0] = ArrayD::from_shape_vec(IxDyn(&[self.kept.len(), 6]), out)
            .expect("shape matches length");
        Ok(input)
    }
}

// ---------------------------------------------------------------- decode_boxes

fn default_true() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecodeBoxesParams {
    anchors: Vec<[f32; 2]>,
    classes: usize,
    stride: f32,
    #[serde(default = "default_score")]
    score_threshold: f32,
    #[serde(default = "default_true")]
    scale_to_frame: bool,
}

/// `decode_boxes`: a YOLO (v2/v3)-style head. Input `[grid, rest..]` with
/// grid `[1, A*(5+C), Gh, Gw]`; channel `a*(5+C) + k` holds, for anchor `a`,
/// `k = 0..4`: `tx, ty, tw, th, objectness`, then `C` class logits. A cell
/// `(gx, gy)` decodes to centre `((gx + σ(tx)) * stride, (gy + σ(ty)) *
/// stride)`, size `(anchor_w * e^tw, anchor_h * e^th)` (anchors in model-input
/// pixels), score `σ(obj) * σ(max class logit)` (just `σ(obj)` when
/// `classes = 0`), class the arg-max. Boxes with score `< score_threshold`
/// are dropped; the rest are clipped to the model input
/// `(Gw*stride) × (Gh*stride)` and, with `scale_to_frame` and a frame
/// `[H, W, 3]` among the carried tensors, scaled to that frame (matching the
/// stretch of `resize_normalize`). Output `[boxes [N,6], rest..]`, unsorted
/// and not suppressed (follow with `nms`).
pub(crate) struct DecodeBoxes {
    anchors: Vec<[f32; 2]>,
    classes: usize,
    stride: f32,
    score: f32,
    scale_to_frame: bool,
    last_len: usize,
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl DecodeBoxes {
    const NAME: &'static str = "decode_boxes";

    pub(crate) fn build(params: &toml::Table) -> Result<Box<dyn CpuStage>, OpError> {
        let p: DecodeBoxesParams = parse(Self::NAME, params)?;
        if p.anchors.is_empty()
            || p.anchors
                .iter()
                .flatten()
                .any(|v| !(v.is_finite() && *v > 0.0))
        {
            return Err(bad(
                Self::NAME,
                "anchors",
                "a non-empty list of [w, h] pairs of positive numbers",
            ));
        }
        if !(p.stride.is_finite() && p.stride > 0.0) {
            return Err(bad(
                Self::NAME,
                "stride",
                format!("a positive number, got {}", p.stride),
            ));
        }
        if p.classes > 1 << 20 {
            return Err(bad(Self::NAME, "classes", "a class count below 2^20"));
        }
        if p.score_threshold.is_nan() {
            return Err(bad(Self::NAME, "score_threshold", "a number"));
        }
        Ok(Box::new(Self {
            anchors: p.anchors,
            classes: p.classes,
            stride: p.stride,
            score: p.score_threshold,
            scale_to_frame: p.scale_to_frame,
            last_len: 0,
        }))
    }
}

impl CpuStage for DecodeBoxes {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn run(&mut self, mut input: Data) -> Result<Data, OpError> {
        first(Self::NAME, &input, "a grid [1, A*(5+C), Gh, Gw]")?;
        let per = 5 + self.classes;
        let channels = self.anchors.len() * per;
        let (gh, gw) = match input[0].shape() {
            [1, c, gh, gw] if *c == channels => (*gh, *gw),
            s => {
                return Err(bad_input(
                    Self::NAME,
                    format!(
                        "expected a grid [1, {channels}, Gh, Gw] ({} anchors × (5 + {} classes)), got shape {s:?}",
                        self.anchors.len(),
                        self.classes
                    ),
                ));
            }
        };
        let (in_w, in_h) = (gw as f32 * self.stride, gh as f32 * self.stride);
        let (sx, sy) = match input[1..].iter().find(|t| is_frame(t)) {
            Some(f) if self.scale_to_frame => {
                (f.shape()[1] as f32 / in_w, f.shape()[0] as f32 / in_h)
            }
            _ => (1.0, 1.0),
        };
        let data = contiguous(&input[0]);
        let plane = gh * gw;
        let mut out = Vec::with_capacity(self.last_len);
        for (a, &[aw, ah]) in self.anchors.iter().enumerate() {
            let ch = |k: usize, cell: usize| data[(a * per + k) * plane + cell];
            for gy in 0..gh {
                for gx in 0..gw {
                    let cell = gy * gw + gx;
                    let obj = sigmoid(ch(4, cell));
                    // score <= obj, so this skips most cells cheaply (NaN is skipped too).
                    if obj.is_nan() || obj < self.score {
                        continue;
                    }
                    let (class, score) = if self.classes == 0 {
                        (0, obj)
                    } else {
                        let (mut best, mut best_v) = (0, f32::NEG_INFINITY);
                        for c in 0..self.classes {
                            let v = ch(5 + c, cell);
                            if v > best_v {
                                (best, best_v) = (c, v);
                            }
                        }
                        (best, obj * sigmoid(best_v))
                    };
                    if score.is_nan() || score < self.score {
                        continue;
                    }
                    let cx = (gx as f32 + sigmoid(ch(0, cell))) * self.stride;
                    let cy = (gy as f32 + sigmoid(ch(1, cell))) * self.stride;
                    let w = aw * ch(2, cell).min(20.0).exp();
                    let h = ah * ch(3, cell).min(20.0).exp();
                    out.extend_from_slice(&[
                        (cx - w / 2.0).clamp(0.0, in_w) * sx,
                        (cy - h / 2.0).clamp(0.0, in_h) * sy,
                        (cx + w / 2.0).clamp(0.0, in_w) * sx,
                        (cy + h / 2.0).clamp(0.0, in_h) * sy,
                        score,
                        class as f32,
                    ]);
                }
            }
        }
        drop(data);
        self.last_len = out.len();
        let n = out.len() / 6;
        input[0] = ArrayD::from_shape_vec(IxDyn(&[n, 6]), out).expect("shape matches length");
        Ok(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build;
    use ndarray::{Array, ArrayD};

    fn t(shape: &[usize], v: Vec<f32>) -> ArrayD<f32> {
        ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()
    }

    fn stage(name: &str, params: &str) -> Box<dyn CpuStage> {
        build(name, &params.parse().unwrap()).unwrap()
    }

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-4, "{a:?} vs {b:?}");
        }
    }

    /// A 2×2 frame: pixel (y, x) has RGB (10*(2y+x), 100, 200).
    fn frame2() -> ArrayD<f32> {
        t(
            &[2, 2, 3],
            vec![
                0., 100., 200., 10., 100., 200., 20., 100., 200., 30., 100., 200.,
            ],
        )
    }

    #[test]
    fn resize_normalize_same_size_normalises_to_nchw() {
        let mut s = stage(
            "resize_normalize",
            "width = 2\nheight = 2\nmean = [0, 100, 100]\nstd = [10, 1, 50]",
        );
        let out = s.run(vec![frame2()]).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].shape(), &[1, 3, 2, 2]);
        close(
            out[0].as_slice().unwrap(),
            &[0., 1., 2., 3., 0., 0., 0., 0., 2., 2., 2., 2.],
        );
    }

    #[test]
    fn resize_normalize_downscales_bilinearly_and_keeps_frame() {
        let mut s = stage(
            "resize_normalize",
            "width = 1\nheight = 1\nkeep_frame = true",
        );
        let extra = t(&[1], vec![7.0]);
        let out = s.run(vec![frame2(), extra.clone()]).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].shape(), &[1, 3, 1, 1]);
        // 2×2 -> 1×1 samples the centre: the mean of the four pixels.
        close(
            out[0].as_slice().unwrap(),
            &[15. / 255., 100. / 255., 200. / 255.],
        );
        assert_eq!(out[1], frame2());
        assert_eq!(out[2], extra);
    }

    #[test]
    fn resize_normalize_upscales() {
        // 1×2 frame, red 0 and 10 -> 1×4: 0, 2.5, 7.5, 10.
        let f = t(&[1, 2, 3], vec![0., 0., 0., 10., 0., 0.]);
        let mut s = stage("resize_normalize", "width = 4\nheight = 1\nstd = [1, 1, 1]");
        let out = s.run(vec![f]).unwrap();
        close(&out[0].as_slice().unwrap()[..4], &[0., 2.5, 7.5, 10.]);
        // Non-standard layout gives the same result.
        let f = t(&[2, 1, 3], vec![0., 0., 0., 10., 0., 0.]);
        let f = f.permuted_axes(IxDyn(&[1, 0, 2]));
        let out2 = s.run(vec![f]).unwrap();
        assert_eq!(out, out2);
    }

    #[test]
    fn resize_normalize_rejects_bad_input_and_params() {
        let mut s = stage("resize_normalize", "width = 2\nheight = 2");
        for bad in [
            vec![],
            vec![t(&[2, 2], vec![0.; 4])],
            vec![t(&[0, 2, 3], vec![])],
        ] {
            assert!(matches!(s.run(bad), Err(OpError::BadInput { .. })));
        }
        for (params, param) in [
            ("width = 0\nheight = 2", "width"),
            ("width = 2\nheight = 2\nstd = [1, 0, 1]", "std"),
            ("width = 2", "height"),
            ("width = 2\nheight = 2\nkeep = true", "keep"),
        ] {
            match build("resize_normalize", &params.parse().unwrap()) {
                Err(OpError::BadParam {
                    function, param: p, ..
                }) => {
                    assert_eq!((function.as_str(), p.as_str()), ("resize_normalize", param))
                }
                other => panic!("{params}: {:?}", other.err()),
            }
        }
    }

    /// 4×4 frame whose red channel is 4y + x.
    fn frame4() -> ArrayD<f32> {
        Array::from_shape_fn(IxDyn(&[4, 4, 3]), |d| {
            if d[2] == 0 {
                (4 * d[0] + d[1]) as f32
            } else {
                0.0
            }
        })
    }

    #[test]
    fn crop_resize_crops_the_top_box() {
        let mut s = stage(
            "crop_resize",
            "width = 2\nheight = 2\nstd = [1, 1, 1]\nkeep_boxes = true",
        );
        let boxes = t(
            &[2, 6],
            vec![0., 0., 4., 4., 0.5, 1., 1., 1., 3., 3., 0.9, 0.],
        );
        // Boxes before the frame: found by shape.
        let out = s
            .run(vec![boxes.clone(), frame4(), t(&[1], vec![3.])])
            .unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].shape(), &[1, 3, 2, 2]);
        // Centre 2×2 pixels: red 5, 6, 9, 10.
        close(&out[0].as_slice().unwrap()[..4], &[5., 6., 9., 10.]);
        assert_eq!(out[1], boxes);
        assert_eq!(out[2], t(&[1], vec![3.]));
    }

    #[test]
    fn crop_resize_bgr_and_rotation_by_class() {
        let boxes = t(&[1, 6], vec![1., 1., 3., 3., 0.9, 0.]);
        // bgr: the red plane (5, 6, 9, 10) comes last.
        let mut s = stage(
            "crop_resize",
            "width = 2\nheight = 2\nstd = [1, 1, 1]\nbgr = true",
        );
        let out = s.run(vec![frame4(), boxes.clone()]).unwrap();
        let v = out[0].as_slice().unwrap();
        close(&v[8..], &[5., 6., 9., 10.]);
        close(&v[..4], &[0., 0., 0., 0.]);
        // rotate_class = 1: class 1 rotates by 180°, class 0 and -1 do not; the
        // classification result is consumed.
        let mut s = stage(
            "crop_resize",
            "width = 2\nheight = 2\nstd = [1, 1, 1]\nrotate_class = 1",
        );
        let flip = t(&[2], vec![1., 0.97]);
        let out = s
            .run(vec![flip, frame4(), boxes.clone(), t(&[1], vec![7.])])
            .unwrap();
        assert_eq!(out.len(), 2, "{out:?}");
        close(&out[0].as_slice().unwrap()[..4], &[10., 9., 6., 5.]);
        assert_eq!(out[1], t(&[1], vec![7.]));
        for class in [0., -1.] {
            let out = s
                .run(vec![t(&[2], vec![class, 0.5]), frame4(), boxes.clone()])
                .unwrap();
            close(&out[0].as_slice().unwrap()[..4], &[5., 6., 9., 10.]);
        }
        let err = s.run(vec![frame4(), boxes]).unwrap_err();
        assert!(err.to_string().contains("rotate_class is set"), "{err}");
    }

    #[test]
    fn resize_normalize_bgr_swaps_planes() {
        let mut s = stage(
            "resize_normalize",
            "width = 2\nheight = 2\nstd = [1, 1, 1]\nbgr = true",
        );
        let out = s.run(vec![frame2()]).unwrap();
        let v = out[0].as_slice().unwrap();
        close(&v[..4], &[200., 200., 200., 200.]);
        close(&v[8..], &[0., 10., 20., 30.]);
    }

    #[test]
    fn crop_resize_margin_and_min_score() {
        // Box (1,1)-(3,3) grown by 50% per side -> (0,0)-(4,4), the whole frame.
        let mut s = stage(
            "crop_resize",
            "width = 2\nheight = 2\nstd = [1, 1, 1]\nmargin = 0.5",
        );
        let boxes = t(&[1, 6], vec![1., 1., 3., 3., 0.9, 0.]);
        let out = s.run(vec![frame4(), boxes.clone()]).unwrap();
        // 4×4 -> 2×2 averages 2×2 blocks: 2.5, 4.5, 10.5, 12.5.
        close(&out[0].as_slice().unwrap()[..4], &[2.5, 4.5, 10.5, 12.5]);
        // Below min_score: the whole frame, same result.
        let mut s = stage(
            "crop_resize",
            "width = 2\nheight = 2\nstd = [1, 1, 1]\nmin_score = 0.95\nkeep_frame = true",
        );
        let out = s.run(vec![frame4(), boxes]).unwrap();
        close(&out[0].as_slice().unwrap()[..4], &[2.5, 4.5, 10.5, 12.5]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1], frame4());
    }

    #[test]
    fn crop_resize_empty_or_degenerate_boxes_use_the_whole_frame() {
        let mut s = stage("crop_resize", "width = 2\nheight = 2\nstd = [1, 1, 1]");
        let whole = [2.5, 4.5, 10.5, 12.5];
        let out = s.run(vec![frame4(), t(&[0, 6], vec![])]).unwrap();
        close(&out[0].as_slice().unwrap()[..4], &whole);
        // Outside the frame, or NaN: skipped.
        let boxes = t(
            &[2, 6],
            vec![10., 10., 20., 20., 0.9, 0., f32::NAN, 0., 2., 2., 0.8, 0.],
        );
        let out = s.run(vec![frame4(), boxes]).unwrap();
        close(&out[0].as_slice().unwrap()[..4], &whole);
    }

    #[test]
    fn crop_resize_needs_frame_and_boxes() {
        let mut s = stage("crop_resize", "width = 2\nheight = 2");
        assert!(matches!(
            s.run(vec![frame4()]),
            Err(OpError::BadInput { .. })
        ));
        assert!(matches!(
            s.run(vec![t(&[0, 6], vec![])]),
            Err(OpError::BadInput { .. })
        ));
        assert!(matches!(s.run(vec![]), Err(OpError::BadInput { .. })));
    }

    #[test]
    fn iou_of_hand_made_boxes() {
        close(&[iou(&[0., 0., 2., 2.], &[1., 1., 3., 3.])], &[1. / 7.]);
        close(&[iou(&[0., 0., 2., 2.], &[0., 0., 2., 2.])], &[1.]);
        close(&[iou(&[0., 0., 1., 1.], &[2., 2., 3., 3.])], &[0.]);
        close(&[iou(&[0., 0., 0., 0.], &[0., 0., 0., 0.])], &[0.]);
    }

    #[test]
    fn nms_is_per_class_greedy() {
        let boxes = t(
            &[5, 6],
            vec![
                0., 0., 10., 10., 0.8, 0., // A
                1., 1., 10., 10., 0.9, 0., // B: IoU(A, B) = 0.81 -> suppresses A
                1., 1., 10., 10., 0.7, 1., // C: other class, kept
                20., 20., 30., 30., 0.6, 0., // D: disjoint, kept
                0., 0., 10., 10., 0.1, 0., // E: below score threshold
            ],
        );
        let mut s = stage("nms", "");
        let out = s.run(vec![boxes.clone(), t(&[1], vec![1.])]).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].shape(), &[3, 6]);
        assert_eq!(
            out[0].as_slice().unwrap(),
            &[
                1., 1., 10., 10., 0.9, 0., 1., 1., 10., 10., 0.7, 1., 20., 20., 30., 30., 0.6, 0.
            ]
        );
        let mut s = stage("nms", "class_agnostic = true\nmax_boxes = 5");
        let out = s.run(vec![boxes.clone()]).unwrap();
        assert_eq!(out[0].shape(), &[2, 6]);
        assert_eq!(out[0][[1, 4]], 0.6);
        let mut s = stage("nms", "max_boxes = 1\niou_threshold = 0.9");
        let out = s.run(vec![boxes.clone()]).unwrap();
        assert_eq!(out[0].as_slice().unwrap(), &[1., 1., 10., 10., 0.9, 0.]);
        // IoU 0.81 is not above 0.9: A survives.
        let mut s = stage("nms", "iou_threshold = 0.9\nscore_threshold = 0.5");
        assert_eq!(s.run(vec![boxes.clone()]).unwrap()[0].shape(), &[4, 6]);
        // Batched form and empty input.
        let batched = boxes.into_shape_with_order(IxDyn(&[1, 5, 6])).unwrap();
        assert_eq!(s.run(vec![batched]).unwrap()[0].shape(), &[4, 6]);
        assert_eq!(s.run(vec![t(&[0, 6], vec![])]).unwrap()[0].shape(), &[0, 6]);
    }

    #[test]
    fn nms_rejects_bad_input_and_params() {
        let mut s = stage("nms", "");
        assert!(matches!(
            s.run(vec![t(&[2, 5], vec![0.; 10])]),
            Err(OpError::BadInput { .. })
        ));
        assert!(matches!(s.run(vec![]), Err(OpError::BadInput { .. })));
        assert!(matches!(
            build("nms", &"iou_threshold = 1.5".parse().unwrap()),
            Err(OpError::BadParam { .. })
        ));
    }

    /// A grid for 2 anchors, 2 classes, Gh = 2, Gw = 3, all objectness very
    /// low except anchor 1 at cell (gy 1, gx 2).
    fn grid() -> ArrayD<f32> {
        let (a_n, per, gh, gw) = (2, 7, 2, 3);
        let mut g = Array::zeros(IxDyn(&[1, a_n * per, gh, gw]));
        for a in 0..a_n {
            for y in 0..gh {
                for x in 0..gw {
                    g[[0, a * per + 4, y, x]] = -10.0;
                }
            }
        }
        let set = |g: &mut ArrayD<f32>, k: usize, v: f32| g[[0, per + k, 1, 2]] = v;
        set(&mut g, 0, 0.0); // σ = 0.5
        set(&mut g, 1, 0.0);
        set(&mut g, 2, 2f32.ln()); // w = 2 * anchor w
        set(&mut g, 3, 0.0);
        set(&mut g, 4, 20.0); // objectness ≈ 1
        set(&mut g, 5, -20.0); // class 0
        set(&mut g, 6, 20.0); // class 1 wins
        g
    }

    #[test]
    fn decode_boxes_decodes_a_hand_made_grid() {
        let params = "anchors = [[4, 4], [6, 10]]\nclasses = 2\nstride = 8";
        let mut s = stage("decode_boxes", params);
        let out = s.run(vec![grid()]).unwrap();
        assert_eq!(out[0].shape(), &[1, 6]);
        // centre ((2 + .5) * 8, (1 + .5) * 8) = (20, 12), size (12, 10); input 24×16.
        close(out[0].as_slice().unwrap(), &[14., 7., 24., 16., 1., 1.]);

        // With a carried 48×32 frame: scaled ×2; the frame is passed along.
        let frame = ArrayD::zeros(IxDyn(&[32, 48, 3]));
        let out = s.run(vec![grid(), frame.clone()]).unwrap();
        close(out[0].as_slice().unwrap(), &[28., 14., 48., 32., 1., 1.]);
        assert_eq!(out[1], frame);
        let mut s = stage("decode_boxes", &format!("{params}\nscale_to_frame = false"));
        let out = s.run(vec![grid(), frame]).unwrap();
        close(out[0].as_slice().unwrap(), &[14., 7., 24., 16., 1., 1.]);

        // A threshold of 0 keeps every cell.
        let mut s = stage("decode_boxes", &format!("{params}\nscore_threshold = 0.0"));
        assert_eq!(s.run(vec![grid()]).unwrap()[0].shape(), &[12, 6]);
    }

    #[test]
    fn decode_boxes_without_classes_uses_objectness() {
        let mut g = Array::zeros(IxDyn(&[1, 5, 1, 1]));
        g[[0, 4, 0, 0]] = 0.0; // σ = 0.5
        let mut s = stage(
            "decode_boxes",
            "anchors = [[2, 2]]\nclasses = 0\nstride = 4",
        );
        let out = s.run(vec![g]).unwrap();
        close(out[0].as_slice().unwrap(), &[1., 1., 3., 3., 0.5, 0.]);
    }

    #[test]
    fn decode_boxes_rejects_wrong_grid() {
        let mut s = stage(
            "decode_boxes",
            "anchors = [[4, 4]]\nclasses = 2\nstride = 8",
        );
        let err = s
            .run(vec![ArrayD::zeros(IxDyn(&[1, 8, 2, 2]))])
            .unwrap_err();
        assert!(err.to_string().contains("[1, 7, Gh, Gw]"), "{err}");
        assert!(matches!(
            build(
                "decode_boxes",
                &"anchors = []\nclasses = 1\nstride = 8".parse().unwrap()
            ),
            Err(OpError::BadParam { .. })
        ));
    }
}
