//! Capabilities the host refused during one invocation. When the plugin then fails, the host
//! reports `CapabilityDenied` itself (see [`crate::failure`]) instead of trusting the plugin
//! to say so: the failure names what was refused and the manifest key that would grant it.
//! Entries name a secret or an origin, never a value or a request's contents.

use std::sync::{Arc, Mutex};

/// Refusals kept per invocation; a plugin retrying a refused call in a loop adds nothing new.
const MAX_KEPT: usize = 8;

#[derive(Debug, Clone)]
pub struct Denials {
    kept: Arc<Mutex<Vec<String>>>,
    /// The invocation's span: HTTP refusals happen in tasks that do not carry it.
    span: tracing::Span,
}

impl Denials {
    /// Refusals of the invocation whose span is current.
    pub fn new() -> Self {
        Self {
            kept: Arc::default(),
            span: tracing::Span::current(),
        }
    }

    pub fn record(&self, what: String) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() < MAX_KEPT && !kept.contains(&what) {
            self.span.in_scope(|| {
                tracing::warn!(target: "mlx_worker::guest", "capability denied: {what}");
            });
            kept.push(what);
        }
    }

    /// The refusals so far, leaving none behind.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.kept.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Default for Denials {
    fn default() -> Self {
        Self::new()
    }
}
