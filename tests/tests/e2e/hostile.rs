//! The hostile-plugin suite: each attack (one test each) runs as a real activity next to a
//! healthy one. For each, the attack fails with its documented failure type, the worker stays
//! up, and the healthy activity running at the same time completes within its own deadline.

use std::time::{Duration, Instant};

use mlx_e2e::{
    PluginsDir, TestWorker, WorkerProcess, eventually, find, run_step, run_step_on, shared_server,
    single_failed_attempt, unique, worker_binary, workspace_root,
};
use serde_json::{Value, json};

/// Host limits for the hostile plugin, small so that bombs and loops end quickly.
const HOSTILE_MANIFEST: &str = r#"
[[filesystem]]
host = "data"
guest = "/data"
access = "read-only"

[limits]
memory_mb = 64
timeout_secs = 3
"#;

/// The HTTP probe may reach one literal loopback origin (nothing listens there), and two
/// names that the system resolver turns into loopback and the metadata address (numeric forms
/// inet_aton accepts). Every request below is refused before a connection is attempted.
const HTTP_MANIFEST: &str =
    "[http]\nallow = [\"http://127.0.0.1:9\", \"http://2130706433:9\", \"http://2852039166\"]\n";

struct Attack {
    plugin: &'static str,
    operation: &'static str,
    input: Value,
    failure_type: &'static str,
}

/// Runs `attack` and a healthy neighbour at the same time on one worker serving the hostile,
/// testkit and http_probe components, each with its test manifest.
async fn contained(attack: Attack) -> anyhow::Result<()> {
    let (worker, _plugins) = contained_with(attack, HOSTILE_MANIFEST).await?;
    worker.stop().await
}

/// [`contained`] with `hostile_manifest` for the hostile plugin, leaving the worker running
/// (and its plugins directory in place) for more checks.
async fn contained_with(
    attack: Attack,
    hostile_manifest: &str,
) -> anyhow::Result<(TestWorker, PluginsDir)> {
    let plugins = PluginsDir::with(&["hostile", "testkit", "http_probe"]);
    // The hostile plugin's data: a copy of a real file to attack, and a symlink that points
    // out of the grant.
    let data = plugins.path().join("data");
    std::fs::create_dir(&data)?;
    let victim = data.join("victim.csv");
    std::fs::copy(workspace_root().join("data/iris.csv"), &victim)?;
    let victim_len = std::fs::metadata(&victim)?.len();
    std::os::unix::fs::symlink("/etc", data.join("escape"))?;
    plugins.write_manifest("hostile", hostile_manifest);
    plugins.write_manifest("testkit", "[limits]\ntimeout_secs = 3\n");
    plugins.write_manifest("http_probe", HTTP_MANIFEST);

    let server = shared_server().await?;
    let worker = TestWorker::start(server, plugins.path()).await?;
    let step = json!({
        "plugin": attack.plugin, "operation": attack.operation, "input": attack.input,
        "start_to_close_secs": 30,
    });
    // ~1 s of real work with heartbeats, due well within its 20 s deadline.
    let healthy = json!({
        "plugin": "testkit", "operation": "wait_for_cancel",
        "input": {"max_beats": 10, "interval_ms": 100},
        "start_to_close_secs": 20, "heartbeat_timeout_secs": 5,
    });
    let attack_id = unique(&format!("attack-{}", attack.operation));
    let healthy_id = unique("healthy");
    let (attacked, healthy) = tokio::join!(
        run_step(server, &worker, &attack_id, step),
        run_step(server, &worker, &healthy_id, healthy),
    );
    let (result, events_) = attacked?;
    assert!(result.is_err(), "the attack succeeded: {result:?}");
    let failure = single_failed_attempt(&events_);
    assert_eq!(
        find(&failure, "type"),
        Some(&json!(attack.failure_type)),
        "{failure:#}"
    );
    let (healthy, _) = healthy?;
    let healthy = healthy.map_err(|e| anyhow::anyhow!("the neighbour failed: {e}"))?;
    assert_eq!(healthy["beats"], 10);
    assert_eq!(
        std::fs::metadata(&victim)?.len(),
        victim_len,
        "read-only file was changed"
    );
    assert_eq!(
        worker.runtime.active_invocations(),
        0,
        "no instance outlived its activity"
    );
    Ok((worker, plugins))
}

/// One test per attack: `name: plugin operation input => failure type;`.
macro_rules! attacks {
    ($($(#[doc = $doc:literal])* $name:ident: $plugin:literal $operation:literal $input:expr
       => $failure:literal;)*) => {
        $(
            $(#[doc = $doc])*
            #[tokio::test(flavor = "multi_thread")]
            async fn $name() -> anyhow::Result<()> {
                contained(Attack {
                    plugin: $plugin,
                    operation: $operation,
                    input: $input,
                    failure_type: $failure,
                })
                .await
            }
        )*
    };
}

/// An HTTP GET of `url` with `headers` by the probe.
fn get(url: &str, headers: Value) -> Value {
    json!({"url": url, "headers": headers})
}

attacks! {
    // Outbound HTTP: the probe may reach only http://127.0.0.1:9 (see HTTP_MANIFEST).
    /// Another port of the allowed host.
    http_to_another_port: "http-probe" "get" get("http://127.0.0.1:8/", json!([]))
        => "CapabilityDenied";
    /// A name for loopback that is not the literal grant.
    http_to_localhost: "http-probe" "get" get("http://localhost:9/", json!([]))
        => "CapabilityDenied";
    http_to_the_metadata_service: "http-probe" "get"
        get("http://169.254.169.254/latest/meta-data/", json!([])) => "CapabilityDenied";
    http_to_a_private_range: "http-probe" "get" get("http://10.0.0.1/", json!([]))
        => "CapabilityDenied";
    /// An allowed name that resolves to loopback.
    http_to_an_allowed_name_resolving_to_loopback: "http-probe" "get"
        get("http://2130706433:9/", json!([])) => "CapabilityDenied";
    /// An allowed name that resolves to the metadata service.
    http_to_an_allowed_name_resolving_to_the_metadata_service: "http-probe" "get"
        get("http://2852039166/latest/meta-data/", json!([])) => "CapabilityDenied";
    http_with_a_forged_host_header: "http-probe" "get"
        get("http://127.0.0.1:9/", json!([["host", "169.254.169.254"]])) => "HeaderRefused";
    dotdot_escape: "hostile" "dotdot_escape" json!({}) => "CapabilityDenied";
    absolute_escape: "hostile" "absolute_escape" json!({}) => "CapabilityDenied";
    symlink_escape: "hostile" "symlink_escape" json!({"dir": "/data", "link": "escape"})
        => "CapabilityDenied";
    create_symlink_escape: "hostile" "create_symlink_escape" json!({"dir": "/artifacts"})
        => "CapabilityDenied";
    trailing_slash_escape: "hostile" "trailing_slash_escape" json!({}) => "CapabilityDenied";
    hardlink_escape: "hostile" "hardlink_escape" json!({}) => "CapabilityDenied";
    truncate_readonly: "hostile" "truncate_readonly" json!({"path": "/data/victim.csv"})
        => "CapabilityDenied";
    write_readonly: "hostile" "write_readonly" json!({}) => "CapabilityDenied";
    read_env: "hostile" "read_env" json!({}) => "CapabilityDenied";
    /// TCP, UDP and a name lookup through the standard library: the component (which imports
    /// wasi:sockets) loads, and each call is refused by the host before a socket exists.
    sockets: "hostile" "sockets" json!({}) => "CapabilityDenied";
    memory_bomb: "hostile" "memory_bomb" json!({}) => "PluginMemoryLimitExceeded";
    // Counts far beyond what any machine gets through before the 3 s deadline: the host
    // calls are cheap once rate-limited, so a smaller flood could finish and "succeed".
    heartbeat_spam: "hostile" "heartbeat_spam" json!({"count": 10_000_000_000u64})
        => "PluginDeadlineExceeded";
    log_flood: "hostile" "log_flood" json!({"lines": 10_000_000_000u64, "line_bytes": 1000})
        => "PluginDeadlineExceeded";
    huge_output: "hostile" "huge_output" json!({"mb": 4}) => "PluginOutputTooLarge";
    /// Far more files than the default `limits.max_open_files`, and as many as the worker's
    /// own descriptor limit on many machines.
    open_files: "hostile" "open_files" json!({"count": 20_000}) => "PluginTooManyOpenFiles";
    abort: "hostile" "abort" json!({}) => "PluginTrapped";
    exit: "hostile" "exit" json!({"code": 0}) => "PluginContractViolation";
    busy_with_host_calls: "hostile" "busy_with_host_calls" json!({})
        => "PluginDeadlineExceeded";
    spin: "testkit" "spin" json!({}) => "PluginDeadlineExceeded";
    recurse: "testkit" "recurse" json!({}) => "PluginStackOverflow";
    panic: "testkit" "panic" json!({"message": "hostile"}) => "PluginTrapped";
    non_json_heartbeat: "testkit" "raw_heartbeat" json!({"text": "not json"})
        => "PluginContractViolation";
}

/// Total size of the regular files under `dir`, recursively.
fn bytes_under(dir: &std::path::Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            total += bytes_under(&entry.path())?;
        } else if kind.is_file() {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

/// A plugin writes 2 GiB into `/artifacts` against `limits.disk_mb = 8`: the write that would
/// pass 8 MiB ends the call as PluginDiskQuotaExceeded, next to a healthy neighbour, and what
/// reached the disk stays within the quota (plus at most 1 MiB). A call of the same plugin
/// writing within its quota succeeds: the quota is per call and does not refuse honest writes.
#[tokio::test(flavor = "multi_thread")]
async fn disk_fill() -> anyhow::Result<()> {
    const QUOTA_MB: u64 = 8;
    let manifest = format!("{HOSTILE_MANIFEST}disk_mb = {QUOTA_MB}\n");
    let attack = Attack {
        plugin: "hostile",
        operation: "disk_fill",
        input: json!({"path": "/artifacts/fill.bin", "mb": 2048}),
        failure_type: "PluginDiskQuotaExceeded",
    };
    let (worker, _plugins) = contained_with(attack, &manifest).await?;
    let written = bytes_under(worker.artifacts.path())?;
    assert!(
        written <= (QUOTA_MB + 1) << 20,
        "{written} bytes reached the disk against a quota of {QUOTA_MB} MiB"
    );

    let server = shared_server().await?;
    let within = json!({
        "plugin": "hostile", "operation": "disk_fill",
        "input": {"path": "/artifacts/within.bin", "mb": QUOTA_MB / 2},
        "start_to_close_secs": 30,
    });
    let (result, _) = run_step(server, &worker, &unique("disk-within"), within).await?;
    assert_eq!(
        result.map_err(anyhow::Error::msg)?["written_mb"],
        QUOTA_MB / 2
    );
    worker.stop().await
}

/// The hoards: a little guest memory each, and without `limits.host_memory_mb` far more of the
/// worker's (streams alone drove a 128 MiB plugin's worker +500 MiB). Each ends as
/// PluginHostMemoryExceeded next to a healthy neighbour, and a call of the same plugin within
/// the budget still succeeds afterwards.
async fn hoard(operation: &'static str, input: Value, within: Value) -> anyhow::Result<()> {
    let manifest = "scratch = true\n[limits]\nmemory_mb = 128\ntimeout_secs = 60\n";
    let attack = Attack {
        plugin: "hostile",
        operation,
        input,
        failure_type: "PluginHostMemoryExceeded",
    };
    let (worker, _plugins) = contained_with(attack, manifest).await?;
    let server = shared_server().await?;
    let honest = json!({
        "plugin": "hostile", "operation": operation, "input": within, "start_to_close_secs": 60,
    });
    let (result, _) = run_step(server, &worker, &unique("hoard-within"), honest).await?;
    result.map_err(|e| anyhow::anyhow!("a call within the budget failed: {e}"))?;
    worker.stop().await
}

/// One test per hoard: `name: operation attack_input, within_input;` (the attack fails as
/// PluginHostMemoryExceeded, then a call within the budget succeeds).
macro_rules! hoards {
    ($($(#[doc = $doc:literal])* $name:ident: $operation:literal $input:expr, $within:expr;)*) => {
        $(
            $(#[doc = $doc])*
            #[tokio::test(flavor = "multi_thread")]
            async fn $name() -> anyhow::Result<()> {
                hoard($operation, $input, $within).await
            }
        )*
    };
}

hoards! {
    /// Read streams, each with a background read pinning 64 KiB.
    stream_hoard: "stream_hoard" json!({"streams": 100_000}), json!({"streams": 100});
    /// Write streams, each handing the host 64 KiB to write in the background.
    write_stream_hoard: "stream_hoard" json!({"streams": 100_000, "writes": true}),
        json!({"streams": 100, "writes": true});
    /// Directory listings of 5,000 entries, each read whole into host memory and kept.
    dir_hoard: "dir_hoard" json!({"files": 5_000, "listings": 1_000}),
        json!({"files": 100, "listings": 10});
    /// One `poll` of 16 million entries (64 MiB of guest memory, 4 bytes each).
    poll_list: "poll_list" json!({"entries": 16_000_000}), json!({"entries": 1_000});
    /// One log call with 4 million empty fields (64 MiB of guest memory, 16 bytes each).
    log_field_hoard: "log_fields" json!({"fields": 4_000_000}), json!({"fields": 1_000});
    /// Random bytes are made on the host: one call may not ask for more than the budget.
    random_bytes_hoard: "random_bytes" json!({"mb": 64, "times": 1}),
        json!({"mb": 1, "times": 2});
}

/// A plugin nests directories in its `/scratch` far deeper than a recursive removal can go on
/// a worker thread's stack. The real worker (a process, so a crash is seen as one) removes the
/// tree after the call without crashing, and serves the next invocation.
#[tokio::test(flavor = "multi_thread")]
async fn deep_scratch_tree_is_removed_and_the_worker_survives() -> anyhow::Result<()> {
    let plugins = PluginsDir::with(&["hostile", "testkit"]);
    plugins.write_manifest("hostile", "scratch = true\n[limits]\ntimeout_secs = 120\n");
    // Scratch directories are made in the worker's temporary directory. Whatever is left in it
    // is removed without recursion: a leftover deep tree would overflow this test's stack.
    struct RemovedFlat(tempfile::TempDir);
    impl Drop for RemovedFlat {
        fn drop(&mut self) {
            let _ = mlx_runtime::sandbox::scratch::remove_tree(self.0.path());
        }
    }
    let guard = RemovedFlat(tempfile::tempdir()?);
    let tmp = guard.0.path();
    let server = shared_server().await?;
    let tmp_env = tmp.to_str().expect("a UTF-8 temporary path");
    let mut worker = WorkerProcess::start(
        worker_binary(),
        server,
        plugins.path(),
        &[("TMPDIR", tmp_env)],
    )?;
    let scratch_dirs = || -> Vec<String> {
        std::fs::read_dir(tmp)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|name| name.starts_with("mlx-scratch-"))
                    .collect()
            })
            .unwrap_or_default()
    };

    let step = json!({
        "plugin": "hostile", "operation": "deep_tree", "input": {"depth": 16_000},
        "start_to_close_secs": 180,
    });
    let task_queue = worker.task_queue.clone();
    let id = unique("deep-tree");
    let run = run_step_on(server, &task_queue, &id, step);
    tokio::pin!(run);
    // A worker that dies would leave the activity to time out: watch the process meanwhile.
    let deadline = Instant::now() + Duration::from_secs(240);
    let (result, _) = loop {
        tokio::select! {
            done = &mut run => break done?,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if !worker.is_running() {
                    let status = worker.exit_status(Duration::from_secs(5)).await?;
                    anyhow::bail!("the worker died during the deep tree's invocation: {status}");
                }
                anyhow::ensure!(Instant::now() < deadline, "the deep tree step never ended");
            }
        }
    };
    assert_eq!(result.map_err(anyhow::Error::msg)?["depth"], 16_000);

    eventually(
        Duration::from_secs(120),
        "the scratch directory removed",
        || {
            let left = scratch_dirs();
            async move { left.is_empty().then_some(()) }
        },
    )
    .await?;
    assert!(worker.is_running(), "the worker exited after the removal");
    let healthy = json!({
        "plugin": "testkit", "operation": "wait_for_cancel",
        "input": {"max_beats": 2, "interval_ms": 10},
        "start_to_close_secs": 60,
    });
    let (healthy, _) = run_step_on(server, &task_queue, &unique("after"), healthy).await?;
    assert_eq!(healthy.map_err(anyhow::Error::msg)?["beats"], 2);
    assert!(worker.is_running(), "the worker exited");
    Ok(())
}
