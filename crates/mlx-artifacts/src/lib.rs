//! A pipeline run's artifacts on object storage, so that any worker of a fleet can run any
//! step of the run.
//!
//! Per activity invocation the worker makes a private, empty working directory,
//! [`ArtifactStore::materialise`]s the run's committed files into it, runs the plugin with it
//! mounted at `/artifacts`, and on success [`ArtifactStore::commit`]s what changed. Private
//! directories keep concurrent fan-out items of one run apart, and let a retry see the inputs
//! its first attempt saw, never a half-written file.
//!
//! # Layout in the store
//!
//! Under the URL's prefix (`s3://bucket/prefix` → `prefix/`):
//!
//! - `blobs/sha256/<hex>`: file contents, named by their sha256. Writing one twice writes the
//!   same bytes, so commits never coordinate; a HEAD skips blobs already there. Files over
//!   8 MiB go up as multipart uploads streamed from disk.
//! - `runs/<run>/commits/<commit_id>.json`: one manifest per commit,
//!   `{"version":1,"committed_at_ns":…,"commit_id":…,"files":{"rel/path":{"sha256":…,"size":…}},"removed":[…]}`.
//!   Written after all its blobs and never changed: it alone makes files visible, so a commit
//!   cut short leaves at most unreferenced blobs.
//!
//! A run's files are its manifests merged in (`committed_at_ns`, `commit_id`) order: later
//! wins, `removed` deletes. Empty directories are not recorded (object stores have none).
//!
//! # Modules
//!
//! - `location`, `aws_profile`: store URL → client; credentials from the environment and the
//!   AWS CLI's shared files.
//! - `layout`: keys, names and their validation, the manifest, the merge.
//! - `cache`: this worker's blob and manifest cache, LRU within a size limit.
//! - `sync`: materialise and commit.
//! - `error`: [`StoreError`] and which failures are worth a retry.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use object_store::{ObjectStore, path::Path as Key};

mod aws_profile;
mod cache;
mod error;
mod layout;
mod location;
mod sync;
#[cfg(test)]
mod tests;

pub use error::StoreError;
pub use layout::{FileDigest, Snapshot};
pub use sync::Commit;

/// Files larger than this are uploaded in parts of this size: S3 takes at most 5 GiB in one
/// PUT, and a part is all that is ever held in memory.
pub const MULTIPART_THRESHOLD: u64 = 8 << 20;

/// A run-artifact store: an object store, a key prefix and this worker's local cache. Cheap
/// to clone; clones share the client and the cache.
#[derive(Clone, Debug)]
pub struct ArtifactStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    /// Names the store in the manifest cache's keys.
    pub url: String,
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Key,
    pub cache: cache::BlobCache,
}

impl ArtifactStore {
    /// `url`: `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix` (or
    /// `azure://`, `abfs(s)://`), `file:///abs/path`, or `memory:///prefix` (this process
    /// only). Credentials and endpoints come from the environment (`AWS_*`, `GOOGLE_*`,
    /// `AZURE_*`) and, for S3, from `~/.aws/credentials` and `~/.aws/config` when the
    /// environment holds no access key. `cache_dir` is this worker's blob cache, kept within
    /// `cache_max_bytes` (least recently used first).
    pub fn open(url: &str, cache_dir: &Path, cache_max_bytes: u64) -> Result<Self, StoreError> {
        let location = location::open(url)?;
        Self::with_object_store(
            url,
            location.store,
            location.prefix,
            cache_dir,
            cache_max_bytes,
        )
    }

    /// A store over a client built elsewhere (another backend, custom options, tests); `name`
    /// must identify it (it keys the manifest cache).
    pub fn with_object_store(
        name: &str,
        store: Arc<dyn ObjectStore>,
        prefix: Key,
        cache_dir: &Path,
        cache_max_bytes: u64,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            inner: Arc::new(Inner {
                url: name.to_string(),
                store,
                prefix,
                cache: cache::BlobCache::open(cache_dir, cache_max_bytes)?,
            }),
        })
    }

    /// Fills `work_dir` (empty or absent) with the run's committed files, copied from the
    /// local cache after downloading what it lacks. Fails, not retryably, if they add up to
    /// more than `max_bytes`: checked before anything is downloaded.
    pub async fn materialise(
        &self,
        run: &str,
        work_dir: &Path,
        max_bytes: u64,
    ) -> Result<Snapshot, StoreError> {
        let result = sync::materialise(&self.inner, run, work_dir, max_bytes).await;
        self.evict().await;
        result
    }

    /// Uploads every file under `work_dir` that is new or differs from `before`, then writes
    /// the commit manifest `commit_id` (the only thing that makes them visible); files of
    /// `before` that are gone are recorded as removed. Symbolic links and special files are
    /// refused by name. A commit with nothing written or removed writes no manifest.
    /// Committing again with the same `commit_id` (a retry) replaces that manifest.
    pub async fn commit(
        &self,
        run: &str,
        work_dir: &Path,
        before: &Snapshot,
        commit_id: &str,
    ) -> Result<Commit, StoreError> {
        let result = sync::commit(&self.inner, run, work_dir, before, commit_id).await;
        self.evict().await;
        result
    }

    /// The cache directory's blob path for a digest (whether or not it is there).
    pub fn cached_blob(&self, sha256: &str) -> PathBuf {
        self.inner.cache.blob_path(sha256)
    }

    async fn evict(&self) {
        let inner = self.inner.clone();
        let _ = tokio::task::spawn_blocking(move || inner.cache.evict()).await;
    }
}
