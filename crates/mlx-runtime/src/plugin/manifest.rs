//! Per-plugin manifest: `NAME.toml` next to `NAME.wasm` grants capabilities and sets limits.
//!
//! Deny by default: a plugin without a manifest gets no directories (besides the per-workflow
//! artifacts directory every plugin has), no scratch directory, no environment, no network
//! and default [`Limits`].
//!
//! ```toml
//! scratch = true          # an empty read-write /scratch per invocation, removed afterwards
//! isolation = "process"   # each invocation in a child process (see `Isolation`)
//!
//! [[filesystem]]
//! host = "../data"        # relative to this manifest's directory
//! guest = "/data"
//! access = "read-only"    # or "read-write"; default read-only
//!
//! [limits]
//! memory_mb = 1024
//! timeout_secs = 600
//!
//! [env]                   # environment variables the plugin sees (nothing else of the worker's)
//! LOG_STYLE = "plain"
//!
//! [config]                # values for `mlx:plugin/config.get`
//! region = "eu-west-1"
//!
//! [secrets]               # values for `mlx:plugin/config.get-secret`, read at each call
//! api_token = { env = "MLX_SECRET_API_TOKEN" }   # from the worker's environment
//! db_password = { file = "/run/secrets/db" }     # or from a file
//!
//! [http]                  # outbound HTTP; without it a component importing wasi:http is refused
//! allow = ["https://api.example.com"]
//! max_response_kb = 1024  # defaults: 1 MiB each way
//! max_request_kb = 1024
//! ca_certs = ["internal-ca.pem"]  # trusted besides the Mozilla roots
//! ```
//!
//! Limits and their defaults are documented in [`crate::plugin::limits`].

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::Deserialize;

use crate::{
    plugin::limits::{Limits, LimitsFile},
    sandbox::capabilities::{
        config::{ConfigGrant, SecretFile},
        http::{HttpGrant, HttpSection},
    },
};

/// Guest path where every plugin finds its workflow's artifacts directory.
pub const ARTIFACTS_GUEST_PATH: &str = "/artifacts";
/// Guest path of the per-invocation scratch directory, empty at start and removed afterwards.
pub const SCRATCH_GUEST_PATH: &str = "/scratch";

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    #[default]
    ReadOnly,
    ReadWrite,
}

/// Where an invocation runs. Both are the same sandbox (the same capabilities, grants and
/// limits); they differ in how the worker stops a plugin and what a plugin's crash can reach.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// In the worker's process (default): a fresh instance is cheapest (tens of
    /// microseconds), and the worker interrupts a running guest at its deadline or cancellation
    /// by epoch checks compiled into every loop and call, which cost compute-bound code up to
    /// half its speed (BENCHMARKS.md section 3).
    #[default]
    Instance,
    /// In a child process of the worker, compiled without those checks; the worker kills the
    /// child at the deadline, or when cancel_grace has passed after a cancellation. For
    /// compute-bound plugins (training): each invocation pays a process start and a load
    /// (milliseconds, BENCHMARKS.md), and a crash or out-of-memory kill of the child ends only
    /// that invocation. Needs the worker's child process (`mlx-worker run`); tools that run
    /// a plugin once (`plugin invoke`) run it in-process.
    Process,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    /// Off by default: making and removing a directory is most of the cost of a small
    /// invocation, so only plugins that ask for one pay for it.
    #[serde(default)]
    scratch: bool,
    #[serde(default)]
    isolation: Isolation,
    #[serde(default)]
    filesystem: Vec<DirGrantFile>,
    #[serde(default)]
    limits: LimitsFile,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    config: BTreeMap<String, String>,
    #[serde(default)]
    secrets: BTreeMap<String, SecretFile>,
    http: Option<HttpSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirGrantFile {
    host: PathBuf,
    guest: String,
    #[serde(default)]
    access: Access,
}

/// A host directory made visible to the guest.
#[derive(Debug, Clone, PartialEq)]
pub struct DirGrant {
    /// Canonical host path, checked to exist at load.
    pub host: PathBuf,
    pub guest: String,
    pub access: Access,
}

/// What an operator granted one plugin, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manifest {
    /// Where it came from, if the plugin has one.
    pub source: Option<PathBuf>,
    pub dirs: Vec<DirGrant>,
    /// A fresh, empty `/scratch` for each invocation (`scratch = true`).
    pub scratch: bool,
    /// In the worker's process or a child of it (`isolation`).
    pub isolation: Isolation,
    pub limits: Limits,
    /// Environment variables the plugin sees.
    pub env: BTreeMap<String, String>,
    /// `[config]` values and granted `[secrets]`.
    pub config: Arc<ConfigGrant>,
    /// Outbound HTTP, if granted (`wasi:http` imports are refused without it).
    pub http: Option<Arc<HttpGrant>>,
    /// The file's text as read, for a child process that must grant exactly this
    /// ([`crate::isolated`]) even after the file changed; None without a file.
    pub text: Option<Arc<str>>,
}

impl Manifest {
    /// Whether the manifest has the section that grants a capability
    /// ([`crate::sandbox::capabilities::Policy::Grant`]).
    pub fn grants(&self, section: &str) -> bool {
        match section {
            crate::sandbox::capabilities::http::SECTION => self.http.is_some(),
            _ => false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("plugin manifest {}: {message}", path.display())]
pub struct ManifestError {
    pub path: PathBuf,
    pub message: String,
}

/// The manifest path that belongs to a component: same stem, `.toml`.
pub fn manifest_path_for(wasm: &Path) -> PathBuf {
    wasm.with_extension("toml")
}

/// Loads the manifest next to `wasm`, or the defaults when there is none.
pub fn load_for(wasm: &Path, max_memory_bytes: u64) -> Result<Manifest, ManifestError> {
    let path = manifest_path_for(wasm);
    let text = match path.exists() {
        true => Some(std::fs::read_to_string(&path).map_err(|e| ManifestError {
            path: path.clone(),
            message: format!("cannot read: {e}"),
        })?),
        false => None,
    };
    from_text(wasm, text.as_deref(), max_memory_bytes)
}

/// The manifest of `wasm` whose file holds `text` (None: there is none, the defaults), as
/// [`load_for`] reads it; a child process is given the text the worker read.
pub fn from_text(
    wasm: &Path,
    text: Option<&str>,
    max_memory_bytes: u64,
) -> Result<Manifest, ManifestError> {
    let path = manifest_path_for(wasm);
    let Some(text) = text else {
        let limits = LimitsFile::default()
            .resolve(max_memory_bytes)
            .map_err(|message| ManifestError {
                path: path.clone(),
                message,
            })?;
        return Ok(Manifest {
            limits,
            ..Default::default()
        });
    };
    let fail = |message: String| ManifestError {
        path: path.clone(),
        message,
    };
    parse(text, &path, max_memory_bytes).map_err(fail)
}

fn parse(text: &str, path: &Path, max_memory_bytes: u64) -> Result<Manifest, String> {
    let file: ManifestFile = toml::from_str(text).map_err(|e| e.to_string())?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut dirs: Vec<DirGrant> = Vec::with_capacity(file.filesystem.len());
    for (i, grant) in file.filesystem.into_iter().enumerate() {
        let key = format!("filesystem[{i}]");
        if !grant.guest.starts_with('/') || grant.guest.split('/').any(|c| c == "..") {
            return Err(format!(
                "{key}.guest = {:?} must be an absolute guest path without `..` (e.g. \"/data\")",
                grant.guest
            ));
        }
        if grant.guest == ARTIFACTS_GUEST_PATH || grant.guest == SCRATCH_GUEST_PATH {
            return Err(format!(
                "{key}.guest = {:?} is reserved: every plugin gets {ARTIFACTS_GUEST_PATH} \
                 (the workflow's artifacts), and {SCRATCH_GUEST_PATH} is its own scratch \
                 space (`scratch = true`)",
                grant.guest
            ));
        }
        if dirs.iter().any(|d| d.guest == grant.guest) {
            return Err(format!("{key}.guest = {:?} is granted twice", grant.guest));
        }
        let host = base.join(&grant.host);
        let host = host.canonicalize().map_err(|e| {
            format!(
                "{key}.host = {:?} ({}) is not usable: {e}; create it or fix the path \
                 (relative paths are relative to the manifest)",
                grant.host,
                host.display()
            )
        })?;
        if !host.is_dir() {
            return Err(format!("{key}.host = {:?} is not a directory", grant.host));
        }
        dirs.push(DirGrant {
            host,
            guest: grant.guest,
            access: grant.access,
        });
    }
    let limits = file.limits.resolve(max_memory_bytes)?;
    for key in file.env.keys() {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            return Err(format!(
                "env.{key:?} is not a valid environment variable name"
            ));
        }
    }
    let config = Arc::new(ConfigGrant::parse(file.config, file.secrets, base)?);
    let http = file.http.map(|h| h.grant(base)).transpose()?.map(Arc::new);
    Ok(Manifest {
        http,
        source: Some(path.to_path_buf()),
        dirs,
        scratch: file.scratch,
        isolation: file.isolation,
        limits,
        env: file.env,
        config,
        text: Some(text.into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in(dir: &Path, text: &str) -> Result<Manifest, String> {
        parse(text, &dir.join("p.toml"), 4 << 30)
    }

    #[test]
    fn grants_resolve_relative_to_manifest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let m = parse_in(
            dir.path(),
            "[[filesystem]]\nhost = \"data\"\nguest = \"/data\"\n",
        )
        .unwrap();
        assert_eq!(m.dirs.len(), 1);
        assert_eq!(m.dirs[0].access, Access::ReadOnly);
        assert_eq!(
            m.dirs[0].host,
            dir.path().join("data").canonicalize().unwrap()
        );
    }

    #[test]
    fn scratch_is_off_unless_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!parse_in(dir.path(), "").unwrap().scratch);
        assert!(
            !load_for(&dir.path().join("none.wasm"), 4 << 30)
                .unwrap()
                .scratch
        );
        assert!(parse_in(dir.path(), "scratch = true\n").unwrap().scratch);
    }

    #[test]
    fn isolation_is_the_instance_unless_a_process_is_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            parse_in(dir.path(), "").unwrap().isolation,
            Isolation::Instance
        );
        let process = parse_in(dir.path(), "isolation = \"process\"\n").unwrap();
        assert_eq!(process.isolation, Isolation::Process);
        let err = parse_in(dir.path(), "isolation = \"vm\"\n").unwrap_err();
        assert!(err.contains("instance") && err.contains("process"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let err = parse_in(dir.path(), "[limits]\nmemory_gb = 1\n").unwrap_err();
        assert!(err.contains("memory_gb"), "{err}");
    }

    #[test]
    fn missing_host_dir_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let err = parse_in(
            dir.path(),
            "[[filesystem]]\nhost = \"nope\"\nguest = \"/data\"\n",
        )
        .unwrap_err();
        assert!(err.contains("filesystem[0].host"), "{err}");
    }

    #[test]
    fn secrets_are_checked_at_load_without_revealing_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "s3cr3t\n").unwrap();
        let m = parse_in(dir.path(), "[secrets]\ntoken = { file = \"token\" }\n").unwrap();
        assert_eq!(m.config.secrets["token"].read().unwrap(), "s3cr3t");
        assert!(!format!("{m:?}").contains("s3cr3t"));

        let err = parse_in(
            dir.path(),
            "[secrets]\nt = { env = \"MLX_TEST_SURELY_UNSET_VAR\" }\n",
        )
        .unwrap_err();
        assert!(
            err.contains("secrets.t") && err.contains("MLX_TEST_SURELY_UNSET_VAR"),
            "{err}"
        );
        let err = parse_in(dir.path(), "[secrets]\nt = {}\n").unwrap_err();
        assert!(err.contains("exactly one source"), "{err}");
    }

    #[test]
    fn artifacts_path_is_reserved() {
        let dir = tempfile::tempdir().unwrap();
        let err = parse_in(
            dir.path(),
            "[[filesystem]]\nhost = \".\"\nguest = \"/artifacts\"\n",
        )
        .unwrap_err();
        assert!(err.contains("reserved"), "{err}");
    }
}
