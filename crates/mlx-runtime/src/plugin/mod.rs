//! A plugin before it runs: what its manifest grants ([`manifest`], [`limits`]), whether its
//! imports are acceptable ([`imports`]), the validators of its operations' inputs
//! ([`input_schema`]), compiling it once ([`compile_cache`]), in a child process
//! ([`compiler`]), and loading it
//! ([`loader`]); then the [`registry`] of loaded plugins by name, kept in line with the plugins
//! directory by [`reload`], and the operator's report on a file ([`inspect`]).

pub mod compile_cache;
pub mod compile_cache_evict;
pub mod compiler;
pub mod imports;
pub mod input_schema;
pub mod inspect;
pub mod limits;
pub mod loader;
pub mod manifest;
pub mod registry;
pub mod reload;
pub mod schema_budget;

pub use loader::{CompileStats, LoadError, LoadedPlugin};
