//! Names and keys in the store, the commit manifest, and how a run's commits add up to its
//! files. Everything a manifest or a caller names is validated here before it becomes a key
//! or a local path.

use std::collections::BTreeMap;

use object_store::path::Path as Key;
use serde::{Deserialize, Serialize};

use crate::StoreError;

pub(crate) const MANIFEST_VERSION: u32 = 1;

/// A file's content: its sha256 (lowercase hex) and size in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    pub sha256: String,
    pub size: u64,
}

/// A run's files at some point: relative path → content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub files: BTreeMap<String, FileDigest>,
}

impl Snapshot {
    pub fn total_bytes(&self) -> u64 {
        self.files.values().map(|f| f.size).sum()
    }
}

/// `<prefix>/runs/<run>/commits/<commit_id>.json`, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub version: u32,
    pub committed_at_ns: u64,
    pub commit_id: String,
    pub files: BTreeMap<String, FileDigest>,
    #[serde(default)]
    pub removed: Vec<String>,
}

pub(crate) fn blob_key(prefix: &Key, sha256: &str) -> Key {
    prefix.clone().join("blobs").join("sha256").join(sha256)
}

pub(crate) fn commits_prefix(prefix: &Key, run: &str) -> Key {
    prefix.clone().join("runs").join(run).join("commits")
}

pub(crate) fn commit_key(prefix: &Key, run: &str, commit_id: &str) -> Key {
    commits_prefix(prefix, run).join(format!("{commit_id}.json"))
}

/// A run id or commit id: one key segment, so one that cannot climb out of its folder or
/// name another run's.
pub(crate) fn validate_id(what: &'static str, id: &str) -> Result<(), StoreError> {
    let bad = |reason| {
        Err(StoreError::InvalidName {
            what,
            name: id.to_string(),
            reason,
        })
    };
    if id.is_empty() || id.len() > 512 {
        return bad("must be 1 to 512 bytes");
    }
    if id == "." || id == ".." {
        return bad("must not be . or ..");
    }
    if id.contains(['/', '\\', '\0']) || id.chars().any(char::is_control) {
        return bad("must not hold /, \\, NUL or control characters");
    }
    Ok(())
}

/// A path relative to the work dir: `a/b/c.txt`, never absolute, never with `.`, `..` or an
/// empty segment (so it names one place only), never with NUL.
pub(crate) fn validate_rel(rel: &str) -> Result<(), StoreError> {
    let bad = |reason| {
        Err(StoreError::InvalidName {
            what: "artifact path",
            name: rel.to_string(),
            reason,
        })
    };
    if rel.is_empty() || rel.len() > 4096 {
        return bad("must be 1 to 4096 bytes");
    }
    if rel.starts_with('/') {
        return bad("must be relative");
    }
    if rel.contains('\0') {
        return bad("must not hold NUL");
    }
    if rel
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return bad("must not hold empty, . or .. segments");
    }
    Ok(())
}

pub(crate) fn validate_sha256(key: &str, hex: &str) -> Result<(), StoreError> {
    if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(StoreError::BadManifest {
            key: key.to_string(),
            reason: format!("{hex:?} is not a lowercase sha256 hex digest"),
        })
    }
}

impl Manifest {
    /// Parses and checks a stored manifest; `key` names it in errors.
    pub fn parse(key: &str, bytes: &[u8]) -> Result<Self, StoreError> {
        let bad = |reason: String| StoreError::BadManifest {
            key: key.to_string(),
            reason,
        };
        let m: Self = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if m.version != MANIFEST_VERSION {
            return Err(bad(format!(
                "version {} (this worker reads {MANIFEST_VERSION})",
                m.version
            )));
        }
        validate_id("commit id", &m.commit_id).map_err(|e| bad(e.to_string()))?;
        for (rel, digest) in &m.files {
            validate_rel(rel).map_err(|e| bad(e.to_string()))?;
            validate_sha256(key, &digest.sha256)?;
        }
        for rel in &m.removed {
            validate_rel(rel).map_err(|e| bad(e.to_string()))?;
        }
        Ok(m)
    }
}

/// The run's files after its commits, in (committed_at_ns, commit_id) order: a later commit's
/// file replaces an earlier one, its `removed` deletes. A file also replaces whatever it
/// cannot coexist with on disk (`a` and `a/b` from two concurrent commits): later wins there
/// too, so every run materialises.
pub(crate) fn merge(mut manifests: Vec<Manifest>) -> Snapshot {
    manifests
        .sort_by(|a, b| (a.committed_at_ns, &a.commit_id).cmp(&(b.committed_at_ns, &b.commit_id)));
    let mut files: BTreeMap<String, FileDigest> = BTreeMap::new();
    for m in manifests {
        for rel in &m.removed {
            files.remove(rel);
        }
        for (rel, digest) in m.files {
            for (i, _) in rel.match_indices('/') {
                files.remove(&rel[..i]);
            }
            let below = format!("{rel}/");
            let under: Vec<String> = files
                .range(below.clone()..)
                .take_while(|(k, _)| k.starts_with(&below))
                .map(|(k, _)| k.clone())
                .collect();
            for k in under {
                files.remove(&k);
            }
            files.insert(rel, digest);
        }
    }
    Snapshot { files }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> FileDigest {
        FileDigest {
            sha256: format!("{n:064x}"),
            size: n as u64,
        }
    }

    fn m(at: u64, id: &str, files: &[(&str, u8)], removed: &[&str]) -> Manifest {
        Manifest {
            version: 1,
            committed_at_ns: at,
            commit_id: id.into(),
            files: files.iter().map(|(p, n)| (p.to_string(), d(*n))).collect(),
            removed: removed.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn later_commits_win_in_time_then_id_order() {
        let snap = merge(vec![
            m(20, "b", &[("x", 3)], &[]),
            m(10, "z", &[("x", 1), ("y", 1)], &[]),
            m(20, "a", &[("x", 2)], &["y"]),
        ]);
        assert_eq!(snap.files.len(), 1);
        assert_eq!(snap.files["x"], d(3));
    }

    #[test]
    fn a_file_replaces_what_it_cannot_coexist_with() {
        let snap = merge(vec![
            m(1, "a", &[("dir/f", 1), ("dir/g/h", 2), ("dirx", 3)], &[]),
            m(2, "b", &[("dir", 4)], &[]),
            m(3, "c", &[("dirx/y", 5)], &[]),
        ]);
        let paths: Vec<_> = snap.files.keys().map(String::as_str).collect();
        assert_eq!(paths, ["dir", "dirx/y"]);
    }

    #[test]
    fn names_that_could_escape_are_refused() {
        for rel in ["", "/abs", "a/../b", "..", "./a", "a//b", "a/", "a\0b"] {
            assert!(validate_rel(rel).is_err(), "{rel:?}");
        }
        validate_rel("a/b c/d.parquet").unwrap();
        for id in ["", ".", "..", "a/b", "a\\b", "a\0", "a\nb"] {
            assert!(validate_id("run", id).is_err(), "{id:?}");
        }
        validate_id("run", "wf-123_attempt.1").unwrap();
    }

    #[test]
    fn manifests_are_checked_when_read() {
        let good = serde_json::to_vec(&m(1, "c", &[("a", 1)], &[])).unwrap();
        Manifest::parse("k", &good).unwrap();
        let escape = serde_json::to_vec(&m(1, "c", &[("../a", 1)], &[])).unwrap();
        assert!(Manifest::parse("k", &escape).is_err());
        let mut v2 = m(1, "c", &[], &[]);
        v2.version = 2;
        let err = Manifest::parse("k", &serde_json::to_vec(&v2).unwrap()).unwrap_err();
        assert!(err.to_string().contains("version 2"), "{err}");
        assert!(Manifest::parse("k", b"{").is_err());
    }
}
