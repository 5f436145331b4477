//! `mlx:plugin/activity`: heartbeats and cancellation. The sandbox knows nothing of Temporal:
//! it publishes heartbeat details on a watch channel and reads a cancellation token. The
//! Temporal glue (the worker's `plugin_activity`) forwards both ways.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use wasmtime::component::{HasSelf, Linker};

use super::{ContractViolation, Offer, rate::RateLimit};
use crate::{bindings::mlx::plugin::activity, contract::JsonText};

pub const OFFER: Offer = Offer::always("mlx:plugin/activity");

/// The `[limits]` keys of this capability, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatLimits {
    /// Largest heartbeat details. `limits.max_heartbeat_kb`, default 256 KiB (a model
    /// checkpoint of a small model), at most 2 MiB: Temporal's own payload limit, over which
    /// the heartbeat would be refused and the checkpoint lost.
    pub max_bytes: usize,
    /// Heartbeats a second that reach Temporal; faster ones are checked but only the latest is
    /// kept, and it is delivered later (at the latest when the invocation ends).
    /// `limits.heartbeats_per_sec`, default 10 (Temporal throttles heartbeats itself, so more
    /// only costs the worker), at most 1000.
    pub per_sec: u32,
}

impl Default for HeartbeatLimits {
    fn default() -> Self {
        Self {
            max_bytes: 256 << 10,
            per_sec: 10,
        }
    }
}

const KEYS: super::BudgetKeys = super::BudgetKeys {
    kib: "limits.max_heartbeat_kb",
    max_kib: 2 << 10,
    rate: "limits.heartbeats_per_sec",
    max_rate: 1000,
};

impl HeartbeatLimits {
    /// The manifest's values over the defaults, each checked against its ceiling.
    pub fn resolve(max_heartbeat_kb: Option<u64>, per_sec: Option<u32>) -> Result<Self, String> {
        let d = Self::default();
        let (max_bytes, per_sec) =
            KEYS.resolve((d.max_bytes, d.per_sec), max_heartbeat_kb, per_sec)?;
        Ok(Self { max_bytes, per_sec })
    }
}

/// The sandbox's end of the activity it runs as.
#[derive(Debug, Clone)]
pub struct ActivitySignals {
    details: watch::Sender<Option<JsonText>>,
    cancel: CancellationToken,
    forwarded: Arc<AtomicU64>,
}

impl ActivitySignals {
    /// New signals; the receiver sees every heartbeat's details (the latest one wins).
    pub fn new(cancel: CancellationToken) -> (Self, watch::Receiver<Option<JsonText>>) {
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

    /// Publishes heartbeat details; also how the worker passes on those its child process
    /// reports ([`crate::isolated`]).
    pub(crate) fn record(&self, details: JsonText) {
        self.forwarded.fetch_add(1, Ordering::Relaxed);
        self.details.send_replace(Some(details));
    }
}

/// Heartbeats over the plugin's rate are checked (size, JSON) but not forwarded at once: the
/// latest waits for the next heartbeat within the rate, or for the end of the invocation, so
/// a plugin that heartbeats in a tight loop costs Temporal nothing and loses no checkpoint.
#[derive(Debug)]
struct HeartbeatThrottle {
    rate: RateLimit,
    pending: Option<JsonText>,
}

impl HeartbeatThrottle {
    fn new(per_sec: u32) -> Self {
        Self {
            rate: RateLimit::per_second(per_sec),
            pending: None,
        }
    }
}

/// The activity capability's part of a store.
pub struct ActivityState {
    signals: ActivitySignals,
    heartbeats: HeartbeatThrottle,
    max_bytes: usize,
}

impl ActivityState {
    pub fn new(signals: ActivitySignals, limits: &HeartbeatLimits) -> Self {
        Self {
            signals,
            heartbeats: HeartbeatThrottle::new(limits.per_sec),
            max_bytes: limits.max_bytes,
        }
    }

    /// Forwards a heartbeat held back by the rate limit; called when the invocation ends.
    pub fn flush_heartbeat(&mut self) {
        if let Some(details) = self.heartbeats.pending.take() {
            self.signals.record(details);
        }
    }
}

/// How a store exposes its [`ActivityState`].
pub trait ActivityView: Send {
    fn activity(&mut self) -> &mut ActivityState;
}

pub fn add_to_linker<T: ActivityView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    activity::add_to_linker::<T, HasSelf<ActivityState>>(linker, T::activity)
}

impl activity::Host for ActivityState {
    fn heartbeat(&mut self, details: String) -> wasmtime::Result<bool> {
        let limit = self.max_bytes;
        if details.len() > limit {
            return Err(wasmtime::Error::new(ContractViolation::HeartbeatTooLarge {
                size: details.len(),
                limit,
            }));
        }
        let value = JsonText::parse(details).map_err(|e| {
            wasmtime::Error::new(ContractViolation::HeartbeatNotJson(e.to_string()))
        })?;
        if self.heartbeats.rate.try_take() {
            tracing::debug!(target: "mlx_worker::guest", details = %value, "heartbeat");
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
