//! Bilinear resampling of `[H, W, 3]` frames (half-pixel centres, like
//! OpenCV's `INTER_LINEAR` and PyTorch's `align_corners = false`), with
//! per-axis tables cached between calls.

/// Source taps and weights along one axis.
#[derive(Default, Debug)]
struct Axis {
    i0: Vec<usize>,
    i1: Vec<usize>,
    frac: Vec<f32>,
}

impl Axis {
    /// Samples `dst_len` points over `[start, start + extent)` of a source
    /// axis of `src_len` pixels.
    fn fill(&mut self, start: f32, extent: f32, src_len: usize, dst_len: usize) {
        self.i0.clear();
        self.i1.clear();
        self.frac.clear();
        let scale = extent / dst_len as f32;
        let max = (src_len - 1) as f32;
        for d in 0..dst_len {
            let s = (start + (d as f32 + 0.5) * scale - 0.5).clamp(0.0, max);
            let i0 = s.floor() as usize;
            let i1 = (i0 + 1).min(src_len - 1);
            self.i0.push(i0);
            self.i1.push(i1);
            self.frac.push(s - i0 as f32);
        }
    }
}

/// A region of a frame in continuous pixel coordinates `(x0, y0, x1, y1)`.
pub(crate) type Region = [f32; 4];

/// The whole `h × w` frame as a region.
pub(crate) fn whole(h: usize, w: usize) -> Region {
    [0.0, 0.0, w as f32, h as f32]
}

/// Bilinear resampler; keeps its tables while the geometry is unchanged.
#[derive(Default, Debug)]
pub(crate) struct Resampler {
    xs: Axis,
    ys: Axis,
    key: Option<(usize, usize, [u32; 4], usize, usize)>,
}

impl Resampler {
    fn prepare(&mut self, h: usize, w: usize, region: Region, out_h: usize, out_w: usize) {
        let key = (h, w, region.map(f32::to_bits), out_h, out_w);
        if self.key != Some(key) {
            self.xs.fill(region[0], region[2] - region[0], w, out_w);
            self.ys.fill(region[1], region[3] - region[1], h, out_h);
            self.key = Some(key);
        }
    }

    /// Resamples `region` of the contiguous HWC frame `src` (`h × w × 3`) to
    /// `out_h × out_w`, calling `put(dy, dx, rgb)` for each output pixel in
    /// row-major order.
    #[inline]
    pub(crate) fn resample(
        &mut self,
        src: &[f32],
        (h, w): (usize, usize),
        region: Region,
        (out_h, out_w): (usize, usize),
        mut put: impl FnMut(usize, usize, [f32; 3]),
    ) {
        debug_assert_eq!(src.len(), h * w * 3);
        self.prepare(h, w, region, out_h, out_w);
        let row = w * 3;
        for dy in 0..out_h {
            let (y0, y1, fy) = (self.ys.i0[dy], self.ys.i1[dy], self.ys.frac[dy]);
            let r0 = &src[y0 * row..(y0 + 1) * row];
            let r1 = &src[y1 * row..(y1 + 1) * row];
            for dx in 0..out_w {
                let (x0, x1, fx) = (self.xs.i0[dx] * 3, self.xs.i1[dx] * 3, self.xs.frac[dx]);
                let mut px = [0.0f32; 3];
                for (c, p) in px.iter_mut().enumerate() {
                    let top = r0[x0 + c] + (r0[x1 + c] - r0[x0 + c]) * fx;
                    let bot = r1[x0 + c] + (r1[x1 + c] - r1[x0 + c]) * fx;
                    *p = top + (bot - top) * fy;
                }
                put(dy, dx, px);
            }
        }
    }

    /// Resamples and normalises `(v - mean) / std` into a planar CHW buffer
    /// of `3 × out_h × out_w` values.
    pub(crate) fn resample_nchw(
        &mut self,
        src: &[f32],
        dims: (usize, usize),
        region: Region,
        out: (usize, usize),
        norm: &Norm,
        dst: &mut [f32],
    ) {
        let plane = out.0 * out.1;
        debug_assert_eq!(dst.len(), 3 * plane);
        let out_w = out.1;
        self.resample(src, dims, region, out, |dy, dx, px| {
            let i = dy * out_w + dx;
            for c in 0..3 {
                dst[c * plane + i] = (px[c] - norm.mean[c]) * norm.inv_std[c];
            }
        });
    }
}

/// Per-channel normalisation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Norm {
    pub mean: [f32; 3],
    pub inv_std: [f32; 3],
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resize(src: &[f32], dims: (usize, usize), out: (usize, usize)) -> Vec<[f32; 3]> {
        let mut r = Resampler::default();
        let mut v = Vec::new();
        r.resample(src, dims, whole(dims.0, dims.1), out, |_, _, p| v.push(p));
        v
    }

    fn gray(vals: &[f32]) -> Vec<f32> {
        vals.iter().flat_map(|v| [*v; 3]).collect()
    }

    #[test]
    fn same_size_is_identity() {
        let src: Vec<f32> = (0..2 * 3 * 3).map(|v| v as f32).collect();
        let out = resize(&src, (2, 3), (2, 3));
        let flat: Vec<f32> = out.iter().flatten().copied().collect();
        assert_eq!(flat, src);
    }

    #[test]
    fn upscale_matches_half_pixel_bilinear() {
        // 1×2 row [0, 10] -> 1×4: sample points -0.25, 0.25, 0.75, 1.25
        // clamp -> 0, 0.25, 0.75, 1 -> 0, 2.5, 7.5, 10 (as OpenCV gives).
        let out = resize(&gray(&[0.0, 10.0]), (1, 2), (1, 4));
        let got: Vec<f32> = out.iter().map(|p| p[0]).collect();
        assert_eq!(got, vec![0.0, 2.5, 7.5, 10.0]);
    }

    #[test]
    fn downscale_by_two_averages_pairs() {
        // 2×4 -> 1×2: each output is the mean of a 2×2 block.
        let src = gray(&[0.0, 2.0, 4.0, 6.0, 10.0, 12.0, 14.0, 16.0]);
        let out = resize(&src, (2, 4), (1, 2));
        let got: Vec<f32> = out.iter().map(|p| p[1]).collect();
        assert_eq!(got, vec![6.0, 10.0]);
    }

    #[test]
    fn region_samples_inside_the_crop() {
        // 1×4 row [0, 10, 20, 30], crop x 1..3 resized to 2 -> pixels 1 and 2.
        let mut r = Resampler::default();
        let mut v = Vec::new();
        r.resample(
            &gray(&[0.0, 10.0, 20.0, 30.0]),
            (1, 4),
            [1.0, 0.0, 3.0, 1.0],
            (1, 2),
            |_, _, p| v.push(p[2]),
        );
        assert_eq!(v, vec![10.0, 20.0]);
    }

    #[test]
    fn channels_stay_separate_and_nchw_is_planar() {
        let src = vec![1.0, 2.0, 3.0, 5.0, 6.0, 7.0];
        let mut r = Resampler::default();
        let mut dst = vec![0.0; 6];
        let norm = Norm {
            mean: [1.0, 0.0, 0.0],
            inv_std: [1.0, 0.5, 1.0],
        };
        r.resample_nchw(&src, (1, 2), whole(1, 2), (1, 2), &norm, &mut dst);
        assert_eq!(dst, vec![0.0, 4.0, 1.0, 3.0, 3.0, 7.0]);
    }
}
