//! The GET itself, on the raw WASI 0.2 bindings: blocking on pollables keeps the component's
//! imports to wasi:http and wasi:io, with no async runtime.

use mlx_plugin_sdk::PluginError;
use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, Method, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

use crate::url::Url;

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Largest read asked of the stream at once.
const CHUNK: u64 = 64 * 1024;

fn failed(e: ErrorCode) -> PluginError {
    // The host reports a request outside its allowlist as HttpRequestDenied.
    if matches!(e, ErrorCode::HttpRequestDenied) {
        PluginError::permanent(
            "CapabilityDenied",
            format!("request denied by the host: {e:?}"),
        )
    } else {
        PluginError::permanent("HttpFailed", format!("HTTP request failed: {e:?}"))
    }
}

fn broken(what: &str) -> PluginError {
    PluginError::permanent("HttpFailed", format!("HTTP request failed: {what}"))
}

pub fn get(
    url: &Url,
    headers: &[(String, String)],
    max_body: u64,
) -> Result<Response, PluginError> {
    let fields = Fields::new();
    for (name, value) in headers {
        fields.append(name, value.as_bytes()).map_err(|e| {
            PluginError::permanent("HeaderRefused", format!("header {name:?} refused: {e:?}"))
        })?;
    }
    let request = OutgoingRequest::new(fields);
    let scheme = if url.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    // These setters only fail on syntax the parser already rejected, but the host may be stricter.
    request
        .set_method(&Method::Get)
        .and_then(|()| request.set_scheme(Some(&scheme)))
        .and_then(|()| request.set_authority(Some(url.authority)))
        .and_then(|()| request.set_path_with_query(Some(&url.path_with_query)))
        .map_err(|()| PluginError::invalid_input("InvalidUrl", "the host rejected the URL"))?;

    // The body is never taken, so the host sends an empty one.
    let future = outgoing_handler::handle(request, None).map_err(failed)?;
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(result)) => result.map_err(failed)?,
        Some(Err(())) => return Err(broken("response already taken")),
        None => return Err(broken("response not ready after the pollable fired")),
    };
    let status = response.status();

    let incoming = response
        .consume()
        .map_err(|()| broken("body already taken"))?;
    let stream = incoming
        .stream()
        .map_err(|()| broken("body stream already taken"))?;
    let mut body = Vec::new();
    while (body.len() as u64) < max_body {
        let want = CHUNK.min(max_body - body.len() as u64);
        match stream.blocking_read(want) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(match wasi::http::types::http_error_code(&e) {
                    Some(code) => failed(code),
                    None => broken(&e.to_debug_string()),
                });
            }
        }
    }
    // The stream is a child of the body: it must go first.
    drop(stream);
    drop(incoming);
    Ok(Response { status, body })
}
