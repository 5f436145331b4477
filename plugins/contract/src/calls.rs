//! `echo`, `fail` and `throw`: a call that succeeds, one that fails on purpose, one that traps.

use mlx_plugin_sdk::{
    Context, ErrorDecl, ErrorKind, JsonSchema, Never, Operation, PluginError, serde_json::Value,
};
use serde::{Deserialize, Serialize};

pub struct Echo;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EchoInput {
    /// Any JSON value, returned as it is.
    value: Value,
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 10))]
    times: u32,
}

fn one() -> u32 {
    1
}

#[derive(Serialize, JsonSchema)]
pub struct EchoOutput {
    value: Value,
    times: u32,
    /// The invocation's attempt, from its context.
    #[schemars(range(min = 1))]
    attempt: u32,
}

impl Operation for Echo {
    const NAME: &str = "echo";
    const DOC: &str = "Returns its input and the attempt number; does nothing else (the trivial \
                       call the benchmarks time).";
    type Input = EchoInput;
    type Output = EchoOutput;

    fn run(input: EchoInput, ctx: &Context) -> Result<EchoOutput, PluginError> {
        Ok(EchoOutput {
            value: input.value,
            times: input.times,
            attempt: ctx.attempt(),
        })
    }
}

pub struct Fail;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailInput {
    kind: Kind,
    /// The error's type name.
    #[serde(rename = "type")]
    #[schemars(length(min = 1))]
    type_name: String,
    message: String,
    details: Option<serde_json::Map<String, Value>>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Kind {
    InvalidInput,
    Retryable,
    Permanent,
}

impl Operation for Fail {
    const NAME: &str = "fail";
    const DOC: &str = "Fails with the SDK's typed error of `kind`, with the given `type`, \
                       `message` and `details`.";
    const ERRORS: &[ErrorDecl] = &[
        ErrorDecl::any(ErrorKind::InvalidInput, "the type the input names"),
        ErrorDecl::any(ErrorKind::Retryable, "the type the input names"),
        ErrorDecl::any(ErrorKind::Permanent, "the type the input names"),
    ];
    type Input = FailInput;
    type Output = Never;

    fn run(input: FailInput, _ctx: &Context) -> Result<Never, PluginError> {
        let make = match input.kind {
            Kind::InvalidInput => PluginError::invalid_input,
            Kind::Retryable => PluginError::retryable,
            Kind::Permanent => PluginError::permanent,
        };
        let error = make(input.type_name, input.message);
        Err(match input.details {
            Some(details) => error.with_details(Value::Object(details)),
            None => error,
        })
    }
}

pub struct Throw;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThrowInput {
    message: String,
}

impl Operation for Throw {
    const NAME: &str = "throw";
    const DOC: &str = "Panics with `message`: in Rust an unexpected failure is a trap, which the \
                       worker reports as PluginTrapped.";
    type Input = ThrowInput;
    type Output = Never;

    fn run(input: ThrowInput, _ctx: &Context) -> Result<Never, PluginError> {
        panic!("{}", input.message)
    }
}
