//! Plugins from an OCI registry: `plugin push` and `plugin pull` and a worker's
//! `worker.plugin_refs`, with the real `mlx-worker` binary against a real registry (the CNCF
//! distribution registry, `make oci-tools`).

use std::{
    path::Path,
    process::{Command, Output},
    time::Duration,
};

use mlx_e2e::{
    PluginsDir, WorkerProcess, compile_cache, oci_registry::OciRegistry, printed, run_step_on,
    shared_server, unique,
};
use mlx_worker::oci::{
    CONFIG_MEDIA_TYPE, MANIFEST_LAYER_MEDIA_TYPE, TITLE_ANNOTATION, WASM_LAYER_MEDIA_TYPE,
    digest_of,
};
use serde_json::json;

const MANIFEST: &str = "[limits]\ntimeout_secs = 120\nmax_concurrent = 4\n";

/// `mlx-worker` with no credentials from this machine: no docker config, no variables.
fn mlx_worker(docker_config: &Path) -> Command {
    let mut command = Command::new(mlx_e2e::worker_binary());
    command
        .env_remove("MLX_OCI_USERNAME")
        .env_remove("MLX_OCI_PASSWORD")
        .env_remove("MLX_PLUGIN_REFS")
        .env_remove("MLX_PLUGINS_DIR")
        .env("DOCKER_CONFIG", docker_config)
        .env("MLX_CACHE_DIR", compile_cache());
    command
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The testkit component with a manifest beside it, pushed to `repository:tag`; returns the
/// plugins directory it came from and the pinned reference `push` printed.
fn push_testkit(registry: &OciRegistry, repository: &str, tag: &str) -> (PluginsDir, String) {
    push_component("testkit", registry, repository, tag)
}

/// The component built as `file.wasm` (the plugin's own name is in the component) with a
/// manifest beside it, pushed to `repository:tag`.
fn push_component(
    file: &str,
    registry: &OciRegistry,
    repository: &str,
    tag: &str,
) -> (PluginsDir, String) {
    let plugins = PluginsDir::with(&[file]);
    let name = file;
    plugins.write_manifest(name, MANIFEST);
    let none = tempfile::tempdir().unwrap();
    let out = mlx_worker(none.path())
        .args(["plugin", "push"])
        .arg(plugins.path().join(format!("{name}.wasm")))
        .arg(format!("oci://{}/{repository}:{tag}", registry.host))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "push failed: {}\n{}",
        printed(&out),
        registry.log()
    );
    let pinned = stdout(&out);
    let prefix = format!("oci://{}/{repository}@sha256:", registry.host);
    assert!(pinned.starts_with(&prefix), "not a pinned ref: {pinned}");
    assert_eq!(pinned.len(), prefix.len() + 64, "{pinned}");
    (plugins, pinned)
}

fn pull(reference: &str, dir: &Path, extra: &[&str]) -> Output {
    let none = tempfile::tempdir().unwrap();
    mlx_worker(none.path())
        .args(["plugin", "pull", reference, "--plugins-dir"])
        .arg(dir)
        .args(extra)
        .output()
        .unwrap()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn push_then_pull_gives_identical_files_in_the_wasm_artifact_format() -> anyhow::Result<()> {
    let registry = OciRegistry::start().await?;
    let (source, pinned) = push_testkit(&registry, "e2e/testkit", "v1");
    let wasm = std::fs::read(source.path().join("testkit.wasm"))?;

    // What any OCI client reads: the Wasm format, the component first, the manifest second.
    let manifest = registry.manifest("e2e/testkit", "v1").await?;
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(manifest["config"]["mediaType"], CONFIG_MEDIA_TYPE);
    assert_eq!(manifest["layers"][0]["mediaType"], WASM_LAYER_MEDIA_TYPE);
    assert_eq!(manifest["layers"][0]["digest"], digest_of(&wasm));
    assert_eq!(
        manifest["layers"][1]["mediaType"],
        MANIFEST_LAYER_MEDIA_TYPE
    );
    assert_eq!(
        manifest["layers"][1]["digest"],
        digest_of(MANIFEST.as_bytes())
    );
    assert_eq!(manifest["annotations"][TITLE_ANNOTATION], "testkit");
    assert!(
        manifest["annotations"]["org.opencontainers.image.version"].is_string(),
        "{manifest}"
    );
    // The printed digest is the manifest's: the tag and the pinned reference are one artifact.
    let digest = pinned.rsplit_once('@').unwrap().1;
    let (status, raw) = registry
        .get(
            "/v2/e2e/testkit/manifests/v1",
            "application/vnd.oci.image.manifest.v1+json",
        )
        .await?;
    assert_eq!(status, 200);
    assert_eq!(digest_of(raw.as_bytes()), digest);
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let (status, config) = registry
        .get(&format!("/v2/e2e/testkit/blobs/{config_digest}"), "*/*")
        .await?;
    assert_eq!(status, 200);
    let config: serde_json::Value = serde_json::from_str(&config)?;
    assert_eq!(config["architecture"], "wasm");
    assert_eq!(config["os"], "wasip2");
    assert_eq!(
        config["layerDigests"],
        json!([
            manifest["layers"][0]["digest"],
            manifest["layers"][1]["digest"]
        ])
    );
    let exports = config["component"]["exports"].as_array().unwrap();
    assert!(
        exports
            .iter()
            .any(|e| e.as_str().unwrap().starts_with("mlx:plugin/")),
        "{config}"
    );

    // Pulled by the pinned reference: the same bytes, and nothing else in the directory.
    let dir = tempfile::tempdir()?;
    let out = pull(&pinned, dir.path(), &[]);
    assert!(out.status.success(), "{}", printed(&out));
    assert_eq!(stdout(&out), pinned);
    assert_eq!(files_in(dir.path()), ["testkit.toml", "testkit.wasm"]);
    assert_eq!(std::fs::read(dir.path().join("testkit.wasm"))?, wasm);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("testkit.toml"))?,
        MANIFEST
    );

    // By tag, under another name: the same artifact, so the same pinned reference printed.
    let tagged = format!("oci://{}/e2e/testkit:v1", registry.host);
    let out = pull(&tagged, dir.path(), &["--name", "kit2"]);
    assert!(out.status.success(), "{}", printed(&out));
    assert_eq!(stdout(&out), pinned);
    assert_eq!(std::fs::read(dir.path().join("kit2.wasm"))?, wasm);

    // And what was pulled loads as the worker would load it.
    let none = tempfile::tempdir()?;
    let out = mlx_worker(none.path())
        .args(["plugin", "validate"])
        .arg(dir.path().join("testkit.wasm"))
        .output()?;
    assert!(out.status.success(), "{}", printed(&out));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_digest_that_does_not_match_is_refused_and_nothing_is_written() -> anyhow::Result<()> {
    let registry = OciRegistry::start().await?;
    let (source, pinned) = push_testkit(&registry, "e2e/verify", "v1");

    // A pinned reference to a manifest the registry does not have.
    let (base, digest) = pinned.rsplit_once("@sha256:").unwrap();
    let flipped: String = digest
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    let dir = tempfile::tempdir()?;
    let out = pull(&format!("{base}@sha256:{flipped}"), dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", printed(&out));
    assert!(printed(&out).contains("not found"), "{}", printed(&out));
    assert!(files_in(dir.path()).is_empty());

    // The registry serves a component whose bytes no longer match its digest.
    let wasm = std::fs::read(source.path().join("testkit.wasm"))?;
    let blob = registry.blob_file(&digest_of(&wasm));
    let mut tampered = std::fs::read(&blob)?;
    assert_eq!(tampered, wasm);
    let last = tampered.len() - 1;
    tampered[last] ^= 0xff;
    std::fs::write(&blob, &tampered)?;
    let out = pull(&pinned, dir.path(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", printed(&out));
    assert!(
        printed(&out).contains("does not match its digest"),
        "{}",
        printed(&out)
    );
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_pulls_its_pinned_plugins_and_serves_them() -> anyhow::Result<()> {
    let registry = OciRegistry::start().await?;
    let (source, pinned) = push_testkit(&registry, "e2e/served", "v1");
    let server = shared_server().await?;
    let plugins = tempfile::tempdir()?;
    let docker_config = tempfile::tempdir()?;
    let docker_config = docker_config.path().to_str().unwrap();
    let env = [("DOCKER_CONFIG", docker_config)];
    let worker = WorkerProcess::start_with(
        mlx_e2e::worker_binary(),
        server,
        plugins.path(),
        &env,
        &["--plugin-ref", &pinned],
    )?;
    let step = json!({"plugin": "testkit", "operation": "echo", "input": {"from": "registry"}});
    let (result, _) = run_step_on(server, &worker.task_queue, &unique("oci"), step.clone()).await?;
    assert_eq!(
        result.map_err(anyhow::Error::msg)?["input"]["from"],
        "registry"
    );
    assert_eq!(
        std::fs::read(plugins.path().join("testkit.wasm"))?,
        std::fs::read(source.path().join("testkit.wasm"))?
    );
    assert_eq!(
        std::fs::read_to_string(plugins.path().join("testkit.toml"))?,
        MANIFEST
    );
    drop(worker);

    // The files are in place, so a restart needs no registry: it is gone, and the worker
    // starts and serves all the same (the variable's form of the key this time).
    drop(registry);
    let worker = WorkerProcess::start(
        mlx_e2e::worker_binary(),
        server,
        plugins.path(),
        &[
            ("DOCKER_CONFIG", docker_config),
            ("MLX_PLUGIN_REFS", &pinned),
        ],
    )?;
    let (result, _) = run_step_on(server, &worker.task_queue, &unique("oci"), step).await?;
    assert_eq!(
        result.map_err(anyhow::Error::msg)?["input"]["from"],
        "registry"
    );
    Ok(())
}

/// Echoes `value` through plugin `name` on `worker` (the testkit's `echo` and the contract's
/// both give it back): Ok with what came back, or the failure.
async fn echo_via(
    worker: &WorkerProcess,
    name: &str,
) -> anyhow::Result<Result<serde_json::Value, String>> {
    let server = shared_server().await?;
    let step = json!({"plugin": name, "operation": "echo", "input": {"value": name}});
    let (result, _) = run_step_on(server, &worker.task_queue, &unique("oci-hup"), step).await?;
    Ok(result)
}

fn write_refs(config: &Path, refs: &[&str]) {
    let list: Vec<String> = refs.iter().map(|r| format!("{r:?}")).collect();
    std::fs::write(
        config,
        format!("[worker]\nplugin_refs = [{}]\n", list.join(", ")),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_plugin_ref_list_is_pulled_on_sighup_and_when_the_file_changes()
-> anyhow::Result<()> {
    let registry = OciRegistry::start().await?;
    let (_first, testkit) = push_testkit(&registry, "e2e/hup-testkit", "v1");
    let (_second, contract) = push_component("contract_rust", &registry, "e2e/hup-contract", "v1");
    let server = shared_server().await?;
    let dir = tempfile::tempdir()?;
    // The worker's --config is a link into another directory, which it does not watch: an edit
    // of the target is seen only on SIGHUP. Replacing the link is a change it sees by itself.
    let elsewhere = tempfile::tempdir()?;
    let target = elsewhere.path().join("real.toml");
    write_refs(&target, &[&testkit]);
    let config = dir.path().join("worker.toml");
    std::os::unix::fs::symlink(&target, &config)?;
    let plugins = tempfile::tempdir()?;
    let docker_config = tempfile::tempdir()?;
    let worker = WorkerProcess::start_with(
        mlx_e2e::worker_binary(),
        server,
        plugins.path(),
        &[("DOCKER_CONFIG", docker_config.path().to_str().unwrap())],
        &["--config", config.to_str().unwrap()],
    )?;
    let echoed = echo_via(&worker, "testkit").await?;
    assert_eq!(
        echoed.map_err(anyhow::Error::msg)?["input"]["value"],
        "testkit"
    );
    let unknown = echo_via(&worker, "contract-rust").await?.unwrap_err();
    assert!(unknown.contains("UnknownPlugin"), "{unknown}");

    // The list now names only the contract plugin: it is pulled and served, and testkit, which
    // the list dropped, is removed and no longer served.
    write_refs(&target, &[&contract]);
    worker.reload();
    let served = mlx_e2e::eventually(
        Duration::from_secs(120),
        "the new plugin served",
        || async { echo_via(&worker, "contract-rust").await.ok()?.ok() },
    )
    .await?;
    assert_eq!(served["value"], "contract-rust");
    let gone = mlx_e2e::eventually(
        Duration::from_secs(120),
        "the dropped plugin unloaded",
        || async {
            echo_via(&worker, "testkit")
                .await
                .ok()?
                .err()
                .filter(|e| e.contains("UnknownPlugin"))
        },
    )
    .await?;
    assert!(gone.contains("testkit"), "{gone}");
    assert_eq!(
        files_in(plugins.path()),
        ["contract-rust.toml", "contract-rust.wasm"]
    );

    // No signal this time: the link is replaced (renamed over, as a mounted ConfigMap's is),
    // and the worker notices.
    let next = elsewhere.path().join("next.toml");
    write_refs(&next, &[&contract, &testkit]);
    let staged = dir.path().join("..data_tmp");
    std::os::unix::fs::symlink(&next, &staged)?;
    std::fs::rename(&staged, &config)?;
    let back = mlx_e2e::eventually(Duration::from_secs(120), "testkit served again", || async {
        echo_via(&worker, "testkit").await.ok()?.ok()
    })
    .await?;
    assert_eq!(back["input"]["value"], "testkit");
    let still = echo_via(&worker, "contract-rust").await?;
    assert_eq!(still.map_err(anyhow::Error::msg)?["value"], "contract-rust");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tag_in_the_worker_config_is_refused_at_startup() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("plugins"))?;
    let config = dir.path().join("worker.toml");
    std::fs::write(
        &config,
        "[worker]\nplugins_dir = \"plugins\"\n\
         plugin_refs = [\"oci://127.0.0.1:5000/team/testkit:latest\"]\n",
    )?;
    let out = mlx_worker(dir.path())
        .args(["run", "--config"])
        .arg(&config)
        .output()?;
    let text = printed(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("worker.plugin_refs"), "{text}");
    assert!(text.contains("pin it"), "{text}");
    assert!(files_in(&dir.path().join("plugins")).is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_whose_registry_stays_unreachable_refuses_to_start() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins)?;
    // Nothing listens there: refused at once, retried a few times, then given up, before the
    // worker connects to anything (so no Temporal address is needed).
    let reference = format!(
        "oci://127.0.0.1:{}/team/testkit@sha256:{}",
        mlx_e2e::free_port(),
        "ab".repeat(32)
    );
    let out = mlx_worker(dir.path())
        .args(["run", "--plugins-dir"])
        .arg(&plugins)
        .arg("--artifacts-dir")
        .arg(dir.path().join("artifacts"))
        .args(["--plugin-ref", &reference])
        .output()?;
    let text = printed(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("worker.plugin_refs") && text.contains("unreachable"),
        "{text}"
    );
    assert!(files_in(&plugins).is_empty());
    Ok(())
}
