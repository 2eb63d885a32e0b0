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
            format!(
                "SCHED_FIFO granted to {} threads (dispatcher {DISPATCHER_PRIO}, workers {WORKER_PRIO}); mlockall {mem}",
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

/// Lock current and future memory (no page faults on the hot path).
pub(crate) fn lock_memory() -> RtReport {
    let mut r = RtReport {
        requested: true,
        ..Default::default()
    };
    // SAFETY: plain syscall with constant flags.
    let rc = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) };
    if rc != 0 {
        r.mlockall = Some(format!("refused: {}", std::io::Error::last_os_error()));
    }
    r
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

/// Return the calling thread to normal scheduling and unlock memory.
pub(crate) fn reset_thread() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: as above; failures are harmless here.
    unsafe {
        libc::sched_setscheduler(0, libc::SCHED_OTHER, &param);
        libc::munlockall();
    }
}
