//! Loading a config the way every command and the Python package do: the
//! config, its plan and a measured profile applied, committed variant files
//! rebuilt from their parts where missing, and a missing model file or
//! stage time said before anything runs.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// A config with, optionally, a plan and a measured profile applied; an
/// error when a stage time the config leaves to `rtmdl profile` is still
/// missing (every command that predicts needs them).
pub fn config(
    config: &Path,
    plan: Option<&Path>,
    profile: Option<&Path>,
) -> Result<rtmdl_config::Config> {
    prepare(rtmdl_config::load(config)?, plan, profile, true)
}

/// [`config`] without the check that every stage has a time: for
/// what measures them (`profile`, the real half of `plan --verify`).
pub fn config_untimed(
    config: &Path,
    plan: Option<&Path>,
    profile: Option<&Path>,
) -> Result<rtmdl_config::Config> {
    prepare(rtmdl_config::load(config)?, plan, profile, false)
}

/// A parsed config (from a file or from text, [`rtmdl_config::parse`])
/// with its plan and profile applied, and where `timed`, the check that
/// every stage has a time.
pub fn prepare(
    cfg: rtmdl_config::Config,
    plan: Option<&Path>,
    profile: Option<&Path>,
    timed: bool,
) -> Result<rtmdl_config::Config> {
    let config = cfg.path.clone();
    let config = config.as_path();
    let cfg = apply(cfg, plan, profile)?;
    if !timed {
        return Ok(cfg);
    }
    let left = cfg.unmeasured_in(&cfg.taskset);
    if !left.is_empty() {
        let more = if left.len() > 4 {
            format!(" and {} more", left.len() - 4)
        } else {
            String::new()
        };
        bail!(
            "{}: no time for {}{more}: the config leaves these times to a measurement: run `rtmdl profile {} -o profile.json` and pass --profile profile.json{} (or give the stage a `time`)",
            config.display(),
            left[..left.len().min(4)].join(", "),
            config.display(),
            if profile.is_some() {
                " measured for this config"
            } else {
                ""
            }
        );
    }
    Ok(cfg)
}

/// The plan and profile applied to `cfg`, its missing committed variant
/// files rebuilt, and a warning for each model file that is not there.
fn apply(
    mut cfg: rtmdl_config::Config,
    plan: Option<&Path>,
    profile: Option<&Path>,
) -> Result<rtmdl_config::Config> {
    let config = cfg.path.clone();
    let config = config.as_path();
    install_missing_variants(&cfg)?;
    // Simulated commands never open a model, so a wrong path would pass
    // unseen until a real run: say it now.
    for m in &cfg.taskset.models {
        for v in &m.variants {
            if let Some(f) = &v.file
                && !cfg.resolve(f).exists()
            {
                eprintln!(
                    "warning: {}: models.{}.variants[{}].file: {} does not exist (a real run of it fails; simulations use the config's times)",
                    config.display(),
                    m.name,
                    v.name,
                    cfg.resolve(f).display()
                );
            }
        }
    }
    if let Some(p) = plan {
        rtmdl_config::apply_plan(&mut cfg.taskset, p)?;
    }
    if let Some(p) = profile {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
        let prof: rtmdl_core::profile::Profile =
            serde_json::from_str(&text).with_context(|| {
                format!("{}: not a profile written by `rtmdl profile`", p.display())
            })?;
        prof.apply(&mut cfg.taskset)
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
    }
    Ok(cfg)
}

/// Variant files a config names that are missing but belong to a family
/// committed next to them (a `*.manifest.json` listing the file, with its
/// shared and private parts): rebuild them from the parts, checked against
/// the sha256 they were measured with (`assets/variants` holds the parts
/// only; its ONNX files are made on first use).
fn install_missing_variants(cfg: &rtmdl_config::Config) -> Result<()> {
    let mut missing: std::collections::BTreeMap<PathBuf, Vec<std::ffi::OsString>> =
        Default::default();
    for v in cfg.taskset.models.iter().flat_map(|m| &m.variants) {
        let Some(file) = v.file.as_deref().map(|f| cfg.resolve(f)) else {
            continue;
        };
        if let (false, Some(dir), Some(name)) = (file.exists(), file.parent(), file.file_name()) {
            missing
                .entry(dir.to_path_buf())
                .or_default()
                .push(name.to_owned());
        }
    }
    for (dir, names) in missing {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.flatten().map(|e| e.path()) {
            if !path.to_string_lossy().ends_with(".manifest.json") {
                continue;
            }
            let Ok(family) = rtmdl_train::Manifest::load(&path) else {
                continue;
            };
            if family
                .rows()
                .any(|r| names.iter().any(|n| r.file.as_os_str() == n))
            {
                eprintln!(
                    "installing the `{}` variant files into {} from their committed parts",
                    family.model,
                    dir.display()
                );
                family.install(&dir, &dir).with_context(|| {
                    format!("cannot rebuild the variants of {}", path.display())
                })?;
            }
        }
    }
    Ok(())
}
