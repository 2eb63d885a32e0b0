//! Trains rtmdl's own small CNNs (traffic-light state + box, traffic-sign class) on the
//! synthetic data of `rtmdl-scenes`, on the CPU, and exports them as ONNX for the
//! runtime's engines.
//!
//! * [`Arch`]: the one network family, built for later width / depth scaling (see
//!   below); [`Arch::lights`] and [`Arch::signs`] are the base models.
//! * [`train`] → [`Trained`] (framework-free [`Weights`] + per-epoch history).
//! * [`export_onnx`] writes the ONNX graph with `rtmdl_engine::onnx_build`.
//! * [`evaluate`] runs an ONNX file through an `rtmdl_engine::Engine` (the runtime's
//!   own inference path), batch 1.
//! * [`predict`] is the framework's own forward pass (inference mode), used for
//!   validation during training and to check the export.
//!
//! * [`scale`](mod@scale): storage-bounded model scaling. From a base ONNX
//!   file ([`read_onnx`]), a family of width / depth variants that share their early
//!   layers (stored once) and each have a small re-fitted private part, every variant
//!   measured through an rtmdl engine and listed in a [`Manifest`]; [`fit_budget`]
//!   keeps the variants of all families that fit a storage budget. See the module docs
//!   for the method and the files.
//!
//! The `rtmdl-train` binary does all of it in one command (see its `--help`, or
//! `assets/models/README.md`); `rtmdl-train scale` ([`cli`], the same command as
//! `rtmdl scale`) makes the variant families of the base models, prints the table and
//! writes it with every file's sha256 to `OUT/README.md` (`--storage-budget` applies
//! [`fit_budget`], `--naive` compares against independently trained width levels).
//! Its defaults make the families committed in `assets/variants`:
//!
//! ```text
//! cargo run --release -p rtmdl-train -- scale -o assets/variants
//! ```
//!
//! Training needs the `train` feature (candle; on by default). Without it the crate
//! still reads, checks ([`Manifest::verify_parts`]), installs ([`Manifest::install`])
//! and budgets families, exports ONNX and evaluates through an engine.
//!
//! # Framework: candle
//!
//! Training uses [candle](https://github.com/huggingface/candle) (`candle-core` and
//! `candle-nn` 0.9, CPU backend) rather than burn:
//! * it builds offline from crates.io with no system libraries and about 200 crates in
//!   the dependency tree (`burn` with its ndarray backend and autodiff pulls in far
//!   more, and compile time matters on a two-core machine); 0.9 rather than 0.11, whose
//!   `candle-core` depends on the `tokenizers` crate;
//! * it has autograd, AdamW and cross-entropy, and custom ops with their own backward
//!   pass. The three hot ops (3×3 convolution, training-mode batch norm, 2×2 max-pool)
//!   are such custom ops here (per-sample im2col + `gemm`, per-channel loops; see
//!   `ops.rs`): candle's generic CPU paths for them made an epoch about 6× slower
//!   (reductions over batch and spatial dims, a direct-loop conv input gradient), and
//!   candle 0.9's own max-pool gradient comes out scaled by 1/4. The ops are tested
//!   against candle's (and a hand-computed max-pool gradient), and their weight
//!   gradients are summed in a fixed order, so training is deterministic for a seed
//!   whatever the thread count;
//! * the layers are written directly on `Tensor`s / `Var`s here (no `VarBuilder`), so
//!   the parameter names and layouts are exactly the [`Weights`] names below and the
//!   batch-norm statistics are under our control. candle's tensors never leave this
//!   crate: everything public is plain `Vec<f32>` / `ndarray`.
//!
//! # The architecture and its weight names
//!
//! Input `[N, 3, H, W]`, RGB in `0..=1` (rtmdl's `resize_normalize` default: mean 0,
//! std 255). All convolutions are 3×3, stride 1, padding 1, without bias (a batch norm
//! follows each one); pools are 2×2 max-pools with stride 2.
//!
//! | stage | layers | tensors (shape) |
//! |---|---|---|
//! | shared: `stem` | Conv(3→c1) + BN + ReLU + MaxPool | `stem.conv.weight` `[c1,3,3,3]`, `stem.bn.*` `[c1]` |
//! | shared: `down` | Conv(c1→c2) + BN + ReLU + MaxPool | `down.conv.weight` `[c2,c1,3,3]`, `down.bn.*` `[c2]` |
//! | shared: `blocks.{i}`, i < k | Conv(c2→c2)+BN+ReLU+Conv(c2→c2)+BN, + input, ReLU | `blocks.{i}.conv1.weight`, `blocks.{i}.bn1.*`, `blocks.{i}.conv2.weight`, `blocks.{i}.bn2.*` (`[c2,c2,3,3]` / `[c2]`) |
//! | private: `head` | Conv(c2→c3) + BN + ReLU | `head.conv.weight` `[c3,c2,3,3]`, `head.bn.*` `[c3]` |
//! | private | GlobalAveragePool → Linear(c3→classes) | `fc.weight` `[classes,c3]`, `fc.bias` `[classes]` |
//! | private, lights only | Linear(c3→4) + Sigmoid | `box.weight` `[4,c3]`, `box.bias` `[4]` |
//!
//! `*.bn.*` stands for the four batch-norm tensors `weight` (gamma), `bias` (beta),
//! `running_mean` and `running_var`; eps is [`BN_EPS`]. Linear weights are
//! `[out, in]` (ONNX `Gemm` with `transB = 1`). Convolution weights are
//! `[out, in, kh, kw]` (ONNX / PyTorch layout).
//!
//! For the scaling work: slicing the first `c` output channels of a shared conv means
//! slicing dim 0 of its weight and its four BN tensors, and dim 1 of the next conv's
//! weight; a residual block maps `c2 → c2`, so dropping `blocks.{i}` keeps every shape
//! valid (the blocks are numbered `0..k` in an [`Arch`] with `blocks = k`: renumber the
//! survivors); `head`, `fc` and `box` are the private layers to re-fit per variant.
//!
//! # ONNX export
//!
//! Input `input` `[1, 3, H, W]`; outputs `logits` `[1, classes]` (raw scores, no
//! softmax) and, for lights, `box` `[1, 4]` (sigmoid, normalised `[x, y, w, h]` as in
//! `rtmdl-scenes`: top-left corner and size). Batch norms are exported as
//! `BatchNormalization` nodes in inference mode (not folded), so the ONNX initializers
//! carry exactly the [`Weights`] names; the engines fold them into the convolutions
//! when they optimise the graph. Intermediate tensors are named after their stage
//! (`stem.out`, `down.out`, `blocks.{i}.out`, `head.out`, `features`) for output cuts.

#![warn(missing_docs)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub mod cli;
mod eval;
mod export;
#[cfg(feature = "train")]
mod model;
#[cfg(feature = "train")]
mod ops;
#[cfg(feature = "train")]
mod pool;
pub mod scale;
#[cfg(feature = "train")]
mod train;
mod weights;

pub use eval::{Eval, evaluate};
pub use export::export_onnx;
#[cfg(feature = "train")]
pub use model::{Prediction, init_weights, predict};
pub use rtmdl_scenes::{Dataset, Kind, Split};
#[cfg(feature = "train")]
pub use scale::scale;
pub use scale::{Manifest, ScaleEvent, ScaleOptions, VariantRow, assemble, fit_budget, read_onnx};
#[cfg(feature = "train")]
pub use train::{EpochStats, TrainOptions, Trained, train};
pub use weights::{Weights, load_model, save_model};

/// Batch-norm epsilon, in training, in [`predict`] and in the exported
/// `BatchNormalization` nodes.
pub const BN_EPS: f32 = 1e-5;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A tensor op in the training framework failed.
    #[cfg(feature = "train")]
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Weights are missing, misshapen or do not fit the architecture, or a file is not
    /// a weights file.
    #[error("{0}")]
    Weights(String),
    /// The data does not fit the architecture.
    #[error("{0}")]
    Data(String),
    /// Building the ONNX graph failed.
    #[error("onnx: {0}")]
    Onnx(#[from] rtmdl_engine::onnx_build::BuildError),
    /// The inference engine failed.
    #[error("engine: {0}")]
    Engine(#[from] rtmdl_engine::EngineError),
    /// Model scaling: a file that is not this architecture, bad levels, a storage
    /// budget that cannot be met.
    #[error("{0}")]
    Scale(String),
    /// A file of a variant family whose sha256 is not the one its manifest records.
    #[error(
        "{path}: sha256 {found}, but its manifest records {expected}: the file is corrupt or was changed after its family was made"
    )]
    Corrupt {
        /// The file.
        path: std::path::PathBuf,
        /// Its sha256 now.
        found: String,
        /// The sha256 its manifest records.
        expected: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

/// The network: channel widths, depth, input size and heads. See the crate docs for the
/// layers and tensor names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arch {
    /// Model name ("lights", "signs"); the ONNX graph's name.
    pub name: String,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Stem conv channels (shared).
    pub c1: usize,
    /// Second conv and residual block channels (shared).
    pub c2: usize,
    /// Private head conv channels.
    pub c3: usize,
    /// Number of residual blocks.
    pub blocks: usize,
    /// Classifier outputs.
    pub classes: usize,
    /// Whether the model has the 4-output box head (sigmoid).
    pub box_head: bool,
}

impl Arch {
    /// The traffic-light base model: 48×48 input, 32/64/128 channels, 2 blocks, 4
    /// states + box (about 1.8 ms per inference on one core of a 2020s x86 CPU:
    /// heavy enough that scheduling matters at camera frame rates).
    pub fn lights() -> Arch {
        let (h, w) = Kind::Lights.image_size();
        Arch {
            name: "lights".into(),
            height: h,
            width: w,
            c1: 32,
            c2: 64,
            c3: 128,
            blocks: 2,
            classes: Kind::Lights.classes().len(),
            box_head: true,
        }
    }

    /// The traffic-sign base model: 32×32 input, 32/64/128 channels, 2 blocks,
    /// 16 classes.
    pub fn signs() -> Arch {
        let (h, w) = Kind::Signs.image_size();
        Arch {
            name: "signs".into(),
            height: h,
            width: w,
            c1: 32,
            c2: 64,
            c3: 128,
            blocks: 2,
            classes: Kind::Signs.classes().len(),
            box_head: false,
        }
    }

    /// Every tensor of the model, name → shape, in a fixed order (the export order).
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut v = Vec::new();
        let mut conv_bn = |conv: String, bn: String, cout: usize, cin: usize| {
            v.push((conv, vec![cout, cin, 3, 3]));
            for p in BN_PARAMS {
                v.push((format!("{bn}.{p}"), vec![cout]));
            }
        };
        conv_bn("stem.conv.weight".into(), "stem.bn".into(), self.c1, 3);
        conv_bn(
            "down.conv.weight".into(),
            "down.bn".into(),
            self.c2,
            self.c1,
        );
        for i in 0..self.blocks {
            for j in 1..=2 {
                conv_bn(
                    format!("blocks.{i}.conv{j}.weight"),
                    format!("blocks.{i}.bn{j}"),
                    self.c2,
                    self.c2,
                );
            }
        }
        conv_bn(
            "head.conv.weight".into(),
            "head.bn".into(),
            self.c3,
            self.c2,
        );
        v.push(("fc.weight".into(), vec![self.classes, self.c3]));
        v.push(("fc.bias".into(), vec![self.classes]));
        if self.box_head {
            v.push(("box.weight".into(), vec![4, self.c3]));
            v.push(("box.bias".into(), vec![4]));
        }
        v
    }

    /// Number of scalar parameters (batch-norm running statistics included).
    pub fn param_count(&self) -> usize {
        self.tensor_shapes()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }

    /// Checks that `w` holds exactly this architecture's tensors with the right shapes.
    pub fn check(&self, w: &Weights) -> Result<()> {
        let want: BTreeMap<String, Vec<usize>> = self.tensor_shapes().into_iter().collect();
        for (name, shape) in &want {
            match w.tensors.get(name) {
                None => {
                    return Err(TrainError::Weights(format!(
                        "{}: missing tensor {name}",
                        self.name
                    )));
                }
                Some((s, data)) => {
                    if s != shape || data.len() != shape.iter().product::<usize>() {
                        return Err(TrainError::Weights(format!(
                            "{}: tensor {name} has shape {s:?} ({} values), the architecture needs {shape:?}",
                            self.name,
                            data.len()
                        )));
                    }
                }
            }
        }
        if let Some(extra) = w.tensors.keys().find(|k| !want.contains_key(*k)) {
            return Err(TrainError::Weights(format!(
                "{}: tensor {extra} is not part of the architecture",
                self.name
            )));
        }
        Ok(())
    }

    #[cfg(feature = "train")]
    fn check_data(&self, d: &Dataset) -> Result<()> {
        let (h, w) = d.image_size();
        if (h, w) != (self.height, self.width) {
            return Err(TrainError::Data(format!(
                "{}: images are {h}×{w}, the model takes {}×{}",
                self.name, self.height, self.width
            )));
        }
        if d.classes.len() != self.classes {
            return Err(TrainError::Data(format!(
                "{}: the data has {} classes, the model {}",
                self.name,
                d.classes.len(),
                self.classes
            )));
        }
        if self.box_head && d.boxes.is_none() {
            return Err(TrainError::Data(format!(
                "{}: the model has a box head but the data has no boxes",
                self.name
            )));
        }
        Ok(())
    }
}

/// The four batch-norm tensors' suffixes, in ONNX `BatchNormalization` input order.
pub const BN_PARAMS: [&str; 4] = ["weight", "bias", "running_mean", "running_var"];

#[cfg(all(test, feature = "train"))]
mod tests;
