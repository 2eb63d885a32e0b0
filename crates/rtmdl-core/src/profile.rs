//! Measured execution-time profiles (written by `rtmdl profile`), which
//! replace a config's hand-written times in simulation and planning.

use serde::{Deserialize, Serialize};

use crate::model::{ExecProfile, TaskSet, Time};

/// One stage of one variant, measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageProfile {
    pub name: String,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Every measurement, in nanoseconds.
    pub samples_ns: Vec<Time>,
}

impl StageProfile {
    /// Summarise raw samples.
    pub fn from_samples(name: &str, mut samples: Vec<Time>) -> Self {
        samples.sort_unstable();
        let q = |p: f64| {
            if samples.is_empty() {
                0.0
            } else {
                samples[((p * (samples.len() - 1) as f64).round() as usize).min(samples.len() - 1)]
                    as f64
                    / 1e6
            }
        };
        StageProfile {
            name: name.to_string(),
            p50_ms: q(0.5),
            p90_ms: q(0.9),
            p99_ms: q(0.99),
            max_ms: q(1.0),
            samples_ns: samples,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VariantProfile {
    pub name: String,
    pub stages: Vec<StageProfile>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelProfile {
    pub name: String,
    pub variants: Vec<VariantProfile>,
}

/// A whole profile file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// The config it was measured for.
    pub config: String,
    pub engine: String,
    pub runs: usize,
    /// Measured slowdown with 1..K GPU lanes busy (`[1.0, ...]`).
    pub gpu_slowdown: Vec<f64>,
    pub models: Vec<ModelProfile>,
    /// The machine as measured: physical cores, whether the lanes ran a
    /// CPU engine, contention, and the runtime's hand-offs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<Machine>,
    /// The inference stages that run on another engine than `engine`:
    /// the ones that name theirs ("model/stage: ort"), and the models
    /// `--engine auto` had to give to another engine (one line each).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stage_engines: Vec<String>,
}

/// What a profile measured about the machine and the runtime, for the
/// simulator's platform model (see [`crate::Platform`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub lanes_on_cpu: bool,
    #[serde(default)]
    pub contention: Vec<f64>,
    #[serde(default)]
    pub overheads: crate::model::Overheads,
    /// Per model, per stage: how much slower the stage ran in the
    /// calibration run than alone (already applied to the samples above).
    #[serde(default)]
    pub inflation: Vec<Vec<f64>>,
    /// The load (release-rate multiplier) of the calibration run.
    #[serde(default)]
    pub calibration_load: Option<f64>,
}

impl Profile {
    /// Replace the task set's times (and GPU slowdown) with the measured
    /// ones. Every model, variant and stage of the profile must exist in
    /// the task set: a profile from another config is an error.
    pub fn apply(&self, ts: &mut TaskSet) -> Result<(), String> {
        let other = "was it measured for another config?";
        for mp in &self.models {
            let m = ts
                .models
                .iter_mut()
                .find(|m| m.name == mp.name)
                .ok_or_else(|| format!("the config has no model `{}`: {other}", mp.name))?;
            for vp in &mp.variants {
                let stages = m.stages.clone();
                let v = m
                    .variants
                    .iter_mut()
                    .find(|v| v.name == vp.name)
                    .ok_or_else(|| {
                        format!("model `{}` has no variant `{}`: {other}", mp.name, vp.name)
                    })?;
                for sp in &vp.stages {
                    let i = stages
                        .iter()
                        .position(|s| s.name == sp.name)
                        .ok_or_else(|| {
                            format!("model `{}` has no stage `{}`: {other}", mp.name, sp.name)
                        })?;
                    if sp.samples_ns.is_empty() {
                        return Err(format!(
                            "no samples for {}/{}/{}",
                            mp.name, vp.name, sp.name
                        ));
                    }
                    v.times[i] = ExecProfile::Samples(sp.samples_ns.clone());
                }
            }
        }
        if !self.gpu_slowdown.is_empty() {
            let k = ts.platform.gpu_lanes;
            let mut s = self.gpu_slowdown.clone();
            while s.len() < k {
                s.push(*s.last().unwrap_or(&1.0));
            }
            s.truncate(k);
            ts.platform.gpu_slowdown = s.iter().map(|f| f.max(1.0)).collect();
        }
        if let Some(m) = &self.machine {
            ts.platform.cores = Some(m.cores.max(1));
            ts.platform.lanes_on_cpu = m.lanes_on_cpu;
            ts.platform.contention = m.contention.clone();
            ts.platform.overheads = m.overheads.clone();
        }
        Ok(())
    }
}
