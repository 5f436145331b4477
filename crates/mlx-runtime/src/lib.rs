//! The plugin runtime: everything about running a plugin that is not Temporal. The worker
//! crate (`mlx-worker`) adds Temporal, the daemon and the CLI on top; nothing here depends on
//! them, and metrics leave through the [`observer::Observer`] trait.
//!
//! Layers, each using only those above it:
//! - [`contract`]: domain types of the plugin contract (`wit/`); `bindings` generates the WIT
//!   bindings (the one place) and converts them to those types at the edge. [`failure`]: every
//!   way an invocation fails, classified (type name, retryable).
//! - [`engine`]: the wasmtime engine (pooling allocator, epoch interruption) and its ticker.
//!   [`child`]: what the worker's child processes (compiling, isolated invocations) share.
//! - [`sandbox`]: one fresh store per invocation; [`sandbox::capabilities`] holds each host
//!   interface offered to guests, one module each with its state, host trait, manifest
//!   section and budget, and the one list of what the worker offers.
//! - [`plugin`]: a plugin before it runs: manifest and limits, import policy, compile cache,
//!   loading, the registry of loaded plugins, hot reload, and `inspect`.
//! - [`isolated`]: an invocation in a child process the worker kills (`isolation =
//!   "process"`), the worker's half and the wire format.
//! - [`host`]: [`PluginHost`], which loads plugins and runs each invocation in a fresh
//!   sandbox, raced against its deadline and cancellation (or in a child: [`host::serve`] is
//!   the child's half).

mod bindings;
pub mod child;
pub mod contract;
pub mod engine;
pub mod failure;
pub mod host;
pub mod isolated;
pub mod live;
pub mod observer;
mod outcome;
pub mod plugin;
pub mod sandbox;

pub use host::{HostSettings, Invocation, PluginHost};
