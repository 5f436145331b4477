//! The sandbox without Temporal: real components in the real runtime, one invocation each.
//! Every way an invocation ends is classified; these pin the classification.

use std::{path::Path, sync::Arc, time::Duration};

use mlx_e2e::{
    PluginsDir, components,
    components::{drop_in, variant},
    eventually, host_settings,
};
use mlx_runtime::{
    HostSettings, PluginHost,
    contract::{InvocationContext, JsonText},
    engine::WARM_MEMORY_SLOTS,
    failure::InvocationError,
    plugin::{LoadError, LoadedPlugin, registry::PluginRegistry},
    sandbox::capabilities::activity::ActivitySignals,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn runtime(artifacts: Option<&Path>) -> Arc<PluginHost> {
    PluginHost::new(HostSettings {
        artifacts_dir: artifacts.map(Path::to_path_buf),
        ..host_settings()
    })
    .unwrap()
}

fn ctx(attempt: u32, last: Option<Value>) -> InvocationContext {
    InvocationContext {
        workflow_id: "wf-1".into(),
        activity_id: "7".into(),
        attempt,
        last_heartbeat_details: last.as_ref().map(JsonText::from),
    }
}

async fn load(runtime: &PluginHost, plugins: &PluginsDir, name: &str) -> LoadedPlugin {
    runtime
        .load(&plugins.path().join(format!("{name}.wasm")))
        .await
        .unwrap()
}

async fn invoke(
    runtime: &PluginHost,
    plugin: &LoadedPlugin,
    operation: &str,
    input: Value,
) -> Result<Value, InvocationError> {
    let (signals, _) = ActivitySignals::new(CancellationToken::new());
    runtime
        .invoke(plugin, operation, &input, &ctx(1, None), signals, None)
        .await
        .map(|done| done.output)
}

#[tokio::test]
async fn context_and_checkpoint_reach_the_guest() {
    let rt = runtime(None);
    let plugins = PluginsDir::with(&["testkit"]);
    let testkit = load(&rt, &plugins, "testkit").await;
    let (signals, _) = ActivitySignals::new(CancellationToken::new());
    let out = rt
        .invoke(
            &testkit,
            "echo",
            &json!({"x": 1}),
            &ctx(3, Some(json!({"step": 2}))),
            signals,
            None,
        )
        .await
        .unwrap()
        .output;
    assert_eq!(out["workflow_id"], "wf-1");
    assert_eq!(out["activity_id"], "7");
    assert_eq!(out["attempt"], 3);
    assert_eq!(out["last_heartbeat_details"], json!({"step": 2}));
}

#[tokio::test]
async fn guest_error_variants_keep_type_and_retryability() {
    let rt = runtime(None);
    let plugins = PluginsDir::with(&["testkit"]);
    let testkit = load(&rt, &plugins, "testkit").await;
    for (kind, retryable) in [
        ("invalid_input", false),
        ("retryable", true),
        ("permanent", false),
    ] {
        let input =
            json!({"kind": kind, "type_name": "Injected", "message": "m", "details": {"k": 1}});
        let err = invoke(&rt, &testkit, "fail", input).await.unwrap_err();
        let f = err.failure();
        assert_eq!(f.type_name, "Injected", "{kind}");
        assert_eq!(f.retryable, retryable, "{kind}");
        assert_eq!(f.details.unwrap()["details"], json!({"k": 1}), "{kind}");
    }
}

#[tokio::test]
async fn panic_is_a_trap_with_the_panic_message() {
    let rt = runtime(None);
    let plugins = PluginsDir::with(&["testkit"]);
    let testkit = load(&rt, &plugins, "testkit").await;
    let err = invoke(&rt, &testkit, "panic", json!({"message": "kaboom"}))
        .await
        .unwrap_err();
    let f = err.failure();
    assert_eq!(f.type_name, "PluginTrapped");
    assert!(f.message.contains("kaboom"), "{}", f.message);
    let details = f.details.unwrap();
    assert!(
        details["backtrace"].as_str().unwrap().contains("testkit"),
        "{details:#}"
    );
}

#[tokio::test]
async fn memory_limit_is_reported_as_such() {
    let rt = runtime(None);
    let plugins = PluginsDir::with(&["testkit"]);
    plugins.write_manifest("testkit", "[limits]\nmemory_mb = 32\n");
    let testkit = load(&rt, &plugins, "testkit").await;
    let err = invoke(&rt, &testkit, "alloc", json!({"mb": 64}))
        .await
        .unwrap_err();
    let f = err.failure();
    assert_eq!(f.type_name, "PluginMemoryLimitExceeded", "{err}");
    assert!(!f.retryable);
    assert!(f.message.contains("32 MiB"), "{}", f.message);
    // Under the limit the same operation succeeds: the limit, not the plugin, failed it.
    let ok = invoke(&rt, &testkit, "alloc", json!({"mb": 8}))
        .await
        .unwrap();
    assert_eq!(ok["allocated_mb"], 8);
}

#[tokio::test]
async fn deadline_interrupts_a_spinning_guest() {
    let rt = runtime(None);
    let plugins = PluginsDir::with(&["testkit"]);
    plugins.write_manifest("testkit", "[limits]\ntimeout_secs = 1\n");
    let testkit = load(&rt, &plugins, "testkit").await;
    let err = invoke(&rt, &testkit, "spin", json!({})).await.unwrap_err();
    assert_eq!(err.failure().type_name, "PluginDeadlineExceeded", "{err}");
    assert_eq!(rt.active_invocations(), 0);
}

#[tokio::test]
async fn cancellation_interrupts_a_guest_that_ignores_it() {
    let rt = runtime(None);
    let plugins = PluginsDir::with(&["testkit"]);
    plugins.write_manifest("testkit", "[limits]\ncancel_grace_secs = 0\n");
    let testkit = load(&rt, &plugins, "testkit").await;
    let cancel = CancellationToken::new();
    let (signals, _) = ActivitySignals::new(cancel.clone());
    let canceller = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        canceller.cancel();
    });
    let err = rt
        .invoke(&testkit, "spin", &json!({}), &ctx(1, None), signals, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            InvocationError::Cancelled {
                acknowledged_by_plugin: false
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn unknown_operation_lists_the_real_ones() {
    let rt = runtime(None);
    let plugins = PluginsDir::with(&["testkit"]);
    let testkit = load(&rt, &plugins, "testkit").await;
    let err = invoke(&rt, &testkit, "nope", json!({})).await.unwrap_err();
    let f = err.failure();
    assert_eq!(f.type_name, "UnknownOperation");
    assert!(
        f.message.contains("echo") && f.message.contains("spin"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn log_and_stdio_lines_do_not_disturb_the_output() {
    let rt = runtime(None);
    let plugins = PluginsDir::with(&["testkit"]);
    let testkit = load(&rt, &plugins, "testkit").await;
    let out = invoke(&rt, &testkit, "log", json!({"lines": 3}))
        .await
        .unwrap();
    assert_eq!(out["lines"], 3);
}

fn extract_input() -> Value {
    json!({"source": "/data/breast_cancer.csv", "target": "target", "seed": 7})
}

/// No manifest: no /data.
#[tokio::test]
async fn a_data_plugin_without_a_grant_sees_no_data() {
    let artifacts = tempfile::tempdir().unwrap();
    let rt = runtime(Some(artifacts.path()));
    let plugins = PluginsDir::with(&["csv"]);
    let csv = load(&rt, &plugins, "csv").await;
    let err = invoke(&rt, &csv, "extract_data", extract_input())
        .await
        .unwrap_err();
    assert_eq!(err.failure().type_name, "SourceNotFound", "{err}");
    assert!(!err.failure().retryable);
}

/// Granted read-only: the split lands in this workflow's artifacts directory.
#[tokio::test]
async fn a_data_plugin_reads_its_grant_and_writes_to_the_workflows_artifacts() {
    let artifacts = tempfile::tempdir().unwrap();
    let rt = runtime(Some(artifacts.path()));
    let plugins = PluginsDir::with(&["csv"]);
    let input = extract_input();
    let data = mlx_e2e::workspace_root().join("data");
    plugins.write_manifest(
        "csv",
        &format!(
            "[[filesystem]]\nhost = {:?}\nguest = \"/data\"\n",
            data.display().to_string()
        ),
    );
    let csv = load(&rt, &plugins, "csv").await;
    let out = invoke(&rt, &csv, "extract_data", input).await.unwrap();
    assert_eq!(
        out["train"]["rows"].as_u64().unwrap() + out["test"]["rows"].as_u64().unwrap(),
        569
    );
    let train = artifacts.path().join("wf-1/dataset/train.csv");
    let lines = std::fs::read_to_string(&train).unwrap().lines().count();
    assert_eq!(
        lines as u64,
        out["train"]["rows"].as_u64().unwrap() + 1,
        "header + rows"
    );
}

#[tokio::test]
async fn two_files_claiming_one_name_is_a_load_error() {
    let rt = runtime(None);
    let plugins = PluginsDir::with(&["testkit"]);
    std::fs::copy(
        components().join("testkit.wasm"),
        plugins.path().join("testkit-copy.wasm"),
    )
    .unwrap();
    let err = PluginRegistry::load_dir(&rt, plugins.path())
        .await
        .unwrap_err();
    assert!(matches!(err, LoadError::DuplicateName { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("testkit.wasm") && message.contains("testkit-copy.wasm"),
        "{message}"
    );
}

#[tokio::test]
async fn missing_import_fails_at_load_naming_file_and_import() {
    let rt = runtime(None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("needs-more.wasm");
    let component = wat::parse_str(
        r#"(component
             (import "acme:secret/vault@1.0.0" (instance (export "open" (func))))
           )"#,
    )
    .unwrap();
    std::fs::write(&path, component).unwrap();
    let err = rt.load(&path).await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, LoadError::RefusedImport { .. }), "{message}");
    assert!(message.contains("needs-more.wasm"), "{message}");
    assert!(message.contains("acme:secret/vault"), "{message}");
}

/// The standard library's sockets import `wasi:sockets` (as Python's and JavaScript's runtimes
/// do by default): the component loads, and a TCP connection, a UDP socket and a name lookup
/// are each refused by the host before anything reaches the network. The host, not the
/// plugin, says so: the denials name what was refused and what to use instead.
#[tokio::test]
async fn sockets_load_and_every_call_is_denied_before_any_connection() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let rt = runtime(None);
    let plugins = PluginsDir::with(&["hostile"]);
    let plugin = load(&rt, &plugins, "hostile").await;
    let err = invoke(&rt, &plugin, "sockets", json!({"connect": addr}))
        .await
        .unwrap_err();
    let failure = err.failure();
    assert_eq!(failure.type_name, "CapabilityDenied", "{err}");
    assert!(!failure.retryable);
    let denied = failure.details.unwrap()["denied"].to_string();
    for refused in [
        "wasi:sockets: raw network sockets",
        "a TCP socket",
        "a UDP socket",
        "resolving \\\"localhost\\\"",
    ] {
        assert!(denied.contains(refused), "{refused} missing: {denied}");
    }
    assert!(
        denied.contains("[http]"),
        "says what to use instead: {denied}"
    );
    assert_eq!(
        listener.accept().map_err(|e| e.kind()).unwrap_err(),
        std::io::ErrorKind::WouldBlock,
        "no connection reached the listener"
    );
}

#[tokio::test]
async fn a_core_module_is_refused_with_a_hint() {
    let rt = runtime(None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("core.wasm");
    std::fs::write(&path, wat::parse_str("(module)").unwrap()).unwrap();
    let err = rt.load(&path).await.unwrap_err();
    assert!(err.to_string().contains("wasm32-wasip2"), "{err}");
}

/// A component instantiating more core modules than the pool gives one component is refused
/// naming the limit, not told to build for wasm32-wasip2 (which it may well be).
#[tokio::test]
async fn a_component_over_the_pool_limits_is_refused_naming_them() {
    let rt = runtime(None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.wasm");
    let instances = "(core instance (instantiate $m))"
        .repeat(mlx_runtime::engine::CORE_INSTANCES_PER_COMPONENT as usize + 1);
    let component = wat::parse_str(format!("(component (core module $m) {instances})")).unwrap();
    std::fs::write(&path, component).unwrap();
    let err = rt.load(&path).await.unwrap_err().to_string();
    assert!(err.contains("at most 64 core instances"), "{err}");
    assert!(!err.contains("wasm32-wasip2"), "{err}");
}

/// Runs a testkit operation that breaks the contract and checks its failure: `failure_type`,
/// not retryable, and a message with `hint`.
async fn breach(operation: &str, input: Value, failure_type: &str, hint: &str) {
    let rt = runtime(None);
    let plugins = PluginsDir::with(&["testkit"]);
    let testkit = load(&rt, &plugins, "testkit").await;
    let err = invoke(&rt, &testkit, operation, input).await.unwrap_err();
    let f = err.failure();
    assert_eq!(f.type_name, failure_type, "{err}");
    assert!(!f.retryable);
    assert!(f.message.contains(hint), "{}", f.message);
    assert_eq!(rt.active_invocations(), 0);
}

#[tokio::test]
async fn a_heartbeat_that_is_not_json_is_a_contract_violation() {
    breach(
        "raw_heartbeat",
        json!({"text": "{not json"}),
        "PluginContractViolation",
        "not valid JSON",
    )
    .await;
}

#[tokio::test]
async fn an_oversized_heartbeat_is_a_contract_violation() {
    breach(
        "raw_heartbeat",
        json!({"kb": 300}),
        "PluginContractViolation",
        "exceed",
    )
    .await;
}

#[tokio::test]
async fn an_oversized_output_is_refused_pointing_to_artifacts() {
    breach(
        "big_output",
        json!({"kb": 2048}),
        "PluginOutputTooLarge",
        "artifacts",
    )
    .await;
}

#[tokio::test]
async fn unbounded_recursion_is_a_stack_overflow() {
    breach("recurse", json!({}), "PluginStackOverflow", "stack").await;
}

/// A well-formed heartbeat through the same import as the breaches is fine.
#[tokio::test]
async fn a_well_formed_raw_heartbeat_is_accepted() {
    let rt = runtime(None);
    let plugins = PluginsDir::with(&["testkit"]);
    let testkit = load(&rt, &plugins, "testkit").await;
    let ok = invoke(
        &rt,
        &testkit,
        "raw_heartbeat",
        json!({"text": "{\"ok\": 1}"}),
    )
    .await
    .unwrap();
    assert_eq!(ok["cancelled"], false);
}

/// A random forest grows one tree a round, appended to a checkpoint journal every
/// `checkpoint_every` rounds that the heartbeats name (path, rounds). Attempt 1 is cancelled
/// once a heartbeat names the journal; attempt 2 grows only the trees the journal lacks.
#[tokio::test]
async fn trainer_resumes_from_the_checkpoint_of_a_previous_attempt() {
    let artifacts = tempfile::tempdir().unwrap();
    let rt = runtime(Some(artifacts.path()));
    let plugins = PluginsDir::with(&["csv", "trainer"]);
    let data = mlx_e2e::workspace_root().join("data");
    plugins.write_manifest(
        "csv",
        &format!(
            "[[filesystem]]\nhost = {:?}\nguest = \"/data\"\n",
            data.display().to_string()
        ),
    );
    // Every round's heartbeat reaches the test, none held back by the rate limit.
    plugins.write_manifest("trainer", "[limits]\nheartbeats_per_sec = 1000\n");
    let csv = load(&rt, &plugins, "csv").await;
    let trainer = load(&rt, &plugins, "trainer").await;
    let split = json!({"source": "/data/iris.csv", "target": "target", "seed": 3});
    let extracted = invoke(&rt, &csv, "extract_data", split).await.unwrap();
    // Far more trees than attempt 1 grows before it sees the cancellation (at its next
    // yield to this test's runtime, within one 10 ms epoch tick).
    const TREES: u64 = 500;
    let input = json!({
        "train": extracted["train"]["path"], "test": extracted["test"]["path"],
        "target": "target", "checkpoint_every": 5,
        "model": {"family": "random_forest",
                  "hyperparameters": {"n_estimators": TREES, "max_depth": 3, "seed": 7}},
    });

    // Attempt 1 is cancelled as soon as a heartbeat names a checkpoint file.
    let cancel = CancellationToken::new();
    let (signals, mut heartbeats) = ActivitySignals::new(cancel.clone());
    let canceller = tokio::spawn(async move {
        while heartbeats.changed().await.is_ok() {
            let beat = heartbeats
                .borrow_and_update()
                .as_ref()
                .map(|d| d.to_value());
            if beat.is_some_and(|b| !b["checkpoint"].is_null()) {
                cancel.cancel();
                break;
            }
        }
        heartbeats
    });
    let err = rt
        .invoke(
            &trainer,
            "train_model",
            &input,
            &ctx(1, None),
            signals,
            None,
        )
        .await
        .expect_err("attempt 1 is cancelled long before its last tree");
    assert!(
        matches!(
            err,
            InvocationError::Cancelled {
                acknowledged_by_plugin: true
            }
        ),
        "{err:?}"
    );
    let heartbeats = canceller.await.unwrap();
    let last = heartbeats
        .borrow()
        .as_ref()
        .expect("trainer heartbeats")
        .to_value();
    let checkpoint = &last["checkpoint"];
    let saved = checkpoint["rounds"]
        .as_u64()
        .expect("a checkpoint's rounds");
    assert!(saved >= 5 && saved % 5 == 0, "{last}");
    assert!(last["round"].as_u64().unwrap() >= saved, "{last}");
    assert_eq!(last["of"], TREES, "{last}");
    let on_host = artifacts.path().join("wf-1").join(
        checkpoint["path"]
            .as_str()
            .unwrap()
            .trim_start_matches("/artifacts/"),
    );
    assert!(on_host.is_file(), "{} is missing", on_host.display());
    // The journal: a header line, then one line per tree; it may have gone on after the
    // heartbeat this test saw, until attempt 1 saw the cancellation.
    let journaled = std::fs::read_to_string(&on_host).unwrap().lines().count() as u64 - 1;
    assert!(
        journaled >= saved && journaled.is_multiple_of(5),
        "{journaled} after {last}"
    );

    // Attempt 2, given attempt 1's last heartbeat, continues from the journal.
    let (signals, _) = ActivitySignals::new(CancellationToken::new());
    let out = rt
        .invoke(
            &trainer,
            "train_model",
            &input,
            &ctx(2, Some(last)),
            signals,
            None,
        )
        .await
        .unwrap()
        .output;
    let rounds = &out["rounds"];
    assert_eq!(rounds["resumed_from"], journaled, "{out:#}");
    assert_eq!(rounds["run"], TREES - journaled, "{out:#}");
    assert_eq!(rounds["total"], TREES, "{out:#}");
    assert_eq!(out["family"], "random_forest", "{out:#}");
    assert!(
        out["metrics"]["accuracy"].as_f64().unwrap() > 0.85,
        "{out:#}"
    );
    assert!(!on_host.exists(), "the model supersedes the checkpoint");
}

#[tokio::test]
async fn every_invocation_gets_a_fresh_instance() {
    let rt = runtime(None);
    let plugins = PluginsDir::with(&["testkit"]);
    let testkit = load(&rt, &plugins, "testkit").await;
    for _ in 0..3 {
        let out = invoke(&rt, &testkit, "count_calls", json!({}))
            .await
            .unwrap();
        assert_eq!(out["calls"], 1, "state leaked between invocations");
    }
}

/// A used pool slot keeps pages resident, so a worker's memory must follow how many instances
/// run at once, not how many plugin versions it has loaded (issue 18: with wasmtime's default
/// every reload's version touched fresh slots). One call at a time: once more versions have
/// run than idle slots are kept, more versions use no more slots. (wasmtime splits the budget
/// among its pool's shards, one per core for a pool this size, so the level itself depends on
/// the machine; that it stops does not.)
#[tokio::test]
async fn new_plugin_versions_reuse_the_pools_used_memory_slots() {
    let rt = runtime(None);
    let plugins = PluginsDir::with(&[]);
    let per_round = WARM_MEMORY_SLOTS + 2;
    let mut slots_after = Vec::new();
    for round in 0..2 {
        for version in 0..per_round {
            let bytes = variant("testkit", &format!("r{round}v{version}"));
            drop_in(plugins.path(), "testkit.wasm", &bytes);
            let testkit = load(&rt, &plugins, "testkit").await;
            invoke(&rt, &testkit, "count_calls", json!({}))
                .await
                .unwrap();
        }
        let pool = rt.engine().pooling_allocator_metrics().unwrap();
        slots_after.push(pool.unused_warm_memories());
    }
    assert!(
        slots_after[0] <= WARM_MEMORY_SLOTS && slots_after[1] == slots_after[0],
        "used slots after {per_round} and {} versions, one call at a time: {slots_after:?} \
         (at most {WARM_MEMORY_SLOTS}, and not growing)",
        2 * per_round
    );
}

#[tokio::test]
async fn plugin_sees_exactly_the_granted_env_config_and_secrets() {
    let rt = runtime(None);
    let plugins = PluginsDir::with(&["testkit"]);
    std::fs::write(plugins.path().join("token.txt"), "s3cr3t\n").unwrap();
    plugins.write_manifest(
        "testkit",
        r#"
[env]
GREETING = "hi"

[config]
region = "eu-west-1"

[secrets]
token = { file = "token.txt" }
path = { env = "PATH" }
"#,
    );
    let testkit = load(&rt, &plugins, "testkit").await;
    let asked = json!({
        "config": ["region", "missing"],
        "secrets": ["token", "path", "ungranted"],
        "env": ["GREETING", "HOME", "PATH"],
    });
    let out = invoke(&rt, &testkit, "grants", asked).await.unwrap();
    assert_eq!(
        out["config"],
        json!({"region": "eu-west-1", "missing": null})
    );
    assert_eq!(out["secrets"]["token"], "s3cr3t");
    assert_eq!(out["secrets"]["path"], std::env::var("PATH").unwrap());
    assert_eq!(out["secrets"]["ungranted"], Value::Null);
    // The worker's own environment stays outside: only what the manifest lists.
    assert_eq!(
        out["env"],
        json!({"GREETING": "hi", "HOME": null, "PATH": null})
    );
    assert_eq!(out["env_names"], json!(["GREETING"]));
}

#[tokio::test]
async fn a_plugin_without_manifest_gets_no_environment() {
    let rt = runtime(None);
    let plugins = PluginsDir::with(&["testkit"]);
    let testkit = load(&rt, &plugins, "testkit").await;
    let out = invoke(
        &rt,
        &testkit,
        "grants",
        json!({"config": ["x"], "secrets": ["x"]}),
    )
    .await
    .unwrap();
    assert_eq!(out["env_names"], json!([]));
    assert_eq!(out["config"]["x"], Value::Null);
    assert_eq!(out["secrets"]["x"], Value::Null);
}

fn with_scratch_root(root: &Path) -> Arc<PluginHost> {
    PluginHost::new(HostSettings {
        scratch_root: Some(root.to_path_buf()),
        ..host_settings()
    })
    .unwrap()
}

/// Not granted (the default): no /scratch, and nothing made on the host.
#[tokio::test]
async fn no_scratch_without_a_grant() {
    let scratch_root = tempfile::tempdir().unwrap();
    let rt = with_scratch_root(scratch_root.path());
    let plugins = PluginsDir::with(&["testkit"]);
    let testkit = load(&rt, &plugins, "testkit").await;
    let err = invoke(&rt, &testkit, "scratch", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.failure().type_name, "ScratchUnavailable", "{err}");
    let made: Vec<_> = std::fs::read_dir(scratch_root.path()).unwrap().collect();
    assert!(made.is_empty(), "scratch made without a grant: {made:?}");
}

#[tokio::test]
async fn granted_scratch_is_fresh_for_each_invocation_and_removed_after() {
    let scratch_root = tempfile::tempdir().unwrap();
    let rt = with_scratch_root(scratch_root.path());
    let plugins = PluginsDir::with(&["testkit"]);
    plugins.write_manifest("testkit", "scratch = true\n");
    let testkit = load(&rt, &plugins, "testkit").await;
    for _ in 0..2 {
        let out = invoke(&rt, &testkit, "scratch", json!({})).await.unwrap();
        assert_eq!(out["entries_before"], json!([]), "scratch must start empty");
        assert_eq!(out["written"], 4096);
        // Removed in the background, after the result is out.
        eventually(
            Duration::from_secs(30),
            "the scratch directory removed",
            || {
                let left = std::fs::read_dir(scratch_root.path()).unwrap().count();
                async move { (left == 0).then_some(()) }
            },
        )
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn max_concurrent_makes_extra_invocations_wait_their_turn() {
    let rt = runtime(None);
    let plugins = PluginsDir::with(&["testkit"]);
    plugins.write_manifest("testkit", "[limits]\nmax_concurrent = 1\n");
    let testkit = load(&rt, &plugins, "testkit").await;
    // Each call heartbeats 5 times 100 ms apart: at least 0.4 s of wall time.
    let work = json!({"max_beats": 5, "interval_ms": 100});
    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(
        invoke(&rt, &testkit, "wait_for_cancel", work.clone()),
        invoke(&rt, &testkit, "wait_for_cancel", work.clone()),
    );
    assert_eq!(a.unwrap()["beats"], 5);
    assert_eq!(b.unwrap()["beats"], 5);
    // One slot: the second could only start when the first ended (a lower bound, so a slow
    // machine cannot make this flaky).
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn component_without_the_plugin_export_is_refused_at_load() {
    let rt = runtime(None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.wasm");
    std::fs::write(&path, wat::parse_str("(component)").unwrap()).unwrap();
    let err = rt.load(&path).await.unwrap_err();
    assert!(matches!(err, LoadError::MissingExport { .. }), "{err}");
    assert!(err.to_string().contains("mlx:plugin/plugin@0.1.0"), "{err}");
}

#[tokio::test]
async fn table_growth_bomb_is_contained() {
    let rt = runtime(None);
    // A core module whose start function grows a table until growth is refused, then traps.
    let component = wasmtime::component::Component::new(
        rt.engine(),
        wat::parse_str(
            r#"(component
                 (core module $bomb
                   (table $t 0 funcref)
                   (func $grow
                     (loop $again
                       (br_if $again
                         (i32.ne (table.grow $t (ref.null func) (i32.const 100000))
                                 (i32.const -1))))
                     unreachable)
                   (start $grow))
                 (core instance (instantiate $bomb)))"#,
        )
        .unwrap(),
    )
    .unwrap();
    // In a real sandbox store: the same limiter and pool every invocation gets.
    let (signals, _) = ActivitySignals::new(CancellationToken::new());
    let manifest = Arc::new(mlx_runtime::plugin::manifest::Manifest::default());
    let mut store = mlx_runtime::sandbox::new_store(
        rt.engine(),
        mlx_runtime::sandbox::SandboxSpec {
            manifest: &manifest,
            artifacts_dir: None,
            scratch_dir: None,
            fuel: None,
            signals,
            ticking: None,
        },
    )
    .unwrap();
    let linker = wasmtime::component::Linker::new(rt.engine());
    let err = linker
        .instantiate_async(&mut store, &component)
        .await
        .expect_err("growth must be refused and the start function trap");
    assert!(format!("{err:?}").contains("unreachable"), "{err:?}");

    // The worker is fine: a real plugin still loads and runs.
    let plugins = PluginsDir::with(&["testkit"]);
    let testkit = load(&rt, &plugins, "testkit").await;
    assert_eq!(
        invoke(&rt, &testkit, "count_calls", json!({}))
            .await
            .unwrap()["calls"],
        1
    );
}

#[tokio::test]
async fn fuel_limit_stops_a_spinning_guest_deterministically() {
    let rt = PluginHost::new(HostSettings {
        engine: mlx_runtime::engine::EngineSettings {
            fuel_metering: true,
            ..Default::default()
        },
        ..host_settings()
    })
    .unwrap();
    let plugins = PluginsDir::with(&["testkit"]);
    plugins.write_manifest("testkit", "[limits]\nfuel = 50000000\n");
    let testkit = load(&rt, &plugins, "testkit").await;
    let err = invoke(&rt, &testkit, "spin", json!({})).await.unwrap_err();
    let f = err.failure();
    assert_eq!(f.type_name, "PluginFuelExhausted", "{err}");
    assert!(!f.retryable);
    // Within the budget, work completes as usual.
    assert_eq!(
        invoke(&rt, &testkit, "count_calls", json!({}))
            .await
            .unwrap()["calls"],
        1
    );
}

#[tokio::test]
async fn fuel_limit_without_metering_is_a_load_error_naming_the_key() {
    let rt = runtime(None);
    let plugins = PluginsDir::with(&["testkit"]);
    plugins.write_manifest("testkit", "[limits]\nfuel = 1000\n");
    let err = rt
        .load(&plugins.path().join("testkit.wasm"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("testkit.toml") && err.contains("limits.fuel"),
        "{err}"
    );
    assert!(err.contains("--fuel-metering"), "{err}");
}

#[tokio::test]
async fn heartbeats_over_the_rate_are_held_back_and_the_last_one_is_delivered() {
    let rt = runtime(None);
    let plugins = PluginsDir::with(&["hostile"]);
    plugins.write_manifest("hostile", "[limits]\nheartbeats_per_sec = 2\n");
    let plugin = load(&rt, &plugins, "hostile").await;
    let (signals, details) = ActivitySignals::new(CancellationToken::new());
    let counter = signals.clone();
    let start = std::time::Instant::now();
    let out = rt
        .invoke(
            &plugin,
            "heartbeat_spam",
            &json!({"count": 1000}),
            &ctx(1, None),
            signals,
            None,
        )
        .await
        .unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    assert_eq!(out.output["sent"], 1000);
    // A burst of 2, then 2 a second, then the held-back last one at the end.
    let bound = 3 + (2.0 * elapsed).ceil() as u64;
    let forwarded = counter.heartbeats_forwarded();
    assert!(
        forwarded <= bound,
        "{forwarded} of 1000 heartbeats forwarded in {elapsed:.2} s"
    );
    assert_eq!(
        details.borrow().as_ref().map(JsonText::to_value),
        Some(json!({"i": 999}))
    );
}

/// With one pool slot held by a running guest, the next invocation cannot get an instance:
/// that is the worker's state, not the plugin's fault, so it must be retryable.
#[tokio::test(flavor = "multi_thread")]
async fn no_free_instance_slot_is_sandbox_unavailable_not_a_trap() {
    let artifacts = tempfile::tempdir().unwrap();
    let rt = PluginHost::new(HostSettings {
        engine: mlx_runtime::engine::EngineSettings {
            max_instances: 1,
            ..Default::default()
        },
        artifacts_dir: Some(artifacts.path().to_path_buf()),
        ..host_settings()
    })
    .unwrap();
    let plugins = PluginsDir::with(&["testkit"]);
    let testkit = Arc::new(load(&rt, &plugins, "testkit").await);
    let (signals, mut beats) = ActivitySignals::new(CancellationToken::new());
    let holder = tokio::spawn({
        let (rt, testkit) = (rt.clone(), testkit.clone());
        async move {
            let input = json!({"path": "/artifacts/release", "interval_ms": 20});
            rt.invoke(
                &testkit,
                "wait_for_file",
                &input,
                &ctx(1, None),
                signals,
                None,
            )
            .await
        }
    });
    // A heartbeat proves the holder's instance exists.
    tokio::time::timeout(Duration::from_secs(120), beats.changed())
        .await
        .expect("the holder heartbeats")
        .unwrap();
    let err = invoke(&rt, &testkit, "echo", json!({})).await.unwrap_err();
    let f = err.failure();
    assert_eq!(f.type_name, "SandboxUnavailable", "{err}");
    assert!(f.retryable, "{err}");
    assert!(err.to_string().contains("instantiate"), "{err}");

    std::fs::write(artifacts.path().join("wf-1/release"), "go").unwrap();
    let held = holder.await.unwrap().expect("the holder completes");
    assert_eq!(held.output["content"], "go");
    // The slot is free again.
    assert!(invoke(&rt, &testkit, "echo", json!({})).await.is_ok());
}
