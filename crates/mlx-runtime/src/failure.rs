//! Every way an invocation can end badly, and how each maps to a Temporal failure: a stable
//! type name (retry policies and people match on it) and whether retrying can help.
//! docs/failures.md is this file in prose; a test checks that they agree.

use std::time::Duration;

use serde_json::{Value, json};

use crate::contract::{GuestError, GuestErrorKind};

/// Why an invocation did not produce output. Its variants carry text, not source errors: this
/// is the failure as it is sent to Temporal (a message, a type, details), and the causes are
/// logged where they happen. Serialized only between the worker and its own child process
/// ([`crate::isolated`]).
#[derive(Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
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
    #[error(
        "input for {plugin}.{operation} does not match the operation's input schema: {summary}"
    )]
    InvalidInput {
        plugin: String,
        operation: String,
        /// Each violation as `path: message (rule)`.
        summary: String,
        /// `{"violations": [{"path", "rule", "message"}], "total"}`.
        violations: Value,
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
    #[error(
        "plugin tried to hold more than {limit} open files (raise limits.max_open_files in its manifest if this input needs more)"
    )]
    TooManyOpenFiles { limit: usize },
    #[error(
        "plugin tried to write more than {limit_mb} MiB to disk in one call (raise limits.disk_mb in its manifest if this input needs more)"
    )]
    DiskQuotaExceeded { limit_mb: u64 },
    #[error(
        "plugin made the worker hold more than {limit_mb} MiB for it outside its memory ({what}; raise limits.host_memory_mb in its manifest if this input needs more)"
    )]
    HostMemoryExceeded { limit_mb: u64, what: String },
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
    /// The run's files could not be brought from, or committed to, the shared artifact store
    /// (`worker.artifacts_store`); `retryable` is the store error's own classification.
    #[error("artifact store: {message}")]
    Artifacts { message: String, retryable: bool },
}

/// The failure types the host itself classifies; a plugin's own errors carry the type name
/// the plugin chose instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureType {
    InvalidRequest,
    UnknownPlugin,
    UnknownOperation,
    InvalidInput,
    CapabilityDenied,
    PluginMemoryLimitExceeded,
    PluginTooManyOpenFiles,
    PluginDiskQuotaExceeded,
    PluginHostMemoryExceeded,
    PluginDeadlineExceeded,
    PluginFuelExhausted,
    PluginStackOverflow,
    PluginTrapped,
    PluginContractViolation,
    PluginInvalidOutput,
    PluginOutputTooLarge,
    Cancelled,
    SandboxUnavailable,
    ArtifactsUnavailable,
    ArtifactsRefused,
}

impl FailureType {
    pub const ALL: &[FailureType] = &[
        Self::InvalidRequest,
        Self::UnknownPlugin,
        Self::UnknownOperation,
        Self::InvalidInput,
        Self::CapabilityDenied,
        Self::PluginMemoryLimitExceeded,
        Self::PluginTooManyOpenFiles,
        Self::PluginDiskQuotaExceeded,
        Self::PluginHostMemoryExceeded,
        Self::PluginDeadlineExceeded,
        Self::PluginFuelExhausted,
        Self::PluginStackOverflow,
        Self::PluginTrapped,
        Self::PluginContractViolation,
        Self::PluginInvalidOutput,
        Self::PluginOutputTooLarge,
        Self::Cancelled,
        Self::SandboxUnavailable,
        Self::ArtifactsUnavailable,
        Self::ArtifactsRefused,
    ];

    /// The Temporal application failure type: stable, retry policies match on it.
    pub fn name(self) -> &'static str {
        match self {
            Self::InvalidRequest => "InvalidRequest",
            Self::UnknownPlugin => "UnknownPlugin",
            Self::UnknownOperation => "UnknownOperation",
            Self::InvalidInput => "InvalidInput",
            Self::CapabilityDenied => "CapabilityDenied",
            Self::PluginMemoryLimitExceeded => "PluginMemoryLimitExceeded",
            Self::PluginTooManyOpenFiles => "PluginTooManyOpenFiles",
            Self::PluginDiskQuotaExceeded => "PluginDiskQuotaExceeded",
            Self::PluginHostMemoryExceeded => "PluginHostMemoryExceeded",
            Self::PluginDeadlineExceeded => "PluginDeadlineExceeded",
            Self::PluginFuelExhausted => "PluginFuelExhausted",
            Self::PluginStackOverflow => "PluginStackOverflow",
            Self::PluginTrapped => "PluginTrapped",
            Self::PluginContractViolation => "PluginContractViolation",
            Self::PluginInvalidOutput => "PluginInvalidOutput",
            Self::PluginOutputTooLarge => "PluginOutputTooLarge",
            Self::Cancelled => "Cancelled",
            Self::SandboxUnavailable => "SandboxUnavailable",
            Self::ArtifactsUnavailable => "ArtifactsUnavailable",
            Self::ArtifactsRefused => "ArtifactsRefused",
        }
    }

    /// Whether a retry can help; the reasons are in docs/failures.md.
    pub fn retryable(self) -> bool {
        match self {
            // Usually load or a slow dependency; the retry policy bounds it.
            Self::PluginDeadlineExceeded => true,
            // A panic may come from a transient condition the plugin did not handle; the
            // retry policy bounds the cost, and a fixed plugin dropped in can succeed on retry.
            Self::PluginTrapped => true,
            // The worker is short of capacity, not the request at fault.
            Self::SandboxUnavailable => true,
            // The store was unreachable or answered 5xx/429: it may answer the next attempt,
            // on this worker or another.
            Self::ArtifactsUnavailable => true,
            // Malformed or unknown requests, and inputs their schema refuses, never succeed; an ungranted capability needs an
            // operator; memory, open-file, disk, host-memory, fuel and stack limits are hit
            // again by the same input; output and contract violations are plugin bugs; a
            // cancellation is final.
            Self::InvalidRequest
            | Self::UnknownPlugin
            | Self::UnknownOperation
            | Self::InvalidInput
            | Self::CapabilityDenied
            | Self::PluginMemoryLimitExceeded
            | Self::PluginTooManyOpenFiles
            | Self::PluginDiskQuotaExceeded
            | Self::PluginHostMemoryExceeded
            | Self::PluginFuelExhausted
            | Self::PluginStackOverflow
            | Self::PluginContractViolation
            | Self::PluginInvalidOutput
            | Self::PluginOutputTooLarge
            // Refused by the store (credentials, missing bucket) or by its bounds (a run's
            // files over the fetch limit, a symlink written): the same again until an
            // operator or the pipeline changes something.
            | Self::ArtifactsRefused
            | Self::Cancelled => false,
        }
    }
}

impl std::fmt::Display for FailureType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
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
    /// The host's classification; None for an error the plugin returned (its own type).
    pub fn failure_type(&self) -> Option<FailureType> {
        use FailureType as T;
        use InvocationError as E;
        Some(match self {
            E::InvalidRequest(_) => T::InvalidRequest,
            E::UnknownPlugin { .. } => T::UnknownPlugin,
            E::UnknownOperation { .. } => T::UnknownOperation,
            E::InvalidInput { .. } => T::InvalidInput,
            E::Guest(_) => return None,
            E::CapabilityDenied { .. } => T::CapabilityDenied,
            E::MemoryLimit { .. } => T::PluginMemoryLimitExceeded,
            E::TooManyOpenFiles { .. } => T::PluginTooManyOpenFiles,
            E::DiskQuotaExceeded { .. } => T::PluginDiskQuotaExceeded,
            E::HostMemoryExceeded { .. } => T::PluginHostMemoryExceeded,
            E::Deadline { .. } => T::PluginDeadlineExceeded,
            E::FuelExhausted { .. } => T::PluginFuelExhausted,
            E::StackOverflow { .. } => T::PluginStackOverflow,
            E::Trap { .. } => T::PluginTrapped,
            E::ContractViolation(_) => T::PluginContractViolation,
            E::InvalidOutput(_) => T::PluginInvalidOutput,
            E::OutputTooLarge { .. } => T::PluginOutputTooLarge,
            E::Cancelled { .. } => T::Cancelled,
            E::Sandbox(_) => T::SandboxUnavailable,
            E::Artifacts {
                retryable: true, ..
            } => T::ArtifactsUnavailable,
            E::Artifacts {
                retryable: false, ..
            } => T::ArtifactsRefused,
        })
    }

    /// Stable failure type name, retryability and details; see docs/failures.md.
    pub fn failure(&self) -> Failure {
        use InvocationError as E;
        let details = match self {
            E::Guest(err) => {
                return Failure {
                    type_name: err.type_name.clone(),
                    retryable: err.kind == GuestErrorKind::Retryable,
                    message: err.message.clone(),
                    details: Some(json!({ "kind": err.kind, "details": err.details })),
                };
            }
            E::CapabilityDenied {
                denied,
                plugin_error,
            } => Some(json!({ "denied": denied, "plugin_error": plugin_error })),
            E::InvalidInput { violations, .. } => Some(violations.clone()),
            E::StackOverflow { backtrace } => Some(json!({ "backtrace": backtrace })),
            E::Trap {
                backtrace,
                stderr_tail,
                ..
            } => Some(json!({ "backtrace": backtrace, "stderr_tail": stderr_tail })),
            _ => None,
        };
        let kind = self
            .failure_type()
            .expect("only guest errors are unclassified, and they returned above");
        Failure {
            type_name: kind.name().to_string(),
            retryable: kind.retryable(),
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

    /// docs/failures.md is what operators read; it must name every type the host
    /// classifies, with the same retryability.
    #[test]
    fn the_failure_table_in_the_docs_matches_the_code() {
        let doc = include_str!("../../../docs/failures.md");
        let rows: std::collections::BTreeMap<&str, &str> = doc
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                Some((name, *cells.get(3)?))
            })
            .collect();
        for kind in FailureType::ALL {
            let retryable = rows
                .get(kind.name())
                .unwrap_or_else(|| panic!("docs/failures.md has no row for `{kind}`"));
            let expected = if kind.retryable() { "yes" } else { "no" };
            assert_eq!(*retryable, expected, "retryable column of `{kind}`");
        }
        let known: Vec<&str> = FailureType::ALL.iter().map(|k| k.name()).collect();
        for name in rows.keys() {
            assert!(
                known.contains(name),
                "docs/failures.md lists `{name}`, which the code does not have"
            );
        }
    }
}
