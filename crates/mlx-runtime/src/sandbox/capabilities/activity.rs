//! `mlx:plugin/activity`: heartbeats and cancellation. The sandbox knows nothing of Temporal:
//! it publishes heartbeat details on a watch channel and reads a cancellation token. The
//! Temporal glue (the worker's `plugin_activity`) forwards both ways.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{ContractViolation, rate::RateLimit};
use crate::{bindings::mlx::plugin::activity, sandbox::GuestState};

/// The sandbox's end of the activity it runs as.
#[derive(Debug, Clone)]
pub struct ActivitySignals {
    details: watch::Sender<Option<Value>>,
    cancel: CancellationToken,
    forwarded: Arc<AtomicU64>,
}

impl ActivitySignals {
    /// New signals; the receiver sees every heartbeat's details (the latest one wins).
    pub fn new(cancel: CancellationToken) -> (Self, watch::Receiver<Option<Value>>) {
        let (details, rx) = watch::channel(None);
        let forwarded = Arc::default();
        (
            Self {
                details,
                cancel,
                forwarded,
            },
            rx,
        )
    }

    /// Heartbeats passed on (after the rate limit), for metrics and tests; the watch channel
    /// coalesces, so its receiver cannot count them.
    pub fn heartbeats_forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }

    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    fn record(&self, details: Value) {
        self.forwarded.fetch_add(1, Ordering::Relaxed);
        self.details.send_replace(Some(details));
    }
}

/// Heartbeats over the plugin's rate are checked (size, JSON) but not forwarded at once: the
/// latest waits for the next heartbeat within the rate, or for the end of the invocation, so
/// a plugin that heartbeats in a tight loop costs Temporal nothing and loses no checkpoint.
#[derive(Debug)]
pub struct HeartbeatThrottle {
    rate: RateLimit,
    pending: Option<Value>,
}

impl HeartbeatThrottle {
    pub fn new(per_sec: u32) -> Self {
        Self {
            rate: RateLimit::per_second(per_sec),
            pending: None,
        }
    }
}

impl GuestState {
    /// Forwards a heartbeat held back by the rate limit; called when the invocation ends.
    pub(crate) fn flush_heartbeat(&mut self) {
        if let Some(details) = self.heartbeats.pending.take() {
            self.signals.record(details);
        }
    }
}

impl activity::Host for GuestState {
    fn heartbeat(&mut self, details: String) -> wasmtime::Result<bool> {
        let limit = self.limits.max_heartbeat_bytes;
        if details.len() > limit {
            return Err(wasmtime::Error::new(ContractViolation::HeartbeatTooLarge {
                size: details.len(),
                limit,
            }));
        }
        let value: Value = serde_json::from_str(&details).map_err(|e| {
            wasmtime::Error::new(ContractViolation::HeartbeatNotJson(e.to_string()))
        })?;
        if self.heartbeats.rate.try_take() {
            tracing::debug!(target: "mlx_worker::guest", details = %details, "heartbeat");
            self.heartbeats.pending = None;
            self.signals.record(value);
        } else {
            self.heartbeats.pending = Some(value);
        }
        Ok(self.signals.cancel_token().is_cancelled())
    }

    fn is_cancelled(&mut self) -> wasmtime::Result<bool> {
        Ok(self.signals.cancel_token().is_cancelled())
    }
}
