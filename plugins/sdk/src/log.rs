//! Structured logging into the worker's logs, where each line is tagged with the invocation's
//! workflow and activity.
//!
//! ```no_run
//! let epoch = 10;
//! mlx_plugin_sdk::log::info("epoch done", &[("epoch", &epoch), ("loss", &0.25)]);
//! ```
//!
//! Off wasm (native unit tests) lines go to stderr instead.

use std::fmt::Display;

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Key/value pairs attached to a line; values are formatted with `Display`.
pub type Fields<'a> = &'a [(&'a str, &'a dyn Display)];

/// Logs `message` with `fields` at `level`.
pub fn log(level: Level, message: &str, fields: Fields<'_>) {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::guest::bindings::mlx::plugin::log as wit;
        let level = match level {
            Level::Trace => wit::Level::Trace,
            Level::Debug => wit::Level::Debug,
            Level::Info => wit::Level::Info,
            Level::Warn => wit::Level::Warn,
            Level::Error => wit::Level::Error,
        };
        let fields: Vec<wit::Field> = fields
            .iter()
            .map(|(key, value)| wit::Field {
                key: (*key).to_string(),
                value: value.to_string(),
            })
            .collect();
        wit::log(level, message, &fields);
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let fields: String = fields.iter().map(|(k, v)| format!(" {k}={v}")).collect();
        eprintln!("[{level:?}] {message}{fields}");
    }
}

pub fn trace(message: &str, fields: Fields<'_>) {
    log(Level::Trace, message, fields);
}

pub fn debug(message: &str, fields: Fields<'_>) {
    log(Level::Debug, message, fields);
}

pub fn info(message: &str, fields: Fields<'_>) {
    log(Level::Info, message, fields);
}

pub fn warn(message: &str, fields: Fields<'_>) {
    log(Level::Warn, message, fields);
}

pub fn error(message: &str, fields: Fields<'_>) {
    log(Level::Error, message, fields);
}
