//! Payload decoding done by hand: the SDK would make an undecodable input a retryable failure
//! (and retry it forever), while a malformed request can never succeed.

use serde_json::Value;
use temporalio_common::{data_converters::RawValue, protos::temporal::api::common::v1::Payload};

use mlx_pipeline::CacheSource;
use mlx_runtime::{
    contract::{JsonText, PluginRequest},
    failure::InvocationError,
};

const ENCODING: &str = "encoding";
const JSON: &[u8] = b"json/plain";
const NULL: &[u8] = b"binary/null";

/// The request shape, for error messages.
const SHAPE: &str = r#"send one JSON object {"plugin": "...", "operation": "...", "input": {...}}"#;

/// The one JSON payload of an input, at most `max_bytes` long; what is wrong otherwise.
pub fn single_json(raw: &RawValue, max_bytes: usize) -> Result<&[u8], String> {
    let payload = match raw.payloads.as_slice() {
        [payload] => payload,
        [] => return Err("no input".into()),
        many => return Err(format!("{} arguments given", many.len())),
    };
    let encoding = payload.metadata.get(ENCODING).map(Vec::as_slice);
    if encoding != Some(JSON) {
        return Err(format!(
            "input payload encoding is {:?}, expected \"json/plain\"",
            encoding.map(String::from_utf8_lossy).unwrap_or_default()
        ));
    }
    if payload.data.len() > max_bytes {
        return Err(format!(
            "input is {} bytes; this worker accepts at most {max_bytes} \
             (worker.max_input_bytes): pass large data as artifact paths, not inline",
            payload.data.len()
        ));
    }
    Ok(&payload.data)
}

/// A workflow's own input as JSON, decoded by hand: with a typed input the SDK would fail
/// every workflow task on input that is not JSON, and retry it until the execution timeout
/// (forever without one), instead of failing the workflow once.
pub fn workflow_input(raw: &RawValue) -> Result<Value, String> {
    let data = single_json(raw, usize::MAX)?;
    serde_json::from_slice(data).map_err(|e| format!("input is not JSON: {e}"))
}

pub fn decode_request(raw: &RawValue, max_bytes: usize) -> Result<PluginRequest, InvocationError> {
    let invalid = |e: String| InvocationError::InvalidRequest(format!("{e}; {SHAPE}"));
    let data = single_json(raw, max_bytes).map_err(invalid)?;
    // Through `Value` first: serde would also take a struct from a JSON array
    // (`["testkit", "echo"]`), which no sender means as a request.
    let value: Value = serde_json::from_slice(data).map_err(|e| invalid(e.to_string()))?;
    if !value.is_object() {
        return Err(invalid(format!(
            "the request is a JSON {}, not an object",
            mlx_pipeline::state::json_type(&value)
        )));
    }
    let request: PluginRequest =
        serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
    if request.plugin.is_empty() || request.operation.is_empty() {
        return Err(InvocationError::InvalidRequest(format!(
            "plugin and operation must not be empty; {SHAPE}"
        )));
    }
    Ok(request)
}

/// A request as workflows send it: one JSON payload, as any SDK's default converter makes it.
pub fn request_payload(request: &PluginRequest) -> RawValue {
    json_input(&serde_json::to_value(request).expect("a request is plain JSON"))
}

/// A payload of JSON text, marked as any SDK's default converter marks it.
fn json_payload(data: impl Into<Vec<u8>>) -> Payload {
    let mut payload = Payload {
        data: data.into(),
        ..Default::default()
    };
    payload.metadata.insert(ENCODING.into(), JSON.to_vec());
    payload
}

/// One JSON payload, as any SDK's default converter makes it: how the workflows here take
/// their input, and how a client starts them.
pub fn json_input(value: &Value) -> RawValue {
    RawValue::new(vec![json_payload(
        serde_json::to_vec(value).expect("a JSON value serialises"),
    )])
}

/// Heartbeat details as one JSON payload, from text already checked to be JSON.
pub fn json_text_payload(details: Option<&JsonText>) -> RawValue {
    RawValue::new(vec![json_payload(details.map_or("null", JsonText::as_str))])
}

/// Decodes the previous attempt's heartbeat details, kept as text. Details that are not JSON
/// (recorded by some other worker) are ignored rather than failing the attempt.
pub fn decode_heartbeat_details(payloads: &[Payload]) -> Option<JsonText> {
    let payload = payloads.first()?;
    match payload.metadata.get(ENCODING).map(Vec::as_slice) {
        Some(JSON) => {
            let text = String::from_utf8(payload.data.clone()).map_err(|e| e.to_string());
            match text.and_then(|t| JsonText::parse(t).map_err(|e| e.to_string())) {
                Ok(details) if details.as_str().trim() == "null" => None,
                Ok(details) => Some(details),
                Err(e) => {
                    tracing::warn!("previous heartbeat details are not JSON, ignored: {e}");
                    None
                }
            }
        }
        Some(NULL) | None => None,
        Some(other) => {
            tracing::warn!(
                encoding = %String::from_utf8_lossy(other),
                "previous heartbeat details are not JSON, ignored"
            );
            None
        }
    }
}

/// Payload metadata key of the attempt that produced a result: Temporal tells a workflow
/// nothing about attempts of a successful activity, and the pipeline status reports them.
pub const ATTEMPT_KEY: &str = "mlx-attempt";

/// The activity result: the plugin's JSON output, with which plugin bytes (and which attempt)
/// produced it in the payload metadata (visible in workflow history, invisible to callers
/// decoding the JSON).
pub fn result_payload(
    output: &Value,
    plugin: &str,
    version: &str,
    digest: &str,
    attempt: u32,
) -> RawValue {
    let mut payload = json_payload(output.to_string());
    payload.metadata.insert(
        "mlx-plugin".into(),
        format!("{plugin}@{version}").into_bytes(),
    );
    payload
        .metadata
        .insert("mlx-plugin-digest".into(), digest.as_bytes().to_vec());
    payload
        .metadata
        .insert(ATTEMPT_KEY.into(), attempt.to_string().into_bytes());
    RawValue::new(vec![payload])
}

/// Where a result served from the step cache came from (JSON of [`CacheSource`]); absent on a
/// result the plugin computed.
const CACHED_FROM_KEY: &str = "mlx-cached-from";

/// Marks a result as served from the step cache. Metadata, not output: callers of other SDKs
/// read the same JSON either way.
pub fn mark_cached(raw: &mut RawValue, from: &CacheSource) {
    let json = serde_json::to_vec(from).expect("plain strings");
    for payload in &mut raw.payloads {
        payload
            .metadata
            .insert(CACHED_FROM_KEY.into(), json.clone());
    }
}

/// A result as a workflow reads it.
#[derive(Debug, PartialEq)]
pub struct ActivityResult {
    pub output: Value,
    /// The attempt, if the worker recorded it.
    pub attempt: Option<u32>,
    pub cached_from: Option<CacheSource>,
}

pub fn decode_result(raw: &RawValue) -> Result<ActivityResult, String> {
    let [payload] = raw.payloads.as_slice() else {
        return Err(format!(
            "{} result payloads, expected 1",
            raw.payloads.len()
        ));
    };
    let output = match payload.metadata.get(ENCODING).map(Vec::as_slice) {
        Some(NULL) => Value::Null,
        _ => serde_json::from_slice(&payload.data)
            .map_err(|e| format!("the result is not JSON: {e}"))?,
    };
    let attempt = payload
        .metadata
        .get(ATTEMPT_KEY)
        .and_then(|a| std::str::from_utf8(a).ok()?.parse().ok());
    let cached_from = payload
        .metadata
        .get(CACHED_FROM_KEY)
        .and_then(|c| serde_json::from_slice(c).ok());
    Ok(ActivityResult {
        output,
        attempt,
        cached_from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    #[test]
    fn decodes_a_plain_json_request() {
        let raw = RawValue::new(vec![json_payload(
            r#"{"plugin":"csv","operation":"extract_data","input":{"a":1}}"#,
        )]);
        let req = decode_request(&raw, MAX).unwrap();
        assert_eq!(req.plugin, "csv");
        assert_eq!(req.input["a"], 1);
    }

    #[test]
    fn unknown_fields_and_wrong_shapes_say_what_to_send() {
        for text in [
            r#"{"plugin":"csv"}"#,
            r#"{"plugin":"a","operation":"b","inptu":1}"#,
            "[1]",
        ] {
            let err = decode_request(&RawValue::new(vec![json_payload(text)]), MAX).unwrap_err();
            assert!(err.to_string().contains("send one JSON object"), "{err}");
            assert!(!err.failure().retryable);
        }
        let err = decode_request(&RawValue::new(vec![]), MAX).unwrap_err();
        assert!(err.to_string().contains("no input"), "{err}");
    }

    #[test]
    fn only_an_object_is_a_request() {
        for (text, kind) in [
            (r#"["testkit", "echo"]"#, "array"),
            (r#""testkit""#, "string"),
            ("null", "null"),
        ] {
            let err = decode_request(&RawValue::new(vec![json_payload(text)]), MAX).unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("a JSON {kind}, not an object")),
                "{err}"
            );
        }
    }

    #[test]
    fn a_request_over_the_size_limit_is_refused_unread() {
        let text = format!(
            r#"{{"plugin":"p","operation":"o","input":"{}"}}"#,
            "x".repeat(100)
        );
        let raw = RawValue::new(vec![json_payload(text.as_str())]);
        assert!(decode_request(&raw, text.len()).is_ok());
        let err = decode_request(&raw, text.len() - 1).unwrap_err();
        assert!(err.to_string().contains("worker.max_input_bytes"), "{err}");
        assert!(!err.failure().retryable);
    }

    #[test]
    fn workflow_input_that_is_not_json_says_so() {
        let err = workflow_input(&RawValue::new(vec![json_payload(
            r#"{"plugin": "testkit", "#,
        )]))
        .unwrap_err();
        assert!(err.starts_with("input is not JSON"), "{err}");
        let ok = workflow_input(&RawValue::new(vec![json_payload(r#"{"a": 1}"#)])).unwrap();
        assert_eq!(ok["a"], 1);
    }

    #[test]
    fn non_json_payloads_are_refused() {
        let raw = RawValue::new(vec![Payload {
            data: vec![1, 2, 3],
            ..Default::default()
        }]);
        let err = decode_request(&raw, MAX).unwrap_err();
        assert!(err.to_string().contains("json/plain"), "{err}");
    }

    #[test]
    fn results_carry_their_attempt_and_cache_source_beside_the_json() {
        let mut raw = result_payload(&serde_json::json!({"ok": 1}), "p", "1.0", "sha", 3);
        let plain = ActivityResult {
            output: serde_json::json!({"ok": 1}),
            attempt: Some(3),
            cached_from: None,
        };
        assert_eq!(decode_result(&raw).unwrap(), plain);
        let from = CacheSource {
            workflow_id: "wf".into(),
            run_id: Some("run".into()),
            step: "train".into(),
        };
        mark_cached(&mut raw, &from);
        let cached = decode_result(&raw).unwrap();
        assert_eq!(cached.cached_from, Some(from));
        assert_eq!(cached.output, plain.output);
        // From another worker that records no attempt.
        let raw = RawValue::new(vec![json_payload("[1]")]);
        let other = decode_result(&raw).unwrap();
        assert_eq!(
            (other.output, other.attempt),
            (serde_json::json!([1]), None)
        );
    }

    #[test]
    fn heartbeat_details_round_trip_and_null_means_none() {
        let details = decode_heartbeat_details(&[json_payload(r#"{"step":3}"#)]).unwrap();
        assert_eq!(details.to_value(), serde_json::json!({"step": 3}));
        let sent = json_text_payload(Some(&details));
        assert_eq!(sent.payloads[0].data, br#"{"step":3}"#);
        assert_eq!(decode_heartbeat_details(&sent.payloads), Some(details));
        assert_eq!(decode_heartbeat_details(&[json_payload("null")]), None);
        assert_eq!(decode_heartbeat_details(&[json_payload("[0,")]), None);
        assert_eq!(decode_heartbeat_details(&[]), None);
    }
}
