//! Pass-through stages for tests and calibration.

use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::params::{bad, parse};
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
}
