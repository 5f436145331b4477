//! Gives the allocator's free pages back to the kernel once a minute. glibc keeps freed memory
//! in its arenas, and after a large free it raises its own trim threshold, so without this a
//! worker's RSS carries every arena's high-water mark: issue 18's soak saw 6 MiB of free heap
//! settle in over the first reloads and stay resident (plugins still compiled in the worker
//! then; they compile in a child process now, `mlx_runtime::plugin::compiler`).
//! `malloc_trim(0)` releases the whole free pages anywhere in every arena (madvise); the heap's
//! figures (`mlx_worker_heap_free_bytes`) do not change, RSS does.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

const EVERY: Duration = Duration::from_secs(60);

/// Trims every [`EVERY`] until `stop`. Off the async threads: a trim holds each arena's lock
/// while it walks the arena's free chunks.
pub async fn run(stop: CancellationToken) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + EVERY, EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {
                let _ = tokio::task::spawn_blocking(trim).await;
            }
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    let started = std::time::Instant::now();
    // SAFETY: malloc_trim only works on the allocator's own state, under its arena locks.
    let released = unsafe { libc::malloc_trim(0) } != 0;
    tracing::debug!(released, took = ?started.elapsed(), "heap trimmed");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
