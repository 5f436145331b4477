//! Fan-out steps on a real server: items as activities `STEP.N` within the concurrency limit,
//! the best item read by the next step, `min_success_ratio`, and how much history an item
//! costs (the figure docs/pipelines.md states).

use std::{collections::BTreeSet, time::Duration};

use mlx_e2e::{eventually, unique, workspace_root};
use mlx_pipeline::{RunState, StepStatus};
use mlx_worker::temporal::PipelineWorkflow;
use serde_json::{Value, json};
use temporalio_client::{
    WorkflowDescribeOptions, WorkflowExecuteUpdateOptions, WorkflowGetResultOptions,
    WorkflowQueryOptions, WorkflowSignalOptions,
};

use crate::pipeline::{
    activity_timeline, decision, echo, history_events, history_json, replay, setup, start, status,
    step, training_worker, wait_for_step,
};

/// Most items whose activities were open at once, from the history's order of events.
fn most_at_once(timeline: &[(String, String)], step: &str) -> usize {
    let mut open = BTreeSet::new();
    let mut most = 0;
    for (id, kind) in timeline {
        if !id.starts_with(&format!("{step}.")) {
            continue;
        }
        if kind == "scheduled" {
            open.insert(id.clone());
        } else {
            open.remove(id);
        }
        most = most.max(open.len());
    }
    most
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_runs_its_items_two_at_a_time_and_the_next_step_reads_the_best()
-> anyhow::Result<()> {
    let (worker, client, _plugins) = setup().await?;
    let spec = json!({
        "name": "sweep",
        "params": {"rates": [0.1, 0.3, 0.2, 0.05, 0.4]},
        "steps": [
            echo("prepare", &[], json!({"data": "/artifacts/train.csv"})),
            {"id": "train", "plugin": "testkit", "operation": "echo", "depends_on": ["prepare"],
             "for_each": "${params.rates}", "concurrency": 2,
             // The echo's output is its input: the "score" is the rate itself.
             "best": {"by": "input.score"},
             "input": {"data": "${steps.prepare.output.input.data}", "score": "${item}",
                       "label": "lr=${item}"}},
            echo("evaluate", &["train"], json!({"model": "${steps.train.output.best.output.input.label}",
                                                 "of": "${steps.train.output.succeeded}"}))
        ]
    });
    let id = unique("fan-out-sweep");
    let handle = start(&client, &worker, &id, spec).await?;
    let result = handle
        .get_result(WorkflowGetResultOptions::default())
        .await?;
    let steps = &result["steps"];
    assert_eq!(
        steps["evaluate"]["output"]["input"],
        json!({"model": "lr=0.4", "of": 5}),
        "{result:#}"
    );
    let train = &steps["train"]["output"];
    assert_eq!(train["best"]["index"], 4, "{train:#}");
    assert_eq!(train["items"][2]["item"], 0.2, "items keep their order");
    assert!(
        train["items"][0].get("output").is_none(),
        "the run's result leaves item outputs out: {train:#}"
    );
    let full = handle
        .query(
            PipelineWorkflow::step_output,
            "train".to_string(),
            WorkflowQueryOptions::default(),
        )
        .await?;
    assert_eq!(full["items"][1]["output"]["input"]["label"], "lr=0.3");
    assert_eq!(full["items"][1]["output"]["activity_id"], "train.1");

    let status = status(&handle).await?;
    let train = step(&status, "train");
    assert_eq!(train.status, StepStatus::Succeeded);
    let items = train.items.as_ref().expect("items in the status");
    assert!(items.iter().all(|i| i.status == StepStatus::Succeeded));
    assert!(items.iter().all(|i| i.attempt == Some(1)), "{items:#?}");
    assert_eq!(
        train.items_summary().as_deref(),
        Some("items: 5 succeeded (of 5)")
    );
    assert!(
        train
            .note
            .as_deref()
            .unwrap()
            .contains("best: item 4 (0.4)"),
        "{train:#?}"
    );

    let json = history_json(&handle).await?;
    let timeline = activity_timeline(&history_events(&json));
    let scheduled: Vec<&str> = timeline
        .iter()
        .filter(|(id, kind)| id.starts_with("train.") && kind == "scheduled")
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(
        scheduled,
        ["train.0", "train.1", "train.2", "train.3", "train.4"]
    );
    assert_eq!(most_at_once(&timeline, "train"), 2, "{timeline:?}");
    replay("fan_out", &json).await?;
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_items_fail_the_step_unless_min_success_ratio_allows_them() -> anyhow::Result<()> {
    let (worker, client, _plugins) = setup().await?;
    // Every item fails, each its own way (`fail` with the item as its input).
    let spec = |ratio: f64| {
        json!({
            "name": "ratio",
            "steps": [{
                "id": "try", "plugin": "testkit", "operation": "fail",
                "for_each": [{"kind": "permanent", "type_name": "Diverged", "message": "loss is NaN"},
                             {"kind": "invalid_input", "type_name": "BadRate", "message": "lr < 0"}],
                "min_success_ratio": ratio,
                "input": "${item}",
                "retry": {"max_attempts": 1}
            }]
        })
    };
    let strict = start(&client, &worker, &unique("fan-out-strict"), spec(0.5)).await?;
    let err = strict
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect_err("no item can succeed");
    let text = format!("{err:?}");
    assert!(
        text.contains("0 of 2 items succeeded; min_success_ratio 0.5 needs 1"),
        "{text}"
    );
    assert!(text.contains("Diverged: loss is NaN"), "{text}");
    let status = status(&strict).await?;
    assert_eq!(status.state, RunState::Failed);
    let items = step(&status, "try").items.clone().unwrap();
    assert_eq!(items[1].note.as_deref(), Some("BadRate: lr < 0"));

    let lenient = start(&client, &worker, &unique("fan-out-lenient"), spec(0.0)).await?;
    let result = lenient
        .get_result(WorkflowGetResultOptions::default())
        .await?;
    let output = &result["steps"]["try"]["output"];
    assert_eq!(
        (output["succeeded"].clone(), output["failed"].clone()),
        (json!(0), json!(2))
    );
    assert_eq!(
        output["items"][0]["error"], "Diverged: loss is NaN",
        "{output:#}"
    );
    worker.stop().await
}

/// 200 items through one step: every one an activity of three events, and what that costs in
/// history, printed for docs/pipelines.md. The bounds are Temporal's warning limits (10,240
/// events, 10 MiB), far above what 200 echo items need.
#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_of_200_items_stays_small_in_history() -> anyhow::Result<()> {
    let (worker, client, _plugins) = setup().await?;
    let items: Vec<Value> = (0..200)
        .map(|i| json!({"lr": f64::from(i) / 1000.0}))
        .collect();
    let spec = json!({
        "name": "wide",
        "params": {"grid": items},
        "steps": [{"id": "train", "plugin": "testkit", "operation": "echo",
                   "for_each": "${params.grid}", "concurrency": 20,
                   "best": {"by": "input.lr", "order": "min"},
                   "input": {"lr": "${item.lr}"}}]
    });
    let handle = start(&client, &worker, &unique("fan-out-200"), spec).await?;
    let result = handle
        .get_result(WorkflowGetResultOptions::default())
        .await?;
    assert_eq!(result["steps"]["train"]["output"]["succeeded"], 200);
    assert_eq!(result["steps"]["train"]["output"]["best"]["index"], 0);
    let info = handle
        .describe(WorkflowDescribeOptions::default())
        .await?
        .raw_description
        .workflow_execution_info
        .expect("execution info");
    let (events, bytes) = (info.history_length, info.history_size_bytes);
    let timeline = activity_timeline(&history_events(&history_json(&handle).await?));
    assert_eq!(timeline.len(), 400, "scheduled + completed per item");
    assert!(most_at_once(&timeline, "train") <= 20, "{timeline:?}");
    println!(
        "200-item sweep: {events} events, {bytes} bytes of history: {:.1} events and {} bytes \
         per item",
        events as f64 / 200.0,
        bytes / 200
    );
    assert!(
        events < 10_240 && bytes < 10 << 20,
        "{events} events, {bytes} bytes"
    );
    worker.stop().await
}

/// The example sweep in the repo (pipelines/sweep.yaml) on the real csv and trainer plugins:
/// four gradient-boosted models, the lowest validation log loss evaluated on the held-out split
/// and registered once approved; run again, every unchanged step comes from the cache.
#[tokio::test(flavor = "multi_thread")]
async fn the_example_sweep_picks_evaluates_and_registers_the_best_and_reruns_from_cache()
-> anyhow::Result<()> {
    let (worker, client, plugins) = training_worker().await?;
    let spec = mlx_pipeline::load::load(&workspace_root().join("pipelines/sweep.yaml"))?;
    let spec = serde_json::to_value(spec)?;
    let run = |id: String| {
        let (client, worker, spec) = (&client, &worker, spec.clone());
        async move {
            let handle = start(client, worker, &id, spec).await?;
            wait_for_step(&handle, "approve", StepStatus::WaitingApproval).await?;
            handle
                .execute_update(
                    PipelineWorkflow::approve,
                    decision("approve"),
                    WorkflowExecuteUpdateOptions::default(),
                )
                .await?;
            handle
                .get_result(WorkflowGetResultOptions::default())
                .await?;
            let sweep = handle
                .query(
                    PipelineWorkflow::step_output,
                    "sweep".to_string(),
                    WorkflowQueryOptions::default(),
                )
                .await?;
            let register = handle
                .query(
                    PipelineWorkflow::step_output,
                    "register".to_string(),
                    WorkflowQueryOptions::default(),
                )
                .await?;
            anyhow::Ok((handle, sweep, register))
        }
    };
    let first_id = unique("sweep-first");
    let (first, sweep, register) = run(first_id.clone()).await?;
    let items = sweep["items"].as_array().unwrap();
    assert_eq!(items.len(), 4, "{sweep:#}");
    let losses: Vec<f64> = items
        .iter()
        .map(|i| i["output"]["metrics"]["log_loss"].as_f64().unwrap())
        .collect();
    let lowest = losses.iter().copied().fold(f64::INFINITY, f64::min);
    let best = &sweep["best"];
    assert_eq!(
        best["output"]["metrics"]["log_loss"].as_f64(),
        Some(lowest),
        "{losses:?}"
    );
    let rate = best["item"].as_f64().unwrap();
    assert_eq!(
        best["output"]["model"]["path"],
        format!("/artifacts/sweep/lr-{rate}/model.json"),
        "each item trains into its own directory"
    );
    let entry = &register["entry"];
    assert_eq!(
        entry["model"]["hyperparameters"]["learning_rate"], rate,
        "{entry:#}"
    );
    assert_eq!(entry["model"]["family"], "gradient_boosting");
    assert_eq!(entry["version"], 1);
    assert_eq!(entry["approval"]["approved"], true, "{entry:#}");
    let history = history_json(&first).await?;
    let timeline = activity_timeline(&history_events(&history));
    assert!(most_at_once(&timeline, "sweep") <= 2, "{timeline:?}");
    replay("sweep", &history).await?;
    let output_bytes: usize = items.iter().map(|i| i["output"].to_string().len()).sum();
    println!(
        "sweep of 4 trainer items: {} bytes of output per item",
        output_bytes / items.len()
    );

    // The same spec again: every plugin step but `register` (cache: false) is a cache hit,
    // items included, and the same model wins.
    let (second, again, registered) = run(unique("sweep-second")).await?;
    // The same model (the same bytes, from the cache) approved again is still one version.
    assert_eq!(registered["entry"]["version"], 1, "{registered:#}");
    assert_eq!(registered["already_registered"], true, "{registered:#}");
    let versions: Vec<_> = std::fs::read_dir(plugins.path().join("registry/breast-cancer-gb"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with('v'))
        .collect();
    assert_eq!(versions, ["v1"]);
    let status = status(&second).await?;
    for id in ["extract", "split", "evaluate"] {
        let from = step(&status, id).cached_from.clone();
        assert_eq!(from.map(|f| f.workflow_id), Some(first_id.clone()), "{id}");
    }
    let items = step(&status, "sweep").items.clone().unwrap();
    for (n, item) in items.iter().enumerate() {
        let from = item.cached_from.clone().expect("item from the cache");
        assert_eq!(
            (from.workflow_id.as_str(), from.step),
            (first_id.as_str(), format!("sweep.{n}"))
        );
    }
    assert_eq!(step(&status, "register").cached_from, None);
    assert_eq!(
        step(&status, "sweep").items_summary().as_deref(),
        Some("items: 4 succeeded (of 4), 4 from the cache")
    );
    assert_eq!(again["best"]["index"], best["index"]);
    worker.stop().await
}

/// Items that run until released: cancelling the step cancels both running ones (one token
/// for the step), the third never starts, and the step ends `cancelled` with the person's
/// reason; a paused run starts no new item until resumed.
#[tokio::test(flavor = "multi_thread")]
async fn pausing_holds_new_items_and_cancelling_the_step_stops_them_all() -> anyhow::Result<()> {
    let (worker, client, _plugins) = setup().await?;
    let spec = json!({
        "name": "held-items",
        "steps": [{
            "id": "wait", "plugin": "testkit", "operation": "wait_for_file",
            "for_each": ["a", "b", "c", "d"], "concurrency": 2, "on_failure": "continue",
            "input": {"path": "/artifacts/release-${item}"},
            "timeouts": {"start_to_close_secs": 300, "heartbeat_secs": 10}
        }]
    });
    let id = unique("fan-out-held");
    let handle = start(&client, &worker, &id, spec).await?;
    let items_in = |want: &'static [StepStatus]| {
        let handle = &handle;
        async move {
            eventually(
                Duration::from_secs(60),
                &format!("items {want:?}"),
                || async {
                    let status = status(handle).await.ok()?;
                    let items = step(&status, "wait").items.clone()?;
                    let now: Vec<StepStatus> = items.iter().map(|i| i.status).collect();
                    (now == want).then_some(())
                },
            )
            .await
        }
    };
    use StepStatus::{Cancelled, Pending, Running, Succeeded};
    items_in(&[Running, Running, Pending, Pending]).await?;
    handle
        .signal(
            PipelineWorkflow::pause,
            (),
            WorkflowSignalOptions::default(),
        )
        .await?;
    mlx_e2e::release(worker.artifacts.path(), &id, "release-a", "done");
    // Paused: a's slot stays empty.
    items_in(&[Succeeded, Running, Pending, Pending]).await?;
    handle
        .signal(
            PipelineWorkflow::resume,
            (),
            WorkflowSignalOptions::default(),
        )
        .await?;
    items_in(&[Succeeded, Running, Running, Pending]).await?;
    handle
        .execute_update(
            PipelineWorkflow::cancel_step,
            decision("wait"),
            WorkflowExecuteUpdateOptions::default(),
        )
        .await?;
    let result = handle
        .get_result(WorkflowGetResultOptions::default())
        .await?;
    let wait = &result["steps"]["wait"];
    assert_eq!(wait["status"], "cancelled", "{result:#}");
    assert_eq!(wait["note"], "cancelled by ana: checked the metrics");
    let status = status(&handle).await?;
    let items = step(&status, "wait").items.clone().unwrap();
    let now: Vec<StepStatus> = items.iter().map(|i| i.status).collect();
    assert_eq!(now, [Succeeded, Cancelled, Cancelled, Cancelled]);
    assert_eq!(
        items[3].note.as_deref(),
        Some("not started: the step was cancelled")
    );
    let json = history_json(&handle).await?;
    let timeline = activity_timeline(&history_events(&json));
    let cancelled: Vec<&str> = timeline
        .iter()
        .filter(|(_, kind)| kind == "cancelled")
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(cancelled.len(), 2, "b and c: {timeline:?}");
    assert!(
        !timeline.iter().any(|(id, _)| id == "wait.3"),
        "d never ran"
    );
    replay("fan_out_cancelled", &json).await?;
    worker.stop().await
}

/// A worker that caches no workflow (`max_cached_workflows = 0`) replays the whole history on
/// every workflow task: a fan-out run must decide the same at each replay to finish at all.
#[tokio::test(flavor = "multi_thread")]
async fn a_fan_out_replays_on_every_task_when_no_workflow_is_cached() -> anyhow::Result<()> {
    let server = mlx_e2e::shared_server().await?;
    let plugins = mlx_e2e::PluginsDir::with(&["testkit"]);
    let worker = mlx_e2e::TestWorker::start_with(server, plugins.path(), |s| {
        s.max_cached_workflows = 0;
    })
    .await?;
    let client = server.client().await?;
    let spec = json!({
        "name": "uncached",
        "steps": [
            {"id": "grid", "plugin": "testkit", "operation": "echo",
             "matrix": {"a": [1, 2, 3], "b": ["x", "y"]}, "concurrency": 3,
             "best": {"by": "input.a"}, "input": {"a": "${item.a}", "b": "${item.b}"}},
            echo("after", &["grid"], json!({"best": "${steps.grid.output.best.item}"}))
        ]
    });
    let handle = start(&client, &worker, &unique("fan-out-uncached"), spec).await?;
    let result = handle
        .get_result(WorkflowGetResultOptions::default())
        .await?;
    assert_eq!(
        result["steps"]["grid"]["output"]["succeeded"], 6,
        "{result:#}"
    );
    assert_eq!(
        result["steps"]["after"]["output"]["input"]["best"],
        json!({"a": 3, "b": "x"}),
        "the first of the highest"
    );
    worker.stop().await
}
