//! Components compiled in a child process, as the daemon compiles them: the worker's own
//! executable (`mlx-worker compile-component`) compiles, the runtime maps what it wrote.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering},
};

use mlx_e2e::{PluginsDir, invoke_once, worker_binary};
use mlx_runtime::{HostSettings, PluginHost, child::ChildProgram};
use serde_json::json;

fn runtime(cache: Option<&Path>, compiler: ChildProgram) -> Arc<PluginHost> {
    PluginHost::new(HostSettings {
        cache_dir: cache.map(Path::to_path_buf),
        compiler: Some(compiler),
        ..Default::default()
    })
    .unwrap()
}

/// The worker's compiler, run through a shell that first appends a line to `marker`: how a
/// test sees that the child, not the test process, compiled.
fn counted_worker(marker: &Path) -> ChildProgram {
    ChildProgram {
        program: "/bin/sh".into(),
        args: vec![
            "-c".into(),
            r#"echo compiled >> "$0"; exec "$1" compile-component "$2""#.into(),
            marker.into(),
            worker_binary().into(),
        ],
    }
}

/// A compiler that runs `script` instead (sh -c; the engine settings are its $0).
fn shell(script: &str) -> ChildProgram {
    ChildProgram {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
    }
}

fn children_run(marker: &Path) -> usize {
    std::fs::read_to_string(marker)
        .map(|text| text.lines().count())
        .unwrap_or(0)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn a_component_compiled_by_the_child_runs_and_is_kept_in_the_cache() {
    let plugins = PluginsDir::with(&["testkit"]);
    let cache = tempfile::tempdir().unwrap();
    let marker = tempfile::tempdir().unwrap().keep().join("runs");
    let file = plugins.path().join("testkit.wasm");
    for (expected_compiled, expected_hits) in [(1, 0), (0, 1)] {
        // A fresh runtime each time, as a restarted worker.
        let rt = runtime(Some(cache.path()), counted_worker(&marker));
        let plugin = rt.load(&file).await.unwrap();
        let out = invoke_once(&rt, &plugin, "echo", &json!({"x": 1}), "compiler")
            .await
            .unwrap();
        assert_eq!(out.output["input"], json!({"x": 1}));
        let stats = rt.compile_stats();
        assert_eq!(
            (
                stats.compiled.load(Ordering::Relaxed),
                stats.cache_hits.load(Ordering::Relaxed)
            ),
            (expected_compiled, expected_hits)
        );
    }
    // One child compiled; the restart mapped its artifact from the cache.
    assert_eq!(children_run(&marker), 1);
    let names: Vec<String> = files(cache.path())
        .iter()
        .map(|p| p.extension().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["cwasm", "sha256"], "the entry and nothing else");
}

#[tokio::test]
async fn without_a_cache_the_childs_artifact_is_loaded_and_removed() {
    let plugins = PluginsDir::with(&["testkit"]);
    let marker = tempfile::tempdir().unwrap().keep().join("runs");
    let rt = runtime(None, counted_worker(&marker));
    let plugin = rt.load(&plugins.path().join("testkit.wasm")).await.unwrap();
    let out = invoke_once(&rt, &plugin, "echo", &json!({"y": 2}), "compiler")
        .await
        .unwrap();
    assert_eq!(out.output["input"], json!({"y": 2}));
    assert_eq!(children_run(&marker), 1);
}

#[tokio::test]
async fn bytes_that_are_no_component_get_the_compilers_own_message() {
    let plugins = tempfile::tempdir().unwrap();
    let file = plugins.path().join("broken.wasm");
    std::fs::write(&file, b"\0asm\x0d\0\x01\0 truncated").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let marker = cache.path().with_extension("runs");
    let rt = runtime(Some(cache.path()), counted_worker(&marker));
    let err = rt.load(&file).await.expect_err("refused").to_string();
    assert!(err.contains("broken.wasm"), "{err}");
    assert!(
        err.contains("not a loadable WebAssembly component"),
        "{err}"
    );
    // wasmtime's reason, as the child wrote it to its stderr.
    assert!(err.contains("failed to parse"), "{err}");
    assert_eq!(children_run(&marker), 1);
    assert!(files(cache.path()).is_empty(), "{:?}", files(cache.path()));
}

/// A compile that dies (the OOM killer, a compiler bug) fails that load with a message that
/// says so, leaves nothing behind, and the runtime loads the next file.
#[tokio::test]
async fn a_compiler_killed_mid_compile_fails_only_that_load() {
    let plugins = PluginsDir::with(&["testkit"]);
    let file = plugins.path().join("testkit.wasm");
    let cache = tempfile::tempdir().unwrap();
    let killed = runtime(Some(cache.path()), shell("kill -9 $$"));
    let err = killed.load(&file).await.expect_err("refused").to_string();
    assert!(err.contains("testkit.wasm"), "{err}");
    assert!(err.contains("killed (SIGKILL)"), "{err}");
    assert!(files(cache.path()).is_empty(), "{:?}", files(cache.path()));

    let crashed = runtime(
        Some(cache.path()),
        shell("echo 'compiler bug' >&2; kill -SEGV $$"),
    );
    let err = crashed.load(&file).await.expect_err("refused").to_string();
    assert!(err.contains("died of signal 11"), "{err}");
    assert!(err.contains("compiler bug"), "{err}");

    // An artifact that is not wasmtime's is refused by wasmtime, never run.
    let forged = runtime(Some(cache.path()), shell("cat >/dev/null; echo not-an-elf"));
    let err = forged.load(&file).await.expect_err("refused").to_string();
    assert!(
        err.contains("not a loadable WebAssembly component"),
        "{err}"
    );

    let marker = cache.path().with_extension("runs");
    let good = runtime(Some(cache.path()), counted_worker(&marker));
    good.load(&file).await.unwrap();
    assert_eq!(children_run(&marker), 1);
}

/// The child builds its engine from the settings it is given: ones it cannot read are its
/// error, named, rather than an artifact for another engine.
#[tokio::test]
async fn the_compiler_refuses_engine_settings_it_does_not_know() {
    let output = std::process::Command::new(worker_binary())
        .args([
            "compile-component",
            r#"{"max_instances": 8, "surprise": true}"#,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("engine settings"), "{stderr}");
    assert!(stderr.contains("surprise"), "{stderr}");
}

/// The cache never fails a load: a child that cannot start (a process limit) or cannot write
/// its artifact (a full disk) leaves the compile to the worker, as before there was a child.
#[tokio::test]
async fn without_a_child_or_room_for_its_artifact_the_worker_compiles() {
    let plugins = PluginsDir::with(&["testkit"]);
    let file = plugins.path().join("testkit.wasm");
    let no_room = shell(&format!(
        "cat >/dev/null; echo 'writing the compiled artifact: No space left on device' >&2; exit {}",
        mlx_runtime::plugin::compiler::EXIT_NO_ROOM
    ));
    let missing = ChildProgram {
        program: "/nonexistent/mlx-worker".into(),
        args: vec![],
    };
    for compiler in [no_room, missing] {
        let cache = tempfile::tempdir().unwrap();
        let rt = runtime(Some(cache.path()), compiler);
        let plugin = rt.load(&file).await.unwrap();
        let out = invoke_once(&rt, &plugin, "echo", &json!({"z": 3}), "compiler")
            .await
            .unwrap();
        assert_eq!(out.output["input"], json!({"z": 3}));
        assert_eq!(rt.compile_stats().compiled.load(Ordering::Relaxed), 1);
    }
}
