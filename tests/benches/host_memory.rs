//! Host memory a guest makes the worker spend, on the release worker (`mlx-worker run` as a
//! child process; MLX_WORKER_BIN overrides target/release/mlx-worker) against a real dev
//! server. Each attack of the hostile plugin (and testkit's `echo` as the baseline) runs once,
//! as a `RunPluginWorkflow` activity, on a worker process of its own started for it, so the
//! worker's peak resident set (VmHWM) is that attack's alone: it is read before the attack
//! (VmRSS once `/readyz` says ready, then the peak is reset through `/proc/PID/clear_refs` so
//! that startup's own peak does not count), and polled until the attack has ended.
//!
//! The hostile plugin gets `memory_mb = 128` and a scratch directory; the bound checked is
//! `2 × memory_mb + 64 MiB`: the guest's own linear memory, as much again spent by the host on
//! its behalf, and the worker's fixed overhead.
//!
//! `cargo bench -p mlx-e2e --bench host_memory` (after `make plugins`). Not a test: nothing
//! asserts a size. Markdown goes to stdout and `target/bench-report/host_memory.md`.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use mlx_e2e::{
    DevServer, PluginsDir, WorkerProcess,
    bench::{release_worker, write_report},
    events, find, free_port, http_get,
    proc_stats::status_bytes,
    run_step_on, unique, workspace_root,
};
use serde_json::{Value, json};

const MEMORY_MB: u64 = 128;
/// `2 × memory_mb + 64 MiB`.
const BOUND_BYTES: u64 = (2 * MEMORY_MB + 64) << 20;
const HOSTILE_MANIFEST: &str = "scratch = true\n\n[limits]\nmemory_mb = 128\n";
/// Far more than any attack needs on a slow machine: a deadline, not a wait.
const STEP_SECS: u64 = 1800;
const READY_WITHIN: Duration = Duration::from_secs(120);
/// How often the worker's peak is read (and its liveness checked) while an attack runs.
const POLL: Duration = Duration::from_millis(100);
/// Warnings only: the report, not a log line per invocation, should reach the terminal.
const QUIET: [(&str, &str); 1] = [("RUST_LOG", "warn")];

struct Attack {
    plugin: &'static str,
    operation: &'static str,
    input: Value,
}

fn attacks() -> Vec<Attack> {
    let hostile = |operation, input| Attack {
        plugin: "hostile",
        operation,
        input,
    };
    vec![
        Attack {
            plugin: "testkit",
            operation: "echo",
            input: json!({}),
        },
        hostile("memory_bomb", json!({})),
        hostile("huge_output", json!({})),
        hostile("stream_hoard", json!({})),
        hostile("stream_hoard", json!({"writes": true})),
        hostile("log_fields", json!({})),
        // Just under wasmtime's per-call limit on data lifted from the guest (128 MiB, counted
        // as 48 host bytes a field): the most one log call can make the host hold.
        hostile("log_fields", json!({"fields": 2_700_000})),
        hostile("poll_list", json!({})),
        hostile("dir_hoard", json!({})),
        hostile("random_bytes", json!({})),
        hostile("heartbeat_arrays", json!({})),
    ]
}

struct Measured {
    outcome: String,
    /// The result, or the failure's reason (the last line of its message).
    note: String,
    rss_before: u64,
    hwm_after: u64,
    seconds: f64,
}

/// Resets the process's peak resident set (VmHWM) to its current one (Linux ≥ 4.0).
fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// At most `max` characters of `text`, on one line, safe in a Markdown table cell.
fn cell(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = one_line.chars().take(max).collect();
    if one_line.chars().count() > max {
        out.push('…');
    }
    out.replace('|', "\\|")
}

/// How the activity ended, from its result and the workflow's history.
fn outcome(result: &Result<Value, String>, history: &[Value]) -> (String, String) {
    if let Ok(output) = result {
        return ("ok".into(), output.to_string());
    }
    if let Some(failure) = events(history, "ActivityTaskFailed").last() {
        let kind = find(&failure["failure"], "type")
            .and_then(Value::as_str)
            .unwrap_or("failed");
        let message = failure["failure"]["message"].as_str().unwrap_or_default();
        let reason = message.lines().last().unwrap_or_default();
        // A trap's reason follows the backtrace, after the last frame's name.
        let reason = reason.rsplit_once("#invoke: ").map_or(reason, |(_, r)| r);
        return (kind.to_string(), reason.to_string());
    }
    if !events(history, "ActivityTaskTimedOut").is_empty() {
        return ("timed out".into(), String::new());
    }
    let text = result.as_ref().err().cloned().unwrap_or_default();
    ("failed".into(), text)
}

/// A worker process serving `plugins`, once `/readyz` answers 200.
async fn ready_worker(
    binary: &Path,
    server: &DevServer,
    plugins: &Path,
) -> anyhow::Result<WorkerProcess> {
    let health = format!("127.0.0.1:{}", free_port());
    let args = ["--health-address", health.as_str()];
    let mut worker = WorkerProcess::start_with(binary, server, plugins, &QUIET, &args)?;
    let started = Instant::now();
    loop {
        if let Ok((200, _)) = http_get(&health, "/readyz").await {
            return Ok(worker);
        }
        if !worker.is_running() {
            bail!("the worker exited before it was ready");
        }
        if started.elapsed() > READY_WITHIN {
            bail!("the worker was not ready within {READY_WITHIN:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Runs `attack` once on a worker process of its own serving `plugins`.
async fn measure(
    binary: &Path,
    server: &DevServer,
    plugins: &Path,
    attack: &Attack,
) -> anyhow::Result<Measured> {
    let mut worker = ready_worker(binary, server, plugins).await?;
    let pid = worker.pid();
    let rss_before = status_bytes(pid, "VmRSS")?;
    if !reset_peak(pid) {
        eprintln!("could not reset the peak of {pid}: it includes startup's");
    }
    let mut hwm = status_bytes(pid, "VmHWM")?;

    let step = json!({
        "plugin": attack.plugin, "operation": attack.operation, "input": attack.input,
        "start_to_close_secs": STEP_SECS,
    });
    let id = unique(&format!("host-memory-{}", attack.operation));
    let start = Instant::now();
    let queue = worker.task_queue.clone();
    let run = run_step_on(server, &queue, &id, step);
    tokio::pin!(run);
    let ended = loop {
        tokio::select! {
            ended = &mut run => break Some(ended?),
            _ = tokio::time::sleep(POLL) => {
                if let Ok(peak) = status_bytes(pid, "VmHWM") {
                    hwm = hwm.max(peak);
                }
                if !worker.is_running() {
                    break None;
                }
            }
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let (outcome, note) = match ended {
        Some((result, history)) => {
            hwm = hwm.max(status_bytes(pid, "VmHWM")?);
            outcome(&result, &history)
        }
        None => {
            let status = worker.exit_status(Duration::from_secs(10)).await?;
            (format!("worker exited ({status})"), String::new())
        }
    };
    Ok(Measured {
        outcome,
        note,
        rss_before,
        hwm_after: hwm,
        seconds,
    })
}

/// The commit checked out, whether the working tree differs from it, and whether `binary` was
/// built before that commit was made (then it is not what is measured).
fn commit(binary: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(workspace_root())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown (no git)".into();
    };
    let mut described = head;
    if git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|c| !c.is_empty()) {
        described.push_str(" with uncommitted changes to tracked files");
    }
    let committed = git(&["log", "-1", "--format=%ct"]).and_then(|t| t.parse::<u64>().ok());
    let built = std::fs::metadata(binary)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    if let (Some(committed), Some(built)) = (committed, built)
        && built < committed
    {
        described.push_str(&format!(
            " (but {} was built before it: rebuild it to measure this commit)",
            binary.display()
        ));
    }
    described
}

fn mib(bytes: u64) -> String {
    format!("{:.0}", bytes as f64 / f64::from(1 << 20))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let binary = release_worker()?;
    let server = DevServer::start().await?;
    let commit = commit(&binary);
    let plugins = PluginsDir::with(&["hostile", "testkit"]);
    plugins.write_manifest("hostile", HOSTILE_MANIFEST);
    // Fills the compile cache the measured workers share, so each starts warm: a cold start's
    // compilation would inflate the first row's resident set before its attack.
    drop(ready_worker(&binary, &server, plugins.path()).await?);

    let mut rows = String::new();
    for attack in attacks() {
        let m = measure(&binary, &server, plugins.path(), &attack)
            .await
            .with_context(|| format!("{} {}", attack.operation, attack.input))?;
        let growth = m.hwm_after.saturating_sub(m.rss_before);
        eprintln!(
            "{} {}: {} in {:.1} s, growth {} MiB",
            attack.operation,
            attack.input,
            m.outcome,
            m.seconds,
            mib(growth)
        );
        rows.push_str(&format!(
            "| {} `{}` | `{}` | {} | {} | {:.2} | {} | {} | **{}** | {} |\n",
            attack.plugin,
            attack.operation,
            cell(&attack.input.to_string(), 40),
            cell(&m.outcome, 60),
            cell(&m.note, 160),
            m.seconds,
            mib(m.rss_before),
            mib(m.hwm_after),
            mib(growth),
            if m.hwm_after.saturating_sub(m.rss_before) <= BOUND_BYTES {
                "yes"
            } else {
                "no"
            },
        ));
    }
    let report = format!(
        "# Host memory per attack\n\n\
         Commit {commit}. Each row: a fresh release worker (`mlx-worker run`, one process per row) \
         serving hostile (`scratch = true`, `[limits] memory_mb = {MEMORY_MB}`) and testkit, \
         one activity run to its end (start-to-close {STEP_SECS} s, one attempt). VmRSS when \
         `/readyz` answered 200, then the peak reset (`clear_refs` 5) and VmHWM polled every \
         {} ms until the activity ended; growth = VmHWM after − VmRSS before, guest linear \
         memory included. Bound: 2 × memory_mb + 64 MiB = {} MiB.\n\n\
         | attack | input | outcome | result or reason | s | VmRSS before (MiB) | VmHWM after \
         (MiB) | growth (MiB) | growth ≤ {} MiB |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n{rows}",
        POLL.as_millis(),
        BOUND_BYTES >> 20,
        BOUND_BYTES >> 20,
    );
    write_report("host_memory", &report)?;
    Ok(())
}
