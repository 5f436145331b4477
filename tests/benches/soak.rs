//! Soak: one release worker (`mlx-worker run` as a child process, MLX_WORKER_BIN overrides
//! target/release/mlx-worker) under steady load against a local dev server for a long time,
//! to see whether its memory, fds and threads stay flat (issue 18). The load, IN_FLIGHT
//! workflows at once, in a fixed rotation:
//!
//! - `RunPluginWorkflow`s of testkit `echo` (one activity each);
//! - `PipelineWorkflow`s of CHAIN chained echo steps;
//! - `PipelineWorkflow`s with a fan-out step over FAN_OUT items between two echo steps;
//! - `RunPluginWorkflow`s of testkit `fail` (kind permanent): expected to fail;
//!
//! and every MLX_SOAK_RELOAD_SECS a rebuilt testkit (a custom section appended: same code,
//! another digest) renamed into the plugins directory, which the worker's watcher reloads.
//! A workflow whose outcome is not the expected one is a loss.
//!
//! Once a second: the worker's VmRSS, RssAnon, open fds and threads (`/proc`) and a few
//! gauges from its Prometheus endpoint. Knobs: MLX_SOAK_SECS (1800), MLX_SOAK_WARMUP_SECS
//! (600: growth is measured after it), MLX_SOAK_RELOAD_SECS (180), MLX_SOAK_WORKER_ARGS
//! (extra `run` flags, e.g. `--max-concurrent-activities 4`), MLX_SOAK_WORKER_ENV (`K=V K=V`
//! added to the worker's otherwise cleared environment, e.g. `MALLOC_ARENA_MAX=2`),
//! MLX_SOAK_PARKED (500 pipelines parked at an approval gate before the load, to weigh a
//! cached workflow: parked.rs), MLX_WORKER_BIN (the worker to soak). Output: stdout,
//! target/soak/report.md (MLX_SOAK_OUT: another directory, for two soaks side by side),
//! samples.csv and SVG plots beside it. Not a test: nothing asserts.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use anyhow::Context;
use mlx_e2e::{
    DevServer, PluginsDir, WorkerProcess, bench::release_worker, components, eventually, free_port,
    unique, workspace_root,
};
use mlx_worker::temporal::{PipelineWorkflow, RunPluginWorkflow, payload::json_input};
use serde_json::{Value, json};
use temporalio_client::{Client, WorkflowGetResultOptions, WorkflowStartOptions};
use tokio::sync::Semaphore;

// Under soak/ so that Cargo does not take them for benchmarks of their own.
#[path = "soak/parked.rs"]
mod parked;
#[path = "soak/report.rs"]
mod report;
#[path = "soak/sample.rs"]
mod sample;

use sample::{Counters, Sample, sampler};

/// Workflows in flight at once: enough to keep both cores of a small machine busy, few
/// enough that the load is steady rather than a backlog the server queues.
const IN_FLIGHT: usize = 20;
const CHAIN: usize = 5;
const FAN_OUT: usize = 5;
/// Far above any healthy workflow's time here: one that takes longer counts as lost.
const WORKFLOW_LIMIT: Duration = Duration::from_secs(120);
/// Warnings only: a log line per invocation would measure the terminal, and its buffers.
/// Plus the worker loop's own rare events (an activity worker replaced).
const QUIET: [(&str, &str); 1] = [("RUST_LOG", "warn,mlx_worker::temporal::worker=info")];

pub struct Config {
    pub secs: u64,
    pub warmup_secs: u64,
    pub reload_secs: u64,
    /// Extra `mlx-worker run` flags, e.g. a smaller pool to see whether growth is bounded by it.
    pub worker_args: String,
    /// Extra environment for the worker (its own is cleared), e.g. glibc's allocator tunables.
    pub worker_env: Vec<(String, String)>,
    /// Pipelines parked at an approval gate before the load starts (parked.rs): what a cached
    /// workflow costs, and cached ones sitting through the whole run.
    pub parked: u64,
}

fn worker_env() -> anyhow::Result<Vec<(String, String)>> {
    let value = std::env::var("MLX_SOAK_WORKER_ENV").unwrap_or_default();
    value
        .split_whitespace()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => anyhow::bail!("MLX_SOAK_WORKER_ENV: {pair:?} is not KEY=VALUE"),
        })
        .collect()
}

fn env_secs(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(v) => v.parse().with_context(|| format!("{name}={v:?}")),
        Err(_) => Ok(default),
    }
}

/// What a workflow of the rotation is and how many activities it runs when it goes right.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Echo,
    Chain,
    FanOut,
    Fail,
}

/// Mostly single activities (the per-invocation question), a pipeline of each shape
/// and one failure in ten.
const ROTATION: [Kind; 10] = [
    Kind::Echo,
    Kind::Chain,
    Kind::Echo,
    Kind::FanOut,
    Kind::Echo,
    Kind::Fail,
    Kind::Echo,
    Kind::Chain,
    Kind::Echo,
    Kind::Echo,
];

impl Kind {
    fn activities(self) -> u64 {
        match self {
            Kind::Echo | Kind::Fail => 1,
            Kind::Chain => CHAIN as u64,
            Kind::FanOut => FAN_OUT as u64 + 2,
        }
    }
}

fn echo_step(id: &str, after: Option<&str>, input: Value) -> Value {
    let mut step = json!({"id": id, "plugin": "testkit", "operation": "echo", "input": input});
    if let Some(after) = after {
        step["depends_on"] = json!([after]);
    }
    step
}

fn chain_spec(n: u64) -> Value {
    let steps: Vec<Value> = (0..CHAIN)
        .map(|i| {
            let prev = (i > 0).then(|| format!("s{}", i - 1));
            echo_step(&format!("s{i}"), prev.as_deref(), json!({"n": n, "i": i}))
        })
        .collect();
    json!({"name": "soak-chain", "steps": steps})
}

fn fan_out_spec(n: u64) -> Value {
    let items: Vec<u64> = (0..FAN_OUT as u64).collect();
    json!({
        "name": "soak-fan-out",
        "params": {"items": items},
        "steps": [
            echo_step("prepare", None, json!({"n": n})),
            {"id": "each", "plugin": "testkit", "operation": "echo", "depends_on": ["prepare"],
             "for_each": "${params.items}", "concurrency": 2,
             "input": {"item": "${item}", "n": "${steps.prepare.output.input.n}"}},
            echo_step("after", Some("each"), json!({"of": "${steps.each.output.succeeded}"}))
        ]
    })
}

fn plugin_step(operation: &str, input: Value) -> Value {
    json!({"plugin": "testkit", "operation": operation, "input": input, "start_to_close_secs": 60})
}

/// Runs one workflow of `kind` to its end; true if it ended as it should.
async fn run_one(
    client: &Client,
    queue: &str,
    kind: Kind,
    n: u64,
    id: &str,
) -> anyhow::Result<bool> {
    let id = id.to_string();
    let options = || WorkflowStartOptions::new(queue.to_string(), id.clone()).build();
    let wait = WorkflowGetResultOptions::default;
    match kind {
        Kind::Echo | Kind::Fail => {
            let step = match kind {
                Kind::Echo => plugin_step("echo", json!({"n": n})),
                _ => plugin_step(
                    "fail",
                    json!({"kind": "permanent", "type_name": "Soak", "message": "expected"}),
                ),
            };
            client
                .start_workflow(RunPluginWorkflow::run, json_input(&step), options())
                .await?;
            let handle = client.get_workflow_handle::<RunPluginWorkflow>(&id);
            let result = tokio::time::timeout(WORKFLOW_LIMIT, handle.get_result(wait())).await?;
            Ok(matches!(kind, Kind::Echo) == result.is_ok())
        }
        Kind::Chain | Kind::FanOut => {
            let spec = match kind {
                Kind::Chain => chain_spec(n),
                _ => fan_out_spec(n),
            };
            client
                .start_workflow(PipelineWorkflow::run, json_input(&spec), options())
                .await?;
            let handle = client.get_workflow_handle::<PipelineWorkflow>(&id);
            let result = tokio::time::timeout(WORKFLOW_LIMIT, handle.get_result(wait())).await??;
            let steps = result["steps"].as_object().context("no steps")?;
            let all_ok = steps.values().all(|s| s["status"] == "succeeded");
            let fanned = match kind {
                Kind::FanOut => result["steps"]["each"]["output"]["succeeded"] == FAN_OUT,
                _ => true,
            };
            Ok(all_ok && fanned && !steps.is_empty())
        }
    }
}

/// Keeps IN_FLIGHT workflows running until `until`, then waits for the last of them.
async fn drive(
    client: Client,
    queue: String,
    counters: Arc<Counters>,
    until: Instant,
) -> anyhow::Result<()> {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut n = 0u64;
    let started = Instant::now();
    while Instant::now() < until {
        let permit = slots.clone().acquire_owned().await?;
        let kind = ROTATION[(n % ROTATION.len() as u64) as usize];
        let (client, queue, counters) = (client.clone(), queue.clone(), counters.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let id = unique("soak");
            match run_one(&client, &queue, kind, n, &id).await {
                Ok(true) => {
                    counters
                        .activities
                        .fetch_add(kind.activities(), Ordering::Relaxed);
                    counters.workflows.fetch_add(1, Ordering::Relaxed);
                    if matches!(kind, Kind::Fail) {
                        counters.expected_failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(false) => {
                    eprintln!("lost a workflow ({id}, {kind:?}): it ended otherwise than expected");
                    counters.losses.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    eprintln!(
                        "lost a workflow ({id}, {kind:?}, at {:.0} s): {e:#}",
                        started.elapsed().as_secs_f64()
                    );
                    counters.losses.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        n += 1;
    }
    // Every permit back means every workflow has ended.
    let _all = slots.acquire_many(IN_FLIGHT as u32).await?;
    Ok(())
}

/// testkit with a custom section appended, tagged `tag`: the same code with another digest,
/// as a rebuilt plugin would be.
/// Renames a rebuilt testkit into place every `every` until `until`: the watcher sees one
/// complete file, as with an operator's `install`.
async fn reload(
    plugins: PathBuf,
    counters: Arc<Counters>,
    every: Duration,
    until: Instant,
) -> anyhow::Result<()> {
    let mut next = Instant::now() + every;
    // The last reload is one that fits before `until`: the run ends when the load does.
    while next < until {
        tokio::time::sleep_until(next.into()).await;
        next += every;
        let n = counters.reloads.load(Ordering::Relaxed) + 1;
        let variant = components::variant("testkit", &format!("reload-{n}"));
        components::drop_in(&plugins, "testkit.wasm", &variant);
        counters.reloads.store(n, Ordering::Relaxed);
    }
    Ok(())
}

fn out_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MLX_SOAK_OUT") {
        return dir.into();
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("soak")
}

async fn soak(
    binary: &Path,
    config: &Config,
) -> anyhow::Result<(Vec<Sample>, u64, Option<parked::Parked>)> {
    // The server's state on disk: in memory (the tests' default) it holds every finished
    // workflow's history for the run's length, 22 GiB after 40 minutes at ~90 activities/s,
    // and the machine runs out before the hour does.
    let state = tempfile::tempdir()?;
    let server = DevServer::start_on(free_port(), Some(&state.path().join("soak.db"))).await?;
    let plugins = PluginsDir::with(&["testkit"]);
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut args = vec!["--metrics-address", metrics.as_str()];
    args.extend(config.worker_args.split_whitespace());
    let mut env = QUIET.to_vec();
    env.extend(
        config
            .worker_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let worker = WorkerProcess::start_with(binary, &server, plugins.path(), &env, &args)?;
    let client = server.client().await?;
    // Serving at all (plugins loaded, polling) before the clock starts.
    eventually(Duration::from_secs(120), "a first echo", || async {
        run_one(&client, &worker.task_queue, Kind::Echo, 0, &unique("soak"))
            .await
            .ok()
            .filter(|ok| *ok)
    })
    .await?;
    let parked = match config.parked {
        0 => None,
        n => Some(parked::park(&client, &worker.task_queue, &metrics, n).await?),
    };

    let counters = Arc::new(Counters::default());
    let start = Instant::now();
    let until = start + Duration::from_secs(config.secs);
    let sampling = tokio::spawn(sampler(
        worker.pid(),
        metrics.clone(),
        counters.clone(),
        start,
        until,
    ));
    let reloading = tokio::spawn(reload(
        plugins.path().to_path_buf(),
        counters.clone(),
        Duration::from_secs(config.reload_secs),
        until,
    ));
    drive(client, worker.task_queue.clone(), counters.clone(), until).await?;
    reloading.await??;
    let samples = sampling.await??;
    Ok((samples, counters.reloads.load(Ordering::Relaxed), parked))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config {
        secs: env_secs("MLX_SOAK_SECS", 1800)?,
        warmup_secs: env_secs("MLX_SOAK_WARMUP_SECS", 600)?,
        reload_secs: env_secs("MLX_SOAK_RELOAD_SECS", 180)?.max(1),
        worker_args: std::env::var("MLX_SOAK_WORKER_ARGS").unwrap_or_default(),
        worker_env: worker_env()?,
        parked: env_secs("MLX_SOAK_PARKED", 500)?,
    };
    let binary = release_worker()?;
    eprintln!(
        "soak: {} s ({} s warm-up), a reload every {} s, {IN_FLIGHT} workflows in flight, \
         worker flags {:?}, environment {:?}",
        config.secs, config.warmup_secs, config.reload_secs, config.worker_args, config.worker_env
    );
    let (samples, reloads, parked) = soak(&binary, &config).await?;
    let dir = out_dir();
    std::fs::create_dir_all(&dir)?;
    let markdown = report::write(&dir, &config, &samples, reloads, parked.as_ref())?;
    print!("{markdown}");
    eprintln!("written to {}", dir.join("report.md").display());
    Ok(())
}
