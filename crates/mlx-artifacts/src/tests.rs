//! The store end to end on `file://` and `memory://` stores: what one worker commits another
//! materialises, and what must never become visible or be written.

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use crate::{ArtifactStore, Snapshot, StoreError};

const MB: u64 = 1 << 20;

struct Fixture {
    dir: tempfile::TempDir,
    url: String,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("store").display());
        Self { dir, url }
    }

    /// A "worker": the shared store with a cache of its own.
    fn worker(&self, name: &str) -> ArtifactStore {
        ArtifactStore::open(&self.url, &self.path(&format!("cache-{name}")), 100 * MB).unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn store_root(&self) -> PathBuf {
        self.path("store")
    }
}

fn write(dir: &Path, rel: &str, content: &[u8]) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_str().unwrap().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn what_one_worker_commits_another_materialises() {
    let f = Fixture::new();
    let (a, b) = (f.worker("a"), f.worker("b"));
    let work = f.path("w1");
    write(&work, "model.json", b"{\"w\":1}");
    write(&work, "data/part-0.csv", b"x,y\n1,2\n");
    let commit = a
        .commit("run-1", &work, &Snapshot::default(), "c1")
        .await
        .unwrap();
    assert_eq!(commit.written.len(), 2);
    assert_eq!(commit.uploaded_blobs, 2);
    assert!(commit.removed.is_empty());
    assert_eq!(
        commit.manifest_key.as_deref(),
        Some("runs/run-1/commits/c1.json")
    );

    let out = f.path("w2");
    let snap = b.materialise("run-1", &out, MB).await.unwrap();
    assert_eq!(files(&out), files(&work));
    assert_eq!(snap.files, commit.written);
    // B's cache now holds the blobs it downloaded.
    assert!(b.cached_blob(&snap.files["model.json"].sha256).exists());
}

#[tokio::test]
async fn later_commits_replace_and_remove_files() {
    let f = Fixture::new();
    let w = f.worker("a");
    let first = f.path("w1");
    write(&first, "keep", b"same");
    write(&first, "change", b"v1");
    write(&first, "drop", b"bye");
    let before = w.materialise("r", &f.path("empty"), MB).await.unwrap();
    w.commit("r", &first, &before, "c1").await.unwrap();

    let second = f.path("w2");
    let before = w.materialise("r", &second, MB).await.unwrap();
    write(&second, "change", b"v2");
    write(&second, "new/file", b"hi");
    std::fs::remove_file(second.join("drop")).unwrap();
    let commit = w.commit("r", &second, &before, "c2").await.unwrap();
    let written: Vec<_> = commit.written.keys().map(String::as_str).collect();
    assert_eq!(written, ["change", "new/file"]);
    assert_eq!(commit.removed, ["drop"]);

    let third = f.path("w3");
    w.materialise("r", &third, MB).await.unwrap();
    assert_eq!(
        files(&third),
        [
            ("change".into(), b"v2".to_vec()),
            ("keep".into(), b"same".to_vec()),
            ("new/file".into(), b"hi".to_vec()),
        ]
    );
}

#[tokio::test]
async fn an_unchanged_work_dir_commits_nothing() {
    let f = Fixture::new();
    let w = f.worker("a");
    let work = f.path("w1");
    write(&work, "a", b"1");
    w.commit("r", &work, &Snapshot::default(), "c1")
        .await
        .unwrap();
    let again = f.path("w2");
    let before = w.materialise("r", &again, MB).await.unwrap();
    let commit = w.commit("r", &again, &before, "c2").await.unwrap();
    assert!(commit.written.is_empty() && commit.removed.is_empty());
    assert_eq!(commit.manifest_key, None);
    assert!(!f.store_root().join("runs/r/commits/c2.json").exists());
}

#[tokio::test]
async fn the_size_bound_is_checked_before_anything_is_copied() {
    let f = Fixture::new();
    let w = f.worker("a");
    let work = f.path("w1");
    write(&work, "big", &[7u8; 1000]);
    w.commit("r", &work, &Snapshot::default(), "c1")
        .await
        .unwrap();
    let out = f.path("w2");
    let err = f.worker("b").materialise("r", &out, 999).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::TooLarge {
                total: 1000,
                max: 999,
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert!(!out.exists());
    f.worker("b").materialise("r", &out, 1000).await.unwrap();
}

#[tokio::test]
async fn names_that_could_escape_are_refused() {
    let f = Fixture::new();
    let w = f.worker("a");
    let work = f.path("w");
    for run in ["..", "a/b", "", "x\0"] {
        let err = w.materialise(run, &work, MB).await.unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidName { .. }),
            "{run:?}: {err}"
        );
        assert!(!err.is_retryable());
    }
    let err = w
        .commit("r", &work, &Snapshot::default(), "../c")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidName { .. }), "{err}");
}

#[tokio::test]
async fn a_symlink_in_the_work_dir_is_refused_by_name() {
    let f = Fixture::new();
    let w = f.worker("a");
    let work = f.path("w");
    write(&work, "sub/real", b"x");
    std::os::unix::fs::symlink("/etc/passwd", work.join("sub/link")).unwrap();
    let err = w
        .commit("r", &work, &Snapshot::default(), "c1")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Symlink { path } if path == "sub/link"),
        "{err}"
    );
    assert!(err.to_string().contains("sub/link"));
    assert!(!err.is_retryable());
    // Nothing became visible.
    let out = f.path("out");
    assert!(w.materialise("r", &out, MB).await.unwrap().files.is_empty());
}

#[tokio::test]
async fn a_corrupted_blob_is_refused_and_never_cached() {
    let f = Fixture::new();
    let work = f.path("w");
    write(&work, "f", b"good content");
    let commit = f
        .worker("a")
        .commit("r", &work, &Snapshot::default(), "c1")
        .await
        .unwrap();
    let sha = &commit.written["f"].sha256;
    // Same size, other bytes: only the digest can tell.
    std::fs::write(
        f.store_root().join("blobs/sha256").join(sha),
        b"evil content",
    )
    .unwrap();
    let b = f.worker("b");
    let err = b.materialise("r", &f.path("out"), MB).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { reason, .. } if reason.contains("sha256")),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert!(!b.cached_blob(sha).exists());
    // A truncated blob too.
    std::fs::write(f.store_root().join("blobs/sha256").join(sha), b"short").unwrap();
    let err = b.materialise("r", &f.path("out2"), MB).await.unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt { .. }), "{err}");
}

#[tokio::test]
async fn blobs_without_a_manifest_are_invisible_and_a_bad_manifest_is_refused() {
    let f = Fixture::new();
    let w = f.worker("a");
    let work = f.path("w");
    write(&work, "f", b"x");
    w.commit("r", &work, &Snapshot::default(), "c1")
        .await
        .unwrap();
    // A crash before the manifest: blobs only.
    std::fs::remove_file(f.store_root().join("runs/r/commits/c1.json")).unwrap();
    let fresh = f.worker("b");
    assert!(
        fresh
            .materialise("r", &f.path("o1"), MB)
            .await
            .unwrap()
            .files
            .is_empty()
    );

    let commits = f.store_root().join("runs/r/commits");
    std::fs::create_dir_all(&commits).unwrap();
    std::fs::write(commits.join("c9.json"), b"{\"version\":1,").unwrap();
    let err = fresh.materialise("r", &f.path("o2"), MB).await.unwrap_err();
    assert!(matches!(err, StoreError::BadManifest { .. }), "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_materialises_into_two_dirs_at_once() {
    let f = Fixture::new();
    let work = f.path("w");
    for i in 0..20 {
        write(
            &work,
            &format!("d{}/f{i}", i % 3),
            format!("content {i}").as_bytes(),
        );
    }
    write(&work, "large", &vec![3u8; 3 * MB as usize]);
    f.worker("a")
        .commit("r", &work, &Snapshot::default(), "c1")
        .await
        .unwrap();
    // One worker, one cache, two activities of the run.
    let b = f.worker("b");
    let (o1, o2) = (f.path("o1"), f.path("o2"));
    let (s1, s2) = tokio::join!(
        b.materialise("r", &o1, 10 * MB),
        b.materialise("r", &o2, 10 * MB)
    );
    assert_eq!(s1.unwrap(), s2.unwrap());
    assert_eq!(files(&o1), files(&work));
    assert_eq!(files(&o2), files(&work));
    // A plugin writing to its copy does not reach the cache or the other copy.
    std::fs::write(o1.join("large"), b"changed").unwrap();
    assert_eq!(
        std::fs::read(o2.join("large")).unwrap().len(),
        3 * MB as usize
    );
}

#[tokio::test]
async fn the_cache_evicts_least_recently_used_blobs_past_its_limit() {
    let f = Fixture::new();
    let work = f.path("w");
    write(&work, "a", &[1u8; 1000]);
    write(&work, "b", &[2u8; 1000]);
    let w = ArtifactStore::open(&f.url, &f.path("cache-small"), 1500).unwrap();
    let commit = w
        .commit("r", &work, &Snapshot::default(), "c1")
        .await
        .unwrap();
    let blob_a = w.cached_blob(&commit.written["a"].sha256);
    let blob_b = w.cached_blob(&commit.written["b"].sha256);
    // Both just used: over the limit, but within the grace period nothing goes.
    assert!(blob_a.exists() && blob_b.exists());

    let age = |blob: &Path, secs: u64| {
        let file = std::fs::File::options().write(true).open(blob).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(secs))
            .unwrap();
    };
    age(&blob_a, 7200);
    age(&blob_b, 3600);
    // A commit of nothing new touches no blob but runs the pass.
    let unchanged = Snapshot {
        files: commit.written.clone(),
    };
    w.commit("r", &work, &unchanged, "c2").await.unwrap();
    assert!(!blob_a.exists(), "the least recently used goes");
    assert!(blob_b.exists(), "the rest fits");

    // Gone from the cache, not from the store.
    let out = f.path("o");
    w.materialise("r", &out, MB).await.unwrap();
    assert_eq!(files(&out), files(&work));
    assert!(blob_a.exists());
}

#[tokio::test]
async fn an_in_memory_store_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let w = ArtifactStore::open("memory:///p", &dir.path().join("c"), MB).unwrap();
    let work = dir.path().join("w");
    write(&work, "x", b"1");
    w.commit("r", &work, &Snapshot::default(), "c1")
        .await
        .unwrap();
    let out = dir.path().join("o");
    w.materialise("r", &out, MB).await.unwrap();
    assert_eq!(files(&out), files(&work));
}
