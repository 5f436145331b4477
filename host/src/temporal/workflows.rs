//! Workflows this worker hosts. Both take and return plain JSON, so the `temporal` CLI or any
//! SDK can start them. Inputs are validated inside the workflow: a malformed input fails the
//! workflow once, non-retryably, instead of failing workflow tasks forever.

use std::time::Duration;

use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};
use temporalio_common::data_converters::RawValue;
use temporalio_common::error::ActivityExecutionError;
use temporalio_common::{RetryPolicy, error::ApplicationFailure};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityCancellationType, ActivityOptions, WorkflowContext, WorkflowResult, WorkflowTermination,
};

use mlx_runtime::contract::PluginRequest;

use super::{
    PluginActivity,
    payload::{decode_result, request_payload, workflow_input},
};

/// The JSON a `plugin_activity` returned.
fn result_json(raw: RawValue) -> WorkflowResult<Value> {
    decode_result(&raw)
        .map(|result| result.output)
        .map_err(|e| {
            WorkflowTermination::failed_application(
                ApplicationFailure::builder(format!("plugin_activity result: {e}"))
                    .type_name("InvalidActivityResult".to_string())
                    .non_retryable(true)
                    .build(),
            )
        })
}

fn invalid_input(message: String) -> WorkflowTermination {
    WorkflowTermination::failed_application(
        ApplicationFailure::builder(message)
            .type_name("InvalidWorkflowInput".to_string())
            .non_retryable(true)
            .build(),
    )
}

fn parse<T: DeserializeOwned>(input: &RawValue, shape: &str) -> WorkflowResult<T> {
    let value =
        workflow_input(input).map_err(|e| invalid_input(format!("{e}; expected {shape}")))?;
    serde_json::from_value(value).map_err(|e| invalid_input(format!("{e}; expected {shape}")))
}

/// A cancelled activity cancels the workflow; anything else fails it with the activity's
/// failure as the cause.
fn activity_failed(err: ActivityExecutionError) -> WorkflowTermination {
    match err {
        ActivityExecutionError::Cancelled(_) => WorkflowTermination::cancelled(),
        other => other.into(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainingInput {
    /// Input of the data source's `extract_data`.
    extract: Value,
    /// Input of `train_model` (`model: {family, hyperparameters}`, `task`, `checkpoint_every`,
    /// ...); `train`, `test` and `target` are filled in from `extract`'s output.
    #[serde(default)]
    train: serde_json::Map<String, Value>,
    #[serde(default = "default_source")]
    source_plugin: String,
    #[serde(default = "default_trainer")]
    trainer_plugin: String,
}

fn default_source() -> String {
    "csv".into()
}
fn default_trainer() -> String {
    "trainer".into()
}

const TRAINING_SHAPE: &str = r#"{"extract": {...extract_data input...}, "train": {"model": {"family": "random_forest", "hyperparameters": {...}}, ...}}"#;

/// Extract a dataset, then train and evaluate a model on it.
#[workflow]
#[derive(Default)]
pub struct MLTrainingWorkflow;

#[workflow_methods]
impl MLTrainingWorkflow {
    #[run(name = "MLTrainingWorkflow")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: RawValue) -> WorkflowResult<Value> {
        let input: TrainingInput = parse(&input, TRAINING_SHAPE)?;
        let extract = ctx
            .execute_activity(
                PluginActivity::plugin_activity,
                request_payload(&PluginRequest {
                    plugin: input.source_plugin,
                    operation: "extract_data".into(),
                    input: input.extract,
                    cache: false,
                }),
                ActivityOptions::with_start_to_close_timeout(Duration::from_secs(2 * 60 * 60))
                    .heartbeat_timeout(Duration::from_secs(60))
                    .build(),
            )
            .await
            .map_err(activity_failed)
            .and_then(result_json)?;

        let mut train = input.train;
        for (key, value) in [
            ("train", &extract["train"]["path"]),
            ("test", &extract["test"]["path"]),
            ("target", &extract["target"]),
        ] {
            train.insert(key.into(), value.clone());
        }
        let trained = ctx
            .execute_activity(
                PluginActivity::plugin_activity,
                request_payload(&PluginRequest {
                    plugin: input.trainer_plugin,
                    operation: "train_model".into(),
                    input: Value::Object(train),
                    cache: false,
                }),
                ActivityOptions::with_start_to_close_timeout(Duration::from_secs(2 * 60 * 60))
                    .heartbeat_timeout(Duration::from_secs(60))
                    .retry_policy(
                        RetryPolicy::builder()
                            .initial_interval(Duration::from_secs(1))
                            .backoff_coefficient(2.0)
                            .maximum_interval(Duration::from_secs(60))
                            .maximum_attempts(3)
                            .build(),
                    )
                    .build(),
            )
            .await
            .map_err(activity_failed)
            .and_then(result_json)?;

        Ok(json!({
            "model": trained["model"],
            "family": trained["family"],
            "task": trained["task"],
            "metrics": trained["metrics"],
            "rounds": trained["rounds"],
            "loss_curve": trained["loss_curve"],
            "dataset": extract,
        }))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepInput {
    plugin: String,
    operation: String,
    #[serde(default)]
    input: Value,
    #[serde(default = "default_start_to_close")]
    start_to_close_secs: u64,
    heartbeat_timeout_secs: Option<u64>,
    /// 0 means unlimited, as in Temporal retry policies.
    #[serde(default = "default_attempts")]
    max_attempts: u32,
    #[serde(default = "default_initial_interval")]
    initial_interval_ms: u64,
    /// Task queue of the worker pool that runs the activity (e.g. one with a GPU, or a
    /// native worker in the benchmarks); default: this workflow's own queue.
    task_queue: Option<String>,
}

fn default_start_to_close() -> u64 {
    300
}
fn default_attempts() -> u32 {
    1
}
fn default_initial_interval() -> u64 {
    1000
}

const STEP_SHAPE: &str = r#"{"plugin": "...", "operation": "...", "input": {...}, "start_to_close_secs": 300, "heartbeat_timeout_secs": null, "max_attempts": 1, "task_queue": null}"#;

/// Runs one plugin operation as its own workflow: the quickest way to run a step from the
/// `temporal` CLI, with the timeouts and retries given in the input.
#[workflow]
#[derive(Default)]
pub struct RunPluginWorkflow;

#[workflow_methods]
impl RunPluginWorkflow {
    #[run(name = "RunPluginWorkflow")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: RawValue) -> WorkflowResult<Value> {
        let step: StepInput = parse(&input, STEP_SHAPE)?;
        if step.start_to_close_secs == 0 {
            return Err(invalid_input(
                "start_to_close_secs must be at least 1".into(),
            ));
        }
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(
            step.start_to_close_secs,
        ))
        .maybe_heartbeat_timeout(step.heartbeat_timeout_secs.map(Duration::from_secs))
        .maybe_task_queue(step.task_queue)
        // Wait for the plugin to acknowledge, so history records how it ended.
        .cancellation_type(ActivityCancellationType::WaitCancellationCompleted)
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_millis(step.initial_interval_ms))
                .backoff_coefficient(2.0)
                .maximum_attempts(step.max_attempts)
                .build(),
        )
        .build();
        ctx.execute_activity(
            PluginActivity::plugin_activity,
            request_payload(&PluginRequest {
                plugin: step.plugin,
                operation: step.operation,
                input: step.input,
                cache: false,
            }),
            options,
        )
        .await
        .map_err(activity_failed)
        .and_then(result_json)
    }
}
