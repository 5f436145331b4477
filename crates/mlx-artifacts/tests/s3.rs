//! The artifact store against a real S3-compatible server (s3s-fs, `make s3-tools`), as two
//! workers of a fleet use it: each with its own cache, the store between them.
//!
//! One test function: `ArtifactStore::open` reads credentials from the process environment,
//! which is set once, before any other thread exists; the scenarios then run in order.

use std::{path::Path, sync::Arc};

use mlx_artifacts::{ArtifactStore, Snapshot, StoreError};
use object_store::{aws::AmazonS3Builder, path::Path as Key};

#[path = "../../../tests/src/s3.rs"]
mod s3;

mod lossy;

use s3::S3Server;

const MB: u64 = 1 << 20;
const BUCKET: &str = "artifacts";

/// A port nothing listens on now (the server binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn artifacts_on_a_real_s3_server() {
    // The server's port is only known once it runs, so it is started on a runtime of its own
    // that lives as long as the test; the environment is set before the test's runtime (and
    // its threads) exist.
    let server_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = server_rt.block_on(S3Server::start());
    server.create_bucket(BUCKET);
    for (key, value) in server.env() {
        // SAFETY: no other thread of this process exists yet (one test in this binary, the
        // server runtime is current-thread and idle), so nothing reads the environment now.
        unsafe { std::env::set_var(key, value) };
    }
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        commit_on_one_worker_materialise_on_another(&server, dir.path()).await;
        an_interrupted_commit_is_invisible(&server, dir.path()).await;
        a_missing_bucket_or_bad_credentials_are_not_retryable(&server, dir.path()).await;
        a_completion_whose_answer_was_lost_is_not_a_failure(&server, dir.path()).await;
    });
    let url = format!("s3://{BUCKET}/team");
    drop(server);
    rt.block_on(a_refused_connection_is_retryable(&url, dir.path()));
}

fn worker(dir: &Path, name: &str) -> ArtifactStore {
    ArtifactStore::open(
        &format!("s3://{BUCKET}/team"),
        &dir.join(format!("cache-{name}")),
        100 * MB,
    )
    .unwrap_or_else(|e| panic!("opening the store for {name}: {e}"))
}

/// A worker's store at `endpoint` (the server, or something in front of it) with the test's
/// access key and `secret`, built directly rather than from the environment.
fn store_at(endpoint: &str, secret: &str, cache: &Path, max_bytes: u64) -> ArtifactStore {
    let s3 = AmazonS3Builder::new()
        .with_bucket_name(BUCKET)
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region(s3::REGION)
        .with_access_key_id(s3::ACCESS_KEY)
        .with_secret_access_key(secret)
        .build()
        .unwrap();
    ArtifactStore::with_object_store(endpoint, Arc::new(s3), Key::from("team"), cache, max_bytes)
        .unwrap()
}

fn write(dir: &Path, rel: &str, content: &[u8]) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// Not compressible, not repetitive: a part boundary in the wrong place shows in the digest.
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn commit_on_one_worker_materialise_on_another(server: &S3Server, dir: &Path) {
    let (a, b) = (worker(dir, "a"), worker(dir, "b"));
    let work = dir.join("w1");
    let large = noise(9 * MB as usize + 12_345);
    write(&work, "model/weights.bin", &large);
    write(&work, "metrics.json", b"{\"auc\":0.91}");
    let commit = a
        .commit("run-1", &work, &Snapshot::default(), "step-train-1")
        .await
        .unwrap_or_else(|e| panic!("commit: {e}\n{}", server.log()));
    assert_eq!(commit.uploaded_blobs, 2);
    assert_eq!(commit.uploaded_bytes, large.len() as u64 + 12);

    // The layout, as the server stores it.
    let prefix = server.root().join(BUCKET).join("team");
    let sha = &commit.written["model/weights.bin"].sha256;
    assert_eq!(
        std::fs::read(prefix.join("blobs/sha256").join(sha)).unwrap(),
        large
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(prefix.join("runs/run-1/commits/step-train-1.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["version"], 1);
    assert_eq!(manifest["commit_id"], "step-train-1");
    assert_eq!(manifest["files"]["metrics.json"]["size"], 12);
    assert!(manifest["committed_at_ns"].as_u64().unwrap() > 0);

    let out = dir.join("w2");
    let snapshot = b.materialise("run-1", &out, 20 * MB).await.unwrap();
    assert_eq!(snapshot.files, commit.written);
    assert_eq!(std::fs::read(out.join("model/weights.bin")).unwrap(), large);
    assert_eq!(
        std::fs::read(out.join("metrics.json")).unwrap(),
        b"{\"auc\":0.91}"
    );

    // The same content from a third worker: HEAD finds the blobs, nothing is sent again.
    let again = worker(dir, "c")
        .commit("run-2", &work, &Snapshot::default(), "copy")
        .await
        .unwrap();
    assert_eq!((again.uploaded_blobs, again.uploaded_bytes), (0, 0));
    assert_eq!(again.written, commit.written);

    let err = b
        .materialise("run-1", &dir.join("w3"), MB)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
    assert!(!err.is_retryable());
}

async fn an_interrupted_commit_is_invisible(server: &S3Server, dir: &Path) {
    let a = worker(dir, "a");
    let first = dir.join("i1");
    write(&first, "x", b"first");
    a.commit("run-3", &first, &Snapshot::default(), "c1")
        .await
        .unwrap();
    let second = dir.join("i2");
    let before = a.materialise("run-3", &second, MB).await.unwrap();
    write(&second, "x", b"second");
    write(&second, "y", b"new");
    let commit = a.commit("run-3", &second, &before, "c2").await.unwrap();
    // What a worker that died after its blobs and before its manifest leaves behind.
    let prefix = server.root().join(BUCKET).join("team");
    std::fs::remove_file(prefix.join("runs/run-3/commits/c2.json")).unwrap();
    for digest in commit.written.values() {
        assert!(prefix.join("blobs/sha256").join(&digest.sha256).exists());
    }
    let out = dir.join("i3");
    let seen = worker(dir, "fresh")
        .materialise("run-3", &out, MB)
        .await
        .unwrap();
    assert_eq!(seen.files.keys().collect::<Vec<_>>(), ["x"]);
    assert_eq!(std::fs::read(out.join("x")).unwrap(), b"first");
}

async fn a_missing_bucket_or_bad_credentials_are_not_retryable(server: &S3Server, dir: &Path) {
    let missing = ArtifactStore::open("s3://no-such-bucket/p", &dir.join("cache-m"), MB).unwrap();
    let err = missing
        .materialise("r", &dir.join("m1"), MB)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NoSuchBucket"), "{err}");
    assert!(!err.is_retryable(), "a missing bucket: {err:?}");

    let store = store_at(
        &server.endpoint(),
        "not-the-secret",
        &dir.join("cache-bad"),
        MB,
    );
    let err = store
        .materialise("run-1", &dir.join("m2"), 20 * MB)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    assert!(!err.is_retryable(), "bad credentials: {err:?}");
    let work = dir.join("m3");
    write(&work, "f", b"x");
    let err = store
        .commit("run-9", &work, &Snapshot::default(), "c")
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "bad credentials on upload: {err:?}");
}

/// The answer to a multipart completion is lost (the connection drops as it comes back), so
/// object_store sends the completion again and the server, having completed the upload,
/// refuses it (s3s-fs: 403 AccessDenied, and 403 again for the abort that follows). The blob
/// is whole: the commit must succeed, not fail as if the credentials were refused. It did fail
/// so, non-retryable, on a loaded CI machine whose completion answer timed out.
async fn a_completion_whose_answer_was_lost_is_not_a_failure(server: &S3Server, dir: &Path) {
    let upstream = server.endpoint().trim_start_matches("http://").to_string();
    let proxy = lossy::LossyProxy::start(upstream).await;
    let store = store_at(
        &proxy.endpoint(),
        s3::SECRET_KEY,
        &dir.join("cache-lossy"),
        100 * MB,
    );
    let work = dir.join("lost-answer");
    // Not the content of another scenario: its blob must not be in the store yet.
    let large = noise(10 * MB as usize + 7);
    write(&work, "model/weights.bin", &large);
    let commit = store
        .commit("run-lost", &work, &Snapshot::default(), "c1")
        .await
        .unwrap_or_else(|e| {
            panic!(
                "commit: {e} (retryable: {})\n{}",
                e.is_retryable(),
                server.log()
            )
        });
    assert!(
        proxy.lost_an_answer(),
        "the proxy saw no multipart completion: the scenario did not happen"
    );
    assert_eq!(commit.uploaded_bytes, large.len() as u64);
    let sha = &commit.written["model/weights.bin"].sha256;
    let blob = server
        .root()
        .join(BUCKET)
        .join("team/blobs/sha256")
        .join(sha);
    assert_eq!(std::fs::read(blob).unwrap(), large);
    let out = dir.join("lost-answer-read");
    worker(dir, "after-lost")
        .materialise("run-lost", &out, 20 * MB)
        .await
        .unwrap();
    assert_eq!(std::fs::read(out.join("model/weights.bin")).unwrap(), large);
}

async fn a_refused_connection_is_retryable(url: &str, dir: &Path) {
    // The server is gone; the environment still points at its port.
    let store = ArtifactStore::open(url, &dir.join("cache-refused"), MB).unwrap();
    let started = std::time::Instant::now();
    let err = store
        .materialise("run-1", &dir.join("r1"), MB)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Remote { .. }), "{err}");
    assert!(err.is_retryable(), "a refused connection: {err:?}");
    // A few quick retries inside, the rest left to the activity's retry policy.
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
}
