//! The compile cache: a warm restart compiles nothing; a corrupt, foreign or stale entry is
//! recompiled and never trusted.

use std::{os::unix::fs::PermissionsExt, path::Path, sync::Arc, sync::atomic::Ordering};

use mlx_e2e::{PluginsDir, invoke_once};
use mlx_runtime::{HostSettings, PluginHost, engine::EngineSettings};
use serde_json::json;

fn runtime(cache: &Path, fuel_metering: bool) -> Arc<PluginHost> {
    PluginHost::new(HostSettings {
        cache_dir: Some(cache.to_path_buf()),
        engine: EngineSettings {
            fuel_metering,
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap()
}

/// Loads testkit in a fresh runtime, runs one call, and returns (compiled, cache hits).
async fn load_and_call(plugins: &PluginsDir, cache: &Path, fuel_metering: bool) -> (u64, u64) {
    let rt = runtime(cache, fuel_metering);
    let plugin = rt.load(&plugins.path().join("testkit.wasm")).await.unwrap();
    let out = invoke_once(&rt, &plugin, "echo", &json!({"x": 1}), "cache")
        .await
        .unwrap();
    assert_eq!(out.output["input"], json!({"x": 1}));
    let stats = rt.compile_stats();
    (
        stats.compiled.load(Ordering::Relaxed),
        stats.cache_hits.load(Ordering::Relaxed),
    )
}

fn entries(cache: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn a_warm_restart_compiles_nothing() {
    let plugins = PluginsDir::with(&["testkit"]);
    let cache = tempfile::tempdir().unwrap();
    assert_eq!(load_and_call(&plugins, cache.path(), false).await, (1, 0));
    assert_eq!(entries(cache.path(), "cwasm").len(), 1);
    // A new runtime (a restart) finds the artifact it wrote and compiles nothing.
    assert_eq!(load_and_call(&plugins, cache.path(), false).await, (0, 1));
    // Another engine configuration has its own entry, never the first one.
    assert_eq!(load_and_call(&plugins, cache.path(), true).await, (1, 0));
    assert_eq!(entries(cache.path(), "cwasm").len(), 2);
}

#[tokio::test]
async fn a_corrupt_entry_is_recompiled_and_replaced() {
    let plugins = PluginsDir::with(&["testkit"]);
    let cache = tempfile::tempdir().unwrap();
    load_and_call(&plugins, cache.path(), false).await;
    let artifact = entries(cache.path(), "cwasm").remove(0);
    let mut bytes = std::fs::read(&artifact).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&artifact, &bytes).unwrap();
    assert_eq!(load_and_call(&plugins, cache.path(), false).await, (1, 0));
    // The rewritten entry is good again.
    assert_eq!(load_and_call(&plugins, cache.path(), false).await, (0, 1));
}

/// A copied cache (new files, so not the ones the sidecars describe) is trusted only after
/// its artifacts hash to their checksums, and then used.
#[tokio::test]
async fn a_copied_cache_is_checked_by_its_hash_and_used() {
    let plugins = PluginsDir::with(&["testkit"]);
    let cache = tempfile::tempdir().unwrap();
    load_and_call(&plugins, cache.path(), false).await;
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        let from = entry.unwrap().path();
        std::fs::copy(&from, copy.path().join(from.file_name().unwrap())).unwrap();
    }
    assert_eq!(load_and_call(&plugins, copy.path(), false).await, (0, 1));
}

#[tokio::test]
async fn an_entry_the_worker_did_not_write_is_not_loaded() {
    let plugins = PluginsDir::with(&["testkit"]);
    let cache = tempfile::tempdir().unwrap();
    load_and_call(&plugins, cache.path(), false).await;
    // Someone replaces artifact and checksum with a matching pair of their own making: here
    // the artifact of another engine configuration, which wasmtime itself refuses.
    let fuel_cache = tempfile::tempdir().unwrap();
    load_and_call(&plugins, fuel_cache.path(), true).await;
    let ours = entries(cache.path(), "cwasm").remove(0);
    let theirs = entries(fuel_cache.path(), "cwasm").remove(0);
    std::fs::copy(&theirs, &ours).unwrap();
    std::fs::copy(
        theirs.with_extension("sha256"),
        ours.with_extension("sha256"),
    )
    .unwrap();
    assert_eq!(load_and_call(&plugins, cache.path(), false).await, (1, 0));
    // An artifact without its checksum (a crash between the two writes) is not trusted.
    std::fs::remove_file(ours.with_extension("sha256")).unwrap();
    assert_eq!(load_and_call(&plugins, cache.path(), false).await, (1, 0));
}

#[tokio::test]
async fn a_cache_directory_others_can_write_is_refused() {
    let cache = tempfile::tempdir().unwrap();
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = PluginHost::new(HostSettings {
        cache_dir: Some(cache.path().to_path_buf()),
        ..Default::default()
    })
    .err()
    .expect("refused")
    .to_string();
    assert!(err.contains("writable by group or others"), "{err}");
}

/// `plugin inspect` compiles the file once, though it both reviews the component and loads it.
#[tokio::test]
async fn inspect_compiles_a_component_once() {
    let plugins = PluginsDir::with(&["testkit"]);
    let rt = PluginHost::new(HostSettings::default()).unwrap();
    let inspection =
        mlx_runtime::plugin::inspect::inspect(&rt, &plugins.path().join("testkit.wasm"))
            .await
            .unwrap();
    assert!(inspection.loads, "{}", inspection.report);
    assert_eq!(rt.compile_stats().compiled.load(Ordering::Relaxed), 1);
}

/// A worker killed while writing an entry (kill -9 mid-compile) leaves a temporary file; the
/// next start removes it once it is old enough not to be another worker's write in progress.
#[tokio::test]
async fn an_abandoned_write_is_swept_at_start_and_a_recent_one_kept() {
    let cache = tempfile::tempdir().unwrap();
    let old = cache.path().join(".tmpAbandoned");
    let recent = cache.path().join(".tmpInProgress");
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::create(&old)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    std::fs::write(&recent, b"half an artifact").unwrap();
    runtime(cache.path(), false);
    assert!(!old.exists(), "the abandoned file is removed");
    assert!(recent.exists(), "a recent write may be another worker's");
}

/// The cache keeps within `cache_max_bytes`: the least recently used entry goes first (a hit
/// counts as a use), the entry just written stays, and a plugin whose entry went keeps
/// serving from its mapping.
#[tokio::test]
async fn the_cache_keeps_within_its_size_least_recently_used_first() {
    let plugins = PluginsDir::with(&["testkit"]);
    let cache = tempfile::tempdir().unwrap();
    let [a, b, c] = ["a", "b", "c"].map(|tag| {
        let file = plugins.path().join(format!("version-{tag}.wasm"));
        std::fs::write(&file, mlx_e2e::components::variant("testkit", tag)).unwrap();
        file
    });
    let sized = |max: u64| {
        PluginHost::new(HostSettings {
            cache_dir: Some(cache.path().to_path_buf()),
            cache_max_bytes: Some(max),
            ..Default::default()
        })
        .unwrap()
    };
    let rt = sized(u64::MAX);
    rt.load(&a).await.unwrap();
    let one = std::fs::metadata(&entries(cache.path(), "cwasm")[0])
        .unwrap()
        .len();
    // Room for two entries, not three.
    let rt = sized(one * 5 / 2);
    let serving_b = rt.load(&b).await.unwrap();
    rt.load(&a).await.unwrap(); // a hit: a is now used after b
    rt.load(&c).await.unwrap();
    assert_eq!(entries(cache.path(), "cwasm").len(), 2);
    assert_eq!(entries(cache.path(), "sha256").len(), 2);
    let out = invoke_once(&rt, &serving_b, "echo", &json!({"b": 1}), "cache")
        .await
        .unwrap();
    assert_eq!(out.output["input"], json!({"b": 1}));
    // Which two: a fresh runtime finds a and c, and compiles b again.
    let rt = sized(u64::MAX);
    for (file, compiled, hits) in [(&a, 0, 1), (&c, 0, 2), (&b, 1, 2)] {
        rt.load(file).await.unwrap();
        let stats = rt.compile_stats();
        assert_eq!(
            (
                stats.compiled.load(Ordering::Relaxed),
                stats.cache_hits.load(Ordering::Relaxed)
            ),
            (compiled, hits),
            "{}",
            file.display()
        );
    }
}
