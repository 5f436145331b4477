//! What the operator granted this plugin in its manifest: `[config]` values and secrets.
//!
//! ```no_run
//! let region = mlx_plugin_sdk::config::get("region").unwrap_or_else(|| "eu-west-1".into());
//! let token = mlx_plugin_sdk::config::secret("api_token");
//! ```
//!
//! Off wasm (native unit tests) nothing is granted here: both return `None`. Read them through
//! [`crate::Context::config`] and [`crate::Context::secret`] instead, which a detached context
//! answers with what its test gave it.

/// The manifest's `[config]` value for `key`.
pub fn get(key: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    {
        crate::guest::bindings::mlx::plugin::config::get(key)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = key;
        None
    }
}

/// The secret the manifest grants under `name`, read by the host at the time of the call.
/// Keep it out of logs, errors and outputs: the host never reveals it, neither should you.
pub fn secret(name: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    {
        crate::guest::bindings::mlx::plugin::config::get_secret(name)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = name;
        None
    }
}
