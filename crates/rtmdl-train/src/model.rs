//! The network in candle: parameters as `Var`s named like [`Weights`], forward pass in
//! training (batch statistics) and inference (running statistics) mode.

use std::collections::BTreeMap;

use candle_core::{D, Device, Tensor, Var};
use ndarray::{Array2, Array4, ArrayView4, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::ops;
use crate::{Arch, BN_EPS, BN_PARAMS, Result, TrainError, Weights};

/// BN running-statistics momentum (PyTorch's default).
const BN_MOMENTUM: f32 = 0.1;

/// Fresh weights for `arch`: Kaiming-normal convolutions, PyTorch-style uniform linear
/// layers, batch norms at identity except the second one of each residual block, whose
/// gamma starts at zero (each block starts as the identity, which trains faster).
pub fn init_weights(arch: &Arch, seed: u64) -> Weights {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut w = Weights::default();
    for (name, shape) in arch.tensor_shapes() {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = if name.contains(".conv") {
            let fan_in = (shape[1] * shape[2] * shape[3]) as f32;
            let std = (2.0 / fan_in).sqrt();
            (0..n).map(|_| std * normal(&mut rng)).collect()
        } else if name.starts_with("fc.") || name.starts_with("box.") {
            let bound = 1.0 / (arch.c3 as f32).sqrt();
            (0..n).map(|_| rng.random_range(-bound..bound)).collect()
        } else if name.ends_with(".weight") {
            let zero = name.starts_with("blocks.") && name.contains(".bn2.");
            vec![if zero { 0.0 } else { 1.0 }; n]
        } else if name.ends_with(".running_var") {
            vec![1.0; n]
        } else {
            vec![0.0; n]
        };
        w.insert(name, shape, data);
    }
    w
}

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// The model's outputs for a batch, from [`predict`].
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// `[N, classes]` raw scores.
    pub logits: Array2<f32>,
    /// `[N, 4]` sigmoid box outputs (models with a box head).
    pub boxes: Option<Array2<f32>>,
}

/// The framework's own forward pass in inference mode (batch norms use their running
/// statistics), over `images` `[N, 3, H, W]` in chunks of `batch`.
pub fn predict(
    arch: &Arch,
    w: &Weights,
    images: ArrayView4<f32>,
    batch: usize,
) -> Result<Prediction> {
    let net = Net::from_weights(arch, w)?;
    net.predict(images, batch)
}

pub(crate) struct Net {
    pub arch: Arch,
    pub vars: BTreeMap<String, Var>,
}

pub(crate) fn to_tensor(a: ArrayView4<f32>) -> Result<Tensor> {
    let shape = a.shape().to_vec();
    let data: Vec<f32> = a.iter().copied().collect();
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
}

fn to_array2(t: &Tensor) -> Result<Array2<f32>> {
    let (n, c) = t.dims2()?;
    let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
    Ok(Array2::from_shape_vec((n, c), v).expect("dims match"))
}

impl Net {
    pub fn from_weights(arch: &Arch, w: &Weights) -> Result<Net> {
        arch.check(w)?;
        let mut vars = BTreeMap::new();
        for (name, (shape, data)) in &w.tensors {
            let v = Var::from_vec(data.clone(), shape.as_slice(), &Device::Cpu)?;
            vars.insert(name.clone(), v);
        }
        Ok(Net {
            arch: arch.clone(),
            vars,
        })
    }

    pub fn to_weights(&self) -> Result<Weights> {
        let mut w = Weights::default();
        for (name, v) in &self.vars {
            let t = v.as_tensor();
            let data: Vec<f32> = t.flatten_all()?.to_vec1()?;
            w.insert(name.clone(), t.dims().to_vec(), data);
        }
        Ok(w)
    }

    /// The parameters the optimiser updates (everything but the BN running statistics).
    pub fn trainable(&self) -> Vec<Var> {
        self.vars
            .iter()
            .filter(|(k, _)| !k.ends_with(".running_mean") && !k.ends_with(".running_var"))
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn var(&self, name: &str) -> Result<&Tensor> {
        self.vars
            .get(name)
            .map(|v| v.as_tensor())
            .ok_or_else(|| TrainError::Weights(format!("missing tensor {name}")))
    }

    pub(crate) fn conv(&self, x: &Tensor, w: &str) -> Result<Tensor> {
        Ok(ops::conv3x3(x, self.var(w)?)?)
    }

    pub(crate) fn bn(&self, x: &Tensor, p: &str, train: bool) -> Result<Tensor> {
        let c = x.dim(1)?;
        let shape = (1, c, 1, 1);
        let [g, b, rm, rv] = BN_PARAMS.map(|s| format!("{p}.{s}"));
        if train {
            let (y, st) = ops::batch_norm_train(x, self.var(&g)?, self.var(&b)?, BN_EPS)?;
            // Running statistics (unbiased variance, like PyTorch).
            let n = st.count as f32;
            let unbias = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
            let m = BN_MOMENTUM;
            for (name, batch, k) in [(&rm, &st.mean, 1.0), (&rv, &st.var, unbias)] {
                let v = &self.vars[name];
                let old: Vec<f32> = v.as_tensor().to_vec1()?;
                let new: Vec<f32> = old
                    .iter()
                    .zip(batch)
                    .map(|(o, b)| (1.0 - m) * o + m * k * b)
                    .collect();
                v.set(&Tensor::from_vec(new, c, &Device::Cpu)?)?;
            }
            return Ok(y);
        }
        let gamma = self.var(&g)?.reshape(shape)?;
        let beta = self.var(&b)?.reshape(shape)?;
        let mean = self.var(&rm)?.reshape(shape)?;
        let var = self.var(&rv)?.reshape(shape)?;
        let scale = (var + BN_EPS as f64)?.sqrt()?.recip()?.mul(&gamma)?;
        Ok(x.broadcast_sub(&mean)?
            .broadcast_mul(&scale)?
            .broadcast_add(&beta)?)
    }

    fn conv_bn_relu(&self, x: &Tensor, stage: &str, train: bool) -> Result<Tensor> {
        let y = self.conv(x, &format!("{stage}.conv.weight"))?;
        Ok(self.bn(&y, &format!("{stage}.bn"), train)?.relu()?)
    }

    fn linear(&self, x: &Tensor, p: &str) -> Result<Tensor> {
        let w = self.var(&format!("{p}.weight"))?;
        let b = self.var(&format!("{p}.bias"))?;
        Ok(x.matmul(&w.t()?)?.broadcast_add(b)?)
    }

    /// Returns `(logits, box)`, box after the sigmoid.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<(Tensor, Option<Tensor>)> {
        let x = self.forward_shared(x, train)?;
        self.forward_head(&x, train)
    }

    /// The shared layers (stem, down, residual blocks): images → the residual stream
    /// `[N, c2, H/4, W/4]` (`blocks.{k-1}.out`, or `down.out` without blocks).
    pub fn forward_shared(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = ops::max_pool2(&self.conv_bn_relu(x, "stem", train)?)?;
        let mut x = ops::max_pool2(&self.conv_bn_relu(&x, "down", train)?)?;
        for i in 0..self.arch.blocks {
            let p = format!("blocks.{i}");
            let y = self.conv(&x, &format!("{p}.conv1.weight"))?;
            let y = self.bn(&y, &format!("{p}.bn1"), train)?.relu()?;
            let y = self.conv(&y, &format!("{p}.conv2.weight"))?;
            let y = self.bn(&y, &format!("{p}.bn2"), train)?;
            x = (y + &x)?.relu()?;
        }
        Ok(x)
    }

    /// The private layers (head conv + BN + ReLU, pooling, `fc`, `box`): the residual
    /// stream → `(logits, box)`. Needs only the `head.*`, `fc.*` and `box.*` vars.
    pub fn forward_head(&self, x: &Tensor, train: bool) -> Result<(Tensor, Option<Tensor>)> {
        let x = self.conv_bn_relu(x, "head", train)?;
        let feat = x.mean((D::Minus2, D::Minus1))?;
        let logits = self.linear(&feat, "fc")?;
        let bx = if self.arch.box_head {
            Some(candle_nn::ops::sigmoid(&self.linear(&feat, "box")?)?)
        } else {
            None
        };
        Ok((logits, bx))
    }

    pub fn predict(&self, images: ArrayView4<f32>, batch: usize) -> Result<Prediction> {
        let n = images.len_of(Axis(0));
        let batch = batch.max(1);
        let mut logits = Array2::zeros((n, self.arch.classes));
        let mut boxes = self.arch.box_head.then(|| Array2::zeros((n, 4)));
        let mut start = 0;
        while start < n {
            let end = (start + batch).min(n);
            let x = to_tensor(images.slice(ndarray::s![start..end, .., .., ..]))?;
            let (l, b) = self.forward(&x, false)?;
            logits
                .slice_mut(ndarray::s![start..end, ..])
                .assign(&to_array2(&l)?);
            if let (Some(dst), Some(b)) = (boxes.as_mut(), b) {
                dst.slice_mut(ndarray::s![start..end, ..])
                    .assign(&to_array2(&b)?);
            }
            start = end;
        }
        Ok(Prediction { logits, boxes })
    }
}

/// Gathers `idx` of `images` into a contiguous `[B, 3, H, W]` tensor.
pub(crate) fn gather(images: &Array4<f32>, idx: &[usize]) -> Result<Tensor> {
    let per: usize = images.shape()[1..].iter().product();
    let mut data = Vec::with_capacity(idx.len() * per);
    for &i in idx {
        let img = images.index_axis(Axis(0), i);
        match img.as_slice() {
            Some(s) => data.extend_from_slice(s),
            None => data.extend(img.iter().copied()),
        }
    }
    let mut shape = images.shape().to_vec();
    shape[0] = idx.len();
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
}
