//! Work that runs on a rayon pool while its progress is reported on the
//! caller's thread (so the callback need not be `Send`).

use crate::{Result, TrainError};

/// Runs `work` inside a rayon pool of `threads` threads (0: all cores), on a
/// scoped thread; what `work` emits comes back over a channel and is handed
/// to `progress` on the calling thread. A panic in `work` is re-raised here.
pub(crate) fn in_pool<T: Send, E: Send>(
    threads: usize,
    work: impl FnOnce(&dyn Fn(E)) -> Result<T> + Send,
    progress: &mut dyn FnMut(E),
) -> Result<T> {
    let mut b = rayon::ThreadPoolBuilder::new();
    if threads > 0 {
        b = b.num_threads(threads);
    }
    let pool = b
        .build()
        .map_err(|e| TrainError::Data(format!("thread pool: {e}")))?;
    let (tx, rx) = std::sync::mpsc::channel::<E>();
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            pool.install(|| {
                let emit = |e| {
                    let _ = tx.send(e);
                };
                work(&emit)
            })
        });
        for e in rx {
            progress(e);
        }
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
