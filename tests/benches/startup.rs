//! Startup and memory, on the release worker (`mlx-worker run` as a child
//! process, MLX_WORKER_BIN overrides target/release/mlx-worker) against a real dev server:
//!
//! - time from spawn to `/readyz` answering 200 with 20 plugins, with an empty compile cache
//!   (cold) and with the cache the previous start filled (warm), STARTS times each,
//!   alternating; also when `/readyz` stops saying "loading plugins" (the rest of the wait is
//!   connecting to Temporal);
//! - worker RSS idle vs with IN_FLIGHT invocations of testkit's `wait_for_cancel` (a loop of
//!   sleeps and heartbeats: little guest memory) in flight at once, per invocation, less the
//!   guest's own linear memory (the mean of the worker's peak-memory histogram).
//!
//! `cargo bench -p mlx-e2e --bench startup`. Not a test: nothing asserts a time or a size.
//! Markdown goes to stdout and `target/bench-report/startup.md`.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use mlx_e2e::{
    DevServer, PluginsDir, WorkerProcess, activity_heartbeating,
    bench::{release_worker, write_report},
    components, eventually, free_port, http_get,
    proc_stats::status_bytes,
};
use mlx_worker::temporal::RunPluginWorkflow;
use serde_json::{Value, json};
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};

const STARTS: usize = 5;
const IN_FLIGHT: usize = 64;
/// How often `/readyz` is asked: fine enough for the ~100 ms figures measured.
const POLL: Duration = Duration::from_millis(2);
/// Enough for `/readyz` to answer at all: only `[http]` plugins need a grant to load.
const HTTP_GRANT: &str = "[http]\nallow = [\"http://127.0.0.1:9\"]\n";
/// Warnings only: the report, not a log line per invocation, should reach the terminal.
const QUIET: [(&str, &str); 1] = [("RUST_LOG", "warn")];

/// An operator's directory of 20 plugins: the six real ones, and 14 copies of trainer,
/// testkit and hostile whose name is rewritten in the bytes to another of the same length
/// (`testkit` → `tk00001`). The worker registers plugins by the name they describe and caches
/// compiled code by the file's SHA-256, so each copy is a distinct plugin with its own full
/// compile, as twenty different real plugins would be.
fn twenty_plugins(binary: &Path) -> anyhow::Result<PluginsDir> {
    let real = [
        "csv",
        "trainer",
        "fetch",
        "testkit",
        "hostile",
        "http_probe",
    ];
    let dir = PluginsDir::with(&real);
    dir.write_manifest("fetch", HTTP_GRANT);
    dir.write_manifest("http_probe", HTTP_GRANT);
    for (i, (original, prefix)) in [("trainer", "tr"), ("testkit", "tk"), ("hostile", "ho")]
        .iter()
        .cycle()
        .take(20 - real.len())
        .enumerate()
    {
        let name = format!("{prefix}{:05}", i + 1);
        let bytes = std::fs::read(components().join(format!("{original}.wasm")))?;
        let patched = replace_all(&bytes, original.as_bytes(), name.as_bytes());
        std::fs::write(dir.path().join(format!("{name}.wasm")), patched)?;
    }
    // What the worker will see: 20 loadable plugins, 20 names, 20 digests.
    let out = Command::new(binary)
        .args(["plugin", "list", "--json", "--plugins-dir"])
        .arg(dir.path())
        .output()?;
    let listed: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let distinct = |key: &str| {
        let mut v: Vec<String> = listed.iter().map(|p| p[key].to_string()).collect();
        v.sort();
        v.dedup();
        v.len()
    };
    let refused = listed.iter().any(|p| p.get("refused").is_some());
    ensure!(
        out.status.success()
            && !refused
            && listed.len() == 20
            && distinct("name") == 20
            && distinct("digest") == 20,
        "expected 20 distinct loadable plugins, `plugin list` says: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(dir)
}

fn replace_all(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len(), "same length keeps every offset valid");
    let mut out = bytes.to_vec();
    let mut i = 0;
    while let Some(at) = out[i..].windows(from.len()).position(|w| w == from) {
        out[i + at..i + at + to.len()].copy_from_slice(to);
        i += at + to.len();
    }
    out
}

/// Starts a worker on `cache` and returns (plugins loaded, ready) as times since spawn.
async fn time_start(
    binary: &Path,
    server: &DevServer,
    plugins: &Path,
    cache: &Path,
) -> anyhow::Result<(Duration, Duration)> {
    let health = format!("127.0.0.1:{}", free_port());
    let args = ["--health-address", health.as_str()];
    let start = Instant::now();
    let mut worker =
        WorkerProcess::start_with_cache(binary, server, plugins, cache, &QUIET, &args)?;
    let mut loaded = None;
    loop {
        if let Ok((status, body)) = http_get(&health, "/readyz").await {
            if loaded.is_none() && status != 0 && !body.contains("loading plugins") {
                loaded = Some(start.elapsed());
            }
            if status == 200 {
                let ready = start.elapsed();
                return Ok((loaded.unwrap_or(ready), ready));
            }
        }
        ensure!(worker.is_running(), "the worker exited before it was ready");
        if start.elapsed() > Duration::from_secs(120) {
            bail!("not ready after 120 s");
        }
        tokio::time::sleep(POLL).await;
    }
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e3)
}

async fn startup(binary: &Path, server: &DevServer) -> anyhow::Result<String> {
    let plugins = twenty_plugins(binary)?;
    let bytes: u64 = std::fs::read_dir(plugins.path())?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for run in 0..STARTS {
        let cache = tempfile::tempdir()?;
        let c = time_start(binary, server, plugins.path(), cache.path()).await?;
        let w = time_start(binary, server, plugins.path(), cache.path()).await?;
        eprintln!("start {run}: cold {c:?}, warm {w:?}");
        cold.push(c);
        warm.push(w);
    }
    let row = |what: &str, xs: &[(Duration, Duration)]| {
        let loaded = median(xs.iter().map(|x| x.0).collect());
        let ready = median(xs.iter().map(|x| x.1).collect());
        let all: Vec<String> = xs.iter().map(|x| ms(x.1)).collect();
        format!(
            "| {what} | {} | {} | {} |\n",
            ms(loaded),
            ms(ready),
            all.join(", ")
        )
    };
    let ratio = median(cold.iter().map(|x| x.1).collect()).as_secs_f64()
        / median(warm.iter().map(|x| x.1).collect()).as_secs_f64();
    Ok(format!(
        "## Start to ready, 20 plugins\n\n\
         20 components ({:.1} MiB of Wasm: csv, trainer, fetch, testkit, hostile, http_probe \
         and 14 renamed copies of trainer, testkit and hostile). Time from spawning \
         `mlx-worker run` to `/readyz` answering 200 (plugins loaded and connected to a local \
         dev server), polled every {} ms; \"plugins loaded\" is when `/readyz` stops saying \
         \"loading plugins\". Median of {STARTS} starts each, cold and warm alternating.\n\n\
         | compile cache | plugins loaded (ms) | ready (ms) | ready, every start (ms) |\n\
         | --- | --- | --- | --- |\n{}{}\n\
         Cold / warm: {ratio:.1}x. Target: ready from a warm cache ≤ 300 ms.\n\n",
        bytes as f64 / f64::from(1 << 20),
        POLL.as_millis(),
        row("cold (empty)", &cold),
        row("warm (filled by the previous start)", &warm),
    ))
}

/// Starts `step` as a `RunPluginWorkflow` with id `id`, without waiting for it.
async fn start_step(
    client: &temporalio_client::Client,
    queue: &str,
    id: &str,
    step: Value,
) -> anyhow::Result<()> {
    client
        .start_workflow(
            RunPluginWorkflow::run,
            mlx_worker::temporal::payload::json_input(&step),
            WorkflowStartOptions::new(queue.to_string(), id.to_string()).build(),
        )
        .await?;
    Ok(())
}

/// Waits for workflow `id` to finish successfully.
async fn finished(client: &temporalio_client::Client, id: &str) -> anyhow::Result<()> {
    client
        .get_workflow_handle::<RunPluginWorkflow>(id)
        .get_result(WorkflowGetResultOptions::default())
        .await?;
    Ok(())
}

/// The mean of a Prometheus histogram's observations for one operation (`_sum / _count`).
async fn histogram_mean(metrics: &str, name: &str, operation: &str) -> anyhow::Result<f64> {
    let (_, text) = http_get(metrics, "/metrics").await?;
    let label = format!("operation=\"{operation}\"");
    let value = |suffix: &str| {
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{suffix}")) && l.contains(&label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let (sum, count) = (value("_sum"), value("_count"));
    ensure!(count > 0.0, "no {name} for {operation} in:\n{text}");
    Ok(sum / count)
}

async fn memory(binary: &Path, server: &DevServer) -> anyhow::Result<String> {
    let plugins = PluginsDir::with(&["testkit"]);
    let metrics = format!("127.0.0.1:{}", free_port());
    let slots = IN_FLIGHT.to_string();
    let args = [
        "--max-concurrent-activities",
        slots.as_str(),
        "--metrics-address",
        metrics.as_str(),
    ];
    let worker = WorkerProcess::start_with(binary, server, plugins.path(), &QUIET, &args)?;
    let client = server.client().await?;
    let step = |input: Value, op: &str| json!({"plugin": "testkit", "operation": op, "input": input, "start_to_close_secs": 300});
    // A first invocation, so idle means a worker that has served, not one that never ran.
    start_step(
        &client,
        &worker.task_queue,
        "warm-up",
        step(json!({}), "echo"),
    )
    .await?;
    finished(&client, "warm-up").await?;
    let rss = || status_bytes(worker.pid(), "VmRSS");
    let idle = rss()?;

    // Long enough to be all in flight at once on a slow machine; each sleeps in the guest.
    let input = json!({"max_beats": 300, "interval_ms": 100});
    let ids: Vec<String> = (0..IN_FLIGHT).map(|i| format!("mem-{i}")).collect();
    for id in &ids {
        let step = step(input.clone(), "wait_for_cancel");
        start_step(&client, &worker.task_queue, id, step).await?;
    }
    eventually(
        Duration::from_secs(60),
        "all invocations running",
        || async {
            for id in &ids {
                if !activity_heartbeating(server, id).await.ok()? {
                    return None;
                }
            }
            Some(())
        },
    )
    .await?;
    let mut busy = 0;
    for _ in 0..10 {
        busy = busy.max(rss()?);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for id in &ids {
        finished(&client, id).await?;
    }
    let guest = histogram_mean(&metrics, "mlx_plugin_peak_memory_bytes", "wait_for_cancel").await?;
    let mib = |b: f64| b / f64::from(1 << 20);
    let per = (busy as f64 - idle as f64) / IN_FLIGHT as f64;
    Ok(format!(
        "## Memory per in-flight invocation\n\n\
         One worker (`--max-concurrent-activities {IN_FLIGHT}`), testkit only. VmRSS after one \
         warm-up invocation (idle), then the highest of 10 readings while {IN_FLIGHT} \
         `wait_for_cancel` invocations (sleep and heartbeat in a loop) were all in flight \
         (each had heartbeated). Guest memory: the mean peak linear memory size of those \
         invocations (the worker's `mlx_plugin_peak_memory_bytes` histogram, sum / count).\n\n\
         | | MiB |\n| --- | --- |\n\
         | worker RSS, idle | {:.1} |\n\
         | worker RSS, {IN_FLIGHT} in flight | {:.1} |\n\
         | **RSS per in-flight invocation**, host and guest together | **{:.3}** |\n\
         | the guest's linear memory size (peak) | {:.3} |\n\n\
         The RSS per invocation already contains the guest's resident pages, and a guest \
         touches only part of its linear memory, so subtracting the size (giving {:.3}) \
         would undercount: the memory beyond the guest's own is at most the RSS per \
         invocation, {:.3} MiB. Target ≤ 1 MiB: {}.\n",
        mib(idle as f64),
        mib(busy as f64),
        mib(per),
        mib(guest),
        mib(per - guest),
        mib(per),
        if per <= f64::from(1 << 20) {
            "met"
        } else {
            "not shown (the bound is above it)"
        },
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let binary = release_worker()?;
    let server = DevServer::start().await?;
    let report = format!(
        "# Startup and memory\n\n{}{}",
        startup(&binary, &server).await.context("startup")?,
        memory(&binary, &server).await.context("memory")?,
    );
    write_report("startup", &report)?;
    Ok(())
}
