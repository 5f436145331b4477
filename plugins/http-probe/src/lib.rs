//! Test-only plugin: one HTTP GET through `wasi:http/outgoing-handler`, so the host's outbound
//! allowlist and its error mapping can be checked end to end. Never grant it anything in
//! production.

use mlx_plugin_sdk::http::{self, HttpError, HttpErrorKind};
use mlx_plugin_sdk::schema::object;
use mlx_plugin_sdk::{Context, OperationInfo, Plugin, PluginError, PluginInfo, parse_input};
use serde::Deserialize;
use serde_json::{Value, json};

/// Bytes of the body echoed back, enough to recognise a test server's reply.
const PREFIX_BYTES: usize = 200;

/// Largest read asked of the body at once.
const CHUNK: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetInput {
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: u64,
    /// When set, a POST with this many bytes of body instead of a GET.
    post_bytes: Option<usize>,
}

fn default_max_body_bytes() -> u64 {
    1 << 20
}

pub struct HttpProbe;

impl Plugin for HttpProbe {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "http-probe".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Test-only: performs one HTTP GET through wasi:http.".into(),
            operations: vec![OperationInfo::new(
                "get",
                "GETs `url` and returns the status, the body size read (at most \
                 max_body_bytes) and the body's first 200 bytes. Fails with Permanent \
                 `CapabilityDenied` when the host refuses the request, `HeaderRefused` when it \
                 refuses a header, `HttpFailed` on any other HTTP error.",
                object(
                    json!({
                        "url": {"type": "string", "description": "http:// or https:// URL."},
                        "headers": {
                            "type": "array",
                            "items": {"type": "array", "items": {"type": "string"},
                                      "minItems": 2, "maxItems": 2},
                            "default": [],
                        },
                        "max_body_bytes": {"type": "integer", "minimum": 0, "default": 1048576},
                        "post_bytes": {"type": "integer", "minimum": 0,
                                       "description": "POST this many bytes instead of a GET"},
                    }),
                    &["url"],
                ),
                object(
                    json!({
                        "status": {"type": "integer", "minimum": 100, "maximum": 999},
                        "body_bytes": {"type": "integer", "minimum": 0},
                        "body_prefix": {"type": "string"},
                    }),
                    &["status", "body_bytes", "body_prefix"],
                ),
            )],
        }
    }

    fn invoke(operation: &str, input: Value, _ctx: &Context) -> Result<Value, PluginError> {
        match operation {
            "get" => get(parse_input(input)?),
            other => Err(PluginError::unknown_operation(other)),
        }
    }
}

fn get(input: GetInput) -> Result<Value, PluginError> {
    let url = http::parse(&input.url)
        .map_err(|e| PluginError::invalid_input("InvalidUrl", format!("{:?}: {e}", input.url)))?;
    let mut response = match input.post_bytes {
        None => http::get(&url, &input.headers),
        Some(n) => http::post(&url, &input.headers, &vec![b'p'; n]),
    }
    .map_err(probe_error)?;
    let mut body = Vec::new();
    // Reads no further than asked, so a test can stop short of the host's cap.
    while (body.len() as u64) < input.max_body_bytes {
        let want = (input.max_body_bytes - body.len() as u64).min(CHUNK as u64) as usize;
        match response.body().chunk(want).map_err(probe_error)? {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => break,
        }
    }
    let prefix = &body[..body.len().min(PREFIX_BYTES)];
    Ok(json!({
        "status": response.status(),
        "body_bytes": body.len(),
        "body_prefix": String::from_utf8_lossy(prefix),
    }))
}

/// The host tests expect every transport failure as permanent `HttpFailed`: a probe reports
/// what happened once, it has nothing to gain from a retry.
fn probe_error(e: HttpError) -> PluginError {
    match e.kind {
        HttpErrorKind::Transient => PluginError::permanent("HttpFailed", e.message),
        _ => e.into(),
    }
}

mlx_plugin_sdk::export_plugin!(HttpProbe);
