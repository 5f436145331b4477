//! MLX Plugin Worker: a Temporal worker that runs every activity in a sandboxed
//! WebAssembly component.
//!
//! Map of the crate:
//! - [`contract`]: domain types of the plugin contract (`wit/`); [`bindings`] generates the WIT
//!   bindings and converts them to those types at the edge.
//! - [`engine`]: the wasmtime engine (pooling allocator, epoch interruption) and its ticker.
//! - [`manifest`] and [`limits`]: what an operator grants each plugin, deny-by-default.
//! - [`sandbox`]: one fresh store per invocation with its WASI context and limiter.
//! - [`capabilities`]: host interfaces offered to guests (log, activity, config, stdio, HTTP),
//!   with their budgets, rate limits and the record of refusals.
//! - [`imports`]: load-time policy over what a component imports.
//! - [`runtime`]: invoke (race deadline and cancellation); `loader`: load (compile, link,
//!   describe);
//!   `outcome` turns what a call returned or trapped with into a result; [`compile_cache`]
//!   keeps compiled components across restarts.
//! - [`registry`]: plugins by described name; [`reload`] keeps it in line with the plugins
//!   directory; [`inspect`]: the operator's report on a file.
//! - [`failure`]: every way an invocation fails, classified for Temporal.
//! - [`temporal`]: the `plugin_activity` activity, the workflows, and the worker loop.
//! - [`config`] and [`run_args`]: the daemon's configuration (file, environment, flags);
//!   [`daemon`]: the long-running worker (health, metrics, drain); [`dev`]: dev server + worker.
//! - [`pipeline`]: pipelines as data (spec, validation, conditions and references, files, the
//!   run's state machine);
//!   [`cli`]: the `pipeline` and `schedule` commands that start, watch and steer runs.
//! - [`telemetry`]: logging and trace export; [`metrics`]: per-plugin metrics; [`health`]:
//!   liveness and readiness endpoints.

mod bindings;
pub mod capabilities;
pub mod cli;
pub mod compile_cache;
pub mod config;
pub mod contract;
pub mod daemon;
pub mod dev;
pub mod engine;
pub mod failure;
pub mod health;
pub mod imports;
pub mod inspect;
pub mod limits;
mod loader;
pub mod manifest;
pub mod metrics;
mod outcome;
pub mod pipeline;
pub mod registry;
pub mod reload;
pub mod run_args;
pub mod runtime;
pub mod sandbox;
pub mod telemetry;
pub mod temporal;
