//! The plugins a worker serves, found by the name they describe (not their file name).
//!
//! The registry changes while the worker runs ([`crate::plugin::reload`]): an invocation takes an
//! `Arc` of the plugin when it starts, so a replaced or removed plugin finishes its in-flight
//! calls on the version they started with, and the old version is freed when the last ends.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use crate::{
    host::PluginHost,
    plugin::{LoadError, LoadedPlugin},
};

#[derive(Debug, Default)]
pub struct PluginRegistry {
    inner: RwLock<Inner>,
    /// Plugin files refused since start (corrupt, incompatible, bad manifest, name clash).
    refused: AtomicU64,
    /// Successful loads, replacements and removals since start.
    changes: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    by_name: BTreeMap<String, Arc<LoadedPlugin>>,
    /// Which name each file describes, to unregister it when the file goes.
    by_path: BTreeMap<PathBuf, String>,
}

/// What [`PluginRegistry::sync_file`] did.
#[derive(Debug)]
pub enum Change {
    Added(Arc<LoadedPlugin>),
    Replaced {
        old: Arc<LoadedPlugin>,
        new: Arc<LoadedPlugin>,
    },
    Removed(Arc<LoadedPlugin>),
    /// The file was refused; whatever served before keeps serving.
    Refused(LoadError),
    /// Nothing was registered for a file that is gone.
    Unchanged,
}

impl PluginRegistry {
    /// The `*.wasm` files of `dir`, sorted.
    pub fn component_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
        let dir_err = |source| LoadError::Directory {
            path: dir.to_path_buf(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(dir_err)? {
            let path = entry.map_err(dir_err)?.path();
            if is_component_file(&path) && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        Ok(paths)
    }

    /// Loads every `*.wasm` in `dir`. At start any bad file fails the whole load, naming the
    /// file: a worker that starts without a plugin it was meant to serve fails later and
    /// quieter. (Once running, a bad file is refused and the rest keep serving.)
    pub async fn load_dir(runtime: &PluginHost, dir: &Path) -> Result<Self, LoadError> {
        let registry = Self::default();
        for path in Self::component_files(dir)? {
            let plugin = runtime.load(&path).await?;
            log_loaded(&plugin, "loaded plugin");
            registry.insert(plugin)?;
        }
        Ok(registry)
    }

    pub fn insert(&self, plugin: LoadedPlugin) -> Result<(), LoadError> {
        let mut inner = self.write();
        if let Some(existing) = inner.by_name.get(&plugin.info.name) {
            return Err(LoadError::DuplicateName {
                name: plugin.info.name.clone(),
                first: existing.path.clone(),
                second: plugin.path,
            });
        }
        inner
            .by_path
            .insert(plugin.path.clone(), plugin.info.name.clone());
        inner
            .by_name
            .insert(plugin.info.name.clone(), Arc::new(plugin));
        Ok(())
    }

    /// Brings the registry in line with `wasm` as it is on disk now: loads it (new or
    /// replaced, e.g. after its manifest changed) or unregisters it (gone). A file that does
    /// not load is refused and the version already registered keeps serving.
    pub async fn sync_file(&self, runtime: &PluginHost, wasm: &Path) -> Change {
        if !wasm.is_file() {
            let mut inner = self.write();
            let Some(name) = inner.by_path.remove(wasm) else {
                return Change::Unchanged;
            };
            let Some(old) = inner.by_name.remove(&name) else {
                return Change::Unchanged;
            };
            self.changes.fetch_add(1, Ordering::Relaxed);
            return Change::Removed(old);
        }
        let plugin = match runtime.load(wasm).await {
            Ok(plugin) => plugin,
            Err(e) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Change::Refused(e);
            }
        };
        let mut inner = self.write();
        let name = plugin.info.name.clone();
        if let Some(other) = inner.by_name.get(&name)
            && other.path != wasm
        {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Change::Refused(LoadError::DuplicateName {
                name,
                first: other.path.clone(),
                second: wasm.to_path_buf(),
            });
        }
        // The file may now describe another name than before: its old name goes.
        if let Some(previous_name) = inner.by_path.insert(wasm.to_path_buf(), name.clone())
            && previous_name != name
        {
            inner.by_name.remove(&previous_name);
        }
        let new = Arc::new(plugin);
        self.changes.fetch_add(1, Ordering::Relaxed);
        match inner.by_name.insert(name, new.clone()) {
            Some(old) => Change::Replaced { old, new },
            None => Change::Added(new),
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.read().by_name.get(name).cloned()
    }

    pub fn names(&self) -> Vec<String> {
        self.read().by_name.keys().cloned().collect()
    }

    /// Every registered plugin, by name.
    pub fn plugins(&self) -> Vec<Arc<LoadedPlugin>> {
        self.read().by_name.values().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.read().by_name.is_empty()
    }

    /// `sha256:<hex>` of what this registry serves: every plugin's name, component digest and
    /// manifest bytes, in name order. Two workers with the same files get the same digest on
    /// any machine (manifests are hashed as written, before their paths are resolved), so it
    /// can name a Worker Deployment version.
    pub fn set_digest(&self) -> Result<String, LoadError> {
        use sha2::{Digest, Sha256};
        let mut set = Sha256::new();
        for (name, plugin) in &self.read().by_name {
            let manifest = match &plugin.manifest.source {
                Some(path) => {
                    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
                        path: path.clone(),
                        source,
                    })?;
                    format!("sha256:{:x}", Sha256::digest(&bytes))
                }
                None => "-".into(),
            };
            set.update(format!("{name} {} {manifest}\n", plugin.digest));
        }
        Ok(format!("sha256:{:x}", set.finalize()))
    }

    /// Files refused since start.
    pub fn refused_count(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Loads, replacements and removals since start (not counting the initial load).
    pub fn change_count(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// A plugin component by its name: `NAME.wasm`, not hidden (a leading dot is how a copy in
/// progress is kept out of sight until it is renamed into place).
pub fn is_component_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "wasm")
        && path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| !n.starts_with('.'))
}

pub fn log_loaded(plugin: &LoadedPlugin, what: &str) {
    tracing::info!(
        plugin = %plugin.info.name,
        version = %plugin.info.version,
        digest = %plugin.digest,
        path = %plugin.path.display(),
        operations = ?plugin.info.operation_names(),
        "{what}"
    );
}
