//! Materialise (store → cache → work dir) and commit (work dir → cache → store).

use std::{
    collections::BTreeMap,
    fs::File,
    io::Read,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures::{StreamExt, TryStreamExt, stream};
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart, path::Path as Key};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::{
    Inner, MULTIPART_THRESHOLD, StoreError,
    cache::hex,
    layout::{
        FileDigest, MANIFEST_VERSION, Manifest, Snapshot, blob_key, commit_key, commits_prefix,
        merge, validate_id, validate_rel,
    },
};

/// Files moved at once per call: enough to hide a round trip's latency, few enough that a
/// worker running several activities does not open hundreds of connections.
const CONCURRENCY: usize = 4;
/// Multipart parts in flight per file: this many parts is all a large file ever holds in
/// memory.
const PARTS_IN_FLIGHT: usize = 2;
/// How long a refused completion waits for the blob an earlier completion of the same upload
/// may still be assembling: object_store's own request timeout, which the earlier one had.
const COMPLETION_GRACE: Duration = Duration::from_secs(30);
/// A manifest is read whole; one this large is not one this crate wrote for a sane run.
const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// What a commit wrote: the files new or changed since the snapshot it started from, the
/// files it removed, and which of them had to be uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub commit_id: String,
    pub committed_at_ns: u64,
    pub written: BTreeMap<String, FileDigest>,
    pub removed: Vec<String>,
    /// Blobs sent to the store (the others were there already) and their bytes.
    pub uploaded_blobs: usize,
    pub uploaded_bytes: u64,
    /// The manifest's key; `None` when nothing changed and so none was written.
    pub manifest_key: Option<String>,
}

pub(crate) async fn materialise(
    inner: &Arc<Inner>,
    run: &str,
    work_dir: &Path,
    max_bytes: u64,
) -> Result<Snapshot, StoreError> {
    validate_id("run", run)?;
    let snapshot = merge(load_manifests(inner, run).await?);
    let total = snapshot.total_bytes();
    if total > max_bytes {
        return Err(StoreError::TooLarge {
            run: run.to_string(),
            total,
            max: max_bytes,
        });
    }
    tokio::fs::create_dir_all(work_dir)
        .await
        .map_err(|e| StoreError::local("creating", work_dir, e))?;
    // Owned items and clones in each future: futures borrowing from the closure's arguments
    // are not `Send` for every lifetime, which a Temporal activity future must be.
    stream::iter(snapshot.files.clone())
        .map(|(rel, digest)| {
            let (inner, dest) = (inner.clone(), work_dir.join(&rel));
            async move {
                let blob = fetch_blob(&inner, &digest).await?;
                // A copy, never a link: a plugin may write to its inputs, and the cache (and the
                // other runs sharing its blobs) must not see that.
                blocking(move || {
                    if let Some(parent) = dest.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(|e| StoreError::local("creating", parent, e))?;
                    }
                    std::fs::copy(&blob, &dest)
                        .map(drop)
                        .map_err(|e| StoreError::local("copying to", dest, e))
                })
                .await
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(snapshot)
}

async fn load_manifests(inner: &Inner, run: &str) -> Result<Vec<Manifest>, StoreError> {
    let prefix = commits_prefix(&inner.prefix, run);
    let listed: Vec<_> = inner
        .store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| StoreError::remote("listing", &prefix, e))?;
    stream::iter(listed)
        // Only `<commit>.json` directly in the folder: anything else is not ours to read.
        .filter(|meta| {
            let ours = meta.location.parts_count() == prefix.parts_count() + 1
                && meta.location.extension() == Some("json");
            async move { ours }
        })
        .map(|meta| load_manifest(inner, run, meta.location, meta.size))
        .buffer_unordered(CONCURRENCY * 2)
        .try_collect()
        .await
}

async fn load_manifest(
    inner: &Inner,
    run: &str,
    key: Key,
    size: u64,
) -> Result<Manifest, StoreError> {
    let cached = inner.cache.manifest_path(&inner.url, key.as_ref());
    if let Ok(bytes) = std::fs::read(&cached)
        && let Ok(m) = Manifest::parse(key.as_ref(), &bytes)
    {
        inner.cache.touch(&cached);
        return Ok(m);
    }
    if size > MAX_MANIFEST_BYTES {
        return Err(StoreError::BadManifest {
            key: key.to_string(),
            reason: format!("{size} bytes, more than {MAX_MANIFEST_BYTES}"),
        });
    }
    let bytes = inner
        .store
        .get(&key)
        .await
        .map_err(|e| StoreError::remote("reading", &key, e))?
        .bytes()
        .await
        .map_err(|e| StoreError::remote("reading", &key, e))?;
    let m = Manifest::parse(key.as_ref(), &bytes)?;
    if commit_key(&inner.prefix, run, &m.commit_id) != key {
        return Err(StoreError::BadManifest {
            key: key.to_string(),
            reason: format!("it names commit {:?}, not its own", m.commit_id),
        });
    }
    cache_manifest(inner, &key, &bytes);
    Ok(m)
}

/// Best effort: without it the manifest is only downloaded again.
fn cache_manifest(inner: &Inner, key: &Key, bytes: &[u8]) {
    let path = inner.cache.manifest_path(&inner.url, key.as_ref());
    if let Ok(mut tmp) = inner.cache.temp_for(&path)
        && tmp.write_all(bytes).is_ok()
    {
        let _ = tmp.persist(&path);
    }
}

/// The blob's path in the cache, downloaded first if missing: streamed to a temporary file,
/// hashed on the way, renamed into place only if size and sha256 match the manifest.
async fn fetch_blob(inner: &Inner, digest: &FileDigest) -> Result<PathBuf, StoreError> {
    let path = inner.cache.blob_path(&digest.sha256);
    if inner.cache.touch(&path) {
        return Ok(path);
    }
    let key = blob_key(&inner.prefix, &digest.sha256);
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.to_string(),
        reason,
    };
    let mut body = inner
        .store
        .get(&key)
        .await
        .map_err(|e| StoreError::remote("downloading", &key, e))?
        .into_stream();
    let mut tmp = inner.cache.temp_for(&path)?;
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| StoreError::remote("downloading", &key, e))?;
        received += chunk.len() as u64;
        // Never write more than the manifest promised: the cache's limit counts on it.
        if received > digest.size {
            return Err(corrupt(format!(
                "more than the {} bytes expected",
                digest.size
            )));
        }
        hasher.update(&chunk);
        tmp.write_all(&chunk)?;
    }
    if received != digest.size {
        return Err(corrupt(format!(
            "{received} bytes, expected {}",
            digest.size
        )));
    }
    let actual = hex(&hasher.finalize());
    if actual != digest.sha256 {
        return Err(corrupt(format!("content has sha256 {actual}")));
    }
    tmp.persist(&path)?;
    Ok(path)
}

pub(crate) async fn commit(
    inner: &Arc<Inner>,
    run: &str,
    work_dir: &Path,
    before: &Snapshot,
    commit_id: &str,
) -> Result<Commit, StoreError> {
    validate_id("run", run)?;
    validate_id("commit id", commit_id)?;
    let root = work_dir.to_path_buf();
    let files = blocking(move || walk(&root)).await?;
    let present: Vec<String> = files.iter().map(|(rel, _)| rel.clone()).collect();

    let before_files = Arc::new(before.files.clone());
    let changed: Vec<(String, FileDigest, u64)> = stream::iter(files)
        .map(|(rel, path)| {
            let (inner, before_files) = (inner.clone(), before_files.clone());
            async move {
                let hashed = path.clone();
                let digest = blocking(move || hash_file(&hashed)).await?;
                if before_files.get(&rel) == Some(&digest) {
                    return Ok(None);
                }
                let (cache, sha) = (inner.clone(), digest.sha256.clone());
                let cached = blocking(move || cache.cache.insert_file(&path, &sha)).await?;
                let uploaded = upload_blob(&inner, &digest, &cached).await?;
                Ok::<_, StoreError>(Some((rel, digest, uploaded)))
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_filter_map(|x| async move { Ok(x) })
        .try_collect()
        .await?;

    let removed: Vec<String> = before
        .files
        .keys()
        .filter(|rel| present.binary_search(rel).is_err())
        .cloned()
        .collect();
    let uploaded_blobs = changed.iter().filter(|(_, _, up)| *up > 0).count();
    let uploaded_bytes = changed.iter().map(|(_, _, up)| up).sum();
    let written: BTreeMap<String, FileDigest> =
        changed.into_iter().map(|(rel, d, _)| (rel, d)).collect();
    let committed_at_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let mut commit = Commit {
        commit_id: commit_id.to_string(),
        committed_at_ns,
        written,
        removed,
        uploaded_blobs,
        uploaded_bytes,
        manifest_key: None,
    };
    if commit.written.is_empty() && commit.removed.is_empty() {
        return Ok(commit);
    }

    let manifest = Manifest {
        version: MANIFEST_VERSION,
        committed_at_ns,
        commit_id: commit_id.to_string(),
        files: commit.written.clone(),
        removed: commit.removed.clone(),
    };
    let bytes = serde_json::to_vec(&manifest).expect("a manifest serialises");
    let key = commit_key(&inner.prefix, run, commit_id);
    // Last, and the only write that makes the blobs above part of the run.
    inner
        .store
        .put(&key, PutPayload::from(bytes.clone()))
        .await
        .map_err(|e| StoreError::remote("writing", &key, e))?;
    cache_manifest(inner, &key, &bytes);
    commit.manifest_key = Some(key.to_string());
    Ok(commit)
}

/// The regular files under `root`, sorted by relative path. A symbolic link is refused, not
/// followed: it could point anywhere on the worker's disk. Absent means empty.
fn walk(root: &Path) -> Result<Vec<(String, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    if !root.exists() {
        return Ok(out);
    }
    let mut dirs = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel_dir)) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| StoreError::local("listing", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::local("listing", &dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(StoreError::InvalidName {
                    what: "artifact path",
                    name: format!("{rel_dir}/{}", name.to_string_lossy()),
                    reason: "must be UTF-8",
                });
            };
            let rel = if rel_dir.is_empty() {
                name.to_string()
            } else {
                format!("{rel_dir}/{name}")
            };
            // file_type() does not follow links.
            let kind = entry
                .file_type()
                .map_err(|e| StoreError::local("reading", entry.path(), e))?;
            if kind.is_symlink() {
                return Err(StoreError::Symlink { path: rel });
            } else if kind.is_dir() {
                dirs.push((entry.path(), rel));
            } else if kind.is_file() {
                validate_rel(&rel)?;
                out.push((rel, entry.path()));
            } else {
                return Err(StoreError::NotRegular { path: rel });
            }
        }
    }
    out.sort();
    Ok(out)
}

fn hash_file(path: &Path) -> Result<FileDigest, StoreError> {
    let mut file = File::open(path).map_err(|e| StoreError::local("reading", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| StoreError::local("reading", path, e))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok(FileDigest {
        sha256: hex(&hasher.finalize()),
        size,
    })
}

/// Puts the blob unless the store has it; returns the bytes sent (0 if it was there).
async fn upload_blob(inner: &Inner, digest: &FileDigest, path: &Path) -> Result<u64, StoreError> {
    let key = blob_key(&inner.prefix, &digest.sha256);
    match inner.store.head(&key).await {
        // A blob of another size under this name is a broken upload: write it again.
        Ok(meta) if meta.size == digest.size => return Ok(0),
        Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(StoreError::remote("checking", &key, e)),
    }
    let local = |e| StoreError::local("reading", path, e);
    if digest.size <= MULTIPART_THRESHOLD {
        let bytes = tokio::fs::read(path).await.map_err(local)?;
        inner
            .store
            .put(&key, PutPayload::from(bytes))
            .await
            .map_err(|e| StoreError::remote("uploading", &key, e))?;
        return Ok(digest.size);
    }
    let upload = inner
        .store
        .put_multipart(&key)
        .await
        .map_err(|e| StoreError::remote("starting upload", &key, e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, MULTIPART_THRESHOLD as usize);
    let sent = async {
        let mut file = tokio::fs::File::open(path).await.map_err(local)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).await.map_err(local)?;
            if n == 0 {
                return Ok(());
            }
            writer
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(|e| StoreError::remote("uploading", &key, e))?;
            writer.write(&buf[..n]);
        }
    }
    .await;
    match sent {
        Ok(()) => match writer.finish().await {
            Ok(_) => Ok(digest.size),
            Err(e) => completed_anyway(inner, &key, digest, e).await,
        },
        Err(e) => {
            // Parts of an abandoned upload cost storage until aborted (or a lifecycle rule).
            let _ = writer.abort().await;
            Err(e)
        }
    }
}

/// A completion reported failed, which may have completed. object_store sends a completion
/// again when the connection drops before its answer (or the answer times out), and a server
/// that finished the first one refuses the second, since the upload's id is gone: s3s-fs and
/// MinIO answer with an error (403, 404), AWS with success. object_store then aborts, and
/// reports the refusal or the abort's. The blob's name is its content's digest, so a blob of
/// this size under it is this upload, whole. Otherwise the failure is retryable whatever the
/// server said: the parts went up with these credentials, and the next attempt finds the blob
/// or sends it again.
///
/// A refusal (403, 404: the id unknown) can also come while the first completion is still
/// assembling the blob, when it was its answer that timed out: the blob is then awaited for
/// [`COMPLETION_GRACE`] (the commit heartbeats meanwhile, and a cancellation stops it), which
/// spares the next attempt sending every part again.
async fn completed_anyway(
    inner: &Inner,
    key: &Key,
    digest: &FileDigest,
    error: object_store::Error,
) -> Result<u64, StoreError> {
    let refused = matches!(
        error,
        object_store::Error::PermissionDenied { .. } | object_store::Error::NotFound { .. }
    );
    let grace = if refused {
        COMPLETION_GRACE
    } else {
        Duration::ZERO
    };
    let deadline = Instant::now() + grace;
    let mut pause = Duration::from_millis(200);
    loop {
        match inner.store.head(key).await {
            Ok(meta) if meta.size == digest.size => {
                tracing::info!(%key, %error, "upload completed, though its completion was reported failed (sent twice)");
                return Ok(digest.size);
            }
            // Under its own name, another size is not this upload, nor a blob in progress.
            Ok(_) => break,
            Err(_) if Instant::now() + pause < deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(_) => break,
        }
    }
    Err(StoreError::Completing {
        key: key.to_string(),
        source: error,
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(StoreError::local(
            "running",
            PathBuf::new(),
            std::io::Error::other(e.to_string()),
        ))
    })
}
