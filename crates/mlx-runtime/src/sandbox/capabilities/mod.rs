//! Host capabilities offered to guests, one module each. Each implements the generated WIT
//! host trait for [`crate::sandbox::GuestState`] by delegating to its own small state type.

pub mod activity;
pub mod config;
pub mod denials;
pub mod http;
pub mod http_policy;
pub mod log;
pub mod rate;
pub mod stdio;
pub mod tls;

use wasmtime::component::{HasSelf, Linker};

use crate::{bindings::PluginWorld, sandbox::GuestState};

impl crate::bindings::mlx::plugin::types::Host for crate::sandbox::GuestState {}

/// Links WASI and every capability the worker offers. Each is linked for every plugin; the
/// import policy ([`crate::plugin::imports`]) and each capability's grant decide what a
/// plugin may use.
pub fn add_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    // Only a manifest [http] grant lets a component import it or a request leave the host.
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    PluginWorld::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |s| s)?;
    Ok(())
}

/// Ways a guest can break the contract that make the host stop it. Raised as traps, classified
/// by [`crate::failure`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContractViolation {
    #[error("heartbeat details of {size} bytes exceed the plugin's limit of {limit} bytes")]
    HeartbeatTooLarge { size: usize, limit: usize },
    #[error("heartbeat details are not valid JSON: {0}")]
    HeartbeatNotJson(String),
}
