//! Eviction: the step cache kept within a size, least recently used entries first.
//!
//! An entry's modification time is its last use (a hit touches it). Blobs are shared between
//! entries, so a blob goes once no remaining entry names it. Workers sharing the cache may
//! evict at the same time, or evict a blob that another worker's new entry is about to name:
//! either way the worst case is an entry whose blob is gone, which `get` treats as a miss (the
//! step runs again), never a half-restored step. A blob younger than [`BLOB_GRACE`] that no
//! entry names yet is left alone: its entry is probably being written.

use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use super::{CacheError, Entry, StepCache, io_error};

/// How long an unnamed blob is kept for the entry that will name it.
pub const BLOB_GRACE: Duration = Duration::from_secs(600);

/// What one eviction pass found and freed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Evicted {
    /// Bytes of entries and blobs before the pass.
    pub before: u64,
    pub entries: usize,
    pub blobs: usize,
    pub bytes: u64,
}

struct Found {
    path: PathBuf,
    used: SystemTime,
    bytes: u64,
    blobs: Vec<String>,
}

impl StepCache {
    /// Marks an entry used now, so eviction takes it last. Best effort: a cache that cannot
    /// record a use evicts a little less well, and the step still gets its hit.
    pub(super) fn touch(path: &Path) {
        let _ = fs::File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(SystemTime::now()));
    }

    /// Deletes least recently used entries until entries and blobs take at most `max_bytes`,
    /// then every blob no entry names that is older than [`BLOB_GRACE`].
    pub fn evict(&self, max_bytes: u64) -> Result<Evicted, CacheError> {
        let now = SystemTime::now();
        let mut entries = self.entries()?;
        entries.sort_by_key(|e| e.used);
        let blobs = self.blobs()?;
        let mut refs: BTreeMap<String, usize> = BTreeMap::new();
        for entry in &entries {
            for blob in &entry.blobs {
                *refs.entry(blob.clone()).or_default() += 1;
            }
        }
        let mut total: u64 = entries.iter().map(|e| e.bytes).sum::<u64>()
            + blobs.values().map(|(bytes, _)| bytes).sum::<u64>();
        let mut freed = Evicted {
            before: total,
            ..Evicted::default()
        };
        let mut dropped_blobs: Vec<String> = Vec::new();
        for entry in &entries {
            if total <= max_bytes {
                break;
            }
            if remove(&entry.path)? {
                total -= entry.bytes;
                freed.entries += 1;
                freed.bytes += entry.bytes;
            }
            for blob in &entry.blobs {
                let count = refs.get_mut(blob).expect("counted above");
                *count -= 1;
                if *count == 0 {
                    // Counted as freed now, so the loop stops as soon as enough is.
                    total -= blobs.get(blob).map_or(0, |(bytes, _)| *bytes);
                    dropped_blobs.push(blob.clone());
                }
            }
        }
        // Blobs of evicted entries go at once (they were named, so none is being written);
        // blobs nobody named go once they are old enough.
        let unnamed = blobs.iter().filter(|(sha, (_, modified))| {
            !refs.contains_key(*sha)
                && now.duration_since(*modified).unwrap_or_default() >= BLOB_GRACE
        });
        let doomed: Vec<String> = dropped_blobs
            .into_iter()
            .chain(unnamed.map(|(sha, _)| sha.clone()))
            .collect();
        for sha in doomed {
            let Some((bytes, _)) = blobs.get(&sha) else {
                continue;
            };
            if remove(&self.blob_path(&sha))? {
                freed.blobs += 1;
                freed.bytes += bytes;
            }
        }
        Ok(freed)
    }

    fn entries(&self) -> Result<Vec<Found>, CacheError> {
        let dir = self.root.join("entries");
        let mut found = Vec::new();
        for item in read_dir(&dir)? {
            let path = item.path();
            let Ok(meta) = item.metadata() else { continue };
            if !meta.is_file() || path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            // An entry that cannot be read counts as the oldest: it is useless anyway.
            let blobs = fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Entry>(&bytes).ok())
                .map(|entry| entry.files.into_iter().map(|f| f.sha256).collect());
            let used = match &blobs {
                Some(_) => meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                None => SystemTime::UNIX_EPOCH,
            };
            found.push(Found {
                path,
                used,
                bytes: meta.len(),
                blobs: blobs.unwrap_or_default(),
            });
        }
        Ok(found)
    }

    /// Every blob: its size and modification time, by digest.
    fn blobs(&self) -> Result<BTreeMap<String, (u64, SystemTime)>, CacheError> {
        let dir = self.root.join("blobs");
        let mut found = BTreeMap::new();
        for item in read_dir(&dir)? {
            let Ok(meta) = item.metadata() else { continue };
            let name = item.file_name().to_string_lossy().into_owned();
            // Temporary files of a store in progress have other names; they are not ours.
            if meta.is_file() && name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                found.insert(name, (meta.len(), modified));
            }
        }
        Ok(found)
    }
}

fn read_dir(dir: &Path) -> Result<Vec<fs::DirEntry>, CacheError> {
    match fs::read_dir(dir) {
        Ok(items) => Ok(items.filter_map(Result::ok).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_error(dir)(e)),
    }
}

/// Removes a file another worker may have removed first: true if this call removed it.
fn remove(path: &Path) -> Result<bool, CacheError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error(path)(e)),
    }
}
