//! Text detection post-processing: DB (differentiable binarisation) boxes, as PP-OCR
//! and RapidOCR do it, with axis-aligned boxes.

use ndarray::{ArrayD, IxDyn};
use serde::Deserialize;

use crate::params::{bad, bad_input, first, is_frame, parse, shape_str};
use crate::vision::contiguous;
use crate::{CpuStage, Data, OpError};

fn default_thresh() -> f32 {
    0.3
}
fn default_box_thresh() -> f32 {
    0.5
}
fn default_unclip() -> f32 {
    1.6
}
fn default_min_size() -> f32 {
    3.0
}
fn default_max_candidates() -> usize {
    1000
}
fn default_true() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DbParams {
    #[serde(default = "default_thresh")]
    thresh: f32,
    #[serde(default = "default_box_thresh")]
    box_thresh: f32,
    #[serde(default = "default_unclip")]
    unclip_ratio: f32,
    #[serde(default = "default_min_size")]
    min_size: f32,
    #[serde(default = "default_max_candidates")]
    max_candidates: usize,
    #[serde(default = "default_true")]
    scale_to_frame: bool,
}

/// `db_boxes`: `[prob map [1,1,H,W] / [1,H,W] / [H,W], rest..]` → `[boxes [N,6], rest..]`.
///
/// The text probability map of a DB detector (PP-OCR det) is binarised at `thresh`;
/// each 8-connected region (at most `max_candidates`, in scan order) gives its bounding
/// box, kept when its short side is at least `min_size` map pixels and the mean
/// probability inside the box (RapidOCR's "fast" score) is at least `box_thresh`. The box
/// is then grown by `d = area · unclip_ratio / perimeter` on each side (the DB "unclip"
/// of a rectangle), dropped if its short side is then below `min_size + 2`, clipped to
/// the map, and scaled to the frame found among the other tensors (the frame the map was
/// computed from, resized to the map's size) unless `scale_to_frame = false`.
/// Rows are `(x1, y1, x2, y2, score, 0)`, in scan order (top to bottom).
pub(crate) struct DbBoxes {
    p: DbParams,
    /// Scratch, kept between calls: visited marks and the flood-fill stack.
    seen: Vec<bool>,
    stack: Vec<usize>,
}

impl DbBoxes {
    const NAME: &'static str = "db_boxes";

    pub(crate) fn build(params: &toml::Table) -> Result<Box<dyn CpuStage>, OpError> {
        let p: DbParams = parse(Self::NAME, params)?;
        for (name, v) in [("thresh", p.thresh), ("box_thresh", p.box_thresh)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(bad(
                    Self::NAME,
                    name,
                    format!("a probability in 0..=1, got {v}"),
                ));
            }
        }
        if !(p.unclip_ratio.is_finite() && p.unclip_ratio >= 0.0) {
            return Err(bad(Self::NAME, "unclip_ratio", "a number >= 0"));
        }
        if !(p.min_size.is_finite() && p.min_size >= 0.0) {
            return Err(bad(Self::NAME, "min_size", "a number of pixels >= 0"));
        }
        if p.max_candidates == 0 {
            return Err(bad(Self::NAME, "max_candidates", "an integer >= 1"));
        }
        Ok(Box::new(DbBoxes {
            p,
            seen: Vec::new(),
            stack: Vec::new(),
        }))
    }
}

impl CpuStage for DbBoxes {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn run(&mut self, mut input: Data) -> Result<Data, OpError> {
        first(Self::NAME, &input, "a probability map [1, 1, H, W]")?;
        let (h, w) = match input[0].shape() {
            [1, 1, h, w] | [1, h, w] | [h, w] if *h > 0 && *w > 0 => (*h, *w),
            _ => {
                return Err(bad_input(
                    Self::NAME,
                    format!(
                        "expected a probability map [1, 1, H, W], [1, H, W] or [H, W], got shape {}",
                        shape_str(&input[0])
                    ),
                ));
            }
        };
        let (sx, sy) = if self.p.scale_to_frame {
            let frame = input[1..].iter().find(|t| is_frame(t)).ok_or_else(|| {
                bad_input(
                    Self::NAME,
                    format!(
                        "scale_to_frame is set: expected a frame [H, W, 3] after the map, got [{}]",
                        input.iter().map(shape_str).collect::<Vec<_>>().join(", ")
                    ),
                )
            })?;
            let s = frame.shape();
            (s[1] as f32 / w as f32, s[0] as f32 / h as f32)
        } else {
            (1.0, 1.0)
        };
        let map = contiguous(&input[0]);
        let DbParams {
            thresh,
            box_thresh,
            unclip_ratio,
            min_size,
            max_candidates,
            ..
        } = self.p;
        self.seen.clear();
        self.seen.resize(h * w, false);
        let mut rows: Vec<f32> = Vec::new();
        let mut regions = 0;
        for start in 0..h * w {
            if self.seen[start] || map[start].is_nan() || map[start] <= thresh {
                continue;
            }
            if regions == max_candidates {
                break;
            }
            regions += 1;
            // Flood fill (8-connected), tracking the bounding box.
            let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
            self.seen[start] = true;
            self.stack.push(start);
            while let Some(i) = self.stack.pop() {
                let (y, x) = (i / w, i % w);
                x0 = x0.min(x);
                x1 = x1.max(x);
                y0 = y0.min(y);
                y1 = y1.max(y);
                for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                    for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                        let j = ny * w + nx;
                        if !self.seen[j] && map[j] > thresh {
                            self.seen[j] = true;
                            self.stack.push(j);
                        }
                    }
                }
            }
            let (bw, bh) = ((x1 - x0 + 1) as f32, (y1 - y0 + 1) as f32);
            if bw.min(bh) < min_size {
                continue;
            }
            let mut sum = 0.0f64;
            for y in y0..=y1 {
                sum += map[y * w + x0..=y * w + x1]
                    .iter()
                    .map(|v| f64::from(*v))
                    .sum::<f64>();
            }
            let score = (sum / f64::from(bw * bh)) as f32;
            if score < box_thresh {
                continue;
            }
            let d = bw * bh * unclip_ratio / (2.0 * (bw + bh));
            if (bw + 2.0 * d).min(bh + 2.0 * d) < min_size + 2.0 {
                continue;
            }
            let bx = [
                (x0 as f32 - d).max(0.0) * sx,
                (y0 as f32 - d).max(0.0) * sy,
                ((x1 + 1) as f32 + d).min(w as f32) * sx,
                ((y1 + 1) as f32 + d).min(h as f32) * sy,
            ];
            rows.extend_from_slice(&bx);
            rows.extend_from_slice(&[score, 0.0]);
        }
        drop(map);
        let n = rows.len() / 6;
        input[0] = ArrayD::from_shape_vec(IxDyn(&[n, 6]), rows).expect("shape matches length");
        Ok(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build;

    fn stage(params: &str) -> Box<dyn CpuStage> {
        build("db_boxes", &params.parse().unwrap()).unwrap()
    }

    /// A 1×1×20×30 map with a 5×10 block of 0.9 at rows 5..10, cols 10..20, one lone
    /// pixel of 0.95 at (15, 2) and a 6×6 block of 0.35 at rows 12..18, cols 20..26.
    fn map() -> ArrayD<f32> {
        let mut m = ArrayD::<f32>::zeros(IxDyn(&[1, 1, 20, 30]));
        for y in 5..10 {
            for x in 10..20 {
                m[[0, 0, y, x]] = 0.9;
            }
        }
        m[[0, 0, 15, 2]] = 0.95;
        for y in 12..18 {
            for x in 20..26 {
                m[[0, 0, y, x]] = 0.35;
            }
        }
        m
    }

    #[test]
    fn finds_the_text_block_unclips_and_scales() {
        let mut s = stage("unclip_ratio = 0.0");
        let frame = ArrayD::<f32>::zeros(IxDyn(&[40, 90, 3]));
        let out = s.run(vec![map(), frame]).unwrap();
        assert_eq!(out.len(), 2, "the frame travels on");
        // The lone pixel is too small, the 0.35 block scores below box_thresh.
        assert_eq!(out[0].shape(), &[1, 6]);
        let b: Vec<f32> = out[0].iter().copied().collect();
        // Map box x 10..20, y 5..10, scaled ×3 in x and ×2 in y.
        assert_eq!(b, vec![30.0, 10.0, 60.0, 20.0, 0.9, 0.0]);

        // Unclip 1.6: d = 50 · 1.6 / 30 on each side.
        let mut s = stage("scale_to_frame = false");
        let out = s.run(vec![map()]).unwrap();
        let d = 50.0 * 1.6 / 30.0;
        let b: Vec<f32> = out[0].iter().copied().collect();
        let want = [10.0 - d, 5.0 - d, 20.0 + d, 10.0 + d, 0.9, 0.0];
        for (x, y) in b.iter().zip(want) {
            assert!((x - y).abs() < 1e-5, "{b:?} vs {want:?}");
        }

        // A lower box threshold keeps the faint block too, in scan order.
        let mut s = stage("scale_to_frame = false\nbox_thresh = 0.3\nunclip_ratio = 0.0");
        let out = s.run(vec![map()]).unwrap();
        assert_eq!(out[0].shape(), &[2, 6]);
        assert_eq!(out[0][[1, 0]], 20.0);
        assert!((out[0][[1, 4]] - 0.35).abs() < 1e-6);
        // max_candidates stops the scan.
        let mut s = stage("scale_to_frame = false\nbox_thresh = 0.3\nmax_candidates = 1");
        assert_eq!(s.run(vec![map()]).unwrap()[0].shape(), &[1, 6]);
    }

    #[test]
    fn empty_map_gives_no_boxes() {
        let mut s = stage("scale_to_frame = false");
        let out = s
            .run(vec![ArrayD::<f32>::zeros(IxDyn(&[1, 1, 8, 8]))])
            .unwrap();
        assert_eq!(out[0].shape(), &[0, 6]);
    }

    #[test]
    fn bad_input_and_params_are_errors() {
        let mut s = stage("");
        let err = s.run(vec![map()]).unwrap_err();
        assert!(err.to_string().contains("expected a frame"), "{err}");
        let err = s
            .run(vec![ArrayD::<f32>::zeros(IxDyn(&[2, 1, 4, 4]))])
            .unwrap_err();
        assert!(err.to_string().contains("probability map"), "{err}");
        assert!(s.run(vec![]).is_err());
        for (params, param) in [
            ("thresh = 1.5", "thresh"),
            ("box_thresh = -0.1", "box_thresh"),
            ("unclip_ratio = -1", "unclip_ratio"),
            ("max_candidates = 0", "max_candidates"),
            ("treshold = 0.3", "treshold"),
        ] {
            match build("db_boxes", &params.parse().unwrap()) {
                Err(OpError::BadParam { param: p, .. }) => assert_eq!(p, param),
                other => panic!("{params}: {:?}", other.err()),
            }
        }
    }
}
