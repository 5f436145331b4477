use std::hint::black_box;
use std::time::{Duration, Instant};

use mlx_plugin_sdk::{Context, ErrorKind, PluginError, log};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The previous attempt's heartbeat details as JSON (kept as a string if not JSON), or null.
fn last_heartbeat_value(ctx: &Context) -> Value {
    match ctx.last_heartbeat_raw() {
        None => Value::Null,
        Some(raw) => serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned())),
    }
}

pub fn echo(input: Value, ctx: &Context) -> Value {
    json!({
        "input": input,
        "workflow_id": ctx.workflow_id(),
        "activity_id": ctx.activity_id(),
        "attempt": ctx.attempt(),
        "last_heartbeat_details": last_heartbeat_value(ctx),
    })
}

/// Burns CPU forever without calling the host, so only the host's deadline or forced
/// interruption (epoch/fuel) can stop it. `black_box` keeps the optimizer from proving the
/// loop side-effect free.
pub fn spin() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitForCancel {
    #[serde(default = "default_max_beats")]
    max_beats: u64,
    #[serde(default = "default_interval_ms")]
    interval_ms: u64,
}

fn default_max_beats() -> u64 {
    100_000
}

fn default_interval_ms() -> u64 {
    50
}

pub fn wait_for_cancel(input: WaitForCancel, ctx: &Context) -> Result<Value, PluginError> {
    let mut beats: u64 = 0;
    while beats < input.max_beats {
        beats += 1;
        if ctx.heartbeat(&json!({ "beats": beats })) || ctx.is_cancelled() {
            return Err(PluginError::cancelled(format!(
                "observed cancellation after {beats} heartbeats"
            ))
            .with_details(json!({ "beats": beats })));
        }
        std::thread::sleep(Duration::from_millis(input.interval_ms));
    }
    Ok(json!({ "beats": beats }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitForFile {
    path: String,
    #[serde(default = "default_wait_timeout_ms")]
    timeout_ms: u64,
    #[serde(default = "default_interval_ms")]
    interval_ms: u64,
}

fn default_wait_timeout_ms() -> u64 {
    300_000
}

/// Heartbeats until the file at `path` exists (then returns its text), cancellation is
/// requested, or `timeout_ms` passes: a step that runs exactly until the test releases it by
/// creating the file (under `/artifacts`, the workflow's artifacts directory on the host).
pub fn wait_for_file(input: WaitForFile, ctx: &Context) -> Result<Value, PluginError> {
    let start = Instant::now();
    let timeout = Duration::from_millis(input.timeout_ms);
    let mut beats: u64 = 0;
    loop {
        match std::fs::read_to_string(&input.path) {
            Ok(content) => {
                return Ok(json!({ "path": input.path, "content": content, "beats": beats }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(PluginError::permanent(
                    "FileUnreadable",
                    format!("{}: {e}", input.path),
                ));
            }
        }
        if start.elapsed() >= timeout {
            return Err(PluginError::permanent(
                "WaitTimedOut",
                format!(
                    "{} did not appear within {} ms",
                    input.path, input.timeout_ms
                ),
            )
            .with_details(json!({ "beats": beats })));
        }
        beats += 1;
        if ctx.heartbeat(&json!({ "waiting_for": input.path, "beats": beats }))
            || ctx.is_cancelled()
        {
            return Err(PluginError::cancelled(format!(
                "cancelled waiting for {} after {beats} heartbeats",
                input.path
            ))
            .with_details(json!({ "beats": beats })));
        }
        std::thread::sleep(Duration::from_millis(input.interval_ms));
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    #[serde(default = "default_steps")]
    steps: u32,
    #[serde(default = "default_fail_attempts")]
    fail_attempts: u32,
}

fn default_steps() -> u32 {
    3
}

fn default_fail_attempts() -> u32 {
    1
}

#[derive(Serialize, Deserialize)]
struct Step {
    step: u32,
}

/// Heartbeats one checkpoint per step, resuming after the previous attempt's last step, then
/// fails while `attempt <= fail_attempts` so the host's retry and resume path can be checked.
pub fn checkpoint(input: Checkpoint, ctx: &Context) -> Result<Value, PluginError> {
    let start = ctx
        .last_heartbeat::<Step>()
        .map_or(1, |s| s.step.saturating_add(1));
    let mut steps_run = 0;
    for step in start..=input.steps {
        if ctx.heartbeat(&Step { step }) {
            return Err(PluginError::cancelled(format!("cancelled at step {step}")));
        }
        steps_run += 1;
    }
    let attempt = ctx.attempt();
    if attempt <= input.fail_attempts {
        return Err(PluginError::retryable(
            "InjectedFailure",
            format!(
                "attempt {attempt} fails on purpose (fail_attempts = {})",
                input.fail_attempts
            ),
        )
        .with_details(json!({ "attempt": attempt, "steps_run": steps_run })));
    }
    Ok(json!({
        "attempt": attempt,
        "resumed_from": last_heartbeat_value(ctx),
        "completed_steps": input.steps,
        "steps_run": steps_run,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum FailKind {
    InvalidInput,
    Retryable,
    Permanent,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fail {
    kind: FailKind,
    #[serde(default = "default_fail_type")]
    type_name: String,
    #[serde(default = "default_fail_message")]
    message: String,
    #[serde(default)]
    details: Option<Value>,
    /// The message this many times over: an error larger than Temporal accepts.
    #[serde(default = "one")]
    repeat: usize,
}

fn one() -> usize {
    1
}

fn default_fail_type() -> String {
    "InjectedFailure".into()
}

fn default_fail_message() -> String {
    "failure requested by the caller".into()
}

pub fn fail(input: Fail) -> PluginError {
    let kind = match input.kind {
        FailKind::InvalidInput => ErrorKind::InvalidInput,
        FailKind::Retryable => ErrorKind::Retryable,
        FailKind::Permanent => ErrorKind::Permanent,
    };
    let error = PluginError::new(kind, input.type_name, input.message.repeat(input.repeat));
    match input.details {
        Some(details) => error.with_details(details),
        None => error,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Panic {
    #[serde(default = "default_panic_message")]
    message: String,
}

fn default_panic_message() -> String {
    "panic requested by the caller".into()
}

pub fn panic(input: Panic) -> ! {
    panic!("{}", input.message)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alloc {
    mb: u32,
}

/// Allocates and writes `mb` MiB so the pages are really committed. An allocation beyond the
/// host's memory limit aborts the instance (a trap), which is the behaviour under test.
pub fn alloc(input: Alloc) -> Result<Value, PluginError> {
    let bytes = usize::try_from(input.mb)
        .ok()
        .and_then(|mb| mb.checked_mul(1 << 20))
        .ok_or_else(|| {
            PluginError::invalid_input(
                "InvalidParameter",
                format!("mb = {} exceeds this platform's address space", input.mb),
            )
        })?;
    let buffer = vec![0xA5u8; bytes];
    black_box(&buffer);
    Ok(json!({ "allocated_mb": input.mb }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    #[serde(default = "default_lines")]
    lines: u32,
    /// The message of each line, for tests of what the host does with guest text.
    #[serde(default = "default_message")]
    message: String,
    /// Fields with empty keys and values added to each line: each must still cost budget.
    #[serde(default)]
    empty_fields: u32,
    /// Written to stdout as is, in place of the usual stdout line.
    #[serde(default)]
    stdout: Option<String>,
}

fn default_message() -> String {
    "testkit log line".into()
}

fn default_lines() -> u32 {
    1
}

pub fn log(input: Log) -> Value {
    let empty: &dyn std::fmt::Display = &"";
    for line in 1..=input.lines {
        let mut fields: Vec<(&str, &dyn std::fmt::Display)> =
            vec![("line", &line), ("of", &input.lines)];
        fields.extend((0..input.empty_fields).map(|_| ("", empty)));
        log::info(&input.message, &fields);
    }
    match &input.stdout {
        Some(text) => print!("{text}"),
        None => println!("testkit: stdout line"),
    }
    eprintln!("testkit: stderr line");
    json!({ "lines": input.lines })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_fails_then_resumes_after_last_step() {
        let input = || Checkpoint {
            steps: 3,
            fail_attempts: 1,
        };
        let first = Context::detached(1, None);
        let err = checkpoint(input(), &first).unwrap_err();
        assert_eq!(err.type_name, "InjectedFailure");
        assert_eq!(first.recorded_heartbeats().len(), 3);

        let second = Context::detached(2, Some(r#"{"step":3}"#));
        let out = checkpoint(input(), &second).unwrap();
        assert_eq!(out["resumed_from"], json!({"step": 3}));
        assert_eq!(out["steps_run"], 0);
        assert!(second.recorded_heartbeats().is_empty());
    }

    #[test]
    fn wait_for_cancel_stops_on_cancellation() {
        let ctx = Context::detached(1, None).cancel_after(3);
        let input = WaitForCancel {
            max_beats: 10,
            interval_ms: 0,
        };
        let err = wait_for_cancel(input, &ctx).unwrap_err();
        assert_eq!(
            (err.kind, err.type_name.as_str()),
            (ErrorKind::Retryable, "Cancelled")
        );
        assert_eq!(err.details, Some(json!({"beats": 3})));
    }

    /// A file of this test's own in the system temp directory (removed on drop).
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(name: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "testkit-{name}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_file(&path);
            Self(path)
        }

        fn input(&self, timeout_ms: u64) -> WaitForFile {
            WaitForFile {
                path: self.0.display().to_string(),
                timeout_ms,
                interval_ms: 0,
            }
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn wait_for_file_returns_the_file_once_it_exists() {
        let file = TempFile::new("present");
        std::fs::write(&file.0, "released").unwrap();
        let ctx = Context::detached(1, None);
        let out = wait_for_file(file.input(60_000), &ctx).unwrap();
        assert_eq!(out["content"], "released");
        assert_eq!(out["path"], file.0.display().to_string());
        assert_eq!(out["beats"], 0);
        assert!(ctx.recorded_heartbeats().is_empty());
    }

    #[test]
    fn wait_for_file_heartbeats_until_cancelled() {
        let file = TempFile::new("missing");
        let ctx = Context::detached(1, None).cancel_after(3);
        let err = wait_for_file(file.input(600_000), &ctx).unwrap_err();
        assert_eq!(
            (err.kind, err.type_name.as_str()),
            (ErrorKind::Retryable, "Cancelled")
        );
        assert_eq!(err.details, Some(json!({"beats": 3})));
        let beats = ctx.recorded_heartbeats();
        assert_eq!(beats.len(), 3);
        assert_eq!(beats[2]["waiting_for"], file.0.display().to_string());
    }

    #[test]
    fn wait_for_file_gives_up_after_its_timeout() {
        let file = TempFile::new("never");
        let err = wait_for_file(file.input(0), &Context::detached(1, None)).unwrap_err();
        assert_eq!(
            (err.kind, err.type_name.as_str()),
            (ErrorKind::Permanent, "WaitTimedOut")
        );
    }

    #[test]
    fn fail_returns_the_requested_variant() {
        let input = json!({"kind": "permanent", "type_name": "Boom", "details": {"x": 1}});
        let err = fail(serde_json::from_value(input).unwrap());
        assert_eq!(err.kind, ErrorKind::Permanent);
        assert_eq!(err.type_name, "Boom");
        assert_eq!(err.details, Some(json!({"x": 1})));
    }
}

/// Writes a file into `/scratch` and lists it: the directory exists, is writable, and starts
/// empty in every invocation (the host removes it afterwards).
pub fn scratch() -> Result<Value, PluginError> {
    let io = |e: std::io::Error| PluginError::permanent("ScratchUnavailable", e.to_string());
    let before: Vec<String> = std::fs::read_dir("/scratch")
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    std::fs::write("/scratch/work.bin", vec![7u8; 4096]).map_err(io)?;
    let size = std::fs::metadata("/scratch/work.bin").map_err(io)?.len();
    Ok(json!({ "entries_before": before, "written": size }))
}
