//! This worker's local copy of blobs and manifests, under a size limit.
//!
//! `<cache_dir>/sha256/<hex>` holds a blob whose content was verified on the way in (download
//! or commit), so it is copied out without hashing again. `<cache_dir>/manifests/<hex>.json`
//! holds commit manifests, which never change once written; the name hashes the store URL
//! with the key, so one cache can serve several stores. Files arrive as a temporary file
//! renamed into place: a reader sees a whole file or none, and a crash leaves only `.tmp-*`
//! files, which the eviction pass removes once they are old.
//!
//! Least recently used goes first: every use sets the file's mtime. The pass spares files used
//! in the last minute, so a blob between "it is there" and the copy's `open` is never removed
//! (once open, removing it does not disturb the copy).

use std::{
    fs::File,
    io::{Read, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime},
};

use sha2::{Digest, Sha256};

use crate::StoreError;

/// Files used this recently are never evicted.
const GRACE: Duration = Duration::from_secs(60);
/// Temporary files this old belong to a crashed or killed transfer.
const STALE_TMP: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub(crate) struct BlobCache {
    blobs: PathBuf,
    manifests: PathBuf,
    max_bytes: u64,
}

/// Unique temporary names within this process; the pid separates processes sharing the dir.
static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl BlobCache {
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, StoreError> {
        let blobs = dir.join("sha256");
        let manifests = dir.join("manifests");
        for d in [&blobs, &manifests] {
            std::fs::create_dir_all(d).map_err(|e| StoreError::local("creating", d, e))?;
        }
        Ok(Self {
            blobs,
            manifests,
            max_bytes,
        })
    }

    pub fn blob_path(&self, sha256: &str) -> PathBuf {
        self.blobs.join(sha256)
    }

    pub fn manifest_path(&self, store_url: &str, key: &str) -> PathBuf {
        let name = hex(&Sha256::digest(format!("{store_url}\n{key}")));
        self.manifests.join(format!("{name}.json"))
    }

    /// A temporary file next to `dest`, removed on drop unless `persist`ed.
    pub fn temp_for(&self, dest: &Path) -> Result<TempFile, StoreError> {
        let dir = dest.parent().expect("cache paths have a parent");
        let name = format!(
            ".tmp-{}-{}-{}",
            dest.file_name().and_then(|n| n.to_str()).unwrap_or("x"),
            std::process::id(),
            TMP_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        let file = File::create(&path).map_err(|e| StoreError::local("creating", &path, e))?;
        Ok(TempFile {
            path,
            file: Some(file),
        })
    }

    /// Whether the cache has it; marks it used if so.
    pub fn touch(&self, path: &Path) -> bool {
        match File::options().write(true).open(path) {
            Ok(f) => {
                let _ = f.set_modified(SystemTime::now());
                true
            }
            Err(_) => false,
        }
    }

    /// Copies `src` into the cache as blob `sha256`, checking on the way that it still has
    /// that content (the caller hashed it before: a file that changed since is refused).
    pub fn insert_file(&self, src: &Path, sha256: &str) -> Result<PathBuf, StoreError> {
        let dest = self.blob_path(sha256);
        if self.touch(&dest) {
            return Ok(dest);
        }
        let mut tmp = self.temp_for(&dest)?;
        let mut input = File::open(src).map_err(|e| StoreError::local("reading", src, e))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = input
                .read(&mut buf)
                .map_err(|e| StoreError::local("reading", src, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n])?;
        }
        let actual = hex(&hasher.finalize());
        if actual != sha256 {
            return Err(StoreError::local(
                "committing",
                src,
                std::io::Error::other("the file changed while it was being committed"),
            ));
        }
        tmp.persist(&dest)?;
        Ok(dest)
    }

    /// One pass over the cache: if it holds more than its limit, removes the least recently
    /// used files not used within the grace period until it fits; and stale temporary files.
    /// One `stat` per file, no hashing: cheap enough to run after every materialise/commit.
    pub fn evict(&self) {
        let now = SystemTime::now();
        let mut entries = Vec::new();
        let mut total = 0u64;
        for dir in [&self.blobs, &self.manifests] {
            let Ok(read) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in read.flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                let age = meta
                    .modified()
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .unwrap_or_default();
                let path = entry.path();
                if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                    if age > STALE_TMP {
                        let _ = std::fs::remove_file(&path);
                    }
                    continue;
                }
                total += meta.len();
                entries.push((age, meta.len(), path));
            }
        }
        if total <= self.max_bytes {
            return;
        }
        // Oldest use first.
        entries.sort_by_key(|e| std::cmp::Reverse(e.0));
        for (age, size, path) in entries {
            if total <= self.max_bytes || age < GRACE {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= size;
                tracing::debug!(path = %path.display(), size, "artifact cache: evicted");
            }
        }
    }
}

pub(crate) struct TempFile {
    path: PathBuf,
    file: Option<File>,
}

impl TempFile {
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let file = self.file.as_mut().expect("open until persisted");
        file.write_all(bytes)
            .map_err(|e| StoreError::local("writing", &self.path, e))
    }

    pub fn persist(mut self, dest: &Path) -> Result<(), StoreError> {
        drop(self.file.take());
        std::fs::rename(&self.path, dest).map_err(|e| StoreError::local("renaming", dest, e))?;
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(path: &Path, secs: u64) {
        let f = File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(secs))
            .unwrap();
    }

    #[test]
    fn evicts_least_recently_used_and_spares_recent_use() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path(), 250).unwrap();
        let blob = |name: &str, secs: u64| {
            let p = cache.blob_path(name);
            std::fs::write(&p, [0u8; 100]).unwrap();
            age(&p, secs);
            p
        };
        let oldest = blob("a", 3000);
        let old = blob("b", 2000);
        let used = blob("c", 1000);
        let fresh = blob("d", 0);
        // Used now: it is the most recent of the old ones.
        assert!(cache.touch(&used));
        cache.evict();
        assert!(!oldest.exists());
        assert!(!old.exists());
        assert!(used.exists());
        assert!(fresh.exists());

        // Over the limit but everything recent: nothing goes.
        let tight = BlobCache::open(dir.path(), 0).unwrap();
        tight.evict();
        assert!(used.exists() && fresh.exists());
    }

    #[test]
    fn stale_temporary_files_go_and_fresh_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(dir.path(), u64::MAX).unwrap();
        let stale = cache.blobs.join(".tmp-x-1-1");
        let fresh = cache.blobs.join(".tmp-x-1-2");
        std::fs::write(&stale, b"x").unwrap();
        std::fs::write(&fresh, b"x").unwrap();
        age(&stale, 7200);
        cache.evict();
        assert!(!stale.exists());
        assert!(fresh.exists());
    }

    #[test]
    fn insert_refuses_a_file_that_changed_since_it_was_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlobCache::open(&dir.path().join("c"), u64::MAX).unwrap();
        let src = dir.path().join("f");
        std::fs::write(&src, b"hello").unwrap();
        let digest = hex(&Sha256::digest(b"hello"));
        let path = cache.insert_file(&src, &digest).unwrap();
        assert_eq!(std::fs::read(path).unwrap(), b"hello");
        let wrong = hex(&Sha256::digest(b"other"));
        assert!(cache.insert_file(&src, &wrong).is_err());
        assert!(!cache.blob_path(&wrong).exists());
        // No temporary file left behind.
        let left: Vec<_> = std::fs::read_dir(&cache.blobs).unwrap().collect();
        assert_eq!(left.len(), 1);
    }
}
