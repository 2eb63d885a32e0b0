//! Private tuning: every batch norm's statistics as trainable per-channel
//! parameters, trained end to end with the head through the frozen shared convs.

use std::collections::BTreeMap;

use candle_core::{Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::refit::{is_head_param, loss, schedule};
use super::{ScaleOptions, is_shared_tensor};
use crate::model::{Net, gather};
use crate::{Arch, Dataset, Result, ops};

/// The batch norms of `arch`, in forward order (the head's last).
fn bn_layers(arch: &Arch) -> Vec<String> {
    let mut v = vec!["stem.bn".to_string(), "down.bn".to_string()];
    for i in 0..arch.blocks {
        v.push(format!("blocks.{i}.bn1"));
        v.push(format!("blocks.{i}.bn2"));
    }
    v.push("head.bn".into());
    v
}

/// Trainable private statistics of one batch norm: mean and log variance.
struct TunedBn {
    mean: Var,
    log_var: Var,
}

/// The running variance a trained log variance stands for: `exp(log_var) - eps`, at
/// least 0 (the log variance is initialised as `ln(var + eps)`).
fn running_var(log_var: &Var) -> Result<Tensor> {
    Ok((log_var.as_tensor().exp()? - crate::BN_EPS as f64)?.relu()?)
}

/// Inference-mode batch norm with the trainable statistics `t` and the (frozen or
/// trainable) gamma / beta of `net`.
fn bn_tuned(net: &Net, x: &Tensor, bn: &str, t: &TunedBn) -> Result<Tensor> {
    let c = x.dim(1)?;
    let shape = (1, c, 1, 1);
    let gamma = net.vars[&format!("{bn}.weight")]
        .as_tensor()
        .reshape(shape)?;
    let beta = net.vars[&format!("{bn}.bias")].as_tensor().reshape(shape)?;
    // exactly what the exported graph computes from running_var = exp(log_var) - eps
    let std = (running_var(&t.log_var)? + crate::BN_EPS as f64)?.sqrt()?;
    let scale = std.recip()?.reshape(shape)?.broadcast_mul(&gamma)?;
    let mean = t.mean.as_tensor().reshape(shape)?;
    Ok(x.broadcast_sub(&mean)?
        .broadcast_mul(&scale)?
        .broadcast_add(&beta)?)
}

/// The whole variant in inference mode with trainable statistics: `(logits, box)`.
fn forward_tuned(
    net: &Net,
    x: &Tensor,
    t: &BTreeMap<String, TunedBn>,
) -> Result<(Tensor, Option<Tensor>)> {
    // The shared convs are frozen: detached, so no weight gradient is computed.
    let conv = |x: &Tensor, w: &str| -> Result<Tensor> {
        let wt = &net.vars[w];
        let wt = if is_shared_tensor(w) {
            wt.as_tensor().detach()
        } else {
            wt.as_tensor().clone()
        };
        Ok(ops::conv3x3(x, &wt)?)
    };
    let cbr = |x: &Tensor, stage: &str| -> Result<Tensor> {
        let y = conv(x, &format!("{stage}.conv.weight"))?;
        let bn = format!("{stage}.bn");
        Ok(bn_tuned(net, &y, &bn, &t[&bn])?.relu()?)
    };
    let x = ops::max_pool2(&cbr(x, "stem")?)?;
    let mut x = ops::max_pool2(&cbr(&x, "down")?)?;
    for i in 0..net.arch.blocks {
        let p = format!("blocks.{i}");
        let (b1, b2) = (format!("{p}.bn1"), format!("{p}.bn2"));
        let y = conv(&x, &format!("{p}.conv1.weight"))?;
        let y = bn_tuned(net, &y, &b1, &t[&b1])?.relu()?;
        let y = conv(&y, &format!("{p}.conv2.weight"))?;
        let y = bn_tuned(net, &y, &b2, &t[&b2])?;
        x = (y + &x)?.relu()?;
    }
    let x = cbr(&x, "head")?;
    let feat = x.mean((candle_core::D::Minus2, candle_core::D::Minus1))?;
    let linear = |p: &str| -> Result<Tensor> {
        let w = net.vars[&format!("{p}.weight")].as_tensor();
        let b = net.vars[&format!("{p}.bias")].as_tensor();
        Ok(feat.matmul(&w.t()?)?.broadcast_add(b)?)
    };
    let logits = linear("fc")?;
    let bx = if net.arch.box_head {
        Some(candle_nn::ops::sigmoid(&linear("box")?)?)
    } else {
        None
    };
    Ok((logits, bx))
}

/// Second re-fit stage: the whole private part end to end through the frozen shared
/// convs and gamma / beta. Every batch norm runs in inference mode with its statistics
/// as trainable per-channel parameters (mean, log variance; no weight decay), trained
/// together with the head (AdamW with weight decay); the results become the running
/// statistics. The schedule is the head re-fit's.
pub(super) fn tune_private(
    net: &Net,
    d: &Dataset,
    o: &ScaleOptions,
    step: &dyn Fn(usize),
) -> Result<()> {
    let tuned = tuned_stats(net)?;
    let head: Vec<Var> = net
        .vars
        .iter()
        .filter(|(k, _)| is_head_param(k))
        .map(|(_, v)| v.clone())
        .collect();
    let stats: Vec<Var> = tuned
        .values()
        .flat_map(|t| [t.mean.clone(), t.log_var.clone()])
        .collect();
    let mut opt_head = AdamW::new(
        head,
        ParamsAdamW {
            lr: o.lr,
            weight_decay: o.weight_decay,
            ..Default::default()
        },
    )?;
    let mut opt_stats = AdamW::new(
        stats,
        ParamsAdamW {
            lr: o.lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let n = d.len();
    let total = n.div_ceil(o.batch) * o.tune_epochs;
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed ^ 0x70e5);
    let mut k = 0usize;
    for _ in 0..o.tune_epochs {
        order.shuffle(&mut rng);
        for idx in order.chunks(o.batch) {
            k += 1;
            let lr = schedule(o.lr, k - 1, total);
            opt_head.set_learning_rate(lr);
            opt_stats.set_learning_rate(lr);
            let x = gather(&d.images, idx)?;
            let (logits, bx) = forward_tuned(net, &x, &tuned)?;
            let loss = loss(d, &logits, bx, idx, o)?;
            let grads = loss.backward()?;
            opt_head.step(&grads)?;
            opt_stats.step(&grads)?;
            step(k);
        }
    }
    store_tuned(net, &tuned)
}

/// Trainable copies of every batch norm's running statistics (log variance
/// `ln(var + eps)`).
fn tuned_stats(net: &Net) -> Result<BTreeMap<String, TunedBn>> {
    let mut tuned = BTreeMap::new();
    for bn in bn_layers(&net.arch) {
        // Copies: the net's variables are set from these at the end.
        let m = net.vars[&format!("{bn}.running_mean")].as_tensor().copy()?;
        let v = net.vars[&format!("{bn}.running_var")].as_tensor();
        let lv = (v + crate::BN_EPS as f64)?.log()?;
        tuned.insert(
            bn,
            TunedBn {
                mean: Var::from_tensor(&m)?,
                log_var: Var::from_tensor(&lv)?,
            },
        );
    }
    Ok(tuned)
}

/// Writes trained statistics back as the net's running statistics.
fn store_tuned(net: &Net, tuned: &BTreeMap<String, TunedBn>) -> Result<()> {
    for (bn, tb) in tuned {
        net.vars[&format!("{bn}.running_mean")].set(&tb.mean.as_tensor().detach().copy()?)?;
        net.vars[&format!("{bn}.running_var")].set(&running_var(&tb.log_var)?.detach().copy()?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use rand::Rng;

    /// The tuning forward pass, with moved statistics, is exactly the inference-mode
    /// network once the statistics are stored as running mean / variance (so what is
    /// trained is what is exported).
    #[test]
    fn tuned_forward_matches_stored_statistics() {
        let arch = Arch {
            name: "t".into(),
            height: 8,
            width: 8,
            c1: 3,
            c2: 4,
            c3: 5,
            blocks: 1,
            classes: 3,
            box_head: true,
        };
        let net = Net::from_weights(&arch, &crate::init_weights(&arch, 1)).unwrap();
        // Non-trivial gammas (the second block BN starts at zero).
        let g = &net.vars["blocks.0.bn2.weight"];
        g.set(&Tensor::from_vec(vec![0.5f32, -1.0, 2.0, 1.5], 4, &Device::Cpu).unwrap())
            .unwrap();
        let tuned = tuned_stats(&net).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for t in tuned.values() {
            let n = t.mean.as_tensor().dim(0).unwrap();
            let m: Vec<f32> = (0..n).map(|_| rng.random_range(-0.5..0.5)).collect();
            let lv: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..1.0)).collect();
            t.mean
                .set(&Tensor::from_vec(m, n, &Device::Cpu).unwrap())
                .unwrap();
            t.log_var
                .set(&Tensor::from_vec(lv, n, &Device::Cpu).unwrap())
                .unwrap();
        }
        let x: Vec<f32> = (0..2 * 3 * 64).map(|_| rng.random()).collect();
        let x = Tensor::from_vec(x, (2, 3, 8, 8), &Device::Cpu).unwrap();
        let (l1, b1) = forward_tuned(&net, &x, &tuned).unwrap();
        store_tuned(&net, &tuned).unwrap();
        let (l2, b2) = net.forward(&x, false).unwrap();
        let d = |a: &Tensor, b: &Tensor| {
            (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert!(d(&l1, &l2) < 1e-5, "logits differ by {}", d(&l1, &l2));
        assert!(d(&b1.unwrap(), &b2.unwrap()) < 1e-5);
        let before = crate::init_weights(&arch, 1);
        let after = net.to_weights().unwrap();
        assert_ne!(
            before.get("stem.bn.running_var").unwrap(),
            after.get("stem.bn.running_var").unwrap()
        );
    }
}
