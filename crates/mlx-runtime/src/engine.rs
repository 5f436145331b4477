//! The one wasmtime [`Engine`] a worker uses, and the epoch ticker that gives every running
//! guest a heartbeat of its own: at each tick a guest yields to the async executor, so a
//! CPU-bound plugin can still be interrupted at its deadline or on cancellation.

use std::{
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Any error a public boundary keeps as its cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A wasmtime error as a [`std::error::Error`], so that typed errors can keep it as their
/// source: wasmtime's own error type does not implement the trait. Displays the whole chain
/// (`{:#}`): the message is often all that reaches an operator.
#[derive(Debug)]
pub struct EngineError(pub wasmtime::Error);

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for EngineError {}

impl From<wasmtime::Error> for EngineError {
    fn from(e: wasmtime::Error) -> Self {
        Self(e)
    }
}

/// How often running guests yield. 10 ms keeps interruption prompt while costing the guest
/// almost nothing (an epoch check is a load and a compare).
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Dirty linear-memory bytes per pool slot reset in place rather than returned to the kernel:
/// a small Rust plugin dirties a few hundred KiB (stack top, data, early heap).
const KEEP_RESIDENT: usize = 2 << 20;
/// Same for tables (a Rust component's function table is a few KiB).
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// Idle used memory slots kept for the plugins that last ran in them (`EngineSettings::
/// warm_memory_slots`). Taking another module's slot means remapping its image and faulting
/// the new one in: two testkit versions called in turn took 74.5 µs a pair with 0 kept against
/// 35.0 µs with 8 and 33.1 µs with 100 (BENCHMARKS.md section 1), so a handful of plugins used in turn
/// (a pipeline's steps) keep a slot each. wasmtime's default, 100, is more than the pool's
/// memories: every plugin version a reload brought touched fresh slots until all of them had
/// been used, the growth issue 18's soak traced. A pool of 128 memories or more is split into
/// shards (one per core, up to 16) that divide this between them; the worker's default pool
/// (64 memories) is one shard.
pub const WARM_MEMORY_SLOTS: u32 = 8;

/// What one component may take of the instance pool (see `build_engine` for the measured
/// counts of each toolchain's components); a load error names them.
pub const CORE_INSTANCES_PER_COMPONENT: u32 = 64;
pub const MEMORIES_PER_COMPONENT: u32 = 4;
pub const TABLES_PER_COMPONENT: u32 = 8;

/// Engine-wide sizing. Per-plugin limits (in the manifest) can only be lower than these.
/// Serialized for the compiler process ([`crate::plugin::compiler`]), which must build the
/// same engine.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSettings {
    /// Upper bound on one instance's linear memory; reserved per pool slot.
    pub max_memory_bytes: u64,
    /// Pool slots: the most component instances alive at once (running activities plus
    /// `describe` calls at load).
    pub max_instances: u32,
    /// Count instructions (fuel) so manifests can cap a plugin's CPU work deterministically.
    /// Off by default: metering costs every guest some speed, and deadlines already bound
    /// wall time.
    pub fuel_metering: bool,
    /// Pooling allocator (default): instance slots are reserved once and reused, which makes
    /// a fresh instance per invocation cheap. Off: allocate on demand (kept for the
    /// benchmarks that compare the two).
    pub pooling: bool,
    /// Used pool memory slots that may sit unused, each still tied to the module that last ran
    /// in it, before a module finding no free slot of its own takes the least recently used of
    /// them instead of a never-used one. A slot once used keeps up to `KEEP_RESIDENT` of its
    /// pages resident, so the slots holding pages are at most the most instances ever alive
    /// at once plus this many: RSS follows concurrency, not history. Default
    /// [`WARM_MEMORY_SLOTS`].
    pub warm_memory_slots: u32,
    /// Epoch checks in compiled code, which let the worker interrupt a running guest (its
    /// deadline, cancellation). On everywhere but in the child process of a plugin with
    /// `isolation = "process"` ([`crate::isolated`]), which the worker stops by killing it.
    pub epoch_interruption: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            // 4 GiB is all a wasm32 memory can address anyway.
            max_memory_bytes: 4 << 30,
            max_instances: 64,
            fuel_metering: false,
            pooling: true,
            warm_memory_slots: WARM_MEMORY_SLOTS,
            epoch_interruption: true,
        }
    }
}

/// Builds the engine: pooling allocator (fresh instances are cheap because slots are reused)
/// and epoch interruption (deadlines without the cost of fuel metering).
pub fn build_engine(settings: &EngineSettings) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    let slots = settings.max_instances;
    // Sized for interpreter components. Measured as wasmtime counts them (module instances,
    // defined memories and tables of one component; core instances / memories / tables):
    //   Rust, csv.wasm (wasm32-wasip2)                              3 / 1 / 2
    //   Python, features.wasm (componentize-py 0.25.1)             14 / 1 / 2
    //   the same built with --stub-wasi (WASI as trapping stubs)   38 / 1 / 2
    //   a --stub-wasi build keeping the filesystem (issue 14)      44 (reported there)
    // 64 core instances per component takes all of them with headroom. A core instance costs
    // the pool nothing until it exists (the total is a counter, each vmctx is allocated with
    // its instance), so the total is one component's maximum for every slot: any mix of
    // components fills all `slots` before core instances run out. Before (8 a slot, 32 per
    // component) 64 slots held only 36 Python instances at once and a --stub-wasi build was
    // refused; now 64 of either fit, and the 65th meets the slot limit. Memories and tables
    // stay: every toolchain above defines one memory and two tables (Python's main table has
    // 5,676 elements, under the default 20,000), and their totals reserve address space (a
    // memory slot is `max_memory_size` plus guards).
    pool.total_component_instances(slots)
        .total_core_instances(slots.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
        .total_memories(slots * 2)
        .total_tables(slots * 4)
        .total_stacks(slots)
        .max_memory_size(settings.max_memory_bytes as usize)
        .max_component_instance_size(1 << 20)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .max_unused_warm_slots(settings.warm_memory_slots);
    // Reset a used slot by rewriting only its dirty pages (found with Linux's PAGEMAP_SCAN,
    // kernel 6.7+; elsewhere this falls back to madvise) and keep them resident, so the next
    // instance takes no page faults on them: it halved the cost of a small invocation
    // (BENCHMARKS.md). The price is up to KEEP_RESIDENT bytes per slot kept after use.
    pool.pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(TABLE_KEEP_RESIDENT);

    let mut config = Config::new();
    let strategy = if settings.pooling {
        InstanceAllocationStrategy::Pooling(pool)
    } else {
        InstanceAllocationStrategy::OnDemand
    };
    config
        .allocation_strategy(strategy)
        .epoch_interruption(settings.epoch_interruption)
        .consume_fuel(settings.fuel_metering)
        // Deep recursion in a guest ends as a stack-overflow trap, never as a host crash.
        .max_wasm_stack(1 << 20)
        .wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Enable);
    Engine::new(&config)
}

/// Increments the engine's epoch every [`EPOCH_TICK`] while any guest may be running, until
/// dropped. With no guest running it sleeps on a condition variable instead: a hundred wakeups
/// a second cost an idle worker more CPU than its Temporal polling (BENCHMARKS.md).
pub struct EpochTicker {
    shared: Arc<TickerShared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct TickerShared {
    /// Guards alive ([`EpochTicker::running`]).
    running: Mutex<usize>,
    wake: Condvar,
    stop: AtomicBool,
    /// Observable state, for tests: epochs ticked and whether the thread is waiting.
    ticks: AtomicU64,
    waiting: AtomicBool,
}

/// Keeps the ticker ticking while alive: hold one for as long as a store may run guest code.
pub struct Ticking(Arc<TickerShared>);

impl Drop for Ticking {
    fn drop(&mut self) {
        *lock(&self.0.running) -= 1;
    }
}

/// The counter stays meaningful even if a holder panicked while holding the lock.
fn lock(m: &Mutex<usize>) -> std::sync::MutexGuard<'_, usize> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl EpochTicker {
    pub fn start(engine: &Engine) -> Self {
        let shared = Arc::new(TickerShared::default());
        let engine = engine.weak();
        let state = shared.clone();
        let thread = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                loop {
                    let mut running = lock(&state.running);
                    while *running == 0 && !state.stop.load(Ordering::Relaxed) {
                        state.waiting.store(true, Ordering::Relaxed);
                        running = state
                            .wake
                            .wait(running)
                            .unwrap_or_else(|poisoned| poisoned.into_inner());
                    }
                    state.waiting.store(false, Ordering::Relaxed);
                    drop(running);
                    if state.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(EPOCH_TICK);
                    match engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                    state.ticks.fetch_add(1, Ordering::Relaxed);
                }
            })
            .expect("spawning the epoch thread");
        Self {
            shared,
            thread: Some(thread),
        }
    }

    /// Epochs ticked since start.
    pub fn ticks(&self) -> u64 {
        self.shared.ticks.load(Ordering::Relaxed)
    }

    /// Whether the thread is waiting for a guest to run (not ticking).
    pub fn is_waiting(&self) -> bool {
        self.shared.waiting.load(Ordering::Relaxed)
    }

    /// Ticks until the returned guard (and every other) is dropped.
    pub fn running(&self) -> Ticking {
        let mut running = lock(&self.shared.running);
        *running += 1;
        if *running == 1 {
            self.shared.wake.notify_one();
        }
        Ticking(self.shared.clone())
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Under the lock, so the thread cannot miss the wakeup between its check and its wait.
        drop(lock(&self.shared.running));
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn until(what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::yield_now();
        }
    }

    #[test]
    fn ticks_only_while_a_guest_may_run() {
        let engine = build_engine(&EngineSettings {
            pooling: false,
            ..Default::default()
        })
        .unwrap();
        let ticker = EpochTicker::start(&engine);
        until("the idle ticker waits", || ticker.is_waiting());
        assert_eq!(ticker.ticks(), 0, "no guest ever ran");

        let first = ticker.running();
        let second = ticker.running();
        until("it ticks", || ticker.ticks() >= 2);
        drop(first);
        let before = ticker.ticks();
        until("it keeps ticking for the other guest", || {
            ticker.ticks() > before
        });
        drop(second);
        until("it waits again", || ticker.is_waiting());
        let idle = ticker.ticks();
        let _again = ticker.running();
        until("it wakes for the next guest", || ticker.ticks() > idle);
    }
}
