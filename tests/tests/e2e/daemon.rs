//! The daemon itself, `mlx-worker run`, as an operator runs it: a child process with its own
//! environment, against a real Temporal dev server (the shared one, except where the test
//! restarts the server).

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use mlx_e2e::{
    DevServer, PluginsDir, WorkerProcess, activity_heartbeating, events, eventually, find,
    history_of, history_text, http_get, run_step_on, shared_server, single_failed_attempt, unique,
    workspace_root,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "tok-8f3a61c2e9d4";

fn worker_binary() -> &'static Path {
    mlx_e2e::worker_binary()
}

/// A loopback data server: the file to anyone presenting `Bearer TOKEN`, 401 to the rest.
/// Returns its port and the authorization header of each request.
async fn data_server(body: Vec<u8>) -> (u16, Arc<Mutex<Vec<Option<String>>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let body = body.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let auth = head.lines().find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("authorization")
                        .then(|| value.trim().to_string())
                });
                let ok = auth.as_deref() == Some(&format!("Bearer {TOKEN}"));
                log.lock().unwrap().push(auth);
                let (status, body) = if ok {
                    ("200 OK", body)
                } else {
                    ("401 Unauthorized", b"who are you?".to_vec())
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.write_all(&body).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (port, seen)
}

fn download(port: u16, secret: &str) -> serde_json::Value {
    json!({
        "plugin": "fetch", "operation": "download",
        "input": {
            "url": format!("http://127.0.0.1:{port}/breast_cancer.csv"),
            "dest": "raw/breast_cancer.csv",
            "auth_secret": secret,
        },
        "start_to_close_secs": 60,
    })
}

/// The fetch plugin allowed to reach the data server on `port`, granted the secret
/// `data_token` from the worker's environment variable `MLX_SECRET_DATA_TOKEN`.
fn fetch_plugin(port: u16) -> PluginsDir {
    let plugins = PluginsDir::with(&["fetch"]);
    plugins.write_manifest(
        "fetch",
        &format!(
            "[http]\nallow = [\"http://127.0.0.1:{port}\"]\nmax_response_kb = 1024\n\n\
             [secrets]\ndata_token = {{ env = \"MLX_SECRET_DATA_TOKEN\" }}\n"
        ),
    );
    plugins
}

/// The token never appears in Temporal's history (payloads decoded: the request is there).
fn assert_no_token_in(events: &[serde_json::Value]) {
    let text = history_text(events);
    assert!(
        text.contains("raw/breast_cancer.csv"),
        "payloads not decoded"
    );
    assert!(!text.contains(TOKEN), "the token leaked into history");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_data_source_plugin_reads_its_token_from_the_worker_environment() -> anyhow::Result<()>
{
    let csv = std::fs::read(workspace_root().join("data/breast_cancer.csv"))?;
    let (port, seen) = data_server(csv.clone()).await;
    let plugins = fetch_plugin(port);
    let server = shared_server().await?;
    let worker = WorkerProcess::start(
        worker_binary(),
        server,
        plugins.path(),
        &[("MLX_SECRET_DATA_TOKEN", TOKEN)],
    )?;

    let id = unique("fetch-granted");
    let (result, events) = run_step_on(
        server,
        &worker.task_queue,
        &id,
        download(port, "data_token"),
    )
    .await?;
    let out = result.map_err(|e| anyhow::anyhow!("download failed: {e}"))?;
    assert_eq!(out["bytes"], csv.len());
    assert_eq!(out["status"], 200);
    assert_eq!(out["path"], "/artifacts/raw/breast_cancer.csv");
    let on_disk = std::fs::read(
        worker
            .artifacts
            .path()
            .join(&id)
            .join("raw/breast_cancer.csv"),
    )?;
    assert!(on_disk == csv, "the artifact differs from the served file");
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        &[Some(format!("Bearer {TOKEN}"))]
    );
    assert_no_token_in(&events);
    Ok(())
}

/// A secret the manifest does not grant: the host refuses it, says which key grants it, and no
/// request leaves the worker.
#[tokio::test(flavor = "multi_thread")]
async fn an_ungranted_secret_is_refused_before_any_request_is_made() -> anyhow::Result<()> {
    let (port, seen) = data_server(b"never served".to_vec()).await;
    let plugins = fetch_plugin(port);
    let server = shared_server().await?;
    let worker = WorkerProcess::start(
        worker_binary(),
        server,
        plugins.path(),
        &[("MLX_SECRET_DATA_TOKEN", TOKEN)],
    )?;
    let (result, events) = run_step_on(
        server,
        &worker.task_queue,
        &unique("fetch-ungranted"),
        download(port, "other"),
    )
    .await?;
    assert!(result.is_err());
    let failure = single_failed_attempt(&events);
    assert_eq!(find(&failure, "type"), Some(&json!("CapabilityDenied")));
    assert_eq!(find(&failure, "nonRetryable"), Some(&json!(true)));
    let text = history_text(&events);
    assert!(
        text.contains("secret \"other\" is not granted") && text.contains("[secrets]"),
        "{text}"
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "an ungranted call reached the server"
    );
    assert_no_token_in(&events);
    Ok(())
}

fn mlx_worker() -> std::process::Command {
    let mut cmd = std::process::Command::new(worker_binary());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

#[test]
fn configuration_precedence_is_flags_then_environment_then_file_then_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("worker.toml");
    std::fs::write(
        &config,
        "[worker]\ntask_queue = \"from-file\"\nplugins_dir = \"plugins\"\n\
         max_concurrent_activities = 3\nshutdown_grace_secs = 7\n\
         [temporal]\naddress = \"file-host:7233\"\napi_key = \"sekrit\"\n",
    )
    .unwrap();
    let out = mlx_worker()
        .args(["run", "--print-config", "--config"])
        .arg(&config)
        .args(["--task-queue", "from-flag"])
        .env("MLX_TASK_QUEUE", "from-env")
        .env("MLX_MAX_CONCURRENT_ACTIVITIES", "5")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: toml::Table = toml::from_str(&text).unwrap();
    let worker = &printed["worker"];
    assert_eq!(worker["task_queue"].as_str(), Some("from-flag"), "{text}");
    assert_eq!(worker["max_concurrent_activities"].as_integer(), Some(5));
    assert_eq!(worker["shutdown_grace_secs"].as_integer(), Some(7));
    // Default, and a path relative to the file.
    assert_eq!(worker["artifacts_dir"].as_str(), Some("artifacts"));
    let plugins = dir.path().join("plugins");
    assert_eq!(worker["plugins_dir"].as_str(), plugins.to_str());
    assert_eq!(
        printed["temporal"]["address"].as_str(),
        Some("file-host:7233")
    );
    assert!(!text.contains("sekrit"), "{text}");
}

#[test]
fn unknown_configuration_keys_are_refused_with_exit_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("worker.toml");
    std::fs::write(&config, "[worker]\nplugin_dir = \"p\"\n").unwrap();
    let out = mlx_worker()
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("worker.toml") && stderr.contains("plugin_dir"),
        "{stderr}"
    );
}

fn long_step() -> serde_json::Value {
    json!({
        "plugin": "testkit", "operation": "wait_for_cancel",
        "input": {"max_beats": 100000, "interval_ms": 50},
        "start_to_close_secs": 300, "heartbeat_timeout_secs": 10,
    })
}

/// A worker process serving testkit, with health and metrics endpoints on free ports.
struct Observed {
    worker: WorkerProcess,
    plugins: PluginsDir,
    health: String,
    metrics: String,
}

impl Observed {
    /// SIGTERM, then `/readyz` turns 503 with the reason: load balancers stop sending work
    /// while in-flight activities drain.
    async fn terminate_and_see_not_ready(&mut self) -> anyhow::Result<()> {
        self.worker.terminate();
        eventually(
            Duration::from_secs(60),
            "/readyz says shutting down",
            || async {
                match http_get(&self.health, "/readyz").await {
                    Ok((503, body)) if body.contains("shutting down") => Some(()),
                    _ => None,
                }
            },
        )
        .await
    }
}

/// The result of a step started by [`Observed::run_until_heartbeat`].
type Running = tokio::task::JoinHandle<anyhow::Result<(Result<Value, String>, Vec<Value>)>>;

/// A testkit step that runs until the test creates `/artifacts/release` in its run.
fn held_step() -> Value {
    json!({
        "plugin": "testkit", "operation": "wait_for_file",
        "input": {"path": "/artifacts/release"},
        "start_to_close_secs": 300, "heartbeat_timeout_secs": 10,
    })
}

impl Observed {
    /// Starts `step` in a workflow named after `prefix` and waits until its activity
    /// heartbeats: the plugin is surely running.
    async fn run_until_heartbeat(
        &self,
        server: &'static DevServer,
        prefix: &str,
        step: Value,
    ) -> anyhow::Result<(String, Running)> {
        let id = unique(prefix);
        let running = tokio::spawn({
            let (queue, id) = (self.worker.task_queue.clone(), id.clone());
            async move { run_step_on(server, &queue, &id, step).await }
        });
        eventually(
            Duration::from_secs(60),
            "the activity heartbeats",
            || async { activity_heartbeating(server, &id).await.ok().filter(|b| *b) },
        )
        .await?;
        Ok((id, running))
    }
}

async fn observed(server: &DevServer, extra: &[&str]) -> anyhow::Result<Observed> {
    let plugins = PluginsDir::with(&["testkit"]);
    let health = format!("127.0.0.1:{}", mlx_e2e::free_port());
    let metrics = format!("127.0.0.1:{}", mlx_e2e::free_port());
    let mut args = vec!["--health-address", &health, "--metrics-address", &metrics];
    args.extend_from_slice(extra);
    let worker = WorkerProcess::start_with(worker_binary(), server, plugins.path(), &[], &args)?;
    eventually(Duration::from_secs(60), "/readyz says ready", || async {
        matches!(http_get(&health, "/readyz").await, Ok((200, _))).then_some(())
    })
    .await?;
    Ok(Observed {
        worker,
        plugins,
        health,
        metrics,
    })
}

async fn echo_on(server: &DevServer, worker: &WorkerProcess, n: u32) -> anyhow::Result<()> {
    let echo = json!({"plugin": "testkit", "operation": "echo", "input": {"n": n}});
    let (result, _) = run_step_on(server, &worker.task_queue, &unique("echo"), echo).await?;
    assert_eq!(result.map_err(anyhow::Error::msg)?["input"]["n"], n);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_and_metrics_count_invocations() -> anyhow::Result<()> {
    let server = shared_server().await?;
    let o = observed(server, &[]).await?;
    assert_eq!(http_get(&o.health, "/healthz").await?.0, 200);

    echo_on(server, &o.worker, 1).await?;
    let (status, scraped) = http_get(&o.metrics, "/metrics").await?;
    assert_eq!(status, 200);
    let ok_line = scraped
        .lines()
        .find(|l| {
            l.starts_with("mlx_plugin_invocations_total{")
                && l.contains("plugin=\"testkit\"")
                && l.contains("outcome=\"ok\"")
        })
        .unwrap_or_else(|| panic!("no invocation counter in:\n{scraped}"));
    assert!(ok_line.ends_with(" 1"), "{ok_line}");
    assert!(
        scraped.contains("mlx_plugin_invocation_latency"),
        "{scraped}"
    );
    assert!(scraped.contains("temporal_"), "SDK core metrics missing");
    Ok(())
}

/// Waits until every `(gauge, value)` reads so on the metrics endpoint (the worker records
/// them once a second).
async fn gauges_read(metrics: &str, what: &str, want: &[(&str, f64)]) -> anyhow::Result<()> {
    eventually(Duration::from_secs(60), what, || async {
        let (_, scraped) = http_get(metrics, "/metrics").await.ok()?;
        want.iter()
            .all(|(name, value)| mlx_e2e::metric(&scraped, name, "") == Some(*value))
            .then_some(())
    })
    .await
}

/// The gauges a soak reads to tell a leak from work left alive (issue 18): the heap and tasks
/// are reported, and a plugin replaced mid-invocation stays alive only until that invocation
/// ends, then its compiled component is released.
#[tokio::test(flavor = "multi_thread")]
async fn gauges_count_what_is_alive_and_a_replaced_plugin_is_released() -> anyhow::Result<()> {
    let server = shared_server().await?;
    let o = observed(server, &[]).await?;
    for n in 1..=3 {
        echo_on(server, &o.worker, n).await?;
    }
    // Three attempts done; the count below, exactly 1 while the next one runs, is what shows
    // their cancellation handles are gone (the SDK's worker kept every one).
    // One call at a time, so the pool has used one memory slot (engine.rs, warm_memory_slots).
    gauges_read(
        &o.metrics,
        "one version, no instance, no attempt tracked, one pool slot used",
        &[
            ("mlx_plugin_versions_alive", 1.0),
            ("mlx_plugin_instances_alive", 0.0),
            ("mlx_worker_activities_tracked", 0.0),
            ("mlx_pool_unused_warm_memories", 1.0),
        ],
    )
    .await?;
    let (_, scraped) = http_get(&o.metrics, "/metrics").await?;
    let heap = mlx_e2e::metric(&scraped, "mlx_worker_heap_in_use_bytes", "");
    assert!(heap.is_some_and(|b| b > 1e6), "heap in use: {heap:?}");
    let tasks = mlx_e2e::metric(&scraped, "mlx_worker_tasks", "");
    assert!(tasks.is_some_and(|n| n >= 1.0), "tasks: {tasks:?}");

    let (id, running) = o.run_until_heartbeat(server, "held", held_step()).await?;
    let variant = mlx_e2e::components::variant("testkit", "gauges");
    mlx_e2e::components::drop_in(o.plugins.path(), "testkit.wasm", &variant);
    gauges_read(
        &o.metrics,
        "the old version held by its invocation",
        &[
            ("mlx_plugin_versions_alive", 2.0),
            ("mlx_plugin_instances_alive", 1.0),
            ("mlx_worker_activities_tracked", 1.0),
        ],
    )
    .await?;

    mlx_e2e::release(o.worker.artifacts.path(), &id, "release", "done");
    let (result, _) = running.await??;
    result.map_err(anyhow::Error::msg)?;
    gauges_read(
        &o.metrics,
        "the old version released",
        &[
            ("mlx_plugin_versions_alive", 1.0),
            ("mlx_plugin_instances_alive", 0.0),
            ("mlx_worker_activities_tracked", 0.0),
        ],
    )
    .await
}

/// A corrupt file dropped in is refused, counted, and the good plugin keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_file_dropped_in_is_counted_and_the_good_plugin_serves() -> anyhow::Result<()> {
    let server = shared_server().await?;
    let o = observed(server, &[]).await?;
    std::fs::write(o.plugins.path().join("broken.wasm"), b"\0asm broken")?;
    eventually(
        Duration::from_secs(30),
        "the refusal is counted",
        || async {
            let (_, scraped) = http_get(&o.metrics, "/metrics").await.ok()?;
            scraped
                .lines()
                .any(|l| {
                    l.starts_with("mlx_plugin_reloads_total{")
                        && l.contains("result=\"refused\"")
                        && l.ends_with(" 1")
                })
                .then_some(())
        },
    )
    .await?;
    echo_on(server, &o.worker, 2).await
}

/// A long activity is running when SIGTERM arrives: polling stops, readiness goes, the activity
/// gets the 2 s grace period, then it is cancelled and the exit status says so.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_and_cancels_what_outlasts_the_grace_period() -> anyhow::Result<()> {
    let server = shared_server().await?;
    let mut o = observed(server, &["--shutdown-grace-secs", "2"]).await?;
    let (_, long) = o.run_until_heartbeat(server, "long", long_step()).await?;
    o.terminate_and_see_not_ready().await?;
    let status = o.worker.exit_status(Duration::from_secs(60)).await?;
    assert_eq!(status.code(), Some(3), "{status:?}");
    long.abort();
    Ok(())
}

/// The step runs until the test creates its release file, so SIGTERM surely finds it running.
#[tokio::test(flavor = "multi_thread")]
async fn a_drain_lets_in_flight_work_finish_and_exits_0() -> anyhow::Result<()> {
    let server = shared_server().await?;
    let mut o = observed(server, &["--shutdown-grace-secs", "120"]).await?;
    // The workflow cannot complete once the only worker stops (it needs a workflow task), so
    // the activity's own completion is what to look for in its history.
    let (id, _) = o.run_until_heartbeat(server, "short", held_step()).await?;
    o.terminate_and_see_not_ready().await?;
    assert!(
        o.worker.is_running(),
        "the worker exited before its work ended"
    );
    mlx_e2e::release(o.worker.artifacts.path(), &id, "release", "drained");
    let status = o.worker.exit_status(Duration::from_secs(60)).await?;
    assert_eq!(status.code(), Some(0), "{status:?}");
    let history = history_of(server, &id).await?;
    let completed = events(&history, "ActivityTaskCompleted");
    assert_eq!(completed.len(), 1, "{history:#?}");
    assert!(
        history_text(&history).contains("\"content\":\"drained\""),
        "the activity's result is not in history"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_reconnects_when_the_server_comes_back() -> anyhow::Result<()> {
    let plugins = PluginsDir::with(&["testkit"]);
    let state = tempfile::tempdir()?;
    let db = state.path().join("temporal.db");
    let port = mlx_e2e::free_port();
    let server = DevServer::start_on(port, Some(&db)).await?;
    let mut worker = WorkerProcess::start(worker_binary(), &server, plugins.path(), &[])?;
    let echo = |n: u32| json!({"plugin": "testkit", "operation": "echo", "input": {"n": n}});
    let (before, _) = run_step_on(&server, &worker.task_queue, &unique("before"), echo(1)).await?;
    assert_eq!(before.map_err(anyhow::Error::msg)?["input"]["n"], 1);

    drop(server);
    // Once a server is back at the same address, the same worker process serves again.
    let server = DevServer::start_on(port, Some(&db)).await?;
    let (after, _) = tokio::time::timeout(
        Duration::from_secs(120),
        run_step_on(&server, &worker.task_queue, &unique("after"), echo(2)),
    )
    .await??;
    assert_eq!(after.map_err(anyhow::Error::msg)?["input"]["n"], 2);
    assert!(worker.is_running(), "the worker exited");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_starts_a_server_and_the_worker_and_stops_both() -> anyhow::Result<()> {
    let plugins = PluginsDir::with(&["testkit"]);
    let artifacts = tempfile::tempdir()?;
    let port = mlx_e2e::free_port();
    let queue = unique("dev-q");
    let mut command = std::process::Command::new(worker_binary());
    command
        .args(["dev", "--plugins-dir"])
        .arg(plugins.path())
        .arg("--temporal-cli")
        .arg(mlx_e2e::temporal_cli())
        .args(["--port", &port.to_string()])
        .args(["--ui-port", &mlx_e2e::free_port().to_string()])
        .args(["--task-queue", &queue])
        .arg("--artifacts-dir")
        .arg(artifacts.path())
        .current_dir(artifacts.path());
    // What `dev` and its server said, to show if it gives up (a port taken meanwhile, say).
    let said = artifacts.path().join("dev.log");
    command.stderr(std::fs::File::create(&said)?);
    // SIGTERM if the test process dies first: `dev` then stops its own server too.
    let mut dev = mlx_e2e::spawn_tied(command, libc::SIGTERM)?;
    let server = DevServer::external(&format!("127.0.0.1:{port}"));
    let mut exited = None;
    let up = eventually(
        Duration::from_secs(180),
        "the dev server accepts clients (or dev exits)",
        || {
            exited = exited.or_else(|| dev.try_wait().ok().flatten());
            let gone = exited.is_some();
            let server = &server;
            async move {
                if gone {
                    return Some(false);
                }
                server.client().await.ok().map(|_| true)
            }
        },
    )
    .await;
    if !matches!(up, Ok(true)) {
        anyhow::bail!(
            "dev did not bring its server up ({up:?}, exit {exited:?}); it said:\n{}",
            std::fs::read_to_string(&said).unwrap_or_default()
        );
    }
    let echo = json!({"plugin": "testkit", "operation": "echo", "input": {"dev": true}});
    let (result, _) = tokio::time::timeout(
        Duration::from_secs(120),
        run_step_on(&server, &queue, &unique("dev"), echo),
    )
    .await??;
    assert_eq!(result.map_err(anyhow::Error::msg)?["input"]["dev"], true);

    std::process::Command::new("kill")
        .args(["-TERM", &dev.id().to_string()])
        .status()?;
    let status = tokio::task::spawn_blocking(move || dev.wait()).await??;
    assert_eq!(status.code(), Some(0));
    // Its server went with it.
    eventually(
        Duration::from_secs(30),
        "the dev server's port is closed",
        || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
                .then_some(())
        },
    )
    .await?;
    Ok(())
}

/// A stand-in OpenTelemetry collector: accepts OTLP/HTTP posts and keeps their bodies.
async fn otlp_collector() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 8192];
                loop {
                    let text = String::from_utf8_lossy(&data).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            kept.lock().unwrap().push(body.to_string());
                            let _ = socket
                                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                                .await;
                            data.clear();
                            continue;
                        }
                    }
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                    }
                }
            });
        }
    });
    (port, bodies)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_invocation_is_a_span_exported_over_otlp() -> anyhow::Result<()> {
    let (port, bodies) = otlp_collector().await;
    let plugins = PluginsDir::with(&["testkit"]);
    let server = shared_server().await?;
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut worker = WorkerProcess::start_with(
        worker_binary(),
        server,
        plugins.path(),
        &[],
        &["--otlp-endpoint", &endpoint],
    )?;
    let echo = json!({"plugin": "testkit", "operation": "echo", "input": {}});
    let (ok_id, panic_id) = (unique("traced-ok"), unique("traced-panic"));
    let (ok, _) = run_step_on(server, &worker.task_queue, &ok_id, echo).await?;
    ok.map_err(anyhow::Error::msg)?;
    let panic = json!({"plugin": "testkit", "operation": "panic", "input": {"message": "x"}});
    let (failed, _) = run_step_on(server, &worker.task_queue, &panic_id, panic).await?;
    assert!(failed.is_err());
    // Stopping flushes what the batch exporter still holds.
    worker.terminate();
    assert_eq!(
        worker.exit_status(Duration::from_secs(60)).await?.code(),
        Some(0)
    );

    let exported = bodies.lock().unwrap().join("\n");
    let spans: Vec<serde_json::Value> = bodies
        .lock()
        .unwrap()
        .iter()
        .filter_map(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        .flat_map(|doc| {
            doc["resourceSpans"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|rs| rs["scopeSpans"].as_array().cloned().unwrap_or_default())
                .flat_map(|ss| ss["spans"].as_array().cloned().unwrap_or_default())
                .collect::<Vec<_>>()
        })
        .filter(|span| span["name"] == "invocation")
        .collect();
    let attr = |span: &serde_json::Value, key: &str| -> Option<String> {
        span["attributes"].as_array()?.iter().find_map(|a| {
            (a["key"] == key).then(|| {
                let v = &a["value"];
                v["stringValue"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
        })
    };
    let by_workflow = |id: &str| {
        spans
            .iter()
            .find(|s| attr(s, "workflow_id").as_deref() == Some(id))
            .unwrap_or_else(|| panic!("no span for {id} in {exported}"))
    };
    let ok_span = by_workflow(&ok_id);
    assert_eq!(attr(ok_span, "plugin").as_deref(), Some("testkit"));
    assert_eq!(attr(ok_span, "operation").as_deref(), Some("echo"));
    assert_eq!(attr(ok_span, "outcome").as_deref(), Some("ok"));
    assert!(attr(ok_span, "digest").is_some_and(|d| d.starts_with("sha256:")));
    let failed_span = by_workflow(&panic_id);
    assert_eq!(attr(failed_span, "outcome").as_deref(), Some("failed"));
    assert_eq!(
        attr(failed_span, "failure_type").as_deref(),
        Some("PluginTrapped")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_connection_can_come_from_a_temporal_toml_profile() -> anyhow::Result<()> {
    let plugins = PluginsDir::with(&["testkit"]);
    let server = shared_server().await?;
    let dir = tempfile::tempdir()?;
    let profile = dir.path().join("temporal.toml");
    let queue = unique("profile-q");
    std::fs::write(
        &profile,
        format!(
            "[profile.staging]\naddress = \"{}\"\nnamespace = \"default\"\n",
            server.address
        ),
    )?;
    // No --address: the address comes from the profile the official SDKs read.
    let mut command = mlx_worker();
    command
        .args(["run", "--plugins-dir"])
        .arg(plugins.path())
        .args(["--task-queue", &queue, "--profile", "staging"])
        .arg("--cache-dir")
        .arg(mlx_e2e::compile_cache())
        .arg("--artifacts-dir")
        .arg(dir.path().join("artifacts"))
        .env("TEMPORAL_CONFIG_FILE", &profile);
    let mut child = mlx_e2e::spawn_tied(command, libc::SIGKILL)?;
    let echo = json!({"plugin": "testkit", "operation": "echo", "input": {"via": "profile"}});
    let outcome = tokio::time::timeout(
        Duration::from_secs(120),
        run_step_on(server, &queue, &unique("profile"), echo),
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let (result, _) = outcome??;
    assert_eq!(
        result.map_err(anyhow::Error::msg)?["input"]["via"],
        "profile"
    );
    Ok(())
}

#[test]
fn a_missing_plugins_directory_is_refused_with_exit_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = mlx_worker()
        .args(["run", "--plugins-dir"])
        .arg(dir.path().join("plugnis"))
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .arg("--artifacts-dir")
        .arg(dir.path().join("artifacts"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("plugnis") && stderr.contains("--plugins-dir"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("plugnis").exists(),
        "the mistyped directory was created"
    );
}

/// The end-to-end benchmark's native mode: `plugin_activity` answers as the testkit `echo`
/// does, with no plugin at all (an empty directory would otherwise fail it UnknownPlugin).
#[tokio::test(flavor = "multi_thread")]
async fn native_echo_answers_like_the_testkit_echo_without_plugins() -> anyhow::Result<()> {
    let server = shared_server().await?;
    let empty = PluginsDir::with(&[]);
    let worker = WorkerProcess::start(
        worker_binary(),
        server,
        empty.path(),
        &[("MLX_NATIVE_ECHO", "true")],
    )?;
    let step = json!({"plugin": "testkit", "operation": "echo", "input": {"n": 1}});
    let id = unique("native");
    let (result, _) = run_step_on(server, &worker.task_queue, &id, step).await?;
    assert_eq!(
        result.map_err(anyhow::Error::msg)?,
        json!({
            "input": {"n": 1}, "workflow_id": id, "activity_id": "1", "attempt": 1,
            "last_heartbeat_details": null,
        })
    );
    Ok(())
}

/// `--max-input-bytes`: a request over it fails once as InvalidRequest, before any sandbox,
/// while one under it runs.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_over_max_input_bytes_is_refused_before_any_sandbox() -> anyhow::Result<()> {
    let server = shared_server().await?;
    let plugins = PluginsDir::with(&["testkit"]);
    let worker = WorkerProcess::start_with(
        worker_binary(),
        server,
        plugins.path(),
        &[],
        &["--max-input-bytes", "1024"],
    )?;
    let step =
        |text: String| json!({"plugin": "testkit", "operation": "echo", "input": {"t": text}});
    let (small, _) = run_step_on(
        server,
        &worker.task_queue,
        &unique("small"),
        step("x".repeat(100)),
    )
    .await?;
    small.map_err(anyhow::Error::msg)?;
    let id = unique("large");
    let (large, history) =
        run_step_on(server, &worker.task_queue, &id, step("x".repeat(2000))).await?;
    let err = large.expect_err("over the limit");
    assert!(err.contains("worker.max_input_bytes"), "{err}");
    let failure = single_failed_attempt(&history);
    assert_eq!(
        find(&failure, "type"),
        Some(&json!("InvalidRequest")),
        "{failure}"
    );
    assert_eq!(
        find(&failure, "nonRetryable"),
        Some(&json!(true)),
        "{failure}"
    );
    Ok(())
}
