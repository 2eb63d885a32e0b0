//! The files of a family: the manifest and its rows, the checks of the
//! recorded checksums, and rebuilding a variant from its shared and private
//! parts.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::reuse::sha256_file;
use super::{ScaleOptions, is_shared_tensor, slicing, variant_arch};
use crate::weights::read_file;
use crate::{Arch, Result, TrainError, Weights, export_onnx};

#[cfg(doc)]
use super::{SCALE_FORMAT, fit_budget, macs, scale, variant_name};

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
    /// sha256 of the runnable ONNX file as measured (hex).
    pub onnx_sha256: String,
    /// The private part, relative to the manifest's folder.
    pub private_file: PathBuf,
    /// sha256 of the private part (hex).
    pub private_sha256: String,
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
    /// sha256 of the base ONNX file (hex).
    pub base_sha256: String,
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
    /// Its sha256 (hex).
    pub shared_sha256: String,
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

    /// Every row, kept and dropped.
    pub fn rows(&self) -> impl Iterator<Item = &VariantRow> {
        self.variants.iter().chain(&self.dropped)
    }

    /// The part files (shared, then every row's private part) with their
    /// recorded sha256, relative to the manifest's folder.
    fn parts(&self) -> impl Iterator<Item = (&Path, &str)> {
        std::iter::once((self.shared_file.as_path(), self.shared_sha256.as_str())).chain(
            self.rows()
                .map(|r| (r.private_file.as_path(), r.private_sha256.as_str())),
        )
    }

    /// Checks every part file in `dir` (the manifest's folder) against its
    /// recorded sha256: the first one missing or different is an error that
    /// names it ([`TrainError::Corrupt`]).
    pub fn verify_parts(&self, dir: &Path) -> Result<()> {
        for (file, want) in self.parts() {
            check_sha256(&dir.join(file), want)?;
        }
        Ok(())
    }

    /// Puts this family (its manifest in `src`, its parts checked with
    /// [`Manifest::verify_parts`]) into `dst`: the parts copied, every
    /// variant's ONNX rebuilt from them and checked against the sha256 it was
    /// measured with, the manifest written. Files already in `dst` with the
    /// recorded sha256 are kept as they are.
    pub fn install(&self, src: &Path, dst: &Path) -> Result<()> {
        self.verify_parts(src)?;
        std::fs::create_dir_all(dst).map_err(io_err(dst))?;
        for (file, want) in self.parts() {
            let to = dst.join(file);
            if !sha256_file(&to).is_ok_and(|h| h == want) {
                let from = src.join(file);
                std::fs::copy(&from, &to).map_err(io_err(&to))?;
                check_sha256(&to, want)?;
            }
        }
        for row in self.rows() {
            let onnx = dst.join(&row.file);
            if sha256_file(&onnx).is_ok_and(|h| h == row.onnx_sha256) {
                continue;
            }
            let (arch, w) = assemble(dst, self, row)?;
            export_onnx(&arch, &w, &onnx)?;
            let got = sha256_file(&onnx)?;
            if got != row.onnx_sha256 {
                return Err(TrainError::Scale(format!(
                    "{}: rebuilt from its parts, its sha256 is {got}, but {} {} was measured as {}: \
                     the ONNX export changed since this family was made; re-fit it",
                    onnx.display(),
                    self.model,
                    row.name,
                    row.onnx_sha256
                )));
            }
        }
        // In place (the committed folder): the manifest is already there,
        // and written again it would not be byte-identical (f32 accuracies
        // through f64 JSON).
        let in_place = src
            .canonicalize()
            .ok()
            .is_some_and(|s| dst.canonicalize().ok() == Some(s));
        if in_place {
            return Ok(());
        }
        self.save(Manifest::path_in(dst, &self.model))
    }
}

/// An error naming `path` unless its sha256 is `want`.
fn check_sha256(path: &Path, want: &str) -> Result<()> {
    let found = sha256_file(path)?;
    if found == want {
        Ok(())
    } else {
        Err(TrainError::Corrupt {
            path: path.to_path_buf(),
            found,
            expected: want.to_string(),
        })
    }
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(feature = "train")]
pub(super) fn file_len(path: &Path) -> Result<u64> {
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

pub(super) fn assemble_parts(
    shared_path: &Path,
    private_path: &Path,
    arch: &Arch,
) -> Result<(Arch, Weights)> {
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
