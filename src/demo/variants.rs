//! The demo's base models and variant families. By default the families
//! committed in `assets/variants` are used: their files are checked against
//! the sha256 their manifests record, and their ONNX files are rebuilt from
//! the parts into `OUT/variants`. They are re-fitted from the base models
//! only with `--refit` or when a base model is not the one a family was made
//! from (then the demo says which and why); that needs the `train` feature.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rtmdl_train::Manifest;
use rtmdl_train::scale::sha256_file;

use super::DemoArgs;
#[cfg(not(feature = "train"))]
use crate::cmd::common::no_train;

/// The committed base models and variant families.
pub struct Assets {
    /// `NAME.onnx` per model.
    pub models: PathBuf,
    /// `NAME.manifest.json` and the parts per model.
    pub variants: PathBuf,
}

impl Assets {
    /// `DIR/models` and `DIR/variants` of `--assets DIR`, else of the
    /// `assets` folder next to the working directory or to this crate's
    /// sources, whichever holds both base models.
    pub fn find(dir: Option<&Path>) -> Option<Assets> {
        let candidates = match dir {
            Some(d) => vec![d.to_path_buf()],
            None => vec![
                PathBuf::from("assets"),
                Path::new(env!("CARGO_MANIFEST_DIR")).join("assets"),
            ],
        };
        candidates
            .into_iter()
            .find(|d| {
                super::MODELS
                    .iter()
                    .all(|m| base_in(&d.join("models"), m).is_file())
            })
            .map(|d| Assets {
                models: d.join("models"),
                variants: d.join("variants"),
            })
    }
}

/// The base model file of `model` in `dir`.
pub fn base_in(dir: &Path, model: &str) -> PathBuf {
    dir.join(format!("{model}.onnx"))
}

/// Where a family comes from.
#[derive(Debug)]
pub enum Source {
    /// The committed family: its manifest and its folder.
    Committed(Box<Manifest>, PathBuf),
    /// A re-fit, and why.
    Refit(String),
}

/// Whether the committed family of `model` in `committed` can be used for
/// the base model `base`: not with `--refit`, not when there is none, not
/// when `base` is not the file it was made from (by sha256).
pub fn source(model: &str, base: &Path, committed: &Path, refit: bool) -> Result<Source> {
    if refit {
        return Ok(Source::Refit("--refit".into()));
    }
    let path = Manifest::path_in(committed, model);
    if !path.is_file() {
        return Ok(Source::Refit(format!(
            "no committed family ({} does not exist)",
            path.display()
        )));
    }
    let m = Manifest::load(&path)?;
    let sha = sha256_file(base)?;
    if sha != m.source.base_sha256 {
        return Ok(Source::Refit(format!(
            "{} is not the base model the committed family {} was made from (sha256 {}…, made from {}…)",
            base.display(),
            path.display(),
            &sha[..12],
            m.source.base_sha256.get(..12).unwrap_or("?")
        )));
    }
    Ok(Source::Committed(Box::new(m), committed.to_path_buf()))
}

/// The family of every base model, in `out/variants`: committed, or
/// re-fitted (then the reason is printed first).
pub fn families(
    a: &DemoArgs,
    bases: &[(&'static str, PathBuf)],
    assets: Option<&Assets>,
    out: &Path,
) -> Result<Vec<Manifest>> {
    let dir = out.join("variants");
    let mut manifests = Vec::new();
    for (model, base) in bases {
        let src = match assets {
            Some(s) => source(model, base, &s.variants, a.refit)?,
            None => Source::Refit("no committed families (no assets folder)".into()),
        };
        let m = match src {
            Source::Committed(m, from) => {
                let from = from.as_path();
                m.install(from, &dir).with_context(|| {
                    format!(
                        "the committed {model} variants in {} (restore them with `git checkout -- {}`, or re-fit them with --refit)",
                        from.display(),
                        from.display()
                    )
                })?;
                eprintln!(
                    "      {model}: {} committed variants from {} (files checked against their sha256)",
                    m.variants.len(),
                    from.display()
                );
                *m
            }
            Source::Refit(why) => {
                eprintln!("      {model}: re-fitting the variants: {why}");
                refit(a, model, base, &why, out)?
            }
        };
        manifests.push(m);
    }
    Ok(manifests)
}

/// The scaling recipe of a re-fit: the committed families' (the `scale`
/// command's defaults), or a small one with `--quick`.
#[cfg(feature = "train")]
fn recipe(a: &DemoArgs) -> rtmdl_train::cli::ScaleArgs {
    let full = rtmdl_train::cli::ScaleArgs {
        seed: a.seed,
        ..Default::default()
    };
    if !a.quick {
        return full;
    }
    rtmdl_train::cli::ScaleArgs {
        train_n: 600,
        eval_n: 200,
        widths: vec![1.0, 0.5],
        depths: vec![2, 1],
        epochs: 1,
        latency_runs: 10,
        calib_n: 600,
        ..full
    }
}

#[cfg(not(feature = "train"))]
fn refit(a: &DemoArgs, model: &str, _: &Path, why: &str, _: &Path) -> Result<Manifest> {
    anyhow::bail!(
        "{}",
        no_train(
            &format!("re-fitting the {model} variants ({why})"),
            if a.refit { "demo --refit" } else { "demo" }
        )
    )
}

/// Re-fits the family of `base` into `out/variants` on generated data
/// (seeded, cached in `out/data`), reused when nothing changed.
#[cfg(feature = "train")]
fn refit(a: &DemoArgs, model: &str, base: &Path, _: &str, out: &Path) -> Result<Manifest> {
    let r = recipe(a);
    let kind: rtmdl_train::Kind = model.parse()?;
    let data = out.join("data");
    let (train, _) =
        rtmdl_scenes::cached(kind, rtmdl_train::Split::Train, r.train_n, a.seed, &data)?;
    let (val, _) = rtmdl_scenes::cached(kind, r.eval_split, r.eval_n, a.seed, &data)?;
    let b = crate::cmd::common::progress_bar(0, &super::label(model));
    let t0 = std::time::Instant::now();
    let m = rtmdl_train::scale(
        model,
        base,
        &train,
        &val,
        &r.options(),
        &out.join("variants"),
        &|ev| match ev {
            rtmdl_train::ScaleEvent::Stage { name, total } => {
                b.set_length(total as u64);
                b.set_position(0);
                b.set_message(name);
            }
            rtmdl_train::ScaleEvent::Step { done, total } => {
                b.set_length(total as u64);
                b.set_position(done as u64);
            }
            _ => {}
        },
    );
    b.finish_and_clear();
    let m = m.with_context(|| format!("scaling {}", base.display()))?;
    eprintln!(
        "      {model}: {} variants, storage {} ({:.1} s)",
        m.variants.len(),
        rtmdl_core::units::fmt_size(m.storage()),
        t0.elapsed().as_secs_f64()
    );
    Ok(m)
}

/// A base model trained here, when there are no committed ones: in
/// `out/base`, named after what it was trained with.
#[cfg(feature = "train")]
pub fn train_base(model: &'static str, a: &DemoArgs, out: &Path) -> Result<PathBuf> {
    let kind: rtmdl_train::Kind = model.parse()?;
    let tag = if a.quick { "-quick" } else { "" };
    let path = out
        .join("base")
        .join(format!("{model}-s{}{tag}.onnx", a.seed));
    if path.is_file() {
        return Ok(path);
    }
    eprintln!("      {model}: no trained model in assets/models; training one");
    let r = recipe(a);
    let data = out.join("data");
    let (train, _) =
        rtmdl_scenes::cached(kind, rtmdl_train::Split::Train, r.train_n, a.seed, &data)?;
    let (val, _) = rtmdl_scenes::cached(kind, rtmdl_train::Split::Val, r.eval_n, a.seed, &data)?;
    let arch = match kind {
        rtmdl_train::Kind::Lights => rtmdl_train::Arch::lights(),
        _ => rtmdl_train::Arch::signs(),
    };
    let opts = rtmdl_train::TrainOptions {
        epochs: if a.quick { 1 } else { 10 },
        seed: a.seed,
        ..Default::default()
    };
    let trained = rtmdl_train::train(&arch, &train, &val, &opts, &mut |_, _, _| {})?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    rtmdl_train::export_onnx(&arch, &trained.weights, &path)?;
    Ok(path)
}

#[cfg(not(feature = "train"))]
pub fn train_base(model: &'static str, _: &DemoArgs, _: &Path) -> Result<PathBuf> {
    anyhow::bail!(
        "{}",
        no_train(
            &format!("there is no base model {model}.onnx in assets/models, and training one"),
            "demo"
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assets() -> Assets {
        Assets::find(Some(&Path::new(env!("CARGO_MANIFEST_DIR")).join("assets")))
            .expect("the committed assets")
    }

    /// The committed families are used for the committed base models, and
    /// re-fitted with --refit, without a family, or for another base model.
    #[test]
    fn committed_families_are_used_only_for_their_own_base_model() {
        let a = assets();
        for model in super::super::MODELS {
            let base = base_in(&a.models, model);
            let s = source(model, &base, &a.variants, false).unwrap();
            assert!(
                matches!(&s, Source::Committed(m, _) if m.model == model),
                "{s:?}"
            );
            let s = source(model, &base, &a.variants, true).unwrap();
            assert!(
                matches!(&s, Source::Refit(why) if why == "--refit"),
                "{s:?}"
            );
            let s = source(model, &base, Path::new("/nonexistent"), false).unwrap();
            assert!(
                matches!(&s, Source::Refit(why) if why.contains("no committed")),
                "{s:?}"
            );
        }
        let other = base_in(&a.models, "signs");
        let s = source("lights", &other, &a.variants, false).unwrap();
        assert!(
            matches!(&s, Source::Refit(why) if why.contains("signs.onnx") && why.contains("sha256")),
            "{s:?}"
        );
    }
}
