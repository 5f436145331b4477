//! The price of a fresh sandbox per invocation:
//! instantiate only vs instantiate + call + drop, pooling vs on-demand allocation, one vs
//! several concurrent invocations, two plugins in turn (how many used pool slots stay warm),
//! and input/output sizes from 1 KiB to 1 MiB.
//!
//! `cargo bench -p mlx-worker --bench sandbox`; BENCHMARKS.md holds results and method.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mlx_e2e::{
    PluginsDir,
    components::{drop_in, variant},
    invoke_once,
};
use mlx_runtime::{
    HostSettings, PluginHost,
    engine::{EngineSettings, WARM_MEMORY_SLOTS},
    plugin::LoadedPlugin,
};
use serde_json::json;

/// An executor, a runtime and testkit loaded in it (the directory must outlive the runtime).
type Setup = (
    tokio::runtime::Runtime,
    Arc<PluginHost>,
    LoadedPlugin,
    PluginsDir,
);

fn setup(pooling: bool) -> Setup {
    setup_with(EngineSettings {
        pooling,
        ..Default::default()
    })
}

fn setup_with(engine: EngineSettings) -> Setup {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let plugins = PluginsDir::with(&["testkit"]);
    // Room for the 1 MiB case: the echo output holds the input.
    plugins.write_manifest("testkit", "[limits]\nmax_output_kb = 4096\n");
    let runtime = PluginHost::new(HostSettings {
        engine,
        ..Default::default()
    })
    .unwrap();
    let plugin = tokio
        .block_on(runtime.load(&plugins.path().join("testkit.wasm")))
        .unwrap();
    (tokio, runtime, plugin, plugins)
}

fn fresh_sandbox(c: &mut Criterion) {
    let mut group = c.benchmark_group("fresh_sandbox");
    for (name, pooling) in [("pooling", true), ("on_demand", false)] {
        let (tokio, runtime, plugin, _dir) = setup(pooling);
        let tiny = json!({"n": 1});
        group.bench_function(BenchmarkId::new("instantiate_drop", name), |b| {
            b.to_async(&tokio)
                .iter(|| async { runtime.instantiate_only(&plugin).await.unwrap() })
        });
        group.bench_function(BenchmarkId::new("instantiate_call_drop", name), |b| {
            b.to_async(&tokio).iter(|| async {
                invoke_once(&runtime, &plugin, "echo", &tiny, "bench")
                    .await
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn concurrency(c: &mut Criterion) {
    let (tokio, runtime, plugin, _dir) = setup(true);
    let plugin = Arc::new(plugin);
    let mut group = c.benchmark_group("concurrent_invocations");
    for n in [1usize, 8] {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.to_async(&tokio).iter(|| {
                let (runtime, plugin) = (runtime.clone(), plugin.clone());
                async move {
                    let calls = (0..n).map(|_| {
                        let (runtime, plugin) = (runtime.clone(), plugin.clone());
                        tokio::spawn(async move {
                            invoke_once(&runtime, &plugin, "echo", &json!({"n": 1}), "bench")
                                .await
                                .unwrap()
                        })
                    });
                    for call in futures::future::join_all(calls).await {
                        call.unwrap();
                    }
                }
            })
        });
    }
    group.finish();
}

fn payload_sizes(c: &mut Criterion) {
    let (tokio, runtime, plugin, _dir) = setup(true);
    let mut group = c.benchmark_group("payload_size");
    for kib in [1usize, 16, 256, 1024] {
        let input = json!({"blob": "x".repeat(kib << 10)});
        group.throughput(Throughput::Bytes((kib << 10) as u64));
        group.bench_function(BenchmarkId::from_parameter(format!("{kib}KiB")), |b| {
            b.to_async(&tokio).iter(|| async {
                invoke_once(&runtime, &plugin, "echo", &input, "bench")
                    .await
                    .unwrap()
            })
        });
    }
    group.finish();
}

/// Two plugins called in turn, one at a time: the price of `warm_memory_slots` 0 (each call
/// finds the one used slot tied to the other module and remaps it) against the default and
/// wasmtime's 100 (each module keeps a slot of its own).
fn alternating_plugins(c: &mut Criterion) {
    let mut group = c.benchmark_group("alternating_plugins");
    for warm in [0, WARM_MEMORY_SLOTS, 100] {
        let (tokio, runtime, first, _dir) = setup_with(EngineSettings {
            warm_memory_slots: warm,
            ..Default::default()
        });
        let other = PluginsDir::with(&[]);
        drop_in(other.path(), "testkit.wasm", &variant("testkit", "other"));
        let second = tokio
            .block_on(runtime.load(&other.path().join("testkit.wasm")))
            .unwrap();
        let tiny = json!({"n": 1});
        group.bench_function(BenchmarkId::new("two_calls", format!("warm{warm}")), |b| {
            b.to_async(&tokio).iter(|| async {
                for plugin in [&first, &second] {
                    invoke_once(&runtime, plugin, "echo", &tiny, "bench")
                        .await
                        .unwrap();
                }
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    fresh_sandbox,
    alternating_plugins,
    concurrency,
    payload_sizes
);
criterion_main!(benches);
