//! Hot reload: plugin files dropped in, replaced during an in-flight call, removed, corrupt or
//! half-copied, and manifests changed, all while the registry serves.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use mlx_e2e::{PluginsDir, components, components::drop_in, eventually, invoke_once};
use mlx_runtime::{
    PluginHost,
    contract::InvocationContext,
    failure::InvocationError,
    plugin::{registry::PluginRegistry, reload},
    sandbox::capabilities::activity::ActivitySignals,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

fn digest_of(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{:x}", Sha256::digest(bytes))
}

struct Watched {
    runtime: Arc<PluginHost>,
    registry: Arc<PluginRegistry>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn watched(dir: &Path) -> Watched {
    // `cargo test -- --nocapture` shows what the watcher did.
    let _ =
        mlx_worker::daemon::telemetry::init(mlx_worker::daemon::telemetry::LogFormat::Human, None);
    let runtime = PluginHost::new(mlx_e2e::host_settings()).unwrap();
    let watcher = reload::PluginWatcher::start(dir).unwrap();
    let registry = Arc::new(PluginRegistry::load_dir(&runtime, dir).await.unwrap());
    let stop = CancellationToken::new();
    let task = tokio::spawn(watcher.run(
        runtime.clone(),
        registry.clone(),
        stop.clone().cancelled_owned(),
    ));
    Watched {
        runtime,
        registry,
        stop,
        task,
    }
}

async fn digest_becomes(registry: &PluginRegistry, name: &str, digest: Option<&str>) {
    eventually(WAIT, &format!("{name} at {digest:?}"), || async {
        (registry.get(name).map(|p| p.digest.clone()).as_deref() == digest).then_some(())
    })
    .await
    .unwrap();
}

async fn call(w: &Watched, plugin: &str, operation: &str, input: Value) -> Value {
    let plugin = w.registry.get(plugin).expect("registered");
    invoke_once(&w.runtime, &plugin, operation, &input, "reload")
        .await
        .unwrap()
        .output
}

impl Watched {
    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_dropped_in_is_registered() {
    let plugins = PluginsDir::with(&["testkit"]);
    let dir: PathBuf = plugins.path().to_path_buf();
    let w = watched(&dir).await;
    let csv = std::fs::read(components().join("csv.wasm")).unwrap();
    drop_in(&dir, "csv.wasm", &csv);
    digest_becomes(&w.registry, "csv", Some(&digest_of(&csv))).await;
    w.stop().await;
}

/// Replace while a call is in flight: it keeps running on v1 (until told to stop, so the test
/// does not depend on how long the reload takes), new calls get v2.
#[tokio::test(flavor = "multi_thread")]
async fn a_replaced_plugin_serves_new_calls_while_the_call_in_flight_keeps_its_version() {
    let plugins = PluginsDir::with(&["testkit"]);
    let dir: PathBuf = plugins.path().to_path_buf();
    let w = watched(&dir).await;
    let v1 = w.registry.get("testkit").unwrap();
    let stop_long_call = CancellationToken::new();
    let in_flight = {
        let runtime = w.runtime.clone();
        let v1 = v1.clone();
        let cancel = stop_long_call.clone();
        tokio::spawn(async move {
            let (signals, _) = ActivitySignals::new(cancel);
            let ctx = InvocationContext {
                workflow_id: "reload".into(),
                activity_id: "long".into(),
                attempt: 1,
                last_heartbeat_details: None,
            };
            let input = json!({"max_beats": 1_000_000, "interval_ms": 20});
            runtime
                .invoke(&v1, "wait_for_cancel", &input, &ctx, signals, None)
                .await
        })
    };
    eventually(WAIT, "the long call runs", || async {
        (w.runtime.active_invocations() == 1).then_some(())
    })
    .await
    .unwrap();
    let v2 = components::variant("testkit", "v2");
    // A plain (non-atomic) copy, as `cp` would do it.
    std::fs::write(dir.join("testkit.wasm"), &v2).unwrap();
    digest_becomes(&w.registry, "testkit", Some(&digest_of(&v2))).await;
    assert_eq!(call(&w, "testkit", "echo", json!(1)).await["input"], 1);
    assert!(!in_flight.is_finished(), "the call on v1 was cut short");
    stop_long_call.cancel();
    let ended = in_flight.await.unwrap().expect_err("told to stop");
    assert!(
        matches!(
            ended,
            InvocationError::Cancelled {
                acknowledged_by_plugin: true
            }
        ),
        "{ended:?}"
    );
    assert_eq!(
        v1.digest,
        digest_of(&std::fs::read(components().join("testkit.wasm")).unwrap())
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_plugin_is_unregistered() {
    let plugins = PluginsDir::with(&["testkit", "csv"]);
    let dir: PathBuf = plugins.path().to_path_buf();
    let w = watched(&dir).await;
    assert!(w.registry.get("csv").is_some());
    std::fs::remove_file(dir.join("csv.wasm")).unwrap();
    digest_becomes(&w.registry, "csv", None).await;
    assert_eq!(w.registry.names(), ["testkit"]);
    w.stop().await;
}

/// A corrupt replacement: refused, counted, the loaded version keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_replacement_is_refused_and_the_good_version_serves() {
    let plugins = PluginsDir::with(&["testkit"]);
    let dir: PathBuf = plugins.path().to_path_buf();
    let w = watched(&dir).await;
    let good = w.registry.get("testkit").unwrap().digest.clone();
    std::fs::write(dir.join("testkit.wasm"), b"\0asm garbage").unwrap();
    eventually(WAIT, "the corrupt file is refused", || async {
        (w.registry.refused_count() == 1).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(w.registry.get("testkit").unwrap().digest, good);
    assert_eq!(call(&w, "testkit", "echo", json!(2)).await["input"], 2);
    w.stop().await;
}

/// A copy that stops half-way is never registered; once complete, it is.
#[tokio::test(flavor = "multi_thread")]
async fn a_half_copied_file_is_refused_until_complete() {
    let plugins = PluginsDir::with(&["testkit"]);
    let dir: PathBuf = plugins.path().to_path_buf();
    let w = watched(&dir).await;
    let csv = std::fs::read(components().join("csv.wasm")).unwrap();
    std::fs::write(dir.join("csv.wasm"), &csv[..csv.len() / 2]).unwrap();
    eventually(WAIT, "the partial copy is refused", || async {
        (w.registry.refused_count() == 1).then_some(())
    })
    .await
    .unwrap();
    assert!(w.registry.get("csv").is_none());
    std::fs::write(dir.join("csv.wasm"), &csv).unwrap();
    digest_becomes(&w.registry, "csv", Some(&digest_of(&csv))).await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_change_reloads_the_grants() {
    let plugins = PluginsDir::with(&["testkit"]);
    let dir: PathBuf = plugins.path().to_path_buf();
    let w = watched(&dir).await;
    let grants = json!({"config": ["region"]});
    assert_eq!(
        call(&w, "testkit", "grants", grants.clone()).await["config"]["region"],
        Value::Null
    );
    let changes = w.registry.change_count();
    plugins.write_manifest("testkit", "[config]\nregion = \"eu-west-1\"\n");
    eventually(WAIT, "the manifest is reloaded", || async {
        (w.registry.change_count() > changes).then_some(())
    })
    .await
    .unwrap();
    assert_eq!(
        call(&w, "testkit", "grants", grants).await["config"]["region"],
        "eu-west-1"
    );
    w.stop().await;
}
