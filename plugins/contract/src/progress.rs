//! `checkpoint` and `wait_for_cancel`: heartbeats as checkpoints, and cancellation.

use std::time::Duration;

use mlx_plugin_sdk::{Context, ErrorDecl, JsonSchema, Never, Operation, PluginError};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub struct Checkpoint;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointInput {
    #[schemars(range(min = 1, max = 1000))]
    steps: u32,
    /// On the first attempt, fail after this step's heartbeat.
    fail_at: Option<i64>,
}

#[derive(Serialize, JsonSchema)]
pub struct CheckpointOutput {
    /// The step the previous attempt's last heartbeat recorded (0 if none).
    resumed_from: u32,
    done: u32,
    #[schemars(range(min = 1))]
    attempt: u32,
}

/// The heartbeat details `checkpoint` records, and reads back on the next attempt.
#[derive(Serialize, Deserialize)]
struct Done {
    done: u32,
}

impl Operation for Checkpoint {
    const NAME: &str = "checkpoint";
    const DOC: &str = "Heartbeats {\"done\": i} for each step after the last attempt's \
                       checkpoint; on the first attempt, fails (retryably) right after step \
                       `fail_at`, so a retry resumes there.";
    const ERRORS: &[ErrorDecl] = &[ErrorDecl::retryable(
        "Interrupted",
        "the first attempt reached fail_at",
    )];
    type Input = CheckpointInput;
    type Output = CheckpointOutput;

    fn run(input: CheckpointInput, ctx: &Context) -> Result<CheckpointOutput, PluginError> {
        let resumed_from = ctx.last_heartbeat::<Done>().map_or(0, |d| d.done);
        for i in resumed_from + 1..=input.steps {
            ctx.heartbeat(&Done { done: i });
            if input.fail_at == Some(i.into()) && ctx.attempt() == 1 {
                return Err(PluginError::retryable(
                    "Interrupted",
                    format!("interrupted after step {i}"),
                )
                .with_details(json!({"done": i})));
            }
        }
        Ok(CheckpointOutput {
            resumed_from,
            done: input.steps,
            attempt: ctx.attempt(),
        })
    }
}

pub struct WaitForCancel;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitForCancelInput {
    #[serde(default = "many")]
    #[schemars(range(min = 1))]
    max_heartbeats: u64,
}

fn many() -> u64 {
    100_000
}

impl Operation for WaitForCancel {
    const NAME: &str = "wait_for_cancel";
    const DOC: &str = "Heartbeats {\"waiting\": i} about every 10 ms until cancellation is \
                       requested, then fails with Cancelled; NotCancelled after \
                       `max_heartbeats`.";
    const ERRORS: &[ErrorDecl] = &[
        ErrorDecl::CANCELLED,
        ErrorDecl::permanent("NotCancelled", "max_heartbeats passed without cancellation"),
    ];
    type Input = WaitForCancelInput;
    type Output = Never;

    fn run(input: WaitForCancelInput, ctx: &Context) -> Result<Never, PluginError> {
        for i in 1..=input.max_heartbeats {
            if ctx.heartbeat(&json!({"waiting": i})) {
                return Err(
                    PluginError::cancelled(format!("cancelled after {i} heartbeats"))
                        .with_details(json!({"heartbeats": i})),
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(PluginError::permanent(
            "NotCancelled",
            format!("no cancellation after {} heartbeats", input.max_heartbeats),
        )
        .with_details(json!({"heartbeats": input.max_heartbeats})))
    }
}
