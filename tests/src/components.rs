//! Components built outside cargo (`make plugins`, `make python-plugins`, `make js-plugins`)
//! and what the tests do with them the same way for every language: check the build is
//! current, time invocations, run `mlx-worker plugin invoke` and read its log.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use mlx_runtime::{
    HostSettings, PluginHost,
    contract::{InvocationContext, JsonText},
    failure::InvocationError,
    observer::{Observer, Outcome, ReloadResult},
    plugin::LoadedPlugin,
    sandbox::capabilities::activity::ActivitySignals,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::{compile_cache, host_settings, worker_binary, workspace_root};

/// `bytes` of a component with a custom section (`mlx-rebuild`, holding `tag`) appended: the
/// same code and behaviour under another digest, as a rebuilt plugin would be.
pub fn rebuilt(mut bytes: Vec<u8>, tag: &str) -> Vec<u8> {
    let name = b"mlx-rebuild";
    // Section id 0, its size, then the name's length, the name and the payload; every size is
    // below 128, so each LEB128 is one byte.
    let size = 1 + name.len() + tag.len();
    assert!(size < 128, "tag too long for a one-byte LEB128 size: {tag}");
    bytes.extend_from_slice(&[0, size as u8, name.len() as u8]);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(tag.as_bytes());
    bytes
}

/// Writes `bytes` to `dir/file` the recommended way: a hidden temporary file renamed into
/// place, so a watcher sees one complete file.
pub fn drop_in(dir: &Path, file: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, bytes).unwrap_or_else(|e| panic!("{}: {e}", tmp.display()));
    std::fs::rename(&tmp, dir.join(file)).unwrap_or_else(|e| panic!("renaming {file}: {e}"));
}

/// The built component `name` ([`crate::components`]) [`rebuilt`] with `tag`.
pub fn variant(name: &str, tag: &str) -> Vec<u8> {
    let path = crate::components().join(format!("{name}.wasm"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    rebuilt(bytes, tag)
}

/// Newest modification time of the files directly in `dir` with one of `extensions`.
fn newest(dir: &Path, extensions: &[&str]) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let matches = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| extensions.contains(&e));
        if matches {
            newest = newest.max(std::fs::metadata(&path).unwrap().modified().unwrap());
        }
    }
    newest
}

/// `file` (relative to the repository), checked to exist and to be newer than its sources:
/// the files with `extensions` in each of `sources` (relative directories) and the WIT
/// contract. The tests do not build it (that needs the pinned toolchains of `tools/`): they
/// fail, naming `build`, when it is missing or stale.
pub fn built_component(file: &str, sources: &[&str], extensions: &[&str], build: &str) -> PathBuf {
    let root = workspace_root();
    let path = root.join(file);
    let built = match std::fs::metadata(&path) {
        Ok(meta) => meta.modified().unwrap(),
        Err(e) => panic!("{} is missing ({e}): run `{build}`", path.display()),
    };
    let source = sources
        .iter()
        .map(|dir| newest(&root.join(dir), extensions))
        .chain([newest(&root.join("wit"), &["wit"])])
        .max()
        .unwrap();
    assert!(
        built >= source,
        "{} is older than its sources: run `{build}`",
        path.display()
    );
    path
}

/// Instantiation time, call time and peak guest memory of each invocation, as the runtime
/// observed them (printed with `--nocapture`).
#[derive(Default)]
pub struct Timings(pub Mutex<Vec<Timing>>);

/// Instantiation, whole invocation, peak guest memory (bytes).
pub type Timing = (Option<Duration>, Duration, Option<usize>);

impl Observer for Timings {
    fn invocation(&self, outcome: &Outcome<'_>) {
        self.0.lock().unwrap().push((
            outcome.instantiation,
            outcome.duration,
            outcome.peak_memory_bytes,
        ));
    }

    fn reload(&self, _: ReloadResult) {}
}

/// `mlx-worker plugin invoke WASM OPERATION INPUT` with the guest's log at info, as a plugin
/// author runs it; asserts it succeeded. Returns the output and the worker's log.
pub fn invoke_logged(
    wasm: &Path,
    operation: &str,
    input: &str,
    artifacts: &Path,
) -> (Value, String) {
    let out = Command::new(worker_binary())
        .env("RUST_LOG", "warn,mlx_worker::guest=info")
        .env("MLX_CACHE_DIR", compile_cache())
        .args(["plugin", "invoke"])
        .arg(wasm)
        .args([operation, input, "--artifacts-dir"])
        .arg(artifacts)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    let output = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("output is not JSON ({e}): {log}"));
    (output, log)
}

/// The plugin's log line saying `message`, checked to be a guest log call (not stderr) in the
/// worker's own log.
pub fn guest_log_line<'a>(log: &'a str, message: &str) -> &'a str {
    let line = log
        .lines()
        .find(|l| l.contains(message))
        .unwrap_or_else(|| panic!("no guest log line {message:?} in: {log}"));
    assert!(
        line.contains("mlx_worker::guest") && line.contains(r#"stream="log""#),
        "{line}"
    );
    line
}

/// Removes from `command` the variables `cargo test` gives this process (CARGO_MANIFEST_DIR,
/// CARGO_PKG_*, ...): they describe the test package, and a cargo the command runs would take
/// them for its own (ring's build script, for one, reruns when CARGO_MANIFEST_DIR changes).
pub fn without_cargo_test_env(command: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let from_cargo_test = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|prefix| key.starts_with(prefix))
            || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"].contains(&&*key);
        if from_cargo_test {
            command.env_remove(&*key);
        }
    }
    command
}

/// Compiles of large components (interpreters inside), one at a time: a debug-built compile
/// takes seconds to tens of seconds of both cores, so the first test compiles each into the
/// run's cache and the others find it there.
pub async fn one_compile_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOADING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOADING.lock().await
}

/// One component in an in-process host of its own: a plugins directory holding the file (and
/// its manifest, if any), an artifacts root, and the observer's timings of each invocation.
pub struct Hosted {
    pub runtime: Arc<PluginHost>,
    pub plugin: LoadedPlugin,
    pub timings: Arc<Timings>,
    /// The workflow id every invocation presents (its `/artifacts` is [`Hosted::artifacts`]).
    pub workflow_id: String,
    artifacts: tempfile::TempDir,
    _plugins: tempfile::TempDir,
}

impl Hosted {
    /// Loads `wasm` as `NAME.wasm`, with `manifest` as `NAME.toml` when given.
    pub async fn load(wasm: &Path, name: &str, manifest: Option<&str>) -> Self {
        let plugins = tempfile::tempdir().unwrap();
        let file = plugins.path().join(format!("{name}.wasm"));
        std::fs::copy(wasm, &file).unwrap();
        if let Some(manifest) = manifest {
            std::fs::write(plugins.path().join(format!("{name}.toml")), manifest).unwrap();
        }
        let artifacts = tempfile::tempdir().unwrap();
        let timings = Arc::new(Timings::default());
        let runtime = PluginHost::new(HostSettings {
            artifacts_dir: Some(artifacts.path().to_path_buf()),
            observer: Some(timings.clone()),
            ..host_settings()
        })
        .unwrap();
        let _one_at_a_time = one_compile_at_a_time().await;
        let plugin = runtime
            .load(&file)
            .await
            .unwrap_or_else(|e| panic!("loading {}: {e}", wasm.display()));
        Self {
            runtime,
            plugin,
            timings,
            workflow_id: format!("wf-{name}"),
            artifacts,
            _plugins: plugins,
        }
    }

    /// The host directory behind the invocations' `/artifacts`.
    pub fn artifacts(&self) -> PathBuf {
        let dir = self
            .artifacts
            .path()
            .join(mlx_runtime::sandbox::workflow_dir_name(&self.workflow_id));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Runs `operation` as attempt 1; returns how it ended and the latest heartbeat.
    pub async fn invoke(
        &self,
        operation: &str,
        input: Value,
    ) -> (Result<Value, InvocationError>, Option<Value>) {
        let (result, mut heartbeats) = self.invoke_attempt(operation, input, 1, None).await;
        (result, heartbeats.pop())
    }

    /// Runs `operation` as attempt `attempt`, given the previous attempt's last heartbeat;
    /// returns how it ended and every heartbeat the host forwarded, oldest first.
    pub async fn invoke_attempt(
        &self,
        operation: &str,
        input: Value,
        attempt: u32,
        last_heartbeat: Option<Value>,
    ) -> (Result<Value, InvocationError>, Vec<Value>) {
        let (signals, mut beats) = ActivitySignals::new(CancellationToken::new());
        let ctx = InvocationContext {
            workflow_id: self.workflow_id.clone(),
            activity_id: "1".into(),
            attempt,
            last_heartbeat_details: last_heartbeat.as_ref().map(JsonText::from),
        };
        // Heartbeats are coalesced into a watch channel: collect each distinct one as it comes.
        let collect = async {
            let mut seen = Vec::new();
            while beats.changed().await.is_ok() {
                if let Some(details) = beats.borrow_and_update().as_ref() {
                    seen.push(details.to_value());
                }
            }
            seen
        };
        let invoke = self
            .runtime
            .invoke(&self.plugin, operation, &input, &ctx, signals, None);
        let (result, heartbeats) = tokio::join!(invoke, collect);
        (result.map(|done| done.output), heartbeats)
    }
}
