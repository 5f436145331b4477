use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::guest::bindings::mlx::plugin::{activity, types::InvocationContext};

/// Where an invocation comes from, and its channel back to Temporal (heartbeats, cancellation).
#[derive(Debug)]
pub struct Context {
    workflow_id: String,
    activity_id: String,
    attempt: u32,
    last_heartbeat: Option<String>,
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Host,
    Detached(Detached),
}

/// Stand-in for the host in native tests: records heartbeats, cancels when told to, grants
/// the config values and secrets it was given.
#[derive(Default)]
struct Detached {
    heartbeats: RefCell<Vec<Value>>,
    cancelled: Cell<bool>,
    cancel_after: Option<usize>,
    config: HashMap<String, String>,
    secrets: HashMap<String, String>,
}

impl std::fmt::Debug for Detached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secret values stay out of test output, as the host keeps them out of its logs.
        f.debug_struct("Detached")
            .field("heartbeats", &self.heartbeats)
            .field("cancelled", &self.cancelled)
            .field("cancel_after", &self.cancel_after)
            .field("config", &self.config)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Context {
    pub(crate) fn from_host(context: InvocationContext) -> Self {
        Self {
            workflow_id: context.workflow_id,
            activity_id: context.activity_id,
            attempt: context.attempt,
            last_heartbeat: context.last_heartbeat_details,
            backend: Backend::Host,
        }
    }

    /// A context not connected to any host, for running plugin logic in native unit tests.
    /// Heartbeats are recorded (see [`Context::recorded_heartbeats`]) and report no
    /// cancellation until [`Context::cancel`] is called or [`Context::cancel_after`] is reached.
    /// `last_heartbeat` plays the previous attempt's checkpoint (JSON text).
    pub fn detached(attempt: u32, last_heartbeat: Option<&str>) -> Self {
        Self {
            workflow_id: "detached-workflow".into(),
            activity_id: "detached-activity".into(),
            attempt,
            last_heartbeat: last_heartbeat.map(str::to_owned),
            backend: Backend::Detached(Detached::default()),
        }
    }

    /// Detached contexts only: requests cancellation once `n` heartbeats have been recorded.
    pub fn cancel_after(mut self, n: usize) -> Self {
        if let Backend::Detached(d) = &mut self.backend {
            d.cancel_after = Some(n);
        }
        self
    }

    /// Detached contexts only: grants the `[config]` value `value` under `key`, which
    /// [`Context::config`] then returns.
    pub fn with_config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        if let Backend::Detached(d) = &mut self.backend {
            d.config.insert(key.into(), value.into());
        }
        self
    }

    /// Detached contexts only: grants the secret `value` under `name`, which
    /// [`Context::secret`] then returns.
    pub fn with_secret(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let Backend::Detached(d) = &mut self.backend {
            d.secrets.insert(name.into(), value.into());
        }
        self
    }

    /// Detached contexts only: requests cancellation now.
    pub fn cancel(&self) {
        if let Backend::Detached(d) = &self.backend {
            d.cancelled.set(true);
        }
    }

    /// Detached contexts only: the heartbeat details recorded so far (empty on the host).
    pub fn recorded_heartbeats(&self) -> Vec<Value> {
        match &self.backend {
            Backend::Detached(d) => d.heartbeats.borrow().clone(),
            Backend::Host => Vec::new(),
        }
    }

    /// The Temporal workflow id.
    pub fn workflow_id(&self) -> &str {
        &self.workflow_id
    }

    /// The Temporal activity id.
    pub fn activity_id(&self) -> &str {
        &self.activity_id
    }

    /// 1 for the first attempt, incremented on every retry.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The previous attempt's last heartbeat details, as the JSON text it recorded.
    pub fn last_heartbeat_raw(&self) -> Option<&str> {
        self.last_heartbeat.as_deref()
    }

    /// The previous attempt's last heartbeat details decoded as `T`: a checkpoint to resume
    /// from. `None` if there is none or it does not decode as `T` (e.g. an older format), in
    /// which case the plugin should start over.
    pub fn last_heartbeat<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_str(self.last_heartbeat.as_deref()?).ok()
    }

    /// Records a heartbeat whose details (progress and checkpoint) are `details` as JSON.
    /// Returns true once cancellation has been requested: stop soon (the host interrupts the
    /// plugin after a grace period), typically with [`crate::PluginError::cancelled`].
    ///
    /// If `details` cannot be serialized, nothing is recorded, a warning is logged, and the
    /// cancellation state is still returned.
    pub fn heartbeat(&self, details: &impl Serialize) -> bool {
        let details = match serde_json::to_value(details) {
            Ok(details) => details,
            Err(e) => {
                crate::log::warn("heartbeat details not serializable", &[("error", &e)]);
                return self.is_cancelled();
            }
        };
        match &self.backend {
            Backend::Host => activity::heartbeat(&details.to_string()),
            Backend::Detached(d) => {
                let mut beats = d.heartbeats.borrow_mut();
                beats.push(details);
                if d.cancel_after.is_some_and(|n| beats.len() >= n) {
                    d.cancelled.set(true);
                }
                d.cancelled.get()
            }
        }
    }

    /// The manifest's `[config]` value for `key` (on a detached context, one given to
    /// [`Context::with_config`]).
    pub fn config(&self, key: &str) -> Option<String> {
        match &self.backend {
            Backend::Host => crate::config::get(key),
            Backend::Detached(d) => d.config.get(key).cloned(),
        }
    }

    /// The secret the manifest grants under `name`, read by the host at the time of the call
    /// (on a detached context, one given to [`Context::with_secret`]). Keep it out of logs,
    /// errors and outputs: the host never reveals it, neither should you.
    pub fn secret(&self, name: &str) -> Option<String> {
        match &self.backend {
            Backend::Host => crate::config::secret(name),
            Backend::Detached(d) => d.secrets.get(name).cloned(),
        }
    }

    /// True once cancellation of this activity has been requested.
    pub fn is_cancelled(&self) -> bool {
        match &self.backend {
            Backend::Host => activity::is_cancelled(),
            Backend::Detached(d) => d.cancelled.get(),
        }
    }
}
