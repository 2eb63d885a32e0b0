//! `decode_yolov8`: the anchor-free head of YOLOv8 / YOLO11 exports
//! (ultralytics `export(format="onnx")`), whose output is `[1, 4 + C, N]`:
//! per candidate a centre, a size and `C` class scores, already through a
//! sigmoid, in model-input pixels.

use ndarray::{ArrayD, IxDyn};
use serde::Deserialize;

use crate::params::{bad, bad_input, first, is_frame, parse};
use crate::vision::contiguous;
use crate::{CpuStage, Data, OpError};

fn default_score() -> f32 {
    0.25
}
fn default_true() -> bool {
    true
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Layout {
    /// `[1, 4 + C, N]`, as ultralytics exports it.
    ChannelsFirst,
    /// `[1, N, 4 + C]` (a transposed export).
    ChannelsLast,
}

fn default_layout() -> Layout {
    Layout::ChannelsFirst
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// The model input's width and height in pixels (what the boxes are in).
    width: usize,
    height: usize,
    /// The class count; checked against the output when given.
    classes: Option<usize>,
    #[serde(default = "default_score")]
    score_threshold: f32,
    #[serde(default = "default_true")]
    scale_to_frame: bool,
    #[serde(default = "default_layout")]
    layout: Layout,
}

/// Input `[out, rest..]` with `out` `[1, 4 + C, N]` (or `[1, N, 4 + C]`
/// with `layout = "channels_last"`): candidate `i` is the box centred at
/// `(cx, cy)` of size `(w, h)` (model-input pixels) with class scores
/// `s_0..s_{C-1}`; its score is the largest `s_c`, its class that `c`.
/// Candidates scoring below `score_threshold` are dropped, the rest clipped
/// to the model input `width × height` and, with `scale_to_frame` and a
/// frame `[H, W, 3]` among the carried tensors, scaled to it (matching
/// `resize_normalize`'s stretch). Output `[boxes [M, 6], rest..]`, unsorted
/// and not suppressed (follow with `nms`).
pub(crate) struct DecodeYolov8 {
    width: f32,
    height: f32,
    classes: Option<usize>,
    score: f32,
    scale_to_frame: bool,
    layout: Layout,
    last_len: usize,
}

impl DecodeYolov8 {
    const NAME: &'static str = "decode_yolov8";

    pub(crate) fn build(params: &toml::Table) -> Result<Box<dyn CpuStage>, OpError> {
        let p: Params = parse(Self::NAME, params)?;
        for (name, v) in [("width", p.width), ("height", p.height)] {
            if v == 0 {
                return Err(bad(Self::NAME, name, "a positive pixel count"));
            }
        }
        if p.classes == Some(0) || p.classes.is_some_and(|c| c > 1 << 20) {
            return Err(bad(Self::NAME, "classes", "a class count in 1..2^20"));
        }
        if p.score_threshold.is_nan() {
            return Err(bad(Self::NAME, "score_threshold", "a number"));
        }
        Ok(Box::new(Self {
            width: p.width as f32,
            height: p.height as f32,
            classes: p.classes,
            score: p.score_threshold,
            scale_to_frame: p.scale_to_frame,
            layout: p.layout,
            last_len: 0,
        }))
    }

    /// `(rows, candidates)` of the head, rows = 4 + C.
    fn dims(&self, shape: &[usize]) -> Result<(usize, usize), OpError> {
        let (rows, n) = match (self.layout, shape) {
            (Layout::ChannelsFirst, [1, r, n]) => (*r, *n),
            (Layout::ChannelsLast, [1, n, r]) => (*r, *n),
            _ => {
                let want = match self.layout {
                    Layout::ChannelsFirst => "[1, 4 + C, N]",
                    Layout::ChannelsLast => "[1, N, 4 + C] (layout = \"channels_last\")",
                };
                return Err(bad_input(
                    Self::NAME,
                    format!("expected a head output {want}, got shape {shape:?}"),
                ));
            }
        };
        if rows < 5 {
            return Err(bad_input(
                Self::NAME,
                format!("a head of {rows} rows has no class scores (need 4 + C, C ≥ 1)"),
            ));
        }
        if let Some(c) = self.classes
            && c + 4 != rows
        {
            return Err(bad_input(
                Self::NAME,
                format!(
                    "classes = {c} wants {} rows (4 + C), the output has {rows} (shape {shape:?}); \
                     set classes = {} or leave it out",
                    c + 4,
                    rows - 4
                ),
            ));
        }
        Ok((rows, n))
    }
}

impl CpuStage for DecodeYolov8 {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn run(&mut self, mut input: Data) -> Result<Data, OpError> {
        first(Self::NAME, &input, "a head output [1, 4 + C, N]")?;
        let (rows, n) = self.dims(input[0].shape())?;
        let (sx, sy) = match input[1..].iter().find(|t| is_frame(t)) {
            Some(f) if self.scale_to_frame => (
                f.shape()[1] as f32 / self.width,
                f.shape()[0] as f32 / self.height,
            ),
            _ => (1.0, 1.0),
        };
        let data = contiguous(&input[0]);
        let at = |row: usize, i: usize| match self.layout {
            Layout::ChannelsFirst => data[row * n + i],
            Layout::ChannelsLast => data[i * rows + row],
        };
        let mut out = Vec::with_capacity(self.last_len);
        for i in 0..n {
            let (mut class, mut score) = (0, f32::NEG_INFINITY);
            for c in 0..rows - 4 {
                let v = at(4 + c, i);
                if v > score {
                    (class, score) = (c, v);
                }
            }
            // NaN scores are dropped too.
            if score.is_nan() || score < self.score {
                continue;
            }
            let (cx, cy, w, h) = (at(0, i), at(1, i), at(2, i), at(3, i));
            out.extend_from_slice(&[
                (cx - w / 2.0).clamp(0.0, self.width) * sx,
                (cy - h / 2.0).clamp(0.0, self.height) * sy,
                (cx + w / 2.0).clamp(0.0, self.width) * sx,
                (cy + h / 2.0).clamp(0.0, self.height) * sy,
                score,
                class as f32,
            ]);
        }
        drop(data);
        self.last_len = out.len();
        let m = out.len() / 6;
        input[0] = ArrayD::from_shape_vec(IxDyn(&[m, 6]), out).expect("shape matches length");
        Ok(input)
    }
}

#[cfg(test)]
mod tests {
    use crate::build;
    use ndarray::{ArrayD, IxDyn};

    fn stage(params: &str) -> Box<dyn crate::CpuStage> {
        build("decode_yolov8", &params.parse().unwrap()).unwrap()
    }

    /// Two classes, three candidates (columns): a box of class 1 at
    /// (32, 16) size 20×10 score 0.9; one below threshold; one of class 0
    /// reaching past the input's right edge.
    fn head() -> Vec<f32> {
        vec![
            32.0, 10.0, 60.0, // cx
            16.0, 10.0, 20.0, // cy
            20.0, 4.0, 20.0, // w
            10.0, 4.0, 10.0, // h
            0.1, 0.1, 0.8, // class 0
            0.9, 0.2, 0.3, // class 1
        ]
    }

    #[test]
    fn decodes_clips_and_scales_to_the_frame() {
        let mut s = stage("width = 64\nheight = 32\nscore_threshold = 0.5");
        let grid = ArrayD::from_shape_vec(IxDyn(&[1, 6, 3]), head()).unwrap();
        let frame = ArrayD::zeros(IxDyn(&[64, 128, 3]));
        let out = s.run(vec![grid, frame]).unwrap();
        assert_eq!(out.len(), 2, "the frame travels on");
        assert_eq!(out[0].shape(), &[2, 6]);
        let rows: Vec<f32> = out[0].iter().copied().collect();
        // The frame is 2× the input both ways.
        assert_eq!(&rows[..6], &[44.0, 22.0, 84.0, 42.0, 0.9, 1.0]);
        // (50, 15)–(70, 25) clipped to x ≤ 64, then × 2.
        assert_eq!(&rows[6..], &[100.0, 30.0, 128.0, 50.0, 0.8, 0.0]);
    }

    #[test]
    fn channels_last_reads_the_same_boxes() {
        let h = head();
        let mut t = vec![0.0; 18];
        for r in 0..6 {
            for i in 0..3 {
                t[i * 6 + r] = h[r * 3 + i];
            }
        }
        let mut first = stage("width = 64\nheight = 32\nscale_to_frame = false");
        let mut last =
            stage("width = 64\nheight = 32\nscale_to_frame = false\nlayout = \"channels_last\"");
        let a = first
            .run(vec![
                ArrayD::from_shape_vec(IxDyn(&[1, 6, 3]), h.clone()).unwrap(),
            ])
            .unwrap();
        let b = last
            .run(vec![ArrayD::from_shape_vec(IxDyn(&[1, 3, 6]), t).unwrap()])
            .unwrap();
        assert_eq!(a[0], b[0]);
        assert_eq!(a[0].shape(), &[2, 6]);
    }

    #[test]
    fn wrong_shapes_and_params_are_named() {
        let mut s = stage("width = 64\nheight = 32\nclasses = 80");
        let grid = ArrayD::from_shape_vec(IxDyn(&[1, 6, 3]), head()).unwrap();
        let err = s.run(vec![grid]).unwrap_err().to_string();
        assert!(err.contains("classes = 80 wants 84 rows"), "{err}");
        assert!(err.contains("set classes = 2"), "{err}");
        let err = stage("width = 64\nheight = 32")
            .run(vec![ArrayD::zeros(IxDyn(&[1, 6, 3, 1]))])
            .unwrap_err()
            .to_string();
        assert!(err.contains("[1, 4 + C, N]"), "{err}");
        let err = build("decode_yolov8", &"width = 64".parse().unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("height"), "{err}");
        let err = build("decode_yolov8", &"width = 64\nheight = 0".parse().unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("`height`"), "{err}");
    }
}
