use std::sync::atomic::{AtomicUsize, Ordering};

use mlx_plugin_sdk::ErrorKind;

use super::*;

/// sha256("abc"), from FIPS 180-2.
const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mlx-fetch-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// Every file below the directory, relative, sorted.
    fn files(&self) -> Vec<String> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(root, &path, out);
                } else {
                    let rel = path.strip_prefix(root).unwrap();
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.0, &self.0, &mut out);
        out.sort();
        out
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn chunks(parts: Vec<Vec<u8>>) -> impl FnMut() -> Result<Option<Vec<u8>>, PluginError> {
    let mut parts = parts.into_iter();
    move || Ok(parts.next())
}

fn no_limits() -> Limits<'static> {
    Limits {
        max_bytes: u64::MAX,
        sha256: None,
    }
}

fn ctx() -> Context {
    Context::detached(1, None)
}

#[test]
fn writes_hashes_and_leaves_only_the_destination() {
    let tmp = TempDir::new();
    let dest = tmp.0.join("raw/sub/abc.txt");
    let parts = vec![b"a".to_vec(), b"bc".to_vec()];
    let limits = Limits {
        max_bytes: 3,
        sha256: Some(ABC),
    };
    let written = stream_to_file(&dest, chunks(parts), &limits, &ctx()).unwrap();
    assert_eq!(
        written,
        Written {
            bytes: 3,
            sha256: ABC.into()
        }
    );
    assert_eq!(fs::read(&dest).unwrap(), b"abc");
    assert_eq!(tmp.files(), ["raw/sub/abc.txt"]);
}

#[test]
fn an_empty_body_is_a_file_too() {
    let tmp = TempDir::new();
    let dest = tmp.0.join("empty");
    let written = stream_to_file(&dest, chunks(vec![]), &no_limits(), &ctx()).unwrap();
    assert_eq!(written.bytes, 0);
    assert_eq!(
        written.sha256,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(fs::read(&dest).unwrap(), b"");
}

#[test]
fn a_checksum_mismatch_keeps_the_previous_file_and_removes_the_partial() {
    let tmp = TempDir::new();
    let dest = tmp.0.join("data.csv");
    fs::write(&dest, b"previous").unwrap();
    let wrong = "0".repeat(64);
    let limits = Limits {
        max_bytes: u64::MAX,
        sha256: Some(&wrong),
    };
    let e = stream_to_file(&dest, chunks(vec![b"abc".to_vec()]), &limits, &ctx()).unwrap_err();
    assert_eq!(
        (e.kind, e.type_name.as_str()),
        (ErrorKind::Permanent, "ChecksumMismatch")
    );
    let details = e.details.unwrap();
    assert_eq!(details["actual"], ABC);
    assert_eq!(details["expected"], wrong.as_str());
    assert_eq!(fs::read(&dest).unwrap(), b"previous");
    assert_eq!(tmp.files(), ["data.csv"]);
}

#[test]
fn too_many_bytes_stop_the_download_and_leave_nothing() {
    let tmp = TempDir::new();
    let dest = tmp.0.join("big.bin");
    let limits = Limits {
        max_bytes: 4,
        sha256: None,
    };
    let parts = vec![vec![0; 3], vec![0; 3], vec![0; 3]];
    let e = stream_to_file(&dest, chunks(parts), &limits, &ctx()).unwrap_err();
    assert_eq!(
        (e.kind, e.type_name.as_str()),
        (ErrorKind::Permanent, "DownloadTooLarge")
    );
    assert!(tmp.files().is_empty(), "{:?}", tmp.files());
}

#[test]
fn a_failing_source_leaves_nothing() {
    let tmp = TempDir::new();
    let dest = tmp.0.join("x");
    let mut calls = 0;
    let source = || {
        calls += 1;
        match calls {
            1 => Ok(Some(b"partial".to_vec())),
            _ => Err(PluginError::retryable("HttpFailed", "connection reset")),
        }
    };
    let e = stream_to_file(&dest, source, &no_limits(), &ctx()).unwrap_err();
    assert_eq!(e.type_name, "HttpFailed");
    assert!(tmp.files().is_empty(), "{:?}", tmp.files());
}

#[test]
fn progress_is_heartbeated_every_few_mib_and_cancellation_stops_it() {
    let mib = 1usize << 20;
    let tmp = TempDir::new();
    let ctx = ctx();
    let parts = vec![vec![7u8; mib]; 10];
    stream_to_file(&tmp.0.join("a"), chunks(parts.clone()), &no_limits(), &ctx).unwrap();
    let beats = ctx.recorded_heartbeats();
    assert_eq!(
        beats,
        [json!({"bytes": 4 * mib}), json!({"bytes": 8 * mib})]
    );

    let cancelling = Context::detached(1, None).cancel_after(1);
    let e = stream_to_file(&tmp.0.join("b"), chunks(parts), &no_limits(), &cancelling).unwrap_err();
    assert_eq!(
        (e.kind, e.type_name.as_str()),
        (ErrorKind::Retryable, "Cancelled")
    );
    assert_eq!(tmp.files(), ["a"]);
}

#[test]
fn a_directory_or_a_file_in_the_way_is_an_invalid_destination() {
    let tmp = TempDir::new();
    fs::create_dir(tmp.0.join("dir")).unwrap();
    fs::write(tmp.0.join("file"), b"x").unwrap();
    for dest in ["dir", "file/below"] {
        let e =
            stream_to_file(&tmp.0.join(dest), chunks(vec![]), &no_limits(), &ctx()).unwrap_err();
        assert_eq!(
            (e.kind, e.type_name.as_str()),
            (ErrorKind::InvalidInput, "InvalidDestination"),
            "{dest}: {e}"
        );
    }
    assert_eq!(tmp.files(), ["file"]);
}
