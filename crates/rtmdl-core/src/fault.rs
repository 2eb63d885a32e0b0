//! Failures: how the scheduler core handles sub-tasks that fail or hang,
//! and which calls of a stage an injected fault hits.
//!
//! The core owns every failure decision (as quinn-proto owns every timer):
//! the watchdog's deadline is one of its timeouts, it counts hangs per task
//! and quarantines a task at [`FaultPolicy::max_hangs`]. A driver only
//! reports what it saw (a sub-task returned an error, panicked, or its
//! worker's queue was full) and carries out `Abort` by replacing the worker.
//! So the simulator fails, hangs and quarantines exactly like a real run.

use serde::{Deserialize, Serialize};

use crate::model::Time;

/// What the core does about failing sub-tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultPolicy {
    /// A sub-task running longer than this is hung: its job fails and its
    /// worker is replaced (`Decision::Abort`). `None`: no watchdog.
    pub watchdog: Option<Time>,
    /// After this many hung sub-tasks a task is quarantined: its jobs are
    /// still released and counted, but fail at once without running. Each
    /// hang leaves a thread behind in a real run (threads cannot be killed),
    /// so this bounds what one broken model costs. 0: never quarantine.
    pub max_hangs: u32,
}

/// Hung sub-tasks after which a task is quarantined, unless configured.
pub const MAX_HANGS: u32 = 3;

impl Default for FaultPolicy {
    fn default() -> Self {
        FaultPolicy {
            watchdog: None,
            max_hangs: MAX_HANGS,
        }
    }
}

/// Why a job failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailReason {
    /// The sub-task returned an error.
    Error,
    /// The sub-task panicked.
    Panic,
    /// The watchdog found the sub-task running too long.
    Hung,
    /// The task is quarantined after too many hangs.
    Quarantined,
    /// The worker's queue was full (it is stuck in an earlier sub-task).
    Unresponsive,
}

impl std::fmt::Display for FailReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FailReason::Error => "error",
            FailReason::Panic => "panic",
            FailReason::Hung => "hung",
            FailReason::Quarantined => "quarantined",
            FailReason::Unresponsive => "unresponsive",
        })
    }
}

/// How an injected fault fails a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultMode {
    Error,
    Panic,
    Hang,
}

/// Fault injection on one stage (the `fault` function's parameters, or
/// `params.fault` of an inference stage): calls are counted from 0 per
/// body; after `skip` calls, every `every`-th call faults, at most `times`
/// times; a hang lasts `hang` (then the call returns normally).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSpec {
    pub mode: FaultMode,
    pub skip: u64,
    pub every: u64,
    pub times: Option<u64>,
    pub hang: Time,
}

impl FaultSpec {
    /// Whether call `call` (counted from 0) faults, given how many calls
    /// have faulted before it.
    pub fn hits(&self, call: u64, faulted: u64) -> bool {
        call >= self.skip
            && (call - self.skip).is_multiple_of(self.every.max(1))
            && self.times.is_none_or(|t| faulted < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_after_skip_every_nth_at_most_times() {
        let f = FaultSpec {
            mode: FaultMode::Error,
            skip: 2,
            every: 3,
            times: Some(2),
            hang: 0,
        };
        let mut faulted = 0;
        let mut hit = Vec::new();
        for call in 0..12 {
            if f.hits(call, faulted) {
                faulted += 1;
                hit.push(call);
            }
        }
        assert_eq!(hit, vec![2, 5]);
    }

    #[test]
    fn a_fail_reason_reads_as_its_json_name() {
        for r in [
            FailReason::Error,
            FailReason::Panic,
            FailReason::Hung,
            FailReason::Quarantined,
            FailReason::Unresponsive,
        ] {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(format!("\"{r}\""), json);
        }
    }
}
