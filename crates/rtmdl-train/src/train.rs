//! The training loop: AdamW, cross-entropy (+ L1 box loss), cosine learning rate,
//! model selection on the validation split.

use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::eval::{argmax, iou};
use crate::model::{Net, gather, init_weights};
use crate::{Arch, Dataset, Result, TrainError, Weights};

/// Training hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Passes over the training set.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Peak learning rate (AdamW), reached after a short linear warm-up and decayed to
    /// zero on a cosine.
    pub lr: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Weight of the L1 box loss against the cross-entropy (box-head models only).
    pub box_weight: f32,
    /// Seeds the initial weights and the batch order.
    pub seed: u64,
    /// Worker threads for the tensor ops (0: all cores).
    pub threads: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 10,
            batch: 64,
            lr: 3e-3,
            weight_decay: 1e-4,
            box_weight: 5.0,
            seed: 0,
            threads: 0,
        }
    }
}

/// One epoch of [`Trained::history`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch (cross-entropy + weighted box loss).
    pub train_loss: f32,
    /// Validation accuracy after the epoch (framework forward pass, inference mode);
    /// `NaN` without validation data.
    pub val_accuracy: f32,
    /// Mean validation box IoU (box-head models).
    pub val_box_iou: Option<f32>,
    /// Wall time of the epoch, validation included.
    pub seconds: f32,
}

/// A trained model.
#[derive(Debug, Clone, PartialEq)]
pub struct Trained {
    /// Its architecture.
    pub arch: Arch,
    /// The weights of the best epoch on the validation split (the last epoch without
    /// validation data).
    pub weights: Weights,
    /// Per-epoch statistics.
    pub history: Vec<EpochStats>,
    /// 1-based epoch whose weights were kept.
    pub best_epoch: usize,
    /// Total wall time.
    pub seconds: f32,
}

/// Trains `arch` from fresh weights ([`init_weights`] with `opts.seed`) on `train`,
/// selecting the epoch with the best validation accuracy on `val` (ties: box IoU).
///
/// `progress(epoch, step, loss)` is called after every optimiser step (1-based epoch,
/// 0-based step within the epoch, that batch's loss).
pub fn train(
    arch: &Arch,
    train: &Dataset,
    val: &Dataset,
    opts: &TrainOptions,
    progress: &mut dyn FnMut(usize, usize, f32),
) -> Result<Trained> {
    arch.check_data(train)?;
    if !val.is_empty() {
        arch.check_data(val)?;
    }
    if train.is_empty() || opts.batch == 0 || opts.epochs == 0 {
        return Err(TrainError::Data(
            "training needs data, a batch size and at least one epoch".into(),
        ));
    }
    // Progress comes back to the caller's thread, so the callback need not be `Send`.
    crate::pool::in_pool(
        opts.threads,
        |emit| train_inner(arch, train, val, opts, &mut |e, s, l| emit((e, s, l))),
        &mut |(e, s, l)| progress(e, s, l),
    )
}

fn train_inner(
    arch: &Arch,
    train: &Dataset,
    val: &Dataset,
    opts: &TrainOptions,
    progress: &mut dyn FnMut(usize, usize, f32),
) -> Result<Trained> {
    let start = Instant::now();
    let net = Net::from_weights(arch, &init_weights(arch, opts.seed))?;
    let mut opt = AdamW::new(
        net.trainable(),
        ParamsAdamW {
            lr: opts.lr,
            weight_decay: opts.weight_decay,
            ..Default::default()
        },
    )?;
    let n = train.len();
    let steps_per_epoch = n.div_ceil(opts.batch);
    let total = (steps_per_epoch * opts.epochs) as f64;
    let warmup = (total * 0.03).max(1.0);
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x005e_ed0f_ba7c);
    let mut history = Vec::new();
    let mut best: Option<(f32, usize, Weights)> = None;
    let mut t = 0usize;
    for epoch in 1..=opts.epochs {
        let e_start = Instant::now();
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0f64;
        for (step, idx) in order.chunks(opts.batch).enumerate() {
            // Batch-norm needs more than one sample per channel statistic.
            if idx.len() < 2 {
                continue;
            }
            let tf = t as f64;
            let lr = if tf < warmup {
                opts.lr * (tf + 1.0) / warmup
            } else {
                0.5 * opts.lr
                    * (1.0 + (std::f64::consts::PI * (tf - warmup) / (total - warmup)).cos())
            };
            opt.set_learning_rate(lr);
            let x = gather(&train.images, idx)?;
            let labels: Vec<u32> = idx.iter().map(|&i| train.labels[i]).collect();
            let y = Tensor::from_vec(labels, idx.len(), &Device::Cpu)?;
            let (logits, bx) = net.forward(&x, true)?;
            let mut loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            if let (Some(bx), Some(boxes)) = (bx, &train.boxes) {
                let target: Vec<f32> = idx.iter().flat_map(|&i| boxes[i]).collect();
                let target = Tensor::from_vec(target, (idx.len(), 4), &Device::Cpu)?;
                let l1 = (bx - target)?.abs()?.mean_all()?;
                loss = (loss + (l1 * opts.box_weight as f64)?)?;
            }
            opt.backward_step(&loss)?;
            let l = loss.to_scalar::<f32>()?;
            loss_sum += l as f64;
            progress(epoch, step, l);
            t += 1;
        }
        let (val_accuracy, val_box_iou) = if val.is_empty() {
            (f32::NAN, None)
        } else {
            validate(&net, val)?
        };
        history.push(EpochStats {
            epoch,
            train_loss: (loss_sum / steps_per_epoch as f64) as f32,
            val_accuracy,
            val_box_iou,
            seconds: e_start.elapsed().as_secs_f32(),
        });
        let score = if val.is_empty() {
            epoch as f32
        } else {
            val_accuracy + 1e-3 * val_box_iou.unwrap_or(0.0)
        };
        if best.as_ref().is_none_or(|(s, _, _)| score >= *s) {
            best = Some((score, epoch, net.to_weights()?));
        }
    }
    let (_, best_epoch, weights) = best.expect("at least one epoch ran");
    Ok(Trained {
        arch: arch.clone(),
        weights,
        history,
        best_epoch,
        seconds: start.elapsed().as_secs_f32(),
    })
}

/// Accuracy and mean box IoU of `net` on `d` (inference mode).
fn validate(net: &Net, d: &Dataset) -> Result<(f32, Option<f32>)> {
    let p = net.predict(d.images.view(), 256)?;
    let correct = p
        .logits
        .rows()
        .into_iter()
        .zip(&d.labels)
        .filter(|(r, l)| argmax(r.as_slice().expect("contiguous rows")) == **l as usize)
        .count();
    let acc = correct as f32 / d.len() as f32;
    let iou_mean = match (&p.boxes, &d.boxes) {
        (Some(pb), Some(tb)) => {
            let s: f32 = pb
                .rows()
                .into_iter()
                .zip(tb)
                .map(|(r, t)| iou([r[0], r[1], r[2], r[3]], *t))
                .sum();
            Some(s / d.len() as f32)
        }
        _ => None,
    };
    Ok((acc, iou_mean))
}
