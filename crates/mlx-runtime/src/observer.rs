//! What the runtime tells the outside world about its plugins, as a trait, so that the
//! runtime knows nothing of how metrics are recorded (the worker records them through the
//! Temporal SDK's meter, next to the SDK's own metrics).

use std::time::Duration;

/// How one invocation ended.
#[derive(Debug)]
pub struct Outcome<'a> {
    pub plugin: &'a str,
    pub version: &'a str,
    pub operation: &'a str,
    /// None: succeeded; otherwise the failure's type name ([`crate::failure::FailureType`]).
    pub failure_type: Option<&'a str>,
    pub duration: Duration,
    pub instantiation: Option<Duration>,
    pub peak_memory_bytes: Option<usize>,
}

/// A plugin file change applied by hot reload, or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    Added,
    Replaced,
    Removed,
    Refused,
    /// The file changed on disk but its bytes and manifest did not.
    Unchanged,
}

impl ReloadResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Replaced => "replaced",
            Self::Removed => "removed",
            Self::Refused => "refused",
            Self::Unchanged => "unchanged",
        }
    }
}

/// Receives what the runtime observes. Called on the invocation's task: keep it cheap.
pub trait Observer: Send + Sync {
    fn invocation(&self, outcome: &Outcome<'_>);
    fn reload(&self, result: ReloadResult);
}
