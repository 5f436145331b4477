//! The worker's `worker.plugin_refs`: pulled into the plugins directory at start, and again
//! when the configuration is re-read (SIGHUP) with a different list, which the directory
//! watcher then loads like any other change. A plugin the new list no longer names is removed,
//! unless its files are no longer the bytes that were pulled (then someone put them there by
//! hand, and they are theirs).

use std::{
    collections::{BTreeMap, HashSet},
    path::Path,
};

use super::{
    OciError, PluginRef, RefError, digest_of,
    registry::{
        Access, Fetched, fetch_layer, fetch_manifest, install, plugin_layers, write_atomically,
    },
};

/// A plugin in the plugins directory that came from a pinned reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub name: String,
    pub reference: PluginRef,
    pub(super) wasm_digest: String,
    pub(super) manifest_digest: Option<String>,
}

impl Installed {
    /// Whether the files in `dir` are still the bytes pulled for this reference.
    fn in_place(&self, dir: &Path) -> bool {
        holds(&dir.join(format!("{}.wasm", self.name)), &self.wasm_digest)
            && self
                .manifest_digest
                .as_ref()
                .is_none_or(|d| holds(&dir.join(format!("{}.toml", self.name)), d))
    }
}

/// Whether `path` holds exactly the bytes of `digest`.
pub(super) fn holds(path: &Path, digest: &str) -> bool {
    std::fs::read(path).is_ok_and(|data| digest_of(&data) == digest)
}

/// Each pinned reference into `plugins_dir`. An artifact whose files are already there with
/// the same digests is not downloaded; its manifest is kept in `cache_dir/oci/` (checked
/// against the pinned digest on every read), so a restart with everything in place needs no
/// registry at all. Each plugin's files are renamed into place whole (a watching worker never
/// loads half of one); on an error, the plugins pulled before it stay.
pub async fn pull_pinned(
    refs: &[PluginRef],
    plugins_dir: &Path,
    cache_dir: &Path,
    access: &Access,
) -> Result<Vec<Installed>, OciError> {
    let manifests = cache_dir.join("oci");
    let mut names: BTreeMap<String, &PluginRef> = BTreeMap::new();
    let mut seen = HashSet::new();
    let mut installed = Vec::new();
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
        let plugin = Installed {
            name: name.clone(),
            reference: reference.clone(),
            wasm_digest: layers.wasm.digest.clone(),
            manifest_digest: layers.manifest.as_ref().map(|m| m.digest.clone()),
        };
        if plugin.in_place(plugins_dir) {
            tracing::info!(plugin = %name, reference = %reference, "plugin from the registry already in place");
            installed.push(plugin);
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
        installed.push(plugin);
    }
    Ok(installed)
}

/// After a new list was pulled (`now`): removes from `plugins_dir` the plugins of `before`
/// whose names `now` does not have, when their files are still the pulled bytes. The `.wasm`
/// goes first, so the watcher unregisters the plugin before its manifest disappears. Returns
/// the names removed.
pub fn remove_dropped(
    plugins_dir: &Path,
    before: &[Installed],
    now: &[Installed],
) -> Result<Vec<String>, OciError> {
    let kept: HashSet<&str> = now.iter().map(|p| p.name.as_str()).collect();
    let mut removed = Vec::new();
    for plugin in before.iter().filter(|p| !kept.contains(p.name.as_str())) {
        if !plugin.in_place(plugins_dir) {
            tracing::warn!(plugin = %plugin.name, reference = %plugin.reference, "no longer in worker.plugin_refs, but its files changed since the pull: left in place");
            continue;
        }
        // A manifest the artifact did not carry is not ours to remove.
        let exts: &[&str] = match plugin.manifest_digest {
            Some(_) => &["wasm", "toml"],
            None => &["wasm"],
        };
        for ext in exts {
            let path = plugins_dir.join(format!("{}.{ext}", plugin.name));
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(OciError::Write { path, source }),
            }
        }
        tracing::info!(plugin = %plugin.name, reference = %plugin.reference, "removed: no longer in worker.plugin_refs");
        removed.push(plugin.name.clone());
    }
    Ok(removed)
}
