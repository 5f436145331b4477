//! Temporal glue: the `plugin_activity` activity, the workflows this worker hosts, and the
//! worker loop. Nothing else in the crate knows about Temporal.

pub mod activity;
pub mod native_echo;
pub mod payload;
pub mod pipeline;
pub mod worker;
pub mod workflows;

pub use activity::PluginActivities;
pub use pipeline::PipelineWorkflow;
pub use workflows::{MLTrainingWorkflow, RunPluginWorkflow};

/// The activity type name every caller uses, in any SDK or from the CLI.
pub const ACTIVITY_NAME: &str = "plugin_activity";
