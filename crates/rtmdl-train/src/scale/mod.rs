//! Storage-bounded model scaling: from one trained base model, a family of width / depth
//! variants that share their early layers, each with its own re-fitted private part,
//! measured through an rtmdl engine; and the choice of which variants to keep under a
//! storage budget across families.
//!
//! # How a family is made ([`scale`])
//!
//! 1. **One reordering** ([`permute_by_importance`]): every shared conv's output
//!    channels are ranked by `|gamma| / sqrt(var + eps) · L1(filter)` and the whole
//!    weight set is permuted once (the function is unchanged). The residual stream
//!    (`down.conv` and every `blocks.{i}.conv2` output) has one ranking (importances
//!    summed over its producers); each block's `conv1` outputs and the head conv's have
//!    their own.
//! 2. **Width** `w` keeps the first [`scaled_channels`]`(C, w) = ⌈w·C⌉` channels of every
//!    layer (stem `c1`, stream and block-internal `c2`, head `c3`); **depth** `d` keeps
//!    blocks `0..d` ([`slice_variant`]). Variants are nested prefixes of the one
//!    reordered weight set.
//! 3. **Shared part**, stored once at full width (`{model}.shared.safetensors`): the
//!    conv weights and batch-norm gamma / beta of `stem`, `down` and every block
//!    ([`is_shared_tensor`]).
//! 4. **Private part** per variant (`{model}-{name}.private.safetensors`): the running
//!    mean / variance of every shared batch norm and the head conv + BN, `fc` and
//!    `box`. Made in three steps, the shared conv weights and gamma / beta frozen
//!    throughout:
//!    * *re-calibration*: exact batch-norm statistics over `calib_n` training images,
//!      layer by layer, each layer seeing the earlier ones already re-calibrated
//!      (slicing upstream channels changes the statistics);
//!    * *head re-fit* (`epochs`): the head, initialised from the reordered, sliced base
//!      head, trained on the frozen shared features (computed once per variant in
//!      inference mode; AdamW, warm-up and cosine schedule, cross-entropy plus the L1
//!      box loss for box-head models, as in [`train`](crate::train)); then the head
//!      BN's statistics are re-calibrated exactly too;
//!    * *private tuning* (`tune_epochs`): the whole private part end to end through the
//!      frozen shared convs: every batch norm in inference mode with its statistics as
//!      trainable per-channel parameters (mean and log variance, no weight decay),
//!      together with the head. The statistics are still just the running mean and
//!      variance of the `BatchNormalization` nodes, so nothing is added to the graph
//!      or the private file; but a per-channel shift and scale per layer is what the
//!      frozen, sliced convs need most (head-only re-fitting levels off far lower for
//!      narrow widths).
//!
//!    The full-width, full-depth variant keeps the base model's statistics and head
//!    unchanged, so it *is* the base model (reordered).
//! 5. **The runnable ONNX** `{model}-{name}.onnx` is assembled from the two parts
//!    ([`assemble`]) and exported with [`export_onnx`](crate::export_onnx); accuracy is
//!    measured on the evaluation split through the engine the runtime uses
//!    ([`evaluate`](crate::evaluate), batch 1) and latency is the median of
//!    single-image runs on the same engine.
//! 6. `{model}.manifest.json` ([`Manifest`]) lists the rows; byte counts are the file
//!    sizes on disk, and every file's sha256 is recorded (the shared and private parts,
//!    the runnable ONNX, the base model), so a copied family can be checked
//!    ([`Manifest::verify_parts`]) and its ONNX files rebuilt from the parts exactly
//!    ([`Manifest::install`]). A later call with the same base file (size and sha256),
//!    options and data returns the saved manifest without recomputing.
//!
//! [`fit_budget`] then keeps, across all families, the variants that fit a storage
//! budget.

//!
//! Modules: `manifest` (the files and their checks), `reuse` (the reuse key),
//! `slicing`, `read` and `budget` (reordering, slicing, reading ONNX, the budget: no
//! training framework needed), and with the `train` feature `family` (one family,
//! variant by variant), `refit` (calibration and head re-fit) and `tune` (private
//! tuning).

#[cfg(feature = "train")]
use std::path::Path;
use std::path::PathBuf;

use rtmdl_engine::EngineKind;
use serde::{Deserialize, Serialize};

mod budget;
#[cfg(feature = "train")]
mod family;
mod manifest;
mod read;
#[cfg(feature = "train")]
mod refit;
mod reuse;
mod slicing;
#[cfg(feature = "train")]
mod tune;

pub use budget::fit_budget;
pub use manifest::{DataKey, Manifest, SourceKey, VariantRow, assemble};
pub(crate) use manifest::{mark_pareto, sort_rows};
pub use read::read_onnx;
pub use reuse::{Fnv, data_key, sha256_file, sha256_hex};
pub use slicing::{
    Permutation, is_shared_tensor, macs, permute_by_importance, scaled_channels, slice_variant,
    variant_arch, variant_name,
};

/// Bumped when the files or the method change; part of the reuse key.
pub const SCALE_FORMAT: u32 = 2;

/// Options of [`scale`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScaleOptions {
    /// Width levels, each in `(0, 1]` (fraction of every layer's channels kept).
    pub widths: Vec<f32>,
    /// Depth levels: residual blocks kept. Empty: every level of the base, `blocks`
    /// down to 0.
    pub depths: Vec<usize>,
    /// Epochs of the head re-fit on cached shared features (fast).
    pub epochs: usize,
    /// Epochs of the private tuning, end to end through the frozen shared convs: the
    /// variant's batch-norm statistics (a per-channel mean and log variance, no weight
    /// decay) and its head, together. Costs about as much per epoch as training the
    /// variant; 0 skips it (re-calibrated statistics and head re-fit only).
    pub tune_epochs: usize,
    /// Mini-batch size of the re-fit.
    pub batch: usize,
    /// Peak learning rate of both re-fit stages (AdamW, short warm-up, cosine to
    /// zero).
    pub lr: f64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Weight of the L1 box loss (box-head models).
    pub box_weight: f32,
    /// Training images used to re-calibrate the batch-norm statistics (at most the
    /// training set).
    pub calib_n: usize,
    /// Seeds the calibration subset and the batch order.
    pub seed: u64,
    /// Worker threads for the re-fit (0: all cores). Not part of the reuse key (the
    /// results do not depend on it).
    pub threads: usize,
    /// Engine for the accuracy and latency measurements.
    #[serde(with = "engine_kind")]
    pub engine: EngineKind,
    /// Single-image runs whose median is a variant's latency.
    pub latency_runs: usize,
}

impl Default for ScaleOptions {
    fn default() -> Self {
        ScaleOptions {
            widths: vec![1.0, 0.75, 0.5, 0.25],
            depths: Vec::new(),
            epochs: 1,
            tune_epochs: 4,
            batch: 64,
            lr: 2e-2,
            weight_decay: 1e-4,
            box_weight: 5.0,
            calib_n: 1024,
            seed: 1,
            threads: 0,
            engine: EngineKind::Tract,
            latency_runs: 100,
        }
    }
}

mod engine_kind {
    use rtmdl_engine::EngineKind;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(k: &EngineKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(k.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<EngineKind, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(D::Error::custom)
    }
}

/// Progress of [`scale`], for progress bars.
#[derive(Debug, Clone, PartialEq)]
pub enum ScaleEvent {
    /// A stage starts. `name` says what, e.g. `"lights w050-d1: re-fit head"`; `total`
    /// [`ScaleEvent::Step`]s of it follow (0: none).
    Stage {
        /// What the stage does.
        name: String,
        /// Steps to come.
        total: usize,
    },
    /// `done` of the current stage's `total` steps are done.
    Step {
        /// Steps done.
        done: usize,
        /// Steps in the stage.
        total: usize,
    },
    /// A variant is finished: its row.
    Variant(Box<VariantRow>),
    /// The output folder already held an up-to-date manifest; nothing was computed.
    Reused {
        /// The manifest file.
        manifest: PathBuf,
    },
}

/// Makes the variant family of the base model `base_onnx` (read with [`read_onnx`]) in
/// `out_dir`, as described in the [module docs](self): every combination of
/// `opts.widths` and `opts.depths`, re-fitted on `train`, measured on `val` through
/// `opts.engine`. Files: `{model}.shared.safetensors`,
/// `{model}-{name}.private.safetensors`, `{model}-{name}.onnx` and
/// `{model}.manifest.json` (also returned).
///
/// When `out_dir` already holds a manifest made from the same base file (size and
/// sha256), options (`threads` aside) and data, with all its files, that manifest is
/// returned without recomputing (after one [`ScaleEvent::Reused`]).
///
/// `progress` is called on the caller's thread.
#[cfg(feature = "train")]
pub fn scale(
    model: &str,
    base_onnx: &Path,
    train: &crate::Dataset,
    val: &crate::Dataset,
    opts: &ScaleOptions,
    out_dir: &Path,
    progress: &dyn Fn(ScaleEvent),
) -> crate::Result<Manifest> {
    if model.is_empty() || model.contains(['/', '\\']) {
        return Err(crate::TrainError::Scale(format!(
            "model name {model:?} must be non-empty and have no path separators"
        )));
    }
    let base_bytes = std::fs::read(base_onnx).map_err(manifest::io_err(base_onnx))?;
    let key = SourceKey {
        format: SCALE_FORMAT,
        base_bytes: base_bytes.len() as u64,
        base_sha256: sha256_hex(&base_bytes),
        options: ScaleOptions {
            threads: 0,
            ..opts.clone()
        },
        train: data_key(train),
        val: data_key(val),
    };
    if let Some(m) = reuse::try_reuse(out_dir, model, &key) {
        progress(ScaleEvent::Reused {
            manifest: Manifest::path_in(out_dir, model),
        });
        return Ok(m);
    }
    crate::pool::in_pool(
        opts.threads,
        |emit| {
            let job = family::Job {
                model,
                base_onnx,
                train,
                val,
                opts,
                out_dir,
                emit,
            };
            job.run(key)
        },
        &mut |e| progress(e),
    )
}
