//! The plugin author's inner loop: `mlx-worker plugin invoke|describe` with no Temporal server.

use std::process::{Command, Output};

use mlx_e2e::{PluginsDir, components, worker_binary};
use serde_json::Value;

/// The worker binary with the run's compile cache: each component compiles once per run, not
/// once per command.
fn mlx_worker() -> Command {
    let mut cmd = Command::new(worker_binary());
    cmd.env("RUST_LOG", "warn")
        .env("MLX_CACHE_DIR", mlx_e2e::compile_cache());
    cmd
}

trait Succeeds {
    /// Runs the command to completion, failing the test (with its stderr) unless it exits 0.
    fn succeeds(&mut self) -> Output;
}

impl Succeeds for Command {
    fn succeeds(&mut self) -> Output {
        let out = self.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

#[test]
fn invoke_runs_one_operation_and_prints_json() {
    let artifacts = tempfile::tempdir().unwrap();
    let out = mlx_worker()
        .args(["plugin", "invoke"])
        .arg(components().join("testkit.wasm"))
        .args(["checkpoint", r#"{"steps": 2, "fail_attempts": 0}"#])
        .arg("--artifacts-dir")
        .arg(artifacts.path())
        .succeeds();
    let output: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(output["completed_steps"], 2);
    // Heartbeats are shown to the author as they happen.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(r#"heartbeat: {"step":2}"#), "{stderr}");
}

#[test]
fn invoke_reports_a_classified_failure_and_exits_non_zero() {
    let artifacts = tempfile::tempdir().unwrap();
    let out = mlx_worker()
        .args(["plugin", "invoke"])
        .arg(components().join("csv.wasm"))
        .args([
            "extract_data",
            r#"{"source": "/data/missing.csv", "target": "t"}"#,
        ])
        .arg("--artifacts-dir")
        .arg(artifacts.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let report: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(report["type"], "SourceNotFound", "{report:#}");
    assert_eq!(report["retryable"], false);
}

#[test]
fn describe_prints_operations_with_schemas() {
    let out = mlx_worker()
        .args(["plugin", "describe"])
        .arg(components().join("trainer.wasm"))
        .succeeds();
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["name"], "trainer");
    let op = &info["operations"][0];
    assert_eq!(op["name"], "train_model");
    let schema: Value = serde_json::from_str(op["input_schema"].as_str().unwrap()).unwrap();
    assert!(schema["properties"]["train"].is_object(), "{schema:#}");
}

#[test]
fn guest_stdout_stderr_and_logs_go_to_the_worker_log_not_its_stdout() {
    let artifacts = tempfile::tempdir().unwrap();
    let out = mlx_worker()
        .env("RUST_LOG", "info")
        .args(["plugin", "invoke"])
        .arg(components().join("testkit.wasm"))
        .args(["log", r#"{"lines": 2}"#])
        .arg("--artifacts-dir")
        .arg(artifacts.path())
        .succeeds();
    // stdout holds exactly the output JSON.
    let output: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(output["lines"], 2);
    let log = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "testkit: stdout line",
        "testkit: stderr line",
        "testkit log line",
    ] {
        assert!(
            log.contains(expected),
            "{expected:?} missing from the log:\n{log}"
        );
    }
    assert!(
        log.contains(r#"stream="stderr""#) && log.contains(r#"stream="log""#),
        "{log}"
    );
}

#[test]
fn secrets_never_reach_the_worker_log() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        components().join("testkit.wasm"),
        dir.path().join("testkit.wasm"),
    )
    .unwrap();
    std::fs::write(dir.path().join("token.txt"), "tok-9f8e7d").unwrap();
    std::fs::write(
        dir.path().join("testkit.toml"),
        "[secrets]\napi_token = { file = \"token.txt\" }\n",
    )
    .unwrap();
    let out = mlx_worker()
        .env("RUST_LOG", "mlx_worker=trace,mlx_runtime=trace")
        .args(["plugin", "invoke"])
        .arg(dir.path().join("testkit.wasm"))
        .args(["grants", r#"{"secrets": ["api_token"]}"#])
        .arg("--artifacts-dir")
        .arg(dir.path().join("artifacts"))
        .succeeds();
    // The (test-only) plugin returns it, so it did arrive ...
    assert!(String::from_utf8_lossy(&out.stdout).contains("tok-9f8e7d"));
    // ... but even trace-level worker logs only name it.
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("api_token"),
        "the read is logged by name:\n{log}"
    );
    assert!(
        !log.contains("tok-9f8e7d"),
        "secret value leaked into the log:\n{log}"
    );
}

#[test]
fn inspect_shows_imports_exports_and_grants() {
    let ok = mlx_worker()
        .args(["plugin", "inspect"])
        .arg(components().join("testkit.wasm"))
        .succeeds();
    let report = String::from_utf8_lossy(&ok.stdout);
    for expected in [
        "plugin:    testkit 0.1.0",
        "import  mlx:plugin/activity@0.1.0  granted",
        "export  mlx:plugin/plugin@0.1.0",
        "manifest:  none",
        "verdict:   loads",
    ] {
        assert!(report.contains(expected), "{expected:?} missing:\n{report}");
    }
    // Outbound HTTP without an [http] table: the import is linked, its calls denied.
    let probe = mlx_worker()
        .args(["plugin", "inspect"])
        .arg(components().join("http_probe.wasm"))
        .succeeds();
    let report = String::from_utf8_lossy(&probe.stdout);
    assert!(
        report.contains("denied at call: outbound HTTP is not granted: add [http] allow"),
        "{report}"
    );
    assert!(report.contains("verdict:   loads"), "{report}");
}

/// Without `--cache-dir` or `MLX_CACHE_DIR`, plugin commands keep compiled components in the
/// user's cache directory, so the second command on a file compiles nothing; `--no-cache`
/// keeps nothing.
#[test]
fn plugin_commands_cache_compiled_components_per_user_by_default() {
    let home = tempfile::tempdir().unwrap();
    let validate = |extra: &[&str]| {
        Command::new(worker_binary())
            .env_remove("MLX_CACHE_DIR")
            .env_remove("XDG_CACHE_HOME")
            .env("HOME", home.path())
            .env("RUST_LOG", "warn")
            .args(["plugin", "validate"])
            .args(extra)
            .arg(components().join("testkit.wasm"))
            .succeeds()
    };
    let cache = home.path().join(".cache/mlx-worker");
    validate(&["--no-cache"]);
    assert!(!cache.exists(), "--no-cache keeps nothing");
    validate(&[]);
    // The artifacts, each with its inode and when it was written: a second compile renames a
    // new file into place. Sidecars are left out: a hit touches its sidecar on purpose, to
    // mark the entry used for the cache's size limit.
    let written = || -> Vec<(std::path::PathBuf, u64, std::time::SystemTime)> {
        use std::os::unix::fs::MetadataExt;
        let mut entries: Vec<_> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .map(|e| {
                let meta = e.metadata().unwrap();
                (e.path(), meta.ino(), meta.modified().unwrap())
            })
            .collect();
        entries.sort();
        entries
    };
    let first = written();
    assert!(!first.is_empty(), "nothing cached in {}", cache.display());
    validate(&[]);
    assert_eq!(written(), first, "the second command compiled again");
}

#[test]
fn inspect_says_why_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let netty = dir.path().join("netty.wasm");
    let component = wat::parse_str(
        r#"(component (import "acme:vault/open@1.0.0" (instance (export "open" (func)))))"#,
    )
    .unwrap();
    std::fs::write(&netty, component).unwrap();
    let refused = mlx_worker()
        .args(["plugin", "inspect"])
        .arg(&netty)
        .output()
        .unwrap();
    assert_eq!(
        refused.status.code(),
        Some(2),
        "the report is printed, and the status says it would not load"
    );
    let report = String::from_utf8_lossy(&refused.stdout);
    assert!(
        report.contains("acme:vault/open@1.0.0  REFUSED: not an interface this worker provides"),
        "{report}"
    );
    assert!(report.contains("verdict:   refused"), "{report}");
}

#[test]
fn guest_log_lines_over_the_rate_are_dropped_with_one_warning() {
    let plugins = PluginsDir::with(&["hostile"]);
    plugins.write_manifest("hostile", "[limits]\nlog_lines_per_sec = 5\n");
    let start = std::time::Instant::now();
    let out = mlx_worker()
        .env("RUST_LOG", "info")
        .args(["plugin", "invoke"])
        .arg(plugins.path().join("hostile.wasm"))
        .args(["log_flood", r#"{"lines": 200, "line_bytes": 16}"#])
        .output()
        .unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // 400 lines offered (log import and stdout): a burst of 5, then 5 a second.
    let written = stderr.matches(&"L".repeat(16)).count();
    let bound = 5 + (5.0 * elapsed).ceil() as usize;
    assert!(
        (1..=bound).contains(&written),
        "{written} lines written in {elapsed:.2} s"
    );
    assert_eq!(
        stderr.matches("exceeded its log rate").count(),
        1,
        "{stderr}"
    );
}

/// testkit and csv, and a file that is no component.
fn with_a_broken_file() -> PluginsDir {
    let plugins = PluginsDir::with(&["testkit", "csv"]);
    std::fs::write(plugins.path().join("broken.wasm"), b"\0asm not really").unwrap();
    plugins
}

fn testkit_digest(plugins: &PluginsDir) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(plugins.path().join("testkit.wasm")).unwrap();
    format!("sha256:{:x}", sha2::Sha256::digest(&bytes))
}

#[test]
fn list_shows_what_loads_and_fails_on_a_refused_file() {
    let plugins = with_a_broken_file();
    let out = mlx_worker()
        .args(["plugin", "list", "--json", "--plugins-dir"])
        .arg(plugins.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a refused file makes list fail");
    let rows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    let testkit = rows.iter().find(|r| r["name"] == "testkit").unwrap();
    assert_eq!(testkit["digest"], testkit_digest(&plugins));
    assert_eq!(testkit["version"], "0.1.0");
    let broken = rows.iter().find(|r| r["refused"].is_string()).unwrap();
    assert!(broken["file"].as_str().unwrap().ends_with("broken.wasm"));
}

#[test]
fn validate_prints_the_digest_of_a_good_file_and_refuses_a_broken_one() {
    let plugins = with_a_broken_file();
    let digest = testkit_digest(&plugins);
    let ok = mlx_worker()
        .args(["plugin", "validate"])
        .arg(plugins.path().join("testkit.wasm"))
        .succeeds();
    assert!(String::from_utf8_lossy(&ok.stdout).contains(&digest));
    let refused = mlx_worker()
        .args(["plugin", "validate"])
        .arg(plugins.path().join("csv.wasm"))
        .arg(plugins.path().join("broken.wasm"))
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let text = String::from_utf8_lossy(&refused.stdout);
    assert!(
        text.contains("ok ") && text.contains("REFUSED") && text.contains("broken.wasm"),
        "{text}"
    );
}

/// `plugin invoke OPERATION INPUT` on the testkit with `manifest`, logging at info.
fn invoke_testkit_logging(manifest: &str, operation: &str, input: &serde_json::Value) -> String {
    let plugins = PluginsDir::with(&["testkit"]);
    plugins.write_manifest("testkit", manifest);
    let artifacts = tempfile::tempdir().unwrap();
    let out = mlx_worker()
        .env("RUST_LOG", "info")
        .args(["plugin", "invoke"])
        .arg(plugins.path().join("testkit.wasm"))
        .args([operation, &input.to_string()])
        .arg("--artifacts-dir")
        .arg(artifacts.path())
        .succeeds();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn guest_text_cannot_forge_a_worker_log_line_or_make_one_longer_than_the_cap() {
    let forged = "1999-01-01T00:00:00.000000Z ERROR mlx_worker::daemon: forged";
    let input = serde_json::json!({
        "lines": 1,
        "message": format!("ok\n{forged}\r{}", "x".repeat(49_000)),
        "stdout": format!("out\r{forged} by stdout\n"),
    });
    let log = invoke_testkit_logging("", "log", &input);
    for line in log.lines() {
        assert!(!line.starts_with("1999"), "a forged line:\n{line}");
        assert!(
            !line.contains('\r'),
            "a carriage return reached the log: {line:?}"
        );
        assert!(line.len() < 12 << 10, "a {} byte line", line.len());
    }
    assert!(log.contains(&format!("ok\\n{forged}\\r")), "{log}");
    assert!(log.contains(&format!("out\\r{forged} by stdout")), "{log}");
    assert!(log.contains("bytes cut)"), "{log}");
}

#[test]
fn empty_log_fields_are_charged_to_the_log_budget() {
    // 100 lines × 1000 empty fields: 400 KB charged against a 64 KiB budget.
    let input = serde_json::json!({"lines": 100, "empty_fields": 1000});
    let log = invoke_testkit_logging("[limits]\nmax_log_kb = 64\n", "log", &input);
    let written = log.matches("testkit log line").count();
    assert!(
        (1..=16).contains(&written),
        "{written} lines written:\n{log}"
    );
    assert!(log.contains("exceeded its log budget"), "{log}");
    assert!(log.contains("more fields)"), "{log}");
}

#[test]
fn an_oversized_self_description_is_refused_at_load_in_a_few_lines() {
    let plugins = PluginsDir::with(&["hostile"]);
    plugins.write_manifest("hostile", "[env]\nHOSTILE_DECOY_OPERATIONS = \"2000\"\n");
    let refused = mlx_worker()
        .args(["plugin", "validate"])
        .arg(plugins.path().join("hostile.wasm"))
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let text = mlx_e2e::printed(&refused);
    assert!(text.contains("operations; at most 256"), "{text}");
    assert!(text.len() < 4096, "{} bytes of output", text.len());
}
