//! Disk: every byte a call writes to a file (in `/artifacts`, `/scratch` or a read-write
//! grant) is charged to `limits.disk_mb` before it is written. Without a quota one invocation
//! could fill the worker's disk, and every neighbour sharing it would fail. The write that
//! would pass the quota is refused and ends the call with a trap the host classifies as
//! `PluginDiskQuotaExceeded` (an error code instead could be swallowed and retried in a loop).
//!
//! Charging before writing keeps the bound exact for file data: what the call wrote never
//! exceeds the quota. It is a quota on bytes written, not on space held: an overwrite is
//! charged again and a removed file refunds nothing, so it only ever over-estimates what the
//! call leaves on disk. `set-size` is charged its growth (a sparse extension costs no blocks
//! yet, but could once written through another path), and a new directory one block.
//!
//! The charges are made in the counted `wasi:filesystem/types` ([`super::open_files`]):
//! `write` there, and streams made by `write-via-stream` and `append-via-stream` are wrapped
//! in a [`ChargedOutputStream`], so `write`, `blocking-write-and-flush`, `write-zeroes` and
//! `splice` into a file all pass through one charge.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};

use bytes::Bytes;
use wasmtime_wasi::{
    async_trait,
    p2::{DynOutputStream, OutputStream, Pollable, StreamError, StreamResult},
};

/// Default `limits.disk_mb`: room for a data step's artifacts and scratch files, a small part
/// of a worker's disk, so several calls at once cannot fill it.
pub const DEFAULT_DISK_MB: u64 = 1024;
/// The most a manifest may ask for (64 GiB).
pub const DISK_MB_CEILING: u64 = 64 << 10;
/// What a new directory is charged: one filesystem block, what it takes on common
/// filesystems. Without it a call could fill the disk with empty directories.
pub const DIRECTORY_BYTES: u64 = 4096;

/// The bytes one invocation may still write. Shared (by `Arc`) with the file streams it made,
/// which live in the resource table, out of reach of the store's other state.
#[derive(Debug, Clone)]
pub struct DiskQuota(Arc<Budget>);

#[derive(Debug)]
struct Budget {
    limit: u64,
    used: AtomicU64,
    /// A write was refused for passing the limit.
    hit: AtomicBool,
}

/// The trap that ends an invocation writing more than its quota.
#[derive(Debug, thiserror::Error)]
#[error("plugin tried to write more than {limit_mb} MiB to disk in one call (limits.disk_mb)")]
pub struct DiskQuotaExceeded {
    pub limit_mb: u64,
}

impl DiskQuota {
    pub fn new(limit_bytes: u64) -> Self {
        Self(Arc::new(Budget {
            limit: limit_bytes,
            used: AtomicU64::new(0),
            hit: AtomicBool::new(false),
        }))
    }

    pub fn limit_bytes(&self) -> u64 {
        self.0.limit
    }

    pub fn used(&self) -> u64 {
        self.0.used.load(Ordering::Relaxed)
    }

    pub(crate) fn hit(&self) -> bool {
        self.0.hit.load(Ordering::Relaxed)
    }

    /// Charges `bytes` about to be written, or refuses the whole write (charging nothing) if
    /// it would pass the limit.
    pub(crate) fn charge(&self, bytes: u64) -> Result<(), DiskQuotaExceeded> {
        let budget = &self.0;
        let charged = budget
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes)
                    .filter(|&after| after <= budget.limit)
            });
        if charged.is_err() {
            budget.hit.store(true, Ordering::Relaxed);
            return Err(DiskQuotaExceeded {
                limit_mb: budget.limit >> 20,
            });
        }
        Ok(())
    }
}

/// A file's output stream whose every write is charged to the call's quota first.
pub(crate) struct ChargedOutputStream {
    pub(crate) inner: DynOutputStream,
    pub(crate) quota: DiskQuota,
    /// The host memory its pending write may pin ([`super::host_memory`]).
    pub(crate) _host: super::host_memory::HostCharge,
}

impl ChargedOutputStream {
    fn charge(&self, bytes: usize) -> StreamResult<()> {
        self.quota
            .charge(bytes as u64)
            .map_err(|e| StreamError::Trap(e.into()))
    }
}

#[async_trait]
impl OutputStream for ChargedOutputStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.charge(bytes.len())?;
        self.inner.write(bytes)
    }

    // Forwarded (not the trait's default) to keep the file stream's direct write path.
    async fn blocking_write_and_flush(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.charge(bytes.len())?;
        self.inner.blocking_write_and_flush(bytes).await
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.inner.check_write()
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await
    }
}

#[async_trait]
impl Pollable for ChargedOutputStream {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_past_the_quota_is_refused_whole() {
        let quota = DiskQuota::new(10);
        quota.charge(6).unwrap();
        assert!(!quota.hit());
        let refused = quota.charge(5).unwrap_err();
        assert_eq!(refused.limit_mb, 0);
        assert!(quota.hit());
        assert_eq!(quota.used(), 6, "a refused write is not charged");
        quota.charge(4).unwrap();
        assert_eq!(quota.used(), 10);
        assert!(quota.charge(u64::MAX).is_err(), "no overflow");
    }
}
