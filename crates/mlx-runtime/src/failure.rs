//! Every way an invocation can end badly, and how each maps to a Temporal failure: a stable
//! type name (retry policies and people match on it) and whether retrying can help.
//! README's failure table is this file in prose; keep them together.

use std::time::Duration;

use serde_json::{Value, json};

use crate::contract::{GuestError, GuestErrorKind};

/// Why an invocation did not produce output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvocationError {
    #[error("invalid plugin request: {0}")]
    InvalidRequest(String),
    #[error("no plugin named {name:?} is loaded by this worker; loaded plugins: [{available}]")]
    UnknownPlugin { name: String, available: String },
    #[error("plugin {plugin:?} has no operation {operation:?}; its operations: [{available}]")]
    UnknownOperation {
        plugin: String,
        operation: String,
        available: String,
    },
    #[error("{}", .0.message)]
    Guest(GuestError),
    #[error("plugin failed after the host refused it a capability its manifest does not grant: {}", .denied.join("; "))]
    CapabilityDenied {
        /// What was refused, each naming the manifest key that would grant it.
        denied: Vec<String>,
        /// What the plugin said (or the panic message) when it gave up.
        plugin_error: String,
    },
    #[error(
        "plugin exceeded its memory limit of {limit_mb} MiB (raise limits.memory_mb in its manifest if this input is expected)"
    )]
    MemoryLimit { limit_mb: u64 },
    #[error("plugin was still running at its deadline ({after:?} after start) and was interrupted")]
    Deadline { after: Duration },
    #[error(
        "plugin ran out of fuel ({fuel} units; raise limits.fuel in its manifest if this input is expected)"
    )]
    FuelExhausted { fuel: u64 },
    #[error("plugin overflowed its stack (unbounded recursion?)")]
    StackOverflow { backtrace: Option<String> },
    #[error("{message}")]
    Trap {
        message: String,
        backtrace: Option<String>,
        stderr_tail: Vec<String>,
    },
    #[error("plugin broke the plugin contract: {0}")]
    ContractViolation(String),
    #[error("plugin returned invalid output: {0}")]
    InvalidOutput(String),
    #[error(
        "plugin output of {size} bytes exceeds the limit of {limit} bytes; write large results \
         as artifacts and return references (or raise limits.max_output_kb)"
    )]
    OutputTooLarge { size: usize, limit: usize },
    #[error("activity was cancelled")]
    Cancelled {
        /// True when the plugin returned by itself after cancellation was requested; false
        /// when the host had to interrupt it.
        acknowledged_by_plugin: bool,
    },
    #[error("sandbox unavailable: {0}")]
    Sandbox(String),
}

/// A classified failure, independent of the Temporal SDK's types.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub type_name: String,
    pub retryable: bool,
    pub message: String,
    pub details: Option<Value>,
}

impl InvocationError {
    /// Stable failure type name and retryability; see README "Failure types".
    pub fn failure(&self) -> Failure {
        use InvocationError as E;
        let (type_name, retryable, details): (&str, bool, Option<Value>) = match self {
            E::InvalidRequest(_) => ("InvalidRequest", false, None),
            E::UnknownPlugin { .. } => ("UnknownPlugin", false, None),
            E::UnknownOperation { .. } => ("UnknownOperation", false, None),
            E::Guest(err) => {
                let details = json!({ "kind": err.kind, "details": err.details });
                let retryable = err.kind == GuestErrorKind::Retryable;
                return Failure {
                    type_name: err.type_name.clone(),
                    retryable,
                    message: err.message.clone(),
                    details: Some(details),
                };
            }
            // Only an operator changing the manifest helps; that is not what a retry waits for.
            E::CapabilityDenied {
                denied,
                plugin_error,
            } => (
                "CapabilityDenied",
                false,
                Some(json!({ "denied": denied, "plugin_error": plugin_error })),
            ),
            // Same input, same limit, same result: retrying only burns the budget.
            E::MemoryLimit { .. } => ("PluginMemoryLimitExceeded", false, None),
            // Usually load or a slow dependency; the retry policy bounds it.
            E::Deadline { .. } => ("PluginDeadlineExceeded", true, None),
            // Fuel counts instructions: the same input exhausts it again.
            E::FuelExhausted { .. } => ("PluginFuelExhausted", false, None),
            E::StackOverflow { backtrace } => (
                "PluginStackOverflow",
                false,
                Some(json!({ "backtrace": backtrace })),
            ),
            // A panic may come from a transient condition the plugin did not handle; the retry
            // policy bounds the cost, and a fixed plugin dropped in can succeed on retry.
            E::Trap {
                backtrace,
                stderr_tail,
                ..
            } => (
                "PluginTrapped",
                true,
                Some(json!({ "backtrace": backtrace, "stderr_tail": stderr_tail })),
            ),
            E::ContractViolation(_) => ("PluginContractViolation", false, None),
            E::InvalidOutput(_) => ("PluginInvalidOutput", false, None),
            E::OutputTooLarge { .. } => ("PluginOutputTooLarge", false, None),
            E::Cancelled { .. } => ("Cancelled", false, None),
            // The worker is short of capacity, not the request at fault.
            E::Sandbox(_) => ("SandboxUnavailable", true, None),
        };
        Failure {
            type_name: type_name.to_string(),
            retryable,
            message: self.to_string(),
            details,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_errors_keep_their_type_and_retryability() {
        let err = InvocationError::Guest(GuestError {
            kind: GuestErrorKind::InvalidInput,
            type_name: "ColumnNotFound".into(),
            message: "no column x".into(),
            details: None,
        });
        let f = err.failure();
        assert_eq!(f.type_name, "ColumnNotFound");
        assert!(!f.retryable);
        assert_eq!(f.details.unwrap()["kind"], "invalid_input");
    }

    #[test]
    fn request_errors_are_not_retryable() {
        for err in [
            InvocationError::InvalidRequest("x".into()),
            InvocationError::UnknownPlugin {
                name: "a".into(),
                available: "b".into(),
            },
        ] {
            assert!(!err.failure().retryable, "{err}");
        }
    }
}
