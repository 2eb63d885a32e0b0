//! A tiny RGB raster with the drawing and degradation steps the scene generators need.
//!
//! Pixels are `[f32; 3]` RGB in `0..=1` (values may leave that range while drawing; they
//! are clamped when quantised). Coordinates are continuous pixel units: pixel `(i, j)`
//! covers `[i, i+1) × [j, j+1)`, its centre is `(i + 0.5, j + 0.5)`.

use rand::Rng;
use rand::distr::Distribution;
use rand_distr_lite::Normal;

/// An RGB colour, components nominally in `0..=1`.
pub type Rgb = [f32; 3];

/// An axis-aligned pixel box `(x0, y0, x1, y1)` (continuous units, `x1`/`y1` exclusive).
pub type PixBox = [f32; 4];

#[derive(Debug, Clone)]
pub struct Canvas {
    pub w: usize,
    pub h: usize,
    pub px: Vec<Rgb>,
}

impl Canvas {
    pub fn new(w: usize, h: usize) -> Self {
        Canvas {
            w,
            h,
            px: vec![[0.0; 3]; w * h],
        }
    }

    /// Fills with a vertical gradient from `top` to `bottom`.
    pub fn vertical_gradient(&mut self, top: Rgb, bottom: Rgb) {
        for y in 0..self.h {
            let t = (y as f32 + 0.5) / self.h as f32;
            let c = mix(top, bottom, t);
            self.px[y * self.w..(y + 1) * self.w].fill(c);
        }
    }

    /// Paints the region where `f` returns a colour, antialiased with `ss × ss`
    /// subsamples per pixel, blended with opacity `alpha`, inside `bbox`.
    /// Returns the tight pixel box of what was covered (`None` when nothing was).
    pub fn paint<F>(&mut self, bbox: PixBox, ss: usize, alpha: f32, f: F) -> Option<PixBox>
    where
        F: Fn(f32, f32) -> Option<Rgb>,
    {
        let x0 = (bbox[0].floor().max(0.0)) as usize;
        let y0 = (bbox[1].floor().max(0.0)) as usize;
        let x1 = (bbox[2].ceil().min(self.w as f32).max(0.0)) as usize;
        let y1 = (bbox[3].ceil().min(self.h as f32).max(0.0)) as usize;
        let inv = 1.0 / (ss * ss) as f32;
        let mut tight: Option<PixBox> = None;
        for y in y0..y1 {
            for x in x0..x1 {
                let mut sum = [0.0f32; 3];
                let mut hits = 0usize;
                for sy in 0..ss {
                    for sx in 0..ss {
                        let fx = x as f32 + (sx as f32 + 0.5) / ss as f32;
                        let fy = y as f32 + (sy as f32 + 0.5) / ss as f32;
                        if let Some(c) = f(fx, fy) {
                            hits += 1;
                            for k in 0..3 {
                                sum[k] += c[k];
                            }
                        }
                    }
                }
                if hits == 0 {
                    continue;
                }
                let cov = hits as f32 * inv * alpha;
                let p = &mut self.px[y * self.w + x];
                for k in 0..3 {
                    p[k] = p[k] * (1.0 - cov) + sum[k] * inv * alpha;
                }
                let (fx, fy) = (x as f32, y as f32);
                tight = Some(match tight {
                    None => [fx, fy, fx + 1.0, fy + 1.0],
                    Some(b) => [
                        b[0].min(fx),
                        b[1].min(fy),
                        b[2].max(fx + 1.0),
                        b[3].max(fy + 1.0),
                    ],
                });
            }
        }
        tight
    }

    /// Fills an axis-aligned rectangle with a colour (antialiased edges).
    pub fn rect(&mut self, b: PixBox, c: Rgb, alpha: f32) {
        self.paint(b, 2, alpha, |x, y| {
            (x >= b[0] && x < b[2] && y >= b[1] && y < b[3]).then_some(c)
        });
    }

    /// Fills an ellipse centred at `(cx, cy)` with radii `rx`, `ry`.
    pub fn ellipse(&mut self, cx: f32, cy: f32, rx: f32, ry: f32, c: Rgb, alpha: f32) {
        let b = [cx - rx, cy - ry, cx + rx, cy + ry];
        self.paint(b, 2, alpha, |x, y| {
            let (dx, dy) = ((x - cx) / rx, (y - cy) / ry);
            (dx * dx + dy * dy <= 1.0).then_some(c)
        });
    }

    /// Adds a Gaussian halo (light source glow) of colour `c`.
    pub fn glow(&mut self, cx: f32, cy: f32, sigma: f32, c: Rgb, strength: f32) {
        let r = 3.0 * sigma;
        let x0 = ((cx - r).floor().max(0.0)) as usize;
        let y0 = ((cy - r).floor().max(0.0)) as usize;
        let x1 = ((cx + r).ceil().min(self.w as f32).max(0.0)) as usize;
        let y1 = ((cy + r).ceil().min(self.h as f32).max(0.0)) as usize;
        let k = -0.5 / (sigma * sigma);
        for y in y0..y1 {
            for x in x0..x1 {
                let dx = x as f32 + 0.5 - cx;
                let dy = y as f32 + 0.5 - cy;
                let g = strength * (k * (dx * dx + dy * dy)).exp();
                let p = &mut self.px[y * self.w + x];
                for i in 0..3 {
                    p[i] += g * c[i];
                }
            }
        }
    }

    /// Separable Gaussian blur.
    pub fn gaussian_blur(&mut self, sigma: f32) {
        if sigma < 0.2 {
            return;
        }
        let r = (2.5 * sigma).ceil() as isize;
        let mut kern: Vec<f32> = (-r..=r)
            .map(|i| (-0.5 * (i * i) as f32 / (sigma * sigma)).exp())
            .collect();
        let s: f32 = kern.iter().sum();
        kern.iter_mut().for_each(|k| *k /= s);
        self.convolve(&kern, true);
        self.convolve(&kern, false);
    }

    /// Horizontal or vertical box (motion) blur over `len` pixels.
    pub fn motion_blur(&mut self, len: usize, horizontal: bool) {
        if len < 2 {
            return;
        }
        let n = len | 1;
        self.convolve(&vec![1.0 / n as f32; n], horizontal);
    }

    /// 1-D convolution along x (`horizontal`) or y, clamping at the borders.
    fn convolve(&mut self, kern: &[f32], horizontal: bool) {
        let r = (kern.len() / 2) as isize;
        let (w, h) = (self.w as isize, self.h as isize);
        let src = self.px.clone();
        for y in 0..h {
            for x in 0..w {
                let mut acc = [0.0f32; 3];
                for (i, &k) in kern.iter().enumerate() {
                    let o = i as isize - r;
                    let (sx, sy) = if horizontal {
                        ((x + o).clamp(0, w - 1), y)
                    } else {
                        (x, (y + o).clamp(0, h - 1))
                    };
                    let p = src[(sy * w + sx) as usize];
                    for c in 0..3 {
                        acc[c] += k * p[c];
                    }
                }
                self.px[(y * w + x) as usize] = acc;
            }
        }
    }

    /// Global lighting: `out = (in - 0.5) * contrast + 0.5`, then `* gain * cast + offset`.
    pub fn light(&mut self, gain: f32, contrast: f32, cast: Rgb, offset: f32) {
        for p in &mut self.px {
            for c in 0..3 {
                p[c] = ((p[c] - 0.5) * contrast + 0.5) * gain * cast[c] + offset;
            }
        }
    }

    /// Mixes everything towards a colour (haze / fog / washout) by `t`.
    pub fn haze(&mut self, c: Rgb, t: f32) {
        for p in &mut self.px {
            *p = mix(*p, c, t);
        }
    }

    /// Adds Gaussian sensor noise (per channel, plus a correlated luminance part).
    pub fn noise<R: Rng>(&mut self, rng: &mut R, sigma: f32) {
        if sigma <= 0.0 {
            return;
        }
        let n = Normal::new(sigma);
        for p in &mut self.px {
            let l = 0.5 * n.sample(rng);
            for c in p.iter_mut() {
                *c += n.sample(rng) + l;
            }
        }
    }

    /// Writes the canvas as 8-bit planes (CHW: all R, then all G, then all B).
    pub fn write_chw_u8(&self, out: &mut [u8]) {
        let plane = self.w * self.h;
        debug_assert_eq!(out.len(), 3 * plane);
        for (i, p) in self.px.iter().enumerate() {
            for c in 0..3 {
                out[c * plane + i] = quantise(p[c]);
            }
        }
    }

    /// The canvas as 8-bit interleaved pixels (HWC: R, G, B per pixel).
    pub fn to_hwc_u8(&self) -> Vec<u8> {
        self.px.iter().flat_map(|p| p.map(quantise)).collect()
    }
}

/// `0..=1` to `0..=255`, rounded and clamped.
pub fn quantise(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Linear interpolation between two colours.
pub fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

/// Scales a colour.
pub fn scale(c: Rgb, s: f32) -> Rgb {
    [c[0] * s, c[1] * s, c[2] * s]
}

/// Jitters each component by up to `±amount`.
pub fn jitter<R: Rng>(rng: &mut R, c: Rgb, amount: f32) -> Rgb {
    [
        c[0] + rng.random_range(-amount..=amount),
        c[1] + rng.random_range(-amount..=amount),
        c[2] + rng.random_range(-amount..=amount),
    ]
}

/// A random colour.
pub fn random_rgb<R: Rng>(rng: &mut R, lo: f32, hi: f32) -> Rgb {
    [
        rng.random_range(lo..hi),
        rng.random_range(lo..hi),
        rng.random_range(lo..hi),
    ]
}

/// Gaussian sampling without pulling in `rand_distr`.
mod rand_distr_lite {
    use rand::Rng;
    use rand::distr::Distribution;

    /// Zero-mean normal distribution (Box–Muller).
    pub struct Normal {
        sigma: f32,
    }

    impl Normal {
        pub fn new(sigma: f32) -> Self {
            Normal { sigma }
        }
    }

    impl Distribution<f32> for Normal {
        fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f32 {
            let u1: f32 = rng.random_range(f32::EPSILON..1.0);
            let u2: f32 = rng.random();
            self.sigma * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        }
    }
}
