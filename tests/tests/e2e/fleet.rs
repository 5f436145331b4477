//! A fleet that shares nothing but Temporal and an S3 store (`worker.artifacts_store`): real
//! `mlx-worker` processes, each with its own artifacts directory (its local disk), and a real
//! S3-compatible server (s3s-fs, `make s3-tools`). Which worker ran a step is read from the
//! history (`ActivityTaskStarted.identity` is the worker's `pid@host`).

use std::{collections::BTreeMap, path::Path, process::Command, time::Duration};

use mlx_e2e::{
    DevServer, PluginsDir, WorkerProcess, compile_cache, events, eventually, history_of,
    oci_registry::OciRegistry, printed, s3::S3Server, shared_server, unique, worker_binary,
};
use mlx_pipeline::{RunState, StepStatus};
use mlx_worker::temporal::PipelineWorkflow;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use temporalio_client::{
    Client, WorkflowCancelOptions, WorkflowExecuteUpdateOptions, WorkflowGetResultOptions,
};

use crate::pipeline::{Pipeline, decision, grant_registry, status, step, training};

const BUCKET: &str = "fleet";

/// The environment of a worker keeping artifacts on `s3`.
fn store_env(s3: &S3Server) -> Vec<(&'static str, String)> {
    let mut env = s3.env();
    env.push(("MLX_ARTIFACTS_STORE", format!("s3://{BUCKET}/runs")));
    env
}

fn as_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn start(
    client: &Client,
    task_queue: &str,
    id: &str,
    spec: &Value,
) -> anyhow::Result<Pipeline> {
    client
        .start_workflow(
            PipelineWorkflow::run,
            mlx_worker::temporal::payload::json_input(spec),
            temporalio_client::WorkflowStartOptions::new(task_queue.to_string(), id.to_string())
                .build(),
        )
        .await?;
    Ok(client.get_workflow_handle::<PipelineWorkflow>(id))
}

/// Waits (generously: real training on a loaded machine) for step `id` to be `want`; fails at
/// once if the run fails instead.
async fn wait_for(handle: &Pipeline, id: &str, want: StepStatus) -> anyhow::Result<()> {
    eventually(
        Duration::from_secs(600),
        &format!("step {id} {want:?}"),
        || async {
            let status = status(handle).await.ok()?;
            if matches!(status.state, RunState::Failing | RunState::Failed) {
                return Some(Err(anyhow::anyhow!("the run failed: {status:#?}")));
            }
            (step(&status, id).status == want).then_some(Ok(()))
        },
    )
    .await?
}

/// Activity id → identity of the worker that started its last attempt.
async fn who_ran(
    server: &DevServer,
    workflow_id: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let events = history_of(server, workflow_id).await?;
    let mut scheduled = BTreeMap::new();
    let mut ran = BTreeMap::new();
    for event in &events {
        let attributes = &event["attributes"];
        if let Some(a) = attributes.get("ActivityTaskScheduledEventAttributes") {
            let activity = a["activity_id"].as_str().unwrap_or_default().to_string();
            scheduled.insert(event["event_id"].as_i64(), activity);
        }
        if let Some(a) = attributes.get("ActivityTaskStartedEventAttributes")
            && let Some(activity) = scheduled.get(&a["scheduled_event_id"].as_i64())
        {
            let identity = a["identity"].as_str().unwrap_or_default().to_string();
            ran.insert(activity.clone(), identity);
        }
    }
    Ok(ran)
}

/// How many attempts `workflow_id` took to finish its only activity: a started event is
/// recorded once, with the last attempt's number.
async fn attempts(server: &DevServer, workflow_id: &str) -> anyhow::Result<usize> {
    let history = history_of(server, workflow_id).await?;
    let started = events(&history, "ActivityTaskStarted");
    anyhow::ensure!(
        started.len() == 1,
        "one activity, once finished: {started:?}"
    );
    let attempt = started[0]["attempt"].as_u64();
    attempt
        .map(|a| a as usize)
        .ok_or_else(|| anyhow::anyhow!("no attempt in {:?}", started[0]))
}

fn ran_on(ran: &BTreeMap<String, String>, activity: &str, worker: &WorkerProcess) -> bool {
    ran.get(activity)
        .is_some_and(|identity| identity.starts_with(&format!("{}@", worker.pid())))
}

/// The example training pipeline with a hand-off gate after `extract`: the test stops the
/// first worker there and starts a second, so the split files can only reach `train` through
/// the store.
fn handed_off() -> anyhow::Result<Value> {
    let mut spec = training(0.9)?;
    let steps = spec["steps"].as_array_mut().expect("steps");
    let train = steps
        .iter_mut()
        .find(|s| s["id"] == "train")
        .expect("a train step");
    train["depends_on"] = json!(["handoff"]);
    steps.insert(
        1,
        json!({"id": "handoff", "type": "approval", "depends_on": ["extract"]}),
    );
    Ok(spec)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_training_pipeline_runs_across_two_workers_through_s3() -> anyhow::Result<()> {
    let server = shared_server().await?;
    let client = server.client().await?;
    let s3 = S3Server::start().await;
    s3.create_bucket(BUCKET);
    let plugins = PluginsDir::with(&["csv", "trainer"]);
    plugins.grant_data("csv");
    grant_registry(&plugins);
    let env = store_env(&s3);

    let mut first = WorkerProcess::start(worker_binary(), server, plugins.path(), &as_refs(&env))?;
    let id = unique("fleet-training");
    let run = start(&client, &first.task_queue, &id, &handed_off()?).await?;
    wait_for(&run, "handoff", StepStatus::WaitingApproval).await?;
    first.terminate();
    first.exit_status(Duration::from_secs(120)).await?;

    let second = first.peer(worker_binary(), server, plugins.path(), &as_refs(&env))?;
    let updates = WorkflowExecuteUpdateOptions::default;
    run.execute_update(PipelineWorkflow::approve, decision("handoff"), updates())
        .await?;
    wait_for(&run, "approve", StepStatus::WaitingApproval).await?;
    run.execute_update(PipelineWorkflow::approve, decision("approve"), updates())
        .await?;
    let result = run.get_result(WorkflowGetResultOptions::default()).await?;
    let steps = &result["steps"];
    let accuracy = steps["evaluate"]["output"]["metrics"]["accuracy"]
        .as_f64()
        .unwrap_or_default();
    assert!(accuracy >= 0.9, "{result:#}");
    assert_eq!(steps["register"]["status"], "succeeded", "{result:#}");

    let ran = who_ran(server, &id).await?;
    assert!(
        ran_on(&ran, "extract", &first),
        "extract on the first: {ran:?}"
    );
    for later in ["train", "evaluate", "register"] {
        assert!(
            ran_on(&ran, later, &second),
            "{later} on the second: {ran:?}"
        );
    }
    // Nothing of the run on either worker's disk outside its work copies: the files went
    // through the store.
    let run_dir = mlx_runtime::sandbox::workflow_dir_name(&id);
    for worker in [&first, &second] {
        assert!(!worker.artifacts.path().join(&run_dir).exists());
    }
    let committed = commits(&s3, &run_dir);
    assert!(
        committed.len() >= 3,
        "extract, train, evaluate commit: {committed:?}"
    );
    Ok(())
}

/// The commit manifests of `run` on the server, by file name.
fn commits(s3: &S3Server, run: &str) -> BTreeMap<String, Value> {
    // The store's prefix is `runs`, and under it a run's commits are `runs/<run>/commits`.
    let dir = s3
        .root()
        .join(BUCKET)
        .join("runs/runs")
        .join(run)
        .join("commits");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                serde_json::from_str(&text).unwrap(),
            )
        })
        .collect()
}

/// Whether a multipart upload has parts on the server: s3s-fs keeps each part as
/// `.upload_id-<id>.part-<n>` in its root until the upload completes.
fn upload_in_progress(root: &Path) -> bool {
    std::fs::read_dir(root).is_ok_and(|entries| {
        entries
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with(".upload_id-"))
    })
}

/// A worker uploading a step's 256 MiB file to its own S3 server: the hostile plugin's
/// `disk_fill` as step `write` with these `timeouts` (and `retry`), returned once the upload's
/// first part is on the server, so that the upload is surely unfinished.
struct BigUpload {
    s3: S3Server,
    plugins: PluginsDir,
    env: Vec<(&'static str, String)>,
    worker: WorkerProcess,
    id: String,
    run: Pipeline,
}

const BIG_MB: u64 = 256;

async fn big_upload(
    server: &'static DevServer,
    client: &Client,
    prefix: &str,
    timeouts: Value,
    retry: Option<Value>,
) -> anyhow::Result<BigUpload> {
    let s3 = S3Server::start().await;
    s3.create_bucket(BUCKET);
    let plugins = PluginsDir::with(&["hostile"]);
    plugins.write_manifest("hostile", "[limits]\ndisk_mb = 1024\n");
    let env = store_env(&s3);
    let worker = WorkerProcess::start(worker_binary(), server, plugins.path(), &as_refs(&env))?;
    let id = unique(prefix);
    let mut step = json!({
        "id": "write", "plugin": "hostile", "operation": "disk_fill",
        "input": {"path": "/artifacts/big.bin", "mb": BIG_MB},
        "timeouts": timeouts,
    });
    if let Some(retry) = retry {
        step["retry"] = retry;
    }
    let spec = json!({"name": "big", "steps": [step]});
    let run = start(client, &worker.task_queue, &id, &spec).await?;
    // 256 MiB go up in 32 parts: at the first, the upload is surely unfinished.
    eventually(
        Duration::from_secs(300),
        "the upload's first part on the server",
        || {
            let started = upload_in_progress(&s3.root());
            async move { started.then_some(()) }
        },
    )
    .await?;
    Ok(BigUpload {
        s3,
        plugins,
        env,
        worker,
        id,
        run,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_upload_leaves_no_half_artifact_and_the_retry_succeeds()
-> anyhow::Result<()> {
    let server = shared_server().await?;
    let client = server.client().await?;
    // The dead worker's attempt times out after 30 s without heartbeats. Less is flaky on a
    // loaded machine: the SDK sends heartbeats at most every 0.8 × the timeout.
    let BigUpload {
        s3,
        plugins,
        env,
        worker: mut first,
        id,
        run,
    } = big_upload(
        server,
        &client,
        "fleet-kill",
        json!({"start_to_close_secs": 900, "heartbeat_secs": 30}),
        Some(json!({"initial_interval_secs": 1, "max_attempts": 3})),
    )
    .await?;
    first.kill()?;
    let run_dir = mlx_runtime::sandbox::workflow_dir_name(&id);
    assert!(
        commits(&s3, &run_dir).is_empty(),
        "killed before its commit: nothing of the step may be visible"
    );

    let second = first.peer(worker_binary(), server, plugins.path(), &as_refs(&env))?;
    let result = run.get_result(WorkflowGetResultOptions::default()).await?;
    assert_eq!(
        result["steps"]["write"]["output"]["written_mb"], BIG_MB,
        "{result:#}"
    );
    let ran = who_ran(server, &id).await?;
    assert!(ran_on(&ran, "write", &second), "{ran:?}");

    // Every commit names the whole file, and its blob on the server is exactly those bytes.
    // Usually one commit; a loaded machine can time out the retry's heartbeat mid-upload, and
    // the attempt after it commits the same bytes again: a commit twice, never half of one.
    let committed = commits(&s3, &run_dir);
    let attempts = attempts(server, &id).await?;
    eprintln!("{} commit(s) after {attempts} attempt(s)", committed.len());
    assert!(
        (1..attempts).contains(&committed.len()),
        "one commit per attempt after the killed one: {committed:?}"
    );
    let expected = {
        let mut h = Sha256::new();
        let chunk = vec![0xa5u8; 1 << 20];
        for _ in 0..BIG_MB {
            h.update(&chunk);
        }
        format!("{:x}", h.finalize())
    };
    for commit in committed.values() {
        let file = &commit["files"]["big.bin"];
        assert_eq!(file["size"], BIG_MB << 20, "{commit}");
        assert_eq!(
            file["sha256"], expected,
            "the committed file is the plugin's whole output: {commit}"
        );
    }
    let blob = s3
        .root()
        .join(BUCKET)
        .join("runs/blobs/sha256")
        .join(&expected);
    let mut hasher = Sha256::new();
    let mut reader = std::fs::File::open(&blob)?;
    std::io::copy(&mut reader, &mut hasher)?;
    assert_eq!(format!("{:x}", hasher.finalize()), expected);
    drop(second); // Stops it only now: it served the retry.
    Ok(())
}

/// A step cancelled while its worker uploads its files commits none of them: the upload stops
/// with the attempt. The server is stopped (SIGSTOP) mid-upload, so that only the cancellation
/// can end the attempt; a worker that finished the upload first would commit the files of a
/// cancelled step (or, for an attempt Temporal timed out, overwrite its successor's).
#[tokio::test(flavor = "multi_thread")]
async fn a_step_cancelled_mid_upload_commits_nothing() -> anyhow::Result<()> {
    let server = shared_server().await?;
    let client = server.client().await?;
    // Heartbeats every 4.8 s at most (0.8 × 6): the cancellation comes back on a heartbeat's
    // response.
    // The plugins directory stays bound: dropped, the worker would see its plugin removed.
    let BigUpload {
        s3,
        plugins: _plugins,
        worker,
        id,
        run,
        ..
    } = big_upload(
        server,
        &client,
        "fleet-cancel",
        json!({"start_to_close_secs": 900, "heartbeat_secs": 6}),
        None,
    )
    .await?;
    let stalled = s3.pause();
    let run_dir = mlx_runtime::sandbox::workflow_dir_name(&id);
    assert!(
        commits(&s3, &run_dir).is_empty(),
        "stopped before its commit"
    );

    run.cancel(WorkflowCancelOptions::default()).await?;
    // The run ends once the worker reports the attempt cancelled, which it must do while the
    // server is still stopped. A bound, so that a worker stuck in the upload fails the test
    // rather than hanging it (object_store's own timeouts and retries outlast it).
    let ended = tokio::time::timeout(
        Duration::from_secs(120),
        run.get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .map_err(|_| anyhow::anyhow!("cancelled, the step still held its run: its upload went on"))?;
    assert!(ended.is_err(), "a cancelled run has no result: {ended:?}");
    drop(stalled);

    let history = history_of(server, &id).await?;
    assert_eq!(
        events(&history, "ActivityTaskCanceled").len(),
        1,
        "{history:#?}"
    );
    assert!(events(&history, "ActivityTaskCompleted").is_empty());
    // The server runs again: the same worker commits the next run's step (its client was not
    // left stuck on the dropped upload), and still nothing of the cancelled step is there.
    let later = unique("fleet-after");
    let after = start(
        &client,
        &worker.task_queue,
        &later,
        &json!({"name": "small", "steps": [{
            "id": "write", "plugin": "hostile", "operation": "disk_fill",
            "input": {"path": "/artifacts/small.bin", "mb": 1}
        }]}),
    )
    .await?;
    after
        .get_result(WorkflowGetResultOptions::default())
        .await?;
    let later_dir = mlx_runtime::sandbox::workflow_dir_name(&later);
    assert_eq!(commits(&s3, &later_dir).len(), 1);
    assert!(
        commits(&s3, &run_dir).is_empty(),
        "the cancelled step committed"
    );
    Ok(())
}

/// `mlx-worker plugin push` of a component and its manifest; returns the pinned reference.
fn push(registry: &OciRegistry, plugins: &PluginsDir, name: &str) -> String {
    let out = Command::new(worker_binary())
        .args(["plugin", "push"])
        .arg(plugins.path().join(format!("{name}.wasm")))
        .arg(format!("oci://{}/ml/{name}:v1", registry.host))
        .env_remove("MLX_OCI_USERNAME")
        .env_remove("MLX_OCI_PASSWORD")
        .env("MLX_CACHE_DIR", compile_cache())
        .output()
        .expect("running plugin push");
    assert!(out.status.success(), "push {name}: {}", printed(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The identity of the worker running `activity` of `workflow_id` once it has heartbeated.
async fn running_on(server: &DevServer, workflow_id: &str, activity: &str) -> Option<String> {
    let client = server.client().await.ok()?;
    let handle = client.get_workflow_handle::<PipelineWorkflow>(workflow_id);
    let description = handle
        .describe(temporalio_client::WorkflowDescribeOptions::default())
        .await
        .ok()?;
    description
        .raw_description
        .pending_activities
        .iter()
        .find(|a| a.activity_id == activity && a.heartbeat_details.is_some())
        .map(|a| a.last_worker_identity.clone())
        .filter(|identity| !identity.is_empty())
}

/// Issue 17's whole fleet: two workers sharing nothing but Temporal, S3 and the OCI registry
/// (their plugins pulled by digest into plugins directories of their own), the example training
/// pipeline across them, and the worker training the model killed (SIGKILL) mid-step. The
/// survivor takes the retry, reading its inputs from the store, and the run completes.
#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_sharing_only_temporal_s3_and_a_registry_loses_nothing_to_kill_9()
-> anyhow::Result<()> {
    let server = shared_server().await?;
    let client = server.client().await?;
    let s3 = S3Server::start().await;
    s3.create_bucket(BUCKET);
    let registry = OciRegistry::start().await?;
    let source = PluginsDir::with(&["csv", "trainer"]);
    source.grant_data("csv");
    grant_registry(&source);
    let refs = ["csv", "trainer"].map(|name| push(&registry, &source, name));
    let mut env = store_env(&s3);
    env.push(("MLX_PLUGIN_REFS", refs.join(",")));
    let env = as_refs(&env);
    let (own_a, own_b) = (PluginsDir::with(&[]), PluginsDir::with(&[]));

    let mut spec = handed_off()?;
    let train = spec["steps"]
        .as_array_mut()
        .and_then(|steps| steps.iter_mut().find(|s| s["id"] == "train"))
        .expect("a train step");
    // Long enough to be killed mid-step; a dead worker's attempt times out in 20 s.
    train["input"]["model"] = json!({"family": "random_forest",
        "hyperparameters": {"n_estimators": 3000, "max_depth": 8, "seed": 42}});
    train["timeouts"] = json!({"start_to_close_secs": 1800, "heartbeat_secs": 20});
    train["retry"]["initial_interval_secs"] = json!(1);

    let a = WorkerProcess::start(worker_binary(), server, own_a.path(), &env)?;
    let id = unique("fleet-kill9");
    let run = start(&client, &a.task_queue, &id, &spec).await?;
    wait_for(&run, "handoff", StepStatus::WaitingApproval).await?;
    let b = a.peer(worker_binary(), server, own_b.path(), &env)?;
    let mut workers = [a, b];
    let updates = WorkflowExecuteUpdateOptions::default;
    run.execute_update(PipelineWorkflow::approve, decision("handoff"), updates())
        .await?;
    let trainer = eventually(
        Duration::from_secs(300),
        "train running and heartbeating",
        || running_on(server, &id, "train"),
    )
    .await?;
    let victim = workers
        .iter()
        .position(|w| trainer.starts_with(&format!("{}@", w.pid())))
        .unwrap_or_else(|| panic!("train runs on neither worker: {trainer}"));
    workers[victim].kill()?;
    let survivor = &workers[1 - victim];

    wait_for(&run, "approve", StepStatus::WaitingApproval).await?;
    run.execute_update(PipelineWorkflow::approve, decision("approve"), updates())
        .await?;
    let result = run.get_result(WorkflowGetResultOptions::default()).await?;
    let steps = &result["steps"];
    assert!(
        steps["evaluate"]["output"]["metrics"]["accuracy"]
            .as_f64()
            .is_some_and(|a| a >= 0.9),
        "{result:#}"
    );
    assert_eq!(steps["register"]["status"], "succeeded", "{result:#}");
    let ran = who_ran(server, &id).await?;
    for later in ["train", "evaluate", "register"] {
        assert!(
            ran_on(&ran, later, survivor),
            "{later} on the survivor: {ran:?}"
        );
    }
    // Each worker pulled the pinned plugins into its own directory, byte for byte.
    for own in [&own_a, &own_b] {
        for name in ["csv", "trainer"] {
            let file = format!("{name}.wasm");
            assert_eq!(
                std::fs::read(own.path().join(&file))?,
                std::fs::read(source.path().join(&file))?,
                "{file}"
            );
        }
    }
    Ok(())
}

/// extract → train (cached), a gate, evaluate (uncached) on iris.
fn cached_then_gated() -> Value {
    json!({
        "name": "fleet-cached", "cache": true,
        "steps": [
            {"id": "extract", "plugin": "csv", "operation": "extract_data",
             "input": {"source": "/data/iris.csv", "target": "target", "seed": 3}},
            {"id": "train", "plugin": "trainer", "operation": "train_model",
             "depends_on": ["extract"],
             "input": {"train": "${steps.extract.output.train.path}",
                       "test": "${steps.extract.output.test.path}", "target": "target",
                       "model": {"family": "decision_tree", "hyperparameters": {"max_depth": 4}}}},
            {"id": "gate", "type": "approval", "depends_on": ["train"]},
            {"id": "evaluate", "plugin": "trainer", "operation": "evaluate_model",
             "depends_on": ["gate"], "cache": false,
             "input": {"model": "${steps.train.output.model.path}",
                       "data": "${steps.extract.output.test.path}"}}
        ]
    })
}

/// A step served from a worker's step cache commits the files it restores, like a step that
/// ran: a second run's `evaluate`, on another worker, reads the model its cached `train`
/// named, which only ever reached the store through that commit.
#[tokio::test(flavor = "multi_thread")]
async fn files_a_cached_step_restores_reach_other_workers() -> anyhow::Result<()> {
    let server = shared_server().await?;
    let client = server.client().await?;
    let s3 = S3Server::start().await;
    s3.create_bucket(BUCKET);
    let plugins = PluginsDir::with(&["csv", "trainer"]);
    plugins.grant_data("csv");
    grant_registry(&plugins);
    let env = store_env(&s3);
    let mut first = WorkerProcess::start(worker_binary(), server, plugins.path(), &as_refs(&env))?;
    let updates = WorkflowExecuteUpdateOptions::default;

    let one = start(
        &client,
        &first.task_queue,
        &unique("fleet-cache-1"),
        &cached_then_gated(),
    )
    .await?;
    wait_for(&one, "gate", StepStatus::WaitingApproval).await?;
    one.execute_update(PipelineWorkflow::approve, decision("gate"), updates())
        .await?;
    one.get_result(WorkflowGetResultOptions::default()).await?;

    let id = unique("fleet-cache-2");
    let two = start(&client, &first.task_queue, &id, &cached_then_gated()).await?;
    wait_for(&two, "gate", StepStatus::WaitingApproval).await?;
    let status = status(&two).await?;
    for cached in ["extract", "train"] {
        assert!(step(&status, cached).cached_from.is_some(), "{status:#?}");
    }
    first.terminate();
    first.exit_status(Duration::from_secs(120)).await?;
    let second = first.peer(worker_binary(), server, plugins.path(), &as_refs(&env))?;
    two.execute_update(PipelineWorkflow::approve, decision("gate"), updates())
        .await?;
    let result = two.get_result(WorkflowGetResultOptions::default()).await?;
    assert_eq!(
        result["steps"]["evaluate"]["status"], "succeeded",
        "{result:#}"
    );
    assert!(ran_on(&who_ran(server, &id).await?, "evaluate", &second));
    Ok(())
}
