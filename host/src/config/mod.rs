//! Daemon configuration: `worker.toml`, environment variables and flags.
//!
//! Precedence, highest first: command-line flags; environment variables (`MLX_*`, and the
//! `TEMPORAL_*` variables the official SDKs and CLI read for the connection); the file given
//! with `--config`; the `temporal.toml` profile (connection only, as the SDKs read it);
//! defaults. The file rejects unknown keys, naming them.
//!
//! ```toml
//! [temporal]
//! address = "temporal.internal:7233"
//! namespace = "ml"
//! api_key = "..."                     # or TEMPORAL_API_KEY; implies TLS
//! tls_client_cert = "/etc/mlx/client.pem"
//! tls_client_key = "/etc/mlx/client.key"
//! tls_server_ca = "/etc/mlx/ca.pem"
//! tls_server_name = "temporal.internal"
//! profile = "prod"                    # the temporal.toml profile to start from
//!
//! [worker]
//! task_queue = "mlx-plugins"
//! max_concurrent_activities = 16
//! plugins_dir = "/var/lib/mlx/plugins"
//! cache_dir = "/var/cache/mlx"
//! artifacts_dir = "/var/lib/mlx/artifacts"
//! fuel_metering = false
//! shutdown_grace_secs = 30
//!
//! [telemetry]
//! log_format = "json"                 # or "human"
//! metrics_address = "127.0.0.1:9464"  # Prometheus /metrics; off when unset
//! health_address = "127.0.0.1:9465"   # /healthz and /readyz; off when unset
//! otlp_endpoint = "http://127.0.0.1:4318"  # OTLP/HTTP traces; off when unset
//! ```

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

pub mod run_args;

use crate::daemon::telemetry::LogFormat;

/// The file, or the same shape built from flags and environment: every key optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub temporal: TemporalConfig,
    #[serde(default)]
    pub worker: WorkerConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TemporalConfig {
    pub address: Option<String>,
    pub namespace: Option<String>,
    pub api_key: Option<String>,
    pub tls_client_cert: Option<PathBuf>,
    pub tls_client_key: Option<PathBuf>,
    pub tls_server_ca: Option<PathBuf>,
    pub tls_server_name: Option<String>,
    pub profile: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    pub task_queue: Option<String>,
    pub max_concurrent_activities: Option<usize>,
    pub plugins_dir: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    pub artifacts_dir: Option<PathBuf>,
    pub fuel_metering: Option<bool>,
    pub shutdown_grace_secs: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    pub log_format: Option<LogFormat>,
    pub metrics_address: Option<SocketAddr>,
    pub health_address: Option<SocketAddr>,
    pub otlp_endpoint: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("configuration: {0}")]
    Invalid(String),
}

impl ConfigFile {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let fail = |message: String| ConfigError::File {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let mut file: Self = toml::from_str(&text).map_err(|e| fail(e.to_string()))?;
        // Paths in the file are relative to the file, as an operator reading it expects.
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut file.worker.plugins_dir,
            &mut file.worker.cache_dir,
            &mut file.worker.artifacts_dir,
            &mut file.temporal.tls_client_cert,
            &mut file.temporal.tls_client_key,
            &mut file.temporal.tls_server_ca,
        ]
        .into_iter()
        .flatten()
        {
            *p = base.join(&*p);
        }
        Ok(file)
    }

    /// `self` with every key `over` sets replaced by `over`'s value.
    pub fn overridden_by(self, over: ConfigFile) -> ConfigFile {
        ConfigFile {
            temporal: TemporalConfig {
                address: over.temporal.address.or(self.temporal.address),
                namespace: over.temporal.namespace.or(self.temporal.namespace),
                api_key: over.temporal.api_key.or(self.temporal.api_key),
                tls_client_cert: over
                    .temporal
                    .tls_client_cert
                    .or(self.temporal.tls_client_cert),
                tls_client_key: over
                    .temporal
                    .tls_client_key
                    .or(self.temporal.tls_client_key),
                tls_server_ca: over.temporal.tls_server_ca.or(self.temporal.tls_server_ca),
                tls_server_name: over
                    .temporal
                    .tls_server_name
                    .or(self.temporal.tls_server_name),
                profile: over.temporal.profile.or(self.temporal.profile),
            },
            worker: WorkerConfig {
                task_queue: over.worker.task_queue.or(self.worker.task_queue),
                max_concurrent_activities: over
                    .worker
                    .max_concurrent_activities
                    .or(self.worker.max_concurrent_activities),
                plugins_dir: over.worker.plugins_dir.or(self.worker.plugins_dir),
                cache_dir: over.worker.cache_dir.or(self.worker.cache_dir),
                artifacts_dir: over.worker.artifacts_dir.or(self.worker.artifacts_dir),
                fuel_metering: over.worker.fuel_metering.or(self.worker.fuel_metering),
                shutdown_grace_secs: over
                    .worker
                    .shutdown_grace_secs
                    .or(self.worker.shutdown_grace_secs),
            },
            telemetry: TelemetryConfig {
                log_format: over.telemetry.log_format.or(self.telemetry.log_format),
                metrics_address: over
                    .telemetry
                    .metrics_address
                    .or(self.telemetry.metrics_address),
                health_address: over
                    .telemetry
                    .health_address
                    .or(self.telemetry.health_address),
                otlp_endpoint: over
                    .telemetry
                    .otlp_endpoint
                    .or(self.telemetry.otlp_endpoint),
            },
        }
    }

    /// Applies the defaults; fails on what has none (the plugins directory).
    pub fn resolve(self) -> Result<Settings, ConfigError> {
        let w = self.worker;
        let plugins_dir = w.plugins_dir.ok_or_else(|| {
            ConfigError::Invalid(
                "no plugins directory: pass --plugins-dir, set MLX_PLUGINS_DIR or \
                 worker.plugins_dir in the config file"
                    .into(),
            )
        })?;
        let max_concurrent_activities = w.max_concurrent_activities.unwrap_or(16);
        if max_concurrent_activities == 0 {
            return Err(ConfigError::Invalid(
                "worker.max_concurrent_activities must be at least 1".into(),
            ));
        }
        let t = self.temporal;
        if t.tls_client_cert.is_some() != t.tls_client_key.is_some() {
            return Err(ConfigError::Invalid(
                "temporal.tls_client_cert and temporal.tls_client_key go together: set both \
                 for mTLS, or neither"
                    .into(),
            ));
        }
        Ok(Settings {
            temporal: t,
            task_queue: w.task_queue.unwrap_or_else(|| "mlx-plugins".into()),
            max_concurrent_activities,
            plugins_dir,
            cache_dir: w.cache_dir.unwrap_or_else(|| "cache".into()),
            artifacts_dir: w.artifacts_dir.unwrap_or_else(|| "artifacts".into()),
            fuel_metering: w.fuel_metering.unwrap_or(false),
            shutdown_grace: Duration::from_secs(w.shutdown_grace_secs.unwrap_or(30)),
            log_format: self.telemetry.log_format.unwrap_or_default(),
            metrics_address: self.telemetry.metrics_address,
            health_address: self.telemetry.health_address,
            otlp_endpoint: self.telemetry.otlp_endpoint,
            native_echo: false,
        })
    }
}

/// The resolved configuration, defaults applied. Each default is documented here.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Unset keys fall back to TEMPORAL_* / temporal.toml, then localhost:7233, `default`.
    pub temporal: TemporalConfig,
    /// Default `mlx-plugins`.
    pub task_queue: String,
    /// Default 16: one sandbox each; more waits in Temporal's queue, not in the worker.
    pub max_concurrent_activities: usize,
    pub plugins_dir: PathBuf,
    /// Default `cache` (relative to the working directory).
    pub cache_dir: PathBuf,
    /// Default `artifacts`.
    pub artifacts_dir: PathBuf,
    /// Default off: metering costs every guest some speed; deadlines already bound wall time.
    pub fuel_metering: bool,
    /// Default 30 s: how long in-flight activities may run after SIGTERM before they are
    /// cancelled (well within systemd's default 90 s stop timeout).
    pub shutdown_grace: Duration,
    pub log_format: LogFormat,
    /// Default off.
    pub metrics_address: Option<SocketAddr>,
    /// Default off.
    pub health_address: Option<SocketAddr>,
    /// OTLP/HTTP collector base URL, e.g. `http://127.0.0.1:4318`; default off.
    pub otlp_endpoint: Option<String>,
    /// Benchmarks only (`run --native-echo`): a native echo activity instead of the plugins.
    pub native_echo: bool,
}

impl Settings {
    /// The configuration as TOML, with the API key redacted: what `run --print-config` shows.
    pub fn to_toml(&self) -> String {
        let mut temporal = self.temporal.clone();
        if temporal.api_key.is_some() {
            temporal.api_key = Some("<redacted>".into());
        }
        let file = ConfigFile {
            temporal,
            worker: WorkerConfig {
                task_queue: Some(self.task_queue.clone()),
                max_concurrent_activities: Some(self.max_concurrent_activities),
                plugins_dir: Some(self.plugins_dir.clone()),
                cache_dir: Some(self.cache_dir.clone()),
                artifacts_dir: Some(self.artifacts_dir.clone()),
                fuel_metering: Some(self.fuel_metering),
                shutdown_grace_secs: Some(self.shutdown_grace.as_secs()),
            },
            telemetry: TelemetryConfig {
                log_format: Some(self.log_format),
                metrics_address: self.metrics_address,
                health_address: self.health_address,
                otlp_endpoint: self.otlp_endpoint.clone(),
            },
        };
        toml::to_string(&file).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfigFile, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let err = parse("[worker]\ntask_qeue = \"x\"\n").unwrap_err();
        assert!(err.contains("task_qeue"), "{err}");
        let err = parse("[telemetery]\n").unwrap_err();
        assert!(err.contains("telemetery"), "{err}");
    }

    #[test]
    fn flags_and_environment_win_over_the_file_which_wins_over_defaults() {
        let file = parse(
            "[worker]\ntask_queue = \"from-file\"\nplugins_dir = \"/p\"\nshutdown_grace_secs = 5\n",
        )
        .unwrap();
        let flags = ConfigFile {
            worker: WorkerConfig {
                task_queue: Some("from-flag".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let settings = file.overridden_by(flags).resolve().unwrap();
        assert_eq!(settings.task_queue, "from-flag");
        assert_eq!(settings.plugins_dir, PathBuf::from("/p"));
        assert_eq!(settings.shutdown_grace, Duration::from_secs(5));
        assert_eq!(settings.max_concurrent_activities, 16);
    }

    #[test]
    fn the_shipped_example_configuration_is_valid() {
        let file = parse(include_str!("../../../deploy/worker.toml")).unwrap();
        let settings = file.resolve().unwrap();
        assert_eq!(settings.log_format, LogFormat::Json);
        assert!(settings.health_address.is_some());
    }

    #[test]
    fn half_an_mtls_pair_is_an_error() {
        let file =
            parse("[worker]\nplugins_dir = \"/p\"\n[temporal]\ntls_client_cert = \"c.pem\"\n")
                .unwrap();
        let err = file.resolve().unwrap_err().to_string();
        assert!(err.contains("tls_client_key"), "{err}");
    }

    #[test]
    fn the_printed_configuration_hides_the_api_key_and_parses_back() {
        let file =
            parse("[worker]\nplugins_dir = \"/p\"\n[temporal]\napi_key = \"sekrit\"\n").unwrap();
        let text = file.resolve().unwrap().to_toml();
        assert!(!text.contains("sekrit"), "{text}");
        parse(&text).unwrap();
    }
}
