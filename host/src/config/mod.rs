//! Daemon configuration: `worker.toml`, environment variables and flags, defined once.
//!
//! Each table of the file is one struct that is also the flags of that table: its doc comments
//! are the `--help` text, its serde keys the file keys. Layers merge key by key, flags and
//! environment over the file over [`ConfigFile::defaults`]. The reference of every key, with
//! its flag, variable and default, is `docs/configuration.md`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

pub mod run_args;
pub mod watch;

use crate::daemon::telemetry::LogFormat;

/// The task queue the worker polls and the client commands start runs on, unless told otherwise.
pub const DEFAULT_TASK_QUEUE: &str = "mlx-plugins";

/// One source of keys laid over another.
pub trait Layer {
    /// `self` with every key `over` sets replaced by `over`'s value.
    fn overridden_by(self, over: Self) -> Self;
    /// Resolves relative paths against `base`: a file's paths are relative to the file.
    fn relative_to(&mut self, base: &Path);
}

/// What a key can hold. Only paths care where the file that set them lives; every other type
/// takes the no-op, and a key of a new type fails to compile until it says which it is.
pub trait Value {
    fn relative_to(&mut self, _base: &Path) {}
}

impl Value for String {}
impl Value for bool {}
impl Value for u64 {}
impl Value for usize {}
impl Value for SocketAddr {}
impl Value for LogFormat {}
impl Value for Vec<String> {}

impl Value for PathBuf {
    fn relative_to(&mut self, base: &Path) {
        *self = base.join(&*self);
    }
}

/// A key is unset or set; a set key in the upper layer wins.
impl<T: Value> Layer for Option<T> {
    fn overridden_by(self, over: Self) -> Self {
        over.or(self)
    }

    fn relative_to(&mut self, base: &Path) {
        if let Some(value) = self {
            value.relative_to(base);
        }
    }
}

/// Defines a struct and implements [`Layer`] for it from its field list, so that a new key is
/// one new field. Every field must be a [`Layer`] itself: an `Option` (which is what makes
/// "unset" visible to the merge) or a nested table.
macro_rules! layered {
    (
        $(#[$attr:meta])*
        pub struct $name:ident {
            $(
                $(#[$field_attr:meta])*
                pub $field:ident: $ty:ty,
            )*
        }
    ) => {
        $(#[$attr])*
        pub struct $name {
            $(
                $(#[$field_attr])*
                pub $field: $ty,
            )*
        }

        impl Layer for $name {
            fn overridden_by(self, over: Self) -> Self {
                Self {
                    $($field: self.$field.overridden_by(over.$field),)*
                }
            }

            fn relative_to(&mut self, base: &Path) {
                $(self.$field.relative_to(base);)*
            }
        }

        #[cfg(test)]
        impl $name {
            /// The field names, which are the file keys.
            const KEYS: &'static [&'static str] = &[$(stringify!($field)),*];
        }
    };
}

layered! {
    /// The file, or the same shape built from flags and environment: every key optional.
    #[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, clap::Args)]
    #[serde(deny_unknown_fields)]
    pub struct ConfigFile {
        #[serde(default)]
        #[command(flatten)]
        pub temporal: TemporalConfig,
        #[serde(default)]
        #[command(flatten)]
        pub worker: WorkerConfig,
        #[serde(default)]
        #[command(flatten)]
        pub telemetry: TelemetryConfig,
        #[serde(default)]
        #[command(flatten)]
        pub lineage: LineageConfig,
    }
}

layered! {
    /// `[lineage]`: where the worker sends OpenLineage run events (docs/pipelines.md,
    /// "Lineage"). Off unless a URL is set.
    #[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, clap::Args)]
    #[serde(deny_unknown_fields)]
    #[command(next_help_heading = "Lineage [lineage]")]
    pub struct LineageConfig {
        /// OpenLineage events to a JSON-lines file (file:///path/events.jsonl) or an HTTP
        /// endpoint (http://host:5000, POST /api/v1/lineage) [default: off].
        #[arg(long, env = "MLX_OPENLINEAGE_URL")]
        pub openlineage_url: Option<String>,
        /// The namespace of the jobs the events name [default: mlx].
        #[arg(long, env = "MLX_OPENLINEAGE_NAMESPACE")]
        pub openlineage_namespace: Option<String>,
    }
}

layered! {
    /// `[temporal]`: where and how to connect. The variables are the ones the official SDKs and
    /// the `temporal` CLI read; unset keys fall back to the `temporal.toml` profile.
    #[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, clap::Args)]
    #[serde(deny_unknown_fields)]
    #[command(next_help_heading = "Connection [temporal]")]
    pub struct TemporalConfig {
        /// Temporal frontend `host:port` [default: from temporal.toml, else localhost:7233].
        #[arg(long, env = "TEMPORAL_ADDRESS")]
        pub address: Option<String>,
        /// Namespace [default: from temporal.toml, else `default`].
        #[arg(long, env = "TEMPORAL_NAMESPACE")]
        pub namespace: Option<String>,
        /// API key (Temporal Cloud); implies TLS. Prefer the environment variable to the flag
        /// or the file.
        #[arg(long, env = "TEMPORAL_API_KEY", hide_env_values = true)]
        pub api_key: Option<String>,
        /// mTLS client certificate (PEM); needs --tls-client-key.
        #[arg(long, env = "TEMPORAL_TLS_CLIENT_CERT_PATH")]
        pub tls_client_cert: Option<PathBuf>,
        /// mTLS client key (PEM); needs --tls-client-cert.
        #[arg(long, env = "TEMPORAL_TLS_CLIENT_KEY_PATH")]
        pub tls_client_key: Option<PathBuf>,
        /// CA certificate of the server (PEM), when the system roots do not cover it.
        #[arg(long, env = "TEMPORAL_TLS_SERVER_CA_CERT_PATH")]
        pub tls_server_ca: Option<PathBuf>,
        /// Server name to verify the server certificate against [default: the address's host].
        #[arg(long, env = "TEMPORAL_TLS_SERVER_NAME")]
        pub tls_server_name: Option<String>,
        /// temporal.toml profile to start from [default: default].
        #[arg(long, env = "TEMPORAL_PROFILE")]
        pub profile: Option<String>,
    }
}

layered! {
    /// `[worker]`: what the worker serves and how much of it at once.
    #[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, clap::Args)]
    #[serde(deny_unknown_fields)]
    #[command(next_help_heading = "Worker [worker]")]
    pub struct WorkerConfig {
        /// Task queue to poll [default: mlx-plugins].
        #[arg(long, env = "MLX_TASK_QUEUE")]
        pub task_queue: Option<String>,
        /// Activities run at once, one sandbox each [default: 16].
        #[arg(long, env = "MLX_MAX_CONCURRENT_ACTIVITIES")]
        pub max_concurrent_activities: Option<usize>,
        /// Directory of plugin components (`NAME.wasm`, optional `NAME.toml` manifest),
        /// watched for changes. Required.
        #[arg(long, env = "MLX_PLUGINS_DIR")]
        pub plugins_dir: Option<PathBuf>,
        /// Plugins pulled from OCI registries into plugins_dir at start, each pinned by digest
        /// (oci://HOST/REPO@sha256:…; docs/oci.md). The flag repeats, also as --plugin-ref;
        /// the variable is a comma-separated list [default: none].
        #[arg(long, visible_alias = "plugin-ref", env = "MLX_PLUGIN_REFS", value_delimiter = ',')]
        pub plugin_refs: Option<Vec<String>>,
        /// Precompiled components, so a restart compiles nothing; must be the worker's own
        /// [default: cache].
        #[arg(long, env = "MLX_CACHE_DIR")]
        pub cache_dir: Option<PathBuf>,
        /// Most disk the compile cache may take, in MiB; least recently used entries go
        /// first [default: 4096].
        #[arg(long, env = "MLX_CACHE_MAX_MB")]
        pub cache_max_mb: Option<u64>,
        /// Root of per-workflow artifacts directories, mounted at /artifacts
        /// [default: artifacts].
        #[arg(long, env = "MLX_ARTIFACTS_DIR")]
        pub artifacts_dir: Option<PathBuf>,
        /// Meter guest instructions, so manifests can set limits.fuel [default: false].
        #[arg(long, env = "MLX_FUEL_METERING")]
        pub fuel_metering: Option<bool>,
        /// Seconds in-flight activities may run after SIGTERM before they are cancelled
        /// [default: 30].
        #[arg(long, env = "MLX_SHUTDOWN_GRACE_SECS")]
        pub shutdown_grace_secs: Option<u64>,
        /// Largest `plugin_activity` request (JSON bytes) accepted; larger ones fail as
        /// InvalidRequest before any sandbox is made [default: 2097152].
        #[arg(long, env = "MLX_MAX_INPUT_BYTES")]
        pub max_input_bytes: Option<usize>,
        /// Workflows kept in memory between their tasks (sticky cache), least recently used
        /// evicted first; 0 replays every task from history [default: 1000].
        #[arg(long, env = "MLX_MAX_CACHED_WORKFLOWS")]
        pub max_cached_workflows: Option<usize>,
        /// Most disk the step cache (`<artifacts_dir>/.step-cache`) may take, in MiB; least
        /// recently used entries go first [default: 20480].
        #[arg(long, env = "MLX_STEP_CACHE_MAX_MB")]
        pub step_cache_max_mb: Option<u64>,
        /// Run as a version of this Temporal Worker Deployment: the build id is derived from
        /// the plugin set, workflows are pinned to the version they start on, and the plugins
        /// directory is read once (a new set is a new version) [default: off].
        #[arg(long, env = "MLX_DEPLOYMENT_NAME")]
        pub deployment_name: Option<String>,
        /// Keep runs' artifacts in this object store, shared by every worker: s3://bucket/prefix,
        /// gs://…, az://…, or file:///shared/path. Each invocation works on a private local
        /// copy; what it writes becomes visible when it succeeds [default: off, local only].
        #[arg(long, env = "MLX_ARTIFACTS_STORE")]
        pub artifacts_store: Option<String>,
        /// Most bytes of a run's files one invocation may fetch from the store, in MiB; a run
        /// holding more fails its steps with ArtifactsRefused [default: 10240].
        #[arg(long, env = "MLX_ARTIFACTS_FETCH_MAX_MB")]
        pub artifacts_fetch_max_mb: Option<u64>,
        /// Most disk this worker's cache of store blobs (`<artifacts_dir>/.blob-cache`) may take,
        /// in MiB; least recently used first out [default: 20480].
        #[arg(long, env = "MLX_ARTIFACTS_CACHE_MAX_MB")]
        pub artifacts_cache_max_mb: Option<u64>,
    }
}

layered! {
    /// `[telemetry]`: logs, metrics, health and traces.
    #[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, clap::Args)]
    #[serde(deny_unknown_fields)]
    #[command(next_help_heading = "Telemetry [telemetry]")]
    pub struct TelemetryConfig {
        /// `human` or `json`. Not a flag here: every command logs, so `--log-format` and
        /// `MLX_LOG_FORMAT` are global options of `mlx-worker` itself.
        #[arg(skip)]
        pub log_format: Option<LogFormat>,
        /// Prometheus endpoint address (/metrics), e.g. 127.0.0.1:9464 [default: off].
        #[arg(long, env = "MLX_METRICS_ADDRESS")]
        pub metrics_address: Option<SocketAddr>,
        /// Health endpoint address (/healthz, /readyz), e.g. 127.0.0.1:9465 [default: off].
        #[arg(long, env = "MLX_HEALTH_ADDRESS")]
        pub health_address: Option<SocketAddr>,
        /// OTLP/HTTP collector for traces, e.g. http://127.0.0.1:4318 [default: off].
        #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
        pub otlp_endpoint: Option<String>,
    }
}

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    #[error("cannot read: {0}")]
    Read(#[source] std::io::Error),
    #[error("{0}")]
    Parse(#[source] toml::de::Error),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("config file {}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: FileError,
    },
    #[error("configuration: {0}")]
    Invalid(String),
}

impl TemporalConfig {
    /// The checks a connection needs before it is tried: `connect` would silently ignore half
    /// an mTLS pair and connect without a client certificate.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.tls_client_cert.is_some() != self.tls_client_key.is_some() {
            return Err(ConfigError::Invalid(
                "temporal.tls_client_cert and temporal.tls_client_key go together \
                 (--tls-client-cert and --tls-client-key): set both for mTLS, or neither"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl ConfigFile {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let fail = |source: FileError| ConfigError::File {
            path: path.to_path_buf(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(FileError::Read(e)))?;
        let mut file: Self = toml::from_str(&text).map_err(|e| fail(FileError::Parse(e)))?;
        // An operator reading the file expects its paths to be relative to it, not to wherever
        // the service manager started the worker.
        file.relative_to(path.parent().unwrap_or(Path::new(".")));
        Ok(file)
    }

    /// The bottom layer: every default, each with its reason. Keys unset here have none:
    /// `[temporal]` falls back to the `temporal.toml` profile and then Temporal's own defaults
    /// (localhost:7233, namespace `default`), the telemetry endpoints are off, and
    /// `worker.plugins_dir` is required.
    pub fn defaults() -> Self {
        ConfigFile {
            temporal: TemporalConfig::default(),
            worker: WorkerConfig {
                task_queue: Some(DEFAULT_TASK_QUEUE.into()),
                // One sandbox each; more waits in Temporal's queue, not in the worker.
                max_concurrent_activities: Some(16),
                // Which plugins to serve is the one thing there is no sensible guess for.
                plugins_dir: None,
                // Plugins come from the directory alone unless registries are named.
                plugin_refs: None,
                // Relative to the working directory, like any relative path not from the file.
                cache_dir: Some("cache".into()),
                // A hundred interpreter components' artifacts (tens of MiB each); a plugin
                // version replaced long ago is the first to go.
                cache_max_mb: Some(4 << 10),
                artifacts_dir: Some("artifacts".into()),
                // Metering costs every guest some speed; deadlines already bound wall time.
                fuel_metering: Some(false),
                // Well within systemd's default 90 s stop timeout.
                shutdown_grace_secs: Some(30),
                // Temporal's own default payload limit: larger never arrives anyway, and an
                // operator may lower it to keep inputs to references, not data.
                max_input_bytes: Some(2 << 20),
                // Room for many runs' datasets and models on a worker's disk, not all of it.
                step_cache_max_mb: Some(20 << 10),
                // The SDK's own default. A cached pipeline holds its spec and its steps'
                // outputs, so this bounds the workflows' share of memory (docs/configuration.md).
                max_cached_workflows: Some(1000),
                // Versioning changes how tasks are routed: an operator opts in for a fleet.
                deployment_name: None,
                // Local artifacts need nothing else; a fleet names its store.
                artifacts_store: None,
                // A run's datasets and models, not a data lake: a step that reads more should
                // read it from its source (a granted directory or HTTP), not through /artifacts.
                artifacts_fetch_max_mb: Some(10 << 10),
                // As the step cache: room for many runs' files on a worker's disk.
                artifacts_cache_max_mb: Some(20 << 10),
            },
            telemetry: TelemetryConfig {
                log_format: Some(LogFormat::Human),
                metrics_address: None,
                health_address: None,
                otlp_endpoint: None,
            },
            lineage: LineageConfig {
                // Where events go is the operator's choice; none is sent until one is made.
                openlineage_url: None,
                openlineage_namespace: Some("mlx".into()),
            },
        }
    }

    /// These keys over the defaults, checked; fails on what has no default (the plugins
    /// directory).
    pub fn resolve(self) -> Result<Settings, ConfigError> {
        let merged = Self::defaults().overridden_by(self);
        merged.temporal.check()?;
        let ConfigFile {
            temporal,
            worker: w,
            telemetry: t,
            lineage,
        } = merged.clone();
        // Only reachable if `defaults()` lost a key; an error rather than a panic all the same.
        let unset = |key: &str| ConfigError::Invalid(format!("{key} is not set"));
        let openlineage = match lineage.openlineage_url {
            None => None,
            Some(url) => {
                let sink = url
                    .parse()
                    .map_err(|e| ConfigError::Invalid(format!("lineage.openlineage_url: {e}")))?;
                let namespace = lineage
                    .openlineage_namespace
                    .ok_or_else(|| unset("lineage.openlineage_namespace"))?;
                Some((sink, namespace))
            }
        };
        let plugins_dir = w.plugins_dir.ok_or_else(|| {
            ConfigError::Invalid(
                "no plugins directory: pass --plugins-dir, set MLX_PLUGINS_DIR or \
                 worker.plugins_dir in the config file"
                    .into(),
            )
        })?;
        // Pinned, so that every worker runs identical bytes: a tag may move between starts.
        let plugin_refs = w
            .plugin_refs
            .unwrap_or_default()
            .iter()
            .map(|r| crate::oci::PluginRef::parse_pinned(r))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                ConfigError::Invalid(format!(
                    "worker.plugin_refs (--plugin-refs, MLX_PLUGIN_REFS): {e}"
                ))
            })?;
        let max_concurrent_activities = w
            .max_concurrent_activities
            .ok_or_else(|| unset("worker.max_concurrent_activities"))?;
        if max_concurrent_activities == 0 {
            return Err(ConfigError::Invalid(
                "worker.max_concurrent_activities must be at least 1".into(),
            ));
        }
        Ok(Settings {
            temporal,
            task_queue: w.task_queue.ok_or_else(|| unset("worker.task_queue"))?,
            max_concurrent_activities,
            plugins_dir,
            plugin_refs,
            cache_dir: w.cache_dir.ok_or_else(|| unset("worker.cache_dir"))?,
            cache_max_bytes: w
                .cache_max_mb
                .ok_or_else(|| unset("worker.cache_max_mb"))?
                .saturating_mul(1 << 20),
            artifacts_dir: w
                .artifacts_dir
                .ok_or_else(|| unset("worker.artifacts_dir"))?,
            fuel_metering: w
                .fuel_metering
                .ok_or_else(|| unset("worker.fuel_metering"))?,
            shutdown_grace: Duration::from_secs(
                w.shutdown_grace_secs
                    .ok_or_else(|| unset("worker.shutdown_grace_secs"))?,
            ),
            max_input_bytes: w
                .max_input_bytes
                .ok_or_else(|| unset("worker.max_input_bytes"))?,
            max_cached_workflows: w
                .max_cached_workflows
                .ok_or_else(|| unset("worker.max_cached_workflows"))?,
            step_cache_max_bytes: w
                .step_cache_max_mb
                .ok_or_else(|| unset("worker.step_cache_max_mb"))?
                .saturating_mul(1 << 20),
            deployment_name: match w.deployment_name {
                Some(name) if name.trim().is_empty() || name.contains('.') => {
                    return Err(ConfigError::Invalid(format!(
                        "worker.deployment_name {name:?}: give a non-empty name without '.' \
                         (Temporal joins it to the build id with a '.')"
                    )));
                }
                name => name,
            },
            artifacts_store: w.artifacts_store,
            artifacts_fetch_max_bytes: w
                .artifacts_fetch_max_mb
                .ok_or_else(|| unset("worker.artifacts_fetch_max_mb"))?
                .saturating_mul(1 << 20),
            artifacts_cache_max_bytes: w
                .artifacts_cache_max_mb
                .ok_or_else(|| unset("worker.artifacts_cache_max_mb"))?
                .saturating_mul(1 << 20),
            log_format: t.log_format.ok_or_else(|| unset("telemetry.log_format"))?,
            metrics_address: t.metrics_address,
            health_address: t.health_address,
            otlp_endpoint: t.otlp_endpoint,
            openlineage,
            #[cfg(feature = "native-echo")]
            native_echo: false,
            merged,
        })
    }
}

/// The resolved configuration: every layer merged, defaults applied, checked. What each key
/// means is on its field in the section structs above; its default in [`ConfigFile::defaults`].
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Unset keys fall back to the `temporal.toml` profile when connecting.
    pub temporal: TemporalConfig,
    pub task_queue: String,
    pub max_concurrent_activities: usize,
    pub plugins_dir: PathBuf,
    pub plugin_refs: Vec<crate::oci::PluginRef>,
    pub cache_dir: PathBuf,
    pub cache_max_bytes: u64,
    pub artifacts_dir: PathBuf,
    pub fuel_metering: bool,
    pub shutdown_grace: Duration,
    pub max_input_bytes: usize,
    pub step_cache_max_bytes: u64,
    pub max_cached_workflows: usize,
    /// The Worker Deployment this worker is a version of, when versioning is on.
    pub deployment_name: Option<String>,
    /// The shared artifact store's URL, when runs' files live there.
    pub artifacts_store: Option<String>,
    pub artifacts_fetch_max_bytes: u64,
    pub artifacts_cache_max_bytes: u64,
    pub log_format: LogFormat,
    pub metrics_address: Option<SocketAddr>,
    pub health_address: Option<SocketAddr>,
    pub otlp_endpoint: Option<String>,
    /// Where OpenLineage events go, and their jobs' namespace.
    pub openlineage: Option<(crate::openlineage::Sink, String)>,
    /// Benchmarks only (`run --native-echo`): a native echo activity instead of the plugins.
    /// Not a file key: a benchmark switch has no place in an operator's configuration.
    #[cfg(feature = "native-echo")]
    pub native_echo: bool,
    /// The layers merged, defaults included: what `--print-config` prints, so that printing
    /// needs no list of keys of its own.
    merged: ConfigFile,
}

impl Settings {
    /// The configuration as TOML, with the API key redacted: what `run --print-config` shows.
    pub fn to_toml(&self) -> String {
        let mut file = self.merged.clone();
        if file.temporal.api_key.is_some() {
            file.temporal.api_key = Some("<redacted>".into());
        }
        toml::to_string(&file).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
mod tests;
