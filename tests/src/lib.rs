//! Test harness: builds the guest components and the worker binary, starts one Temporal dev
//! server per test process ([`shared_server`]; a private one, [`DevServer::start`], only for
//! tests that stop or restart it) and in-process workers on task queues of their own, and
//! stops everything it started: on drop, and (servers, worker processes) when the test process
//! exits, however it exits. In-process plugin hosts share one compile cache per process
//! ([`host_settings`]), so a component is compiled once per run, not once per test.
//! No sleeps as synchronisation: conditions are polled with a deadline ([`eventually`]).

use std::{
    future::Future,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, OnceLock, mpsc},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use mlx_runtime::{
    HostSettings, PluginHost, engine::EngineSettings, plugin::registry::PluginRegistry,
};
use mlx_worker::temporal::worker::{self, ConnectionSettings, WorkerSettings};
use serde_json::Value;
use temporalio_client::{
    Client, WorkflowFetchHistoryOptions, WorkflowGetResultOptions, WorkflowHandle,
    WorkflowStartOptions,
};
use temporalio_common::HasWorkflowDefinition;
use tokio::sync::oneshot;

pub mod bench;
pub mod browser;
pub mod components;
pub mod oci_registry;
pub mod proc_stats;
pub mod s3;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A name no other test (in this process or another on the same server) uses: for task queues,
/// workflow and schedule ids on the shared server.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Builds the guest components once per test process and returns their directory.
pub fn components() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let plugins = workspace_root().join("plugins");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--quiet"])
            .current_dir(&plugins)
            .status()
            .expect("running cargo for the guest components");
        assert!(status.success(), "building the guest components failed");
        plugins.join("target/wasm32-wasip2/release")
    })
}

/// The `mlx-worker` binary of this build (same target directory and profile as the running
/// test), built once per test process: the worker is not a binary target of this package, so
/// Cargo does not build it for these tests by itself. Built with the workspace's bins and
/// tests, so its dependencies get the features `cargo test --workspace` gave them (a
/// `-p mlx-worker` build resolves them without the workspace's dev-dependencies and compiles
/// another variant of the worker): after `cargo test --workspace` or `make test`, everything
/// is fresh.
pub fn worker_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        // The test runs as <target>/<profile>/deps/<test>-<hash> (an example as
        // <target>/<profile>/examples/<name>).
        let exe = std::env::current_exe().expect("the test binary's path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test binary lives in <target>/<profile>/<kind>/");
        let target_dir = profile_dir.parent().expect("<target>/<profile>");
        let mut command = Command::new(env!("CARGO"));
        command
            .args(["build", "--quiet", "--workspace", "--bins", "--tests"])
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(workspace_root());
        // Not with `cargo test`'s package variables: passing them on made this "fresh" build
        // recompile ring, rustls and everything above them (70 s of both cores, every run).
        components::without_cargo_test_env(&mut command);
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => {}
            Some("release") => {
                command.arg("--release");
            }
            Some(profile) => {
                command.args(["--profile", profile]);
            }
            None => panic!("no profile directory in {}", exe.display()),
        }
        let status = command.status().expect("running cargo for mlx-worker");
        assert!(status.success(), "building mlx-worker failed");
        profile_dir.join("mlx-worker")
    })
}

/// The compile cache of every in-process plugin host and worker process of this test
/// process: `MLX_E2E_COMPILE_CACHE` when set (`make test` fills it with every component in
/// its build step, as a worker's warm cache), else a fresh directory removed at exit. Either
/// way each component is compiled at most once per run. Entries are keyed by the component's
/// digest and the engine's settings, so a rebuilt component or worker never meets a stale one.
pub fn compile_cache() -> &'static Path {
    static SHARED: OnceLock<Option<PathBuf>> = OnceLock::new();
    if let Some(dir) = SHARED
        .get_or_init(|| std::env::var_os("MLX_E2E_COMPILE_CACHE").map(PathBuf::from))
        .as_deref()
    {
        return dir;
    }
    static CACHE: OnceLock<tempfile::TempDir> = OnceLock::new();
    extern "C" fn remove_cache() {
        if let Some(dir) = CACHE.get() {
            let _ = std::fs::remove_dir_all(dir.path());
        }
    }
    CACHE
        .get_or_init(|| {
            let dir = tempfile::Builder::new()
                .prefix("mlx-e2e-cache-")
                .tempdir()
                .expect("creating the compile cache directory");
            // Statics are never dropped: remove it when the process exits normally (the test
            // harness ends with `exit`, which runs `atexit` handlers).
            // SAFETY: registers a plain `extern "C"` function with no preconditions.
            unsafe { libc::atexit(remove_cache) };
            dir
        })
        .path()
}

/// Settings for an in-process [`PluginHost`] in a test: the defaults, with the process-wide
/// [`compile_cache`]. Tests of the cache itself set their own `cache_dir`.
pub fn host_settings() -> HostSettings {
    HostSettings {
        cache_dir: Some(compile_cache().to_path_buf()),
        ..Default::default()
    }
}

/// Spawns `command` so that it cannot outlive the test process: it gets `signal` when the
/// process exits, however that happens (a failed test, a killed `cargo test`). Linux delivers
/// the parent-death signal when the spawning *thread* ends, so every such child is spawned
/// by one thread that lives as long as the process.
pub fn spawn_tied(mut command: Command, signal: libc::c_int) -> std::io::Result<Child> {
    type Request = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The test process died before the signal was armed.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("child-spawner".into())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("starting the child spawner thread");
        Mutex::new(requests)
    });
    let (reply, child) = mpsc::channel();
    spawner
        .lock()
        .unwrap()
        .send((command, reply))
        .expect("the child spawner thread is running");
    child.recv().expect("the child spawner thread answers")
}

/// The dev server every test of this process shares, started by the first test that asks.
/// Tests keep out of each other's way with task queues and ids of their own ([`unique`]).
/// The server is not tied to any test's runtime (each test has its own); make a
/// [`DevServer::client`] per test. It is killed when the test process exits.
pub async fn shared_server() -> anyhow::Result<&'static DevServer> {
    static SERVER: tokio::sync::OnceCell<DevServer> = tokio::sync::OnceCell::const_new();
    SERVER.get_or_try_init(DevServer::start).await
}

/// A plugins directory holding copies of the named components (and manifests written by the
/// test), as an operator would lay it out.
pub struct PluginsDir {
    pub dir: tempfile::TempDir,
}

impl PluginsDir {
    pub fn with(names: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for name in names {
            let file = format!("{name}.wasm");
            std::fs::copy(components().join(&file), dir.path().join(&file))
                .unwrap_or_else(|e| panic!("copying {file}: {e}"));
        }
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write_manifest(&self, name: &str, toml: &str) {
        std::fs::write(self.dir.path().join(format!("{name}.toml")), toml).unwrap();
    }

    /// Grants plugin `name` the bundled datasets (`data/`) read-only at `/data`, as the csv
    /// plugin's shipped manifest does.
    pub fn grant_data(&self, name: &str) {
        let data = workspace_root().join("data");
        self.write_manifest(
            name,
            &format!(
                "[[filesystem]]\nhost = {:?}\nguest = \"/data\"\naccess = \"read-only\"\n",
                data.display().to_string()
            ),
        );
    }
}

/// A loopback port free right now, for a server a test is about to start. Drawn from below
/// the kernel's ephemeral range: `bind(0)` and every outgoing connection take ports from that
/// range, so with many tests at once a freed ephemeral port was sometimes taken by another
/// test's client before the server bound it ("Address already in use"). Never a port in an odd
/// thousand either: Temporal's dev server also takes `port + 1000`.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    const LOW: u32 = 10_000;
    let high = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768)
        .clamp(LOW + 2_000, 65_535);
    let span = high - LOW;
    // Processes running tests at once start at different places.
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = LOW + (start + n) % span;
        if (port / 1000) % 2 == 1 {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return port as u16;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn temporal_cli() -> PathBuf {
    std::env::var_os("MLX_TEMPORAL_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("tools/venv/bin/temporal"))
}

/// The project's Python (with the `temporalio` SDK), from `make tools`.
pub fn python() -> PathBuf {
    temporal_cli().with_file_name("python")
}

/// A Temporal dev server of our own (in memory, headless), killed on drop and when the test
/// process exits. Most tests use the [`shared_server`] instead.
pub struct DevServer {
    pub address: String,
    /// None: a server this harness did not start (see [`DevServer::external`]).
    child: Option<Child>,
}

impl DevServer {
    /// A private server: only for a test that stops or restarts it.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_on(free_port(), None).await
    }

    /// A server on `port`, keeping its state in `db` if given: stopping it and starting
    /// another on the same port and file is a server restart, as clients see it.
    pub async fn start_on(port: u16, db: Option<&Path>) -> anyhow::Result<Self> {
        let cli = temporal_cli();
        if !cli.exists() {
            bail!("{} is missing: run `make tools`", cli.display());
        }
        let mut command = Command::new(&cli);
        command
            .args(["server", "start-dev", "--headless", "--ip", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .args(["--http-port", &free_port().to_string()])
            .args(["--metrics-port", &free_port().to_string()])
            .args(["--log-level", "error"])
            .args(["--dynamic-config-value", "activity.enableStandalone=true"]);
        if let Some(db) = db {
            command.arg("--db-filename").arg(db);
        }
        command.stdin(Stdio::null()).stdout(Stdio::null());
        let child = spawn_tied(command, libc::SIGKILL)
            .with_context(|| format!("starting {}", cli.display()))?;
        let server = Self {
            address: format!("127.0.0.1:{port}"),
            child: Some(child),
        };
        eventually(Duration::from_secs(60), "dev server healthy", || async {
            server.client().await.ok()
        })
        .await?;
        Ok(server)
    }

    /// A server someone else runs (e.g. `mlx-worker dev`), reached at `address`.
    pub fn external(address: &str) -> Self {
        Self {
            address: address.to_string(),
            child: None,
        }
    }

    pub async fn client(&self) -> anyhow::Result<Client> {
        Ok(worker::connect(&ConnectionSettings {
            address: Some(self.address.clone()),
            namespace: Some("default".into()),
            ..Default::default()
        })
        .await?)
    }

    /// Runs the `temporal` CLI against this server.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(temporal_cli())
            .args(args)
            .args(["--address", &self.address])
            .output()
            .expect("running the temporal CLI")
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An in-process worker serving one task queue; stopped (and awaited) on [`TestWorker::stop`].
pub struct TestWorker {
    pub task_queue: String,
    pub artifacts: tempfile::TempDir,
    pub runtime: Arc<PluginHost>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl TestWorker {
    pub async fn start(server: &DevServer, plugins: &Path) -> anyhow::Result<Self> {
        Self::start_with(server, plugins, |_| {}).await
    }

    /// [`TestWorker::start`] with worker settings changed by `configure` (e.g. OpenLineage).
    pub async fn start_with(
        server: &DevServer,
        plugins: &Path,
        configure: impl FnOnce(&mut WorkerSettings),
    ) -> anyhow::Result<Self> {
        // Worker and plugin logs go to stderr: `cargo test -- --nocapture` shows them.
        let _ = mlx_worker::daemon::telemetry::init(
            mlx_worker::daemon::telemetry::LogFormat::Human,
            None,
        );
        let artifacts = tempfile::tempdir()?;
        let runtime = PluginHost::new(HostSettings {
            engine: EngineSettings {
                max_instances: 16,
                ..Default::default()
            },
            artifacts_dir: Some(artifacts.path().to_path_buf()),
            ..host_settings()
        })
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let registry = Arc::new(PluginRegistry::load_dir(&runtime, plugins).await?);
        let task_queue = unique("tq");
        let client = server.client().await?;
        let (stop, stopped) = oneshot::channel::<()>();
        let mut settings = WorkerSettings::new(task_queue.clone(), 4);
        configure(&mut settings);
        let rt = runtime.clone();
        // The SDK's worker future is not `Send`: it gets a thread and an executor of its own,
        // as it would in the daemon.
        let thread = std::thread::Builder::new()
            .name(format!("worker-{task_queue}"))
            .spawn(move || {
                let executor = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()?;
                executor.block_on(worker::run(client, &settings, rt, registry, async {
                    let _ = stopped.await;
                }))?;
                Ok(())
            })?;
        Ok(Self {
            task_queue,
            artifacts,
            runtime,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let joined = tokio::task::spawn_blocking(move || thread.join());
            tokio::time::timeout(Duration::from_secs(60), joined)
                .await??
                .map_err(|_| anyhow::anyhow!("worker thread panicked"))??;
        }
        Ok(())
    }
}

impl Drop for TestWorker {
    /// A test that fails before `stop` still stops polling; the server goes with it.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The real daemon, `mlx-worker run`, as a child process with an environment of the test's
/// choosing (what an operator's service manager would give it); killed on drop.
pub struct WorkerProcess {
    pub task_queue: String,
    /// Shared with its [`WorkerProcess::successor`], if any: removed when the last goes.
    pub artifacts: Arc<tempfile::TempDir>,
    child: Child,
}

impl WorkerProcess {
    /// `binary` is [`worker_binary`] in tests (a benchmark passes the release build). Its
    /// compile cache is the process-wide [`compile_cache`].
    pub fn start(
        binary: &Path,
        server: &DevServer,
        plugins: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        Self::start_with(binary, server, plugins, env, &[])
    }

    /// [`WorkerProcess::start`] with extra `run` flags.
    pub fn start_with(
        binary: &Path,
        server: &DevServer,
        plugins: &Path,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> anyhow::Result<Self> {
        Self::spawn(binary, server, plugins, None, env, args)
    }

    /// Another worker process on this one's task queue and artifacts directory (and the
    /// process-wide compile cache), with `env` and extra `run` flags: the worker that takes
    /// over when this one is killed, as on a host whose worker is restarted. Activities that
    /// this one left behind are retried on it, and their checkpoint files are where they were.
    pub fn successor(
        &self,
        binary: &Path,
        server: &DevServer,
        plugins: &Path,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> anyhow::Result<Self> {
        let child = Self::command(
            binary,
            server,
            plugins,
            &self.task_queue,
            self.artifacts.path(),
            compile_cache(),
            env,
            args,
        )?;
        Ok(Self {
            task_queue: self.task_queue.clone(),
            artifacts: self.artifacts.clone(),
            child,
        })
    }

    /// Another worker process on this one's task queue with an artifacts directory of its own:
    /// a second machine of a fleet, sharing nothing local with this one.
    pub fn peer(
        &self,
        binary: &Path,
        server: &DevServer,
        plugins: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let artifacts = tempfile::tempdir()?;
        let child = Self::command(
            binary,
            server,
            plugins,
            &self.task_queue,
            artifacts.path(),
            compile_cache(),
            env,
            &[],
        )?;
        Ok(Self {
            task_queue: self.task_queue.clone(),
            artifacts: Arc::new(artifacts),
            child,
        })
    }

    /// Kills the process at once (SIGKILL: no drain, no final heartbeat, as a crash or the
    /// OOM killer would) and waits for it; its artifacts stay.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// [`WorkerProcess::start_with`] with its compile cache in `cache_dir` rather than the
    /// process-wide one: a second start on the same directory is a warm start.
    pub fn start_with_cache(
        binary: &Path,
        server: &DevServer,
        plugins: &Path,
        cache_dir: &Path,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> anyhow::Result<Self> {
        Self::spawn(binary, server, plugins, Some(cache_dir), env, args)
    }

    fn spawn(
        binary: &Path,
        server: &DevServer,
        plugins: &Path,
        cache_dir: Option<&Path>,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> anyhow::Result<Self> {
        let artifacts = tempfile::tempdir()?;
        let task_queue = unique("tq");
        let cache_dir: &Path = cache_dir.unwrap_or_else(|| compile_cache());
        let child = Self::command(
            binary,
            server,
            plugins,
            &task_queue,
            artifacts.path(),
            cache_dir,
            env,
            args,
        )?;
        Ok(Self {
            task_queue,
            artifacts: Arc::new(artifacts),
            child,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn command(
        binary: &Path,
        server: &DevServer,
        plugins: &Path,
        task_queue: &str,
        artifacts: &Path,
        cache_dir: &Path,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> anyhow::Result<Child> {
        let mut command = Command::new(binary);
        command
            .arg("run")
            .arg("--plugins-dir")
            .arg(plugins)
            .arg("--artifacts-dir")
            .arg(artifacts)
            .args(["--task-queue", task_queue, "--address", &server.address])
            .arg("--cache-dir")
            .arg(cache_dir)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        spawn_tied(command, libc::SIGKILL).with_context(|| format!("starting {}", binary.display()))
    }

    /// The worker's process id, for reading what it uses from the OS ([`proc_stats`]).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (it has not exited, for any reason).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM, as a service manager stopping the worker would.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends SIGHUP, as `systemctl reload` would: the worker re-reads its configuration.
    pub fn reload(&self) {
        self.signal("HUP");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit, up to `limit`.
    pub async fn exit_status(
        &mut self,
        limit: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let child = &mut self.child;
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("the worker did not exit within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Releases a testkit `wait_for_file` step of workflow `workflow_id` waiting for
/// `/artifacts/<name>`: creates that file, holding `content`, in the workflow's directory under
/// the worker's artifacts root `artifacts`. Renamed into place, so it is never read half-written.
pub fn release(artifacts: &Path, workflow_id: &str, name: &str, content: &str) {
    let dir = artifacts.join(mlx_runtime::sandbox::workflow_dir_name(workflow_id));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, content).unwrap_or_else(|e| panic!("writing {}: {e}", tmp.display()));
    std::fs::rename(&tmp, dir.join(name)).unwrap_or_else(|e| panic!("releasing {name}: {e}"));
}

/// Whether a pending activity of `workflow_id` has heartbeated: its plugin is running.
pub async fn activity_heartbeating(server: &DevServer, workflow_id: &str) -> anyhow::Result<bool> {
    let client = server.client().await?;
    let handle = client.get_workflow_handle::<mlx_worker::temporal::RunPluginWorkflow>(workflow_id);
    let description = handle
        .describe(temporalio_client::WorkflowDescribeOptions::default())
        .await?;
    Ok(description
        .raw_description
        .pending_activities
        .iter()
        .any(|a| a.last_heartbeat_time.is_some()))
}

/// The heartbeat details (JSON) the server holds for the pending activity `activity_id` of
/// `workflow_id` (a pipeline's step id): what its next attempt would be given. None while it
/// has not heartbeated, or is not pending.
pub async fn pending_heartbeat(
    server: &DevServer,
    workflow_id: &str,
    activity_id: &str,
) -> anyhow::Result<Option<Value>> {
    let client = server.client().await?;
    let handle = client.get_workflow_handle::<mlx_worker::temporal::RunPluginWorkflow>(workflow_id);
    let description = handle
        .describe(temporalio_client::WorkflowDescribeOptions::default())
        .await?;
    let details = description
        .raw_description
        .pending_activities
        .iter()
        .find(|a| a.activity_id == activity_id)
        .and_then(|a| a.heartbeat_details.as_ref())
        .and_then(|d| d.payloads.first())
        .map(|p| serde_json::from_slice(&p.data))
        .transpose()?;
    Ok(details)
}

/// A GET on loopback with a plain HTTP/1.0 request; returns status code and body.
pub async fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// In Prometheus text `text`, the sum of `name`'s series whose labels contain `filter`, or
/// None if it has none. A name matches only whole (`name{` or `name `), so `_total` does not
/// catch `_total_bucket`.
pub fn metric(text: &str, name: &str, filter: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) || !rest.contains(filter) {
            continue;
        }
        if let Some(v) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// All the text in `events`, with every payload's base64 `data` decoded: what someone reading
/// the history would see. For checks that something (a secret) is *not* in it.
pub fn history_text(events: &[Value]) -> String {
    use base64::Engine;
    fn walk(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    if let (Some(data), true) = (v.as_str(), key == "data") {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(data)
                            .unwrap_or_default();
                        out.push_str(&String::from_utf8_lossy(&bytes));
                        out.push('\n');
                    }
                    walk(v, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            _ => {}
        }
    }
    let mut out = String::new();
    events.iter().for_each(|e| walk(e, &mut out));
    out
}

/// One invocation as a first attempt of activity 1 of `workflow_id`, with signals nobody
/// cancels: the common case of the sandbox-level tests.
pub async fn invoke_once(
    runtime: &PluginHost,
    plugin: &mlx_runtime::plugin::LoadedPlugin,
    operation: &str,
    input: &Value,
    workflow_id: &str,
) -> Result<mlx_runtime::Invocation, mlx_runtime::failure::InvocationError> {
    let (signals, _) = mlx_runtime::sandbox::capabilities::activity::ActivitySignals::new(
        tokio_util::sync::CancellationToken::new(),
    );
    let ctx = mlx_runtime::contract::InvocationContext {
        workflow_id: workflow_id.into(),
        activity_id: "1".into(),
        attempt: 1,
        last_heartbeat_details: None,
    };
    runtime
        .invoke(plugin, operation, input, &ctx, signals, None)
        .await
}

/// Polls `probe` until it returns `Some`, or fails after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A finished command's stdout and stderr together, for assertions on what a person saw.
pub fn printed(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The workflow's history as JSON events.
pub async fn history<W: HasWorkflowDefinition>(
    handle: &WorkflowHandle<Client, W>,
) -> anyhow::Result<Vec<Value>> {
    let bytes = handle
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .to_json()
        .await?;
    let history: Value = serde_json::from_slice(&bytes)?;
    Ok(history["events"].as_array().cloned().unwrap_or_default())
}

/// The history of a `RunPluginWorkflow` by id, whether or not it has finished.
pub async fn history_of(server: &DevServer, workflow_id: &str) -> anyhow::Result<Vec<Value>> {
    let client = server.client().await?;
    history(&client.get_workflow_handle::<mlx_worker::temporal::RunPluginWorkflow>(workflow_id))
        .await
}

/// The attributes of every event of one type, e.g. `"ActivityTaskStarted"`.
pub fn events<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    let key = format!("{kind}EventAttributes");
    events
        .iter()
        .filter_map(|e| e["attributes"].get(&key))
        .collect()
}

/// The first value under `key` anywhere inside `value` (depth first): history JSON nests
/// oneofs (e.g. a failure's info) under type-named keys.
pub fn find<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map
            .get(key)
            .or_else(|| map.values().find_map(|v| find(v, key))),
        Value::Array(items) => items.iter().find_map(|v| find(v, key)),
        _ => None,
    }
}

/// Runs one step through `RunPluginWorkflow` and returns its result (or the failure, as text)
/// and its history.
pub async fn run_step(
    server: &DevServer,
    worker: &TestWorker,
    id: &str,
    step: Value,
) -> anyhow::Result<(Result<Value, String>, Vec<Value>)> {
    run_step_on(server, &worker.task_queue, id, step).await
}

/// [`run_step`] for any worker polling `task_queue`, e.g. a [`WorkerProcess`].
pub async fn run_step_on(
    server: &DevServer,
    task_queue: &str,
    id: &str,
    step: Value,
) -> anyhow::Result<(Result<Value, String>, Vec<Value>)> {
    let client = server.client().await?;
    let handle = client
        .start_workflow(
            mlx_worker::temporal::RunPluginWorkflow::run,
            mlx_worker::temporal::payload::json_input(&step),
            WorkflowStartOptions::new(task_queue.to_string(), id.to_string()).build(),
        )
        .await?;
    let result = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .map_err(|e| format!("{e:?}"));
    Ok((result, history(&handle).await?))
}

/// The failure of the only activity attempt in a history, asserting there was exactly one.
pub fn single_failed_attempt(events_: &[Value]) -> Value {
    let started = events(events_, "ActivityTaskStarted");
    assert_eq!(
        started.len(),
        1,
        "expected exactly one attempt: {events_:#?}"
    );
    assert_eq!(started[0]["attempt"], 1);
    let failed = events(events_, "ActivityTaskFailed");
    assert_eq!(failed.len(), 1, "{events_:#?}");
    failed[0]["failure"].clone()
}
