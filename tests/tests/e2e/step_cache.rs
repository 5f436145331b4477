//! Step caching on a real server and the real csv and trainer plugins: a second identical run
//! reuses the first's results (and the files they name, which the uncached step after them
//! reads); a changed input file or plugin build is a miss; `no_cache` runs everything; two
//! identical runs at once both succeed; every history replays.

use std::path::Path;

use mlx_e2e::{PluginsDir, WorkerProcess, shared_server, unique, workspace_root};
use mlx_worker::temporal::PipelineWorkflow;
use serde_json::{Value, json};
use temporalio_client::{Client, WorkflowGetResultOptions, WorkflowStartOptions};

use crate::pipeline::{Pipeline, history_json, replay};

/// extract → train (both cached) → evaluate (never cached: it must find the model file a
/// cached `train` names, copied into this run's artifacts).
fn spec(seed: u64) -> Value {
    json!({
        "name": "cached-training",
        "cache": true,
        "steps": [
            {"id": "extract", "plugin": "csv", "operation": "extract_data",
             "input": {"source": "/data/iris.csv", "target": "target", "seed": seed}},
            {"id": "train", "plugin": "trainer", "operation": "train_model",
             "depends_on": ["extract"],
             "input": {"train": "${steps.extract.output.train.path}",
                       "test": "${steps.extract.output.test.path}",
                       "target": "target",
                       "model": {"family": "random_forest",
                                 "hyperparameters": {"n_estimators": 5, "seed": 1}}}},
            {"id": "evaluate", "plugin": "trainer", "operation": "evaluate_model",
             "depends_on": ["train"], "cache": false,
             "input": {"model": "${steps.train.output.model.path}",
                       "data": "${steps.extract.output.test.path}"}}
        ]
    })
}

async fn run(
    client: &Client,
    worker: &WorkerProcess,
    name: &str,
    spec: Value,
) -> anyhow::Result<(String, Pipeline, Value)> {
    let id = unique(name);
    client
        .start_workflow(
            PipelineWorkflow::run,
            mlx_worker::temporal::payload::json_input(&spec),
            WorkflowStartOptions::new(worker.task_queue.clone(), id.clone()).build(),
        )
        .await?;
    let handle = client.get_workflow_handle::<PipelineWorkflow>(&id);
    let result = tokio::time::timeout(
        std::time::Duration::from_secs(300),
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await??;
    Ok((id, handle, result))
}

/// The workflow id a step's result came from, if it was cached.
fn cached_from(result: &Value, step: &str) -> Option<String> {
    let from = &result["steps"][step]["cached_from"];
    from["workflow_id"].as_str().map(String::from)
}

fn succeeded(result: &Value) {
    for step in ["extract", "train", "evaluate"] {
        assert_eq!(result["steps"][step]["status"], "succeeded", "{result:#}");
    }
}

/// A component with a custom section appended: the same code, other bytes, another digest.
fn rebuild(plugins: &Path, name: &str) {
    let path = plugins.join(format!("{name}.wasm"));
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, mlx_e2e::components::rebuilt(bytes, &unique("build"))).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn identical_steps_reuse_results_and_any_change_is_a_miss() -> anyhow::Result<()> {
    let server = shared_server().await?;
    let plugins = PluginsDir::with(&["csv", "trainer"]);
    // The data the csv plugin reads, in a directory of this test's, so it can change it.
    let data = tempfile::tempdir()?;
    std::fs::copy(
        workspace_root().join("data/iris.csv"),
        data.path().join("iris.csv"),
    )?;
    plugins.write_manifest(
        "csv",
        &format!(
            "[[filesystem]]\nhost = {:?}\nguest = \"/data\"\n",
            data.path().display().to_string()
        ),
    );
    let binary = mlx_e2e::worker_binary();
    let mut worker = WorkerProcess::start(binary, server, plugins.path(), &[])?;
    let client = server.client().await?;

    // 1. First run: everything runs.
    let (first_id, _, one) = run(&client, &worker, "cache-first", spec(1)).await?;
    succeeded(&one);
    for step in ["extract", "train", "evaluate"] {
        assert_eq!(cached_from(&one, step), None, "{one:#}");
    }

    // 2. The same again: extract and train come from run 1; evaluate runs, on the model file
    // the cache put into this run's artifacts, and measures what run 1 measured.
    let (second_id, second, two) = run(&client, &worker, "cache-hit", spec(1)).await?;
    succeeded(&two);
    assert_eq!(cached_from(&two, "extract"), Some(first_id.clone()));
    assert_eq!(cached_from(&two, "train"), Some(first_id.clone()));
    assert_eq!(cached_from(&two, "evaluate"), None);
    assert_eq!(
        two["steps"]["train"]["cached_from"]["step"], "train",
        "{two:#}"
    );
    assert_eq!(
        two["steps"]["train"]["output"],
        one["steps"]["train"]["output"]
    );
    assert_eq!(
        two["steps"]["evaluate"]["output"]["metrics"],
        one["steps"]["evaluate"]["output"]["metrics"]
    );
    let status = crate::pipeline::status(&second).await?;
    let train = status.steps.iter().find(|s| s.id == "train").unwrap();
    assert!(
        train
            .note
            .as_deref()
            .unwrap_or_default()
            .starts_with("cached"),
        "{train:?}"
    );
    replay("cached", &history_json(&second).await?).await?;

    // Lineage: run 1's graph links extract -> train -> evaluate by the digests of the split
    // and model files; run 2's cached steps say where they came from.
    let lineage = |id: &str| -> anyhow::Result<Value> {
        let out = std::process::Command::new(binary)
            .args(["pipeline", "lineage", id, "--json", "--artifacts-dir"])
            .arg(worker.artifacts.path())
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    let graph = lineage(&first_id)?;
    let edges: Vec<(String, String, String)> = graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_string();
            (s("from"), s("to"), s("path"))
        })
        .collect();
    for (from, to, path) in [
        ("extract", "train", "/artifacts/dataset/train.csv"),
        ("extract", "evaluate", "/artifacts/dataset/test.csv"),
        ("train", "evaluate", "/artifacts/model/model.json"),
    ] {
        assert!(
            edges.contains(&(from.into(), to.into(), path.into())),
            "{from} -> {to} ({path}) missing: {graph:#}"
        );
    }
    let steps = graph["steps"].as_array().unwrap();
    let train = steps.iter().find(|s| s["step"] == "train").unwrap();
    assert_eq!(train["plugin"], "trainer");
    assert!(train["digest"].as_str().unwrap().starts_with("sha256:"));
    assert!(
        train["reads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["path"] == "/artifacts/dataset/train.csv")
    );
    let graph_two = lineage(&second_id)?;
    let cached_train = graph_two["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "train")
        .unwrap();
    assert_eq!(
        cached_train["cached_from"]["workflow_id"],
        first_id.as_str()
    );

    // 3. no_cache (`pipeline run --no-cache`): everything runs.
    let mut uncached = spec(1);
    uncached["no_cache"] = json!(true);
    let (_, _, three) = run(&client, &worker, "cache-off", uncached).await?;
    succeeded(&three);
    for step in ["extract", "train", "evaluate"] {
        assert_eq!(cached_from(&three, step), None, "{three:#}");
    }

    // 4. The data file changes (one value): extract reads other bytes, so it runs, and so
    // does train, whose split files now differ.
    let iris = data.path().join("iris.csv");
    let text = std::fs::read_to_string(&iris)?;
    let changed = text.replacen("5.1,", "5.2,", 1);
    assert_ne!(text, changed);
    std::fs::write(&iris, changed)?;
    let (_, _, four) = run(&client, &worker, "cache-new-data", spec(1)).await?;
    succeeded(&four);
    assert_eq!(cached_from(&four, "extract"), None, "{four:#}");
    assert_eq!(cached_from(&four, "train"), None, "{four:#}");
    std::fs::write(&iris, text)?;

    // 5. A new build of the csv plugin (same code, other bytes): extract runs again; its
    // split files are the same bytes, so train is still a hit.
    worker.kill()?;
    rebuild(plugins.path(), "csv");
    let worker = worker.successor(binary, server, plugins.path(), &[], &[])?;
    let (_, _, five) = run(&client, &worker, "cache-new-plugin", spec(1)).await?;
    succeeded(&five);
    assert_eq!(cached_from(&five, "extract"), None, "{five:#}");
    assert!(cached_from(&five, "train").is_some(), "{five:#}");

    // 6. Two identical runs at once, of a split nobody cached: both succeed with the same
    // results (both may run; the entry either stores is whole), and a third then hits.
    let (a, b) = tokio::join!(
        run(&client, &worker, "cache-race-a", spec(2)),
        run(&client, &worker, "cache-race-b", spec(2)),
    );
    let ((_, _, a), (_, _, b)) = (a?, b?);
    succeeded(&a);
    succeeded(&b);
    assert_eq!(
        a["steps"]["evaluate"]["output"]["metrics"],
        b["steps"]["evaluate"]["output"]["metrics"]
    );
    let (_, _, c) = run(&client, &worker, "cache-race-c", spec(2)).await?;
    assert!(cached_from(&c, "train").is_some(), "{c:#}");
    assert_eq!(
        c["steps"]["evaluate"]["output"]["metrics"],
        a["steps"]["evaluate"]["output"]["metrics"]
    );
    Ok(())
}

/// A worker whose cache may keep nothing (`--step-cache-max-mb 0`): each result it stores is
/// evicted by the pass that follows the store, so the next identical run runs every step.
#[tokio::test(flavor = "multi_thread")]
async fn a_cache_over_its_size_is_evicted_and_the_next_run_misses() -> anyhow::Result<()> {
    let server = shared_server().await?;
    let plugins = PluginsDir::with(&["csv", "trainer"]);
    plugins.grant_data("csv");
    let binary = mlx_e2e::worker_binary();
    let worker = WorkerProcess::start_with(
        binary,
        server,
        plugins.path(),
        &[],
        &["--step-cache-max-mb", "0"],
    )?;
    let client = server.client().await?;
    let (_, _, one) = run(&client, &worker, "cache-evicted-1", spec(7)).await?;
    succeeded(&one);
    let cache = worker.artifacts.path().join(".step-cache");
    mlx_e2e::eventually(
        std::time::Duration::from_secs(180),
        "the step cache emptied by eviction",
        || async {
            let left = |dir: &str| std::fs::read_dir(cache.join(dir)).map_or(0, |d| d.count());
            (cache.join("entries").is_dir() && left("entries") == 0 && left("blobs") == 0)
                .then_some(())
        },
    )
    .await?;
    let (_, _, two) = run(&client, &worker, "cache-evicted-2", spec(7)).await?;
    succeeded(&two);
    for step in ["extract", "train"] {
        assert_eq!(cached_from(&two, step), None, "{two:#}");
    }
    Ok(())
}
