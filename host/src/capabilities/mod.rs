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

impl crate::bindings::mlx::plugin::types::Host for crate::sandbox::GuestState {}

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
