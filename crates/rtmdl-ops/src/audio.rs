//! Audio pre-processing: MFCC.

use std::f32::consts::PI;
use std::sync::Arc;

use ndarray::{ArrayD, IxDyn};
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use serde::Deserialize;

use crate::params::{bad, bad_input, first, parse};
use crate::vision::contiguous;
use crate::{CpuStage, Data, OpError};

fn d_sr() -> u32 {
    16000
}
fn d_mfcc() -> usize {
    13
}
fn d_fft() -> usize {
    512
}
fn d_hop() -> usize {
    160
}
fn d_mels() -> usize {
    40
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MfccParams {
    #[serde(default = "d_sr")]
    sample_rate: u32,
    #[serde(default = "d_mfcc")]
    n_mfcc: usize,
    #[serde(default = "d_fft")]
    n_fft: usize,
    #[serde(default = "d_hop")]
    hop: usize,
    #[serde(default = "d_mels")]
    n_mels: usize,
    #[serde(default)]
    f_min: f32,
    f_max: Option<f32>,
}

/// Floor under the mel energies before the log.
pub(crate) const LOG_FLOOR: f32 = 1e-10;

fn hz_to_mel(f: f32) -> f32 {
    2595.0 * (1.0 + f / 700.0).log10()
}
fn mel_to_hz(m: f32) -> f32 {
    700.0 * (10f32.powf(m / 2595.0) - 1.0)
}

/// `mfcc`: `[audio [N] / [1,N], rest..]` → `[[1, 1, n_mfcc, frames], rest..]`.
///
/// Frames of `n_fft` samples every `hop` samples, centred (the signal is
/// zero-padded by `n_fft / 2` on both sides, so `frames = 1 + N / hop`);
/// periodic Hann window; power spectrum `|X|²`; `n_mels` triangular HTK-mel
/// filters between `f_min` and `f_max` (unnormalised); natural log with a
/// floor of `1e-10`; orthonormal DCT-II, first `n_mfcc` coefficients.
pub(crate) struct Mfcc {
    n_fft: usize,
    hop: usize,
    n_mfcc: usize,
    window: Vec<f32>,
    fft: Arc<dyn Fft<f32>>,
    buf: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    power: Vec<f32>,
    /// Per mel band: first FFT bin and the weights from there.
    filters: Vec<(usize, Vec<f32>)>,
    log_mel: Vec<f32>,
    /// `n_mfcc × n_mels`, row-major.
    dct: Vec<f32>,
}

impl Mfcc {
    const NAME: &'static str = "mfcc";

    pub(crate) fn build(params: &toml::Table) -> Result<Box<dyn CpuStage>, OpError> {
        let p: MfccParams = parse(Self::NAME, params)?;
        let n = Self::NAME;
        if p.sample_rate == 0 {
            return Err(bad(n, "sample_rate", "a positive integer (Hz)"));
        }
        if !(2..=1 << 16).contains(&p.n_fft) {
            return Err(bad(
                n,
                "n_fft",
                format!("an integer in 2..=65536, got {}", p.n_fft),
            ));
        }
        if p.hop == 0 {
            return Err(bad(n, "hop", "a positive integer (samples)"));
        }
        if !(1..=1024).contains(&p.n_mels) {
            return Err(bad(
                n,
                "n_mels",
                format!("an integer in 1..=1024, got {}", p.n_mels),
            ));
        }
        if p.n_mfcc == 0 || p.n_mfcc > p.n_mels {
            return Err(bad(
                n,
                "n_mfcc",
                format!("an integer in 1..=n_mels ({}), got {}", p.n_mels, p.n_mfcc),
            ));
        }
        let nyquist = p.sample_rate as f32 / 2.0;
        let f_max = p.f_max.unwrap_or(nyquist);
        if !(f_max > 0.0 && f_max <= nyquist) {
            return Err(bad(
                n,
                "f_max",
                format!("a frequency in (0, {nyquist}] Hz, got {f_max}"),
            ));
        }
        if !(p.f_min >= 0.0 && p.f_min < f_max) {
            return Err(bad(
                n,
                "f_min",
                format!("a frequency in [0, f_max = {f_max}) Hz, got {}", p.f_min),
            ));
        }
        Ok(Box::new(Self::new(&p, f_max)))
    }

    fn new(p: &MfccParams, f_max: f32) -> Self {
        let n_fft = p.n_fft;
        let window = (0..n_fft)
            .map(|i| 0.5 - 0.5 * (2.0 * PI * i as f32 / n_fft as f32).cos())
            .collect();
        let fft = FftPlanner::new().plan_fft_forward(n_fft);
        let scratch = vec![Complex::default(); fft.get_inplace_scratch_len()];
        let bins = n_fft / 2 + 1;

        let (m_lo, m_hi) = (hz_to_mel(p.f_min), hz_to_mel(f_max));
        let edges: Vec<f32> = (0..p.n_mels + 2)
            .map(|i| mel_to_hz(m_lo + (m_hi - m_lo) * i as f32 / (p.n_mels + 1) as f32))
            .collect();
        let bin_hz = p.sample_rate as f32 / n_fft as f32;
        let filters = edges
            .windows(3)
            .map(|e| {
                let (lo, c, hi) = (e[0], e[1], e[2]);
                let w: Vec<(usize, f32)> = (0..bins)
                    .map(|k| {
                        let f = k as f32 * bin_hz;
                        (k, ((f - lo) / (c - lo)).min((hi - f) / (hi - c)).max(0.0))
                    })
                    .filter(|(_, w)| *w > 0.0)
                    .collect();
                match w.first() {
                    Some(&(start, _)) => (start, w.iter().map(|x| x.1).collect()),
                    None => (0, Vec::new()),
                }
            })
            .collect();

        let m = p.n_mels;
        let mut dct = Vec::with_capacity(p.n_mfcc * m);
        for k in 0..p.n_mfcc {
            let s = if k == 0 {
                (1.0 / m as f32).sqrt()
            } else {
                (2.0 / m as f32).sqrt()
            };
            dct.extend((0..m).map(|j| s * (PI * k as f32 * (j as f32 + 0.5) / m as f32).cos()));
        }
        Self {
            n_fft,
            hop: p.hop,
            n_mfcc: p.n_mfcc,
            window,
            fft,
            buf: vec![Complex::default(); n_fft],
            scratch,
            power: vec![0.0; bins],
            filters,
            log_mel: vec![0.0; m],
            dct,
        }
    }
}

impl CpuStage for Mfcc {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn run(&mut self, mut input: Data) -> Result<Data, OpError> {
        first(Self::NAME, &input, "audio [N]")?;
        if !matches!(input[0].shape(), [_] | [1, _]) {
            return Err(bad_input(
                Self::NAME,
                format!(
                    "expected mono audio [N] or [1, N], got shape {:?}",
                    input[0].shape()
                ),
            ));
        }
        let audio = contiguous(&input[0]);
        let n = audio.len();
        let frames = 1 + n / self.hop;
        let half = self.n_fft / 2;
        let mut out = vec![0.0f32; self.n_mfcc * frames];
        for t in 0..frames {
            // Sample index of the frame's first point, in unpadded coordinates.
            let start = (t * self.hop) as isize - half as isize;
            for (i, (b, w)) in self.buf.iter_mut().zip(&self.window).enumerate() {
                let s = start + i as isize;
                let x = if s >= 0 && (s as usize) < n {
                    audio[s as usize]
                } else {
                    0.0
                };
                *b = Complex::new(x * w, 0.0);
            }
            self.fft
                .process_with_scratch(&mut self.buf, &mut self.scratch);
            for (p, c) in self.power.iter_mut().zip(&self.buf) {
                *p = c.norm_sqr();
            }
            for (lm, (start, w)) in self.log_mel.iter_mut().zip(&self.filters) {
                let e: f32 = w
                    .iter()
                    .zip(&self.power[*start..])
                    .map(|(a, b)| a * b)
                    .sum();
                *lm = e.max(LOG_FLOOR).ln();
            }
            for (k, row) in self.dct.chunks_exact(self.log_mel.len()).enumerate() {
                out[k * frames + t] = row.iter().zip(&self.log_mel).map(|(a, b)| a * b).sum();
            }
        }
        drop(audio);
        input[0] = ArrayD::from_shape_vec(IxDyn(&[1, 1, self.n_mfcc, frames]), out)
            .expect("shape matches length");
        Ok(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build;

    fn stage(params: &str) -> Box<dyn CpuStage> {
        build("mfcc", &params.parse().unwrap()).unwrap()
    }

    fn audio(v: Vec<f32>) -> ArrayD<f32> {
        let n = v.len();
        ArrayD::from_shape_vec(IxDyn(&[n]), v).unwrap()
    }

    #[test]
    fn frame_count_and_shape() {
        let mut s = stage("");
        let out = s.run(vec![audio(vec![0.0; 16000])]).unwrap();
        assert_eq!(out[0].shape(), &[1, 1, 13, 101]);
        let out = s.run(vec![audio(vec![0.0; 100])]).unwrap();
        assert_eq!(out[0].shape(), &[1, 1, 13, 1]);
    }

    #[test]
    fn silence_gives_the_log_floor() {
        let mut s = stage("n_mels = 10\nn_mfcc = 4");
        let out = s
            .run(vec![audio(vec![0.0; 320]), audio(vec![1.0])])
            .unwrap();
        assert_eq!(out.len(), 2);
        let v = &out[0];
        assert_eq!(v.shape(), &[1, 1, 4, 3]);
        let c0 = 10f32.sqrt() * LOG_FLOOR.ln();
        for t in 0..3 {
            assert!((v[[0, 0, 0, t]] - c0).abs() < 1e-3, "{}", v[[0, 0, 0, t]]);
            for k in 1..4 {
                assert!(v[[0, 0, k, t]].abs() < 1e-3, "{}", v[[0, 0, k, t]]);
            }
        }
    }

    /// Inverts the orthonormal DCT (n_mfcc = n_mels) to get the log-mel
    /// spectrum back.
    fn log_mel(mfcc: &ArrayD<f32>, t: usize) -> Vec<f32> {
        let m = mfcc.shape()[2];
        (0..m)
            .map(|j| {
                (0..m)
                    .map(|k| {
                        let s = if k == 0 {
                            (1.0 / m as f32).sqrt()
                        } else {
                            (2.0 / m as f32).sqrt()
                        };
                        s * (PI * k as f32 * (j as f32 + 0.5) / m as f32).cos() * mfcc[[0, 0, k, t]]
                    })
                    .sum()
            })
            .collect()
    }

    #[test]
    fn a_tone_peaks_in_its_mel_band() {
        let (sr, n_mels) = (16000.0f32, 40);
        let mut s = stage(&format!("n_mels = {n_mels}\nn_mfcc = {n_mels}"));
        // Band centres, as the stage computes them.
        let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
        let centre = |j: usize| mel_to_hz(lo + (hi - lo) * (j + 1) as f32 / (n_mels + 1) as f32);
        for f in [300.0f32, 1000.0, 3000.0, 6000.0] {
            let x: Vec<f32> = (0..4000)
                .map(|i| 0.5 * (2.0 * PI * f * i as f32 / sr).sin())
                .collect();
            let out = s.run(vec![audio(x)]).unwrap();
            let lm = log_mel(&out[0], 10);
            let peak = (0..n_mels)
                .max_by(|a, b| lm[*a].total_cmp(&lm[*b]))
                .unwrap();
            let nearest = (0..n_mels)
                .min_by(|a, b| (centre(*a) - f).abs().total_cmp(&(centre(*b) - f).abs()))
                .unwrap();
            assert!(
                peak.abs_diff(nearest) <= 1,
                "{f} Hz: peak band {peak}, expected ~{nearest}"
            );
            // Loud: far above the floor.
            assert!(lm[peak] > 0.0, "{f} Hz: {}", lm[peak]);
        }
    }

    #[test]
    fn matches_a_naive_reference() {
        // Small config, computed with a plain DFT.
        let (sr, n_fft, hop, n_mels, n_mfcc) = (8000usize, 16usize, 4usize, 5usize, 3usize);
        let mut s = stage(&format!(
            "sample_rate = {sr}\nn_fft = {n_fft}\nhop = {hop}\nn_mels = {n_mels}\nn_mfcc = {n_mfcc}"
        ));
        let x: Vec<f32> = (0..21)
            .map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.5)
            .collect();
        let out = s.run(vec![audio(x.clone())]).unwrap();
        let frames = 1 + x.len() / hop;
        assert_eq!(out[0].shape(), &[1, 1, n_mfcc, frames]);

        let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(sr as f32 / 2.0));
        let edge = |i: usize| mel_to_hz(lo + (hi - lo) * i as f32 / (n_mels + 1) as f32) as f64;
        for t in 0..frames {
            let frame: Vec<f64> = (0..n_fft)
                .map(|i| {
                    let s = (t * hop + i) as isize - (n_fft / 2) as isize;
                    let v = if s >= 0 && (s as usize) < x.len() {
                        x[s as usize] as f64
                    } else {
                        0.0
                    };
                    v * (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n_fft as f64).cos())
                })
                .collect();
            let power: Vec<f64> = (0..=n_fft / 2)
                .map(|k| {
                    let (mut re, mut im) = (0.0, 0.0);
                    for (i, v) in frame.iter().enumerate() {
                        let a = -2.0 * std::f64::consts::PI * (k * i) as f64 / n_fft as f64;
                        re += v * a.cos();
                        im += v * a.sin();
                    }
                    re * re + im * im
                })
                .collect();
            let lm: Vec<f64> = (0..n_mels)
                .map(|j| {
                    let (l, c, h) = (edge(j), edge(j + 1), edge(j + 2));
                    let e: f64 = power
                        .iter()
                        .enumerate()
                        .map(|(k, p)| {
                            let f = (k * sr) as f64 / n_fft as f64;
                            p * ((f - l) / (c - l)).min((h - f) / (h - c)).max(0.0)
                        })
                        .sum();
                    e.max(LOG_FLOOR as f64).ln()
                })
                .collect();
            for k in 0..n_mfcc {
                let s = if k == 0 {
                    (1.0 / n_mels as f64).sqrt()
                } else {
                    (2.0 / n_mels as f64).sqrt()
                };
                let want: f64 = (0..n_mels)
                    .map(|j| {
                        s * (std::f64::consts::PI * (k as f64) * (j as f64 + 0.5) / n_mels as f64)
                            .cos()
                            * lm[j]
                    })
                    .sum();
                let got = out[0][[0, 0, k, t]] as f64;
                assert!(
                    (got - want).abs() < 1e-3 * (1.0 + want.abs()),
                    "t {t} k {k}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn rejects_bad_input_and_params() {
        let mut s = stage("");
        let two = ArrayD::zeros(IxDyn(&[2, 100]));
        assert!(matches!(s.run(vec![two]), Err(OpError::BadInput { .. })));
        assert!(matches!(s.run(vec![]), Err(OpError::BadInput { .. })));
        for (p, name) in [
            ("n_mfcc = 50", "n_mfcc"),
            ("hop = 0", "hop"),
            ("f_max = 9000.0", "f_max"),
            ("n_fft = 1", "n_fft"),
            ("n_mel = 3", "n_mel"),
        ] {
            match build("mfcc", &p.parse().unwrap()) {
                Err(OpError::BadParam { param, .. }) => assert_eq!(param, name, "{p}"),
                other => panic!("{p}: {:?}", other.err()),
            }
        }
    }
}
