//! MLX Plugin Worker: a Temporal worker that runs every activity in a sandboxed
//! WebAssembly component.
//!
//! Map of the crate:
//! - [`contract`]: domain types of the plugin contract (`wit/`); [`bindings`] generates the WIT
//!   bindings and converts them to those types at the edge.
//! - [`engine`]: the wasmtime engine (pooling allocator, epoch interruption) and its ticker.
//! - [`manifest`] and [`limits`]: what an operator grants each plugin, deny-by-default.
//! - [`sandbox`]: one fresh store per invocation with its WASI context and limiter.
//! - [`capabilities`]: host interfaces offered to guests (log, activity, stdio).
//! - [`imports`]: load-time policy over what a component imports.
//! - [`runtime`]: load (compile, link, describe) and invoke (race deadline and cancellation);
//!   `outcome` turns what a call returned or trapped with into a result.
//! - [`registry`]: plugins by described name; [`inspect`]: the operator's report on a file.
//! - [`failure`]: every way an invocation fails, classified for Temporal.
//! - [`temporal`]: the `plugin_activity` activity, the workflows, and the worker loop.
//! - [`telemetry`]: logging setup.

mod bindings;
pub mod capabilities;
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
pub mod manifest;
pub mod metrics;
mod outcome;
pub mod registry;
pub mod reload;
pub mod run_args;
pub mod runtime;
pub mod sandbox;
pub mod telemetry;
pub mod temporal;
