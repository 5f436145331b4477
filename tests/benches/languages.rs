//! Languages: one plugin written in Rust, Python and JavaScript (the contract plugins,
//! plugins/CONTRACT.md, each with its language's SDK) in the worker's runtime, side by side in
//! one process and one run:
//!
//! - load from a warm compile cache (`PluginHost::load` after a first load filled the cache):
//!   read and hash the file, read, check and deserialize the compiled artifact
//!   (`PluginHost::compile`), then review imports, link and call `describe`
//!   (`PluginHost::load_compiled`); LOADS times each, alternating;
//! - instantiate + trivial call (`echo {"value": 1}`): instantiation as the runtime's
//!   `Observer` reports it, the whole invocation (store, instance, call, output parsed, store
//!   dropped), and minor page faults per call; ROUNDS rounds of PER_ROUND calls each,
//!   alternating the languages (the order rotates every round);
//! - memory per in-flight instance: peak guest linear memory of `echo` (the observer), and
//!   the growth of this process's RSS with IN_FLIGHT `wait_for_cancel` invocations (heartbeat,
//!   sleep, repeat) all in flight at once, each language on a fresh host, twice, alternating.
//!
//! The components are not built here (each language has its own toolchain): Rust
//! `plugins/target/wasm32-wasip2/release/contract_rust.wasm` (`make plugins`), Python
//! `plugins/target/python/contract.wasm` (`make python-plugins`), JavaScript
//! `plugins/target/js/contract.wasm` (`make js-plugins`). A missing one is skipped, saying
//! so; `MLX_BENCH_{RUST,PYTHON,JS}_WASM` point at another file with the same `echo` and
//! `wait_for_cancel` (e.g. testkit.wasm).
//!
//! `cargo bench -p mlx-e2e --bench languages`. Not a test: nothing asserts a time. Markdown
//! goes to stdout and `target/bench-report/languages.md`.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use mlx_e2e::{bench::write_report, proc_stats::status_bytes, workspace_root};
use mlx_runtime::{
    HostSettings, PluginHost,
    contract::InvocationContext,
    engine::{
        CORE_INSTANCES_PER_COMPONENT, EngineSettings, MEMORIES_PER_COMPONENT, TABLES_PER_COMPONENT,
    },
    failure::InvocationError,
    observer::{Observer, Outcome, ReloadResult},
    plugin::LoadedPlugin,
    sandbox::capabilities::activity::ActivitySignals,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const LOADS: usize = 10;
const WARMUP: usize = 20;
const ROUNDS: usize = 20;
const PER_ROUND: usize = 50;
const IN_FLIGHT: usize = 32;
const MEMORY_ROUNDS: usize = 2;

/// Targets from issue 14, per language: (instantiate + trivial call p50, warm load), in ms.
fn targets(language: &str) -> (Option<f64>, f64) {
    match language {
        "Python" => (Some(2.0), 50.0),
        "JavaScript" => (Some(1.0), 50.0),
        _ => (None, 50.0),
    }
}

struct Contender {
    language: &'static str,
    /// Where the component came from (reported), and its copy in the bench's plugins
    /// directory (no manifest next to it: defaults, nothing granted).
    source: PathBuf,
    path: PathBuf,
    bytes: u64,
}

/// The contract components that exist, copied into `dir`; the missing ones are named on
/// stderr and in the report.
fn contenders(dir: &Path, skipped: &mut Vec<String>) -> anyhow::Result<Vec<Contender>> {
    let root = workspace_root();
    let all = [
        (
            "Rust",
            "MLX_BENCH_RUST_WASM",
            "plugins/target/wasm32-wasip2/release/contract_rust.wasm",
            "make plugins",
        ),
        (
            "Python",
            "MLX_BENCH_PYTHON_WASM",
            "plugins/target/python/contract.wasm",
            "make python-plugins",
        ),
        (
            "JavaScript",
            "MLX_BENCH_JS_WASM",
            "plugins/target/js/contract.wasm",
            "make js-plugins",
        ),
    ];
    let mut found = Vec::new();
    for (language, variable, default, build) in all {
        let source = std::env::var_os(variable)
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join(default));
        if !source.exists() {
            let why = format!(
                "{language} skipped: {} is missing (`{build}`, or set {variable})",
                source.display()
            );
            eprintln!("{why}");
            skipped.push(why);
            continue;
        }
        let path = dir.join(format!("{}.wasm", language.to_lowercase()));
        std::fs::copy(&source, &path).with_context(|| format!("copying {}", source.display()))?;
        found.push(Contender {
            language,
            bytes: std::fs::metadata(&path)?.len(),
            source,
            path,
        });
    }
    ensure!(!found.is_empty(), "no contract component to measure");
    Ok(found)
}

/// What the runtime reports of each invocation.
#[derive(Default)]
struct Recorder(Mutex<Vec<Sample>>);

struct Sample {
    plugin: String,
    operation: String,
    instantiation: Option<Duration>,
    duration: Duration,
    peak_memory: Option<usize>,
}

impl Observer for Recorder {
    fn invocation(&self, outcome: &Outcome<'_>) {
        self.0.lock().unwrap().push(Sample {
            plugin: outcome.plugin.to_string(),
            operation: outcome.operation.to_string(),
            instantiation: outcome.instantiation,
            duration: outcome.duration,
            peak_memory: outcome.peak_memory_bytes,
        });
    }

    fn reload(&self, _: ReloadResult) {}
}

impl Recorder {
    fn take(&self) -> Vec<Sample> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn host(
    cache: &Path,
    artifacts: &Path,
    recorder: &Arc<Recorder>,
) -> anyhow::Result<Arc<PluginHost>> {
    PluginHost::new(HostSettings {
        cache_dir: Some(cache.to_path_buf()),
        artifacts_dir: Some(artifacts.to_path_buf()),
        observer: Some(recorder.clone() as Arc<dyn Observer>),
        ..Default::default()
    })
    .map_err(|e| anyhow::anyhow!("building the engine: {e:#}"))
}

fn context() -> InvocationContext {
    InvocationContext {
        workflow_id: "languages".into(),
        activity_id: "1".into(),
        attempt: 1,
        last_heartbeat_details: None,
    }
}

async fn echo(runtime: &PluginHost, plugin: &LoadedPlugin) -> anyhow::Result<()> {
    let (signals, _) = ActivitySignals::new(CancellationToken::new());
    let input = json!({"value": 1});
    let done = runtime
        .invoke(plugin, "echo", &input, &context(), signals, None)
        .await
        .with_context(|| format!("{} echo", plugin.info.name))?;
    ensure!(
        done.output["value"] == 1,
        "{} echo returned {}",
        plugin.info.name,
        done.output
    );
    Ok(())
}

fn minor_faults() -> u64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_minflt as u64
}

fn rss() -> anyhow::Result<u64> {
    status_bytes(std::process::id(), "VmRSS")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib(bytes: f64) -> f64 {
    bytes / f64::from(1 << 20)
}

/// The `p`-th percentile (0..=100) of `xs`, nearest rank.
fn percentile(xs: &[f64], p: f64) -> f64 {
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The contenders in a different order each round, so none is always first after another.
fn rotated<T>(items: &[T], round: usize) -> impl Iterator<Item = &T> {
    let n = items.len();
    (0..n).map(move |i| &items[(i + round) % n])
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[derive(Default)]
struct Loads {
    cold: Duration,
    artifact_bytes: u64,
    /// (compile from the cache, link + describe) of each warm load.
    warm: Vec<(Duration, Duration)>,
}

async fn loads(
    contenders: &[Contender],
    cache: &Path,
    artifacts: &Path,
) -> anyhow::Result<Vec<Loads>> {
    let recorder = Arc::new(Recorder::default());
    let runtime = host(cache, artifacts, &recorder)?;
    let mut out: Vec<Loads> = contenders.iter().map(|_| Loads::default()).collect();
    for (c, l) in contenders.iter().zip(&mut out) {
        let before = dir_bytes(cache);
        let start = Instant::now();
        runtime
            .load(&c.path)
            .await
            .with_context(|| format!("loading {}", c.language))?;
        l.cold = start.elapsed();
        l.artifact_bytes = dir_bytes(cache).saturating_sub(before);
        eprintln!(
            "{}: cold load (compile) {:.2} s",
            c.language,
            l.cold.as_secs_f64()
        );
    }
    ensure!(
        runtime
            .compile_stats()
            .compiled
            .load(std::sync::atomic::Ordering::Relaxed)
            <= contenders.len() as u64,
        "something compiled twice"
    );
    for round in 0..LOADS {
        for i in rotated(&(0..contenders.len()).collect::<Vec<_>>(), round) {
            let c = &contenders[*i];
            let start = Instant::now();
            let (component, digest) = runtime.compile(&c.path).await?;
            let compiled = start.elapsed();
            let plugin = runtime.load_compiled(&c.path, component, digest).await?;
            let total = start.elapsed();
            drop(plugin);
            out[*i].warm.push((compiled, total - compiled));
        }
    }
    let hits = runtime
        .compile_stats()
        .cache_hits
        .load(std::sync::atomic::Ordering::Relaxed);
    ensure!(
        hits == (LOADS * contenders.len()) as u64,
        "{hits} cache hits for {} warm loads: the cache was not warm",
        LOADS * contenders.len()
    );
    Ok(out)
}

#[derive(Default)]
struct Calls {
    instantiation: Vec<f64>,
    invocation: Vec<f64>,
    wall: Vec<f64>,
    faults_per_call: Vec<f64>,
    peak_memory: usize,
}

async fn calls(
    contenders: &[Contender],
    cache: &Path,
    artifacts: &Path,
) -> anyhow::Result<Vec<Calls>> {
    let recorder = Arc::new(Recorder::default());
    let runtime = host(cache, artifacts, &recorder)?;
    let mut plugins = Vec::new();
    for c in contenders {
        plugins.push(runtime.load(&c.path).await?);
    }
    for plugin in &plugins {
        for _ in 0..WARMUP {
            echo(&runtime, plugin).await?;
        }
    }
    recorder.take();
    let mut out: Vec<Calls> = contenders.iter().map(|_| Calls::default()).collect();
    for round in 0..ROUNDS {
        for i in rotated(&(0..contenders.len()).collect::<Vec<_>>(), round) {
            let faults = minor_faults();
            for _ in 0..PER_ROUND {
                let start = Instant::now();
                echo(&runtime, &plugins[*i]).await?;
                out[*i].wall.push(ms(start.elapsed()));
            }
            out[*i]
                .faults_per_call
                .push((minor_faults() - faults) as f64 / PER_ROUND as f64);
        }
    }
    for sample in recorder.take() {
        let i = plugins
            .iter()
            .position(|p| p.info.name == sample.plugin)
            .context("an invocation of an unknown plugin")?;
        ensure!(sample.operation == "echo");
        let calls = &mut out[i];
        calls
            .instantiation
            .push(ms(sample.instantiation.context("no instantiation time")?));
        calls.invocation.push(ms(sample.duration));
        calls.peak_memory = calls.peak_memory.max(sample.peak_memory.unwrap_or(0));
    }
    Ok(out)
}

/// RSS growth per instance with IN_FLIGHT `wait_for_cancel` invocations of `c` in flight, on
/// a fresh host (a fresh instance pool: no slot kept resident by an earlier language).
async fn memory(c: &Contender, cache: &Path, artifacts: &Path) -> anyhow::Result<(f64, f64)> {
    let recorder = Arc::new(Recorder::default());
    let runtime = host(cache, artifacts, &recorder)?;
    let plugin = Arc::new(runtime.load(&c.path).await?);
    echo(&runtime, &plugin).await?;
    let idle = rss()?;
    let cancel = CancellationToken::new();
    let mut heartbeats = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (signals, rx) = ActivitySignals::new(cancel.child_token());
        heartbeats.push(rx);
        let (runtime, plugin) = (runtime.clone(), plugin.clone());
        tasks.push(tokio::spawn(async move {
            runtime
                .invoke(
                    &plugin,
                    "wait_for_cancel",
                    &json!({}),
                    &context(),
                    signals,
                    None,
                )
                .await
        }));
    }
    // In flight means instantiated and running: each has heartbeated.
    let all_beating = async {
        for rx in &mut heartbeats {
            rx.wait_for(|details| details.is_some()).await?;
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(120), all_beating)
        .await
        .with_context(|| format!("{}: not all {IN_FLIGHT} in flight after 120 s", c.language))??;
    let mut busy = 0;
    for _ in 0..10 {
        busy = busy.max(rss()?);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    for task in tasks {
        match task.await? {
            Err(InvocationError::Cancelled { .. }) => {}
            other => bail!("{}: wait_for_cancel ended {other:?}", c.language),
        }
    }
    Ok((
        mib(idle as f64),
        mib(busy as f64 - idle as f64) / IN_FLIGHT as f64,
    ))
}

/// Where a warm load's time goes, step by step as the loader and the compile cache do it
/// (`plugin/loader.rs`, `plugin/compile_cache.rs`); median of LOADS, in ms: read the `.wasm`,
/// hash it, read the cached artifact, hash it (checked against its sidecar), deserialize it
/// from those bytes, and (the alternative) deserialize it straight from the file (mmap).
async fn load_steps(c: &Contender, cache: &Path, runtime: &PluginHost) -> anyhow::Result<[f64; 6]> {
    use sha2::{Digest, Sha256};
    let hex = format!("{:x}", Sha256::digest(std::fs::read(&c.path)?));
    let artifact = std::fs::read_dir(cache)?
        .filter_map(|e| Some(e.ok()?.path()))
        .find(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with(&hex) && name.ends_with(".cwasm")
        })
        .with_context(|| format!("{}: no artifact in the compile cache", c.language))?;
    let mut steps: [Vec<f64>; 6] = Default::default();
    for _ in 0..LOADS {
        let lap = |t: &mut Instant, step: &mut Vec<f64>| {
            step.push(ms(t.elapsed()));
            *t = Instant::now();
        };
        let mut t = Instant::now();
        let wasm = std::fs::read(&c.path)?;
        lap(&mut t, &mut steps[0]);
        std::hint::black_box(Sha256::digest(&wasm));
        lap(&mut t, &mut steps[1]);
        let bytes = std::fs::read(&artifact)?;
        lap(&mut t, &mut steps[2]);
        std::hint::black_box(Sha256::digest(&bytes));
        lap(&mut t, &mut steps[3]);
        // SAFETY: the runtime's own compile cache wrote these bytes with this engine's
        // settings a moment ago, in a directory only this process uses.
        let component =
            unsafe { wasmtime::component::Component::deserialize(runtime.engine(), &bytes) }
                .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        lap(&mut t, &mut steps[4]);
        drop(component);
        t = Instant::now();
        // SAFETY: as above.
        let component = unsafe {
            wasmtime::component::Component::deserialize_file(runtime.engine(), &artifact)
        }
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        lap(&mut t, &mut steps[5]);
        drop(component);
    }
    Ok(steps.map(|xs| percentile(&xs, 50.0)))
}

/// The runtime's engine (`engine.rs`, `build_engine`) with another
/// `linear_memory_keep_resident`, few slots: the one setting under test differs.
fn engine_keeping(keep_resident: usize, pagemap: bool) -> wasmtime::Result<wasmtime::Engine> {
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    let slots = 4;
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
        .pagemap_scan(if pagemap {
            wasmtime::Enabled::Auto
        } else {
            wasmtime::Enabled::No
        })
        .linear_memory_keep_resident(keep_resident)
        .table_keep_resident(64 << 10);
    let mut config = wasmtime::Config::new();
    config
        .allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool))
        .epoch_interruption(true)
        .max_wasm_stack(1 << 20)
        .wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Enable);
    wasmtime::Engine::new(&config)
}

/// A component on an engine keeping `keep_resident` bytes per slot, imports answering zero
/// values: only wasmtime's own costs and the guest's remain.
struct Bare {
    engine: wasmtime::Engine,
    pre: wasmtime::component::InstancePre<()>,
}

impl Bare {
    fn new(serialized: &[u8], (keep_resident, pagemap): (usize, bool)) -> anyhow::Result<Self> {
        use wasmtime::component::Val;
        let wasm = |e: wasmtime::Error| anyhow::anyhow!("{e:#}");
        let engine = engine_keeping(keep_resident, pagemap).map_err(wasm)?;
        // SAFETY: serialized a moment ago by the runtime's engine, whose compilation settings
        // this engine shares (wasmtime refuses the bytes otherwise).
        let component = unsafe { wasmtime::component::Component::deserialize(&engine, serialized) }
            .map_err(wasm)?;
        let mut linker = wasmtime::component::Linker::new(&engine);
        // Interpreters ask the host for a clock or the environment even for `echo`: those get
        // zero values; anything returning a resource traps.
        let ty = component.component_type();
        for (name, import) in ty.imports(&engine) {
            let wasmtime::component::types::ComponentItem::ComponentInstance(instance) = import.ty
            else {
                continue;
            };
            let mut functions = linker.instance(name).map_err(wasm)?;
            for (name, item) in instance.exports(&engine) {
                let wasmtime::component::types::ComponentItem::ComponentFunc(func) = item.ty else {
                    continue;
                };
                let results: Option<Vec<_>> = func.results().map(|t| zero(&t)).collect();
                let Some(results) = results else { continue };
                // CPython reseeds `random` in each new instance and exits if it gets no bytes.
                let random = name == "get-random-bytes";
                functions
                    .func_new(name, move |_, _, args, out| {
                        out.clone_from_slice(&results);
                        if let (true, Some(Val::U64(n))) = (random, args.first()) {
                            out[0] = Val::List(vec![Val::U8(4); *n as usize]);
                        }
                        Ok(())
                    })
                    .map_err(wasm)?;
            }
        }
        linker
            .define_unknown_imports_as_traps(&component)
            .map_err(wasm)?;
        let pre = linker.instantiate_pre(&component).map_err(wasm)?;
        Ok(Self { engine, pre })
    }

    /// (instantiate, instantiate + echo + drop) in ms.
    async fn echo(&self) -> anyhow::Result<(f64, f64)> {
        use wasmtime::component::Val;
        let wasm = |e: wasmtime::Error| anyhow::anyhow!("{e:#}");
        let start = Instant::now();
        let mut store = wasmtime::Store::new(&self.engine, ());
        store.set_epoch_deadline(1 << 20);
        let instance = self.pre.instantiate_async(&mut store).await.map_err(wasm)?;
        let instantiated = ms(start.elapsed());
        let plugin = instance
            .get_export_index(&mut store, None, "mlx:plugin/plugin@0.1.0")
            .context("no plugin export")?;
        let invoke = instance
            .get_export_index(&mut store, Some(&plugin), "invoke")
            .context("no invoke export")?;
        let func = instance.get_func(&mut store, invoke).context("invoke")?;
        let context = Val::Record(vec![
            ("workflow-id".into(), Val::String("languages".into())),
            ("activity-id".into(), Val::String("1".into())),
            ("attempt".into(), Val::U32(1)),
            ("last-heartbeat-details".into(), Val::Option(None)),
        ]);
        let args = [
            Val::String("echo".into()),
            Val::String(r#"{"value": 1}"#.into()),
            context,
        ];
        let mut results = [Val::Bool(false)];
        func.call_async(&mut store, &args, &mut results)
            .await
            .map_err(wasm)?;
        ensure!(
            matches!(&results[0], Val::Result(Ok(Some(_)))),
            "echo failed: {:?}",
            results[0]
        );
        drop(store);
        Ok((instantiated, ms(start.elapsed())))
    }
}

/// The zero value of a component type, if it has one without a resource.
fn zero(ty: &wasmtime::component::types::Type) -> Option<wasmtime::component::Val> {
    use wasmtime::component::{Val, types::Type};
    let boxed = |t: Option<Type>| match t {
        Some(t) => zero(&t).map(|v| Some(Box::new(v))),
        None => Some(None),
    };
    Some(match ty {
        Type::Bool => Val::Bool(false),
        Type::S8 => Val::S8(0),
        Type::U8 => Val::U8(0),
        Type::S16 => Val::S16(0),
        Type::U16 => Val::U16(0),
        Type::S32 => Val::S32(0),
        Type::U32 => Val::U32(0),
        Type::S64 => Val::S64(0),
        Type::U64 => Val::U64(0),
        Type::Float32 => Val::Float32(0.0),
        Type::Float64 => Val::Float64(0.0),
        Type::Char => Val::Char('\0'),
        Type::String => Val::String(String::new()),
        Type::List(_) => Val::List(Vec::new()),
        Type::Record(r) => Val::Record(
            r.fields()
                .map(|f| Some((f.name.to_string(), zero(&f.ty)?)))
                .collect::<Option<_>>()?,
        ),
        Type::Tuple(t) => Val::Tuple(t.types().map(|t| zero(&t)).collect::<Option<_>>()?),
        Type::Enum(e) => Val::Enum(e.names().next()?.to_string()),
        Type::Option(_) => Val::Option(None),
        Type::Result(r) => Val::Result(Ok(boxed(r.ok())?)),
        Type::Flags(_) => Val::Flags(Vec::new()),
        Type::Variant(v) => {
            let case = v.cases().next()?;
            Val::Variant(case.name.to_string(), boxed(case.ty)?)
        }
        _ => return None,
    })
}

/// Per keep-resident setting and contender: (instantiate p50, instantiate + echo + drop p50,
/// minor faults per call), or why it could not run.
type KeepRow = Result<(f64, f64, f64), String>;

/// (bytes kept resident per slot, reset by PAGEMAP_SCAN): the runtime's setting, more kept,
/// and without the scan (then the first bytes kept are rewritten whole, the rest decommitted).
const KEEP_RESIDENT: [(usize, bool); 4] = [
    (2 << 20, true),
    (16 << 20, true),
    (64 << 20, true),
    (16 << 20, false),
];

async fn keep_resident(
    contenders: &[Contender],
    runtime: &PluginHost,
) -> anyhow::Result<Vec<Vec<KeepRow>>> {
    let mut bares: Vec<Vec<Result<Bare, String>>> = Vec::new();
    for keep in KEEP_RESIDENT {
        let mut row = Vec::new();
        for c in contenders {
            let (component, _) = runtime.compile(&c.path).await?;
            let bytes = component
                .serialize()
                .map_err(|e| anyhow::anyhow!("{e:#}"))?;
            let bare = Bare::new(&bytes, keep).map_err(|e| format!("{e:#}"));
            let bare = match bare {
                Ok(bare) => async {
                    for _ in 0..WARMUP {
                        bare.echo().await?;
                    }
                    anyhow::Ok(bare)
                }
                .await
                .map_err(|e| format!("{e:#}")),
                Err(e) => Err(e),
            };
            if let Err(e) = &bare {
                eprintln!("{} with stub imports: {e}", c.language);
            }
            row.push(bare);
        }
        bares.push(row);
    }
    // Per cell: instantiate times, instantiate + echo + drop times, faults per call.
    type Cell = (Vec<f64>, Vec<f64>, Vec<f64>);
    let mut samples: Vec<Vec<Cell>> = bares
        .iter()
        .map(|row| row.iter().map(|_| Default::default()).collect())
        .collect();
    let cells: Vec<(usize, usize)> = (0..KEEP_RESIDENT.len())
        .flat_map(|k| (0..contenders.len()).map(move |c| (k, c)))
        .collect();
    for round in 0..ROUNDS / 2 {
        for &(k, c) in rotated(&cells, round) {
            let Ok(bare) = &bares[k][c] else { continue };
            let faults = minor_faults();
            let s = &mut samples[k][c];
            for _ in 0..PER_ROUND {
                let (instantiated, total) = bare.echo().await?;
                s.0.push(instantiated);
                s.1.push(total);
            }
            s.2.push((minor_faults() - faults) as f64 / PER_ROUND as f64);
        }
    }
    Ok(bares
        .iter()
        .zip(samples)
        .map(|(row, samples)| {
            row.iter()
                .zip(samples)
                .map(|(bare, s)| match bare {
                    Ok(_) => Ok((
                        percentile(&s.0, 50.0),
                        percentile(&s.1, 50.0),
                        percentile(&s.2, 50.0),
                    )),
                    Err(e) => Err(e.clone()),
                })
                .collect()
        })
        .collect())
}

/// A fresh instance dropped without a call (`PluginHost::instantiate_only`): p50 ms and
/// minor faults per instance, alternating.
async fn instantiate_only(
    contenders: &[Contender],
    runtime: &PluginHost,
) -> anyhow::Result<Vec<(f64, f64)>> {
    let mut plugins = Vec::new();
    for c in contenders {
        plugins.push(runtime.load(&c.path).await?);
    }
    let mut samples: Vec<(Vec<f64>, Vec<f64>)> =
        contenders.iter().map(|_| Default::default()).collect();
    for round in 0..ROUNDS / 2 {
        for i in rotated(&(0..contenders.len()).collect::<Vec<_>>(), round) {
            let faults = minor_faults();
            for _ in 0..PER_ROUND {
                let start = Instant::now();
                runtime.instantiate_only(&plugins[*i]).await?;
                samples[*i].0.push(ms(start.elapsed()));
            }
            samples[*i]
                .1
                .push((minor_faults() - faults) as f64 / PER_ROUND as f64);
        }
    }
    Ok(samples
        .iter()
        .map(|s| (percentile(&s.0, 50.0), percentile(&s.1, 50.0)))
        .collect())
}

fn fmt_ms(x: f64) -> String {
    if x < 1.0 {
        format!("{x:.3}")
    } else {
        format!("{x:.2}")
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let plugins = tempfile::tempdir()?;
    let cache = tempfile::tempdir()?;
    let artifacts = tempfile::tempdir()?;
    let mut skipped = Vec::new();
    let contenders = contenders(plugins.path(), &mut skipped)?;

    let loaded = loads(&contenders, cache.path(), artifacts.path()).await?;
    let called = calls(&contenders, cache.path(), artifacts.path()).await?;
    let (steps, bare_only, kept) = {
        let recorder = Arc::new(Recorder::default());
        let runtime = host(cache.path(), artifacts.path(), &recorder)?;
        let mut steps = Vec::new();
        for c in &contenders {
            steps.push(load_steps(c, cache.path(), &runtime).await?);
        }
        let only = instantiate_only(&contenders, &runtime).await?;
        (steps, only, keep_resident(&contenders, &runtime).await?)
    };
    let mut rss_per: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for round in 0..MEMORY_ROUNDS {
        for c in rotated(&contenders, round) {
            let m = memory(c, cache.path(), artifacts.path()).await?;
            eprintln!(
                "{}: RSS idle {:.1} MiB, {:.3} MiB per instance",
                c.language, m.0, m.1
            );
            rss_per.entry(c.language).or_default().push(m);
        }
    }

    let mut report =
        String::from("# Languages: the same plugin in Rust, Python and JavaScript\n\n");
    report += &format!(
        "The contract plugins (plugins/CONTRACT.md) in the worker's runtime (`PluginHost`, \
         release build, default engine: pooling allocator, {} slots, at most \
         {CORE_INSTANCES_PER_COMPONENT} core instances, {MEMORIES_PER_COMPONENT} memories \
         and {TABLES_PER_COMPONENT} tables per component), one process, the languages \
         alternating.\n\n",
        EngineSettings::default().max_instances
    );
    for why in &skipped {
        report += &format!("- **{why}**\n");
    }
    if !skipped.is_empty() {
        report += "\n";
    }
    let rust = contenders.iter().position(|c| c.language == "Rust");

    report += &format!(
        "## Load from a warm compile cache\n\n\
         `PluginHost::load` after a first load filled the compile cache (and the page cache): \
         read and hash the component, read, check and deserialize its compiled artifact \
         (\"from cache\"), then review imports, link and `describe` (one instance). {LOADS} \
         loads each, alternating; p50 and the slowest.\n\n\
         | language | component (MiB) | compiled (MiB) | cold load (s) | from cache p50 (ms) | \
         link + describe p50 (ms) | **warm load p50 (ms)** | warm load max (ms) | target |\n\
         | --- | --: | --: | --: | --: | --: | --: | --: | --- |\n"
    );
    let mut warm_p50 = Vec::new();
    for (c, l) in contenders.iter().zip(&loaded) {
        let compiled: Vec<f64> = l.warm.iter().map(|w| ms(w.0)).collect();
        let linked: Vec<f64> = l.warm.iter().map(|w| ms(w.1)).collect();
        let total: Vec<f64> = l.warm.iter().map(|w| ms(w.0 + w.1)).collect();
        let p50 = percentile(&total, 50.0);
        warm_p50.push(p50);
        let target = targets(c.language).1;
        report += &format!(
            "| {} | {:.1} | {:.1} | {:.2} | {} | {} | **{}** | {} | ≤ {target} ms: {} |\n",
            c.language,
            mib(c.bytes as f64),
            mib(l.artifact_bytes as f64),
            l.cold.as_secs_f64(),
            fmt_ms(percentile(&compiled, 50.0)),
            fmt_ms(percentile(&linked, 50.0)),
            fmt_ms(p50),
            fmt_ms(percentile(&total, 100.0)),
            if p50 <= target { "met" } else { "missed" },
        );
    }

    report += &format!(
        "\n## Instantiate + trivial call\n\n\
         `echo {{\"value\": 1}}` through `PluginHost::invoke`, {ROUNDS} rounds of {PER_ROUND} \
         calls per language after {WARMUP} each to warm up, the order rotating every round. \
         Instantiate: a fresh instance from the pre-linked component (the observer's \
         instantiation time); invocation: everything `invoke` does (store and WASI context, \
         instance, call, output parsed, store dropped; the observer's duration). Page faults: \
         minor faults of the whole process per call.\n\n\
         | language | instantiate p50 (ms) | p90 | **invocation p50 (ms)** | p90 | \
         faults per call | peak guest memory (MiB) | target (invocation p50) |\n\
         | --- | --: | --: | --: | --: | --: | --: | --- |\n"
    );
    for (c, k) in contenders.iter().zip(&called) {
        let p50 = percentile(&k.invocation, 50.0);
        let target = match targets(c.language).0 {
            Some(t) => format!("≤ {t} ms: {}", if p50 <= t { "met" } else { "missed" }),
            None => "none".into(),
        };
        report += &format!(
            "| {} | {} | {} | **{}** | {} | {:.0} | {:.2} | {target} |\n",
            c.language,
            fmt_ms(percentile(&k.instantiation, 50.0)),
            fmt_ms(percentile(&k.instantiation, 90.0)),
            fmt_ms(p50),
            fmt_ms(percentile(&k.invocation, 90.0)),
            percentile(&k.faults_per_call, 50.0),
            mib(k.peak_memory as f64),
        );
    }
    if let Some(r) = rust {
        report += "\n| ratio to Rust | instantiate p50 | invocation p50 | warm load p50 |\n\
                   | --- | --: | --: | --: |\n";
        let base = &called[r];
        for (i, (c, k)) in contenders.iter().zip(&called).enumerate() {
            if i == r {
                continue;
            }
            report += &format!(
                "| {} / Rust | {:.1}× | {:.1}× | {:.1}× |\n",
                c.language,
                percentile(&k.instantiation, 50.0) / percentile(&base.instantiation, 50.0),
                percentile(&k.invocation, 50.0) / percentile(&base.invocation, 50.0),
                warm_p50[i] / warm_p50[r],
            );
        }
    }

    report += &format!(
        "\n## Memory per in-flight instance\n\n\
         Each language on a fresh host (a fresh instance pool): one `echo`, then this process's \
         VmRSS (idle), then {IN_FLIGHT} `wait_for_cancel` invocations (heartbeat, sleep, \
         repeat) started at once; once every one has heartbeated, the highest of 10 VmRSS \
         readings 20 ms apart, then all are cancelled. {MEMORY_ROUNDS} runs per language, \
         alternating; the mean. Peak guest memory: the largest linear memory of an `echo` \
         above.\n\n\
         | language | RSS idle (MiB) | **RSS per in-flight instance (MiB)** | every run | \
         peak guest memory (MiB) |\n| --- | --: | --: | --- | --: |\n"
    );
    for (c, k) in contenders.iter().zip(&called) {
        let runs = &rss_per[c.language];
        let mean = |f: fn(&(f64, f64)) -> f64| runs.iter().map(f).sum::<f64>() / runs.len() as f64;
        report += &format!(
            "| {} | {:.1} | **{:.2}** | {} | {:.2} |\n",
            c.language,
            mean(|m| m.0),
            mean(|m| m.1),
            runs.iter()
                .map(|m| format!("{:.2}", m.1))
                .collect::<Vec<_>>()
                .join(", "),
            mib(k.peak_memory as f64),
        );
    }
    report += &format!(
        "\n## Where the time goes\n\n\
         ### A warm load, step by step\n\n\
         The steps of the loader and the compile cache, timed one by one, median of {LOADS} \
         (ms); \"from file\" is `Component::deserialize_file` (the artifact mapped, not read \
         and copied), the alternative.\n\n\
         | language | read .wasm | SHA-256 .wasm | read artifact | SHA-256 artifact | \
         deserialize | deserialize from file |\n| --- | --: | --: | --: | --: | --: | --: |\n"
    );
    for (c, s) in contenders.iter().zip(&steps) {
        report += &format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            c.language,
            fmt_ms(s[0]),
            fmt_ms(s[1]),
            fmt_ms(s[2]),
            fmt_ms(s[3]),
            fmt_ms(s[4]),
            fmt_ms(s[5]),
        );
    }
    report += &format!(
        "\n### Instantiation and the pool's keep-resident setting\n\n\
         Instantiate + drop without a call (`PluginHost::instantiate_only`, the runtime's \
         engine), and instantiate + `echo` + drop on bare wasmtime: the runtime's engine \
         settings with another `linear_memory_keep_resident` (the runtime keeps 2 MiB per \
         slot), imports answering zero values (random bytes: a constant; those returning a resource \
         trap), no WASI context. {} rounds of \
         {PER_ROUND} per cell, alternating; p50 (ms) and minor page faults per call.\n\n\
         | language | instantiate + drop (runtime) | faults |",
        ROUNDS / 2
    );
    for keep in KEEP_RESIDENT {
        let scan = if keep.1 { "" } else { ", no scan" };
        report += &format!(
            " keep {} MiB{scan}: instantiate | + echo + drop | faults |",
            keep.0 >> 20
        );
    }
    report += "\n| --- | --: | --: |";
    for _ in KEEP_RESIDENT {
        report += " --: | --: | --: |";
    }
    report += "\n";
    for (i, c) in contenders.iter().enumerate() {
        report += &format!(
            "| {} | {} | {:.0} |",
            c.language,
            fmt_ms(bare_only[i].0),
            bare_only[i].1
        );
        for row in &kept {
            match &row[i] {
                Ok((inst, total, faults)) => {
                    report += &format!(" {} | {} | {:.0} |", fmt_ms(*inst), fmt_ms(*total), faults)
                }
                Err(_) => report += " n/a | n/a | n/a |",
            }
        }
        report += "\n";
    }
    for (i, c) in contenders.iter().enumerate() {
        if let Some(Err(e)) = kept.first().map(|row| &row[i]) {
            report += &format!("\n{} on bare wasmtime: {e}\n", c.language);
        }
    }
    report += "\nComponents measured:\n\n";
    for c in &contenders {
        report += &format!("- {}: `{}`\n", c.language, c.source.display());
    }
    write_report("languages", &report)?;
    Ok(())
}
