//! `mlx:plugin/log`: structured guest logs into the worker's `tracing` output. Lines land in
//! the invocation's span, so they carry workflow id, activity id, attempt, plugin and operation.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use super::rate::RateLimit;

use crate::{
    bindings::{WitLevel, mlx::plugin::log},
    sandbox::GuestState,
};

/// Log bytes an invocation may still emit, and lines a second. Shared by the log import and
/// guest stdout/stderr: a guest must not be able to make the worker write (or buffer) without
/// bound, nor drown its neighbours' lines in the worker's log.
#[derive(Debug)]
pub struct LogBudget {
    remaining: AtomicUsize,
    exhausted: AtomicBool,
    rate: Mutex<RateLimit>,
    rate_exceeded: AtomicBool,
}

impl LogBudget {
    pub fn new(bytes: usize, lines_per_sec: u32) -> Arc<Self> {
        Arc::new(Self {
            remaining: AtomicUsize::new(bytes),
            exhausted: AtomicBool::new(false),
            rate: Mutex::new(RateLimit::per_second(lines_per_sec)),
            rate_exceeded: AtomicBool::new(false),
        })
    }

    /// Whether one more line may be written now; false (and one warning per invocation) over
    /// the rate.
    pub fn allow_line(&self) -> bool {
        let allowed = self
            .rate
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .try_take();
        if !allowed && !self.rate_exceeded.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "mlx_worker::guest",
                "plugin exceeded its log rate (limits.log_lines_per_sec); lines over the rate \
                 are dropped"
            );
        }
        allowed
    }

    /// Takes `n` bytes from the budget; false (and one warning) once it is spent.
    pub fn take(&self, n: usize) -> bool {
        let taken = self
            .remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(n)
            })
            .is_ok();
        if !taken && !self.exhausted.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "mlx_worker::guest",
                "plugin exceeded its log budget; further log lines of this invocation are dropped"
            );
        }
        taken
    }
}

/// Emits one guest log line at a level chosen at run time.
pub fn emit(level: tracing::Level, stream: &str, message: &str, fields: &str) {
    // Lines from stdout/stderr have no fields; leave the field out rather than log it empty.
    macro_rules! at {
        ($lvl:ident) => {
            if fields.is_empty() {
                tracing::$lvl!(target: "mlx_worker::guest", stream, "{message}")
            } else {
                tracing::$lvl!(target: "mlx_worker::guest", stream, fields, "{message}")
            }
        };
    }
    match level {
        tracing::Level::ERROR => at!(error),
        tracing::Level::WARN => at!(warn),
        tracing::Level::INFO => at!(info),
        tracing::Level::DEBUG => at!(debug),
        tracing::Level::TRACE => at!(trace),
    }
}

impl log::Host for GuestState {
    fn log(
        &mut self,
        level: WitLevel,
        message: String,
        fields: Vec<log::Field>,
    ) -> wasmtime::Result<()> {
        let size = message.len()
            + fields
                .iter()
                .map(|f| f.key.len() + f.value.len())
                .sum::<usize>();
        if !self.log_budget.take(size) || !self.log_budget.allow_line() {
            return Ok(());
        }
        let fields = fields
            .iter()
            .map(|f| format!("{}={:?}", f.key, f.value))
            .collect::<Vec<_>>()
            .join(" ");
        emit(level.into(), "log", &message, &fields);
        Ok(())
    }
}
