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
        /// Precompiled components, so a restart compiles nothing; must be the worker's own
        /// [default: cache].
        #[arg(long, env = "MLX_CACHE_DIR")]
        pub cache_dir: Option<PathBuf>,
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

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {}: {message}", path.display())]
    File { path: PathBuf, message: String },
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
        let fail = |message: String| ConfigError::File {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let mut file: Self = toml::from_str(&text).map_err(|e| fail(e.to_string()))?;
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
                // Relative to the working directory, like any relative path not from the file.
                cache_dir: Some("cache".into()),
                artifacts_dir: Some("artifacts".into()),
                // Metering costs every guest some speed; deadlines already bound wall time.
                fuel_metering: Some(false),
                // Well within systemd's default 90 s stop timeout.
                shutdown_grace_secs: Some(30),
            },
            telemetry: TelemetryConfig {
                log_format: Some(LogFormat::Human),
                metrics_address: None,
                health_address: None,
                otlp_endpoint: None,
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
        } = merged.clone();
        // Only reachable if `defaults()` lost a key; an error rather than a panic all the same.
        let unset = |key: &str| ConfigError::Invalid(format!("{key} is not set"));
        let plugins_dir = w.plugins_dir.ok_or_else(|| {
            ConfigError::Invalid(
                "no plugins directory: pass --plugins-dir, set MLX_PLUGINS_DIR or \
                 worker.plugins_dir in the config file"
                    .into(),
            )
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
            cache_dir: w.cache_dir.ok_or_else(|| unset("worker.cache_dir"))?,
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
            log_format: t.log_format.ok_or_else(|| unset("telemetry.log_format"))?,
            metrics_address: t.metrics_address,
            health_address: t.health_address,
            otlp_endpoint: t.otlp_endpoint,
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
    pub cache_dir: PathBuf,
    pub artifacts_dir: PathBuf,
    pub fuel_metering: bool,
    pub shutdown_grace: Duration,
    pub log_format: LogFormat,
    pub metrics_address: Option<SocketAddr>,
    pub health_address: Option<SocketAddr>,
    pub otlp_endpoint: Option<String>,
    /// Benchmarks only (`run --native-echo`): a native echo activity instead of the plugins.
    /// Not a file key: a benchmark switch has no place in an operator's configuration.
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
mod tests {
    use clap::{Args, Command, CommandFactory, Parser};

    use super::{run_args::RunArgs, *};

    fn parse(text: &str) -> Result<ConfigFile, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Every key of the file, absolute paths (so the file's location does not matter).
    const EVERY_KEY: &str = r#"
        [temporal]
        address = "temporal.example:7233"
        namespace = "ml"
        api_key = "sekrit"
        tls_client_cert = "/tls/client.pem"
        tls_client_key = "/tls/client.key"
        tls_server_ca = "/tls/ca.pem"
        tls_server_name = "temporal.example"
        profile = "prod"

        [worker]
        task_queue = "gpu"
        max_concurrent_activities = 4
        plugins_dir = "/srv/plugins"
        cache_dir = "/srv/cache"
        artifacts_dir = "/srv/artifacts"
        fuel_metering = true
        shutdown_grace_secs = 7

        [telemetry]
        log_format = "json"
        metrics_address = "127.0.0.1:9464"
        health_address = "127.0.0.1:9465"
        otlp_endpoint = "http://127.0.0.1:4318"
    "#;

    /// The same as [`EVERY_KEY`], as flags.
    const EVERY_FLAG: &[&str] = &[
        "--address=temporal.example:7233",
        "--namespace=ml",
        "--api-key=sekrit",
        "--tls-client-cert=/tls/client.pem",
        "--tls-client-key=/tls/client.key",
        "--tls-server-ca=/tls/ca.pem",
        "--tls-server-name=temporal.example",
        "--profile=prod",
        "--task-queue=gpu",
        "--max-concurrent-activities=4",
        "--plugins-dir=/srv/plugins",
        "--cache-dir=/srv/cache",
        "--artifacts-dir=/srv/artifacts",
        "--fuel-metering=true",
        "--shutdown-grace-secs=7",
        "--metrics-address=127.0.0.1:9464",
        "--health-address=127.0.0.1:9465",
        "--otlp-endpoint=http://127.0.0.1:4318",
    ];

    #[derive(Parser)]
    struct Run {
        #[command(flatten)]
        args: RunArgs,
    }

    /// Each section: its name, its file keys and its flags.
    fn sections() -> [(&'static str, &'static [&'static str], Command); 3] {
        let flags = Command::new("section");
        [
            (
                "temporal",
                TemporalConfig::KEYS,
                TemporalConfig::augment_args(flags.clone()),
            ),
            (
                "worker",
                WorkerConfig::KEYS,
                WorkerConfig::augment_args(flags.clone()),
            ),
            (
                "telemetry",
                TelemetryConfig::KEYS,
                TelemetryConfig::augment_args(flags),
            ),
        ]
    }

    /// A section's flags as (field, long flag, variable).
    fn flags(command: &Command) -> Vec<(String, String, String)> {
        command
            .get_arguments()
            .map(|a| {
                (
                    a.get_id().to_string(),
                    a.get_long().unwrap_or_default().to_string(),
                    a.get_env()
                        .map(|e| e.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                )
            })
            .collect()
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
        assert_eq!(settings.cache_dir, PathBuf::from("cache"));
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
    fn a_missing_plugins_directory_names_every_way_to_set_it() {
        let err = ConfigFile::default().resolve().unwrap_err().to_string();
        for way in ["--plugins-dir", "MLX_PLUGINS_DIR", "worker.plugins_dir"] {
            assert!(err.contains(way), "{err}");
        }
    }

    #[test]
    fn the_printed_configuration_hides_the_api_key_and_parses_back() {
        let file =
            parse("[worker]\nplugins_dir = \"/p\"\n[temporal]\napi_key = \"sekrit\"\n").unwrap();
        let settings = file.resolve().unwrap();
        let text = settings.to_toml();
        assert!(!text.contains("sekrit"), "{text}");
        let back = parse(&text).unwrap().resolve().unwrap();
        assert_eq!(back.task_queue, DEFAULT_TASK_QUEUE);
        assert_eq!(back.temporal.api_key.as_deref(), Some("<redacted>"));
    }

    #[test]
    fn paths_in_a_file_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("worker.toml");
        std::fs::write(
            &path,
            "[worker]\nplugins_dir = \"plugins\"\ncache_dir = \"/abs\"\n\
             [temporal]\ntls_server_ca = \"ca.pem\"\ntls_server_name = \"name\"\n",
        )
        .unwrap();
        let file = ConfigFile::load(&path).unwrap();
        assert_eq!(file.worker.plugins_dir, Some(dir.path().join("plugins")));
        assert_eq!(file.worker.cache_dir, Some(PathBuf::from("/abs")));
        assert_eq!(file.temporal.tls_server_ca, Some(dir.path().join("ca.pem")));
        assert_eq!(file.temporal.tls_server_name.as_deref(), Some("name"));
    }

    #[test]
    fn every_file_key_is_a_flag_with_an_environment_variable_and_the_same_name() {
        // A new section is covered by these tests once `sections()` lists it.
        let names = sections().map(|(name, ..)| name);
        assert_eq!(ConfigFile::KEYS, names);
        for (section, keys, command) in sections() {
            let flags = flags(&command);
            let mut from_flags: Vec<&str> = flags.iter().map(|(id, ..)| id.as_str()).collect();
            // The one exception: a global option of `mlx-worker`, see its doc comment.
            if section == "telemetry" {
                from_flags.insert(0, "log_format");
            }
            assert_eq!(keys, from_flags.as_slice(), "[{section}]");
            for (id, long, env) in &flags {
                assert_eq!(*long, id.replace('_', "-"), "{section}.{id}");
                assert!(
                    !env.is_empty(),
                    "{section}.{id} has no environment variable"
                );
            }
        }
    }

    #[test]
    fn a_file_with_every_key_and_a_command_line_with_every_flag_give_the_same_settings() {
        let file = parse(EVERY_KEY).unwrap();
        // The file really has every key (else this test would prove less than it says).
        let table = toml::Table::try_from(&file).unwrap();
        for (section, keys, _) in sections() {
            let written: Vec<&str> = table[section]
                .as_table()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let mut keys = keys.to_vec();
            keys.sort_unstable();
            assert_eq!(written, keys, "[{section}]");
        }
        let from_file = file.resolve().unwrap();

        let command_line = std::iter::once("mlx-worker").chain(EVERY_FLAG.iter().copied());
        let run = Run::try_parse_from(command_line).unwrap();
        let from_flags = run.args.settings(Some(LogFormat::Json)).unwrap();
        assert_eq!(from_file, from_flags);
        assert_eq!(from_file.to_toml(), from_flags.to_toml());
    }

    #[test]
    fn native_echo_is_a_flag_of_run_and_not_a_file_key() {
        let run = Run::try_parse_from(["mlx-worker", "--plugins-dir=/p", "--native-echo"]).unwrap();
        assert!(run.args.settings(None).unwrap().native_echo);
        let err = parse("[worker]\nnative_echo = true\n").unwrap_err();
        assert!(err.contains("native_echo"), "{err}");
    }

    #[test]
    fn the_defaults_in_the_help_are_the_defaults() {
        let defaults = toml::Table::try_from(ConfigFile::defaults()).unwrap();
        let mut checked = 0;
        for (section, _, command) in sections() {
            let values = defaults[section].as_table().unwrap();
            for (key, value) in values {
                // `log_format`'s flag is `mlx-worker`'s own, with its own help.
                let Some(arg) = command.get_arguments().find(|a| a.get_id() == key.as_str()) else {
                    continue;
                };
                let value = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_string);
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                assert!(
                    help.contains(&format!("[default: {value}]")),
                    "{section}.{key}: help {help:?} does not say its default {value}"
                );
                checked += 1;
            }
        }
        assert!(checked >= 6, "only {checked} defaults checked");
    }

    #[test]
    fn the_reference_documents_every_key_flag_and_variable() {
        let doc = include_str!("../../../docs/configuration.md");
        for (section, keys, command) in sections() {
            for key in keys {
                assert!(
                    doc.contains(&format!("`{section}.{key}`")),
                    "{section}.{key}"
                );
            }
            for (id, long, env) in flags(&command) {
                assert!(
                    doc.contains(&format!("`--{long}`")),
                    "{section}.{id}: --{long}"
                );
                assert!(doc.contains(&format!("`{env}`")), "{section}.{id}: {env}");
            }
        }
        for global in [
            "`--log-format`",
            "`MLX_LOG_FORMAT`",
            "`--config`",
            "`MLX_CONFIG`",
        ] {
            assert!(doc.contains(global), "{global}");
        }
        let example = include_str!("../../../deploy/worker.toml");
        assert!(
            doc.contains(example),
            "the example differs from deploy/worker.toml"
        );
    }

    #[test]
    fn the_run_command_line_is_well_formed() {
        Run::command().debug_assert();
    }
}
