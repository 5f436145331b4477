//! Test-only plugin: one HTTP GET through `wasi:http/outgoing-handler`, so the host's outbound
//! allowlist and its error mapping can be checked end to end. Never grant it anything in
//! production.

mod http;
mod url;

use mlx_plugin_sdk::schema::object;
use mlx_plugin_sdk::{Context, Operation, Plugin, PluginError, PluginInfo, parse_input};
use serde::Deserialize;
use serde_json::{Value, json};

/// Bytes of the body echoed back, enough to recognise a test server's reply.
const PREFIX_BYTES: usize = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetInput {
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: u64,
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
            operations: vec![Operation::new(
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
    let url = url::parse(&input.url)
        .map_err(|e| PluginError::invalid_input("InvalidUrl", format!("{:?}: {e}", input.url)))?;
    let response = http::get(&url, &input.headers, input.max_body_bytes)?;
    let prefix = &response.body[..response.body.len().min(PREFIX_BYTES)];
    Ok(json!({
        "status": response.status,
        "body_bytes": response.body.len(),
        "body_prefix": String::from_utf8_lossy(prefix),
    }))
}

mlx_plugin_sdk::export_plugin!(HttpProbe);
