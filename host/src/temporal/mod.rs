//! Temporal glue: the `plugin_activity` activity, the workflows this worker hosts, and the
//! worker loop. Nothing else in the crate knows about Temporal.

pub mod activity;
pub mod dispatch;
#[cfg(feature = "native-echo")]
pub mod native_echo;
pub mod payload;
pub mod pipeline;
pub mod worker;
pub mod workflows;

use temporalio_common::data_converters::RawValue;
use temporalio_macros::activity_definitions;
use temporalio_sdk::activities::ActivityError;

pub use activity::PluginActivities;
pub use pipeline::PipelineWorkflow;
pub use workflows::{MLTrainingWorkflow, RunPluginWorkflow};

/// The activity type name every caller uses, in any SDK or from the CLI.
pub const ACTIVITY_NAME: &str = "plugin_activity";

/// The one definition of `plugin_activity`: what the workflows call. The worker serves it
/// through [`dispatch::Handler`] ([`PluginActivities`], and the benchmark's native echo),
/// matched by [`ACTIVITY_NAME`]. Both ways it is one JSON payload, taken raw: the request is decoded by hand so a malformed one
/// fails non-retryably ([`payload::decode_request`]), and the result's metadata carries the
/// plugin digest and attempt ([`payload::result_payload`]).
pub struct PluginActivity;

#[activity_definitions]
impl PluginActivity {
    #[activity(name = ACTIVITY_NAME)]
    pub fn plugin_activity(_request: RawValue) -> Result<RawValue, ActivityError> {
        unimplemented!()
    }
}
