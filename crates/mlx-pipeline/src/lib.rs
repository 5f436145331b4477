//! Pipelines as data: a spec of params and steps, each a plugin operation or an
//! approval gate (a plugin step may fan out over a list), validated whole before anything runs. `expr` is the condition and reference
//! language the spec uses; `load` reads spec files (YAML, TOML, JSON); `state` is a run as a
//! pure state machine, which the worker's `PipelineWorkflow` drives.

pub mod expr;
pub mod load;
pub mod spec;
pub mod state;

pub use spec::{
    Best, MAX_ITEMS, OnFailure, Order, PipelineSpec, RetrySpec, SpecError, StepKind, StepSpec,
    TimeoutSpec,
};
pub use state::{
    CacheSource, Decision, ItemState, ParamChange, PipelineState, PipelineStatus, RunState,
    StartStep, StepResult, StepState, StepStatus,
};
