//! A real OCI registry for the tests: the CNCF distribution registry (`make oci-tools` unpacks
//! Debian's build into tools/docker-registry) on a free loopback port, storing blobs in a
//! temporary directory, killed on drop and when the test process exits.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{eventually, free_port, spawn_tied, workspace_root};

/// The registry binary `make oci-tools` unpacked.
pub fn registry_binary() -> PathBuf {
    workspace_root().join("tools/docker-registry/usr/bin/docker-registry")
}

pub struct OciRegistry {
    /// `127.0.0.1:PORT`, the host part of an `oci://` reference.
    pub host: String,
    dir: tempfile::TempDir,
    child: Child,
}

impl OciRegistry {
    /// Starts a registry and waits until `GET /v2/` answers 200.
    pub async fn start() -> anyhow::Result<Self> {
        let binary = registry_binary();
        anyhow::ensure!(
            binary.exists(),
            "{} is missing: run `make oci-tools`",
            binary.display()
        );
        let dir = tempfile::tempdir()?;
        let host = format!("127.0.0.1:{}", free_port());
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: warn\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  \
                 maintenance:\n    uploadpurging:\n      enabled: false\n\
                 http:\n  addr: {host}\n",
                dir.path().join("storage").display()
            ),
        )?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        let mut command = Command::new(&binary);
        command
            .arg("serve")
            .arg(&config)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group, so that drop ends everything it started.
            .process_group(0);
        let child = spawn_tied(command, libc::SIGKILL)
            .with_context(|| format!("starting {}", binary.display()))?;
        let registry = Self { host, dir, child };
        let up = eventually(Duration::from_secs(60), "the registry's /v2/", || async {
            matches!(registry.get("/v2/", "*/*").await, Ok((200, _))).then_some(())
        })
        .await;
        if let Err(e) = up {
            anyhow::bail!("{e}\nregistry log:\n{}", registry.log());
        }
        Ok(registry)
    }

    /// What the registry logged so far, for a failing test's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Where the registry keeps the blob of `digest` (`sha256:…`): a test changes it to make
    /// the registry serve bytes that do not match their digest.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The storage root, to check what a refused push left behind.
    pub fn storage(&self) -> &Path {
        self.dir.path()
    }

    /// `GET /v2/REPO/manifests/REFERENCE` with the OCI manifest's media type accepted: the
    /// manifest as JSON, as any client would read it.
    pub async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> anyhow::Result<serde_json::Value> {
        let (status, body) = self
            .get(
                &format!("/v2/{repository}/manifests/{reference}"),
                "application/vnd.oci.image.manifest.v1+json",
            )
            .await?;
        anyhow::ensure!(status == 200, "manifest {reference}: HTTP {status}: {body}");
        Ok(serde_json::from_str(&body)?)
    }

    /// A plain HTTP/1.0 GET; status and body.
    pub async fn get(&self, path: &str, accept: &str) -> std::io::Result<(u16, String)> {
        let mut stream = tokio::net::TcpStream::connect(&self.host).await?;
        let request = format!(
            "GET {path} HTTP/1.0\r\nHost: {}\r\nAccept: {accept}\r\n\r\n",
            self.host
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        let response = String::from_utf8_lossy(&response);
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default();
        Ok((status, body))
    }
}

impl Drop for OciRegistry {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this struct started; no memory is involved.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}
