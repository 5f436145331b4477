//! What an invocation holds until it is torn down ([`Held`]).

use tokio::sync::OwnedSemaphorePermit;
use wasmtime::Store;

use crate::{live::Live, sandbox::GuestState, sandbox::scratch::ScratchDir};

/// What an invocation holds from its start until it is torn down, released in the order of
/// the fields: the store (the guest's memory and open descriptors), then the scratch directory
/// (removed once nothing in the store has it open), then the descriptor permits (only once
/// the descriptors are closed), the plugin's concurrency slot and the count of what is alive.
///
/// The invocation fills it and its caller drops it, after the outcome has gone where it goes:
/// unmapping a guest's memory of some tens of megabytes takes milliseconds (3.5 ms for the
/// trainer's forest, 60 MB) that the outcome need not wait for.
#[derive(Default)]
pub(crate) struct Held {
    pub(super) store: Option<Store<GuestState>>,
    pub(super) scratch: Option<ScratchDir>,
    pub(super) descriptors: Option<OwnedSemaphorePermit>,
    pub(super) slot: Option<OwnedSemaphorePermit>,
    pub(super) active: Option<Live>,
}
