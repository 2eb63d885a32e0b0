//! Pass-through stages for tests and calibration, and `reshape`.

use std::time::{Duration, Instant};

use rtmdl_core::{FaultMode, FaultSpec};
use serde::Deserialize;

use crate::params::{bad, bad_input, first, parse, shape_str};
use crate::{CpuStage, Data, OpError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

/// `identity`: returns its input.
pub(crate) struct Identity;

impl Identity {
    pub(crate) fn build(params: &toml::Table) -> Result<Box<dyn CpuStage>, OpError> {
        let NoParams {} = parse("identity", params)?;
        Ok(Box::new(Identity))
    }
}

impl CpuStage for Identity {
    fn name(&self) -> &str {
        "identity"
    }

    fn run(&mut self, input: Data) -> Result<Data, OpError> {
        Ok(input)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BusyParams {
    ms: f64,
}

/// `busy`: spins the CPU for `ms` milliseconds of monotonic time, then
/// returns its input.
pub(crate) struct Busy {
    duration: Duration,
}

impl Busy {
    pub(crate) fn build(params: &toml::Table) -> Result<Box<dyn CpuStage>, OpError> {
        let p: BusyParams = parse("busy", params)?;
        if !(p.ms.is_finite() && (0.0..=3_600_000.0).contains(&p.ms)) {
            return Err(bad(
                "busy",
                "ms",
                format!("milliseconds in 0..=3600000, got {}", p.ms),
            ));
        }
        Ok(Box::new(Busy {
            duration: Duration::from_secs_f64(p.ms / 1000.0),
        }))
    }
}

impl CpuStage for Busy {
    fn name(&self) -> &str {
        "busy"
    }

    fn run(&mut self, input: Data) -> Result<Data, OpError> {
        let start = Instant::now();
        while start.elapsed() < self.duration {
            std::hint::spin_loop();
        }
        Ok(input)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultParams {
    mode: String,
    #[serde(default)]
    skip: u64,
    #[serde(default = "one")]
    every: u64,
    times: Option<u64>,
    #[serde(default = "an_hour")]
    hang_ms: f64,
}

fn one() -> u64 {
    1
}

fn an_hour() -> f64 {
    3_600_000.0
}

/// `fault`: fault injection, to show that a failing sub-task fails only
/// its own job. Passes the data through, except on the calls its
/// [`FaultSpec`] hits: those return an error, panic, or sleep for the
/// spec's `hang` (a hang, for the runtime's watchdog) and then pass the
/// data on.
pub(crate) struct Fault {
    spec: FaultSpec,
    hang: Duration,
    calls: u64,
    faults: u64,
}

/// The `fault` function's parameters as the core's [`FaultSpec`]: the one
/// parser of them, for the `fault` CPU function and an inference stage's
/// `params.fault` alike.
pub(crate) fn fault_spec(params: &toml::Table) -> Result<FaultSpec, OpError> {
    let p: FaultParams = parse(Fault::NAME, params)?;
    let mode = match p.mode.as_str() {
        "error" => FaultMode::Error,
        "panic" => FaultMode::Panic,
        "hang" => FaultMode::Hang,
        other => {
            return Err(bad(
                Fault::NAME,
                "mode",
                format!("\"error\", \"panic\" or \"hang\", got {other:?}"),
            ));
        }
    };
    if p.every == 0 {
        return Err(bad(Fault::NAME, "every", "a count of at least 1, got 0"));
    }
    if !(p.hang_ms.is_finite() && (0.0..=86_400_000.0).contains(&p.hang_ms)) {
        return Err(bad(
            Fault::NAME,
            "hang_ms",
            format!("milliseconds in 0..=86400000, got {}", p.hang_ms),
        ));
    }
    Ok(FaultSpec {
        mode,
        skip: p.skip,
        every: p.every,
        times: p.times,
        hang: Duration::from_secs_f64(p.hang_ms / 1000.0).as_nanos() as u64,
    })
}

impl Fault {
    const NAME: &'static str = "fault";

    pub(crate) fn build(params: &toml::Table) -> Result<Box<dyn CpuStage>, OpError> {
        Ok(Self::from_spec(&fault_spec(params)?))
    }

    pub(crate) fn from_spec(spec: &FaultSpec) -> Box<dyn CpuStage> {
        Box::new(Fault {
            spec: *spec,
            hang: Duration::from_nanos(spec.hang),
            calls: 0,
            faults: 0,
        })
    }
}

impl CpuStage for Fault {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn run(&mut self, input: Data) -> Result<Data, OpError> {
        let due = self.spec.hits(self.calls, self.faults);
        self.calls += 1;
        if !due {
            return Ok(input);
        }
        self.faults += 1;
        match self.spec.mode {
            FaultMode::Error => Err(bad_input(
                Self::NAME,
                format!("injected error (fault {})", self.faults),
            )),
            FaultMode::Panic => panic!("injected panic (fault {})", self.faults),
            FaultMode::Hang => {
                std::thread::sleep(self.hang);
                Ok(input)
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReshapeParams {
    shape: Vec<i64>,
}

/// `reshape`: `[t, rest..]` → `[t reshaped, rest..]` (row-major, no data copy when `t`
/// is contiguous). One dim of `shape` may be `-1`: whatever the element count needs.
pub(crate) struct Reshape {
    shape: Vec<i64>,
}

impl Reshape {
    const NAME: &'static str = "reshape";

    pub(crate) fn build(params: &toml::Table) -> Result<Box<dyn CpuStage>, OpError> {
        let p: ReshapeParams = parse(Self::NAME, params)?;
        let wild = p.shape.iter().filter(|d| **d == -1).count();
        if p.shape.iter().any(|d| *d == 0 || *d < -1) || wild > 1 {
            return Err(bad(
                Self::NAME,
                "shape",
                format!(
                    "a list of positive dims with at most one -1, got {:?}",
                    p.shape
                ),
            ));
        }
        Ok(Box::new(Reshape { shape: p.shape }))
    }

    /// The target dims for `n` elements.
    fn dims(&self, n: usize) -> Option<Vec<usize>> {
        let known: usize = self
            .shape
            .iter()
            .filter(|d| **d > 0)
            .map(|d| *d as usize)
            .try_fold(1usize, |a, d| a.checked_mul(d))?;
        let fill = if self.shape.contains(&-1) {
            if known == 0 || !n.is_multiple_of(known) {
                return None;
            }
            n / known
        } else if known == n {
            1
        } else {
            return None;
        };
        Some(
            self.shape
                .iter()
                .map(|d| if *d == -1 { fill } else { *d as usize })
                .collect(),
        )
    }
}

impl CpuStage for Reshape {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn run(&mut self, mut input: Data) -> Result<Data, OpError> {
        first(Self::NAME, &input, "a tensor")?;
        let n = input[0].len();
        let dims = self.dims(n).ok_or_else(|| {
            bad_input(
                Self::NAME,
                format!(
                    "cannot reshape {} ({n} elements) to {:?}",
                    shape_str(&input[0]),
                    self.shape
                ),
            )
        })?;
        let t = std::mem::take(&mut input[0]);
        let t = if t.is_standard_layout() {
            t
        } else {
            t.as_standard_layout().into_owned()
        };
        input[0] = t
            .into_shape_with_order(ndarray::IxDyn(&dims))
            .map_err(|e| bad_input(Self::NAME, e.to_string()))?;
        Ok(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build;
    use ndarray::{ArrayD, IxDyn};

    fn data() -> Data {
        vec![ArrayD::from_shape_vec(IxDyn(&[2]), vec![1.0, 2.0]).unwrap()]
    }

    #[test]
    fn identity_passes_through() {
        let mut s = build("identity", &toml::Table::new()).unwrap();
        assert_eq!(s.run(data()).unwrap(), data());
        assert!(s.run(vec![]).unwrap().is_empty());
        assert!(matches!(
            build("identity", &"x = 1".parse().unwrap()),
            Err(OpError::BadParam { .. })
        ));
    }

    #[test]
    fn reshape_adds_a_batch_dim_and_checks_counts() {
        let mut s = build("reshape", &"shape = [1, -1]".parse().unwrap()).unwrap();
        let x = ArrayD::from_shape_vec(IxDyn(&[6]), (0..6).map(|v| v as f32).collect()).unwrap();
        let out = s.run(vec![x.clone(), x.clone()]).unwrap();
        assert_eq!(out[0].shape(), &[1, 6]);
        assert_eq!(out[1], x, "the rest travels on");
        assert_eq!(
            out[0].iter().copied().collect::<Vec<_>>(),
            x.iter().copied().collect::<Vec<_>>()
        );
        let mut s = build("reshape", &"shape = [2, 3]".parse().unwrap()).unwrap();
        assert_eq!(s.run(vec![x.clone()]).unwrap()[0].shape(), &[2, 3]);
        // A transposed (non-contiguous) input keeps its logical order.
        let t = ArrayD::from_shape_vec(IxDyn(&[2, 3]), (0..6).map(|v| v as f32).collect())
            .unwrap()
            .reversed_axes();
        let mut flat = build("reshape", &"shape = [-1]".parse().unwrap()).unwrap();
        let out = flat.run(vec![t]).unwrap();
        assert_eq!(
            out[0].iter().copied().collect::<Vec<_>>(),
            vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
        );
        let mut s = build("reshape", &"shape = [4, -1]".parse().unwrap()).unwrap();
        let err = s.run(vec![x]).unwrap_err();
        assert!(err.to_string().contains("cannot reshape [6]"), "{err}");
        assert!(s.run(vec![]).is_err());
        for p in ["shape = [-1, -1]", "shape = [0, 2]", "shape = [-2]", ""] {
            assert!(
                matches!(
                    build("reshape", &p.parse().unwrap()),
                    Err(OpError::BadParam { .. })
                ),
                "{p}"
            );
        }
    }

    #[test]
    fn busy_spins_for_the_given_time() {
        let mut s = build("busy", &"ms = 20".parse().unwrap()).unwrap();
        let t = Instant::now();
        assert_eq!(s.run(data()).unwrap(), data());
        let e = t.elapsed();
        assert!(e >= Duration::from_millis(20), "{e:?}");
        assert!(e < Duration::from_millis(500), "{e:?}");
        let mut s = build("busy", &"ms = 0.5".parse().unwrap()).unwrap();
        assert_eq!(s.run(data()).unwrap(), data());
        for p in ["ms = -1", "", "ms = \"a\""] {
            assert!(
                matches!(
                    build("busy", &p.parse().unwrap()),
                    Err(OpError::BadParam { .. })
                ),
                "{p}"
            );
        }
    }

    #[test]
    fn fault_fails_the_calls_it_is_told_to() {
        let mut s = build(
            "fault",
            &"mode = \"error\"\nskip = 1\nevery = 2\ntimes = 2"
                .parse()
                .unwrap(),
        )
        .unwrap();
        let failed: Vec<bool> = (0..8).map(|_| s.run(data()).is_err()).collect();
        assert_eq!(
            failed,
            [false, true, false, true, false, false, false, false]
        );
        let mut s = build("fault", &"mode = \"panic\"".parse().unwrap()).unwrap();
        let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.run(data())));
        assert!(p.is_err());
        let mut s = build(
            "fault",
            &"mode = \"hang\"\nhang_ms = 30\ntimes = 1".parse().unwrap(),
        )
        .unwrap();
        let t = Instant::now();
        assert_eq!(s.run(data()).unwrap(), data());
        assert!(t.elapsed() >= Duration::from_millis(30));
        let t = Instant::now();
        assert_eq!(s.run(data()).unwrap(), data());
        assert!(t.elapsed() < Duration::from_millis(30));
        for p in [
            "mode = \"melt\"",
            "",
            "mode = \"hang\"\nevery = 0",
            "mode = \"hang\"\nhang_ms = -1",
            "mode = \"error\"\nbogus = 1",
        ] {
            assert!(
                matches!(
                    build("fault", &p.parse().unwrap()),
                    Err(OpError::BadParam { .. })
                ),
                "{p}"
            );
        }
    }
}
