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
//!    sizes on disk. A later call with the same base file (size and content hash),
//!    options and data returns the saved manifest without recomputing.
//!
//! [`fit_budget`] then keeps, across all families, the variants that fit a storage
//! budget.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use ndarray::{Array4, Axis, IxDyn, s};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rtmdl_engine::{Engine, EngineKind, ModelSpec};
use serde::{Deserialize, Serialize};

use crate::eval::evaluate_with;
use crate::model::{Net, gather, to_tensor};
use crate::weights::{read_file, write_file};
use crate::{Arch, Dataset, Result, TrainError, Weights, export_onnx, ops};

mod budget;
mod read;
mod slicing;

pub use budget::fit_budget;
pub use read::read_onnx;
pub use slicing::{
    Permutation, is_shared_tensor, macs, permute_by_importance, scaled_channels, slice_variant,
    variant_arch, variant_name,
};

/// Bumped when the files or the method change; part of the reuse key.
pub const SCALE_FORMAT: u32 = 1;

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

/// One variant of a family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantRow {
    /// The family (model) name.
    pub model: String,
    /// The variant name, [`variant_name`]: `w050-d1`.
    pub name: String,
    /// Width level.
    pub width: f32,
    /// Residual blocks kept.
    pub depth: usize,
    /// Top-1 accuracy on the evaluation split, through the engine (0..=1).
    pub accuracy: f64,
    /// Mean box IoU on the evaluation split (box-head models).
    pub box_iou: Option<f64>,
    /// Median batch-1 inference time through the engine on this machine.
    pub latency_ms: f64,
    /// Bytes of the family's shared file (the same in every row of a family).
    pub shared_bytes: u64,
    /// Bytes of this variant's private file.
    pub private_bytes: u64,
    /// The runnable ONNX file, relative to the manifest's folder.
    pub file: PathBuf,
    /// The private part, relative to the manifest's folder.
    pub private_file: PathBuf,
    /// Scalars of the variant (batch-norm statistics included).
    pub params: usize,
    /// Multiply-accumulates of one inference ([`macs`]).
    pub macs: u64,
    /// The variant's architecture.
    pub arch: Arch,
    /// Whether the variant is on its family's accuracy–latency Pareto front (no other
    /// row is at least as accurate and at least as fast, and better in one).
    pub pareto: bool,
    /// Whether the private part was re-fitted (false for the base variant, which keeps
    /// the base model's head and statistics).
    pub refit: bool,
    /// Wall time spent making this variant (calibration, re-fit, export, evaluation).
    pub seconds: f64,
}

/// Identifies a data split for the reuse key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataKey {
    /// Samples.
    pub n: usize,
    /// Hash of the images, labels and boxes (hex).
    pub hash: String,
}

/// What a manifest was made from; [`scale`] reuses a manifest whose key matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceKey {
    /// [`SCALE_FORMAT`].
    pub format: u32,
    /// Size of the base ONNX file.
    pub base_bytes: u64,
    /// 64-bit FNV-1a hash of the base ONNX file (hex).
    pub base_hash: String,
    /// The options (threads zeroed).
    pub options: ScaleOptions,
    /// The training data.
    pub train: DataKey,
    /// The evaluation data.
    pub val: DataKey,
}

/// A family: the shared file and one row per variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The family (model) name.
    pub model: String,
    /// The base ONNX file, as given to [`scale`].
    pub base: PathBuf,
    /// The shared part, relative to the manifest's folder.
    pub shared_file: PathBuf,
    /// Its size on disk.
    pub shared_bytes: u64,
    /// The kept variants, widest and deepest first.
    pub variants: Vec<VariantRow>,
    /// Variants moved out by [`fit_budget`].
    pub dropped: Vec<VariantRow>,
    /// The base model's architecture.
    pub base_arch: Arch,
    /// The engine that measured accuracy and latency, with its version.
    pub engine: String,
    /// What the family was made from.
    pub source: SourceKey,
    /// Wall time of [`scale`] for the whole family.
    pub seconds: f64,
}

impl Manifest {
    /// Storage of the kept family: the shared file once plus every kept variant's
    /// private file (0 with no variant kept).
    pub fn storage(&self) -> u64 {
        if self.variants.is_empty() {
            return 0;
        }
        self.shared_bytes + self.variants.iter().map(|r| r.private_bytes).sum::<u64>()
    }

    /// Storage of every row, dropped ones included.
    pub fn storage_all(&self) -> u64 {
        self.shared_bytes
            + self
                .variants
                .iter()
                .chain(&self.dropped)
                .map(|r| r.private_bytes)
                .sum::<u64>()
    }

    /// Writes the manifest as pretty JSON.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let json = serde_json::to_string_pretty(self).expect("manifest serialises") + "\n";
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        std::fs::write(path, json).map_err(io_err(path))
    }

    /// Reads a manifest written by [`Manifest::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Manifest> {
        let path = path.as_ref();
        let text = std::fs::read(path).map_err(io_err(path))?;
        serde_json::from_slice(&text).map_err(|e| {
            TrainError::Scale(format!("{}: not a variant manifest: {e}", path.display()))
        })
    }

    /// The manifest file name in `out_dir` for `model`: `{model}.manifest.json`.
    pub fn path_in(out_dir: &Path, model: &str) -> PathBuf {
        out_dir.join(format!("{model}.manifest.json"))
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn file_len(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path).map_err(io_err(path))?.len())
}

/// Canonical row order: widest first, then deepest first.
pub(crate) fn sort_rows(rows: &mut [VariantRow]) {
    rows.sort_by(|a, b| b.width.total_cmp(&a.width).then(b.depth.cmp(&a.depth)));
}

/// Sets `pareto` on every row (rows of one family).
pub(crate) fn mark_pareto(rows: &mut [VariantRow]) {
    let pts: Vec<(f64, f64)> = rows.iter().map(|r| (r.accuracy, r.latency_ms)).collect();
    for (i, r) in rows.iter_mut().enumerate() {
        let (a, l) = pts[i];
        r.pareto = !pts
            .iter()
            .enumerate()
            .any(|(j, &(qa, ql))| j != i && qa >= a && ql <= l && (qa > a || ql < l));
    }
}

/// Rebuilds a variant from its parts: the shared file's leading channels and blocks
/// (for the row's architecture) and the row's private file. The ONNX file is derived
/// from this.
pub fn assemble(
    manifest_dir: &Path,
    manifest: &Manifest,
    row: &VariantRow,
) -> Result<(Arch, Weights)> {
    let expect = variant_arch(&manifest.base_arch, row.width, row.depth)?;
    if (expect.c1, expect.c2, expect.c3, expect.blocks)
        != (row.arch.c1, row.arch.c2, row.arch.c3, row.arch.blocks)
    {
        return Err(TrainError::Scale(format!(
            "{} {}: its architecture {:?} does not match width {} / depth {} of the base",
            manifest.model, row.name, row.arch, row.width, row.depth
        )));
    }
    assemble_parts(
        &manifest_dir.join(&manifest.shared_file),
        &manifest_dir.join(&row.private_file),
        &row.arch,
    )
}

fn assemble_parts(shared_path: &Path, private_path: &Path, arch: &Arch) -> Result<(Arch, Weights)> {
    let shared = Weights::load(shared_path)?;
    let (private, _) = read_file(private_path)?;
    let mut w = Weights::default();
    for (name, shape) in arch.tensor_shapes() {
        if is_shared_tensor(&name) {
            let (s, d) = shared.tensors.get(&name).ok_or_else(|| {
                TrainError::Scale(format!("{}: no tensor {name}", shared_path.display()))
            })?;
            if s.len() != shape.len() || s.iter().zip(&shape).any(|(a, b)| a < b) {
                return Err(TrainError::Scale(format!(
                    "{}: tensor {name} has shape {s:?}, smaller than the variant's {shape:?}",
                    shared_path.display()
                )));
            }
            w.insert(name, shape.clone(), slicing::prefix(s, d, &shape));
        } else {
            let (s, d) = private.tensors.get(&name).ok_or_else(|| {
                TrainError::Scale(format!("{}: no tensor {name}", private_path.display()))
            })?;
            if *s != shape {
                return Err(TrainError::Scale(format!(
                    "{}: tensor {name} has shape {s:?}, the variant needs {shape:?}",
                    private_path.display()
                )));
            }
            w.insert(name, shape, d.clone());
        }
    }
    if let Some(extra) = private.tensors.keys().find(|k| !w.tensors.contains_key(*k)) {
        return Err(TrainError::Scale(format!(
            "{}: tensor {extra} is not part of {}",
            private_path.display(),
            arch.name
        )));
    }
    arch.check(&w)?;
    Ok((arch.clone(), w))
}

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.word(x as u64);
        }
    }
    fn word(&mut self, x: u64) {
        self.0 = (self.0 ^ x).wrapping_mul(0x0000_0100_0000_01b3);
    }
    fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

fn data_key(d: &Dataset) -> DataKey {
    let mut h = Fnv::new();
    for s in d.images.shape() {
        h.word(*s as u64);
    }
    for v in d.images.iter() {
        h.word(v.to_bits() as u64);
    }
    for l in &d.labels {
        h.word(*l as u64);
    }
    if let Some(b) = &d.boxes {
        for v in b.iter().flatten() {
            h.word(v.to_bits() as u64);
        }
    }
    DataKey {
        n: d.len(),
        hash: h.hex(),
    }
}

/// The saved manifest in `out_dir` when it was made from `key` and its files are all
/// there with the recorded sizes.
fn try_reuse(out_dir: &Path, model: &str, key: &SourceKey) -> Option<Manifest> {
    let m = Manifest::load(Manifest::path_in(out_dir, model)).ok()?;
    if m.model != model || m.source != *key {
        return None;
    }
    let size_ok = |p: &Path, n: u64| file_len(&out_dir.join(p)).is_ok_and(|l| l == n);
    if !size_ok(&m.shared_file, m.shared_bytes) {
        return None;
    }
    let rows_ok = m
        .variants
        .iter()
        .all(|r| size_ok(&r.private_file, r.private_bytes) && out_dir.join(&r.file).is_file());
    rows_ok.then_some(m)
}

/// Makes the variant family of the base model `base_onnx` (read with [`read_onnx`]) in
/// `out_dir`, as described in the [module docs](self): every combination of
/// `opts.widths` and `opts.depths`, re-fitted on `train`, measured on `val` through
/// `opts.engine`. Files: `{model}.shared.safetensors`,
/// `{model}-{name}.private.safetensors`, `{model}-{name}.onnx` and
/// `{model}.manifest.json` (also returned).
///
/// When `out_dir` already holds a manifest made from the same base file (size and
/// hash), options (`threads` aside) and data, with all its files, that manifest is
/// returned without recomputing (after one [`ScaleEvent::Reused`]).
///
/// `progress` is called on the caller's thread.
pub fn scale(
    model: &str,
    base_onnx: &Path,
    train: &Dataset,
    val: &Dataset,
    opts: &ScaleOptions,
    out_dir: &Path,
    progress: &dyn Fn(ScaleEvent),
) -> Result<Manifest> {
    if model.is_empty() || model.contains(['/', '\\']) {
        return Err(TrainError::Scale(format!(
            "model name {model:?} must be non-empty and have no path separators"
        )));
    }
    let base_bytes = std::fs::read(base_onnx).map_err(io_err(base_onnx))?;
    let mut h = Fnv::new();
    h.bytes(&base_bytes);
    let key = SourceKey {
        format: SCALE_FORMAT,
        base_bytes: base_bytes.len() as u64,
        base_hash: h.hex(),
        options: ScaleOptions {
            threads: 0,
            ..opts.clone()
        },
        train: data_key(train),
        val: data_key(val),
    };
    if let Some(m) = try_reuse(out_dir, model, &key) {
        progress(ScaleEvent::Reused {
            manifest: Manifest::path_in(out_dir, model),
        });
        return Ok(m);
    }

    let mut b = rayon::ThreadPoolBuilder::new();
    if opts.threads > 0 {
        b = b.num_threads(opts.threads);
    }
    let pool = b
        .build()
        .map_err(|e| TrainError::Data(format!("thread pool: {e}")))?;
    // The work runs inside the pool on a scoped thread; events come back over a channel
    // so `progress` stays on the caller's thread.
    let (tx, rx) = std::sync::mpsc::channel::<ScaleEvent>();
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            pool.install(|| {
                let emit = |e| {
                    let _ = tx.send(e);
                };
                let job = Job {
                    model,
                    base_onnx,
                    train,
                    val,
                    opts,
                    out_dir,
                    emit: &emit,
                };
                job.run(key)
            })
        });
        for e in rx {
            progress(e);
        }
        worker.join().expect("the scaling thread panicked")
    })
}

struct Job<'a> {
    model: &'a str,
    base_onnx: &'a Path,
    train: &'a Dataset,
    val: &'a Dataset,
    opts: &'a ScaleOptions,
    out_dir: &'a Path,
    emit: &'a dyn Fn(ScaleEvent),
}

impl Job<'_> {
    fn stage(&self, name: String, total: usize) {
        (self.emit)(ScaleEvent::Stage { name, total });
    }

    fn step(&self, done: usize, total: usize) {
        (self.emit)(ScaleEvent::Step { done, total });
    }

    fn levels(&self, base: &Arch) -> Result<Vec<(f32, usize)>> {
        let o = self.opts;
        if o.widths.is_empty() {
            return Err(TrainError::Scale("no width levels given".into()));
        }
        let mut widths = o.widths.clone();
        for &w in &widths {
            variant_arch(base, w, 0)?;
        }
        widths.sort_by(|a, b| b.total_cmp(a));
        widths.dedup_by(|a, b| variant_name(*a, 0) == variant_name(*b, 0));
        let mut depths = if o.depths.is_empty() {
            (0..=base.blocks).collect()
        } else {
            o.depths.clone()
        };
        for &d in &depths {
            variant_arch(base, 1.0, d)?;
        }
        depths.sort_by(|a, b| b.cmp(a));
        depths.dedup();
        Ok(widths
            .iter()
            .flat_map(|&w| depths.iter().map(move |&d| (w, d)))
            .collect())
    }

    fn run(&self, key: SourceKey) -> Result<Manifest> {
        let t0 = Instant::now();
        let (o, model) = (self.opts, self.model);
        if o.batch < 2 {
            return Err(TrainError::Scale(
                "the re-fit needs a batch size of at least 2".into(),
            ));
        }
        self.stage(format!("{model}: read {}", self.base_onnx.display()), 0);
        let (base, w) = read_onnx(self.base_onnx)?;
        base.check_data(self.train)?;
        base.check_data(self.val)?;
        if self.train.len() < 2 || self.val.is_empty() {
            return Err(TrainError::Data(format!(
                "{model}: scaling needs at least 2 training and 1 evaluation samples (got {} and {})",
                self.train.len(),
                self.val.len()
            )));
        }
        let levels = self.levels(&base)?;
        let (engine, _) = rtmdl_engine::select(o.engine)?;

        std::fs::create_dir_all(self.out_dir).map_err(io_err(self.out_dir))?;
        // A stale manifest must not outlive the files it describes being rewritten.
        let manifest_path = Manifest::path_in(self.out_dir, model);
        if manifest_path.exists() {
            std::fs::remove_file(&manifest_path).map_err(io_err(&manifest_path))?;
        }
        let (perm, _) = permute_by_importance(&base, &w)?;
        let shared: Weights = Weights {
            tensors: perm
                .tensors
                .iter()
                .filter(|(k, _)| is_shared_tensor(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let shared_file = PathBuf::from(format!("{model}.shared.safetensors"));
        let shared_path = self.out_dir.join(&shared_file);
        let mut meta = BTreeMap::new();
        meta.insert(
            "base_arch".to_string(),
            serde_json::to_string(&base).expect("arch serialises"),
        );
        meta.insert("part".to_string(), "shared".to_string());
        write_file(&shared_path, &shared, &meta)?;
        let shared_bytes = file_len(&shared_path)?;

        // One seeded calibration subset for every variant.
        let mut order: Vec<usize> = (0..self.train.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(o.seed ^ 0xc_a11b_7a7e));
        let calib: Vec<usize> = order[..o.calib_n.clamp(1, self.train.len())].to_vec();

        let mut rows = Vec::new();
        for &(width, depth) in &levels {
            let tv = Instant::now();
            let name = variant_name(width, depth);
            let (va, mut vw) = slice_variant(&base, &perm, width, depth)?;
            let is_base =
                (va.c1, va.c2, va.c3, va.blocks) == (base.c1, base.c2, base.c3, base.blocks);
            if !is_base {
                vw = self.refit(&va, &vw, &name, &calib)?;
            }
            // Private part.
            let private = Weights {
                tensors: vw
                    .tensors
                    .iter()
                    .filter(|(k, _)| !is_shared_tensor(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            };
            let private_file = PathBuf::from(format!("{model}-{name}.private.safetensors"));
            let private_path = self.out_dir.join(&private_file);
            let mut meta = BTreeMap::new();
            meta.insert(
                "variant_arch".to_string(),
                serde_json::to_string(&va).expect("arch serialises"),
            );
            meta.insert("part".to_string(), "private".to_string());
            write_file(&private_path, &private, &meta)?;
            // The runnable model, from the parts.
            let (aa, aw) = assemble_parts(&shared_path, &private_path, &va)?;
            debug_assert!(aw == vw, "assembling {name} from its parts changed it");
            let file = PathBuf::from(format!("{model}-{name}.onnx"));
            let onnx = self.out_dir.join(&file);
            export_onnx(&aa, &aw, &onnx)?;

            self.stage(format!("{model} {name}: evaluate"), self.val.len());
            let ev = evaluate_with(&onnx, self.val, engine.as_ref(), &mut |d, t| {
                if d % 64 == 0 || d == t {
                    self.step(d, t)
                }
            })?;
            self.stage(format!("{model} {name}: latency"), 0);
            let latency_ms = latency(engine.as_ref(), &onnx, self.val, o.latency_runs)?;
            let row = VariantRow {
                model: model.to_string(),
                name,
                width,
                depth,
                accuracy: ev.accuracy as f64,
                box_iou: ev.box_iou_mean.map(|v| v as f64),
                latency_ms,
                shared_bytes,
                private_bytes: file_len(&private_path)?,
                file,
                private_file,
                params: va.param_count(),
                macs: macs(&va),
                arch: va,
                pareto: false,
                refit: !is_base,
                seconds: tv.elapsed().as_secs_f64(),
            };
            (self.emit)(ScaleEvent::Variant(Box::new(row.clone())));
            rows.push(row);
        }
        sort_rows(&mut rows);
        mark_pareto(&mut rows);
        let m = Manifest {
            model: model.to_string(),
            base: self.base_onnx.to_path_buf(),
            shared_file,
            shared_bytes,
            variants: rows,
            dropped: Vec::new(),
            base_arch: base,
            engine: engine.version(),
            source: key,
            seconds: t0.elapsed().as_secs_f64(),
        };
        m.save(&manifest_path)?;
        // What a later call reuses, exactly (JSON need not give back the last bit of
        // every float).
        Manifest::load(&manifest_path)
    }

    /// Re-calibrates the shared batch norms and re-fits the private head of the variant
    /// `va` (weights `vw`, sliced from the reordered base); returns its weights.
    fn refit(&self, va: &Arch, vw: &Weights, name: &str, calib: &[usize]) -> Result<Weights> {
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

/// Median wall time of `runs` batch-1 inferences of `onnx` on `engine`, in ms (images
/// of `d`, cycled; 3 warm-up runs first).
fn latency(engine: &dyn Engine, onnx: &Path, d: &Dataset, runs: usize) -> Result<f64> {
    let (h, w) = d.image_size();
    let mut s = engine.session(&ModelSpec::new(onnx).with_input_shape(vec![1, 3, h, w]))?;
    let input = |i: usize| {
        d.images
            .index_axis(Axis(0), i % d.len())
            .insert_axis(Axis(0))
            .to_owned()
            .into_shape_with_order(IxDyn(&[1, 3, h, w]))
            .expect("one image")
    };
    for i in 0..3 {
        s.run(&input(i))?;
    }
    let mut times: Vec<f64> = Vec::with_capacity(runs.max(1));
    for i in 0..runs.max(1) {
        let x = input(i);
        let t = Instant::now();
        s.run(&x)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let m = times.len();
    Ok(if m % 2 == 1 {
        times[m / 2]
    } else {
        0.5 * (times[m / 2 - 1] + times[m / 2])
    })
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
fn is_head_param(name: &str) -> bool {
    !is_shared_tensor(name) && !name.ends_with(".running_mean") && !name.ends_with(".running_var")
}

/// The learning rate at step `t` (0-based) of `total`: linear warm-up over the first
/// 3 % of the steps, then a cosine from `peak` down to zero.
fn schedule(peak: f64, t: usize, total: usize) -> f64 {
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
/// statistics. The schedule is [`fit_head`]'s.
fn tune_private(net: &Net, d: &Dataset, o: &ScaleOptions, step: &dyn Fn(usize)) -> Result<()> {
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

/// The re-fit loss of the batch `idx` of `d`: cross-entropy plus the weighted L1 box
/// loss (box-head models), as in [`train`](crate::train).
fn loss(
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

#[cfg(test)]
mod tests {
    use super::*;
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
