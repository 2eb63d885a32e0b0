//! Fused CPU kernels for the training hot path, as candle custom ops with their own
//! backward passes.
//!
//! candle's generic CPU paths are slow for these small-image CNNs: a reduction over
//! the batch and spatial dims (batch-norm statistics, and the backward of every
//! `[1, C, 1, 1]` broadcast) walks the tensor with a division per element, and the
//! input gradient of `conv2d` is a direct loop. Profiling one epoch showed those
//! two at about half the time. These ops compute the same functions (checked against
//! candle's own ops in the tests) with per-sample im2col + `gemm` (the matrix kernel
//! candle itself uses) and single-pass per-channel loops.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use gemm::{Parallelism, gemm};
use rayon::prelude::*;

type CResult<T> = candle_core::Result<T>;

/// Sample groups the weight gradient of [`conv3x3`] is split into.
const DW_GROUPS: usize = 8;

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> CResult<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(v) => v.as_slice(),
        _ => candle_core::bail!("{what}: only f32 is supported"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{what}: the input must be contiguous"),
    }
}

fn to_vec(t: &Tensor) -> CResult<Vec<f32>> {
    t.contiguous()?.flatten_all()?.to_vec1::<f32>()
}

/// Row-major matrix product `dst (m×n) [+]= a (m×k, strides ars/acs) · b (k×n, strides brs/bcs)`.
#[allow(clippy::too_many_arguments)]
fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    a: &[f32],
    a_rs: isize,
    a_cs: isize,
    b: &[f32],
    b_rs: isize,
    b_cs: isize,
) {
    debug_assert!(dst.len() >= m * n);
    // Safety: the strides describe matrices inside the given slices (checked by the
    // callers' shapes), and `dst` does not alias `a` or `b`.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

/// `col[(ci*9 + ky*3 + kx), y*w + x] = img[ci, y+ky-1, x+kx-1]` (zero outside).
fn im2col(img: &[f32], cin: usize, h: usize, w: usize, col: &mut [f32]) {
    let hw = h * w;
    for ci in 0..cin {
        let plane = &img[ci * hw..(ci + 1) * hw];
        for ky in 0..3 {
            for kx in 0..3 {
                let row = &mut col[(ci * 9 + ky * 3 + kx) * hw..][..hw];
                for y in 0..h {
                    let dst = &mut row[y * w..(y + 1) * w];
                    let sy = y as isize + ky as isize - 1;
                    if sy < 0 || sy >= h as isize {
                        dst.fill(0.0);
                        continue;
                    }
                    let src = &plane[sy as usize * w..(sy as usize + 1) * w];
                    match kx {
                        0 => {
                            dst[0] = 0.0;
                            dst[1..].copy_from_slice(&src[..w - 1]);
                        }
                        1 => dst.copy_from_slice(src),
                        _ => {
                            dst[..w - 1].copy_from_slice(&src[1..]);
                            dst[w - 1] = 0.0;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: `img[ci, y+ky-1, x+kx-1] += col[...]`; `img` must be zeroed.
fn col2im(col: &[f32], cin: usize, h: usize, w: usize, img: &mut [f32]) {
    let hw = h * w;
    for ci in 0..cin {
        let plane = &mut img[ci * hw..(ci + 1) * hw];
        for ky in 0..3 {
            for kx in 0..3 {
                let row = &col[(ci * 9 + ky * 3 + kx) * hw..][..hw];
                for y in 0..h {
                    let sy = y as isize + ky as isize - 1;
                    if sy < 0 || sy >= h as isize {
                        continue;
                    }
                    let src = &row[y * w..(y + 1) * w];
                    let dst = &mut plane[sy as usize * w..(sy as usize + 1) * w];
                    match kx {
                        0 => dst[..w - 1]
                            .iter_mut()
                            .zip(&src[1..])
                            .for_each(|(d, s)| *d += s),
                        1 => dst.iter_mut().zip(src).for_each(|(d, s)| *d += s),
                        _ => dst[1..]
                            .iter_mut()
                            .zip(&src[..w - 1])
                            .for_each(|(d, s)| *d += s),
                    }
                }
            }
        }
    }
}

/// 3×3 convolution, stride 1, padding 1, no bias: `x [B,Cin,H,W]`, `w [Cout,Cin,3,3]`.
struct Conv3x3;

impl CustomOp2 for Conv3x3 {
    fn name(&self) -> &'static str {
        "rtmdl-conv3x3"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "conv3x3 input")?;
        let wt = f32_slice(s2, l2, "conv3x3 weight")?;
        let (b, cin, h, w) = l1.shape().dims4()?;
        let (cout, cin2, kh, kw) = l2.shape().dims4()?;
        if cin != cin2 || kh != 3 || kw != 3 {
            candle_core::bail!("conv3x3: input {:?} vs weight {:?}", l1.shape(), l2.shape());
        }
        let (hw, k) = (h * w, cin * 9);
        let mut out = vec![0.0f32; b * cout * hw];
        out.par_chunks_mut(cout * hw)
            .zip(x.par_chunks(cin * hw))
            .for_each_init(
                || vec![0.0f32; k * hw],
                |col, (y, xb)| {
                    im2col(xb, cin, h, w, col);
                    matmul(
                        cout,
                        hw,
                        k,
                        y,
                        false,
                        wt,
                        k as isize,
                        1,
                        col,
                        hw as isize,
                        1,
                    );
                },
            );
        Ok((CpuStorage::F32(out), Shape::from((b, cout, h, w))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        wt: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        let (b, cin, h, w) = x.dims4()?;
        let cout = wt.dim(0)?;
        let (hw, k) = (h * w, cin * 9);
        let need_dx = x.track_op();
        // A frozen weight (a plain tensor, not a variable) needs no gradient.
        let need_dw = wt.track_op();
        let xv = to_vec(x)?;
        let wv = to_vec(wt)?;
        let gv = to_vec(grad)?;
        let mut dx = vec![0.0f32; if need_dx { b * cin * hw } else { 0 }];
        let per = |(i, dxb): (usize, &mut [f32]), col: &mut Vec<f32>, dw: &mut Vec<f32>| {
            let gb = &gv[i * cout * hw..(i + 1) * cout * hw];
            if need_dw {
                im2col(&xv[i * cin * hw..(i + 1) * cin * hw], cin, h, w, col);
                // dW += g_b (Cout×HW) · col_bᵀ (HW×K)
                matmul(
                    cout,
                    k,
                    hw,
                    dw,
                    true,
                    gb,
                    hw as isize,
                    1,
                    col,
                    1,
                    hw as isize,
                );
            }
            if !dxb.is_empty() {
                // dcol = Wᵀ (K×Cout) · g_b (Cout×HW), reusing `col`.
                matmul(
                    k,
                    hw,
                    cout,
                    col,
                    false,
                    &wv,
                    1,
                    k as isize,
                    gb,
                    hw as isize,
                    1,
                );
                col2im(col, cin, h, w, dxb);
            }
        };
        // Fixed groups of samples, each summed in order, then the groups in order: the
        // result does not depend on the thread count or on work stealing.
        let group = b.div_ceil(DW_GROUPS).max(1);
        let run_group = |g: usize, dxg: &mut [f32]| {
            let mut col = vec![0.0f32; k * hw];
            let mut dw = vec![0.0f32; cout * k];
            for j in 0..group.min(b - g * group) {
                let i = g * group + j;
                let dxb: &mut [f32] = if dxg.is_empty() {
                    &mut []
                } else {
                    &mut dxg[j * cin * hw..(j + 1) * cin * hw]
                };
                per((i, dxb), &mut col, &mut dw);
            }
            dw
        };
        let parts: Vec<Vec<f32>> = if need_dx {
            dx.par_chunks_mut(group * cin * hw)
                .enumerate()
                .map(|(g, dxg)| run_group(g, dxg))
                .collect()
        } else {
            (0..b.div_ceil(group))
                .into_par_iter()
                .map(|g| run_group(g, &mut []))
                .collect()
        };
        let dw = parts
            .into_iter()
            .reduce(add_vec)
            .unwrap_or_else(|| vec![0.0f32; cout * k]);
        let dx = if need_dx {
            Some(Tensor::from_vec(dx, x.shape(), x.device())?)
        } else {
            None
        };
        let dw = if need_dw {
            Some(Tensor::from_vec(dw, wt.shape(), wt.device())?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

fn add_vec(mut a: Vec<f32>, b: Vec<f32>) -> Vec<f32> {
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
    a
}

/// 3×3 convolution, stride 1, padding 1, no bias (`x [B,Cin,H,W]`, `w [Cout,Cin,3,3]`).
pub(crate) fn conv3x3(x: &Tensor, w: &Tensor) -> CResult<Tensor> {
    x.contiguous()?.apply_op2(&w.contiguous()?, Conv3x3)
}

/// Batch statistics of the last [`batch_norm_train`] call: per-channel mean and biased
/// variance.
#[derive(Debug, Default, Clone)]
pub(crate) struct BnStats {
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
    pub count: usize,
}

/// Training-mode batch norm `(x - mean) / sqrt(var + eps) * gamma + beta` over the
/// batch statistics of `x [B,C,H,W]`.
struct BatchNormTrain {
    eps: f32,
    stats: Arc<Mutex<BnStats>>,
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "rtmdl-batchnorm-train"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, "batch norm input")?;
        let gamma = f32_slice(s2, l2, "batch norm gamma")?;
        let beta = f32_slice(s3, l3, "batch norm beta")?;
        let (b, c, h, w) = l1.shape().dims4()?;
        let hw = h * w;
        let n = (b * hw) as f32;
        let (mean, var): (Vec<f32>, Vec<f32>) = (0..c)
            .into_par_iter()
            .map(|ci| {
                let plane = |bi: usize| &x[(bi * c + ci) * hw..][..hw];
                let s: f64 = (0..b)
                    .map(|bi| plane(bi).iter().map(|&v| v as f64).sum::<f64>())
                    .sum();
                let m = (s / n as f64) as f32;
                let q: f64 = (0..b)
                    .map(|bi| {
                        plane(bi)
                            .iter()
                            .map(|&v| ((v - m) as f64).powi(2))
                            .sum::<f64>()
                    })
                    .sum();
                (m, (q / n as f64) as f32)
            })
            .unzip();
        let mut out = vec![0.0f32; x.len()];
        out.par_chunks_mut(hw)
            .zip(x.par_chunks(hw))
            .enumerate()
            .for_each(|(i, (y, xp))| {
                let ci = i % c;
                let scale = gamma[ci] / (var[ci] + self.eps).sqrt();
                let shift = beta[ci] - mean[ci] * scale;
                y.iter_mut()
                    .zip(xp)
                    .for_each(|(y, &v)| *y = v * scale + shift);
            });
        *self.stats.lock().expect("stats lock") = BnStats {
            mean,
            var,
            count: b * hw,
        };
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, c, h, w) = x.dims4()?;
        let hw = h * w;
        let n = (b * hw) as f32;
        let (mean, var) = {
            let s = self.stats.lock().expect("stats lock");
            (s.mean.clone(), s.var.clone())
        };
        let xv = to_vec(x)?;
        let gv = to_vec(grad)?;
        let gam = to_vec(gamma)?;
        let inv: Vec<f32> = var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect();
        // Per-plane sums of g and g·x̂, then per channel.
        let sums: Vec<(f32, f32)> = gv
            .par_chunks(hw)
            .zip(xv.par_chunks(hw))
            .enumerate()
            .map(|(i, (gp, xp))| {
                let ci = i % c;
                let (m, iv) = (mean[ci], inv[ci]);
                gp.iter()
                    .zip(xp)
                    .fold((0.0f32, 0.0f32), |(sg, sgx), (g, v)| {
                        (sg + g, sgx + g * (v - m) * iv)
                    })
            })
            .collect();
        let mut dgamma = vec![0.0f32; c];
        let mut dbeta = vec![0.0f32; c];
        for (i, (sg, sgx)) in sums.iter().enumerate() {
            dbeta[i % c] += sg;
            dgamma[i % c] += sgx;
        }
        let mut dx = vec![0.0f32; xv.len()];
        dx.par_chunks_mut(hw)
            .zip(gv.par_chunks(hw).zip(xv.par_chunks(hw)))
            .enumerate()
            .for_each(|(i, (dp, (gp, xp)))| {
                let ci = i % c;
                let (m, iv) = (mean[ci], inv[ci]);
                let k = gam[ci] * iv / n;
                let (sg, sgx) = (dbeta[ci], dgamma[ci]);
                for ((d, g), v) in dp.iter_mut().zip(gp).zip(xp) {
                    *d = k * (n * g - sg - (v - m) * iv * sgx);
                }
            });
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dgamma, c, dev)?),
            Some(Tensor::from_vec(dbeta, c, dev)?),
        ))
    }
}

/// Training-mode batch norm; returns the output and the batch statistics it used.
pub(crate) fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f32,
) -> CResult<(Tensor, BnStats)> {
    let stats = Arc::new(Mutex::new(BnStats::default()));
    let op = BatchNormTrain {
        eps,
        stats: stats.clone(),
    };
    let y = x
        .contiguous()?
        .apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    let s = stats.lock().expect("stats lock").clone();
    Ok((y, s))
}

/// 2×2 max pool, stride 2 (odd trailing rows / columns are dropped, like ONNX `MaxPool`
/// without padding).
struct MaxPool2;

impl CustomOp1 for MaxPool2 {
    fn name(&self) -> &'static str {
        "rtmdl-maxpool2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, "max pool input")?;
        let (b, c, h, w) = l.shape().dims4()?;
        let (oh, ow) = (h / 2, w / 2);
        let mut out = vec![0.0f32; b * c * oh * ow];
        x.par_chunks(h * w)
            .zip(out.par_chunks_mut(oh * ow))
            .for_each(|(p, o)| {
                for y in 0..oh {
                    for xx in 0..ow {
                        let i = 2 * y * w + 2 * xx;
                        o[y * ow + xx] = p[i].max(p[i + 1]).max(p[i + w]).max(p[i + w + 1]);
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((b, c, oh, ow))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        let (_, _, h, w) = arg.dims4()?;
        let (oh, ow) = (h / 2, w / 2);
        let xv = to_vec(arg)?;
        let gv = to_vec(grad)?;
        let mut dx = vec![0.0f32; xv.len()];
        let planes = xv.par_chunks(h * w).zip(gv.par_chunks(oh * ow));
        planes
            .zip(dx.par_chunks_mut(h * w))
            .for_each(|((p, g), d)| {
                for y in 0..oh {
                    for xx in 0..ow {
                        let i = 2 * y * w + 2 * xx;
                        // The first maximum in row-major order gets the gradient.
                        let mut best = i;
                        for j in [i + 1, i + w, i + w + 1] {
                            if p[j] > p[best] {
                                best = j;
                            }
                        }
                        d[best] += g[y * ow + xx];
                    }
                }
            });
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

/// 2×2 max pool with stride 2.
pub(crate) fn max_pool2(x: &Tensor) -> CResult<Tensor> {
    x.contiguous()?.apply_op1(MaxPool2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn close(a: &Tensor, b: &Tensor, tol: f32) {
        let a = to_vec(a).unwrap();
        let b = to_vec(b).unwrap();
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "at {i}: {x} vs {y}");
        }
    }

    fn rand(shape: &[usize], seed: u64) -> Tensor {
        use rand::{Rng, SeedableRng};
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| r.random_range(-1.0..1.0)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn conv_matches_candle_forward_and_backward() {
        let x = Var::from_tensor(&rand(&[3, 4, 5, 7], 1)).unwrap();
        let w = Var::from_tensor(&rand(&[6, 4, 3, 3], 2)).unwrap();
        let up = rand(&[3, 6, 5, 7], 3);
        let ours = conv3x3(&x, &w).unwrap();
        let theirs = x.conv2d(&w, 1, 1, 1, 1).unwrap();
        close(&ours, &theirs, 1e-5);
        let g1 = (ours * &up).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &up)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        close(g1.get(&x).unwrap(), g2.get(&x).unwrap(), 1e-4);
        close(g1.get(&w).unwrap(), g2.get(&w).unwrap(), 1e-4);
    }

    #[test]
    fn conv_skips_input_grad_of_constants() {
        let x = rand(&[2, 3, 4, 4], 1);
        let w = Var::from_tensor(&rand(&[2, 3, 3, 3], 2)).unwrap();
        let g = conv3x3(&x, &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(g.get(&x).is_none());
        assert!(g.get(&w).is_some());
    }

    #[test]
    fn batch_norm_matches_candle() {
        let x = Var::from_tensor(&rand(&[4, 3, 5, 6], 4)).unwrap();
        let g = Var::from_tensor(&rand(&[3], 5)).unwrap();
        let b = Var::from_tensor(&rand(&[3], 6)).unwrap();
        let up = rand(&[4, 3, 5, 6], 7);
        let (ours, stats) = batch_norm_train(&x, &g, &b, 1e-5).unwrap();
        let mean = x.mean_keepdim((0, 2, 3)).unwrap();
        let xc = x.broadcast_sub(&mean).unwrap();
        let var = xc.sqr().unwrap().mean_keepdim((0, 2, 3)).unwrap();
        let theirs = xc
            .broadcast_div(&(var.clone() + 1e-5).unwrap().sqrt().unwrap())
            .unwrap()
            .broadcast_mul(&g.reshape((1, 3, 1, 1)).unwrap())
            .unwrap()
            .broadcast_add(&b.reshape((1, 3, 1, 1)).unwrap())
            .unwrap();
        close(&ours, &theirs, 1e-5);
        close(
            &Tensor::new(stats.var.as_slice(), &Device::Cpu).unwrap(),
            &var.flatten_all().unwrap(),
            1e-5,
        );
        assert_eq!(stats.count, 4 * 30);
        let g1 = (ours * &up).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &up)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&x, &g, &b] {
            close(g1.get(v).unwrap(), g2.get(v).unwrap(), 1e-4);
        }
    }

    #[test]
    fn max_pool_matches_candle_forward_and_routes_gradients() {
        let x = Var::from_tensor(&rand(&[2, 3, 6, 4], 8)).unwrap();
        let up = rand(&[2, 3, 3, 2], 9);
        let ours = max_pool2(&x).unwrap();
        close(&ours, &x.max_pool2d(2).unwrap(), 0.0);
        // The gradient goes to each window's maximum, unscaled. (candle 0.9's own
        // max-pool backward scales it by 1/4, so it is not the reference here.)
        let g = (ours * &up).unwrap().sum_all().unwrap().backward().unwrap();
        let xv = to_vec(&x).unwrap();
        let uv = to_vec(&up).unwrap();
        let mut want = vec![0.0f32; xv.len()];
        for p in 0..6 {
            for oy in 0..3 {
                for ox in 0..2 {
                    let idx = [(0, 0), (0, 1), (1, 0), (1, 1)]
                        .map(|(dy, dx)| p * 24 + (2 * oy + dy) * 4 + 2 * ox + dx);
                    let best = *idx
                        .iter()
                        .max_by(|a, b| xv[**a].total_cmp(&xv[**b]))
                        .unwrap();
                    want[best] += uv[p * 6 + oy * 2 + ox];
                }
            }
        }
        close(
            g.get(&x).unwrap(),
            &Tensor::new(want.as_slice(), &Device::Cpu).unwrap(),
            0.0,
        );
    }
}
