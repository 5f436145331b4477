//! Outbound HTTP through `wasi:http` (cargo feature `http`): [`get`], and [`post`] and [`put`]
//! with a request body.
//!
//! The feature is off by default because the host refuses to load a component importing
//! `wasi:http` unless its manifest has an `[http]` grant; a plugin that does not fetch
//! anything should not need one. The host decides where a request may go (allow list,
//! resolved-address checks) and caps response bodies at `[http] max_response_kb`.
//!
//! ```no_run
//! use mlx_plugin_sdk::{PluginError, http};
//!
//! fn fetch(url: &str) -> Result<u64, PluginError> {
//!     let url = http::parse(url).map_err(|e| PluginError::invalid_input("InvalidUrl", e))?;
//!     let mut response = http::get(&url, &[("accept", "text/csv")])?;
//!     let mut bytes = 0;
//!     while let Some(chunk) = response.body().chunk(64 * 1024)? {
//!         bytes += chunk.len() as u64; // write it somewhere instead of keeping it
//!     }
//!     Ok(bytes)
//! }
//! ```
//!
//! Off wasm (native unit tests) only [`parse`] and the error types are usable: a request
//! panics, since there is no host to send it.

mod client;
mod error;
mod url;

pub use client::{Body, MAX_CHUNK, Response, get, post, put};
pub use error::{HttpError, HttpErrorKind};
pub use url::{Url, parse};
