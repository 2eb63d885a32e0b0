//! Real-time settings: SCHED_FIFO, CPU affinity, mlockall. Where the OS
//! refuses (no privileges, no RT support), the run goes on with normal
//! priorities and the report says so, once.

use serde::Serialize;

/// SCHED_FIFO priority of the dispatcher (above the workers, so that
/// releases and dispatch are never delayed by a running sub-task).
pub const DISPATCHER_PRIO: i32 = 80;
/// SCHED_FIFO priority of CPU workers and GPU lanes.
pub const WORKER_PRIO: i32 = 70;

/// What was asked of the OS and what it granted.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RtReport {
    pub requested: bool,
    pub mlockall: Option<String>,
    pub granted: Vec<String>,
    pub refused: Vec<String>,
    /// The kernel's budget for real-time threads, (runtime, period) in µs,
    /// when it limits them (`kernel.sched_rt_runtime_us` < period).
    pub throttle: Option<(u64, u64)>,
}

impl RtReport {
    pub fn disabled() -> Self {
        RtReport::default()
    }

    pub(crate) fn thread(&mut self, name: &str, status: Result<(), String>) {
        self.requested = true;
        match status {
            Ok(()) => self.granted.push(name.to_string()),
            Err(e) => self.refused.push(format!("{name}: {e}")),
        }
    }

    /// Whether every thread got its real-time priority.
    pub fn all_granted(&self) -> bool {
        self.requested && self.refused.is_empty()
    }

    /// One line for the report.
    pub fn summary(&self) -> String {
        if !self.requested {
            return "off (normal priorities)".into();
        }
        let mem = self.mlockall.as_deref().unwrap_or("ok");
        if self.refused.is_empty() {
            let throttle = match self.throttle {
                Some((runtime, period)) => format!(
                    "; kernel RT throttling: FIFO threads get {:.0} of every {:.0} ms, so a run that keeps every core busy stalls for up to {:.0} ms each period (`sysctl kernel.sched_rt_runtime_us=-1` lifts it)",
                    runtime as f64 / 1e3,
                    period as f64 / 1e3,
                    period.saturating_sub(runtime) as f64 / 1e3
                ),
                None => String::new(),
            };
            format!(
                "SCHED_FIFO granted to {} threads (dispatcher {DISPATCHER_PRIO}, workers {WORKER_PRIO}); mlockall {mem}{throttle}",
                self.granted.len()
            )
        } else {
            format!(
                "not permitted ({}); running with normal priorities; mlockall {mem}",
                self.refused[0]
            )
        }
    }
}

/// Resident memory of this process, in bytes: (VmRSS, VmHWM), from
/// `/proc/self/status` (Linux only).
pub fn memory() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Lock current and future memory (no page faults on the hot path).
pub(crate) fn lock_memory() -> RtReport {
    let mut r = RtReport {
        requested: true,
        throttle: rt_throttle(),
        ..Default::default()
    };
    // SAFETY: plain syscall with constant flags.
    let rc = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) };
    if rc != 0 {
        r.mlockall = Some(format!("refused: {}", std::io::Error::last_os_error()));
    }
    r
}

/// The kernel's real-time budget (runtime, period) in µs, where it limits
/// real-time threads: `None` when unlimited (runtime -1 or ≥ period) or
/// unreadable (not Linux).
fn rt_throttle() -> Option<(u64, u64)> {
    let read = |name: &str| -> Option<i64> {
        std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    parse_throttle(read("sched_rt_runtime_us")?, read("sched_rt_period_us")?)
}

fn parse_throttle(runtime: i64, period: i64) -> Option<(u64, u64)> {
    let (runtime, period) = (u64::try_from(runtime).ok()?, u64::try_from(period).ok()?);
    (runtime < period).then_some((runtime, period))
}

/// Give the calling thread SCHED_FIFO priority `prio` and pin it to core
/// `pin % cores` when asked.
pub(crate) fn configure_thread(prio: Option<i32>, pin: Option<usize>) -> Result<(), String> {
    let Some(prio) = prio else {
        return Ok(());
    };
    let mut errors = Vec::new();
    let param = libc::sched_param {
        sched_priority: prio,
    };
    // SAFETY: sets the policy of the calling thread (pid 0) with a valid param.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
        errors.push(format!("SCHED_FIFO: {}", std::io::Error::last_os_error()));
    }
    if let Some(core) = pin {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: cpu_set_t is plain data; CPU_SET writes inside it.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(core % cores, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                errors.push(format!("affinity: {}", std::io::Error::last_os_error()));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join(", "))
    }
}

/// Pin the calling thread to core `core % cores` (no priority change);
/// whether the OS allowed it.
pub(crate) fn pin_thread(core: usize) -> bool {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: cpu_set_t is plain data; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core % cores, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Return the calling thread to normal scheduling and unlock memory.
pub(crate) fn reset_thread() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: as above; failures are harmless here.
    unsafe {
        libc::sched_setscheduler(0, libc::SCHED_OTHER, &param);
        libc::munlockall();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_reported_only_where_it_limits() {
        assert_eq!(
            parse_throttle(950_000, 1_000_000),
            Some((950_000, 1_000_000))
        );
        assert_eq!(parse_throttle(-1, 1_000_000), None);
        assert_eq!(parse_throttle(1_000_000, 1_000_000), None);
        let r = RtReport {
            requested: true,
            granted: vec!["rtmdl-dispatcher".into()],
            throttle: Some((950_000, 1_000_000)),
            ..Default::default()
        };
        let s = r.summary();
        assert!(s.contains("950 of every 1000 ms"), "{s}");
        assert!(s.contains("up to 50 ms"), "{s}");
    }
}
