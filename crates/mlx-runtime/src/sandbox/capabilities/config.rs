//! `mlx:plugin/config`: the manifest's `[config]` values and granted secrets. Secret values
//! pass straight from their source to the guest: never logged, never in a failure.

use crate::{bindings::mlx::plugin::config, sandbox::GuestState};

impl config::Host for GuestState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.manifest.config.get(&key).cloned())
    }

    fn get_secret(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        let Some(source) = self.manifest.secrets.get(&name) else {
            self.denials.record(format!(
                "secret {name:?} is not granted: add it under [secrets] in the plugin's manifest"
            ));
            return Ok(None);
        };
        match source.read() {
            Ok(value) => {
                tracing::debug!(secret = %name, "secret read");
                Ok(Some(value))
            }
            Err(e) => {
                // The source was readable at load; it has gone away since (rotation, unset).
                tracing::warn!(secret = %name, "granted secret is unavailable: {e}");
                Ok(None)
            }
        }
    }
}
