//! Plugins as OCI artifacts: `plugin push`, `plugin pull` and the worker's pinned
//! `worker.plugin_refs`, all through this module (format and reasons: docs/oci.md).
//!
//! The shape of the module, top to bottom: [`PluginRef`] (an `oci://` reference, and the rule
//! that a worker's are pinned by digest); the artifact format ([`artifact_manifest`]: the CNCF
//! Wasm OCI format `wkg oci push` writes, plus this project's manifest layer); [`Access`] (plain
//! HTTP on loopback, credentials); [`push`] and [`fetch`], which verifies every digest before
//! anything is returned; [`install`], which renames files into a plugins directory so the
//! watcher never sees half a file; and [`pull_pinned`], what the worker does at start.

use std::{
    collections::{BTreeMap, HashSet},
    fmt,
    io::Write,
    net::IpAddr,
    path::{Path, PathBuf},
    pin::Pin,
    str::FromStr,
    task::{Context, Poll},
    time::Duration,
};

use base64::Engine;
use oci_client::{
    Client, Reference,
    client::{ClientConfig, ClientProtocol},
    errors::{OciDistributionError, OciErrorCode},
    manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest},
    secrets::RegistryAuth,
};
use sha2::{Digest, Sha256};

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

/// What a push sends: the component, its manifest if it has one, and what to annotate.
pub struct Artifact {
    pub name: String,
    pub version: Option<String>,
    pub wasm: Vec<u8>,
    pub manifest: Option<Vec<u8>>,
}

/// The config blob of the CNCF Wasm OCI format, as `wkg` writes it. `component` lists the
/// component's top-level imports and exports (cheap: read from the binary, nothing compiled).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WasmConfig {
    created: String,
    architecture: String,
    os: String,
    layer_digests: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    component: Option<ComponentWorld>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct ComponentWorld {
    exports: Vec<String>,
    imports: Vec<String>,
    target: Option<String>,
}

/// The component's own import and export names (not those of the modules inside it); `None`
/// when `wasm` is not a component.
fn component_world(wasm: &[u8]) -> Option<ComponentWorld> {
    use wasmparser::{Encoding, Parser, Payload};
    let mut world = ComponentWorld {
        exports: Vec::new(),
        imports: Vec::new(),
        target: None,
    };
    // Nested modules and components each begin with a Version and end with an End.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.ok()? {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding != Encoding::Component {
                    return None;
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    world.imports.push(import.ok()?.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    world.exports.push(export.ok()?.name.name.to_string());
                }
            }
            _ => {}
        }
    }
    Some(world)
}

/// The blobs and manifest of `artifact`, in push order: layers (the component first, then the
/// plugin manifest), config, and the OCI image manifest's bytes last.
fn artifact_manifest(artifact: &Artifact) -> Result<(Vec<Blob>, Blob, Vec<u8>), OciError> {
    let mut layers = vec![Blob::new(WASM_LAYER_MEDIA_TYPE, artifact.wasm.clone())];
    if let Some(manifest) = &artifact.manifest {
        layers.push(Blob::new(MANIFEST_LAYER_MEDIA_TYPE, manifest.clone()));
    }
    let config = WasmConfig {
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        architecture: "wasm".into(),
        os: "wasip2".into(),
        layer_digests: layers.iter().map(|l| l.digest.clone()).collect(),
        component: component_world(&artifact.wasm),
    };
    let config = Blob::new(
        CONFIG_MEDIA_TYPE,
        serde_json::to_vec(&config).expect("a config serializes"),
    );
    let mut annotations = BTreeMap::from([(TITLE_ANNOTATION.to_string(), artifact.name.clone())]);
    if let Some(version) = &artifact.version {
        annotations.insert(VERSION_ANNOTATION.into(), version.clone());
    }
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.into()),
        config: config.descriptor(),
        layers: layers.iter().map(Blob::descriptor).collect(),
        subject: None,
        artifact_type: None,
        annotations: Some(annotations),
    };
    let bytes = serde_json::to_vec(&manifest).expect("a manifest serializes");
    Ok((layers, config, bytes))
}

struct Blob {
    media_type: &'static str,
    digest: String,
    data: Vec<u8>,
}

impl Blob {
    fn new(media_type: &'static str, data: Vec<u8>) -> Self {
        Self {
            media_type,
            digest: digest_of(&data),
            data,
        }
    }

    fn descriptor(&self) -> OciDescriptor {
        OciDescriptor {
            media_type: self.media_type.into(),
            digest: self.digest.clone(),
            size: self.data.len() as i64,
            ..Default::default()
        }
    }
}

/// How to reach registries: plain HTTP off loopback only when asked (`--insecure`), and the
/// credentials, read once.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub insecure: bool,
}

impl Access {
    fn client(&self, reference: &PluginRef) -> Client {
        install_crypto_provider();
        let protocol = if self.insecure || reference.is_loopback() {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        Client::new(ClientConfig {
            protocol,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: concat!("mlx-worker/", env!("CARGO_PKG_VERSION")),
            // One platform per artifact: an image index is not a plugin.
            platform_resolver: None,
            ..Default::default()
        })
    }
}

/// reqwest is built without a TLS crypto provider of its own (it would bring aws-lc, a C
/// build); ring, which the Temporal connection already uses, is installed once for the process.
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err: another part of the process installed one first, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The credentials for `registry`: `MLX_OCI_USERNAME` and `MLX_OCI_PASSWORD`, else the docker
/// config file's `auths` entry (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`),
/// else anonymous.
pub fn credentials(registry: &str) -> Result<RegistryAuth, OciError> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (var("MLX_OCI_USERNAME"), var("MLX_OCI_PASSWORD")) {
        (Some(user), Some(password)) => return Ok(RegistryAuth::Basic(user, password)),
        (None, None) => {}
        _ => {
            return Err(OciError::Credentials(
                "MLX_OCI_USERNAME and MLX_OCI_PASSWORD go together: set both, or neither".into(),
            ));
        }
    }
    let file = match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => PathBuf::from(dir).join("config.json"),
        None => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".docker/config.json"),
            None => return Ok(RegistryAuth::Anonymous),
        },
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RegistryAuth::Anonymous),
        Err(source) => return Err(OciError::Read { path: file, source }),
    };
    match docker_config_auth(&text, registry) {
        Ok(Some((user, password))) => Ok(RegistryAuth::Basic(user, password)),
        Ok(None) => Ok(RegistryAuth::Anonymous),
        Err(reason) => Err(OciError::Credentials(format!(
            "docker config {}: {reason}",
            file.display()
        ))),
    }
}

/// The `user:password` of `registry` in a docker config file's `auths`, whose keys may carry a
/// scheme and a path (`https://host/v1/`).
fn docker_config_auth(text: &str, registry: &str) -> Result<Option<(String, String)>, String> {
    let config: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Some(auths) = config.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let host_of = |key: &str| {
        let key = key
            .strip_prefix("https://")
            .or_else(|| key.strip_prefix("http://"))
            .unwrap_or(key);
        key.split('/').next().unwrap_or(key).to_string()
    };
    let Some(entry) = auths
        .iter()
        .find(|(key, _)| host_of(key) == registry)
        .map(|(_, entry)| entry)
    else {
        return Ok(None);
    };
    let Some(encoded) = entry.get("auth").and_then(|a| a.as_str()) else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("auths.{registry}.auth is not base64: {e}"))?;
    let decoded = String::from_utf8(decoded)
        .map_err(|_| format!("auths.{registry}.auth is not UTF-8 text"))?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or_else(|| format!("auths.{registry}.auth is not user:password"))?;
    Ok(Some((user.into(), password.into())))
}

/// Runs `call` until it does not fail for want of a registry, [`ATTEMPTS`] times at most.
async fn patiently<T, F, Fut>(reference: &PluginRef, what: &str, mut call: F) -> Result<T, OciError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, OciDistributionError>>,
{
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(e) if is_connection_error(&e) && attempt < ATTEMPTS => {
                tracing::warn!(registry = %reference.registry, attempt, "{what}: registry unreachable, retrying in {backoff:?}: {e}");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                attempt += 1;
            }
            Err(e) => return Err(classify(reference, what, e)),
        }
    }
}

fn is_connection_error(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RequestError(e) => e.is_connect() || e.is_timeout(),
        OciDistributionError::ServerError { code, .. } => matches!(code, 502..=504),
        _ => false,
    }
}

fn classify(reference: &PluginRef, what: &str, e: OciDistributionError) -> OciError {
    fn codes(e: &OciDistributionError) -> Vec<&OciErrorCode> {
        match e {
            OciDistributionError::RegistryError { envelope, .. } => {
                envelope.errors.iter().map(|e| &e.code).collect()
            }
            _ => Vec::new(),
        }
    }
    if is_connection_error(&e) {
        return OciError::Unreachable {
            registry: reference.registry.clone(),
            source: e,
        };
    }
    let found = codes(&e);
    let unauthorized = matches!(
        e,
        OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_)
            | OciDistributionError::ServerError {
                code: 401 | 403,
                ..
            }
    ) || found
        .iter()
        .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied));
    if unauthorized {
        return OciError::Denied {
            registry: reference.registry.clone(),
            reference: reference.to_string(),
        };
    }
    let not_found = matches!(
        e,
        OciDistributionError::ImageManifestNotFoundError(_)
            | OciDistributionError::ServerError { code: 404, .. }
    ) || found.iter().any(|c| {
        matches!(
            c,
            OciErrorCode::ManifestUnknown
                | OciErrorCode::NameUnknown
                | OciErrorCode::NotFound
                | OciErrorCode::BlobUnknown
        )
    });
    if not_found {
        return OciError::NotFound {
            reference: reference.to_string(),
        };
    }
    if let OciDistributionError::DigestError(d) = &e {
        return OciError::DigestMismatch {
            what: format!("{what} of {reference}"),
            expected: reference.digest.clone().unwrap_or_default(),
            actual: d.to_string(),
        };
    }
    OciError::Registry {
        what: format!("{what} of {reference}"),
        source: e,
    }
}

/// Pushes `artifact` to `target` (a tag) and returns the reference pinned by the manifest's
/// digest: what a worker's `plugin_refs` lists.
pub async fn push(
    artifact: &Artifact,
    target: &PluginRef,
    access: &Access,
) -> Result<PluginRef, OciError> {
    check_name(&artifact.name)?;
    if target.digest.is_some() || target.tag.is_none() {
        return Err(RefError::Syntax {
            reference: target.to_string(),
            reason: "push to a tag; the digest is the registry's answer".into(),
        }
        .into());
    }
    if component_world(&artifact.wasm).is_none() {
        return Err(OciError::NotAPlugin {
            reference: target.to_string(),
            reason: "the file is not a WebAssembly component".into(),
        });
    }
    let (layers, config, manifest) = artifact_manifest(artifact)?;
    let client = access.client(target);
    let auth = credentials(&target.registry)?;
    let image = target.client_ref();
    client.store_auth_if_needed(&target.registry, &auth).await;
    for blob in layers.iter().chain([&config]) {
        patiently(target, "pushing a layer", || {
            client.push_blob(&image, blob.data.clone(), &blob.digest)
        })
        .await?;
    }
    let content_type = http::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE);
    patiently(target, "pushing the manifest", || {
        client.push_manifest_raw(&image, manifest.clone(), content_type.clone())
    })
    .await?;
    Ok(target.pinned(&digest_of(&manifest)))
}

/// A plugin fetched and verified: every layer matched its digest, and the manifest matched
/// the reference's digest when it named one.
#[derive(Debug)]
pub struct Fetched {
    /// The digest of the artifact's manifest.
    pub digest: String,
    /// The title annotation, if any.
    pub title: Option<String>,
    pub wasm: Vec<u8>,
    pub manifest: Option<Vec<u8>>,
}

impl Fetched {
    /// `--name` if given, else the title annotation, else the repository's last segment.
    pub fn name(&self, reference: &PluginRef, asked: Option<&str>) -> Result<String, OciError> {
        let name = asked
            .or(self.title.as_deref())
            .unwrap_or_else(|| reference.last_segment())
            .to_string();
        check_name(&name)?;
        Ok(name)
    }
}

/// The layers an artifact's manifest describes, checked for the shape of a plugin.
struct Layers {
    title: Option<String>,
    wasm: OciDescriptor,
    manifest: Option<OciDescriptor>,
}

fn plugin_layers(reference: &PluginRef, manifest: &[u8]) -> Result<Layers, OciError> {
    let not_a_plugin = |reason: String| OciError::NotAPlugin {
        reference: reference.to_string(),
        reason,
    };
    let manifest: OciImageManifest = serde_json::from_slice(manifest)
        .map_err(|e| not_a_plugin(format!("its manifest is not an OCI image manifest: {e}")))?;
    let of_type = |media_type: &str| {
        manifest
            .layers
            .iter()
            .filter(|l| l.media_type == media_type)
            .cloned()
            .collect::<Vec<_>>()
    };
    let mut wasm = of_type(WASM_LAYER_MEDIA_TYPE);
    let mut toml = of_type(MANIFEST_LAYER_MEDIA_TYPE);
    if wasm.len() != 1 || toml.len() > 1 {
        return Err(not_a_plugin(format!(
            "a plugin has one {WASM_LAYER_MEDIA_TYPE} layer and at most one \
             {MANIFEST_LAYER_MEDIA_TYPE} layer; this has {} and {}",
            wasm.len(),
            toml.len()
        )));
    }
    for layer in wasm.iter().chain(&toml) {
        if layer.size < 0 || layer.size as u64 > MAX_LAYER_BYTES {
            return Err(not_a_plugin(format!(
                "a {} layer of {} bytes (at most {MAX_LAYER_BYTES})",
                layer.media_type, layer.size
            )));
        }
    }
    Ok(Layers {
        title: manifest
            .annotations
            .as_ref()
            .and_then(|a| a.get(TITLE_ANNOTATION).cloned()),
        wasm: wasm.remove(0),
        manifest: toml.pop(),
    })
}

/// Fetches the artifact's manifest and checks it against the reference's digest, if it names
/// one. Returns the manifest's bytes and digest.
async fn fetch_manifest(
    client: &Client,
    reference: &PluginRef,
) -> Result<(Vec<u8>, String), OciError> {
    let auth = credentials(&reference.registry)?;
    let image = reference.client_ref();
    let (body, _) = patiently(reference, "fetching the manifest", || {
        client.pull_manifest_raw(&image, &auth, &[OCI_IMAGE_MEDIA_TYPE])
    })
    .await?;
    let actual = digest_of(&body);
    if let Some(expected) = &reference.digest
        && *expected != actual
    {
        return Err(OciError::DigestMismatch {
            what: format!("the manifest of {reference}"),
            expected: expected.clone(),
            actual,
        });
    }
    Ok((body.to_vec(), actual))
}

/// Fetches one layer and checks its size and digest.
async fn fetch_layer(
    client: &Client,
    reference: &PluginRef,
    layer: &OciDescriptor,
) -> Result<Vec<u8>, OciError> {
    let image = reference.client_ref();
    let data = patiently(reference, "fetching a layer", || async {
        let mut out = Capped::new(layer.size as u64);
        client.pull_blob(&image, layer, &mut out).await?;
        Ok(out.data)
    })
    .await
    .map_err(|e| match e {
        // oci-client checks the digest too, while streaming; the same refusal either way.
        OciError::DigestMismatch { actual, .. } => OciError::DigestMismatch {
            what: format!("the {} layer of {reference}", layer.media_type),
            expected: layer.digest.clone(),
            actual,
        },
        other => other,
    })?;
    let actual = digest_of(&data);
    if actual != layer.digest || data.len() as i64 != layer.size {
        return Err(OciError::DigestMismatch {
            what: format!("the {} layer of {reference}", layer.media_type),
            expected: format!("{} ({} bytes)", layer.digest, layer.size),
            actual: format!("{actual} ({} bytes)", data.len()),
        });
    }
    Ok(data)
}

/// Fetches the plugin `reference` names and verifies every digest. Nothing is written.
pub async fn fetch(reference: &PluginRef, access: &Access) -> Result<Fetched, OciError> {
    let client = access.client(reference);
    let (manifest, digest) = fetch_manifest(&client, reference).await?;
    let layers = plugin_layers(reference, &manifest)?;
    let wasm = fetch_layer(&client, reference, &layers.wasm).await?;
    let manifest = match &layers.manifest {
        Some(layer) => Some(fetch_layer(&client, reference, layer).await?),
        None => None,
    };
    Ok(Fetched {
        digest,
        title: layers.title,
        wasm,
        manifest,
    })
}

/// Writes `NAME.toml` (if the artifact has one) and then `NAME.wasm` into `dir`, each to a
/// temporary file in `dir` renamed into place: the directory watcher sees whole files or none
/// (a rename within one filesystem is atomic; the temporary names are not `.wasm`/`.toml`).
pub fn install(dir: &Path, name: &str, fetched: &Fetched) -> Result<(), OciError> {
    check_name(name)?;
    if let Some(manifest) = &fetched.manifest {
        write_atomically(&dir.join(format!("{name}.toml")), manifest)?;
    }
    write_atomically(&dir.join(format!("{name}.wasm")), &fetched.wasm)
}

fn write_atomically(path: &Path, data: &[u8]) -> Result<(), OciError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let fail = |source| OciError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".oci-pull-")
        .suffix(".partial")
        .tempfile_in(dir)
        .map_err(fail)?;
    tmp.write_all(data).map_err(fail)?;
    // A temporary file is private (0600); the plugin file is an ordinary one.
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(fail)?;
    }
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// Whether `path` holds exactly the bytes of `digest`.
fn holds(path: &Path, digest: &str) -> bool {
    std::fs::read(path).is_ok_and(|data| digest_of(&data) == digest)
}

/// At the worker's start: each pinned reference into `plugins_dir`. An artifact whose files
/// are already there with the same digests is not downloaded; its manifest is kept in
/// `cache_dir/oci/` (checked against the pinned digest on every read), so a restart with
/// everything in place needs no registry at all.
pub async fn pull_pinned(
    refs: &[PluginRef],
    plugins_dir: &Path,
    cache_dir: &Path,
    access: &Access,
) -> Result<(), OciError> {
    let manifests = cache_dir.join("oci");
    let mut names: BTreeMap<String, &PluginRef> = BTreeMap::new();
    let mut seen = HashSet::new();
    for reference in refs {
        let Some(pinned) = reference.digest.as_deref() else {
            return Err(RefError::NotPinned(reference.to_string()).into());
        };
        if !seen.insert(pinned) {
            continue;
        }
        let client = access.client(reference);
        let cached = manifests.join(pinned.replace(':', "-"));
        let manifest = match std::fs::read(&cached) {
            Ok(bytes) if digest_of(&bytes) == pinned => bytes,
            _ => {
                let (bytes, _) = fetch_manifest(&client, reference).await?;
                std::fs::create_dir_all(&manifests).map_err(|source| OciError::Write {
                    path: manifests.clone(),
                    source,
                })?;
                write_atomically(&cached, &bytes)?;
                bytes
            }
        };
        let layers = plugin_layers(reference, &manifest)?;
        let fetched_title = Fetched {
            digest: pinned.into(),
            title: layers.title.clone(),
            wasm: Vec::new(),
            manifest: None,
        };
        let name = fetched_title.name(reference, None)?;
        if let Some(first) = names.insert(name.clone(), reference) {
            return Err(OciError::DuplicateName {
                name,
                first: first.to_string(),
                second: reference.to_string(),
            });
        }
        let wasm_path = plugins_dir.join(format!("{name}.wasm"));
        let toml_path = plugins_dir.join(format!("{name}.toml"));
        let present = holds(&wasm_path, &layers.wasm.digest)
            && layers
                .manifest
                .as_ref()
                .is_none_or(|m| holds(&toml_path, &m.digest));
        if present {
            tracing::info!(plugin = %name, reference = %reference, "plugin from the registry already in place");
            continue;
        }
        let wasm = fetch_layer(&client, reference, &layers.wasm).await?;
        let toml = match &layers.manifest {
            Some(layer) => Some(fetch_layer(&client, reference, layer).await?),
            None => None,
        };
        install(
            plugins_dir,
            &name,
            &Fetched {
                wasm,
                manifest: toml,
                ..fetched_title
            },
        )?;
        tracing::info!(plugin = %name, reference = %reference, "pulled plugin from the registry");
    }
    Ok(())
}

/// An in-memory writer that refuses more than the size the manifest declared: a registry
/// must not make the worker allocate without bound.
struct Capped {
    data: Vec<u8>,
    limit: u64,
}

impl Capped {
    fn new(limit: u64) -> Self {
        Self {
            // Grown as bytes arrive beyond the first 64 MiB: a declared size is only a claim.
            data: Vec::with_capacity(limit.min(64 << 20) as usize),
            limit,
        }
    }
}

impl tokio::io::AsyncWrite for Capped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if (self.data.len() + buf.len()) as u64 > self.limit {
            return Poll::Ready(Err(std::io::Error::other(format!(
                "the registry sent more than the {} bytes the manifest declares",
                self.limit
            ))));
        }
        self.data.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn references_parse_and_print_back() {
        let text = format!("oci://127.0.0.1:5000/team/testkit:1.0@sha256:{HEX}");
        let r: PluginRef = text.parse().unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/testkit");
        assert_eq!(r.tag.as_deref(), Some("1.0"));
        assert_eq!(r.digest, Some(format!("sha256:{HEX}")));
        assert_eq!(r.to_string(), text);
        assert_eq!(r.last_segment(), "testkit");
        let tagged: PluginRef = "oci://ghcr.io/acme/plugins/csv:v2".parse().unwrap();
        assert_eq!(tagged.registry, "ghcr.io");
        assert_eq!(tagged.repository, "acme/plugins/csv");
        assert_eq!(
            tagged.pinned(&format!("sha256:{HEX}")).to_string(),
            format!("oci://ghcr.io/acme/plugins/csv@sha256:{HEX}")
        );
    }

    #[test]
    fn malformed_references_are_refused_saying_the_shape() {
        for bad in [
            "ghcr.io/acme/csv:v1",
            "oci://ghcr.io",
            "oci:///csv:v1",
            "oci://ghcr.io/Acme/csv:v1",
            "oci://ghcr.io/acme/csv",
            "oci://ghcr.io/acme/csv@sha256:abc",
            "oci://ghcr.io/acme/csv@md5:0123",
            "oci://ghcr.io/acme/csv:.bad",
        ] {
            let err = bad.parse::<PluginRef>().unwrap_err();
            assert!(
                err.to_string().contains("oci://HOST/REPOSITORY"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_worker_reference_must_be_pinned_by_digest() {
        let err = PluginRef::parse_pinned("oci://localhost:5000/testkit:latest").unwrap_err();
        assert!(matches!(err, RefError::NotPinned(_)));
        assert!(err.to_string().contains("pin it"), "{err}");
        PluginRef::parse_pinned(&format!("oci://localhost:5000/testkit@sha256:{HEX}")).unwrap();
    }

    #[test]
    fn a_tag_in_the_worker_configuration_is_refused_naming_the_key() {
        let file: crate::config::ConfigFile = toml::from_str(
            "[worker]\nplugins_dir = \"p\"\nplugin_refs = [\"oci://localhost:5000/testkit:v1\"]\n",
        )
        .unwrap();
        let err = file.resolve().unwrap_err().to_string();
        assert!(
            err.contains("worker.plugin_refs") && err.contains("pin it"),
            "{err}"
        );
        let pinned = format!("oci://localhost:5000/testkit@sha256:{HEX}");
        let file: crate::config::ConfigFile = toml::from_str(&format!(
            "[worker]\nplugins_dir = \"p\"\nplugin_refs = [\"{pinned}\"]\n"
        ))
        .unwrap();
        let settings = file.resolve().unwrap();
        assert_eq!(settings.plugin_refs.len(), 1);
        assert_eq!(settings.plugin_refs[0].to_string(), pinned);
    }

    #[test]
    fn only_loopback_registries_are_plain_http_by_default() {
        let r = |host: &str| format!("oci://{host}/p:1").parse::<PluginRef>().unwrap();
        assert!(r("localhost:5000").is_loopback());
        assert!(r("127.0.0.1:5000").is_loopback());
        assert!(r("127.8.9.10").is_loopback());
        assert!(r("[::1]:5000").is_loopback());
        assert!(!r("ghcr.io").is_loopback());
        assert!(!r("10.0.0.1:5000").is_loopback());
        assert!(!r("localhost.example.com").is_loopback());
    }

    #[test]
    fn the_artifact_is_the_wasm_format_with_the_manifest_as_a_second_layer() {
        // The smallest component: the preamble of the component encoding.
        let wasm = b"\0asm\x0d\0\x01\0".to_vec();
        let artifact = Artifact {
            name: "testkit".into(),
            version: Some("0.3.0".into()),
            wasm: wasm.clone(),
            manifest: Some(b"[limits]\n".to_vec()),
        };
        let (layers, config, bytes) = artifact_manifest(&artifact).unwrap();
        let manifest: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(manifest["mediaType"], OCI_IMAGE_MEDIA_TYPE);
        assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
        assert_eq!(manifest["layers"][0]["mediaType"], WASM_LAYER_MEDIA_TYPE);
        assert_eq!(manifest["layers"][0]["digest"], digest_of(&wasm));
        assert_eq!(
            manifest["layers"][1]["mediaType"],
            MANIFEST_LAYER_MEDIA_TYPE
        );
        assert_eq!(manifest["annotations"][TITLE_ANNOTATION], "testkit");
        assert_eq!(manifest["annotations"][VERSION_ANNOTATION], "0.3.0");
        let config: serde_json::Value = serde_json::from_slice(&config.data).unwrap();
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(config["os"], "wasip2");
        assert_eq!(
            config["layerDigests"],
            serde_json::json!([layers[0].digest, layers[1].digest])
        );
        assert_eq!(config["component"]["imports"], serde_json::json!([]));
        // And it reads back as a plugin.
        let r: PluginRef = "oci://localhost/testkit:1".parse().unwrap();
        let read = plugin_layers(&r, &bytes).unwrap();
        assert_eq!(read.title.as_deref(), Some("testkit"));
        assert_eq!(read.wasm.digest, digest_of(&wasm));
        assert!(read.manifest.is_some());
    }

    #[test]
    fn a_core_module_is_not_a_component() {
        assert!(component_world(b"\0asm\x01\0\0\0").is_none());
        assert!(component_world(b"not wasm").is_none());
    }

    #[test]
    fn an_artifact_without_exactly_one_wasm_layer_is_not_a_plugin() {
        let r: PluginRef = "oci://localhost/x:1".parse().unwrap();
        let manifest = |layers: serde_json::Value| {
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": format!("sha256:{HEX}"), "size": 2},
                "layers": layers,
            }))
            .unwrap()
        };
        let layer = |t: &str| serde_json::json!({"mediaType": t, "digest": format!("sha256:{HEX}"), "size": 1});
        assert!(matches!(
            plugin_layers(
                &r,
                &manifest(serde_json::json!([layer("application/x-tar")]))
            ),
            Err(OciError::NotAPlugin { .. })
        ));
        assert!(matches!(
            plugin_layers(
                &r,
                &manifest(serde_json::json!([
                    layer(WASM_LAYER_MEDIA_TYPE),
                    layer(WASM_LAYER_MEDIA_TYPE)
                ]))
            ),
            Err(OciError::NotAPlugin { .. })
        ));
        let only_wasm = plugin_layers(
            &r,
            &manifest(serde_json::json!([layer(WASM_LAYER_MEDIA_TYPE)])),
        )
        .unwrap();
        assert!(only_wasm.manifest.is_none() && only_wasm.title.is_none());
    }

    #[test]
    fn the_name_is_the_flag_else_the_title_else_the_last_segment() {
        let r: PluginRef = "oci://localhost/team/scorer:1".parse().unwrap();
        let fetched = |title: Option<&str>| Fetched {
            digest: String::new(),
            title: title.map(Into::into),
            wasm: Vec::new(),
            manifest: None,
        };
        assert_eq!(fetched(Some("csv")).name(&r, Some("mine")).unwrap(), "mine");
        assert_eq!(fetched(Some("csv")).name(&r, None).unwrap(), "csv");
        assert_eq!(fetched(None).name(&r, None).unwrap(), "scorer");
        // A title is the registry's word, and becomes a file name: no paths, no hidden files.
        for evil in ["../../etc/x", ".hidden", "a/b", "", "x.wasm"] {
            assert!(matches!(
                fetched(Some(evil)).name(&r, None),
                Err(OciError::Name(_))
            ));
        }
    }

    #[test]
    fn docker_config_credentials_are_found_by_host() {
        let auth = base64::engine::general_purpose::STANDARD.encode("ann:s3cret");
        let config = format!(
            r#"{{"auths": {{"https://registry.example:5000/v1/": {{"auth": "{auth}"}},
                "other.example": {{}}}}}}"#
        );
        assert_eq!(
            docker_config_auth(&config, "registry.example:5000").unwrap(),
            Some(("ann".into(), "s3cret".into()))
        );
        assert_eq!(docker_config_auth(&config, "other.example").unwrap(), None);
        assert_eq!(docker_config_auth(&config, "nowhere").unwrap(), None);
        assert!(docker_config_auth(r#"{"auths": {"h": {"auth": "!!"}}}"#, "h").is_err());
    }

    #[test]
    fn install_writes_whole_files_and_leaves_no_temporary_ones() {
        let dir = tempfile::tempdir().unwrap();
        let fetched = Fetched {
            digest: String::new(),
            title: None,
            wasm: b"wasm bytes".to_vec(),
            manifest: Some(b"[limits]\n".to_vec()),
        };
        install(dir.path(), "p", &fetched).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("p.wasm")).unwrap(),
            b"wasm bytes"
        );
        assert_eq!(
            std::fs::read(dir.path().join("p.toml")).unwrap(),
            b"[limits]\n"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        assert!(holds(&dir.path().join("p.wasm"), &digest_of(b"wasm bytes")));
        assert!(!holds(&dir.path().join("p.wasm"), &digest_of(b"other")));
    }

    #[test]
    fn which_failures_a_retry_cannot_fix() {
        assert!(
            OciError::NotFound {
                reference: "r".into()
            }
            .is_permanent()
        );
        assert!(
            OciError::DigestMismatch {
                what: "w".into(),
                expected: "a".into(),
                actual: "b".into()
            }
            .is_permanent()
        );
        let unreachable = OciError::Unreachable {
            registry: "h".into(),
            source: OciDistributionError::GenericError(None),
        };
        assert!(unreachable.is_unreachable() && !unreachable.is_permanent());
    }
}
