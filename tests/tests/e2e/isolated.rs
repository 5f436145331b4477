//! Plugins with `isolation = "process"`: each invocation in a child process (the worker's own
//! `mlx-worker run-invocation`), on an engine without epoch checks, killed by the worker at its
//! deadline or when the grace after a cancellation has passed.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use mlx_e2e::{
    PluginsDir, eventually, invoke_once,
    proc_stats::{alive, children_with_arg, cpu_seconds},
    worker_binary,
};
use mlx_runtime::{
    HostSettings, PluginHost,
    child::ChildProgram,
    contract::{InvocationContext, JsonText},
    failure::InvocationError,
    plugin::LoadedPlugin,
    sandbox::capabilities::activity::ActivitySignals,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const ISOLATED: &str = "isolation = \"process\"\n";

/// The worker's invocation process, run through a shell that first appends its pid to
/// `marker`: how a test sees that a child ran the invocation, and finds it afterwards.
fn counted_invoker(marker: &Path) -> ChildProgram {
    ChildProgram {
        program: "/bin/sh".into(),
        args: vec![
            "-c".into(),
            r#"echo $$ >> "$0"; exec "$1" run-invocation"#.into(),
            marker.into(),
            worker_binary().into(),
        ],
    }
}

fn runtime(cache: &Path, invoker: Option<ChildProgram>) -> Arc<PluginHost> {
    PluginHost::new(HostSettings {
        cache_dir: Some(cache.to_path_buf()),
        invoker,
        ..Default::default()
    })
    .unwrap()
}

/// Waits until none of `pids` runs: a call returns as soon as its child is killed, and the
/// kernel tears the child down (and the worker reaps it) after that.
async fn gone(pids: &[u32], what: &str) {
    eventually(Duration::from_secs(60), what, || {
        let gone = pids.iter().all(|&pid| !alive(pid));
        async move { gone.then_some(()) }
    })
    .await
    .unwrap()
}

/// The pids `marker` records once it holds `n`: a spare's shell may record its own a moment
/// after the call that started it returned.
async fn spawned(marker: &Path, n: usize) -> Vec<u32> {
    eventually(
        Duration::from_secs(60),
        &format!("{n} children started"),
        || {
            let found = pids(marker);
            async move { (found.len() >= n).then_some(found) }
        },
    )
    .await
    .unwrap()
}

fn pids(marker: &Path) -> Vec<u32> {
    std::fs::read_to_string(marker)
        .map(|text| text.lines().map(|l| l.parse().unwrap()).collect())
        .unwrap_or_default()
}

struct Setup {
    plugins: PluginsDir,
    cache: tempfile::TempDir,
    marker: PathBuf,
    rt: Arc<PluginHost>,
    plugin: LoadedPlugin,
}

async fn setup(manifest: &str) -> Setup {
    let plugins = PluginsDir::with(&["testkit"]);
    plugins.write_manifest("testkit", manifest);
    let cache = tempfile::tempdir().unwrap();
    let marker = tempfile::tempdir().unwrap().keep().join("pids");
    let rt = runtime(cache.path(), Some(counted_invoker(&marker)));
    let plugin = rt.load(&plugins.path().join("testkit.wasm")).await.unwrap();
    Setup {
        plugins,
        cache,
        marker,
        rt,
        plugin,
    }
}

fn context(attempt: u32, checkpoint: Option<&Value>) -> InvocationContext {
    InvocationContext {
        workflow_id: "isolated".into(),
        activity_id: "1".into(),
        attempt,
        last_heartbeat_details: checkpoint.map(JsonText::from),
    }
}

#[tokio::test]
async fn an_isolated_plugin_runs_in_a_child_and_answers_as_in_process() {
    let s = setup(&format!("{ISOLATED}[limits]\nmemory_mb = 64\n")).await;
    let out = invoke_once(&s.rt, &s.plugin, "echo", &json!({"x": [1, 2]}), "iso")
        .await
        .unwrap();
    assert_eq!(out.output["input"], json!({"x": [1, 2]}));
    assert_eq!(out.output["workflow_id"], "iso");
    assert!(out.peak_memory_bytes > 0, "{out:?}");
    let children = spawned(&s.marker, 2).await;
    assert_eq!(
        children.len(),
        2,
        "the call's child, then a spare for the next call"
    );
    gone(&children[..1], "the child is gone once it answered").await;
    assert!(alive(children[1]), "the spare waits");
    // The child compiled the plugin for its own engine, without epoch checks: a second
    // entry for the same component beside the worker's.
    let artifacts: Vec<_> = std::fs::read_dir(s.cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".cwasm"))
        .collect();
    let digest = s.plugin.digest.trim_start_matches("sha256:");
    assert_eq!(
        artifacts.iter().filter(|a| a.starts_with(digest)).count(),
        2,
        "{artifacts:?}"
    );

    // Errors keep their classification across the process boundary.
    let failed = invoke_once(
        &s.rt,
        &s.plugin,
        "fail",
        &json!({"kind": "permanent", "type_name": "BadLabel", "message": "no labels"}),
        "iso",
    )
    .await
    .unwrap_err();
    let failure = failed.failure();
    assert_eq!(
        (failure.type_name.as_str(), failure.retryable),
        ("BadLabel", false)
    );
    assert!(failure.message.contains("no labels"), "{failure:?}");
    let trapped = invoke_once(
        &s.rt,
        &s.plugin,
        "panic",
        &json!({"message": "boom"}),
        "iso",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&trapped, InvocationError::Trap { message, .. } if message.contains("boom")),
        "{trapped:?}"
    );
    // The manifest's memory limit holds in the child.
    let big = invoke_once(&s.rt, &s.plugin, "alloc", &json!({"mb": 200}), "iso").await;
    assert!(
        matches!(big, Err(InvocationError::MemoryLimit { limit_mb: 64 })),
        "{big:?}"
    );
    // Each call took the spare the one before left and left one of its own.
    let children = spawned(&s.marker, 5).await;
    assert_eq!(children.len(), 5, "{children:?}");
    gone(&children[..4], "each call's child").await;
    assert!(alive(children[4]));
    // Unloading the plugin takes its spare along.
    drop(s.plugin);
    gone(&children[4..], "the spare gone with its plugin").await;
}

/// A spare is ready before its call comes: a call that takes one pays neither the process
/// start nor the load. Its child must still be a new one per call, never one reused.
#[tokio::test]
async fn a_call_takes_the_spare_the_previous_call_left_and_never_a_used_child() {
    let s = setup(ISOLATED).await;
    for n in 1..=3 {
        let out = invoke_once(&s.rt, &s.plugin, "count_calls", &json!({}), "iso")
            .await
            .unwrap();
        // A fresh instance each time: the guest's own counter never passes one.
        assert_eq!(out.output["calls"], 1, "call {n}: {}", out.output);
        assert_eq!(spawned(&s.marker, n + 1).await.len(), n + 1);
    }
    // A spare that died while it waited is passed over, not handed the call.
    let spare = *pids(&s.marker).last().unwrap();
    // SAFETY: a plain kill(2) of our own child's pid.
    assert_eq!(unsafe { libc::kill(spare as i32, libc::SIGKILL) }, 0);
    gone(&[spare], "the spare killed").await;
    invoke_once(&s.rt, &s.plugin, "echo", &json!(1), "iso")
        .await
        .unwrap();
}

/// `plugin inspect` says where the plugin's calls run.
#[test]
fn inspect_says_a_plugin_runs_in_a_child_process() {
    let plugins = PluginsDir::with(&["testkit"]);
    plugins.write_manifest("testkit", ISOLATED);
    let out = std::process::Command::new(worker_binary())
        .args(["plugin", "inspect"])
        .arg(plugins.path().join("testkit.wasm"))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("isolation   process"), "{text}");
}

#[tokio::test]
async fn a_plugin_without_the_key_or_a_worker_without_a_child_runs_in_process() {
    let s = setup("").await;
    invoke_once(&s.rt, &s.plugin, "echo", &json!(1), "iso")
        .await
        .unwrap();
    assert!(pids(&s.marker).is_empty(), "no child for a default plugin");

    let plugins = PluginsDir::with(&["testkit"]);
    plugins.write_manifest("testkit", ISOLATED);
    let rt = runtime(s.cache.path(), None);
    let plugin = rt.load(&plugins.path().join("testkit.wasm")).await.unwrap();
    let out = invoke_once(&rt, &plugin, "echo", &json!(2), "iso")
        .await
        .unwrap();
    assert_eq!(out.output["input"], 2);
}

#[tokio::test]
async fn a_spinning_child_is_killed_at_the_deadline() {
    let s = setup(&format!("{ISOLATED}[limits]\ntimeout_secs = 2\n")).await;
    let started = Instant::now();
    let ended = invoke_once(&s.rt, &s.plugin, "spin", &json!({}), "iso").await;
    assert!(
        matches!(ended, Err(InvocationError::Deadline { .. })),
        "{ended:?}"
    );
    assert!(started.elapsed() >= Duration::from_secs(2));
    let children = pids(&s.marker);
    gone(&children[..1], "the spinning child killed").await;
}

/// The worker makes each call's scratch directory and removes it once the child is gone:
/// after a call that answered, and after one whose child was killed (no child's teardown is
/// relied on, as a child the OOM killer takes has none).
#[tokio::test]
async fn the_worker_removes_a_calls_scratch_directory_however_its_child_ended() {
    let plugins = PluginsDir::with(&["testkit"]);
    plugins.write_manifest(
        "testkit",
        &format!("{ISOLATED}scratch = true\n[limits]\ntimeout_secs = 2\n"),
    );
    let (cache, scratch) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let marker = tempfile::tempdir().unwrap().keep().join("pids");
    let rt = PluginHost::new(HostSettings {
        cache_dir: Some(cache.path().to_path_buf()),
        scratch_root: Some(scratch.path().to_path_buf()),
        invoker: Some(counted_invoker(&marker)),
        ..Default::default()
    })
    .unwrap();
    let plugin = rt.load(&plugins.path().join("testkit.wasm")).await.unwrap();
    let emptied = |what: &'static str| {
        eventually(Duration::from_secs(60), what, || {
            let left: Vec<_> = std::fs::read_dir(scratch.path()).unwrap().collect();
            async move { left.is_empty().then_some(()) }
        })
    };
    for _ in 0..2 {
        let out = invoke_once(&rt, &plugin, "scratch", &json!({}), "iso")
            .await
            .unwrap()
            .output;
        assert_eq!(out["entries_before"], json!([]), "scratch must start empty");
        assert_eq!(out["written"], 4096);
        emptied("the answered call's scratch directory removed")
            .await
            .unwrap();
    }
    let ended = invoke_once(&rt, &plugin, "spin", &json!({}), "iso").await;
    assert!(
        matches!(ended, Err(InvocationError::Deadline { .. })),
        "{ended:?}"
    );
    emptied("the killed call's scratch directory removed")
        .await
        .unwrap();
    // Each of the three calls had a child of its own (the scratch was not the in-process one).
    spawned(&marker, 3).await;
}

#[tokio::test]
async fn cancellation_reaches_the_guest_and_a_guest_that_ignores_it_is_killed() {
    let s = setup(&format!("{ISOLATED}[limits]\ncancel_grace_secs = 1\n")).await;
    // wait_for_cancel heartbeats until it sees the cancellation, then returns.
    let cancel = CancellationToken::new();
    let (signals, mut heartbeats) = ActivitySignals::new(cancel.clone());
    let (input, ctx) = (json!({"interval_ms": 20}), context(1, None));
    let invoke =
        s.rt.invoke(&s.plugin, "wait_for_cancel", &input, &ctx, signals, None);
    let cancel_after_a_heartbeat = async {
        heartbeats.changed().await.unwrap();
        let beat = heartbeats.borrow().clone().unwrap().to_value();
        assert!(beat["beats"].as_u64().unwrap() >= 1, "{beat}");
        cancel.cancel();
    };
    let (ended, ()) = tokio::join!(invoke, cancel_after_a_heartbeat);
    assert!(
        matches!(
            ended,
            Err(InvocationError::Cancelled {
                acknowledged_by_plugin: true
            })
        ),
        "{ended:?}"
    );

    // spin never looks: the worker kills it once the grace is over.
    let cancel = CancellationToken::new();
    let (signals, _) = ActivitySignals::new(cancel.clone());
    let input = json!({});
    let invoke = s.rt.invoke(&s.plugin, "spin", &input, &ctx, signals, None);
    // It runs in the spare the first call left: spinning, once that has used far more CPU
    // than loading the plugin takes.
    let spinner = spawned(&s.marker, 2).await[1];
    let cancel_once_running = async {
        eventually(Duration::from_secs(120), "the spin child spinning", || {
            let spun = cpu_seconds(spinner).unwrap_or(0.0) >= 3.0;
            async move { spun.then_some(()) }
        })
        .await
        .unwrap();
        cancel.cancel();
    };
    let (ended, ()) = tokio::join!(invoke, cancel_once_running);
    assert!(
        matches!(
            ended,
            Err(InvocationError::Cancelled {
                acknowledged_by_plugin: false
            })
        ),
        "{ended:?}"
    );
    gone(&[spinner], "the spinner killed").await;
}

#[tokio::test]
async fn checkpoints_reach_the_worker_and_a_retry_resumes_from_them() {
    let s = setup(ISOLATED).await;
    let (signals, heartbeats) = ActivitySignals::new(CancellationToken::new());
    let first =
        s.rt.invoke(
            &s.plugin,
            "checkpoint",
            &json!({"steps": 3, "fail_attempts": 1}),
            &context(1, None),
            signals,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(first.failure().type_name, "InjectedFailure");
    let last = heartbeats
        .borrow()
        .clone()
        .expect("a checkpoint reached the worker");
    assert_eq!(last.to_value(), json!({"step": 3}));

    let (signals, _) = ActivitySignals::new(CancellationToken::new());
    let second =
        s.rt.invoke(
            &s.plugin,
            "checkpoint",
            &json!({"steps": 3, "fail_attempts": 1}),
            &context(2, Some(&last.to_value())),
            signals,
            None,
        )
        .await
        .unwrap();
    assert_eq!(second.output["resumed_from"], json!({"step": 3}));
    assert_eq!(second.output["steps_run"], 0);
}

#[tokio::test]
async fn a_dead_child_fails_only_its_call_and_a_replaced_file_does_not_reach_the_child() {
    let s = setup(ISOLATED).await;
    // SIGKILL, as the OOM killer sends it: retryable, and said so.
    let killed = ChildProgram {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), "kill -9 $$".into()],
    };
    let rt = runtime(s.cache.path(), Some(killed));
    let plugin = rt
        .load(&s.plugins.path().join("testkit.wasm"))
        .await
        .unwrap();
    let died = invoke_once(&rt, &plugin, "echo", &json!(1), "iso")
        .await
        .unwrap_err();
    let failure = died.failure();
    assert!(failure.retryable, "{failure:?}");
    assert!(failure.message.contains("SIGKILL"), "{failure:?}");

    // A hot reload replaced both files after the worker loaded the plugin (a pipeline pinned
    // to this version still runs it): the child runs the bytes and grants that were loaded.
    std::fs::copy(
        mlx_e2e::components().join("csv.wasm"),
        s.plugins.path().join("testkit.wasm"),
    )
    .unwrap();
    s.plugins.write_manifest("testkit", "not = [a manifest");
    let out = invoke_once(&s.rt, &s.plugin, "echo", &json!({"v": 1}), "iso")
        .await
        .unwrap();
    assert_eq!(out.output["input"], json!({"v": 1}));
    // The worker itself is unharmed: an in-process plugin still runs.
    let plugins = PluginsDir::with(&["testkit"]);
    let plugin =
        s.rt.load(&plugins.path().join("testkit.wasm"))
            .await
            .unwrap();
    invoke_once(&s.rt, &plugin, "echo", &json!(1), "iso")
        .await
        .unwrap();
}

/// The daemon as operators run it (`mlx-worker run`, its own executable as the child):
/// Temporal retries a failed attempt and the retry resumes from the checkpoint the child
/// heartbeated; kill -9 of the worker takes a running child with it.
#[tokio::test(flavor = "multi_thread")]
async fn through_the_daemon_a_retry_resumes_and_kill_9_takes_the_child_along() -> anyhow::Result<()>
{
    let server = mlx_e2e::shared_server().await?;
    let plugins = PluginsDir::with(&["testkit"]);
    plugins.write_manifest("testkit", ISOLATED);
    let mut worker = mlx_e2e::WorkerProcess::start(worker_binary(), server, plugins.path(), &[])?;
    let step = json!({
        "plugin": "testkit", "operation": "checkpoint",
        "input": {"steps": 3, "fail_attempts": 1},
        "max_attempts": 3, "initial_interval_ms": 100, "heartbeat_timeout_secs": 10,
    });
    let (result, _) = mlx_e2e::run_step_on(
        server,
        &worker.task_queue,
        &mlx_e2e::unique("iso-checkpoint"),
        step,
    )
    .await?;
    let output = result.map_err(anyhow::Error::msg)?;
    assert_eq!(output["attempt"], 2, "{output:#}");
    assert_eq!(output["resumed_from"], json!({"step": 3}), "{output:#}");
    assert_eq!(output["steps_run"], 0, "{output:#}");

    let long = json!({
        "plugin": "testkit", "operation": "wait_for_cancel",
        "input": {"max_beats": 100000, "interval_ms": 50},
        "start_to_close_secs": 300, "heartbeat_timeout_secs": 10,
    });
    let queue = worker.task_queue.clone();
    let running = tokio::spawn(async move {
        mlx_e2e::run_step_on(server, &queue, &mlx_e2e::unique("iso-kill"), long).await
    });
    let parent = worker.pid();
    let children = eventually(Duration::from_secs(120), "the invocation's child", || {
        let found = children_with_arg(parent, "run-invocation");
        async move { (!found.is_empty()).then_some(found) }
    })
    .await?;
    worker.kill()?;
    gone(&children, "the children gone with their worker").await;
    running.abort();
    Ok(())
}

/// The child on its own, as the worker runs it: the load and the call on stdin, the outcome
/// on stdout, and the guest's log lines on stderr in the worker's format with the
/// invocation's fields and the child's process id.
#[tokio::test]
async fn the_child_speaks_its_protocol_and_logs_with_the_invocations_fields() {
    let s = setup(ISOLATED).await;
    let wasm = std::fs::read(s.plugins.path().join("testkit.wasm")).unwrap();
    let engine = mlx_runtime::engine::EngineSettings {
        epoch_interruption: false,
        pooling: false,
        ..Default::default()
    };
    let load = json!({
        "engine": engine, "cache_dir": s.cache.path(), "cache_max_bytes": null,
        "plugin": s.plugins.path().join("testkit.wasm"),
        "digest": s.plugin.digest, "component_bytes": wasm.len(), "manifest": ISOLATED,
    });
    let call = json!({
        "operation": "log", "input": {"lines": 1, "message": "said in the child"},
        "context": {"workflow_id": "wf-child", "activity_id": "7", "attempt": 2,
                    "last_heartbeat_details": null},
        "artifacts": null, "scratch": null,
    });
    let mut stdin = format!("{load}\n").into_bytes();
    stdin.extend_from_slice(&wasm);
    stdin.extend_from_slice(format!("{call}\n").as_bytes());
    let mut child = std::process::Command::new(worker_binary())
        .args(["--log-format", "json", "run-invocation"])
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let reports: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let done = &reports.last().unwrap()["done"]["Ok"];
    assert_eq!(done["output"]["lines"], 1, "{reports:?}");
    let logged = String::from_utf8(out.stderr).unwrap();
    let line: Value = logged
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["message"] == "said in the child")
        .unwrap_or_else(|| panic!("no guest line in:\n{logged}"));
    let span = &line["span"];
    assert_eq!(
        (&span["workflow_id"], &span["activity_id"], &span["attempt"]),
        (&json!("wf-child"), &json!("7"), &json!(2)),
        "{line}"
    );
    assert!(span["process"].is_u64(), "{line}");

    // A spare the worker drops before its call exits quietly, having said nothing.
    let mut stdin = format!("{load}\n").into_bytes();
    stdin.extend_from_slice(&wasm);
    let out = std::process::Command::new(worker_binary())
        .arg("run-invocation")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), &stdin)?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
}

/// The hostile plugin's attacks, isolated: each ends in the child with the failure type it
/// ends with in the worker's own process (tests/e2e/hostile.rs), and the worker goes on.
#[tokio::test]
async fn attacks_from_an_isolated_plugin_fail_as_they_do_in_process() {
    let plugins = PluginsDir::with(&["hostile", "testkit"]);
    std::fs::create_dir(plugins.path().join("data")).unwrap();
    std::fs::write(plugins.path().join("data/victim.csv"), "a,b\n1,2\n").unwrap();
    plugins.write_manifest(
        "hostile",
        &format!(
            "{ISOLATED}scratch = true\n[[filesystem]]\nhost = \"data\"\nguest = \"/data\"\n\
             [limits]\nmemory_mb = 64\ntimeout_secs = 3\n"
        ),
    );
    let cache = tempfile::tempdir().unwrap();
    let marker = tempfile::tempdir().unwrap().keep().join("pids");
    let rt = runtime(cache.path(), Some(counted_invoker(&marker)));
    let hostile = rt.load(&plugins.path().join("hostile.wasm")).await.unwrap();
    let attacks = [
        ("memory_bomb", json!({}), "PluginMemoryLimitExceeded"),
        ("huge_output", json!({"mb": 4}), "PluginOutputTooLarge"),
        (
            "open_files",
            json!({"count": 20_000}),
            "PluginTooManyOpenFiles",
        ),
        ("abort", json!({}), "PluginTrapped"),
        ("exit", json!({"code": 0}), "PluginContractViolation"),
        ("dotdot_escape", json!({}), "CapabilityDenied"),
        ("read_env", json!({}), "CapabilityDenied"),
        ("sockets", json!({}), "CapabilityDenied"),
        (
            "heartbeat_spam",
            json!({"count": 10_000_000_000u64}),
            "PluginDeadlineExceeded",
        ),
        ("busy_with_host_calls", json!({}), "PluginDeadlineExceeded"),
    ];
    let count = attacks.len();
    for (operation, input, expected) in attacks {
        let err = invoke_once(&rt, &hostile, operation, &input, "iso-attack")
            .await
            .expect_err(operation);
        assert_eq!(err.failure().type_name, expected, "{operation}: {err}");
    }
    assert!(
        spawned(&marker, count).await.len() >= count,
        "each attack had its child"
    );
    // Host memory is charged in the child as in-process: a directory hoard against a 1 MiB
    // budget (a few hundred listings, quick even on a loaded machine).
    std::fs::copy(
        plugins.path().join("hostile.wasm"),
        plugins.path().join("hoarder.wasm"),
    )
    .unwrap();
    plugins.write_manifest(
        "hoarder",
        &format!("{ISOLATED}scratch = true\n[limits]\nhost_memory_mb = 1\ntimeout_secs = 120\n"),
    );
    let hoarder = rt.load(&plugins.path().join("hoarder.wasm")).await.unwrap();
    let input = json!({"files": 500, "listings": 1_000});
    let err = invoke_once(&rt, &hoarder, "dir_hoard", &input, "iso-attack")
        .await
        .unwrap_err();
    assert_eq!(err.failure().type_name, "PluginHostMemoryExceeded", "{err}");
    // The worker is unharmed: its next call of a healthy isolated plugin answers.
    let s = setup(ISOLATED).await;
    invoke_once(&s.rt, &s.plugin, "echo", &json!("after"), "iso")
        .await
        .unwrap();
}
