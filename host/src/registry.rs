//! The plugins a worker serves, found by the name they describe (not their file name).

use std::{collections::BTreeMap, path::Path, sync::Arc};

use crate::runtime::{LoadError, LoadedPlugin, Runtime};

#[derive(Debug, Default)]
pub struct PluginRegistry {
    plugins: BTreeMap<String, Arc<LoadedPlugin>>,
}

impl PluginRegistry {
    /// Loads every `*.wasm` in `dir`. Any bad file fails the whole load, naming the file: a
    /// worker that starts without a plugin it was meant to serve fails later and quieter.
    pub async fn load_dir(runtime: &Runtime, dir: &Path) -> Result<Self, LoadError> {
        let dir_err = |source| LoadError::Directory {
            path: dir.to_path_buf(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(dir_err)? {
            let path = entry.map_err(dir_err)?.path();
            if path.extension().is_some_and(|e| e == "wasm") && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        let mut registry = Self::default();
        for path in paths {
            let plugin = runtime.load(&path).await?;
            tracing::info!(
                plugin = %plugin.info.name,
                version = %plugin.info.version,
                digest = %plugin.digest,
                path = %path.display(),
                operations = ?plugin.info.operation_names(),
                "loaded plugin"
            );
            registry.insert(plugin)?;
        }
        Ok(registry)
    }

    pub fn insert(&mut self, plugin: LoadedPlugin) -> Result<(), LoadError> {
        if let Some(existing) = self.plugins.get(&plugin.info.name) {
            return Err(LoadError::DuplicateName {
                name: plugin.info.name.clone(),
                first: existing.path.clone(),
                second: plugin.path,
            });
        }
        self.plugins
            .insert(plugin.info.name.clone(), Arc::new(plugin));
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<Arc<LoadedPlugin>> {
        self.plugins.get(name).cloned()
    }

    pub fn names(&self) -> Vec<&str> {
        self.plugins.keys().map(String::as_str).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }
}
