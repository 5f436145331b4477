//! End-to-end benchmark: the testkit plugin's trivial `echo`, run three ways
//! against one real Temporal dev server in one run:
//! (a) `wasm`: a plugin through `plugin_activity`, a fresh sandbox per activity;
//! (b) `native`: a native Rust activity in the same worker binary (`run --native-echo`);
//! (c) `python`: a native activity in a Temporal Python SDK worker (tests/python/bench_worker.py).
//!
//! A fourth worker, whose CPU is not measured, hosts the workflows: each is a
//! `RunPluginWorkflow` whose `task_queue` names the measured worker's queue, so the measured
//! processes run activities and nothing else. The modes alternate in rounds so that drift on a
//! shared machine hits all three alike. Figures: throughput over the timed wall time; latency
//! from the history's event times; worker CPU from the kernel's accounting (`/proc`); peak RSS.
//!
//! Knobs: MLX_BENCH_N (timed activities per mode, 300), MLX_BENCH_CONCURRENCY (workflows in
//! flight, 8), MLX_BENCH_WARMUP (untimed activities per mode, 20), MLX_BENCH_IDLE_SECS (quiet
//! window for the idle baseline, 5), MLX_WORKER_BIN (default target/release/mlx-worker).
//! A benchmark, not a test: nothing here asserts a timing. Output: stdout and
//! target/bench-report/e2e.md.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use mlx_e2e::{
    DevServer, PluginsDir, WorkerProcess,
    bench::{release_worker, write_report},
    proc_stats::{clock_ticks, command_name, cpu_seconds, status_bytes},
    python, workspace_root,
};

// Under e2e/ so that Cargo does not take them for benchmarks of their own.
#[path = "e2e/report.rs"]
mod report;
#[path = "e2e/runs.rs"]
mod runs;

use report::{Figures, Setup};
use runs::{latencies, run_workflows};

/// Rounds the timed activities are split into, each running every mode once in turn.
const ROUNDS: usize = 3;

fn knob(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v:?} is not a count")),
        Err(_) => Ok(default),
    }
}

/// The Python SDK worker as a child process, killed on drop.
struct PythonWorker {
    child: Child,
}

impl PythonWorker {
    fn start(address: &str, task_queue: &str) -> anyhow::Result<Self> {
        let script = workspace_root().join("tests/python/bench_worker.py");
        // The interpreter itself, not a shell: its pid is the process measured.
        let mut child = Command::new(python())
            .arg(script)
            .args([address, task_queue])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the Python worker")?;
        let stdout = child.stdout.take().context("Python worker stdout")?;
        let worker = Self { child };
        let (lines, received) = mpsc::channel();
        // Keeps draining after READY so the worker never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match received.recv_timeout(left) {
                Ok(line) if line.trim() == "READY" => return Ok(worker),
                Ok(_) => {}
                Err(_) => bail!("the Python worker did not print READY within 60 s"),
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for PythonWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One way of running the operation: the worker process serving it and its task queue.
struct Mode {
    name: &'static str,
    task_queue: String,
    pid: u32,
    /// Timed workflows, for the latencies read from their histories afterwards.
    ids: Vec<String>,
    wall: Duration,
    cpu_secs: f64,
    idle_cpu_per_sec: f64,
}

impl Mode {
    fn new(name: &'static str, task_queue: &str, pid: u32) -> Self {
        Self {
            name,
            task_queue: task_queue.to_string(),
            pid,
            ids: Vec::new(),
            wall: Duration::ZERO,
            cpu_secs: 0.0,
            idle_cpu_per_sec: 0.0,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n = knob("MLX_BENCH_N", 300)?;
    let concurrency = knob("MLX_BENCH_CONCURRENCY", 8)?.max(1);
    let warmup = knob("MLX_BENCH_WARMUP", 20)?;
    let idle_secs = knob("MLX_BENCH_IDLE_SECS", 5)?;
    let binary = release_worker()?;

    let server = DevServer::start().await?;
    let client = server.client().await?;
    let empty = PluginsDir::with(&[]);
    let testkit = PluginsDir::with(&["testkit"]);
    // Info logs would add a line per plugin activity and none per native one: warnings only,
    // so the modes differ in how the operation runs and nothing else.
    let env = [("RUST_LOG", "warn")];
    let slots = concurrency.max(16).to_string();
    let flags = ["--max-concurrent-activities", slots.as_str()];
    let driver = WorkerProcess::start_with(&binary, &server, empty.path(), &env, &flags)?;
    // Operators run with a warm compile cache: a first worker fills it (one workflow proves
    // the plugin is loaded), so the measured worker's peak RSS holds no compilation.
    let cache = tempfile::tempdir()?;
    let filler =
        WorkerProcess::start_with_cache(&binary, &server, testkit.path(), cache.path(), &env, &[])?;
    run_workflows(
        &client,
        &driver.task_queue,
        &filler.task_queue,
        vec!["fill-cache".into()],
        1,
    )
    .await?;
    drop(filler);
    let wasm = WorkerProcess::start_with_cache(
        &binary,
        &server,
        testkit.path(),
        cache.path(),
        &env,
        &flags,
    )?;
    let native_flags = [flags[0], flags[1], "--native-echo"];
    let native = WorkerProcess::start_with(&binary, &server, empty.path(), &env, &native_flags)?;
    let python_queue = format!("bench-python-{}", mlx_e2e::free_port());
    let python = PythonWorker::start(&server.address, &python_queue)?;
    let name = command_name(python.pid())?;
    if !name.starts_with("python") {
        bail!(
            "pid {} is {name:?}, not the Python interpreter",
            python.pid()
        );
    }
    let mut modes = [
        Mode::new("wasm", &wasm.task_queue, wasm.pid()),
        Mode::new("native", &native.task_queue, native.pid()),
        Mode::new("python", &python_queue, python.pid()),
    ];

    // Every run goes through the driver's workflows to one measured worker's queue.
    let run = |queue: String, ids: Vec<String>| {
        let (client, driver_queue) = (&client, &driver.task_queue);
        async move { run_workflows(client, driver_queue, &queue, ids, concurrency).await }
    };

    // Untimed: connections, the plugin's first instantiation, Python's imports settle first.
    for mode in &modes {
        eprintln!("warm-up: {warmup} {} activities", mode.name);
        let ids = (0..warmup)
            .map(|i| format!("warm-{}-{i}", mode.name))
            .collect();
        run(mode.task_queue.clone(), ids).await?;
    }

    // What each worker burns doing nothing but polling. Waiting is the measurement here.
    let before: Vec<f64> = modes
        .iter()
        .map(|m| cpu_seconds(m.pid))
        .collect::<Result<_, _>>()?;
    let quiet = Instant::now();
    tokio::time::sleep(Duration::from_secs(idle_secs as u64)).await;
    let window = quiet.elapsed().as_secs_f64();
    for (mode, start) in modes.iter_mut().zip(before) {
        mode.idle_cpu_per_sec = (cpu_seconds(mode.pid)? - start) / window;
    }

    for round in 0..ROUNDS {
        let count = n * (round + 1) / ROUNDS - n * round / ROUNDS;
        for mode in &mut modes {
            eprintln!(
                "round {}/{ROUNDS}: {count} {} activities",
                round + 1,
                mode.name
            );
            let ids: Vec<String> = (0..count)
                .map(|i| format!("{}-{round}-{i}", mode.name))
                .collect();
            mode.ids.extend(ids.iter().cloned());
            let cpu_before = cpu_seconds(mode.pid)?;
            let started = Instant::now();
            run(mode.task_queue.clone(), ids).await?;
            mode.wall += started.elapsed();
            mode.cpu_secs += cpu_seconds(mode.pid)? - cpu_before;
        }
    }

    let mut figures = Vec::new();
    for mode in &modes {
        let (mut schedule_to_close, mut start_to_close) =
            latencies(&client, mode.ids.clone(), concurrency).await?;
        schedule_to_close.sort();
        start_to_close.sort();
        figures.push(Figures {
            name: mode.name,
            activities: mode.ids.len(),
            wall: mode.wall,
            cpu_secs: mode.cpu_secs,
            idle_cpu_per_sec: mode.idle_cpu_per_sec,
            schedule_to_close,
            start_to_close,
            peak_rss: status_bytes(mode.pid, "VmHWM")?,
            end_rss: status_bytes(mode.pid, "VmRSS")?,
        });
    }
    let setup = Setup {
        activities: n,
        concurrency,
        warmup,
        rounds: ROUNDS,
        idle_secs,
        binary,
        clock_ticks: clock_ticks()?,
    };
    let markdown = report::markdown(&setup, &figures);
    write_report("e2e", &markdown)?;
    // Every process stops as its guard drops: workers first, then the server they poll.
    Ok(())
}
