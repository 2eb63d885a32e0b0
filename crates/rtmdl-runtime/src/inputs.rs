//! Job inputs ready at release, as a camera delivers them.
//!
//! A camera (or a microphone) hands over a frame that is already there:
//! producing it is not the job's work. The synthetic sources of rtmdl-ops,
//! though, draw each frame on the CPU (a 320×240 frame costs several times
//! a job's pre- and post-processing), and a real run that drew it inside
//! the job's first sub-task measured a different job than the profile did.
//! So the frames are produced before the first release into a ring of
//! [`RING`] per task (memory bounded) and a job takes a copy of its frame:
//! frame `seq mod RING`. The copy is the job's own cost, inside its first
//! sub-task, in the profile and in the run alike.
//!
//! A source whose frames carry their ground truth (a `route`) is not put in
//! a ring: frame `seq` must be the scene the truth of `seq` describes. Such
//! a source draws its frames when it is built and hands out copies, the
//! same cost as the ring's.

use std::sync::Arc;

use crate::executor::{Bodies, Work};
use crate::{Data, RuntimeError};

/// Frames kept per task.
pub const RING: usize = 16;

/// Bodies whose job inputs come from a ring produced up front.
pub struct Prefetched {
    inner: Arc<dyn Bodies>,
    ring: Vec<Vec<Data>>,
}

impl Prefetched {
    /// Produce `frames` inputs for each of `tasks` tasks (fewer when a run
    /// has fewer jobs), from `inner`'s sources. An error names the task.
    pub fn new(
        inner: Arc<dyn Bodies>,
        tasks: usize,
        frames: usize,
    ) -> Result<Self, (usize, String)> {
        let mut ring = Vec::with_capacity(tasks);
        for task in 0..tasks {
            if inner.judged(task) {
                ring.push(Vec::new());
                continue;
            }
            let frames = (0..frames.max(1) as u64)
                .map(|seq| inner.input(task, seq))
                .collect::<Result<Vec<Data>, String>>()
                .map_err(|e| (task, e))?;
            ring.push(frames);
        }
        Ok(Prefetched { inner, ring })
    }

    /// Bytes the ring holds (f32 tensors).
    pub fn bytes(&self) -> usize {
        self.ring
            .iter()
            .flatten()
            .flatten()
            .map(|t| t.len() * std::mem::size_of::<f32>())
            .sum()
    }
}

impl Bodies for Prefetched {
    fn work(&self, task: usize, stage: usize) -> Result<Box<dyn Work>, RuntimeError> {
        self.inner.work(task, stage)
    }

    fn work_variant(
        &self,
        task: usize,
        stage: usize,
        variant: usize,
    ) -> Result<Box<dyn Work>, RuntimeError> {
        self.inner.work_variant(task, stage, variant)
    }

    fn input(&self, task: usize, seq: u64) -> Result<Data, String> {
        let frames = &self.ring[task];
        if frames.is_empty() {
            return self.inner.input(task, seq);
        }
        Ok(frames[(seq % frames.len() as u64) as usize].clone())
    }

    fn judged(&self, task: usize) -> bool {
        self.inner.judged(task)
    }

    fn truth(&self, task: usize, seq: u64) -> Option<rtmdl_ops::Truth> {
        self.inner.truth(task, seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Counting(AtomicU64);

    impl Bodies for Counting {
        fn work(&self, _: usize, _: usize) -> Result<Box<dyn Work>, RuntimeError> {
            Err(RuntimeError::Thread("no bodies here".into()))
        }
        fn input(&self, task: usize, seq: u64) -> Result<Data, String> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(vec![ndarray::ArrayD::from_elem(
                ndarray::IxDyn(&[1]),
                (task * 100) as f32 + seq as f32,
            )])
        }
    }

    #[test]
    fn frames_are_made_up_front_and_cycle() {
        let inner = Arc::new(Counting(AtomicU64::new(0)));
        let p = Prefetched::new(inner.clone(), 2, 4).unwrap();
        assert_eq!(inner.0.load(Ordering::SeqCst), 8);
        let v = |task, seq| p.input(task, seq).unwrap()[0][[0]];
        assert_eq!(
            (v(0, 1), v(0, 5), v(1, 3), v(1, 4)),
            (1.0, 1.0, 103.0, 100.0)
        );
        // Nothing is produced while the jobs run.
        assert_eq!(inner.0.load(Ordering::SeqCst), 8);
        assert_eq!(p.bytes(), 8 * 4);
    }
}
