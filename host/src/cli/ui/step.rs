//! `GET /api/step?id=RUN&step=STEP`: what the run's history says of one step: the input each
//! of its activities was scheduled with (resolved: references filled in), and each activity's
//! attempt, worker and outcome. Temporal retries an activity on the server and records only the
//! attempt that ended it, so earlier attempts show as the attempt number and the running
//! attempt's last failure (in the step's note), not as rows. Fetched when a person opens a step.

use base64::Engine;
use hyper::StatusCode;
use serde_json::{Value, json};
use temporalio_client::{HistoryEventFilterType, WorkflowFetchHistoryOptions};

use super::{
    Ui,
    http::{Answer, json},
};
use crate::temporal::PipelineWorkflow;

fn ms(event: &Value) -> Option<i64> {
    let text = event["event_time"].as_str()?;
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// A payload's JSON (the history's JSON form carries its bytes as base64).
fn payload(value: &Value) -> Value {
    value["payloads"][0]["data"]
        .as_str()
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null)
}

/// The step's activities (`STEP`, or `STEP.N` for a fan-out's items) in history order.
pub(super) fn activities(events: &[Value], step: &str) -> Vec<Value> {
    let ours = |id: &str| {
        id == step
            || id
                .strip_prefix(step)
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut found: Vec<(String, Value)> = Vec::new();
    for event in events {
        let attributes = &event["attributes"];
        let id = event["event_id"].to_string().trim_matches('"').to_string();
        if let Some(a) = attributes.get("ActivityTaskScheduledEventAttributes") {
            let activity = a["activity_id"].as_str().unwrap_or_default();
            if ours(activity) {
                let request = payload(&a["input"]);
                found.push((
                    id,
                    json!({"activity_id": activity, "input": request["input"],
                           "scheduled_ms": ms(event), "attempt": null, "worker": null,
                           "started_ms": null, "outcome": "scheduled", "message": null,
                           "ended_ms": null}),
                ));
            }
            continue;
        }
        let outcomes = [
            ("ActivityTaskStartedEventAttributes", "running"),
            ("ActivityTaskCompletedEventAttributes", "completed"),
            ("ActivityTaskFailedEventAttributes", "failed"),
            ("ActivityTaskTimedOutEventAttributes", "timed_out"),
            ("ActivityTaskCanceledEventAttributes", "cancelled"),
        ];
        for (key, outcome) in outcomes {
            let Some(a) = attributes.get(key) else {
                continue;
            };
            let scheduled = a["scheduled_event_id"]
                .to_string()
                .trim_matches('"')
                .to_string();
            let Some((_, row)) = found.iter_mut().find(|(id, _)| *id == scheduled) else {
                continue;
            };
            row["outcome"] = outcome.into();
            if outcome == "running" {
                row["attempt"] = a["attempt"].clone();
                row["worker"] = a["identity"].clone();
                row["started_ms"] = json!(ms(event));
            } else {
                row["ended_ms"] = json!(ms(event));
                row["message"] = a["failure"]["message"].clone();
            }
        }
    }
    found.into_iter().map(|(_, row)| row).collect()
}

/// The step a failed run failed on, from its close event: the workflow fails with the run's
/// status as the failure's details, and the first failed step there is the one.
pub(super) fn failing_step(close: &[Value]) -> Option<String> {
    let failed = close.first()?["attributes"].get("WorkflowExecutionFailedEventAttributes")?;
    // The failure's oneof is spelled by the history's JSON form (`applicationFailureInfo`,
    // `application_failure_info`, or under `failure_info`): found by name, whichever it is.
    let info = find_key(&failed["failure"], "applicationfailureinfo")?;
    let status = payload(&info["details"]);
    status["steps"]
        .as_array()?
        .iter()
        .find(|s| s["status"] == "failed")
        .and_then(|s| s["id"].as_str())
        .map(str::to_string)
}

/// The first value under `value` whose key, lowercased without `_`, is `key`.
fn find_key<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    let object = value.as_object()?;
    for (k, v) in object {
        if k.replace('_', "").to_lowercase() == key {
            return Some(v);
        }
    }
    object.values().find_map(|v| find_key(v, key))
}

/// [`failing_step`] of run `id`, asked of the server once per run: a closed run's history no
/// longer changes. At most [`FAILING_CACHE`] answers are kept.
pub(super) async fn failing_step_of(ui: &Ui, id: &str, run_id: &str) -> Option<String> {
    if let Some(known) = ui.failing.lock().ok()?.get(run_id) {
        return known.clone();
    }
    let handle = ui
        .client
        .get_workflow_handle::<PipelineWorkflow>(id.to_string());
    let options = WorkflowFetchHistoryOptions::builder()
        .event_filter_type(HistoryEventFilterType::CloseEvent)
        .build();
    let bytes = handle.fetch_history(options).to_json().await.ok()?;
    let history: Value = serde_json::from_slice(&bytes).ok()?;
    let step = failing_step(
        history["events"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default(),
    );
    let mut cache = ui.failing.lock().ok()?;
    if cache.len() >= FAILING_CACHE {
        cache.clear();
    }
    cache.insert(run_id.to_string(), step.clone());
    step
}

/// Failed runs whose failing step is remembered (a few hundred bytes each).
const FAILING_CACHE: usize = 10_000;

pub(super) async fn step(ui: &Ui, id: &str, step: &str) -> Answer {
    let handle = ui
        .client
        .get_workflow_handle::<PipelineWorkflow>(id.to_string());
    let history = match handle
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .to_json()
        .await
    {
        Ok(bytes) => bytes,
        Err(e) => {
            return json(
                StatusCode::BAD_GATEWAY,
                &json!({"error": format!("history of `{id}`: {e}")}),
            );
        }
    };
    let events: Value = serde_json::from_slice(&history).unwrap_or(Value::Null);
    let events = events["events"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    json(
        StatusCode::OK,
        &json!({ "activities": activities(events, step) }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(value: Value) -> String {
        base64::engine::general_purpose::STANDARD.encode(value.to_string())
    }

    #[test]
    fn a_steps_activities_carry_their_input_attempt_worker_and_outcome() {
        let request = json!({"plugin": "testkit", "operation": "echo", "input": {"x": 1}});
        let events = vec![
            json!({"event_id": "5", "event_time": "2026-12-01T00:00:00Z", "attributes": {
                "ActivityTaskScheduledEventAttributes": {"activity_id": "train",
                    "input": {"payloads": [{"data": b64(request)}]}}}}),
            json!({"event_id": "6", "event_time": "2026-12-01T00:00:01Z", "attributes": {
                "ActivityTaskScheduledEventAttributes": {"activity_id": "training",
                    "input": {"payloads": []}}}}),
            json!({"event_id": "7", "event_time": "2026-12-01T00:00:02Z", "attributes": {
                "ActivityTaskStartedEventAttributes": {"scheduled_event_id": "5",
                    "attempt": 3, "identity": "worker-a"}}}),
            json!({"event_id": "8", "event_time": "2026-12-01T00:00:04Z", "attributes": {
                "ActivityTaskFailedEventAttributes": {"scheduled_event_id": "5",
                    "failure": {"message": "<b>boom</b>"}}}}),
        ];
        let rows = activities(&events, "train");
        assert_eq!(rows.len(), 1, "`training` is another step: {rows:?}");
        let row = &rows[0];
        assert_eq!(row["input"], json!({"x": 1}));
        assert_eq!(row["attempt"], 3);
        assert_eq!(row["worker"], "worker-a");
        assert_eq!(row["outcome"], "failed");
        assert_eq!(row["message"], "<b>boom</b>");
        assert_eq!(row["ended_ms"], 1_796_083_204_000i64);
    }

    #[test]
    fn a_failed_runs_close_event_names_its_failing_step() {
        let status = json!({"steps": [{"id": "extract", "status": "succeeded"},
                                      {"id": "train", "status": "failed"},
                                      {"id": "register", "status": "skipped"}]});
        let close = vec![
            json!({"attributes": {"WorkflowExecutionFailedEventAttributes": {
            "failure": {"application_failure_info": {"details": {"payloads": [
                {"data": b64(status.clone())}]}}}}}}),
        ];
        assert_eq!(failing_step(&close).as_deref(), Some("train"));
        let nested = vec![
            json!({"attributes": {"WorkflowExecutionFailedEventAttributes": {
            "failure": {"message": "x", "failure_info": {"ApplicationFailureInfo": {"details":
                {"payloads": [{"data": b64(status)}]}}}}}}}),
        ];
        assert_eq!(failing_step(&nested).as_deref(), Some("train"));
        let completed =
            vec![json!({"attributes": {"WorkflowExecutionCompletedEventAttributes": {}}})];
        assert_eq!(failing_step(&completed), None);
    }
}
