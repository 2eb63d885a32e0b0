//! The `scale` command, one definition for `rtmdl scale` and `rtmdl-train
//! scale`: its arguments ([`ScaleArgs`], always built, so `--help` shows them
//! in every build) and, with the `train` feature, what it does ([`scale`]).
//!
//! The defaults are the recipe of the variant families the demo uses (the ones
//! committed in `assets/variants`): both base models, 4000 generated training
//! images, 1000 validation images, seed 1.

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, FromArgMatches};
use rtmdl_engine::EngineKind;

use crate::{ScaleOptions, Split};

/// The arguments of the `scale` command.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct ScaleArgs {
    /// Base models: ONNX files of rtmdl's CNN family (written by rtmdl-train).
    #[arg(default_values = ["assets/models/lights.onnx", "assets/models/signs.onnx"])]
    pub bases: Vec<PathBuf>,
    /// Training data for the re-fit: a dataset folder written by rtmdl-scenes
    /// (with one base only). Default: generated from --seed for the base's
    /// model (lights or signs, by its file name) and cached under --data.
    #[arg(long)]
    pub train: Option<PathBuf>,
    /// Evaluation data (held out), same format (with one base only).
    /// Default: generated, --eval-split and --eval-n.
    #[arg(long)]
    pub val: Option<PathBuf>,
    /// Cache of the generated data.
    #[arg(long, default_value = "target/rtmdl-data")]
    pub data: PathBuf,
    /// Generated training images per model.
    #[arg(long, default_value_t = 4000)]
    pub train_n: usize,
    /// Split of the generated evaluation data.
    #[arg(long, default_value = "val", value_parser = split_parser())]
    pub eval_split: Split,
    /// Generated evaluation images per model.
    #[arg(long, default_value_t = 1000)]
    pub eval_n: usize,
    /// Width levels (fractions of every layer's channels, each in (0, 1]).
    #[arg(long, value_delimiter = ',', default_value = "1,0.75,0.5,0.25")]
    pub widths: Vec<f32>,
    /// Depth levels (residual blocks kept, at most the base's).
    #[arg(long, value_delimiter = ',', default_value = "2,1")]
    pub depths: Vec<usize>,
    /// Epochs of the head re-fit (on cached shared features).
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Epochs of the private tuning (end to end through the frozen shared layers).
    #[arg(long, default_value_t = 4)]
    pub tune_epochs: usize,
    /// Re-fit batch size.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Re-fit peak learning rate.
    #[arg(long, default_value_t = 2e-2)]
    pub lr: f64,
    /// Training images for the batch-norm re-calibration.
    #[arg(long, default_value_t = 1024)]
    pub calib_n: usize,
    /// Threads (0: all cores); the results do not depend on it.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Engine for the accuracy and latency measurements.
    #[arg(long, default_value = "tract", value_parser = engine_parser())]
    pub engine: EngineKind,
    /// Batch-1 runs per latency median.
    #[arg(long, default_value_t = 50)]
    pub latency_runs: usize,
    /// Data and re-fit seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Keep only the variants of all families that fit this size (each
    /// family's shared part once plus the private parts), e.g. "512KiB".
    #[arg(long, visible_alias = "budget", value_parser = size_parser())]
    pub storage_budget: Option<u64>,
    /// Model name in the manifest (with one base only; default: the file stem).
    #[arg(long)]
    pub name: Option<String>,
    /// Also train each width level as an independent model (full depth, the
    /// base recipe) and compare storage and accuracy.
    #[arg(long)]
    pub naive: bool,
    /// Where the variants, manifests and README.md go.
    #[arg(long, short, default_value = "target/variants")]
    pub out: PathBuf,
}

impl Default for ScaleArgs {
    /// The defaults written above: the recipe of the committed families.
    fn default() -> Self {
        let cmd = ScaleArgs::augment_args(clap::Command::new("scale"));
        let matches = cmd.get_matches_from(["scale"]);
        ScaleArgs::from_arg_matches(&matches).expect("the defaults parse")
    }
}

impl ScaleArgs {
    /// The options of [`scale`](crate::scale::scale) these arguments give.
    pub fn options(&self) -> ScaleOptions {
        ScaleOptions {
            widths: self.widths.clone(),
            depths: self.depths.clone(),
            epochs: self.epochs,
            tune_epochs: self.tune_epochs,
            batch: self.batch,
            lr: self.lr,
            calib_n: self.calib_n,
            seed: self.seed,
            threads: self.threads,
            engine: self.engine,
            latency_runs: self.latency_runs,
            ..ScaleOptions::default()
        }
    }

    /// Refuses what cannot work before any work is done.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.widths.is_empty() || self.widths.iter().any(|w| !(*w > 0.0 && *w <= 1.0)) {
            anyhow::bail!("--widths: every width must be in (0, 1], e.g. 1,0.75,0.5,0.25");
        }
        if self.bases.len() > 1 {
            for (given, flag) in [
                (self.train.is_some(), "--train"),
                (self.val.is_some(), "--val"),
                (self.name.is_some(), "--name"),
            ] {
                if given {
                    anyhow::bail!(
                        "{flag} applies to one base model, and {} are given",
                        self.bases.len()
                    );
                }
            }
        }
        Ok(())
    }
}

fn split_parser() -> impl TypedValueParser<Value = Split> {
    PossibleValuesParser::new(["val", "test"])
        .map(|s| if s == "test" { Split::Test } else { Split::Val })
}

fn engine_parser() -> impl TypedValueParser<Value = EngineKind> {
    PossibleValuesParser::new(["tract", "ort", "cuda", "auto"]).try_map(|s| s.parse::<EngineKind>())
}

fn size_parser() -> impl TypedValueParser<Value = u64> {
    clap::builder::StringValueParser::new().try_map(|s| rtmdl_core::units::parse_size(&s))
}

#[cfg(feature = "train")]
pub use run::scale;

#[cfg(feature = "train")]
mod run;
