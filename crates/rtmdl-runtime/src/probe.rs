//! The interference probe: what the machine does to a run, measured beside
//! it (the cyclictest idea). One thread per core, pinned there, at the top
//! real-time priority when granted, sleeps to absolute times on a short
//! period and records how late each wake-up was; a wake-up at least
//! `stall` late is a stall, kept with its time stamp. Around the run it
//! reads steal and interrupt time from `/proc/stat`, and each runtime
//! thread's run-queue delay and involuntary context switches from
//! `/proc/self/task/TID/{schedstat,status}`. Whatever it cannot read is
//! named in the report and the run goes on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use rtmdl_core::Time;
use rtmdl_core::interference::{Interference, STALLS_KEPT, Stall, ThreadDelay};
use rtmdl_core::report::Samples;

/// SCHED_FIFO priority of the probe threads: above the dispatcher and the
/// workers, so they see what the machine does, not what the run does.
pub const PROBE_PRIO: i32 = 99;

/// How the probe runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProbeOptions {
    /// Sleep period of each probe thread.
    pub period: Time,
    /// A wake-up at least this late is a stall.
    pub stall: Time,
    /// Ask for SCHED_FIFO at `priority` (and pin to a core).
    pub realtime: bool,
    pub priority: i32,
    /// Probe threads: one per core up to this many.
    pub max_threads: usize,
}

impl Default for ProbeOptions {
    /// A 6 ms period: on this 2-core VM a wake-up costs about 25 µs of CPU,
    /// so 1 ms (cyclictest's default) cost 4–5 % of a core and preempted
    /// every lane a thousand times a second; 5 ms measured 1.08 %, 6 ms
    /// stays under 1 %. A stall of 6 ms or more always meets a wake-up; a
    /// shorter one is seen when one falls inside it.
    fn default() -> Self {
        ProbeOptions {
            period: 6_000_000,
            stall: 1_000_000,
            realtime: true,
            priority: PROBE_PRIO,
            max_threads: 8,
        }
    }
}

/// What one probe thread measured.
struct Measured {
    late: Samples,
    stalls: Vec<Stall>,
    count: u64,
    stalled: Time,
    cpu: Option<Time>,
    realtime: bool,
}

/// A running probe; [`Probe::finish`] stops it and reports.
pub struct Probe {
    opts: ProbeOptions,
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<Measured>>,
    started: Instant,
    stat: Option<CpuTimes>,
    threads: Vec<(i32, String, TaskTimes)>,
    unreadable: Vec<String>,
}

impl Probe {
    /// Start the probe threads; stall time stamps count from `epoch` (the
    /// run's time zero, which may be a little ahead).
    pub fn start(opts: ProbeOptions, epoch: Instant) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut unreadable = Vec::new();
        let mut handles = Vec::new();
        for core in 0..cores.min(opts.max_threads.max(1)) {
            let stop = stop.clone();
            match std::thread::Builder::new()
                .name(format!("rtmdl-probe{core}"))
                .spawn(move || probe_loop(core, opts, &stop, epoch))
            {
                Ok(h) => handles.push(h),
                Err(e) => unreadable.push(format!("probe thread: {e}")),
            }
        }
        let stat = match CpuTimes::read() {
            Ok(s) => Some(s),
            Err(e) => {
                unreadable.push(e);
                None
            }
        };
        Probe {
            opts,
            stop,
            handles,
            started: Instant::now(),
            stat,
            threads: Vec::new(),
            unreadable,
        }
    }

    /// Note the run-queue delays of the runtime's threads from now on: the
    /// calling thread (the dispatcher) and every `rtmdl-cpu*` / `rtmdl-gpu*`.
    pub fn watch_threads(&mut self) {
        match runtime_threads() {
            Ok(t) => self.threads = t,
            Err(e) => self.unreadable.push(e),
        }
    }

    /// Stop the probe threads and report.
    pub fn finish(mut self) -> Interference {
        self.stop.store(true, Ordering::Relaxed);
        let window = self.started.elapsed().as_nanos() as f64 / 1e6;
        let mut late = Samples::new();
        let mut stall_list = Vec::new();
        let (mut stalls, mut stalled, mut cpu, mut realtime) = (0, 0, Some(0), true);
        let threads = self.handles.len();
        for h in self.handles.drain(..) {
            let Ok(m) = h.join() else {
                self.unreadable.push("a probe thread panicked".into());
                continue;
            };
            late.merge(&m.late);
            stalls += m.count;
            stalled += m.stalled;
            stall_list.extend(m.stalls);
            cpu = cpu.zip(m.cpu).map(|(a, b)| a + b);
            realtime &= m.realtime;
        }
        stall_list.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
        stall_list.truncate(STALLS_KEPT);
        let (steal, irq) = match (&self.stat, CpuTimes::read()) {
            (Some(a), Ok(b)) => b.since(a),
            (Some(_), Err(e)) => {
                self.unreadable.push(e);
                (None, None)
            }
            _ => (None, None),
        };
        let thread_delays = self.delays();
        let p = late.percentiles();
        Interference {
            period_us: self.opts.period as f64 / 1e3,
            threads,
            realtime: realtime && threads > 0,
            wakeups: late.len(),
            late_p50_ms: p.p50,
            late_p99_ms: p.p99,
            late_max_ms: p.max,
            stall_ms: self.opts.stall as f64 / 1e6,
            stalls,
            stalled_ms: stalled as f64 / 1e6,
            stall_list,
            steal,
            irq,
            thread_delays,
            cost: cpu
                .filter(|_| window > 0.0)
                .map(|c| c as f64 / 1e6 / window),
            unreadable: std::mem::take(&mut self.unreadable),
            window_ms: window,
        }
    }

    /// Each watched thread's delay since [`Probe::watch_threads`].
    fn delays(&mut self) -> Vec<ThreadDelay> {
        let mut out = Vec::new();
        let mut failed = false;
        for (tid, name, before) in &self.threads {
            match TaskTimes::read(*tid) {
                Ok(now) => out.push(ThreadDelay {
                    thread: name.clone(),
                    runqueue_ms: now.wait.saturating_sub(before.wait) as f64 / 1e6,
                    preempted: now.preempted.saturating_sub(before.preempted),
                }),
                // A worker replaced after a hang is gone: skip it.
                Err(_) if std::path::Path::new(&format!("/proc/self/task/{tid}")).exists() => {
                    failed = true
                }
                Err(_) => {}
            }
        }
        if failed {
            self.unreadable
                .push("/proc/self/task/*/schedstat at the end".into());
        }
        out
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn monotonic() -> Time {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes the current time into a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as Time * 1_000_000_000 + ts.tv_nsec as Time
}

fn thread_cpu() -> Option<Time> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: as above, for the calling thread's CPU clock.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as Time * 1_000_000_000 + ts.tv_nsec as Time)
}

/// Sleep until `at` on CLOCK_MONOTONIC (absolute, so a late wake-up does
/// not push the next one).
fn sleep_until(at: Time) {
    let ts = libc::timespec {
        tv_sec: (at / 1_000_000_000) as libc::time_t,
        tv_nsec: (at % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: a valid timespec; an interrupted sleep just wakes early.
    unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &ts,
            std::ptr::null_mut(),
        )
    };
}

fn probe_loop(core: usize, o: ProbeOptions, stop: &AtomicBool, epoch: Instant) -> Measured {
    let realtime = o.realtime && crate::rt::configure_thread(Some(o.priority), Some(core)).is_ok();
    if !realtime {
        crate::rt::pin_thread(core);
    }
    // The run's time zero on CLOCK_MONOTONIC (std's Instant is the same
    // clock on Linux; measured here once).
    let now = monotonic();
    let ahead = epoch.saturating_duration_since(Instant::now()).as_nanos() as Time;
    let behind = Instant::now().saturating_duration_since(epoch).as_nanos() as Time;
    let zero = (now + ahead).saturating_sub(behind);
    let mut m = Measured {
        late: Samples::new(),
        stalls: Vec::with_capacity(STALLS_KEPT),
        count: 0,
        stalled: 0,
        cpu: None,
        realtime,
    };
    let period = o.period.max(10_000);
    let mut next = now + period;
    while !stop.load(Ordering::Relaxed) {
        sleep_until(next);
        let woke = monotonic();
        let late = woke.saturating_sub(next);
        m.late.record(late);
        if late >= o.stall {
            m.count += 1;
            m.stalled += late;
            if m.stalls.len() < STALLS_KEPT {
                m.stalls.push(Stall {
                    at_ms: next.saturating_sub(zero) as f64 / 1e6,
                    late_ms: late as f64 / 1e6,
                    core,
                });
            }
        }
        next += period;
        if next <= woke {
            // Ticks slept through are not wake-ups: start again from now.
            next = woke + period;
        }
    }
    m.cpu = thread_cpu();
    m
}

/// The aggregate `cpu` line of `/proc/stat`, in clock ticks.
struct CpuTimes {
    total: u64,
    irq: u64,
    steal: u64,
}

impl CpuTimes {
    fn read() -> Result<CpuTimes, String> {
        let text = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
        Self::parse(&text).ok_or_else(|| "/proc/stat: no cpu line".to_string())
    }

    fn parse(text: &str) -> Option<CpuTimes> {
        let line = text.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map_while(|x| x.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is
        // already in user).
        if v.len() < 8 {
            return None;
        }
        Some(CpuTimes {
            total: v[..8].iter().sum(),
            irq: v[5] + v[6],
            steal: v[7],
        })
    }

    /// (steal, irq) as shares of all cores' time since `before`.
    fn since(&self, before: &CpuTimes) -> (Option<f64>, Option<f64>) {
        let total = self.total.saturating_sub(before.total);
        if total == 0 {
            return (None, None);
        }
        let share = |a: u64, b: u64| Some(a.saturating_sub(b) as f64 / total as f64);
        (share(self.steal, before.steal), share(self.irq, before.irq))
    }
}

/// One thread's scheduler statistics.
#[derive(Clone, Copy, Debug, Default)]
struct TaskTimes {
    /// ns runnable but waiting for a core.
    wait: Time,
    preempted: u64,
}

impl TaskTimes {
    fn read(tid: i32) -> Result<TaskTimes, String> {
        let path = format!("/proc/self/task/{tid}/schedstat");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let wait = text
            .split_whitespace()
            .nth(1)
            .and_then(|x| x.parse().ok())
            .ok_or_else(|| format!("{path}: no wait time"))?;
        let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status"))
            .map_err(|e| format!("/proc/self/task/{tid}/status: {e}"))?;
        let preempted = status
            .lines()
            .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            .and_then(|x| x.trim().parse().ok())
            .unwrap_or(0);
        Ok(TaskTimes { wait, preempted })
    }
}

/// The calling thread (as "dispatcher") and every worker and lane thread,
/// with their statistics now.
fn runtime_threads() -> Result<Vec<(i32, String, TaskTimes)>, String> {
    // SAFETY: gettid has no arguments and cannot fail.
    let me = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
    let dir = std::fs::read_dir("/proc/self/task").map_err(|e| format!("/proc/self/task: {e}"))?;
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let comm = comm.trim();
        let name = if tid == me {
            "dispatcher".to_string()
        } else if comm.starts_with("rtmdl-cpu") || comm.starts_with("rtmdl-gpu") {
            comm.to_string()
        } else {
            continue;
        };
        out.push((tid, name, TaskTimes::read(tid)?));
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_shares_are_deltas_of_the_cpu_line() {
        let a = CpuTimes::parse("cpu  100 0 50 800 10 5 5 30 0 0\ncpu0 1 2 3\n").unwrap();
        let b = CpuTimes::parse("cpu  200 0 100 1600 20 10 10 60 0 0\n").unwrap();
        let (steal, irq) = b.since(&a);
        // Deltas: total 1000, steal 30, irq + softirq 10.
        assert_eq!(steal, Some(0.03));
        assert_eq!(irq, Some(0.01));
        assert!(CpuTimes::parse("cpu 1 2 3\n").is_none());
        assert!(CpuTimes::parse("intr 5\n").is_none());
    }
}
