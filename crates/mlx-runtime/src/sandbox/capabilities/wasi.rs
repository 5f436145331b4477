//! WASI 0.2 as wasmtime-wasi implements it, deny-by-default: the families every plugin may
//! use (`wasi:sockets` is linked too, and denied at call: [`super::sockets`]). The context
//! itself (environment, preopened directories, stdout/stderr) is built per invocation by the
//! sandbox from the manifest.

use wasmtime::component::Linker;
use wasmtime_wasi::WasiView;

use super::Offer;

pub const IO: Offer = Offer::always("wasi:io/");
pub const CLI: Offer = Offer::always("wasi:cli/");
pub const CLOCKS: Offer = Offer::always("wasi:clocks/");
pub const RANDOM: Offer = Offer::always("wasi:random/");
/// Offered to all; only the directories the manifest grants (plus `/artifacts`, and
/// `/scratch` when asked for) exist, `open-at` is counted against `limits.max_open_files`
/// ([`super::open_files`]) and bytes written against `limits.disk_mb` ([`super::disk`]).
pub const FILESYSTEM: Offer = Offer::always("wasi:filesystem/");
pub fn add_to_linker<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)
}
