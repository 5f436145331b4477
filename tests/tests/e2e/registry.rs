//! The shared model registry on a real server, worker and trainer: the trainer's manifest
//! grants one directory at `/registry` (as operators configure it), `register_model` uses it
//! by default, a registration repeated with the same input (a retry after a lost result) and
//! a second run of the same pipeline both return the version the first made instead of adding
//! one, and `mlx-worker registry list|show` reads it back from disk.

use std::path::Path;
use std::process::Output;

use mlx_e2e::{PluginsDir, WorkerProcess, printed, shared_server, unique};
use mlx_worker::temporal::PipelineWorkflow;
use serde_json::{Value, json};
use temporalio_client::{Client, WorkflowGetResultOptions, WorkflowStartOptions};

/// extract → train → register → register again with the same input: the second plays a
/// retried activity whose first result was lost after the version was committed.
fn spec() -> Value {
    let register = json!({
        "model": "${steps.train.output.model.path}",
        "name": "iris",
        "metrics": "${steps.train.output.metrics}",
        "approval": {"approved": true, "by": "ana", "comment": "metrics checked"},
        "lineage": {"dataset": "/data/iris.csv"},
    });
    json!({
        "name": "registry",
        "steps": [
            {"id": "extract", "plugin": "csv", "operation": "extract_data",
             "input": {"source": "/data/iris.csv", "target": "target", "seed": 7}},
            {"id": "train", "plugin": "trainer", "operation": "train_model",
             "depends_on": ["extract"],
             "input": {"train": "${steps.extract.output.train.path}",
                       "test": "${steps.extract.output.test.path}",
                       "target": "target",
                       "model": {"family": "random_forest",
                                 "hyperparameters": {"n_estimators": 5, "seed": 1}}}},
            {"id": "register", "plugin": "trainer", "operation": "register_model",
             "depends_on": ["train"], "input": register},
            {"id": "register_again", "plugin": "trainer", "operation": "register_model",
             "depends_on": ["register"], "input": register},
        ]
    })
}

async fn run(client: &Client, worker: &WorkerProcess) -> anyhow::Result<(String, Value)> {
    let id = unique("registry");
    client
        .start_workflow(
            PipelineWorkflow::run,
            mlx_worker::temporal::payload::json_input(&spec()),
            WorkflowStartOptions::new(worker.task_queue.clone(), id.clone()).build(),
        )
        .await?;
    let handle = client.get_workflow_handle::<PipelineWorkflow>(&id);
    let result = tokio::time::timeout(
        std::time::Duration::from_secs(300),
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await??;
    for step in ["extract", "train", "register", "register_again"] {
        anyhow::ensure!(
            result["steps"][step]["status"] == "succeeded",
            "{step}: {result:#}"
        );
    }
    Ok((id, result))
}

/// The registry's complete versions of `iris` (directories with an entry.json).
fn complete_versions(registry: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(registry.join("iris"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().join("entry.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    found
}

fn registry_cli(registry: &Path, args: &[&str]) -> Output {
    std::process::Command::new(mlx_e2e::worker_binary())
        .arg("registry")
        .args(args)
        .arg("--registry-dir")
        .arg(registry)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_repeated_registration_keeps_one_version_in_the_shared_registry() -> anyhow::Result<()> {
    let server = shared_server().await?;
    let plugins = PluginsDir::with(&["csv", "trainer"]);
    plugins.grant_data("csv");
    let registry = tempfile::tempdir()?;
    plugins.write_manifest(
        "trainer",
        &format!(
            "[[filesystem]]\nhost = {:?}\nguest = \"/registry\"\naccess = \"read-write\"\n",
            registry.path().display().to_string()
        ),
    );
    let worker = WorkerProcess::start(mlx_e2e::worker_binary(), server, plugins.path(), &[])?;
    let client = server.client().await?;

    let (id, result) = run(&client, &worker).await?;
    let first = &result["steps"]["register"]["output"];
    let again = &result["steps"]["register_again"]["output"];
    assert_eq!(first["already_registered"], false, "{first:#}");
    assert_eq!(first["entry"]["version"], 1, "{first:#}");
    // Without registry_dir: the granted /registry, not this run's /artifacts.
    assert_eq!(first["path"], "/registry/iris/v1/entry.json");
    assert_eq!(again["already_registered"], true, "{again:#}");
    assert_eq!(again["entry"], first["entry"]);
    assert_eq!(complete_versions(registry.path()), ["v1"]);
    let entry = &first["entry"];
    assert_eq!(
        (
            &entry["lineage"]["workflow_id"],
            &entry["lineage"]["activity_id"]
        ),
        (&json!(id), &json!("register"))
    );
    assert_eq!(
        entry["lineage"]["details"],
        json!({"dataset": "/data/iris.csv"})
    );
    assert_eq!(entry["approval"]["by"], "ana");
    assert_eq!(
        entry["metrics"],
        result["steps"]["train"]["output"]["metrics"]
    );
    let on_disk: Value =
        serde_json::from_slice(&std::fs::read(registry.path().join("iris/v1/entry.json"))?)?;
    assert_eq!(&on_disk, entry);

    // Another run of the same pipeline trains the same bytes (one seed, one libm): the shared
    // registry already holds them, so it gets v1 too.
    let (_, second) = run(&client, &worker).await?;
    let rerun = &second["steps"]["register"]["output"];
    assert_eq!(
        (&rerun["already_registered"], &rerun["entry"]),
        (&json!(true), entry),
        "{rerun:#}"
    );
    assert_eq!(complete_versions(registry.path()), ["v1"]);

    // The operator's view, from disk.
    let out = registry_cli(registry.path(), &["show", "iris"]);
    let text = printed(&out);
    assert!(out.status.success(), "{text}");
    let sha256 = entry["sha256"].as_str().unwrap();
    for expected in [
        "version         1\n".to_string(),
        format!("sha256          {sha256}\n"),
        "family          random_forest\n".to_string(),
        "approval        yes (ana): metrics checked\n".to_string(),
        format!("lineage         workflow {id}, activity register, attempt 1\n"),
    ] {
        assert!(text.contains(&expected), "{expected:?} missing:\n{text}");
    }
    let out = registry_cli(registry.path(), &["list", "iris", "--json"]);
    assert!(out.status.success(), "{}", printed(&out));
    let listed: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(listed, json!([entry]));
    let out = registry_cli(registry.path(), &["list"]);
    let text = printed(&out);
    assert!(
        text.lines()
            .nth(1)
            .unwrap_or_default()
            .starts_with("iris  1 "),
        "{text}"
    );

    let out = registry_cli(registry.path(), &["show", "iris@2"]);
    assert_eq!(out.status.code(), Some(1), "{}", printed(&out));
    assert!(printed(&out).contains("version 2 of \"iris\" (versions: 1)"));
    let out = registry_cli(registry.path(), &["show", "iris@x"]);
    assert_eq!(out.status.code(), Some(2), "{}", printed(&out));
    Ok(())
}
