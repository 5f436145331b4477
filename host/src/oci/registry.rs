//! Talking to registries: how they are reached (plain HTTP on loopback only, credentials),
//! retries while one is unreachable, what its failures mean, and push, fetch and install.

use std::{
    io::Write,
    path::{Path, PathBuf},
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use base64::Engine;
use oci_client::{
    Client,
    client::{ClientConfig, ClientProtocol},
    errors::{OciDistributionError, OciErrorCode},
    manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest},
    secrets::RegistryAuth,
};

use super::{
    ATTEMPTS, FIRST_BACKOFF, MANIFEST_LAYER_MEDIA_TYPE, MAX_LAYER_BYTES, OciError, PluginRef,
    RefError, TITLE_ANNOTATION, WASM_LAYER_MEDIA_TYPE,
    artifact::{Artifact, artifact_manifest, component_world},
    check_name, digest_of,
};

/// credentials, read once.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub insecure: bool,
}

impl Access {
    pub(super) fn client(&self, reference: &PluginRef) -> Client {
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
pub(super) fn docker_config_auth(
    text: &str,
    registry: &str,
) -> Result<Option<(String, String)>, String> {
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
pub(super) async fn patiently<T, F, Fut>(
    reference: &PluginRef,
    what: &str,
    mut call: F,
) -> Result<T, OciError>
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

pub(super) fn is_connection_error(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RequestError(e) => e.is_connect() || e.is_timeout(),
        OciDistributionError::ServerError { code, .. } => matches!(code, 502..=504),
        _ => false,
    }
}

pub(super) fn classify(reference: &PluginRef, what: &str, e: OciDistributionError) -> OciError {
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
pub(super) struct Layers {
    pub(super) title: Option<String>,
    pub(super) wasm: OciDescriptor,
    pub(super) manifest: Option<OciDescriptor>,
}

pub(super) fn plugin_layers(reference: &PluginRef, manifest: &[u8]) -> Result<Layers, OciError> {
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
pub(super) async fn fetch_manifest(
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
pub(super) async fn fetch_layer(
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

pub(super) fn write_atomically(path: &Path, data: &[u8]) -> Result<(), OciError> {
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

/// An in-memory writer that refuses more than the size the manifest declared: a registry
/// must not make the worker allocate without bound.
pub(super) struct Capped {
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
