//! The file format, as serde sees it. Units are parsed while deserialising
//! so that a bad value ("33 parsecs") is reported at its own line by toml.

use std::collections::BTreeMap;
use std::fmt;

use rtmdl_core::units::{parse_duration, parse_period, parse_size};
use rtmdl_core::{ExecProfile, Overrun, Resource, Time};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

/// A duration written with a unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dur(pub Time);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration string like \"33 ms\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Dur, E> {
                parse_duration(s).map(Dur).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "`{n}` has no unit: write a duration as a string like \"{n} ms\""
                )))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "`{n}` has no unit: write a duration as a string like \"{n} ms\""
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// A task's period: a duration like "33 ms", or a rate like "30 Hz".
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Period(pub Time);

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Period;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a period like \"33 ms\" or a rate like \"30 Hz\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Period, E> {
                parse_period(s).map(Period).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Period, E> {
                Err(E::custom(format!(
                    "`{n}` has no unit: write a period as a string like \"{n} ms\" (or a rate, \"{n} Hz\")"
                )))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Period, E> {
                Err(E::custom(format!(
                    "`{n}` has no unit: write a period as a string like \"{n} ms\" (or a rate, \"{n} Hz\")"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// A size in bytes, written like "9.5 MiB" (or a plain integer of bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size like \"9.5 MiB\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Size, E> {
                parse_size(s).map(Size).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Size, E> {
                u64::try_from(n)
                    .map(Size)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
        }
        d.deserialize_any(V)
    }
}

/// An execution-time profile: `"3 ms"`, `{ p50 = .., p90 = .., p99 = ..,
/// max = .. }` (optionally `min`), or a list of measured samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile(pub ExecProfile);

impl<'de> Deserialize<'de> for Profile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Profile;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "an execution time: \"3 ms\", a table { p50, p90, p99, max } or a list of samples",
                )
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Profile, E> {
                parse_duration(s)
                    .map(|t| Profile(ExecProfile::Fixed(t)))
                    .map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Profile, A::Error> {
                let mut v = Vec::new();
                while let Some(Dur(t)) = seq.next_element()? {
                    v.push(t);
                }
                if v.is_empty() {
                    return Err(de::Error::custom("a list of samples cannot be empty"));
                }
                Ok(Profile(ExecProfile::Samples(v)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Profile, A::Error> {
                let mut q: BTreeMap<String, Time> = BTreeMap::new();
                while let Some(k) = map.next_key::<String>()? {
                    if !["min", "p50", "p90", "p99", "max"].contains(&k.as_str()) {
                        return Err(de::Error::unknown_field(
                            &k,
                            &["min", "p50", "p90", "p99", "max"],
                        ));
                    }
                    let Dur(t) = map.next_value()?;
                    q.insert(k, t);
                }
                let get = |k: &str| {
                    q.get(k)
                        .copied()
                        .ok_or_else(|| de::Error::missing_field(leak(k)))
                };
                let (p50, p90, p99, max) = (get("p50")?, get("p90")?, get("p99")?, get("max")?);
                // Without a min the lower tail mirrors the upper one
                // (p50 − (p90 − p50), at least 0): a job is as likely to
                // run a little faster than p50 as slower, not pinned to it.
                let min = q
                    .get("min")
                    .copied()
                    .unwrap_or_else(|| p50.saturating_sub(p90.saturating_sub(p50)));
                if !(min <= p50 && p50 <= p90 && p90 <= p99 && p99 <= max) {
                    return Err(de::Error::custom(
                        "quantiles must not decrease: min ≤ p50 ≤ p90 ≤ p99 ≤ max",
                    ));
                }
                Ok(Profile(ExecProfile::Quantiles {
                    min,
                    p50,
                    p90,
                    p99,
                    max,
                }))
            }
        }
        d.deserialize_any(V)
    }
}

fn leak(k: &str) -> &'static str {
    match k {
        "p50" => "p50",
        "p90" => "p90",
        "p99" => "p99",
        _ => "max",
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub platform: Spanned<RawPlatform>,
    #[serde(default)]
    pub models: BTreeMap<String, Spanned<RawModel>>,
    #[serde(default)]
    pub tasks: Vec<Spanned<RawTask>>,
    /// Online variant switching (used with `--adapt`).
    #[serde(default)]
    pub adapt: Option<Spanned<RawAdapt>>,
    /// How the scenario runs (`rtmdl run` without `--duration`).
    #[serde(default)]
    pub run: Option<RawRun>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdapt {
    #[serde(default)]
    pub window: Option<Spanned<i64>>,
    #[serde(default)]
    pub low: Option<Spanned<f64>>,
    #[serde(default)]
    pub high: Option<Spanned<f64>>,
    #[serde(default)]
    pub hold: Option<Dur>,
    #[serde(default)]
    pub timeline: Option<Spanned<Dur>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRun {
    #[serde(default)]
    pub duration: Option<Spanned<Dur>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlatform {
    pub cpu_workers: Spanned<i64>,
    #[serde(default = "one")]
    pub gpu_lanes: Spanned<i64>,
    #[serde(default)]
    pub gpu_slowdown: Option<Spanned<Vec<f64>>>,
    #[serde(default)]
    pub storage_budget: Option<Size>,
    /// Physical cores the workers (and CPU-engine lanes) share.
    #[serde(default)]
    pub cores: Option<Spanned<i64>>,
    /// A sub-task running longer than this fails its job.
    #[serde(default)]
    pub watchdog: Option<Spanned<Dur>>,
    /// Hung sub-tasks after which a task is quarantined (0: never).
    #[serde(default)]
    pub max_hangs: Option<Spanned<i64>>,
}

fn one() -> Spanned<i64> {
    Spanned::new(0..0, 1)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    pub name: Spanned<String>,
    pub on: Resource,
    /// Default time for every variant (e.g. pre-processing).
    #[serde(default)]
    pub time: Option<Profile>,
    /// Real runtime: the registered CPU function that implements the stage.
    #[serde(default)]
    pub function: Option<Spanned<String>>,
    /// Real runtime: the function's or the inference's parameters (checked
    /// in `body`).
    #[serde(default)]
    pub params: Option<Spanned<toml::Table>>,
    /// Real runtime: the engine of an inference stage ("tract", "ort",
    /// "cuda"), instead of the run's.
    #[serde(default)]
    pub engine: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub stages: Spanned<Vec<RawStage>>,
    #[serde(default)]
    pub shared: BTreeMap<String, Size>,
    pub variants: Spanned<Vec<Spanned<RawVariant>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVariant {
    pub name: Spanned<String>,
    pub accuracy: Spanned<f64>,
    #[serde(default)]
    pub shared_with: Option<Spanned<String>>,
    #[serde(default)]
    pub private: Option<Size>,
    #[serde(default)]
    pub times: BTreeMap<String, Spanned<Profile>>,
    /// ONNX file of the variant (for the real runtime), relative to the config.
    #[serde(default)]
    pub file: Option<String>,
    /// Per stage, the parameters this variant runs it with instead of the
    /// stage's (`params.infer = { input_shape = [1, 3, 256, 256] }`).
    #[serde(default)]
    pub params: BTreeMap<String, Spanned<toml::Table>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTask {
    pub name: Spanned<String>,
    pub model: Spanned<String>,
    pub period: Spanned<Period>,
    #[serde(default)]
    pub deadline: Option<Spanned<Dur>>,
    #[serde(default)]
    pub offset: Option<Dur>,
    #[serde(default)]
    pub max_miss_rate: Option<Spanned<f64>>,
    #[serde(default)]
    pub min_accuracy: Option<Spanned<f64>>,
    #[serde(default)]
    pub priority: Option<Spanned<i64>>,
    #[serde(default)]
    pub variant: Option<Spanned<String>>,
    #[serde(default)]
    pub overrun: Option<Overrun>,
    /// Real runtime: where the job's input comes from (`kind = ...`).
    #[serde(default)]
    pub source: Option<Spanned<toml::Table>>,
    /// The slowest variant online switching may go down to.
    #[serde(default)]
    pub floor: Option<Spanned<String>>,
    /// No release at or after this time.
    #[serde(default)]
    pub stop: Option<Spanned<Dur>>,
    /// (m,k)-firm: `"2 in 10"`.
    #[serde(default)]
    pub max_misses: Option<Spanned<String>>,
}

/// A plan file: per task, a variant and a priority.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlan {
    /// The config the plan was made for (informative only).
    #[serde(default)]
    #[allow(dead_code)]
    pub config: Option<String>,
    #[serde(rename = "task")]
    pub tasks: Vec<Spanned<RawPlanTask>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlanTask {
    pub name: Spanned<String>,
    pub variant: Spanned<String>,
    pub priority: Spanned<i64>,
}
