//! `mlx:plugin/config`: the manifest's `[config]` values and granted `[secrets]`. Secret values
//! pass straight from their source to the guest: never logged, never in a failure.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::Deserialize;
use wasmtime::component::{HasSelf, Linker};

use super::{Offer, denials::Denials};
use crate::bindings::mlx::plugin::config;

pub const OFFER: Offer = Offer::always("mlx:plugin/config");

/// One entry of the manifest's `[secrets]` table: `{ env = "VAR" }` or `{ file = "PATH" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretFile {
    env: Option<String>,
    file: Option<PathBuf>,
}

/// Where a granted secret is read from. The value itself is read at each call, never stored
/// in the manifest, so rotation needs no reload.
#[derive(Clone, PartialEq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Env(var) => write!(f, "env:{var}"),
            Self::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

/// Largest secret the host reads: a secret is a token or a password, not a data file.
const MAX_SECRET_BYTES: u64 = 64 << 10;

impl SecretSource {
    /// Reads the secret now. Errors say where it was looked for, never what it is.
    pub fn read(&self) -> Result<String, String> {
        match self {
            Self::Env(var) => std::env::var(var)
                .map_err(|_| format!("environment variable {var} is not set in the worker")),
            Self::File(path) => {
                let meta =
                    std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
                if meta.len() > MAX_SECRET_BYTES {
                    return Err(format!("{} is larger than 64 KiB", path.display()));
                }
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                Ok(text.trim_end_matches(['\n', '\r']).to_string())
            }
        }
    }
}

/// What the manifest's `[config]` and `[secrets]` tables grant, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigGrant {
    /// `[config]` values.
    pub values: BTreeMap<String, String>,
    /// Granted secrets by name.
    pub secrets: BTreeMap<String, SecretSource>,
}

impl ConfigGrant {
    /// Checks the tables; secret files are relative to `base` (the manifest's directory).
    pub fn parse(
        values: BTreeMap<String, String>,
        secrets: BTreeMap<String, SecretFile>,
        base: &Path,
    ) -> Result<Self, String> {
        let mut sources = BTreeMap::new();
        for (name, secret) in secrets {
            let source = match (secret.env, secret.file) {
                (Some(var), None) => SecretSource::Env(var),
                (None, Some(file)) => SecretSource::File(base.join(file)),
                _ => {
                    return Err(format!(
                        "secrets.{name} must name exactly one source: {{ env = \"VAR\" }} or \
                         {{ file = \"PATH\" }}"
                    ));
                }
            };
            // Fail at load, not at 3 a.m.: a granted secret must be readable now.
            source
                .read()
                .map_err(|e| format!("secrets.{name} cannot be read: {e}"))?;
            sources.insert(name, source);
        }
        Ok(Self {
            values,
            secrets: sources,
        })
    }
}

/// The config capability's part of a store.
pub struct ConfigState {
    grant: Arc<ConfigGrant>,
    denials: Denials,
}

impl ConfigState {
    pub fn new(grant: Arc<ConfigGrant>, denials: Denials) -> Self {
        Self { grant, denials }
    }
}

/// How a store exposes its [`ConfigState`].
pub trait ConfigView: Send {
    fn config(&mut self) -> &mut ConfigState;
}

pub fn add_to_linker<T: ConfigView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    config::add_to_linker::<T, HasSelf<ConfigState>>(linker, T::config)
}

impl config::Host for ConfigState {
    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.grant.values.get(&key).cloned())
    }

    fn get_secret(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        let Some(source) = self.grant.secrets.get(&name) else {
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
