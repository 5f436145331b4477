//! What the page shows beside runs: the plugins workers serve (from each worker's read-only
//! `GET /plugins` on its health endpoint) and the pipeline schedules (from Temporal).

use std::time::Duration;

use futures::StreamExt;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use temporalio_client::schedules::ListSchedulesOptions;
use temporalio_common::protos::proto_ts_to_system_time;

use super::{
    Ui,
    http::{Answer, json},
};
use crate::cli::{format::millis, schedule_spec::summarize};

/// How long one worker may take to say what it serves, and how much it may say.
const WORKER_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_PLUGINS_ANSWER: usize = 8 << 20;
const PIPELINE_WORKFLOW: &str = "PipelineWorkflow";

/// `GET /api/plugins`: each `--worker`'s answer, or why it gave none.
pub(super) async fn plugins(ui: &Ui) -> Answer {
    let asks = ui.workers.iter().map(|url| async move {
        let answer = crate::http_client::request(
            Method::GET,
            url,
            "/plugins",
            None,
            WORKER_TIMEOUT,
            MAX_PLUGINS_ANSWER,
        )
        .await
        .and_then(|(status, body)| match status {
            StatusCode::OK => serde_json::from_slice::<Value>(&body)
                .map_err(|e| format!("not the worker's plugin list: {e}")),
            other => Err(format!(
                "HTTP {other}: {}",
                String::from_utf8_lossy(&body).trim()
            )),
        });
        match answer {
            Ok(list) => json!({"worker": url.as_str(), "plugins": list["plugins"]}),
            Err(e) => json!({"worker": url.as_str(), "error": e}),
        }
    });
    let workers = futures::future::join_all(asks).await;
    json(StatusCode::OK, &json!({ "workers": workers }))
}

/// `GET /api/schedules`: pipeline schedules with their times, next runs and recent runs.
pub(super) async fn schedules(ui: &Ui) -> Answer {
    let mut list = ui.client.list_schedules(ListSchedulesOptions::default());
    let mut schedules = Vec::new();
    while let Some(entry) = list.next().await {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                return json(
                    StatusCode::BAD_GATEWAY,
                    &json!({"error": format!("listing schedules: {e}")}),
                );
            }
        };
        if entry.workflow_type() != Some(PIPELINE_WORKFLOW) {
            continue;
        }
        let info = entry.raw().info.as_ref();
        // From the proto: an action that started no workflow has no result to read.
        let recent: Vec<Value> = info
            .map(|i| i.recent_actions.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|a| {
                let run = a.start_workflow_result.as_ref()?;
                let at = a.actual_time.as_ref().and_then(proto_ts_to_system_time);
                Some(json!({"workflow_id": run.workflow_id, "started_ms": at.map(millis)}))
            })
            .collect();
        schedules.push(json!({
            "id": entry.schedule_id(),
            "times": info.and_then(|i| i.spec.as_ref()).map(summarize),
            "paused": entry.paused(),
            "note": entry.note(),
            "next_ms": entry.future_action_times().into_iter().take(3).map(millis).collect::<Vec<_>>(),
            "recent": recent,
        }));
    }
    schedules.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    json(StatusCode::OK, &json!({ "schedules": schedules }))
}
