//! What one workflow in the SDK's sticky cache costs (issue 18, item 4). Pipelines that stop
//! at an approval gate stay cached until someone decides, so parking PARKED of them and
//! reading the worker's heap in use before and after gives the memory per cached pipeline,
//! and with it the ceiling `worker.max_cached_workflows` sets.

use std::time::Duration;

use mlx_e2e::{eventually, http_get, metric, unique};
use mlx_worker::temporal::{PipelineWorkflow, payload::json_input};
use serde_json::json;
use temporalio_client::{Client, WorkflowStartOptions};

use crate::sample::GAUGES;

pub struct Parked {
    pub count: u64,
    /// The sticky cache's size once they were all parked.
    pub cached: f64,
    pub heap_before: f64,
    pub heap_after: f64,
}

impl Parked {
    pub fn bytes_each(&self) -> f64 {
        (self.heap_after - self.heap_before) / self.count.max(1) as f64
    }
}

async fn scrape(metrics: &str) -> Option<String> {
    http_get(metrics, "/metrics")
        .await
        .ok()
        .map(|(_, text)| text)
}

fn reading(text: &str, index: usize) -> Option<f64> {
    let (name, filter) = GAUGES[index];
    metric(text, name, filter)
}

/// Starts `count` pipelines (one echo step, then an approval gate) and waits until the
/// cache holds them all with no activity running.
pub async fn park(
    client: &Client,
    queue: &str,
    metrics: &str,
    count: u64,
) -> anyhow::Result<Parked> {
    use crate::sample::{HEAP_IN_USE, SLOTS, STICKY};
    let heap_before = eventually(Duration::from_secs(30), "a heap reading", || async {
        reading(&scrape(metrics).await?, HEAP_IN_USE)
    })
    .await?;
    let spec = json!({
        "name": "soak-parked",
        "steps": [
            {"id": "train", "plugin": "testkit", "operation": "echo", "input": {"n": 0}},
            {"id": "gate", "type": "approval", "depends_on": ["train"]},
        ]
    });
    for _ in 0..count {
        let options = WorkflowStartOptions::new(queue.to_string(), unique("parked")).build();
        client
            .start_workflow(PipelineWorkflow::run, json_input(&spec), options)
            .await?;
    }
    let cached = eventually(
        Duration::from_secs(600),
        "every parked pipeline cached and idle",
        || async {
            // One scrape for both, so they describe the same moment.
            let text = scrape(metrics).await?;
            let cached = reading(&text, STICKY)?;
            let busy = reading(&text, SLOTS).unwrap_or(0.0);
            (cached >= count as f64 && busy == 0.0).then_some(cached)
        },
    )
    .await?;
    // The gauges are recorded once a second: wait for a reading taken after the last park.
    let first = scrape(metrics)
        .await
        .and_then(|text| reading(&text, HEAP_IN_USE))
        .unwrap_or(0.0);
    let heap_after = eventually(Duration::from_secs(30), "a fresh heap reading", || async {
        reading(&scrape(metrics).await?, HEAP_IN_USE).filter(|&v| v != first)
    })
    .await?;
    Ok(Parked {
        count,
        cached,
        heap_before,
        heap_after,
    })
}
