//! What the machine did to a real run: the interference probe's findings
//! (wake-up lateness of a top-priority sleeper per core, the stalls among
//! them), steal and interrupt time, and each runtime thread's run-queue
//! delay. Measured by `rtmdl_runtime::probe`; here only the data, its one
//! report line and the rule that flags a disturbed run, so that every
//! report prints it alike.

use serde::{Deserialize, Serialize};

use crate::Time;

/// A run is flagged when its stalls add up to more than this share of the
/// run, or its steal time is above [`STEAL_FLAG`].
pub const STALL_FLAG: f64 = 0.01;
/// See [`STALL_FLAG`].
pub const STEAL_FLAG: f64 = 0.05;
/// Stalls kept with their time stamps (the count and sums cover them all).
pub const STALLS_KEPT: usize = 256;

/// One wake-up of the probe at least the stall threshold late.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stall {
    /// When the probe should have woken, ms since the run's time zero.
    pub at_ms: f64,
    /// How late it woke, ms.
    pub late_ms: f64,
    /// The core the probe thread was pinned to.
    pub core: usize,
}

/// One runtime thread's share of waiting for a core, over the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadDelay {
    pub thread: String,
    /// Time runnable but not running (`/proc/self/task/TID/schedstat`).
    pub runqueue_ms: f64,
    /// Involuntary context switches (`nonvoluntary_ctxt_switches`).
    pub preempted: u64,
}

/// The interference probe's report of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Interference {
    /// The probe's sleep period, µs.
    pub period_us: f64,
    /// Probe threads (one per core it could pin to).
    pub threads: usize,
    /// Whether they got SCHED_FIFO (otherwise they measure a normal
    /// thread's wake-ups, which a busy machine delays more).
    pub realtime: bool,
    /// Wake-ups measured, over every probe thread.
    pub wakeups: u64,
    /// Wake-up lateness, ms.
    pub late_p50_ms: f64,
    pub late_p99_ms: f64,
    pub late_max_ms: f64,
    /// Wake-ups at least `stall_ms` late: their count and summed lateness.
    pub stall_ms: f64,
    pub stalls: u64,
    pub stalled_ms: f64,
    /// The first [`STALLS_KEPT`] stalls with their time stamps.
    #[serde(default)]
    pub stall_list: Vec<Stall>,
    /// Share of all cores' time stolen by the hypervisor, and spent in
    /// interrupts (irq + softirq), over the run (`/proc/stat`).
    pub steal: Option<f64>,
    pub irq: Option<f64>,
    /// Per runtime thread (dispatcher, workers, lanes).
    #[serde(default)]
    pub thread_delays: Vec<ThreadDelay>,
    /// The probe's own CPU time, as a share of one core.
    pub cost: Option<f64>,
    /// What could not be read (and so is missing above).
    #[serde(default)]
    pub unreadable: Vec<String>,
    /// Length of the measured window, ms.
    pub window_ms: f64,
}

impl Interference {
    /// The longest stall, ms (0 without any).
    pub fn longest_ms(&self) -> f64 {
        if self.stalls == 0 {
            0.0
        } else {
            self.late_max_ms
        }
    }

    /// Why the run counts as disturbed, if it does: stalls above
    /// [`STALL_FLAG`] of the run, steal above [`STEAL_FLAG`].
    pub fn flag(&self) -> Option<String> {
        let mut why = Vec::new();
        if self.window_ms > 0.0 {
            // The probe threads stall together when the whole VM does:
            // the share is per thread.
            let share = self.stalled_ms / self.threads.max(1) as f64 / self.window_ms;
            if share > STALL_FLAG {
                why.push(format!(
                    "stalls took {:.1} % of the run (> {:.0} %)",
                    share * 100.0,
                    STALL_FLAG * 100.0
                ));
            }
        }
        if let Some(s) = self.steal
            && s > STEAL_FLAG
        {
            why.push(format!(
                "steal {:.1} % (> {:.0} %)",
                s * 100.0,
                STEAL_FLAG * 100.0
            ));
        }
        (!why.is_empty()).then(|| why.join(", "))
    }

    /// The report's one line.
    pub fn summary(&self) -> String {
        let pct = |x: Option<f64>| x.map_or("?".to_string(), |x| format!("{:.1} %", x * 100.0));
        let mut s = format!(
            "probe {}×{:.0} µs{} wake-up late p50 {:.3} p99 {:.3} max {:.3} ms · {} stall(s) ≥ {:.1} ms (longest {:.1}, total {:.1} ms) · steal {} · irq {}",
            self.threads,
            self.period_us,
            if self.realtime { " FIFO" } else { "" },
            self.late_p50_ms,
            self.late_p99_ms,
            self.late_max_ms,
            self.stalls,
            self.stall_ms,
            self.longest_ms(),
            self.stalled_ms,
            pct(self.steal),
            pct(self.irq),
        );
        if !self.thread_delays.is_empty() {
            let delays: Vec<String> = self
                .thread_delays
                .iter()
                .map(|d| {
                    format!(
                        "{} {:.1} ms/{}",
                        d.thread.trim_start_matches("rtmdl-"),
                        d.runqueue_ms,
                        d.preempted
                    )
                })
                .collect();
            s += &format!(" · run-queue delay/preemptions {}", delays.join(", "));
        }
        if let Some(c) = self.cost {
            s += &format!(" · probe cost {:.2} % of a core", c * 100.0);
        }
        if !self.unreadable.is_empty() {
            s += &format!(" · not read: {}", self.unreadable.join(", "));
        }
        if let Some(f) = self.flag() {
            s += &format!(" · DISTURBED: {f}");
        }
        s
    }

    /// The stalls that overlap `[from, to)` (ns since time zero): their
    /// summed overlap, ns. For attributing a job's unexplained waiting.
    pub fn stalled_within(&self, from: Time, to: Time) -> Time {
        let mut total = 0;
        for st in &self.stall_list {
            let end = ((st.at_ms + st.late_ms) * 1e6) as Time;
            let start = (st.at_ms * 1e6) as Time;
            let (a, b) = (start.max(from), end.min(to));
            total += b.saturating_sub(a);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> Interference {
        Interference {
            period_us: 1000.0,
            threads: 2,
            realtime: true,
            wakeups: 20_000,
            late_p50_ms: 0.03,
            late_p99_ms: 0.07,
            late_max_ms: 0.4,
            stall_ms: 1.0,
            steal: Some(0.01),
            irq: Some(0.002),
            window_ms: 10_000.0,
            ..Default::default()
        }
    }

    #[test]
    fn a_quiet_run_is_not_flagged_and_a_stalled_one_is() {
        assert_eq!(quiet().flag(), None);
        let s = quiet().summary();
        assert!(s.contains("0 stall(s)") && !s.contains("DISTURBED"), "{s}");
        // 2 threads stalled 150 ms each over 10 s: 1.5 % per thread.
        let stalled = Interference {
            stalls: 6,
            stalled_ms: 300.0,
            late_max_ms: 60.0,
            ..quiet()
        };
        let f = stalled.flag().expect("flagged");
        assert!(f.contains("1.5 %"), "{f}");
        // Just under the line: 95 ms per thread over 10 s.
        let under = Interference {
            stalls: 2,
            stalled_ms: 190.0,
            window_ms: 10_000.0,
            ..quiet()
        };
        assert_eq!(under.flag(), None);
        let stolen = Interference {
            steal: Some(0.08),
            ..quiet()
        };
        assert!(stolen.flag().unwrap().contains("steal 8.0 %"));
    }

    #[test]
    fn stalls_within_a_window_add_their_overlap() {
        let i = Interference {
            stall_list: vec![
                Stall {
                    at_ms: 10.0,
                    late_ms: 5.0,
                    core: 0,
                },
                Stall {
                    at_ms: 30.0,
                    late_ms: 2.0,
                    core: 1,
                },
            ],
            ..quiet()
        };
        let ms = 1_000_000;
        assert_eq!(i.stalled_within(0, 100 * ms), 7 * ms);
        assert_eq!(i.stalled_within(12 * ms, 31 * ms), 4 * ms);
        assert_eq!(i.stalled_within(16 * ms, 29 * ms), 0);
    }
}
