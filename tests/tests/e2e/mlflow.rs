//! The mlflow plugin against a real `mlflow server` (`make mlflow-tools`: PyPI mlflow, SQLite
//! backend, artifacts proxied, on loopback): a pipeline trains a model and logs it, and the
//! run is read back through MLflow's own Python client. Also: a sweep logs one run per item,
//! a retried step finds its run instead of logging a second one, and an origin the manifest
//! does not grant is refused.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mlx_e2e::{
    PluginsDir, TestWorker, eventually, find, free_port, run_step, shared_server,
    single_failed_attempt, unique, workspace_root,
};
use serde_json::{Value, json};
use temporalio_client::WorkflowGetResultOptions;

use crate::pipeline::start;

fn venv_bin(name: &str) -> PathBuf {
    let bin = workspace_root().join("tools/mlflow-venv/bin").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run `make mlflow-tools` (MLflow for these tests)",
        bin.display()
    );
    bin
}

/// An `mlflow server` on a free loopback port with its store in a temporary directory; killed
/// with its workers on drop.
struct MlflowServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl MlflowServer {
    async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log"))?;
        let child = Command::new(venv_bin("mlflow"))
            .args(["server", "--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--backend-store-uri")
            .arg(format!(
                "sqlite:///{}",
                dir.path().join("mlflow.db").display()
            ))
            .arg("--artifacts-destination")
            .arg(dir.path().join("artifacts"))
            .args(["--workers", "1"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group, so drop ends the server's workers with it.
            .process_group(0)
            .spawn()?;
        let server = Self { child, port, dir };
        // The first start imports much of MLflow and creates the database: on a loaded
        // machine that takes a while.
        let up = eventually(Duration::from_secs(120), "mlflow server /health", || {
            let healthy = health(port);
            async move { healthy.then_some(()) }
        })
        .await;
        if let Err(e) = up {
            let log =
                std::fs::read_to_string(server.dir.path().join("server.log")).unwrap_or_default();
            anyhow::bail!("{e}\nmlflow server log:\n{log}");
        }
        Ok(server)
    }

    fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this struct started; no memory is involved.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// Whether GET /health answers 200 right now.
fn health(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /health HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200")
}

/// What MLflow's own client reads back about a run and its experiment (`plugin_run` is the
/// tag value the runs are searched by).
fn read_back(uri: &str, run_id: &str, experiment: &str, plugin_run: &str) -> anyhow::Result<Value> {
    const SCRIPT: &str = r#"
import json, sys, tempfile
import mlflow
uri, run_id, experiment, plugin_run = sys.argv[1:5]
client = mlflow.MlflowClient(uri)
run = client.get_run(run_id)
history = client.get_metric_history(run_id, "train_loss")
exp = client.get_experiment_by_name(experiment)
runs = client.search_runs(
    [exp.experiment_id], filter_string=f"tags.\"mlx.plugin_run\" = '{plugin_run}'")
local = client.download_artifacts(run_id, "model/model.json", tempfile.mkdtemp())
print(json.dumps({
    "status": run.info.status,
    "experiment_id": run.info.experiment_id,
    "run_name": run.info.run_name,
    "params": run.data.params,
    "metrics": run.data.metrics,
    "tags": run.data.tags,
    "loss": [[m.step, m.value] for m in history],
    "model_dir": [a.path for a in client.list_artifacts(run_id, "model")],
    "files_dir": [a.path for a in client.list_artifacts(run_id, "files")],
    "model_file": local,
    "runs": [r.info.run_id for r in runs],
}))
"#;
    python(SCRIPT, &[uri, run_id, experiment, plugin_run])
}

/// The worker with csv, trainer and mlflow, mlflow granted `allow` only.
async fn worker(allow: &str) -> anyhow::Result<(TestWorker, PluginsDir)> {
    let server = shared_server().await?;
    let plugins = PluginsDir::with(&["csv", "trainer", "mlflow"]);
    plugins.grant_data("csv");
    plugins.write_manifest(
        "mlflow",
        &format!("[http]\nallow = [{allow:?}]\nmax_request_kb = 65536\n"),
    );
    let worker = TestWorker::start(server, plugins.path()).await?;
    Ok((worker, plugins))
}

fn host_path(worker: &TestWorker, workflow_id: &str, guest: &Value) -> PathBuf {
    let guest = guest.as_str().unwrap();
    worker
        .artifacts
        .path()
        .join(workflow_id)
        .join(guest.trim_start_matches("/artifacts/"))
}

/// extract → train (gradient boosting, 20 rounds) → track: the run MLflow's client reads back
/// has the params, the loss of every round, the final metrics, the model file byte for byte
/// and the tags linking it to the pipeline run.
#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_logs_its_training_run_to_mlflow() -> anyhow::Result<()> {
    let mlflow = MlflowServer::start().await?;
    let (worker, _plugins) = worker(&mlflow.uri()).await?;
    let client = shared_server().await?.client().await?;
    let id = unique("mlflow-pipeline");
    let spec = json!({
        "name": "tracked-training",
        "steps": [
            {"id": "extract", "plugin": "csv", "operation": "extract_data",
             "input": {"source": "/data/breast_cancer.csv", "target": "target",
                       "test_fraction": 0.2, "seed": 42, "format": "parquet"}},
            {"id": "train", "plugin": "trainer", "operation": "train_model",
             "depends_on": ["extract"],
             "input": {"train": "${steps.extract.output.train.path}",
                       "test": "${steps.extract.output.test.path}",
                       "target": "${steps.extract.output.target}",
                       "model": {"family": "gradient_boosting",
                                 "hyperparameters": {"n_estimators": 20, "seed": 7}}}},
            {"id": "track", "plugin": "mlflow", "operation": "log_run",
             "depends_on": ["train"],
             "input": {"tracking_uri": mlflow.uri(), "experiment": "breast-cancer",
                       "params": {"dataset": "breast_cancer.csv"},
                       "metrics": "${steps.train.output.metrics}",
                       "model": "${steps.train.output.model.path}",
                       "tags": {"team": "ml"}}},
        ],
    });
    let handle = start(&client, &worker, &id, spec).await?;
    let result = handle
        .get_result(WorkflowGetResultOptions::default())
        .await?;
    let steps = &result["steps"];
    let tracked = &steps["track"]["output"];
    assert_eq!(tracked["already_logged"], false, "{tracked:#}");
    assert_eq!(tracked["artifacts"], json!(["model/model.json"]));
    let run_id = tracked["run_id"].as_str().unwrap();
    assert_eq!(
        tracked["run_url"],
        format!(
            "{}/#/experiments/{}/runs/{run_id}",
            mlflow.uri(),
            tracked["experiment_id"].as_str().unwrap()
        )
    );

    let plugin_run = format!("{id}/track");
    let run = read_back(&mlflow.uri(), run_id, "breast-cancer", &plugin_run)?;
    assert_eq!(run["status"], "FINISHED", "{run:#}");
    assert_eq!(run["experiment_id"], tracked["experiment_id"]);
    assert_eq!(run["run_name"], "track", "the step id by default");
    assert_eq!(run["runs"], json!([run_id]));
    // The per-round history: gradient boosting records the loss after each of its rounds.
    let loss = run["loss"].as_array().unwrap();
    assert_eq!(loss.len(), 20, "{run:#}");
    let steps_logged: Vec<i64> = loss.iter().map(|p| p[0].as_i64().unwrap()).collect();
    assert_eq!(steps_logged, (1..=20).collect::<Vec<i64>>());
    assert_eq!(
        loss.last().unwrap()[1].as_f64(),
        steps["train"]["output"]["rounds"]["final_loss"].as_f64()
    );
    let params = &run["params"];
    assert_eq!(params["family"], "gradient_boosting", "{params:#}");
    assert_eq!(params["hyperparameters.n_estimators"], "20");
    assert_eq!(params["hyperparameters.seed"], "7");
    assert_eq!(params["dataset"], "breast_cancer.csv");
    assert_eq!(
        run["metrics"]["accuracy"].as_f64(),
        steps["train"]["output"]["metrics"]["accuracy"].as_f64(),
        "{run:#}"
    );
    let tags = &run["tags"];
    assert_eq!(tags["mlx.workflow_id"], id.as_str(), "{tags:#}");
    assert_eq!(tags["mlx.step"], "track");
    assert_eq!(tags["mlx.plugin_run"], plugin_run.as_str());
    assert_eq!(tags["team"], "ml");
    assert_eq!(run["model_dir"], json!(["model/model.json"]));
    let uploaded = std::fs::read(run["model_file"].as_str().unwrap())?;
    let trained = std::fs::read(host_path(
        &worker,
        &id,
        &steps["train"]["output"]["model"]["path"],
    ))?;
    assert_eq!(uploaded, trained, "the artifact is the trained file");
    worker.stop().await
}

/// The sweep pattern (the step proposed for pipelines/sweep.yaml): a fan-out `log_run` over
/// a fan-out training step's items logs one run per model, each tagged with its own item
/// step (`track.0`, `track.1`).
#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_logs_one_run_per_item() -> anyhow::Result<()> {
    let mlflow = MlflowServer::start().await?;
    let (worker, _plugins) = worker(&mlflow.uri()).await?;
    let client = shared_server().await?.client().await?;
    let id = unique("mlflow-sweep");
    let spec = json!({
        "name": "tracked-sweep",
        "params": {"learning_rates": [0.1, 0.3], "tracking_uri": mlflow.uri()},
        "steps": [
            {"id": "extract", "plugin": "csv", "operation": "extract_data",
             "input": {"source": "/data/breast_cancer.csv", "target": "target",
                       "test_fraction": 0.25, "seed": 7, "format": "parquet"}},
            {"id": "sweep", "plugin": "trainer", "operation": "train_model",
             "depends_on": ["extract"], "for_each": "${params.learning_rates}",
             "best": {"by": "metrics.log_loss", "order": "min"},
             "input": {"train": "${steps.extract.output.train.path}",
                       "test": "${steps.extract.output.test.path}",
                       "target": "${steps.extract.output.target}",
                       "model": {"family": "gradient_boosting",
                                 "hyperparameters": {"learning_rate": "${item}",
                                                     "n_estimators": 5}},
                       "output_dir": "/artifacts/sweep/lr-${item}"}},
            {"id": "track", "plugin": "mlflow", "operation": "log_run",
             "depends_on": ["sweep"], "for_each": "${steps.sweep.output.items}",
             "concurrency": 2, "cache": false,
             "input": {"tracking_uri": "${params.tracking_uri}", "experiment": "sweep",
                       "run_name": "lr-${item.item}",
                       "metrics": "${item.output.metrics}",
                       "model": "${item.output.model.path}"}},
        ],
    });
    let handle = start(&client, &worker, &id, spec).await?;
    let result = handle
        .get_result(WorkflowGetResultOptions::default())
        .await?;
    let items = result["steps"]["track"]["output"]["items"]
        .as_array()
        .unwrap();
    assert_eq!(items.len(), 2, "{result:#}");
    let runs = python(SWEEP_RUNS, &[&mlflow.uri(), "sweep", &id])?;
    assert_eq!(
        runs,
        json!({
            "lr-0.1": ["track.0", "0.1", 5, "FINISHED"],
            "lr-0.3": ["track.1", "0.3", 5, "FINISHED"],
        }),
        "{result:#}"
    );
    worker.stop().await
}

/// The runs of one pipeline run as `{run_name: [step, learning rate, loss points, status]}`.
const SWEEP_RUNS: &str = r#"
import json, sys
import mlflow
uri, experiment, workflow_id = sys.argv[1:4]
client = mlflow.MlflowClient(uri)
experiment_id = client.get_experiment_by_name(experiment).experiment_id
runs = client.search_runs(
    [experiment_id], filter_string=f"tags.\"mlx.workflow_id\" = '{workflow_id}'")
print(json.dumps({
    r.info.run_name: [
        r.data.tags["mlx.step"], r.data.params["hyperparameters.learning_rate"],
        len(client.get_metric_history(r.info.run_id, "train_loss")), r.info.status]
    for r in runs
}))
"#;

/// The same step run twice (same workflow id, same activity id: what a retry after a lost
/// result looks like to the plugin) leaves one finished run, and the second call says so. A
/// run an earlier attempt left unfinished (here made by MLflow's client, with a param the
/// step logs with another value) is deleted and replaced, not completed.
#[tokio::test(flavor = "multi_thread")]
async fn a_retried_step_finds_its_run_instead_of_logging_another() -> anyhow::Result<()> {
    let mlflow = MlflowServer::start().await?;
    let (worker, _plugins) = worker(&mlflow.uri()).await?;
    let server = shared_server().await?;
    let id = unique("mlflow-retry");
    // RunPluginWorkflow's one activity has id 1.
    let plugin_run = format!("{id}/1");
    let stale = python(STALE_RUN, &[&mlflow.uri(), "retries", &plugin_run])?;
    let stale = stale.as_str().unwrap();
    // The workflow's own artifacts directory, which the plugin sees as /artifacts.
    let own = worker.artifacts.path().join(&id);
    std::fs::create_dir_all(&own)?;
    std::fs::write(
        own.join("plot.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
    )?;
    let step = json!({
        "plugin": "mlflow", "operation": "log_run", "start_to_close_secs": 120,
        "input": {"tracking_uri": mlflow.uri(), "experiment": "retries", "run_name": "r",
                  "params": {"lr": 0.1}, "metrics": {"acc": 0.5, "name": "x"},
                  "artifacts": ["/artifacts/plot.svg"]},
    });
    let (first, _) = run_step(server, &worker, &id, step.clone()).await?;
    let first = first.map_err(anyhow::Error::msg)?;
    assert_eq!(first["already_logged"], false, "{first:#}");
    assert_eq!(first["skipped_metrics"], 1);
    assert_eq!(first["artifacts"], json!(["files/plot.svg"]));
    let run_id = first["run_id"].as_str().unwrap();
    assert_ne!(run_id, stale);
    let (second, _) = run_step(server, &worker, &id, step).await?;
    let second = second.map_err(anyhow::Error::msg)?;
    assert_eq!(second["already_logged"], true, "{second:#}");
    assert_eq!(second["run_id"], first["run_id"]);

    let runs = python(RUNS, &[&mlflow.uri(), "retries", &plugin_run, run_id])?;
    assert_eq!(
        runs["runs"],
        json!({run_id: ["FINISHED", "active"], stale: ["RUNNING", "deleted"]}),
        "{runs:#}"
    );
    assert_eq!(runs["params"], json!({"lr": "0.1"}));
    assert_eq!(runs["files"], json!(["files/plot.svg"]));
    worker.stop().await
}

/// Creates what an attempt that died midway leaves: a RUNNING run with the step's tag and a
/// param the step logs with another value.
const STALE_RUN: &str = r#"
import json, sys
import mlflow
uri, experiment, plugin_run = sys.argv[1:4]
client = mlflow.MlflowClient(uri)
experiment_id = client.create_experiment(experiment)
run = client.create_run(experiment_id, tags={"mlx.plugin_run": plugin_run}, run_name="stale")
client.log_param(run.info.run_id, "lr", "0.9")
print(json.dumps(run.info.run_id))
"#;

/// Every run tagged with the step, deleted ones too, as `{run_id: [status, lifecycle]}`, and
/// the params and files of run `argv[4]`.
const RUNS: &str = r#"
import json, sys
import mlflow
from mlflow.entities import ViewType
uri, experiment, plugin_run, run_id = sys.argv[1:5]
client = mlflow.MlflowClient(uri)
experiment_id = client.get_experiment_by_name(experiment).experiment_id
runs = client.search_runs(
    [experiment_id], filter_string=f"tags.\"mlx.plugin_run\" = '{plugin_run}'",
    run_view_type=ViewType.ALL)
print(json.dumps({
    "runs": {r.info.run_id: [r.info.status, r.info.lifecycle_stage] for r in runs},
    "params": client.get_run(run_id).data.params,
    "files": [a.path for a in client.list_artifacts(run_id, "files")],
}))
"#;

/// Runs `script` with MLflow's client and `args`; its stdout as JSON.
fn python(script: &str, args: &[&str]) -> anyhow::Result<Value> {
    let out = Command::new(venv_bin("python"))
        .arg("-c")
        .arg(script)
        .args(args)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "MLflow's client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// A tracking server whose origin the manifest does not list is refused by the host before
/// any connection: a permanent CapabilityDenied, one attempt.
#[tokio::test(flavor = "multi_thread")]
async fn an_origin_not_granted_is_refused() -> anyhow::Result<()> {
    let granted = free_port();
    let (worker, _plugins) = worker(&format!("http://127.0.0.1:{granted}")).await?;
    let server = shared_server().await?;
    let other = free_port();
    let step = json!({
        "plugin": "mlflow", "operation": "log_run", "start_to_close_secs": 60,
        "max_attempts": 3,
        "input": {"tracking_uri": format!("http://127.0.0.1:{other}"), "experiment": "e"},
    });
    let (result, history) = run_step(server, &worker, &unique("mlflow-denied"), step).await?;
    assert!(result.is_err(), "{result:?}");
    let failure = single_failed_attempt(&history);
    assert_eq!(
        find(&failure, "type"),
        Some(&json!("CapabilityDenied")),
        "{failure:#}"
    );
    let message = find(&failure, "message")
        .and_then(Value::as_str)
        .unwrap_or("");
    assert!(message.contains("[http] allow"), "{failure:#}");
    worker.stop().await
}
