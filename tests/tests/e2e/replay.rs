//! Determinism: recorded `PipelineWorkflow` histories (tests/histories/, recorded from the
//! real-server tests in pipeline.rs with `MLX_RECORD_HISTORIES=1`) must replay against the
//! current workflow code. A change that alters the commands a recorded run produced fails
//! here, before it fails running pipelines in production. No server needed.

use std::path::PathBuf;

use base64::Engine;
use mlx_e2e::workspace_root;
use mlx_worker::temporal::PipelineWorkflow;
use serde_json::Value;
use temporalio_client::WorkflowHistory;
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};

fn histories() -> Vec<PathBuf> {
    let dir = workspace_root().join("tests/histories");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn replayer() -> anyhow::Result<WorkflowReplayer> {
    Ok(WorkflowReplayer::new(
        WorkflowReplayerOptions::new()
            .register_workflow::<PipelineWorkflow>()?
            .build(),
    )?)
}

#[tokio::test]
async fn recorded_pipeline_histories_replay() -> anyhow::Result<()> {
    let files = histories();
    // Every scenario of pipeline.rs: ordering, retry, continue, compensation, approval,
    // a compensation waiting for a running step, rejection, pause, cancel-step and cancelling
    // the whole pipeline; and step_cache.rs's run whose steps were served from the cache.
    assert!(files.len() >= 14, "recorded histories: {files:?}");
    assert!(
        files.iter().any(|f| f.ends_with("cached.json")),
        "recorded histories: {files:?}"
    );
    let replayer = replayer()?;
    for file in files {
        let history = WorkflowHistory::from_json(&std::fs::read(&file)?)?;
        replayer
            .replay_workflow(history)
            .await
            .map_err(|e| anyhow::anyhow!("{} does not replay: {e:?}", file.display()))?;
    }
    Ok(())
}

/// The check has teeth: the same history with the spec changed under it (step `b` renamed, so
/// the workflow would schedule different activities) is refused as nondeterministic.
#[tokio::test]
async fn a_history_that_no_longer_matches_the_code_is_refused() -> anyhow::Result<()> {
    let path = workspace_root().join("tests/histories/diamond.json");
    let mut history: Value = serde_json::from_slice(&std::fs::read(path)?)?;
    let started = history["events"][0]["attributes"]
        .get_mut("WorkflowExecutionStartedEventAttributes")
        .expect("the first event starts the workflow");
    let data = &mut started["input"]["payloads"][0]["data"];
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut spec: Value = serde_json::from_slice(&b64.decode(data.as_str().unwrap())?)?;
    spec["steps"][1]["id"] = "b2".into();
    spec["steps"][3]["depends_on"] = serde_json::json!(["b2", "c"]);
    spec["steps"][3]["input"]["beats"] = "${steps.b2.output.beats}".into();
    *data = b64.encode(spec.to_string()).into();

    let history = WorkflowHistory::from_json(&serde_json::to_vec(&history)?)?;
    let err = replayer()?
        .replay_workflow(history)
        .await
        .expect_err("a changed spec schedules different activities");
    let text = format!("{err:?}");
    assert!(text.to_lowercase().contains("nondetermin"), "{text}");
    Ok(())
}
