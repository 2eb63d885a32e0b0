//! Chrome trace-event JSON (opens in Perfetto and chrome://tracing): one
//! track per CPU worker and GPU lane, one slice per sub-task, an instant
//! per deadline miss.

use rtmdl_core::{Slot, TaskSet, Time};
use serde_json::{Value, json};

/// One executed sub-task.
#[derive(Clone, Debug)]
pub struct TraceSlice {
    pub slot: Slot,
    pub task: usize,
    pub seq: u64,
    pub stage: usize,
    pub start: Time,
    pub end: Time,
    pub failed: bool,
    /// The variant of the task's model it ran.
    pub variant: usize,
}

/// Everything a run recorded.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    pub slices: Vec<TraceSlice>,
    /// (task, seq, time) of each deadline miss.
    pub misses: Vec<(usize, u64, Time)>,
}

const MISS_TRACK: u64 = 999;

fn tid(slot: Slot) -> u64 {
    match slot {
        Slot::Cpu(i) => i as u64,
        Slot::Gpu(i) => 100 + i as u64,
    }
}

impl Trace {
    /// The trace as Chrome trace-event JSON.
    pub fn to_chrome(&self, ts: &TaskSet, cpu_slots: usize, gpu_lanes: usize) -> Value {
        let mut events = Vec::with_capacity(self.slices.len() + self.misses.len() + 8);
        let track = |tid: u64, name: String| json!({"name": "thread_name", "ph": "M", "pid": 1, "tid": tid, "args": {"name": name}});
        events
            .push(json!({"name": "process_name", "ph": "M", "pid": 1, "args": {"name": "rtmdl"}}));
        for i in 0..cpu_slots {
            events.push(track(tid(Slot::Cpu(i)), format!("CPU worker {i}")));
        }
        for i in 0..gpu_lanes {
            events.push(track(tid(Slot::Gpu(i)), format!("GPU lane {i}")));
        }
        events.push(track(MISS_TRACK, "deadline misses".into()));
        for s in &self.slices {
            let task = &ts.tasks[s.task];
            let stage = &ts.models[task.model].stages[s.stage].name;
            events.push(json!({
                "name": format!("{}/{}/{}", task.name, s.seq, stage),
                "cat": if s.failed { "failed" } else { "subtask" },
                "ph": "X",
                "pid": 1,
                "tid": tid(s.slot),
                "ts": s.start as f64 / 1e3,
                "dur": (s.end.saturating_sub(s.start)) as f64 / 1e3,
                "args": {"task": task.name, "job": s.seq, "stage": stage},
            }));
        }
        for &(t, seq, at) in &self.misses {
            events.push(json!({
                "name": format!("miss {}/{}", ts.tasks[t].name, seq),
                "cat": "miss",
                "ph": "i",
                "s": "g",
                "pid": 1,
                "tid": MISS_TRACK,
                "ts": at as f64 / 1e3,
            }));
        }
        json!({"traceEvents": events, "displayTimeUnit": "ms"})
    }
}
