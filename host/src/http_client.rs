//! One plain-HTTP/1.1 request, for the few the worker makes itself (OpenLineage events to an
//! HTTP endpoint; the pipelines page asking workers what they serve): no TLS, no pool, a
//! deadline on the whole exchange and a cap on the answer, so a slow or endless peer costs a
//! bounded wait and bounded memory.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;

/// Sends `body` (if any, as JSON) to `path` on `url`'s host; returns the status and at most
/// `max_answer` bytes of the answer.
pub async fn request(
    method: Method,
    url: &url::Url,
    path: &str,
    body: Option<String>,
    timeout: Duration,
    max_answer: usize,
) -> Result<(StatusCode, Bytes), String> {
    let host = url.host_str().ok_or("the URL has no host")?.to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let exchange = async {
        let stream = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("{host}:{port}"));
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let answer = Limited::new(response.into_body(), max_answer)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok((status, answer))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("{url}: no answer in {timeout:?}"))?
}
