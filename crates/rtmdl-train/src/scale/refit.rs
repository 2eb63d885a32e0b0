//! The re-fit of a variant's private part with its shared layers frozen:
//! exact batch-norm re-calibration, the head trained on cached shared features,
//! then the private tuning of [`tune`](super::tune).

use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use ndarray::{Array4, Axis, s};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::family::Job;
use super::tune::tune_private;
use super::{ScaleOptions, is_shared_tensor};
use crate::model::{Net, gather, to_tensor};
use crate::{Arch, Dataset, Result, Weights, ops};

impl Job<'_> {
    /// Re-calibrates the shared batch norms and re-fits the private head of the variant
    /// `va` (weights `vw`, sliced from the reordered base); returns its weights.
    pub(super) fn refit(
        &self,
        va: &Arch,
        vw: &Weights,
        name: &str,
        calib: &[usize],
    ) -> Result<Weights> {
        let (o, model) = (self.opts, self.model);
        let net = Net::from_weights(va, vw)?;
        self.stage(format!("{model} {name}: re-calibrate batch norms"), 0);
        calibrate_shared(&net, &self.train.images, calib)?;

        let n = self.train.len();
        if o.epochs > 0 {
            self.stage(format!("{model} {name}: shared features"), n);
            let feats = features(&net, &self.train.images, &|d| self.step(d, n))?;
            let steps = n.div_ceil(o.batch) * o.epochs;
            self.stage(format!("{model} {name}: re-fit head"), steps);
            fit_head(&net, &feats, self.train, o, &|d| self.step(d, steps))?;
        }
        calibrate_head(&net, &self.train.images, calib)?;
        if o.tune_epochs > 0 {
            let steps = n.div_ceil(o.batch) * o.tune_epochs;
            self.stage(format!("{model} {name}: tune private part"), steps);
            tune_private(&net, self.train, o, &|d| self.step(d, steps))?;
        }
        net.to_weights()
    }
}

/// Exact per-channel mean and (population) variance of `[N, C, H, W]` tensors, written
/// as the running statistics of batch norm `bn`.
fn set_stats(net: &Net, bn: &str, ys: &[Tensor]) -> Result<()> {
    let c = ys[0].dim(1)?;
    let mut sum = vec![0.0f64; c];
    let mut sq = vec![0.0f64; c];
    let mut count = 0usize;
    for y in ys {
        let (b, cc, h, w) = y.dims4()?;
        debug_assert_eq!(cc, c);
        let v: Vec<f32> = y.flatten_all()?.to_vec1()?;
        let hw = h * w;
        for bi in 0..b {
            for ch in 0..c {
                let chunk = &v[(bi * c + ch) * hw..(bi * c + ch + 1) * hw];
                let (mut s1, mut s2) = (0.0f64, 0.0f64);
                for &x in chunk {
                    s1 += x as f64;
                    s2 += (x as f64) * (x as f64);
                }
                sum[ch] += s1;
                sq[ch] += s2;
            }
        }
        count += b * hw;
    }
    let n = count.max(1) as f64;
    let mean: Vec<f32> = sum.iter().map(|s| (s / n) as f32).collect();
    let var: Vec<f32> = sum
        .iter()
        .zip(&sq)
        .map(|(s, q)| ((q / n - (s / n) * (s / n)).max(0.0)) as f32)
        .collect();
    for (suffix, data) in [("running_mean", mean), ("running_var", var)] {
        let v = &net.vars[&format!("{bn}.{suffix}")];
        v.set(&Tensor::from_vec(data, c, &Device::Cpu)?)?;
    }
    Ok(())
}

const CHUNK: usize = 128;

/// Sets every shared batch norm's running statistics to the exact statistics of its
/// input over the training images `idx`, layer by layer (each layer sees the earlier
/// layers already re-calibrated, in inference mode).
fn calibrate_shared(net: &Net, images: &Array4<f32>, idx: &[usize]) -> Result<()> {
    let mut xs: Vec<Tensor> = idx
        .chunks(CHUNK)
        .map(|c| gather(images, c))
        .collect::<Result<_>>()?;
    for stage in ["stem", "down"] {
        let bn = format!("{stage}.bn");
        let ys: Vec<Tensor> = xs
            .iter()
            .map(|x| net.conv(x, &format!("{stage}.conv.weight")))
            .collect::<Result<_>>()?;
        set_stats(net, &bn, &ys)?;
        xs = ys
            .iter()
            .map(|y| Ok(ops::max_pool2(&net.bn(y, &bn, false)?.relu()?)?))
            .collect::<Result<_>>()?;
    }
    for i in 0..net.arch.blocks {
        let p = format!("blocks.{i}");
        let (b1, b2) = (format!("{p}.bn1"), format!("{p}.bn2"));
        let ys: Vec<Tensor> = xs
            .iter()
            .map(|x| net.conv(x, &format!("{p}.conv1.weight")))
            .collect::<Result<_>>()?;
        set_stats(net, &b1, &ys)?;
        let hs: Vec<Tensor> = ys
            .iter()
            .map(|y| Ok(net.bn(y, &b1, false)?.relu()?))
            .collect::<Result<_>>()?;
        drop(ys);
        let zs: Vec<Tensor> = hs
            .iter()
            .map(|h| net.conv(h, &format!("{p}.conv2.weight")))
            .collect::<Result<_>>()?;
        set_stats(net, &b2, &zs)?;
        xs = zs
            .iter()
            .zip(&xs)
            .map(|(z, x)| Ok((net.bn(z, &b2, false)? + x)?.relu()?))
            .collect::<Result<_>>()?;
    }
    Ok(())
}

/// The head batch norm's running statistics, exactly, over the training images `idx`
/// (through the shared part in inference mode).
fn calibrate_head(net: &Net, images: &Array4<f32>, idx: &[usize]) -> Result<()> {
    let ys: Vec<Tensor> = idx
        .chunks(CHUNK)
        .map(|c| {
            let f = net.forward_shared(&gather(images, c)?, false)?;
            net.conv(&f, "head.conv.weight")
        })
        .collect::<Result<_>>()?;
    set_stats(net, "head.bn", &ys)
}

/// The shared part's output (inference mode) for every image: `[N, c2, H/4, W/4]`.
fn features(net: &Net, images: &Array4<f32>, step: &dyn Fn(usize)) -> Result<Array4<f32>> {
    let n = images.len_of(Axis(0));
    let mut out: Option<Array4<f32>> = None;
    let mut start = 0;
    while start < n {
        let end = (start + 2 * CHUNK).min(n);
        let x = to_tensor(images.slice(s![start..end, .., .., ..]))?;
        let f = net.forward_shared(&x, false)?;
        let (b, c, h, w) = f.dims4()?;
        let dst = out.get_or_insert_with(|| Array4::zeros((n, c, h, w)));
        let v: Vec<f32> = f.flatten_all()?.to_vec1()?;
        let chunk = Array4::from_shape_vec((b, c, h, w), v).expect("dims match");
        dst.slice_mut(s![start..end, .., .., ..]).assign(&chunk);
        start = end;
        step(end);
    }
    Ok(out.expect("at least one image"))
}

/// Whether the optimiser updates this tensor in the re-fit: the head's parameters
/// (not its running statistics).
pub(super) fn is_head_param(name: &str) -> bool {
    !is_shared_tensor(name) && !name.ends_with(".running_mean") && !name.ends_with(".running_var")
}

/// The learning rate at step `t` (0-based) of `total`: linear warm-up over the first
/// 3 % of the steps, then a cosine from `peak` down to zero.
pub(super) fn schedule(peak: f64, t: usize, total: usize) -> f64 {
    let (t, total) = (t as f64, total as f64);
    let warmup = (total * 0.03).max(1.0);
    if t < warmup {
        peak * (t + 1.0) / warmup
    } else {
        0.5 * peak * (1.0 + (std::f64::consts::PI * (t - warmup) / (total - warmup).max(1.0)).cos())
    }
}

/// Trains the private head of `net` on the frozen features: AdamW, 3 % linear
/// warm-up then cosine to zero, cross-entropy plus the weighted L1 box loss; the last
/// epoch's weights are kept (no selection on held-out data). `step(done)` after
/// every optimiser step.
fn fit_head(
    net: &Net,
    feats: &Array4<f32>,
    d: &Dataset,
    o: &ScaleOptions,
    step: &dyn Fn(usize),
) -> Result<()> {
    let vars: Vec<Var> = net
        .vars
        .iter()
        .filter(|(k, _)| is_head_param(k))
        .map(|(_, v)| v.clone())
        .collect();
    let mut opt = AdamW::new(
        vars,
        ParamsAdamW {
            lr: o.lr,
            weight_decay: o.weight_decay,
            ..Default::default()
        },
    )?;
    let n = d.len();
    let total = n.div_ceil(o.batch) * o.epochs;
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed ^ 0x04ea_df17);
    let mut k = 0usize;
    for _ in 0..o.epochs {
        order.shuffle(&mut rng);
        for idx in order.chunks(o.batch) {
            k += 1;
            if idx.len() < 2 {
                step(k);
                continue;
            }
            let lr = schedule(o.lr, k - 1, total);
            opt.set_learning_rate(lr);
            let x = gather(feats, idx)?;
            let (logits, bx) = net.forward_head(&x, true)?;
            let loss = loss(d, &logits, bx, idx, o)?;
            opt.backward_step(&loss)?;
            step(k);
        }
    }
    Ok(())
}

/// The re-fit loss of the batch `idx` of `d`: cross-entropy plus the weighted L1 box
/// loss (box-head models), as in [`train`](crate::train).
pub(super) fn loss(
    d: &Dataset,
    logits: &Tensor,
    bx: Option<Tensor>,
    idx: &[usize],
    o: &ScaleOptions,
) -> Result<Tensor> {
    let labels: Vec<u32> = idx.iter().map(|&i| d.labels[i]).collect();
    let y = Tensor::from_vec(labels, idx.len(), &Device::Cpu)?;
    let mut loss = candle_nn::loss::cross_entropy(logits, &y)?;
    if let (Some(bx), Some(boxes)) = (bx, &d.boxes) {
        let target: Vec<f32> = idx.iter().flat_map(|&i| boxes[i]).collect();
        let target = Tensor::from_vec(target, (idx.len(), 4), &Device::Cpu)?;
        let l1 = (bx - target)?.abs()?.mean_all()?;
        loss = (loss + (l1 * o.box_weight as f64)?)?;
    }
    Ok(loss)
}
