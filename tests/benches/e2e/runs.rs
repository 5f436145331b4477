//! Driving the workflows and reading their latencies back from history.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, bail};
use mlx_worker::temporal::RunPluginWorkflow;
use serde_json::json;
use temporalio_client::{
    Client, WorkflowFetchHistoryOptions, WorkflowGetResultOptions, WorkflowStartOptions,
};
use temporalio_common::protos::temporal::api::{enums::v1::EventType, history::v1::HistoryEvent};

/// Runs `work` on every item with at most `limit` at a time; results in no particular order.
async fn concurrently<T, F, Fut>(
    items: Vec<String>,
    limit: usize,
    work: F,
) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(String) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<T>> + Send,
{
    let items = Arc::new(items);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..limit.max(1) {
        let (items, next, work) = (items.clone(), next.clone(), work.clone());
        tasks.spawn(async move {
            let mut done = Vec::new();
            while let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
                done.push(work(item.clone()).await?);
            }
            anyhow::Ok(done)
        });
    }
    let mut all = Vec::with_capacity(items.len());
    while let Some(joined) = tasks.join_next().await {
        all.extend(joined??);
    }
    Ok(all)
}

/// Runs one `RunPluginWorkflow` per id on the driver's queue, its step on `target`'s.
pub async fn run_workflows(
    client: &Client,
    driver_queue: &str,
    target_queue: &str,
    ids: Vec<String>,
    concurrency: usize,
) -> anyhow::Result<()> {
    let (client, driver, target) = (
        client.clone(),
        driver_queue.to_string(),
        target_queue.to_string(),
    );
    concurrently(ids, concurrency, move |id| {
        let (client, driver, target) = (client.clone(), driver.clone(), target.clone());
        async move {
            let step = json!({
                "plugin": "testkit", "operation": "echo", "input": {"n": 1},
                "task_queue": target,
            });
            let handle = client
                .start_workflow(
                    RunPluginWorkflow::run,
                    mlx_worker::temporal::payload::json_input(&step),
                    WorkflowStartOptions::new(driver, id.clone()).build(),
                )
                .await?;
            let output = handle
                .get_result(WorkflowGetResultOptions::default())
                .await
                .with_context(|| format!("workflow {id}"))?;
            // Every mode must really have echoed, or the comparison is void.
            if output["input"]["n"] != 1 || output["workflow_id"] != id.as_str() {
                bail!("workflow {id} returned {output}");
            }
            Ok(())
        }
    })
    .await
    .map(drop)
}

fn event_time(event: &HistoryEvent) -> anyhow::Result<i128> {
    let t = event.event_time.as_ref().context("event without a time")?;
    Ok(i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos))
}

/// (schedule-to-close, start-to-close) of each workflow's activity, from its history.
pub async fn latencies(
    client: &Client,
    ids: Vec<String>,
    concurrency: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let client = client.clone();
    let pairs = concurrently(ids, concurrency, move |id| {
        let client = client.clone();
        async move {
            let events = client
                .get_workflow_handle::<RunPluginWorkflow>(&id)
                .fetch_history(WorkflowFetchHistoryOptions::default())
                .into_events()
                .await?;
            let at = |kind: EventType| -> anyhow::Result<i128> {
                let event = events
                    .iter()
                    .find(|e| e.event_type() == kind)
                    .with_context(|| format!("{id}: no {kind:?} event"))?;
                event_time(event)
            };
            let completed = at(EventType::ActivityTaskCompleted)?;
            let nanos = |from: i128| Duration::from_nanos((completed - from).max(0) as u64);
            Ok((
                nanos(at(EventType::ActivityTaskScheduled)?),
                nanos(at(EventType::ActivityTaskStarted)?),
            ))
        }
    })
    .await?;
    Ok(pairs.into_iter().unzip())
}
