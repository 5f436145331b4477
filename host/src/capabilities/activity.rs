//! `mlx:plugin/activity`: heartbeats and cancellation. The sandbox knows nothing of Temporal:
//! it publishes heartbeat details on a watch channel and reads a cancellation token. The
//! Temporal glue ([`crate::temporal::activity`]) forwards both ways.

use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::ContractViolation;
use crate::{bindings::mlx::plugin::activity, sandbox::GuestState};

/// The sandbox's end of the activity it runs as.
#[derive(Debug, Clone)]
pub struct ActivitySignals {
    details: watch::Sender<Option<Value>>,
    cancel: CancellationToken,
}

impl ActivitySignals {
    /// New signals; the receiver sees every heartbeat's details (the latest one wins).
    pub fn new(cancel: CancellationToken) -> (Self, watch::Receiver<Option<Value>>) {
        let (details, rx) = watch::channel(None);
        (Self { details, cancel }, rx)
    }

    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    fn record(&self, details: Value) {
        self.details.send_replace(Some(details));
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
        tracing::debug!(target: "mlx_worker::guest", details = %details, "heartbeat");
        self.signals.record(value);
        Ok(self.signals.cancel_token().is_cancelled())
    }

    fn is_cancelled(&mut self) -> wasmtime::Result<bool> {
        Ok(self.signals.cancel_token().is_cancelled())
    }
}
