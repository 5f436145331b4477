//! Plugins as OCI artifacts: `plugin push`, `plugin pull` and the worker's pinned
//! `worker.plugin_refs`, all through this module (format and reasons: docs/oci.md).
//!
//! Here: [`PluginRef`] (an `oci://` reference, and the rule that a worker's are pinned by
//! digest), the errors, and what a name from a registry may be. Then `artifact` (the CNCF Wasm
//! OCI format `wkg oci push` writes, plus this project's manifest layer), `registry` (plain
//! HTTP on loopback, credentials, [`push`], and [`fetch`], which verifies every digest before
//! anything is returned, and [`install`], which renames files into a plugins directory so the
//! watcher never sees half a file), and `pinned` (what the worker does with its
//! `plugin_refs` at start and when its configuration is re-read).

use std::{fmt, net::IpAddr, path::PathBuf, str::FromStr, time::Duration};

use oci_client::{Reference, errors::OciDistributionError};
use sha2::{Digest, Sha256};

mod artifact;
mod pinned;
mod registry;
#[cfg(test)]
mod tests;

pub use artifact::Artifact;
pub use pinned::{Installed, pull_pinned, remove_dropped};
pub use registry::{Access, Fetched, credentials, fetch, install, push};

/// The config blob's media type in the CNCF Wasm OCI format.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The component's layer: first, so that tools knowing only the Wasm format find it.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The plugin's manifest (`NAME.toml`, its grants and limits) as a second layer.
pub const MANIFEST_LAYER_MEDIA_TYPE: &str = "application/vnd.mlx.plugin.manifest.v1+toml";
/// The annotation naming the plugin (the file name a pull writes).
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
pub const VERSION_ANNOTATION: &str = "org.opencontainers.image.version";

/// Largest layer fetched. Components are tens of MiB at most; the cap keeps a registry that
/// lies about a size (or streams without end) from making the worker allocate without bound.
const MAX_LAYER_BYTES: u64 = 1 << 30;
/// Attempts at an unreachable registry before giving up, and the first wait between them
/// (doubled each time: 1 + 2 + 4 s).
const ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// What is wrong with a reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefError {
    #[error(
        "`{reference}` is not a plugin reference ({reason}): write \
         oci://HOST/REPOSITORY:TAG or oci://HOST/REPOSITORY@sha256:DIGEST"
    )]
    Syntax { reference: String, reason: String },
    #[error(
        "`{0}` names a tag, not a digest: pin it as oci://HOST/REPOSITORY@sha256:DIGEST \
         (`mlx-worker plugin push` prints it), so every worker runs identical bytes"
    )]
    NotPinned(String),
}

/// Why a push or a pull did not happen. Each says what to do; [`OciError::is_unreachable`]
/// and [`OciError::is_permanent`] tell a caller how to exit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OciError {
    #[error(transparent)]
    Ref(#[from] RefError),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Tried [`ATTEMPTS`] times.
    #[error(
        "registry {registry} unreachable after {ATTEMPTS} attempts: {source} (is it up? \
         a registry off loopback is HTTPS unless --insecure)"
    )]
    Unreachable {
        registry: String,
        #[source]
        source: OciDistributionError,
    },
    #[error(
        "registry {registry} refused the credentials for {reference}: set MLX_OCI_USERNAME and \
         MLX_OCI_PASSWORD, or log in (docker login) so the docker config file holds them"
    )]
    Denied { registry: String, reference: String },
    #[error("{reference} not found in the registry (check the repository, tag or digest)")]
    NotFound { reference: String },
    #[error("{what}: {source}")]
    Registry {
        what: String,
        #[source]
        source: OciDistributionError,
    },
    #[error(
        "{what} does not match its digest (expected {expected}, got {actual}); refused, \
         nothing was written"
    )]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{reference} is not a plugin artifact: {reason}")]
    NotAPlugin { reference: String, reason: String },
    #[error("`{0}` cannot be a plugin name: use letters, digits, `_` and `-` (pass --name)")]
    Name(String),
    #[error("{0}")]
    Credentials(String),
    #[error("plugin `{name}` comes from both {first} and {second}: keep one of them")]
    DuplicateName {
        name: String,
        first: String,
        second: String,
    },
}

impl OciError {
    /// The registry could not be reached at all (exit 69 for a command).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, OciError::Unreachable { .. })
    }

    /// Repeating the same request will not help: fix the reference, credentials or artifact.
    pub fn is_permanent(&self) -> bool {
        !matches!(
            self,
            OciError::Unreachable { .. }
                | OciError::Registry { .. }
                | OciError::Read { .. }
                | OciError::Write { .. }
        )
    }
}

/// `oci://HOST[:PORT]/REPOSITORY[:TAG][@sha256:HEX]`. The host is always written: no
/// Docker Hub default, so a reference means the same registry on every machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRef {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl PluginRef {
    /// A reference for a worker's configuration: it must name a digest.
    pub fn parse_pinned(text: &str) -> Result<Self, RefError> {
        let reference: Self = text.parse()?;
        if reference.digest.is_none() {
            return Err(RefError::NotPinned(text.into()));
        }
        Ok(reference)
    }

    /// This artifact pinned by the digest of its manifest.
    pub fn pinned(&self, digest: &str) -> Self {
        Self {
            tag: None,
            digest: Some(digest.into()),
            ..self.clone()
        }
    }

    /// The plugin name a pull falls back to: the repository's last path segment.
    pub fn last_segment(&self) -> &str {
        self.repository
            .rsplit('/')
            .next()
            .unwrap_or(&self.repository)
    }

    fn host(&self) -> &str {
        let registry = self.registry.as_str();
        if let Some(rest) = registry.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        registry.split(':').next().unwrap_or(registry)
    }

    /// Loopback registries are reached over plain HTTP: a local test or mirror registry has
    /// no certificate, and traffic that never leaves the machine gains nothing from TLS.
    pub fn is_loopback(&self) -> bool {
        let host = self.host();
        host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    fn client_ref(&self) -> Reference {
        match (&self.tag, &self.digest) {
            (Some(tag), Some(digest)) => Reference::with_tag_and_digest(
                self.registry.clone(),
                self.repository.clone(),
                tag.clone(),
                digest.clone(),
            ),
            (None, Some(digest)) => Reference::with_digest(
                self.registry.clone(),
                self.repository.clone(),
                digest.clone(),
            ),
            (tag, None) => Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                tag.clone().unwrap_or_else(|| "latest".into()),
            ),
        }
    }
}

impl FromStr for PluginRef {
    type Err = RefError;

    fn from_str(text: &str) -> Result<Self, RefError> {
        let bad = |reason: &str| RefError::Syntax {
            reference: text.into(),
            reason: reason.into(),
        };
        let rest = text
            .strip_prefix("oci://")
            .ok_or_else(|| bad("it must start with oci://"))?;
        let (registry, rest) = rest
            .split_once('/')
            .ok_or_else(|| bad("no repository after the host"))?;
        if registry.is_empty() || registry.contains(['@', ' ']) {
            return Err(bad("no host"));
        }
        let (rest, digest) = match rest.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (rest, None),
        };
        if let Some(digest) = digest {
            let hex = digest
                .strip_prefix("sha256:")
                .ok_or_else(|| bad("the digest must be sha256:"))?;
            if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return Err(bad("a sha256 digest is 64 lowercase hex digits"));
            }
        }
        // A colon after the last slash starts the tag.
        let (repository, tag) = match rest.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, Some(tag)),
            _ => (rest, None),
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
                && c.as_bytes()[0].is_ascii_alphanumeric()
        };
        if !repository.split('/').all(component_ok) {
            return Err(bad(
                "a repository is lowercase letters, digits, `.`, `_` and `-` between slashes",
            ));
        }
        if let Some(tag) = tag {
            let ok = (1..=128).contains(&tag.len())
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
                && !tag.starts_with(['.', '-']);
            if !ok {
                return Err(bad("a tag is up to 128 letters, digits, `.`, `_` and `-`"));
            }
        }
        if tag.is_none() && digest.is_none() {
            return Err(bad("no tag or digest"));
        }
        Ok(Self {
            registry: registry.into(),
            repository: repository.into(),
            tag: tag.map(Into::into),
            digest: digest.map(Into::into),
        })
    }
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci://{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// `sha256:<hex>` of `bytes`, as OCI writes digests.
pub fn digest_of(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for b in hash {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A plugin name from a registry becomes a file name in the plugins directory: only plain
/// names, so an annotation cannot write `../../somewhere` or a hidden file.
pub fn check_name(name: &str) -> Result<(), OciError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(OciError::Name(name.into()))
    }
}
