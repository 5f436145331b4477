//! Host memory: what a guest makes the worker hold for it outside its own linear memory.
//! `limits.memory_mb` bounds the instance, but WASI calls make the host allocate on the
//! guest's behalf: every file stream can pin a 64 KiB read or write buffer in a background
//! task, and a directory listing is read into host memory whole. Without a budget, one
//! invocation with 128 MiB of memory drove the worker's RSS up by 500 MiB with streams alone.
//!
//! Each such holding is charged to the invocation's `limits.host_memory_mb` while it lives
//! ([`HostCharge`] refunds on drop) and the one that would pass it ends the call with a trap
//! the host classifies as `PluginHostMemoryExceeded`. The same budget is the store's hostcall
//! fuel, wasmtime's bound on what one call into the host may copy out of the guest (strings
//! and lists, counted at their size on the host: a `poll` list or a log call's fields cost
//! several times their guest bytes), so no single call's arguments can pass it either
//! (`crate::sandbox::new_store`). Bounded by construction instead: log calls are read in place
//! and only what is written is copied ([`super::log`]), heartbeat details are kept as checked
//! JSON text, never a parsed tree ([`super::activity`]), and a result is copied out once and
//! refused over `limits.max_output_kb` before it is parsed.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use bytes::Bytes;
use wasmtime_wasi::{
    async_trait,
    p2::{DynInputStream, InputStream, Pollable, StreamResult},
};

/// Default `limits.host_memory_mb`: a stream for each of the default 256 open files with room
/// to spare, a small part of what the default 512 MiB of linear memory costs.
pub const DEFAULT_HOST_MEMORY_MB: u64 = 32;
/// The most a manifest may ask for (1 GiB).
pub const HOST_MEMORY_MB_CEILING: u64 = 1 << 10;

/// What a live file stream is charged: the largest buffer wasmtime-wasi pins for one pending
/// read (its `MAX_READ_SIZE_ALLOC`) or write (its file write capacity), 64 KiB each.
pub const STREAM_BYTES: usize = 64 << 10;
/// What one directory entry of a listing is charged beyond its name: the entry, its `Result`
/// and the allocator's overhead.
pub const DIRECTORY_ENTRY_BYTES: usize = 64;

/// The host bytes one invocation holds, shared (by `Arc`) with the streams it made, which
/// live in the resource table out of reach of the store's other state.
#[derive(Debug, Clone)]
pub struct HostMemory(Arc<Ledger>);

#[derive(Debug)]
struct Ledger {
    limit: usize,
    used: AtomicUsize,
    /// A charge was refused for passing the limit.
    hit: AtomicBool,
}

/// The trap that ends an invocation making the host hold more than its budget.
#[derive(Debug, thiserror::Error)]
#[error(
    "plugin made the worker hold more than {limit_mb} MiB for it outside its memory \
     ({what}) (limits.host_memory_mb)"
)]
pub struct HostMemoryExceeded {
    pub limit_mb: u64,
    pub what: &'static str,
}

/// Bytes held for the guest; given back when dropped.
#[derive(Debug)]
pub struct HostCharge {
    ledger: Arc<Ledger>,
    bytes: usize,
}

impl Drop for HostCharge {
    fn drop(&mut self) {
        self.ledger.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl HostMemory {
    pub fn new(limit_bytes: u64) -> Self {
        Self(Arc::new(Ledger {
            limit: usize::try_from(limit_bytes).unwrap_or(usize::MAX),
            used: AtomicUsize::new(0),
            hit: AtomicBool::new(false),
        }))
    }

    pub fn limit_bytes(&self) -> u64 {
        self.0.limit as u64
    }

    pub(crate) fn hit(&self) -> bool {
        self.0.hit.load(Ordering::Relaxed)
    }

    /// Charges `bytes` for `what`, or refuses (charging nothing) if the budget would pass its
    /// limit.
    pub(crate) fn charge(
        &self,
        bytes: usize,
        what: &'static str,
    ) -> Result<HostCharge, HostMemoryExceeded> {
        let ledger = &self.0;
        let charged = ledger
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes)
                    .filter(|&after| after <= ledger.limit)
            });
        match charged {
            Ok(_) => Ok(HostCharge {
                ledger: ledger.clone(),
                bytes,
            }),
            Err(_) => {
                ledger.hit.store(true, Ordering::Relaxed);
                Err(HostMemoryExceeded {
                    limit_mb: (ledger.limit >> 20) as u64,
                    what,
                })
            }
        }
    }
}

/// A file's input stream, charged [`STREAM_BYTES`] for as long as it lives.
pub(crate) struct ChargedInputStream {
    pub(crate) inner: DynInputStream,
    pub(crate) _charge: HostCharge,
}

#[async_trait]
impl InputStream for ChargedInputStream {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        self.inner.read(size)
    }

    // Forwarded (not the trait's defaults) to keep the file stream's direct read paths.
    async fn blocking_read(&mut self, size: usize) -> StreamResult<Bytes> {
        self.inner.blocking_read(size).await
    }

    fn skip(&mut self, nelem: usize) -> StreamResult<usize> {
        self.inner.skip(nelem)
    }

    async fn blocking_skip(&mut self, nelem: usize) -> StreamResult<usize> {
        self.inner.blocking_skip(nelem).await
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await
    }
}

#[async_trait]
impl Pollable for ChargedInputStream {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_charge_is_given_back_when_what_it_paid_for_is_dropped() {
        let budget = HostMemory::new(100);
        let first = budget.charge(60, "a").unwrap();
        let refused = budget.charge(41, "b").unwrap_err();
        assert_eq!(refused.what, "b");
        assert!(budget.hit());
        drop(first);
        let again = budget.charge(100, "c").unwrap();
        drop(again);
        assert!(budget.charge(usize::MAX, "d").is_err(), "no overflow");
        assert!(
            budget.charge(100, "e").is_ok(),
            "a refused charge holds nothing"
        );
    }
}
