//! Classification and sequence post-processing stages.

use ndarray::{ArrayD, IxDyn};
use serde::Deserialize;

use crate::params::{bad, bad_input, first, parse, shape_str};
use crate::vision::contiguous;
use crate::{CpuStage, Data, OpError};

/// Index of the largest non-NaN value (the first one on ties).
fn argmax(v: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &x) in v.iter().enumerate() {
        if !x.is_nan() && best.is_none_or(|(_, b)| x > b) {
            best = Some((i, x));
        }
    }
    best.map(|(i, _)| i)
}

// ---------------------------------------------------------------- softmax_top1

fn default_true() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SoftmaxTop1Params {
    #[serde(default)]
    threshold: f32,
    #[serde(default = "default_true")]
    apply_softmax: bool,
}

/// `softmax_top1`: `[scores [C] / [1,C] / [1,..,1,C], rest..]` →
/// `[[class, confidence], rest..]`. The confidence is the softmax probability
/// of the top class (or its raw score without `apply_softmax`); the class is
/// `-1` when the confidence is below `threshold` (or NaN).
pub(crate) struct SoftmaxTop1 {
    threshold: f32,
    softmax: bool,
}

impl SoftmaxTop1 {
    const NAME: &'static str = "softmax_top1";

    pub(crate) fn build(params: &toml::Table) -> Result<Box<dyn CpuStage>, OpError> {
        let p: SoftmaxTop1Params = parse(Self::NAME, params)?;
        if p.threshold.is_nan() {
            return Err(bad(Self::NAME, "threshold", "a number"));
        }
        Ok(Box::new(Self {
            threshold: p.threshold,
            softmax: p.apply_softmax,
        }))
    }
}

impl CpuStage for SoftmaxTop1 {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn run(&mut self, mut input: Data) -> Result<Data, OpError> {
        first(Self::NAME, &input, "scores [1, C]")?;
        let shape = input[0].shape();
        let ok = !shape.is_empty()
            && shape[..shape.len() - 1].iter().all(|d| *d == 1)
            && shape[shape.len() - 1] > 0;
        if !ok {
            return Err(bad_input(
                Self::NAME,
                format!(
                    "expected scores [1, C] with C > 0, got shape {}",
                    shape_str(&input[0])
                ),
            ));
        }
        let v = contiguous(&input[0]);
        let best = argmax(&v).ok_or_else(|| bad_input(Self::NAME, "all scores are NaN"))?;
        let conf = if self.softmax {
            let m = v[best];
            let sum: f32 = v
                .iter()
                .filter(|x| !x.is_nan())
                .map(|x| (x - m).exp())
                .sum();
            1.0 / sum
        } else {
            v[best]
        };
        drop(v);
        let class = if conf >= self.threshold {
            best as f32
        } else {
            -1.0
        };
        input[0] =
            ArrayD::from_shape_vec(IxDyn(&[2]), vec![class, conf]).expect("shape matches length");
        Ok(input)
    }
}

// ---------------------------------------------------------------- ctc_greedy_decode

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CtcParams {
    #[serde(default)]
    blank: usize,
}

/// `ctc_greedy_decode`: `[logits [1,T,C] / [T,C], rest..]` → `[[L], rest..]`:
/// the arg-max class of each step, repeats collapsed, blanks removed.
pub(crate) struct CtcGreedy {
    blank: usize,
}

impl CtcGreedy {
    const NAME: &'static str = "ctc_greedy_decode";

    pub(crate) fn build(params: &toml::Table) -> Result<Box<dyn CpuStage>, OpError> {
        let p: CtcParams = parse(Self::NAME, params)?;
        Ok(Box::new(Self { blank: p.blank }))
    }
}

impl CpuStage for CtcGreedy {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn run(&mut self, mut input: Data) -> Result<Data, OpError> {
        first(Self::NAME, &input, "logits [1, T, C]")?;
        let c = match input[0].shape() {
            [1, _, c] | [_, c] if *c > self.blank => *c,
            s => {
                return Err(bad_input(
                    Self::NAME,
                    format!(
                        "expected logits [1, T, C] with C > blank = {}, got shape {s:?}",
                        self.blank
                    ),
                ));
            }
        };
        let v = contiguous(&input[0]);
        let mut out = Vec::new();
        let mut prev = None;
        for step in v.chunks_exact(c) {
            let k = argmax(step);
            if k != prev
                && let Some(k) = k
                && k != self.blank
            {
                out.push(k as f32);
            }
            prev = k;
        }
        drop(v);
        input[0] = ArrayD::from_shape_vec(IxDyn(&[out.len()]), out).expect("shape matches length");
        Ok(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build;

    fn t(shape: &[usize], v: Vec<f32>) -> ArrayD<f32> {
        ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()
    }

    fn stage(name: &str, params: &str) -> Box<dyn CpuStage> {
        build(name, &params.parse().unwrap()).unwrap()
    }

    #[test]
    fn softmax_top1_picks_the_top_class() {
        let mut s = stage("softmax_top1", "");
        let out = s
            .run(vec![t(&[1, 3], vec![1.0, 3.0, 2.0]), t(&[1], vec![9.])])
            .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].shape(), &[2]);
        let e = [1f32.exp(), 3f32.exp(), 2f32.exp()];
        let p = e[1] / (e[0] + e[1] + e[2]);
        assert_eq!(out[0][0], 1.0);
        assert!((out[0][1] - p).abs() < 1e-6, "{} vs {p}", out[0][1]);
        assert_eq!(out[1], t(&[1], vec![9.]));
        // Large logits do not overflow.
        let out = s.run(vec![t(&[2], vec![1000.0, 0.0])]).unwrap();
        assert_eq!(out[0].as_slice().unwrap(), &[0.0, 1.0]);
    }

    #[test]
    fn softmax_top1_threshold_and_raw_scores() {
        let mut s = stage("softmax_top1", "threshold = 0.6");
        // Softmax of [0, 0] = 0.5 each < 0.6.
        let out = s.run(vec![t(&[1, 2], vec![0.0, 0.0])]).unwrap();
        assert_eq!(out[0].as_slice().unwrap(), &[-1.0, 0.5]);
        let mut s = stage("softmax_top1", "threshold = 0.6\napply_softmax = false");
        let out = s.run(vec![t(&[1, 1, 3], vec![0.1, 0.7, 0.2])]).unwrap();
        assert_eq!(out[0].as_slice().unwrap(), &[1.0, 0.7]);
        let out = s.run(vec![t(&[1, 3], vec![0.1, f32::NAN, 0.5])]).unwrap();
        assert_eq!(out[0].as_slice().unwrap(), &[-1.0, 0.5]);
    }

    #[test]
    fn softmax_top1_rejects_bad_input() {
        let mut s = stage("softmax_top1", "");
        for bad in [
            vec![],
            vec![t(&[2, 3], vec![0.; 6])],
            vec![t(&[1, 0], vec![])],
            vec![t(&[1, 2], vec![f32::NAN; 2])],
        ] {
            assert!(matches!(s.run(bad), Err(OpError::BadInput { .. })));
        }
        assert!(matches!(
            build("softmax_top1", &"threshold = \"high\"".parse().unwrap()),
            Err(OpError::BadParam { .. })
        ));
    }

    /// One-hot logits `[1, T, C]` for a path of classes.
    fn onehot(path: &[usize], c: usize) -> ArrayD<f32> {
        let mut v = vec![0.0; path.len() * c];
        for (i, k) in path.iter().enumerate() {
            v[i * c + k] = 5.0;
        }
        t(&[1, path.len(), c], v)
    }

    #[test]
    fn ctc_collapses_repeats_and_removes_blanks() {
        let mut s = stage("ctc_greedy_decode", "");
        let out = s
            .run(vec![onehot(&[0, 1, 1, 0, 1, 2, 2, 0, 0, 3], 4)])
            .unwrap();
        assert_eq!(out[0].as_slice().unwrap(), &[1.0, 1.0, 2.0, 3.0]);
        let out = s.run(vec![onehot(&[0, 0], 4)]).unwrap();
        assert_eq!(out[0].shape(), &[0]);
        let mut s = stage("ctc_greedy_decode", "blank = 3");
        let v = onehot(&[0, 3, 0, 1, 3], 4)
            .into_shape_with_order(IxDyn(&[5, 4]))
            .unwrap();
        let out = s.run(vec![v, t(&[1], vec![1.])]).unwrap();
        assert_eq!(out[0].as_slice().unwrap(), &[0.0, 0.0, 1.0]);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn ctc_rejects_bad_input() {
        let mut s = stage("ctc_greedy_decode", "blank = 4");
        assert!(matches!(
            s.run(vec![onehot(&[0], 4)]),
            Err(OpError::BadInput { .. })
        ));
        assert!(matches!(
            s.run(vec![t(&[4], vec![0.; 4])]),
            Err(OpError::BadInput { .. })
        ));
        assert!(matches!(s.run(vec![]), Err(OpError::BadInput { .. })));
    }
}
