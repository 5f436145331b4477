//! A real S3-compatible server for tests: s3s-fs (`make s3-tools`) on a free loopback port,
//! serving a temporary directory with a fixed access key, killed on drop. Real HTTP, SigV4,
//! multipart uploads and S3's error codes, which an in-memory fake would not check.
//!
//! Also compiled into crates/mlx-artifacts' integration test (`#[path]`), which cannot depend
//! on this crate (the worker it builds will depend on mlx-artifacts): so this file uses only
//! std, tokio, tempfile and libc, and the including crate's `free_port`.

use std::{
    fs::File,
    io::{Read, Write},
    net::TcpStream,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::free_port;

pub const ACCESS_KEY: &str = "mlx-test-access-key";
pub const SECRET_KEY: &str = "mlx-test-secret-key";
pub const REGION: &str = "us-east-1";

/// An s3s-fs process; its buckets are the directories of [`S3Server::root`].
pub struct S3Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// tools/s3s-fs/bin/s3s-fs of this checkout, or `MLX_S3S_FS`.
pub fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("MLX_S3S_FS") {
        return bin.into();
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = here
        .ancestors()
        .find(|d| d.join("Cargo.lock").exists())
        .unwrap_or(here);
    root.join("tools/s3s-fs/bin/s3s-fs")
}

impl S3Server {
    pub async fn start() -> Self {
        let bin = binary();
        assert!(
            bin.exists(),
            "{} is missing: run make s3-tools",
            bin.display()
        );
        let dir = tempfile::tempdir().expect("a temporary directory for s3s-fs");
        let root = dir.path().join("root");
        std::fs::create_dir(&root).expect("creating the s3s-fs root");
        let mut last_log = String::new();
        // A port another process took between the probe and the bind makes the server exit:
        // then another port.
        for _ in 0..3 {
            let port = free_port();
            let log_path = dir.path().join(format!("server-{port}.log"));
            let log = File::create(&log_path).expect("creating the s3s-fs log");
            let mut child = Command::new(&bin)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .arg(&root)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("the log file"))
                .stderr(log)
                // Its own process group, so drop ends whatever it started with it.
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if answers(port) {
                    return Self { child, port, dir };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    kill_group(&mut child);
                    panic!(
                        "s3s-fs did not answer on port {port} within 30 s:\n{}",
                        std::fs::read_to_string(&log_path).unwrap_or_default()
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
        }
        panic!("s3s-fs exited at start three times:\n{last_log}");
    }

    /// `http://127.0.0.1:<port>`; requests must be path-style (no bucket subdomains).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a worker needs to reach this server with object_store's `from_env`.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
    }

    /// s3s-fs keeps a bucket as a directory of its root (what its CreateBucket does), so one
    /// is made without a signed request.
    pub fn create_bucket(&self, name: &str) {
        std::fs::create_dir(self.root().join(name))
            .unwrap_or_else(|e| panic!("creating bucket {name}: {e}"));
    }

    /// The server's data: `<root>/<bucket>/<key>` is an object's content.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Stops the server (SIGSTOP) until the guard is dropped: connections stay open and
    /// requests hang unanswered, as with a server that stalls mid-transfer.
    // mlx-artifacts' test includes this file and stalls no server.
    #[allow(dead_code)]
    pub fn pause(&self) -> Paused {
        signal_group(&self.child, libc::SIGSTOP);
        Paused(self.child.id())
    }

    /// What the server printed so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("server-{}.log", self.port)))
            .unwrap_or_default()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// A stopped server, continued (SIGCONT) on drop.
#[allow(dead_code)]
pub struct Paused(u32);

impl Drop for Paused {
    fn drop(&mut self) {
        signal(self.0, libc::SIGCONT);
    }
}

fn kill_group(child: &mut Child) {
    signal_group(child, libc::SIGKILL);
    let _ = child.wait();
}

fn signal_group(child: &Child, sig: libc::c_int) {
    signal(child.id(), sig);
}

fn signal(group: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on the process group this module started; no memory is involved.
    unsafe {
        libc::kill(-(group as i32), sig);
    }
}

/// Whether the server answers HTTP right now (any status: unsigned requests are refused).
fn answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET / HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}
