use std::fmt;

use serde_json::Value;

/// How the host and Temporal treat a [`PluginError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input does not satisfy the operation's contract. Never retried.
    InvalidInput,
    /// A transient failure. Retried according to the activity's retry policy.
    Retryable,
    /// A failure that retrying cannot fix. Never retried.
    Permanent,
}

/// An error a plugin returns from [`crate::Plugin::invoke`].
///
/// `type_name` is a stable, machine-readable name (e.g. `"ColumnNotFound"`) that becomes the
/// Temporal application failure type, so retry policies and workflows can match on it;
/// `message` tells a person what went wrong and what to fix.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginError {
    pub kind: ErrorKind,
    pub type_name: String,
    pub message: String,
    /// Optional structured details, sent to the host as JSON text.
    pub details: Option<Value>,
}

impl PluginError {
    /// An error of `kind` without details.
    pub fn new(kind: ErrorKind, type_name: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind,
            type_name: type_name.into(),
            message: message.into(),
            details: None,
        }
    }

    /// [`ErrorKind::InvalidInput`]: the caller must change the request.
    pub fn invalid_input(type_name: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, type_name, message)
    }

    /// [`ErrorKind::Retryable`]: the same request may succeed later.
    pub fn retryable(type_name: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Retryable, type_name, message)
    }

    /// [`ErrorKind::Permanent`]: retrying cannot help.
    pub fn permanent(type_name: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Permanent, type_name, message)
    }

    /// `InvalidInput` of type `"UnknownOperation"`, for an operation the plugin does not offer.
    pub fn unknown_operation(operation: &str) -> Self {
        Self::invalid_input(
            "UnknownOperation",
            format!("this plugin has no operation {operation:?}"),
        )
    }

    /// `Retryable` of type `"Cancelled"`: the plugin stopped because the host requested
    /// cancellation. Retryable so that, if the workflow retries after all, the next attempt can
    /// resume from the last heartbeat.
    pub fn cancelled(message: impl Into<String>) -> Self {
        Self::retryable("Cancelled", message)
    }

    /// Attaches structured details (replacing any).
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {}: {}", self.kind, self.type_name, self.message)
    }
}

impl std::error::Error for PluginError {}
