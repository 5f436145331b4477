//! Flags and environment variables of `mlx-worker run`, turned into the file's shape so that
//! [`crate::config`] applies one precedence rule to all three sources. No defaults here: a
//! default would hide the file's value.

use std::{net::SocketAddr, path::PathBuf};

use crate::{
    config::{ConfigError, ConfigFile, Settings, TelemetryConfig, TemporalConfig, WorkerConfig},
    daemon::telemetry::LogFormat,
};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Configuration file (TOML); flags and environment variables override its keys.
    #[arg(long, env = "MLX_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print the resolved configuration (API key redacted) and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Directory of plugin components (`NAME.wasm`, optional `NAME.toml` manifest).
    #[arg(long, env = "MLX_PLUGINS_DIR")]
    pub plugins_dir: Option<PathBuf>,
    /// Task queue to poll [default: mlx-plugins].
    #[arg(long, env = "MLX_TASK_QUEUE")]
    pub task_queue: Option<String>,
    /// Root of per-workflow artifacts directories, mounted at /artifacts [default: artifacts].
    #[arg(long, env = "MLX_ARTIFACTS_DIR")]
    pub artifacts_dir: Option<PathBuf>,
    /// Precompiled components, so a restart compiles nothing; must be the worker's own
    /// [default: cache].
    #[arg(long, env = "MLX_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Activities run at once, one sandbox each [default: 16].
    #[arg(long, env = "MLX_MAX_CONCURRENT_ACTIVITIES")]
    pub max_concurrent_activities: Option<usize>,
    /// Meter guest instructions, so manifests can set limits.fuel.
    #[arg(long, env = "MLX_FUEL_METERING")]
    pub fuel_metering: Option<bool>,
    /// Seconds in-flight activities may run after SIGTERM before they are cancelled
    /// [default: 30].
    #[arg(long, env = "MLX_SHUTDOWN_GRACE_SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// Prometheus endpoint address, e.g. 127.0.0.1:9464 [default: off].
    #[arg(long, env = "MLX_METRICS_ADDRESS")]
    pub metrics_address: Option<SocketAddr>,
    /// Health endpoint address (/healthz, /readyz), e.g. 127.0.0.1:9465 [default: off].
    #[arg(long, env = "MLX_HEALTH_ADDRESS")]
    pub health_address: Option<SocketAddr>,
    /// OTLP/HTTP collector for traces, e.g. http://127.0.0.1:4318 [default: off].
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Temporal frontend `host:port` [default: from temporal.toml, else localhost:7233].
    #[arg(long, env = "TEMPORAL_ADDRESS")]
    pub address: Option<String>,
    /// Namespace [default: from temporal.toml, else `default`].
    #[arg(long, env = "TEMPORAL_NAMESPACE")]
    pub namespace: Option<String>,
    /// API key (Temporal Cloud); implies TLS. Prefer the environment variable to the flag.
    #[arg(long, env = "TEMPORAL_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// mTLS client certificate (PEM).
    #[arg(long, env = "TEMPORAL_TLS_CLIENT_CERT_PATH")]
    pub tls_client_cert: Option<PathBuf>,
    /// mTLS client key (PEM).
    #[arg(long, env = "TEMPORAL_TLS_CLIENT_KEY_PATH")]
    pub tls_client_key: Option<PathBuf>,
    /// CA certificate of the server (PEM), when the system roots do not cover it.
    #[arg(long, env = "TEMPORAL_TLS_SERVER_CA_CERT_PATH")]
    pub tls_server_ca: Option<PathBuf>,
    /// Server name to verify the server certificate against.
    #[arg(long, env = "TEMPORAL_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,
    /// temporal.toml profile to start from.
    #[arg(long, env = "TEMPORAL_PROFILE")]
    pub profile: Option<String>,
    /// For the end-to-end benchmark only: serve `plugin_activity` with a native Rust copy of
    /// the testkit plugin's `echo` instead of the plugins, to measure what the sandbox costs.
    #[arg(long, env = "MLX_NATIVE_ECHO")]
    pub native_echo: bool,
}

impl RunArgs {
    /// The settings: these flags/variables over the `--config` file over the defaults.
    pub fn settings(&self, log_format: Option<LogFormat>) -> Result<Settings, ConfigError> {
        let file = match &self.config {
            Some(path) => ConfigFile::load(path)?,
            None => ConfigFile::default(),
        };
        let over = ConfigFile {
            temporal: TemporalConfig {
                address: self.address.clone(),
                namespace: self.namespace.clone(),
                api_key: self.api_key.clone(),
                tls_client_cert: self.tls_client_cert.clone(),
                tls_client_key: self.tls_client_key.clone(),
                tls_server_ca: self.tls_server_ca.clone(),
                tls_server_name: self.tls_server_name.clone(),
                profile: self.profile.clone(),
            },
            worker: WorkerConfig {
                task_queue: self.task_queue.clone(),
                max_concurrent_activities: self.max_concurrent_activities,
                plugins_dir: self.plugins_dir.clone(),
                cache_dir: self.cache_dir.clone(),
                artifacts_dir: self.artifacts_dir.clone(),
                fuel_metering: self.fuel_metering,
                shutdown_grace_secs: self.shutdown_grace_secs,
            },
            telemetry: TelemetryConfig {
                log_format,
                metrics_address: self.metrics_address,
                health_address: self.health_address,
                otlp_endpoint: self.otlp_endpoint.clone(),
            },
        };
        // Not a file key: a benchmark switch has no place in an operator's configuration.
        let mut settings = file.overridden_by(over).resolve()?;
        settings.native_echo = self.native_echo;
        Ok(settings)
    }
}
