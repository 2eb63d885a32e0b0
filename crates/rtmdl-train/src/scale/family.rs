//! One family, variant by variant ([`Job::run`]): read the base, reorder it, write
//! the shared part, then slice, re-fit, write, assemble and measure every variant.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{Axis, IxDyn};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rtmdl_engine::{Engine, ModelSpec};

use super::manifest::{assemble_parts, file_len, io_err};
use super::reuse::sha256_file;
use super::{
    Manifest, ScaleEvent, ScaleOptions, SourceKey, VariantRow, is_shared_tensor, macs, mark_pareto,
    permute_by_importance, read_onnx, slice_variant, sort_rows, variant_arch, variant_name,
};
use crate::eval::evaluate_with;
use crate::weights::write_file;
use crate::{Arch, Dataset, Result, TrainError, Weights, export_onnx};

/// What one call of [`scale`](super::scale) works on.
pub(super) struct Job<'a> {
    pub(super) model: &'a str,
    pub(super) base_onnx: &'a Path,
    pub(super) train: &'a Dataset,
    pub(super) val: &'a Dataset,
    pub(super) opts: &'a ScaleOptions,
    pub(super) out_dir: &'a Path,
    pub(super) emit: &'a dyn Fn(ScaleEvent),
}

impl Job<'_> {
    pub(super) fn stage(&self, name: String, total: usize) {
        (self.emit)(ScaleEvent::Stage { name, total });
    }

    pub(super) fn step(&self, done: usize, total: usize) {
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

    /// Makes the family: reads the base, writes the shared part, then every
    /// variant, then the manifest (returned as read back).
    pub(super) fn run(&self, key: SourceKey) -> Result<Manifest> {
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
        let shared = self.write_shared(&base, &perm)?;

        // One seeded calibration subset for every variant.
        let mut order: Vec<usize> = (0..self.train.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(o.seed ^ 0xc_a11b_7a7e));
        let calib: Vec<usize> = order[..o.calib_n.clamp(1, self.train.len())].to_vec();

        let mut rows = Vec::new();
        for &(width, depth) in &levels {
            let row = self.variant(
                &base,
                &perm,
                &shared,
                (width, depth),
                &calib,
                engine.as_ref(),
            )?;
            (self.emit)(ScaleEvent::Variant(Box::new(row.clone())));
            rows.push(row);
        }
        sort_rows(&mut rows);
        mark_pareto(&mut rows);
        let m = Manifest {
            model: model.to_string(),
            base: self.base_onnx.to_path_buf(),
            shared_file: shared.file,
            shared_bytes: shared.bytes,
            shared_sha256: shared.sha256,
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

    /// Writes the shared part of the reordered base `perm`, at full width.
    fn write_shared(&self, base: &Arch, perm: &Weights) -> Result<Part> {
        let shared: Weights = Weights {
            tensors: perm
                .tensors
                .iter()
                .filter(|(k, _)| is_shared_tensor(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let file = PathBuf::from(format!("{}.shared.safetensors", self.model));
        let path = self.out_dir.join(&file);
        let mut meta = BTreeMap::new();
        meta.insert(
            "base_arch".to_string(),
            serde_json::to_string(base).expect("arch serialises"),
        );
        meta.insert("part".to_string(), "shared".to_string());
        write_file(&path, &shared, &meta)?;
        Ok(Part {
            bytes: file_len(&path)?,
            sha256: sha256_file(&path)?,
            path,
            file,
        })
    }

    /// One variant: sliced from `perm`, re-fitted unless it is the base,
    /// its private part written, its ONNX assembled from the parts, then
    /// measured.
    fn variant(
        &self,
        base: &Arch,
        perm: &Weights,
        shared: &Part,
        (width, depth): (f32, usize),
        calib: &[usize],
        engine: &dyn Engine,
    ) -> Result<VariantRow> {
        let (o, model) = (self.opts, self.model);
        let tv = Instant::now();
        let name = variant_name(width, depth);
        let (va, mut vw) = slice_variant(base, perm, width, depth)?;
        let is_base = (va.c1, va.c2, va.c3, va.blocks) == (base.c1, base.c2, base.c3, base.blocks);
        if !is_base {
            vw = self.refit(&va, &vw, &name, calib)?;
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
        let (aa, aw) = assemble_parts(&shared.path, &private_path, &va)?;
        debug_assert!(aw == vw, "assembling {name} from its parts changed it");
        let file = PathBuf::from(format!("{model}-{name}.onnx"));
        let onnx = self.out_dir.join(&file);
        export_onnx(&aa, &aw, &onnx)?;

        self.stage(format!("{model} {name}: evaluate"), self.val.len());
        let ev = evaluate_with(&onnx, self.val, engine, &mut |d, t| {
            if d % 64 == 0 || d == t {
                self.step(d, t)
            }
        })?;
        self.stage(format!("{model} {name}: latency"), 0);
        let latency_ms = latency(engine, &onnx, self.val, o.latency_runs)?;
        Ok(VariantRow {
            model: model.to_string(),
            name,
            width,
            depth,
            accuracy: ev.accuracy as f64,
            box_iou: ev.box_iou_mean.map(|v| v as f64),
            latency_ms,
            shared_bytes: shared.bytes,
            private_bytes: file_len(&private_path)?,
            private_sha256: sha256_file(&private_path)?,
            onnx_sha256: sha256_file(&onnx)?,
            file,
            private_file,
            params: va.param_count(),
            macs: macs(&va),
            arch: va,
            pareto: false,
            refit: !is_base,
            seconds: tv.elapsed().as_secs_f64(),
        })
    }
}

/// A written part file.
struct Part {
    /// Relative to the output folder.
    file: PathBuf,
    path: PathBuf,
    bytes: u64,
    sha256: String,
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
