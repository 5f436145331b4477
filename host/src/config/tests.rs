//! The configuration's layers, defaults and reference, checked against each other.

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
    plugin_refs = ["oci://registry.example/ml/csv@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "oci://localhost:5000/testkit@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"]
    cache_dir = "/srv/cache"
    cache_max_mb = 256
    artifacts_dir = "/srv/artifacts"
    fuel_metering = true
    shutdown_grace_secs = 7
    max_input_bytes = 65536
    max_cached_workflows = 50
    step_cache_max_mb = 512
    deployment_name = "ml-fleet"
    artifacts_store = "s3://ml-artifacts/runs"
    artifacts_fetch_max_mb = 2048
    artifacts_cache_max_mb = 4096

    [telemetry]
    log_format = "json"
    metrics_address = "127.0.0.1:9464"
    health_address = "127.0.0.1:9465"
    otlp_endpoint = "http://127.0.0.1:4318"

    [lineage]
    openlineage_url = "http://127.0.0.1:5000"
    openlineage_namespace = "ml-platform"
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
    "--plugin-ref=oci://registry.example/ml/csv@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "--plugin-refs=oci://localhost:5000/testkit@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "--cache-dir=/srv/cache",
    "--cache-max-mb=256",
    "--artifacts-dir=/srv/artifacts",
    "--fuel-metering=true",
    "--shutdown-grace-secs=7",
    "--max-input-bytes=65536",
    "--max-cached-workflows=50",
    "--step-cache-max-mb=512",
    "--deployment-name=ml-fleet",
    "--artifacts-store=s3://ml-artifacts/runs",
    "--artifacts-fetch-max-mb=2048",
    "--artifacts-cache-max-mb=4096",
    "--metrics-address=127.0.0.1:9464",
    "--health-address=127.0.0.1:9465",
    "--otlp-endpoint=http://127.0.0.1:4318",
    "--openlineage-url=http://127.0.0.1:5000",
    "--openlineage-namespace=ml-platform",
];

#[derive(Parser)]
struct Run {
    #[command(flatten)]
    args: RunArgs,
}

/// Each section: its name, its file keys and its flags.
fn sections() -> [(&'static str, &'static [&'static str], Command); 4] {
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
            TelemetryConfig::augment_args(flags.clone()),
        ),
        (
            "lineage",
            LineageConfig::KEYS,
            LineageConfig::augment_args(flags),
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
fn a_deployment_name_must_be_usable_in_a_version_name() {
    for bad in ["", "  ", "fleet.v2"] {
        let file = parse(&format!(
            "[worker]\nplugins_dir = \"/p\"\ndeployment_name = {bad:?}\n"
        ))
        .unwrap();
        let err = file.resolve().unwrap_err().to_string();
        assert!(err.contains("worker.deployment_name"), "{err}");
    }
    let file = parse("[worker]\nplugins_dir = \"/p\"\ndeployment_name = \"fleet\"\n").unwrap();
    assert_eq!(
        file.resolve().unwrap().deployment_name.as_deref(),
        Some("fleet")
    );
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
        parse("[worker]\nplugins_dir = \"/p\"\n[temporal]\ntls_client_cert = \"c.pem\"\n").unwrap();
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
    let file = parse("[worker]\nplugins_dir = \"/p\"\n[temporal]\napi_key = \"sekrit\"\n").unwrap();
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

#[cfg(feature = "native-echo")]
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

#[test]
fn file_errors_keep_their_cause_as_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let missing = ConfigFile::load(&dir.path().join("missing.toml")).unwrap_err();
    let io = std::error::Error::source(&missing)
        .and_then(std::error::Error::source)
        .and_then(|e| e.downcast_ref::<std::io::Error>())
        .expect("the io::Error under FileError::Read");
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    assert!(missing.to_string().contains("cannot read"), "{missing}");

    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[worker]\nnot_a_key = 1\n").unwrap();
    let bad = ConfigFile::load(&path).unwrap_err();
    let parse = std::error::Error::source(&bad)
        .and_then(std::error::Error::source)
        .and_then(|e| e.downcast_ref::<toml::de::Error>());
    assert!(parse.is_some(), "{bad:?}");
    assert!(bad.to_string().contains("not_a_key"), "{bad}");
}

#[test]
fn an_openlineage_url_is_checked_when_the_configuration_is_resolved() {
    let file = parse(
        "[worker]\nplugins_dir = \"/p\"\n[lineage]\nopenlineage_url = \"file:///tmp/ol.jsonl\"\n",
    )
    .unwrap();
    let settings = file.resolve().unwrap();
    assert_eq!(
        settings.openlineage,
        Some((
            crate::openlineage::Sink::File("/tmp/ol.jsonl".into()),
            "mlx".to_string()
        ))
    );
    let file =
        parse("[worker]\nplugins_dir = \"/p\"\n[lineage]\nopenlineage_url = \"kafka://x\"\n")
            .unwrap();
    let err = file.resolve().unwrap_err().to_string();
    assert!(
        err.contains("lineage.openlineage_url") && err.contains("kafka"),
        "{err}"
    );
    assert_eq!(
        parse("[worker]\nplugins_dir = \"/p\"\n")
            .unwrap()
            .resolve()
            .unwrap()
            .openlineage,
        None
    );
}
