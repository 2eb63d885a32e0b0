//! Getting a run's results out: every delivered job as one JSON line in a
//! file (`rtmdl run --results FILE`). The dispatcher only copies the result
//! into a channel; a writer thread of its own serialises and writes, so the
//! file never stalls a scheduling decision.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use rtmdl_core::{TaskSet, Time};
use serde::Serialize;

use crate::executor::{JobResult, ResultSink};

/// Outputs of at most this many elements are written whole; larger ones
/// by their shape only (a detector's raw grid is not a result to log).
pub const MAX_VALUES: usize = 1024;

/// One line of the file.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ResultLine {
    pub task: String,
    pub seq: u64,
    pub variant: String,
    /// The nominal release, ms after the run's time zero.
    pub released_ms: f64,
    pub finished_ms: f64,
    pub response_ms: f64,
    /// Delivered by the deadline (the judge of a miss is the run's report;
    /// this is the same rule applied to this result).
    pub on_time: bool,
    /// The class the result names ([`rtmdl_ops::answer`]).
    pub answer: Option<i64>,
    /// The first output tensor's shape and, when small, its values.
    pub shape: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<f32>>,
}

/// What a task's results need from the task set.
#[derive(Clone)]
struct TaskInfo {
    name: String,
    offset: Time,
    period: Time,
    deadline: Time,
    variants: Vec<String>,
}

/// A sink sending every delivered job's [`ResultLine`] into a channel, and
/// its receiver: the channel is closed once every clone of the sink is
/// dropped (after the run). The Python package hands each line to a
/// callback from it; [`json_lines`] writes them to a file.
pub fn channel(ts: &TaskSet) -> (ResultSink, flume::Receiver<ResultLine>) {
    let tasks: Vec<TaskInfo> = ts
        .tasks
        .iter()
        .map(|t| TaskInfo {
            name: t.name.clone(),
            offset: t.offset,
            period: t.period,
            deadline: t.deadline,
            variants: ts.models[t.model]
                .variants
                .iter()
                .map(|v| v.name.clone())
                .collect(),
        })
        .collect();
    let (tx, rx) = flume::unbounded::<ResultLine>();
    let sink = ResultSink(Arc::new(move |r: &JobResult<'_>| {
        let _ = tx.send(line(&tasks, r));
    }));
    (sink, rx)
}

/// A sink writing JSON lines to `path` (created or truncated now, so a
/// path that cannot be written fails before the run), and the writer
/// thread, which returns the number of lines once every clone of the sink
/// is dropped (after the run).
pub fn json_lines(
    path: &Path,
    ts: &TaskSet,
) -> std::io::Result<(ResultSink, JoinHandle<std::io::Result<u64>>)> {
    let file = File::create(path)?;
    let (sink, rx) = channel(ts);
    let writer = std::thread::Builder::new()
        .name("rtmdl-results".into())
        .spawn(move || {
            let mut out = BufWriter::new(file);
            let mut n = 0;
            for l in rx.iter() {
                serde_json::to_writer(&mut out, &l).map_err(std::io::Error::other)?;
                out.write_all(b"\n")?;
                n += 1;
            }
            out.flush()?;
            Ok(n)
        })?;
    Ok((sink, writer))
}

fn line(tasks: &[TaskInfo], r: &JobResult<'_>) -> ResultLine {
    let t = &tasks[r.task];
    let released = t.offset + r.seq * t.period;
    let first = r.out.first();
    let ms = |ns: Time| ns as f64 / 1e6;
    ResultLine {
        task: t.name.clone(),
        seq: r.seq,
        variant: t.variants.get(r.variant).cloned().unwrap_or_default(),
        released_ms: ms(released),
        finished_ms: ms(r.finished),
        response_ms: ms(r.finished.saturating_sub(released)),
        on_time: r.finished <= released + t.deadline,
        answer: rtmdl_ops::answer(r.out),
        shape: first.map(|a| a.shape().to_vec()).unwrap_or_default(),
        values: first
            .filter(|a| a.len() <= MAX_VALUES)
            .map(|a| a.iter().copied().collect()),
    }
}
