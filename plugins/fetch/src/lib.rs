//! `fetch` plugin: a data source that downloads a file over HTTP(S) into the workflow's
//! artifacts, so later steps (e.g. `csv`) read it from `/artifacts` like any other input.
//! Where it may connect is the operator's choice (`[http] allow` in `fetch.toml`), as is which
//! token it may send (`[secrets]`).

mod download;
mod input;
mod schema;
mod sink;
mod status;

use mlx_plugin_sdk::{Context, OperationInfo, Plugin, PluginError, PluginInfo, parse_input};
use serde_json::Value;

pub struct FetchPlugin;

impl Plugin for FetchPlugin {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "fetch".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Downloads files over HTTP(S) into the workflow's artifacts.".into(),
            operations: vec![OperationInfo::new(
                "download",
                "GETs url (an origin granted under [http] allow in the manifest) and streams the \
                 body into /artifacts/<dest> through a temporary file renamed into place only \
                 when complete (and matching sha256, if given), heartbeating {\"bytes\": n}. \
                 With auth_secret, sends `Authorization: Bearer <secret>` from the manifest's \
                 [secrets]. Redirects are not followed. Errors: InvalidInput InvalidInput, \
                 InvalidUrl, InvalidDestination, InvalidChecksum; Permanent SecretUnavailable, \
                 Unauthorized (401/403), HttpStatus (other 4xx, 3xx), DownloadTooLarge, \
                 ChecksumMismatch, CapabilityDenied, HeaderRefused, HttpFailed (TLS, protocol); \
                 Retryable HttpStatus (408, 429, 5xx), HttpFailed (DNS, connection, timeout), \
                 ArtifactWriteFailed, Cancelled.",
                schema::input(),
                schema::output(),
            )],
        }
    }

    fn invoke(operation: &str, input: Value, ctx: &Context) -> Result<Value, PluginError> {
        match operation {
            "download" => download::download(parse_input(input)?, ctx),
            other => Err(PluginError::unknown_operation(other)),
        }
    }
}

mlx_plugin_sdk::export_plugin!(FetchPlugin);
