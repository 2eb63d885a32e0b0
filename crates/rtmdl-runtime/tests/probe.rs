//! The interference probe sees what holds its core: a stall a test causes
//! is reported with its length, core and time.

use std::time::{Duration, Instant};

use rtmdl_runtime::probe::{Probe, ProbeOptions};

/// SCHED_FIFO at `prio`, pinned to core 0; whether the OS allowed both.
fn fifo_on_core0(prio: i32) -> bool {
    let param = libc::sched_param {
        sched_priority: prio,
    };
    // SAFETY: the calling thread's policy, with a valid param; cpu_set_t is
    // plain data.
    unsafe {
        if libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) != 0 {
            return false;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

fn required() -> bool {
    std::env::var_os("RTMDL_REQUIRE_RT").is_some_and(|v| v == "1")
}

#[test]
fn a_thread_holding_the_probes_core_for_20_ms_is_one_stall_of_about_that_length() {
    // One probe thread, on core 0, below the hog's priority.
    let opts = ProbeOptions {
        period: 1_000_000,
        priority: 50,
        max_threads: 1,
        ..Default::default()
    };
    let epoch = Instant::now();
    let probe = Probe::start(opts, epoch);
    std::thread::sleep(Duration::from_millis(100));
    let hog = std::thread::spawn(|| {
        if !fifo_on_core0(60) {
            return None;
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(20) {
            std::hint::spin_loop();
        }
        Some(start)
    });
    let held = hog.join().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let i = probe.finish();
    let Some(held) = held.filter(|_| i.realtime) else {
        assert!(
            !required(),
            "SCHED_FIFO refused with RTMDL_REQUIRE_RT=1: {i:?}"
        );
        eprintln!("skipped: SCHED_FIFO not granted here, so nothing can hold the probe's core");
        return;
    };
    assert_eq!(i.threads, 1);
    assert!(i.wakeups > 50, "{i:?}");
    // The probe wakes at most one period after the hog took the core, so
    // it is at least 19 ms late; the machine can only add to that.
    let stall = i
        .stall_list
        .iter()
        .find(|s| s.late_ms >= 15.0)
        .unwrap_or_else(|| panic!("no stall of the hog's length: {i:?}"));
    assert_eq!(stall.core, 0);
    // Time-stamped from the epoch: within the hog's run (± a period).
    let began = held.duration_since(epoch).as_secs_f64() * 1e3;
    assert!(
        stall.at_ms >= began - 1.5 && stall.at_ms <= began + 20.0,
        "stall at {} ms, hog from {began} ms",
        stall.at_ms
    );
    assert!(i.stalls >= 1 && i.stalled_ms >= 15.0, "{i:?}");
    assert!(i.late_max_ms >= 15.0);
    let line = i.summary();
    assert!(line.contains("stall(s) ≥ 1.0 ms"), "{line}");
}

#[test]
fn a_probe_that_cannot_have_real_time_priority_still_measures_and_says_so() {
    let opts = ProbeOptions {
        period: 1_000_000,
        realtime: false,
        max_threads: 2,
        ..Default::default()
    };
    let probe = Probe::start(opts, Instant::now());
    std::thread::sleep(Duration::from_millis(60));
    let i = probe.finish();
    assert!(!i.realtime);
    assert!(i.threads >= 1);
    assert!(i.wakeups > 10, "{i:?}");
    assert!(i.window_ms >= 60.0);
    // Linux has /proc/stat; elsewhere the probe names what it could not read.
    if std::path::Path::new("/proc/stat").exists() {
        assert!(i.steal.is_some() && i.irq.is_some(), "{i:?}");
    } else {
        assert!(!i.unreadable.is_empty());
    }
    assert!(!i.summary().contains(" FIFO"), "{}", i.summary());
}
