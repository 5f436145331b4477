//! Keeping the compile cache within its size. Every plugin version ever loaded leaves an entry
//! (a Rust plugin's artifact is about 1 MiB, an interpreter component's tens of MiB), so a
//! worker that hot-reloads for weeks would otherwise fill its disk: issue 18's soak, a reload
//! a minute, wrote 1 MiB a minute. The least recently used entries go first; a lookup that
//! hits marks its entry used (the sidecar's modification time, which the entry's checks do not
//! read). Removing the entry a loaded plugin was mapped from is harmless: the mapping keeps the
//! file until the plugin is dropped, and only a restart compiles it again.

use std::{
    path::{Path, PathBuf},
    time::SystemTime,
};

/// `HostSettings::cache_max_bytes`' default: room for a hundred interpreter components, a
/// small share of a worker's disk.
pub const DEFAULT_MAX_BYTES: u64 = 4 << 30;

/// Records a hit on the entry whose sidecar this is. Best effort: a failure only makes the
/// entry look older.
pub(crate) fn mark_used(sidecar: &Path) {
    let _ = std::fs::File::options()
        .write(true)
        .open(sidecar)
        .and_then(|f| f.set_modified(SystemTime::now()));
}

/// Removes least recently used entries until the artifacts in `dir` take at most `max_bytes`,
/// never `keep` (the entry just written, even when it alone is larger).
pub(crate) fn evict(dir: &Path, max_bytes: u64, keep: &Path) {
    let Ok(read) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<(SystemTime, u64, PathBuf)> = read
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .filter_map(|artifact| {
            let len = std::fs::metadata(&artifact).ok()?.len();
            let used = std::fs::metadata(artifact.with_extension("sha256"))
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            Some((used, len, artifact))
        })
        .collect();
    let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
    if total <= max_bytes {
        return;
    }
    entries.sort();
    for (_, len, artifact) in entries {
        if total <= max_bytes {
            break;
        }
        if artifact == keep {
            continue;
        }
        // Sidecar first: an artifact left without one is a miss, never trusted.
        let _ = std::fs::remove_file(artifact.with_extension("sha256"));
        if std::fs::remove_file(&artifact).is_ok() {
            total = total.saturating_sub(len);
            tracing::info!(
                entry = %artifact.display(),
                max_bytes,
                "compile cache: removed the least recently used entry to stay within its size"
            );
        }
    }
}
