//! One reading a second of what the worker holds, from outside it: `/proc` for what the
//! kernel sees, the Prometheus endpoint for what the SDK and the worker count.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use mlx_e2e::{http_get, metric as gauge, proc_stats::status_bytes};

/// What the load has done so far, shared by the drivers and the sampler.
#[derive(Default)]
pub struct Counters {
    pub activities: AtomicU64,
    pub workflows: AtomicU64,
    pub expected_failures: AtomicU64,
    pub losses: AtomicU64,
    pub reloads: AtomicU64,
}

/// Prometheus series summed over their labels (slot gauges restricted to activities): what
/// the SDK and the worker count as alive, and the allocator's own view of the heap
/// (daemon/gauges.rs). Indexes below name the ones the report reads.
pub const GAUGES: [(&str, &str); 12] = [
    ("temporal_sticky_cache_size", ""),
    (
        "temporal_worker_task_slots_used",
        "worker_type=\"ActivityWorker\"",
    ),
    ("mlx_plugin_invocations_total", ""),
    ("mlx_plugin_reloads_total", ""),
    ("mlx_worker_heap_in_use_bytes", ""),
    ("mlx_worker_heap_free_bytes", ""),
    ("mlx_worker_tasks", ""),
    ("mlx_plugin_instances_alive", ""),
    ("mlx_plugin_versions_alive", ""),
    ("mlx_worker_activities_tracked", ""),
    ("mlx_pool_unused_warm_memories", ""),
    ("mlx_pool_unused_memory_resident_bytes", ""),
];
pub const STICKY: usize = 0;
pub const SLOTS: usize = 1;
pub const HEAP_IN_USE: usize = 4;
pub const HEAP_FREE: usize = 5;
pub const TASKS: usize = 6;
pub const INSTANCES: usize = 7;
pub const VERSIONS: usize = 8;
pub const TRACKED: usize = 9;
pub const POOL_WARM: usize = 10;
pub const POOL_RESIDENT: usize = 11;

#[derive(Clone, Debug)]
pub struct Sample {
    pub secs: f64,
    pub rss: u64,
    pub rss_anon: u64,
    pub fds: u64,
    pub threads: u64,
    pub activities: u64,
    pub losses: u64,
    pub reloads: u64,
    /// GAUGES in order; None where the endpoint had no such series.
    pub gauges: Vec<Option<f64>>,
}

fn count_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}

fn threads(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Reads once a second from `start` to `until`; a second missed on a busy machine is
/// skipped, not made up in a burst.
pub async fn sampler(
    pid: u32,
    metrics: String,
    counters: std::sync::Arc<Counters>,
    start: Instant,
    until: Instant,
) -> anyhow::Result<Vec<Sample>> {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut samples = Vec::new();
    while Instant::now() <= until {
        tick.tick().await;
        let text = http_get(&metrics, "/metrics")
            .await
            .map(|(_, body)| body)
            .unwrap_or_default();
        samples.push(Sample {
            secs: start.elapsed().as_secs_f64(),
            rss: status_bytes(pid, "VmRSS")?,
            rss_anon: status_bytes(pid, "RssAnon")?,
            fds: count_fds(pid),
            threads: threads(pid),
            activities: counters.activities.load(Ordering::Relaxed),
            losses: counters.losses.load(Ordering::Relaxed),
            reloads: counters.reloads.load(Ordering::Relaxed),
            gauges: GAUGES
                .iter()
                .map(|(name, filter)| gauge(&text, name, filter))
                .collect(),
        });
    }
    Ok(samples)
}
