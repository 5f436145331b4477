use mlx_plugin_sdk::{OperationInfo, schema::object};
use serde_json::json;

fn cancelled_note() -> &'static str {
    "On cancellation fails with Retryable `Cancelled`."
}

pub fn operations() -> Vec<OperationInfo> {
    let error_kind = json!({"enum": ["invalid_input", "retryable", "permanent"]});
    vec![
        OperationInfo::new(
            "echo",
            "Returns its input and the invocation context.",
            json!({"description": "Any JSON value."}),
            object(
                json!({
                    "input": {"description": "The input, unchanged."},
                    "workflow_id": {"type": "string"},
                    "activity_id": {"type": "string"},
                    "attempt": {"type": "integer", "minimum": 1},
                    "last_heartbeat_details": {
                        "description": "The previous attempt's last heartbeat details, \
                                        parsed as JSON, or null."
                    },
                }),
                &[
                    "input",
                    "workflow_id",
                    "activity_id",
                    "attempt",
                    "last_heartbeat_details",
                ],
            ),
        ),
        OperationInfo::new(
            "spin",
            "Loops on the CPU forever without calling the host: only a deadline or forced \
             interruption stops it.",
            json!({"description": "Ignored."}),
            json!({"description": "Never returns.", "not": {}}),
        ),
        OperationInfo::new(
            "wait_for_cancel",
            format!(
                "Heartbeats {{\"beats\": n}} every interval_ms until cancellation is requested \
                 or max_beats is reached. {}",
                cancelled_note()
            ),
            object(
                json!({
                    "max_beats": {"type": "integer", "minimum": 0, "default": 100000},
                    "interval_ms": {"type": "integer", "minimum": 0, "default": 50},
                }),
                &[],
            ),
            object(
                json!({"beats": {"type": "integer", "minimum": 0}}),
                &["beats"],
            ),
        ),
        OperationInfo::new(
            "wait_for_file",
            format!(
                "Heartbeats {{\"waiting_for\": path, \"beats\": n}} every interval_ms until the \
                 file at `path` exists (e.g. under /artifacts, created by the test from the \
                 host), then returns its text; fails with Permanent `WaitTimedOut` after \
                 timeout_ms. {}",
                cancelled_note()
            ),
            object(
                json!({
                    "path": {"type": "string"},
                    "timeout_ms": {"type": "integer", "minimum": 0, "default": 300000},
                    "interval_ms": {"type": "integer", "minimum": 0, "default": 50},
                }),
                &["path"],
            ),
            object(
                json!({
                    "path": {"type": "string"},
                    "content": {"type": "string", "description": "The file's text."},
                    "beats": {"type": "integer", "minimum": 0},
                }),
                &["path", "content", "beats"],
            ),
        ),
        OperationInfo::new(
            "checkpoint",
            format!(
                "Heartbeats {{\"step\": i}} for each step after the previous attempt's last \
                 one, then fails with Retryable `InjectedFailure` while attempt <= \
                 fail_attempts. {}",
                cancelled_note()
            ),
            object(
                json!({
                    "steps": {"type": "integer", "minimum": 0, "default": 3},
                    "fail_attempts": {"type": "integer", "minimum": 0, "default": 1},
                }),
                &[],
            ),
            object(
                json!({
                    "attempt": {"type": "integer", "minimum": 1},
                    "resumed_from": {"description": "Last heartbeat details received, or null."},
                    "completed_steps": {"type": "integer", "minimum": 0},
                    "steps_run": {"type": "integer", "minimum": 0,
                                  "description": "Steps heartbeated by this attempt."},
                }),
                &["attempt", "resumed_from", "completed_steps", "steps_run"],
            ),
        ),
        OperationInfo::new(
            "fail",
            "Returns the requested error.",
            object(
                json!({
                    "kind": error_kind,
                    "type_name": {"type": "string", "default": "InjectedFailure"},
                    "message": {"type": "string", "default": "failure requested by the caller"},
                    "details": {"description": "Any JSON, passed through as error details."},
                    "repeat": {"type": "integer", "minimum": 0, "default": 1,
                               "description": "The message this many times over."},
                }),
                &["kind"],
            ),
            json!({"description": "Never succeeds.", "not": {}}),
        ),
        OperationInfo::new(
            "panic",
            "Panics (the instance traps) with the given message.",
            object(
                json!({"message": {"type": "string",
                                   "default": "panic requested by the caller"}}),
                &[],
            ),
            json!({"description": "Never returns.", "not": {}}),
        ),
        OperationInfo::new(
            "alloc",
            "Allocates and writes mb MiB of memory; beyond the host's limit the instance traps.",
            object(json!({"mb": {"type": "integer", "minimum": 0}}), &["mb"]),
            object(
                json!({"allocated_mb": {"type": "integer", "minimum": 0}}),
                &["allocated_mb"],
            ),
        ),
        OperationInfo::new(
            "log",
            "Emits `lines` log lines (`message`, plus `empty_fields` fields with empty keys and \
             values) through the log import, then `stdout` (default: one line) on stdout and one \
             line on stderr.",
            object(
                json!({
                    "lines": {"type": "integer", "minimum": 0, "default": 1},
                    "message": {"type": "string", "default": "testkit log line"},
                    "empty_fields": {"type": "integer", "minimum": 0, "default": 0},
                    "stdout": {"type": "string"},
                }),
                &[],
            ),
            object(
                json!({"lines": {"type": "integer", "minimum": 0}}),
                &["lines"],
            ),
        ),
        OperationInfo::new(
            "raw_heartbeat",
            "Calls the heartbeat import directly with `text` verbatim (or a JSON string of \
             `kb` KiB), to check the host refuses non-JSON or oversized details.",
            object(
                json!({"text": {"type": "string"}, "kb": {"type": "integer", "minimum": 0}}),
                &[],
            ),
            object(json!({"cancelled": {"type": "boolean"}}), &["cancelled"]),
        ),
        OperationInfo::new(
            "big_output",
            "Returns a JSON string of `kb` KiB, to check the host's output limit.",
            object(json!({"kb": {"type": "integer", "minimum": 0}}), &["kb"]),
            json!({"type": "string"}),
        ),
        OperationInfo::new(
            "recurse",
            "Recurses without bound, to check the host turns a stack overflow into a failure.",
            json!({"description": "Ignored."}),
            json!({"description": "Never returns.", "not": {}}),
        ),
        OperationInfo::new(
            "count_calls",
            "Returns how many times this instance has been invoked (always 1 on a host that \
             gives every invocation a fresh instance).",
            json!({"description": "Ignored."}),
            object(
                json!({"calls": {"type": "integer", "minimum": 1}}),
                &["calls"],
            ),
        ),
        OperationInfo::new(
            "grants",
            "Returns the named config values, secrets and environment variables it can see, \
             and the names of all its environment variables. Test-only: it reveals secrets.",
            object(
                json!({
                    "config": {"type": "array", "items": {"type": "string"}},
                    "secrets": {"type": "array", "items": {"type": "string"}},
                    "env": {"type": "array", "items": {"type": "string"}},
                }),
                &[],
            ),
            json!({"type": "object"}),
        ),
        OperationInfo::new(
            "scratch",
            "Lists /scratch, then writes a 4 KiB file there.",
            json!({"description": "Ignored."}),
            object(
                json!({
                    "entries_before": {"type": "array", "items": {"type": "string"}},
                    "written": {"type": "integer"},
                }),
                &["entries_before", "written"],
            ),
        ),
    ]
}
