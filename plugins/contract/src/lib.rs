//! `contract-rust`: the operations of plugins/CONTRACT.md, written with the Rust SDK the way a
//! plugin author would. `tests/tests/e2e/contract.rs` runs one table of cases against this
//! plugin and its Python and JavaScript twins, so every SDK keeps the same behaviour.

mod calls;
mod granted;
mod progress;
mod reach;
#[cfg(test)]
mod tests;

pub use calls::{Echo, Fail, Throw};
pub use granted::{Config, Log, Secret};
pub use progress::{Checkpoint, WaitForCancel};
pub use reach::{Connect, ReadFile};

mlx_plugin_sdk::plugin!(ContractRust {
    name: "contract-rust",
    version: env!("CARGO_PKG_VERSION"),
    description: "The contract operations (plugins/CONTRACT.md) in Rust: one behaviour in every \
                  language.",
    operations: [
        Echo,
        Fail,
        Throw,
        Checkpoint,
        WaitForCancel,
        Config,
        Secret,
        Log,
        Connect,
        ReadFile
    ],
});
