//! What the worker holds, as gauges on the metrics endpoint, recorded once a second: a worker
//! runs for weeks, and when its memory grows an operator (or `make soak`) must be able to
//! tell a leak (heap in use grows) from fragmentation (free heap grows, in use does not),
//! and both from work left alive (tasks, sandboxes, replaced plugin versions).

use std::{sync::Arc, time::Duration};

use mlx_runtime::{PluginHost, live::LiveCount};
use temporalio_common::telemetry::metrics::{
    CoreMeter, Gauge, MetricAttributes, MetricParameters, NewAttributes,
};
use tokio_util::sync::CancellationToken;

const EVERY: Duration = Duration::from_secs(1);

struct Gauges {
    heap_in_use: Gauge,
    heap_free: Gauge,
    tasks: Gauge,
    instances: Gauge,
    versions: Gauge,
    activities: Gauge,
    pool_warm: Gauge,
    pool_resident: Gauge,
    none: MetricAttributes,
}

impl Gauges {
    fn new(meter: &dyn CoreMeter) -> Self {
        let gauge = |name: &'static str, description: &'static str, unit: &'static str| {
            meter.gauge(
                MetricParameters::builder()
                    .name(name)
                    .description(description)
                    .unit(unit)
                    .build(),
            )
        };
        Self {
            heap_in_use: gauge(
                "mlx_worker_heap_in_use_bytes",
                "Bytes the worker's allocator has handed out and not had back (glibc \
                 mallinfo2: uordblks + hblkhd); absent on other allocators",
                "bytes",
            ),
            heap_free: gauge(
                "mlx_worker_heap_free_bytes",
                "Free bytes the allocator keeps in its arenas rather than returning to the \
                 system: growth here and not in use is fragmentation, not a leak",
                "bytes",
            ),
            tasks: gauge(
                "mlx_worker_tasks",
                "Tokio tasks alive in the worker's runtime",
                "",
            ),
            instances: gauge(
                "mlx_plugin_instances_alive",
                "Guest instances (one store each) alive for invocations",
                "",
            ),
            versions: gauge(
                "mlx_plugin_versions_alive",
                "Loaded plugin versions alive: those served plus replaced or removed ones \
                 still finishing an invocation",
                "",
            ),
            activities: gauge(
                "mlx_worker_activities_tracked",
                "Activity attempts the worker holds a cancellation handle for: those running. \
                 Nonzero with nothing running would be a leak",
                "",
            ),
            pool_warm: gauge(
                "mlx_pool_unused_warm_memories",
                "Pool memory slots used before and unused now (engine.rs, warm_memory_slots): \
                 each may keep some pages resident",
                "",
            ),
            pool_resident: gauge(
                "mlx_pool_unused_memory_resident_bytes",
                "Bytes the pool's unused memory slots keep resident for the next instance",
                "bytes",
            ),
            none: meter.new_attributes(NewAttributes::from(vec![])),
        }
    }

    fn record(&self, runtime: &PluginHost, activities: &LiveCount) {
        if let Some(heap) = heap() {
            self.heap_in_use.record(heap.in_use, &self.none);
            self.heap_free.record(heap.free, &self.none);
        }
        let tasks = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        self.tasks.record(tasks as u64, &self.none);
        self.instances
            .record(runtime.active_invocations() as u64, &self.none);
        self.versions
            .record(runtime.plugin_versions_alive() as u64, &self.none);
        self.activities.record(activities.get() as u64, &self.none);
        if let Some(pool) = runtime.engine().pooling_allocator_metrics() {
            self.pool_warm
                .record(u64::from(pool.unused_warm_memories()), &self.none);
            self.pool_resident
                .record(pool.unused_memory_bytes_resident() as u64, &self.none);
        }
    }
}

/// Records the gauges every second until `stop`.
pub async fn record(
    meter: Arc<dyn CoreMeter>,
    runtime: Arc<PluginHost>,
    activities: LiveCount,
    stop: CancellationToken,
) {
    let gauges = Gauges::new(meter.as_ref());
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => gauges.record(&runtime, &activities),
        }
    }
}

struct Heap {
    in_use: u64,
    free: u64,
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap() -> Option<Heap> {
    // SAFETY: mallinfo2 only reads the allocator's own counters, under its arena locks.
    let info = unsafe { libc::mallinfo2() };
    Some(Heap {
        in_use: (info.uordblks + info.hblkhd) as u64,
        free: info.fordblks as u64,
    })
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap() -> Option<Heap> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn heap_in_use_counts_a_live_allocation_and_not_a_freed_one() {
        let before = heap().unwrap().in_use;
        let block = vec![1u8; 256 << 20];
        let during = heap().unwrap().in_use;
        assert!(during >= before + (256 << 20), "{before} -> {during}");
        drop(block);
        let after = heap().unwrap().in_use;
        assert!(after + (128 << 20) < during, "{during} -> {after}");
    }
}
