//! ML compute: the trainer's `train_model` on the digits dataset, family by family, as the
//! Wasm component in the worker's runtime vs a native build of the same source
//! (`plugins/trainer/examples/train_native.rs`), on the same split and inputs.
//!
//! `cargo bench -p mlx-e2e --bench ml`. Not a test: nothing is asserted about time; it fails
//! only on errors (a build, an invocation, a resumed run, or two contenders training different
//! models: a ratio of different work means nothing; see [`agreement`]). Markdown goes to
//! stdout and `target/bench-report/ml.md`.
//!
//! Contenders, every one run once per repetition, in an order rotated each repetition, so
//! drift in machine load hits all alike (the machine is shared); medians are compared:
//! - **Wasm**: `trainer.wasm` (the release component every test uses, built with simd128 as
//!   `plugins/.cargo/config.toml` builds every Rust plugin) through `PluginHost::invoke`, the
//!   worker's runtime with its shipped engine (fresh instance included).
//! - **Wasm scalar**: the same source built with `-C target-feature=-simd128` into
//!   `plugins/target/scalar` (this bench builds it), in the same runtime: what SIMD buys.
//! - **native**: `train_native`, release, x86_64 (baseline SSE2, as a default Rust build), one
//!   process per run, timed inside around `train_model`'s function (process start excluded).
//! - Diagnostics, **no epoch**: both components on an engine of this bench's own, the runtime's
//!   settings but `epoch_interruption(false)`, run through the runtime's own sandbox
//!   (`Sandboxes`: the same WASI context, capabilities and store) by calling `invoke`
//!   directly. The worker cannot ship this (deadlines and cancellation of a CPU-bound plugin
//!   depend on epoch interruption); it measures what the interruption checks cost.
//! - **process**: what ships for that: `trainer.wasm` with `isolation = "process"` in its
//!   manifest, through `PluginHost::invoke` with the worker's invocation process
//!   (`mlx-worker run-invocation`, built by this bench), so each run pays the child's start,
//!   its engine and its load from the compile cache. Its CPU time is the child's.
//!
//! Cases: the heavier families, plus `decision_tree` with one split, whose training is next to
//! nothing: its time is the fixed cost every case pays (read and encode the two CSVs, score
//! both splits, write model.json).
//!
//! Wall time is the measure; the CPU time of the same runs is reported too (the guest's thread;
//! the native process's, less what a process that trains nothing takes), which other load on
//! a shared machine moves less.
//!
//! Knobs: `MLX_ML_RUNS` (timed repetitions, 5; one untimed warm-up before), `MLX_ML_CASES`
//! (comma-separated substrings of the case names to run), `MLX_ML_CONTENDERS` (comma-separated
//! of `wasm`, `scalar`, `native`, `no-epoch`, `no-epoch-scalar`, `process`), and for profiling
//! `MLX_ML_PERFMAP=1` (the diagnostic engines write `/tmp/perf-PID.map`, so `perf record` of
//! this bench names the guest's functions) and `MLX_ML_BENCH_EPOCH=1` (the diagnostic engines
//! keep epoch interruption on: the shipped settings, with names).

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::Instant,
};

use anyhow::{Context, bail, ensure};
use mlx_e2e::{
    PluginsDir, bench::write_report, compile_cache, components::without_cargo_test_env,
    invoke_once, worker_binary, workspace_root,
};
use mlx_runtime::{
    HostSettings, PluginHost,
    child::ChildProgram,
    engine::{
        CORE_INSTANCES_PER_COMPONENT, EngineSettings, MEMORIES_PER_COMPONENT, TABLES_PER_COMPONENT,
    },
    plugin::{LoadedPlugin, manifest::Manifest},
    sandbox::{GuestState, Sandboxes, capabilities::activity::ActivitySignals, workflow_dir_name},
};
use serde_json::{Value, json};

const WORKFLOW: &str = "ml";
const DEFAULT_RUNS: usize = 5;
/// train_model's default: a checkpoint file every 10 rounds (forest trees, boosting rounds),
/// as a user gets it. Single-fit families (logistic regression, k-means) write none.
const CHECKPOINT_EVERY: u32 = 10;

/// What is trained: (name, train_model's `model`).
const CASES: [(&str, &str); 5] = [
    (
        "random_forest, 100 trees",
        r#"{"family": "random_forest", "hyperparameters": {"n_estimators": 100, "seed": 42}}"#,
    ),
    (
        "gradient_boosting, 50 rounds × 10 classes, depth 3",
        r#"{"family": "gradient_boosting",
            "hyperparameters": {"n_estimators": 50, "max_depth": 3, "seed": 42}}"#,
    ),
    (
        "logistic_regression (L-BFGS)",
        r#"{"family": "logistic_regression"}"#,
    ),
    (
        "kmeans, k = 10",
        r#"{"family": "kmeans", "hyperparameters": {"k": 10, "seed": 42}}"#,
    ),
    (
        "decision_tree, 1 split (fixed costs)",
        r#"{"family": "decision_tree", "hyperparameters": {"max_depth": 1}}"#,
    ),
];
/// The case whose time is the fixed cost of every case (also what a native process that
/// trains nothing is given, to measure the process's own CPU time).
const FIXED: usize = 4;

/// The contenders, in the report's column order.
const WASM: usize = 0;
const SCALAR: usize = 1;
const NATIVE: usize = 2;
const NO_EPOCH: usize = 3;
const NO_EPOCH_SCALAR: usize = 4;
const PROCESS: usize = 5;
const CONTENDERS: usize = 6;
/// Their names, also as `MLX_ML_CONTENDERS` takes them.
const NAMES: [&str; CONTENDERS] = [
    "wasm",
    "scalar",
    "native",
    "no-epoch",
    "no-epoch-scalar",
    "process",
];

fn runs() -> anyhow::Result<usize> {
    match std::env::var("MLX_ML_RUNS") {
        Ok(n) => {
            let n: usize = n.parse().context("MLX_ML_RUNS is a number")?;
            ensure!(n >= 1, "MLX_ML_RUNS must be at least 1");
            Ok(n)
        }
        Err(_) => Ok(DEFAULT_RUNS),
    }
}

fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

fn cargo(plugins: &Path) -> Command {
    let mut command = Command::new(env!("CARGO"));
    command.current_dir(plugins);
    without_cargo_test_env(&mut command);
    command
}

/// Builds the native trainer (release, host target) and returns its path.
fn native_trainer() -> anyhow::Result<PathBuf> {
    let plugins = workspace_root().join("plugins");
    let target = "x86_64-unknown-linux-gnu";
    let status = cargo(&plugins)
        .args(["build", "--release", "--quiet", "--target", target])
        .args(["-p", "mlx-plugin-trainer", "--example", "train_native"])
        .status()?;
    ensure!(status.success(), "building train_native failed");
    Ok(plugins.join(format!("target/{target}/release/examples/train_native")))
}

/// Builds the trainer component without SIMD128 into a target directory of its own (the flag
/// changes every crate's code, so it must not share the default one) and returns its path.
fn scalar_trainer() -> anyhow::Result<PathBuf> {
    let plugins = workspace_root().join("plugins");
    let target_dir = plugins.join("target/scalar");
    let status = cargo(&plugins)
        .args(["build", "--release", "--quiet", "--target", "wasm32-wasip2"])
        .args(["-p", "mlx-plugin-trainer"])
        .env("CARGO_TARGET_DIR", &target_dir)
        // With --target, RUSTFLAGS reach the guest's crates only, not build scripts or macros,
        // and replace the config's `target.wasm32-wasip2.rustflags` (+simd128).
        .env("RUSTFLAGS", "-C target-feature=-simd128")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()?;
    ensure!(status.success(), "building the scalar trainer failed");
    let path = target_dir.join("wasm32-wasip2/release/trainer.wasm");
    // LLVM lists the features a module was built with in its `target_features` section: the
    // shipped component must name simd128, the scalar one must not.
    let says_simd = |path: &Path| -> anyhow::Result<bool> {
        Ok(std::fs::read(path)?.windows(7).any(|w| w == b"simd128"))
    };
    ensure!(
        !says_simd(&path)?,
        "{} was built with simd128",
        path.display()
    );
    let shipped = plugins.join("target/wasm32-wasip2/release/trainer.wasm");
    ensure!(
        says_simd(&shipped)?,
        "{} was built without simd128",
        shipped.display()
    );
    Ok(path)
}

/// The runtime's engine settings (`mlx_runtime::engine::build_engine`) on a pool of a few
/// slots, with epoch interruption as asked; optionally writing a perf map.
fn bench_engine(epoch: bool, perfmap: bool) -> anyhow::Result<wasmtime::Engine> {
    let slots = 4;
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .total_core_instances(slots * CORE_INSTANCES_PER_COMPONENT)
        .total_memories(slots * 2)
        .total_tables(slots * 4)
        .total_stacks(slots)
        .max_memory_size(EngineSettings::default().max_memory_bytes as usize)
        .max_component_instance_size(1 << 20)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .pagemap_scan(wasmtime::Enabled::Auto)
        .linear_memory_keep_resident(2 << 20)
        .table_keep_resident(64 << 10);
    let mut config = wasmtime::Config::new();
    config
        .allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool))
        .epoch_interruption(epoch)
        .max_wasm_stack(1 << 20)
        .wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Enable);
    if perfmap {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    wasmtime::Engine::new(&config).map_err(|e| anyhow::anyhow!("{e:#}"))
}

/// A component on a bench engine, run through the runtime's own sandbox.
struct Direct {
    sandboxes: Sandboxes,
    pre: wasmtime::component::InstancePre<GuestState>,
    manifest: Arc<Manifest>,
}

impl Direct {
    fn new(engine: &wasmtime::Engine, wasm: &Path, loaded: &LoadedPlugin) -> anyhow::Result<Self> {
        let wasm_err = |e: wasmtime::Error| anyhow::anyhow!("{e:#}");
        let sandboxes = Sandboxes::new(engine, false);
        let component =
            wasmtime::component::Component::new(engine, std::fs::read(wasm)?).map_err(wasm_err)?;
        let pre = sandboxes
            .linker()
            .map_err(wasm_err)?
            .instantiate_pre(&component)
            .map_err(wasm_err)?;
        Ok(Self {
            sandboxes,
            pre,
            manifest: loaded.manifest.clone(),
        })
    }

    /// `invoke(operation, input)` in a fresh store and instance, as the runtime would.
    async fn invoke(
        &self,
        artifacts: &Path,
        operation: &str,
        input: &Value,
    ) -> anyhow::Result<Value> {
        use wasmtime::component::Val;
        let wasm_err = |e: wasmtime::Error| anyhow::anyhow!("{e:#}");
        let (signals, _details) = ActivitySignals::new(tokio_util::sync::CancellationToken::new());
        let mut store = self
            .sandboxes
            .store(&self.manifest, Some(artifacts), None, signals)?;
        let instance = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(wasm_err)?;
        let plugin = instance
            .get_export_index(&mut store, None, "mlx:plugin/plugin@0.1.0")
            .context("no plugin export")?;
        let invoke = instance
            .get_export_index(&mut store, Some(&plugin), "invoke")
            .context("no invoke export")?;
        let func = instance.get_func(&mut store, invoke).context("invoke")?;
        let context = Val::Record(vec![
            ("workflow-id".into(), Val::String(WORKFLOW.into())),
            ("activity-id".into(), Val::String("1".into())),
            ("attempt".into(), Val::U32(1)),
            ("last-heartbeat-details".into(), Val::Option(None)),
        ]);
        let args = [
            Val::String(operation.into()),
            Val::String(input.to_string()),
            context,
        ];
        let mut results = [Val::Bool(false)];
        func.call_async(&mut store, &args, &mut results)
            .await
            .map_err(wasm_err)?;
        match &results[0] {
            Val::Result(Ok(Some(output))) => match &**output {
                Val::String(text) => Ok(serde_json::from_str(text)?),
                other => bail!("invoke returned {other:?}"),
            },
            other => bail!("{operation} failed: {other:?}"),
        }
    }
}

/// One native run in its own process: (wall time measured inside it around the training
/// call, so process start is not counted; the process's CPU time; the output).
fn run_native(binary: &Path, runs: u32, input: &Value) -> anyhow::Result<(f64, f64, Value)> {
    let cpu = children_cpu();
    let out = Command::new(binary)
        .args([&runs.to_string(), &input.to_string()])
        .stderr(std::process::Stdio::null())
        .output()?;
    let cpu = children_cpu() - cpu;
    ensure!(
        out.status.success(),
        "train_native failed: {:?}",
        out.status
    );
    if runs == 0 {
        return Ok((0.0, cpu, Value::Null));
    }
    let line: Value = serde_json::from_slice(&out.stdout)?;
    let secs = line["secs"].as_f64().context("secs")?;
    Ok((secs, cpu, line["output"].clone()))
}

/// CPU time of this thread, where the guest runs (the runtime calls it on the caller's
/// thread; wasmtime's fibers included), in seconds. The file reads and writes wasmtime-wasi
/// hands to tokio's blocking threads are not in it: a few milliseconds here.
fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes the clock into `ts`, which outlives the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// The CPU time of the invocation process a call just used: the runtime reaps it in the
/// background once the call has returned, and only then does it count among this process's
/// children; waits for that (a few milliseconds), or gives NaN after 10 s.
async fn reaped_child_cpu(before: f64) -> f64 {
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = children_cpu();
        if now > before {
            return now - before;
        }
        if Instant::now() > deadline {
            return f64::NAN;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// User + system CPU time of this process's waited-for children, in seconds.
fn children_cpu() -> f64 {
    // SAFETY: getrusage fills the zeroed struct, which outlives the call.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn median(xs: &[f64]) -> f64 {
    let mut xs = xs.to_vec();
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// The largest relative difference between two JSON documents' numbers and where it is, or
/// an error where they differ otherwise (keys, strings, integers, array lengths).
fn difference(a: &Value, b: &Value, at: &str) -> anyhow::Result<(f64, String)> {
    let worst_of = |pairs: Vec<(String, &Value, &Value)>| -> anyhow::Result<(f64, String)> {
        let mut worst = (0.0f64, String::new());
        for (path, x, y) in pairs {
            let d = difference(x, y, &path)?;
            if d.0 > worst.0 {
                worst = d;
            }
        }
        Ok(worst)
    };
    Ok(match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(0.0));
            let d = if x == y {
                0.0
            } else {
                (x - y).abs() / x.abs().max(y.abs())
            };
            (d, format!("{at}: {x} vs {y}"))
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => worst_of(
            x.iter()
                .zip(y)
                .enumerate()
                .map(|(i, (x, y))| (format!("{at}[{i}]"), x, y))
                .collect(),
        )?,
        (Value::Object(x), Value::Object(y)) if x.len() == y.len() => worst_of(
            x.iter()
                .map(|(k, v)| {
                    let w = y.get(k).with_context(|| format!("{at}.{k}: missing"))?;
                    Ok((format!("{at}.{k}"), v, w))
                })
                .collect::<anyhow::Result<_>>()?,
        )?,
        _ if a == b => (0.0, String::new()),
        _ => bail!("{at}: {a} vs {b}"),
    })
}

/// Floats of two runs that did the same work may differ in their last bits (exp, ln and sqrt
/// come from different libms natively and in Wasm).
const TOLERANCE: f64 = 1e-6;

/// The metrics of both splits (accuracy, confusion matrix, inertia, ...) of two outputs agree:
/// counts exactly, floats within [`TOLERANCE`]; returns the largest relative difference.
fn same_model(output: &Value, other: &Value) -> anyhow::Result<f64> {
    let mut worst = (0.0f64, String::new());
    for key in ["metrics", "train_metrics"] {
        let d = difference(&output[key], &other[key], key)?;
        if d.0 > worst.0 {
            worst = d;
        }
    }
    ensure!(
        worst.0 <= TOLERANCE,
        "metrics differ by up to {:.1e} (relative), at {}",
        worst.0,
        worst.1
    );
    Ok(worst.0)
}

/// A case's headline: test accuracy (classification) or inertia (clustering).
fn headline(output: &Value) -> (&'static str, f64) {
    let m = &output["metrics"];
    match m["accuracy"].as_f64() {
        Some(a) => ("test accuracy", a),
        None => ("test inertia", m["inertia"].as_f64().unwrap_or(f64::NAN)),
    }
}

/// The same predictions on both splits: accuracy and confusion matrix exactly.
fn same_predictions(output: &Value, other: &Value) -> anyhow::Result<()> {
    for key in ["metrics", "train_metrics"] {
        for metric in ["accuracy", "confusion_matrix"] {
            let (a, b) = (&output[key][metric], &other[key][metric]);
            ensure!(!a.is_null() && a == b, "{key}.{metric}: {a} vs {b}");
        }
    }
    Ok(())
}

/// Checks that every contender trained the same model as the first Wasm one (a ratio of
/// different work means nothing), and says how closely they agree.
///
/// The Wasm contenders are one source, one target and one libm: every metric must agree.
/// Native too, as a rule: smartcore draws from rand's `StdRng` (ChaCha, its `std_rand`
/// feature), the same stream on every target, so one seed grows the same trees and picks the
/// same k-means++ centres (its default, `SmallRng`, is Xoshiro128++ on wasm32 and Xoshiro256++
/// on x86_64, and grew different forests). What may still differ is libm: glibc's `exp` and
/// `ln` natively, wasi-libc's in Wasm, apart in the last bit of some results. Gradient
/// boosting feeds `exp` back into training (each round fits the softmax residuals), so a
/// last-bit difference can flip a near-tie between two splits in a later tree. Then native
/// must still predict exactly the same classes on both splits (accuracy and confusion matrix,
/// the check this bench has always made), and the note says how far its probabilities are.
fn agreement(outputs: &[Value], active: &[bool]) -> anyhow::Result<String> {
    let mut wasm = [WASM, SCALAR, NO_EPOCH, NO_EPOCH_SCALAR, PROCESS]
        .into_iter()
        .filter(|&c| active[c]);
    let reference = match wasm.next() {
        Some(c) => c,
        None if active[NATIVE] => return Ok("native only".into()),
        None => bail!("no contender ran"),
    };
    let first = &outputs[reference];
    let differs = |c: usize| {
        format!(
            "{} trained another model than {}:\n{}: {}\n{}: {}",
            NAMES[c],
            NAMES[reference],
            NAMES[c],
            outputs[c]["metrics"],
            NAMES[reference],
            first["metrics"]
        )
    };
    let mut worst = 0.0f64;
    for c in wasm {
        worst = worst.max(same_model(&outputs[c], first).with_context(|| differs(c))?);
    }
    let (what, value) = headline(first);
    let mut note = format!("{what} {value:.4}");
    if active[NATIVE] {
        let native = &outputs[NATIVE];
        match same_model(native, first) {
            Ok(w) => worst = worst.max(w),
            Err(strict) => {
                same_predictions(native, first).with_context(|| differs(NATIVE))?;
                note += &format!(
                    "; native predicts the same classes on both splits, its other metrics \
                     differ ({strict:#})"
                );
            }
        }
    }
    Ok(format!(
        "same model on every contender ({note}; metrics agree to {worst:.0e})"
    ))
}

/// A resumed run would time a fraction of the training: train_model resumes from a journal it
/// finds in its output directory, and removes it only on success.
fn trained_in_full(output: &Value) -> anyhow::Result<()> {
    let rounds = &output["rounds"];
    ensure!(
        rounds["resumed_from"].is_null() && rounds["run"] == rounds["total"],
        "not a full training: {rounds}"
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs = runs()?;
    let filter: Option<Vec<String>> = std::env::var("MLX_ML_CASES")
        .ok()
        .map(|s| s.split(',').map(|p| p.trim().to_string()).collect());
    let cases: Vec<usize> = (0..CASES.len())
        .filter(|&i| {
            filter
                .as_ref()
                .is_none_or(|f| f.iter().any(|p| CASES[i].0.contains(p.as_str())))
        })
        .collect();
    ensure!(!cases.is_empty(), "MLX_ML_CASES matches no case");
    let (perfmap, bench_epoch) = (flag("MLX_ML_PERFMAP"), flag("MLX_ML_BENCH_EPOCH"));
    let active: Vec<bool> = match std::env::var("MLX_ML_CONTENDERS") {
        Ok(list) => {
            let names: Vec<&str> = list.split(',').map(str::trim).collect();
            if let Some(unknown) = names.iter().find(|n| !NAMES.contains(n)) {
                bail!("MLX_ML_CONTENDERS: {unknown:?} is none of {NAMES:?}");
            }
            NAMES.iter().map(|n| names.contains(n)).collect()
        }
        Err(_) => vec![true; CONTENDERS],
    };

    // Builds first: the components every test uses, the scalar one, the native program.
    let plugins = PluginsDir::with(&["csv", "trainer"]);
    let scalar_wasm = scalar_trainer()?;
    let native = native_trainer()?;
    std::fs::copy(&scalar_wasm, plugins.path().join("trainer_scalar.wasm"))?;
    std::fs::copy(
        plugins.path().join("trainer.wasm"),
        plugins.path().join("trainer_process.wasm"),
    )?;
    plugins.write_manifest("trainer_process", "isolation = \"process\"\n");
    let data = workspace_root().join("data");
    plugins.write_manifest(
        "csv",
        &format!("[[filesystem]]\nhost = {data:?}\nguest = \"/data\"\n"),
    );

    let artifacts = tempfile::tempdir()?;
    let runtime = PluginHost::new(HostSettings {
        artifacts_dir: Some(artifacts.path().to_path_buf()),
        cache_dir: Some(compile_cache().to_path_buf()),
        ..Default::default()
    })?;
    // The same runtime with the daemon's invocation process, for the `process` contender.
    let isolating = PluginHost::new(HostSettings {
        artifacts_dir: Some(artifacts.path().to_path_buf()),
        cache_dir: Some(compile_cache().to_path_buf()),
        invoker: Some(ChildProgram {
            program: worker_binary().to_path_buf(),
            args: vec!["run-invocation".into()],
        }),
        ..Default::default()
    })?;
    let csv = runtime.load(&plugins.path().join("csv.wasm")).await?;
    let shipped_path = plugins.path().join("trainer.wasm");
    let scalar_path = plugins.path().join("trainer_scalar.wasm");
    let shipped = runtime.load(&shipped_path).await?;
    let scalar = runtime.load(&scalar_path).await?;
    let isolated = isolating
        .load(&plugins.path().join("trainer_process.wasm"))
        .await?;
    let engine = bench_engine(bench_epoch, perfmap)?;
    let direct_shipped = Direct::new(&engine, &shipped_path, &shipped)?;
    let direct_scalar = Direct::new(&engine, &scalar_path, &scalar)?;
    let host_artifacts = artifacts.path().join(workflow_dir_name(WORKFLOW));

    // One split, made by the real csv plugin, read by every contender.
    let split = json!({"source": "/data/digits.csv", "target": "target", "test_fraction": 0.2,
                       "seed": 42});
    let extracted = invoke_once(&runtime, &csv, "extract_data", &split, WORKFLOW).await?;
    let (train_rows, test_rows) = (
        &extracted.output["train"]["rows"],
        &extracted.output["test"]["rows"],
    );

    let input = |i: usize, dir: &str, contender: &str| {
        let model: Value = serde_json::from_str(CASES[i].1).expect("a case's model is JSON");
        json!({
            "train": format!("{dir}/dataset/train.csv"),
            "test": format!("{dir}/dataset/test.csv"),
            "target": "target",
            "model": model,
            "checkpoint_every": CHECKPOINT_EVERY,
            "output_dir": format!("{dir}/model-{contender}-{i}"),
        })
    };
    let host_dir = host_artifacts.display().to_string();
    // What a native process costs in CPU besides the training: start, read its input, exit.
    let mut process = Vec::new();
    for _ in 0..5 {
        process.push(run_native(&native, 0, &input(FIXED, &host_dir, "native"))?.1);
    }
    let process_cpu = median(&process);

    // secs[case][contender] = the timed runs; outputs[case][contender] = the last output.
    let mut secs = vec![vec![Vec::new(); CONTENDERS]; CASES.len()];
    let mut cpu = vec![vec![Vec::new(); CONTENDERS]; CASES.len()];
    let mut outputs = vec![vec![Value::Null; CONTENDERS]; CASES.len()];
    for rep in 0..=runs {
        for &i in &cases {
            let mut times = [f64::NAN; CONTENDERS];
            for k in 0..CONTENDERS {
                let contender = (k + rep) % CONTENDERS;
                if !active[contender] {
                    continue;
                }
                let start = Instant::now();
                let cpu_start = thread_cpu();
                let (elapsed, cpu_secs, output) = match contender {
                    WASM | SCALAR => {
                        let plugin = if contender == WASM { &shipped } else { &scalar };
                        let wasm_input = input(i, "/artifacts", NAMES[contender]);
                        let out =
                            invoke_once(&runtime, plugin, "train_model", &wasm_input, WORKFLOW)
                                .await
                                .with_context(|| format!("{}, {}", CASES[i].0, NAMES[contender]))?
                                .output;
                        let cpu_secs = thread_cpu() - cpu_start;
                        (start.elapsed().as_secs_f64(), cpu_secs, out)
                    }
                    PROCESS => {
                        let wasm_input = input(i, "/artifacts", NAMES[contender]);
                        let children = children_cpu();
                        let out = invoke_once(
                            &isolating,
                            &isolated,
                            "train_model",
                            &wasm_input,
                            WORKFLOW,
                        )
                        .await
                        .with_context(|| format!("{}, {}", CASES[i].0, NAMES[contender]))?
                        .output;
                        let secs = start.elapsed().as_secs_f64();
                        (secs, reaped_child_cpu(children).await, out)
                    }
                    NO_EPOCH | NO_EPOCH_SCALAR => {
                        let direct = if contender == NO_EPOCH {
                            &direct_shipped
                        } else {
                            &direct_scalar
                        };
                        let wasm_input = input(i, "/artifacts", NAMES[contender]);
                        let out = direct
                            .invoke(&host_artifacts, "train_model", &wasm_input)
                            .await
                            .with_context(|| format!("{}, {}", CASES[i].0, NAMES[contender]))?;
                        let cpu_secs = thread_cpu() - cpu_start;
                        (start.elapsed().as_secs_f64(), cpu_secs, out)
                    }
                    _ => {
                        let (secs, cpu_secs, out) =
                            run_native(&native, 1, &input(i, &host_dir, "native"))?;
                        (secs, (cpu_secs - process_cpu).max(0.0), out)
                    }
                };
                trained_in_full(&output)
                    .with_context(|| format!("{}, {}", CASES[i].0, NAMES[contender]))?;
                if rep > 0 {
                    secs[i][contender].push(elapsed);
                    cpu[i][contender].push(cpu_secs);
                }
                times[contender] = elapsed;
                outputs[i][contender] = output;
            }
            eprintln!(
                "{}, repetition {rep}{}: {} s",
                CASES[i].0,
                if rep == 0 { " (warm-up)" } else { "" },
                times
                    .iter()
                    .map(|t| format!("{t:.3}"))
                    .collect::<Vec<_>>()
                    .join(" / ")
            );
        }
    }

    // Every contender did the same work.
    let mut notes = Vec::new();
    for &i in &cases {
        let note = agreement(&outputs[i], &active).with_context(|| CASES[i].0)?;
        notes.push(format!("- {}: {note}.", CASES[i].0));
    }

    let medians = |xs: &Vec<Vec<Vec<f64>>>| -> Vec<Vec<f64>> {
        xs.iter()
            .map(|per| {
                per.iter()
                    .map(|x| if x.is_empty() { f64::NAN } else { median(x) })
                    .collect()
            })
            .collect()
    };
    let (med, med_cpu) = (medians(&secs), medians(&cpu));
    let no_epoch = if bench_epoch {
        "bench engine, epoch on"
    } else {
        "no epoch"
    };
    let mut report = format!(
        "# ML compute: trainer families, Wasm vs native\n\n\
         `train_model` on data/digits.csv (split by the csv plugin, seed 42: {train_rows} train \
         / {test_rows} test rows, 64 features, 10 classes), a checkpoint file every \
         {CHECKPOINT_EVERY} rounds. Wall time of the whole operation (read and encode both \
         CSVs, train, score both splits, write model.json); Wasm through the runtime (fresh \
         instance included), native timed in-process. Median of {runs} repetitions after one \
         warm-up, the contenders interleaved in a rotating order. \"{no_epoch}\": the same \
         components on this bench's engine with epoch interruption off (a diagnostic, not \
         shippable).\n\n\
         | model | native (s) | Wasm (s) | **Wasm / native** | scalar (s) | **scalar / native** \
         | {no_epoch} (s) | / native | {no_epoch} scalar (s) | / native \
         | process (s) | **process / native** |\n\
         | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |\n"
    );
    for &i in &cases {
        let m = &med[i];
        let n = m[NATIVE];
        report += &format!(
            "| {} | {n:.3} | {:.3} | **{:.2}** | {:.3} | **{:.2}** | {:.3} | {:.2} | {:.3} | {:.2} \
             | {:.3} | **{:.2}** |\n",
            CASES[i].0,
            m[WASM],
            m[WASM] / n,
            m[SCALAR],
            m[SCALAR] / n,
            m[NO_EPOCH],
            m[NO_EPOCH] / n,
            m[NO_EPOCH_SCALAR],
            m[NO_EPOCH_SCALAR] / n,
            m[PROCESS],
            m[PROCESS] / n,
        );
    }
    report += &format!(
        "\nCPU time of the same runs (the thread the guest runs on; the invocation process's \
         for `process`; the native process's, less \
         {:.1} ms that a process which trains nothing takes): what other load on the machine \
         moves less than wall time.\n\n\
         | model | native CPU (s) | Wasm / native | scalar / native | {no_epoch} / native \
         | {no_epoch} scalar / native | process / native |\n\
         | --- | --: | --: | --: | --: | --: | --: |\n",
        process_cpu * 1e3
    );
    for &i in &cases {
        let m = &med_cpu[i];
        let n = m[NATIVE];
        report += &format!(
            "| {} | {n:.3} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
            CASES[i].0,
            m[WASM] / n,
            m[SCALAR] / n,
            m[NO_EPOCH] / n,
            m[NO_EPOCH_SCALAR] / n,
            m[PROCESS] / n,
        );
    }
    report += "\nEvery run (s):\n\n| model | contender | runs |\n| --- | --- | --- |\n";
    let names = [
        "Wasm",
        "Wasm scalar",
        "native",
        &format!("Wasm, {no_epoch}"),
        &format!("Wasm scalar, {no_epoch}"),
        "Wasm, isolation = \"process\"",
    ];
    for &i in &cases {
        for (c, name) in names.iter().enumerate() {
            let list: Vec<String> = secs[i][c].iter().map(|x| format!("{x:.3}")).collect();
            report += &format!("| {} | {name} | {} |\n", CASES[i].0, list.join(", "));
        }
    }
    report += "\nSame work:\n\n";
    report += &notes.join("\n");
    report += "\n";
    write_report("ml", &report)?;
    Ok(())
}
