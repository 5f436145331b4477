//! GET, POST and PUT, on the raw WASI 0.2 bindings: blocking on pollables keeps the component's
//! imports to wasi:http and wasi:io, with no async runtime.

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingBody, IncomingResponse, Method,
    OutgoingBody, OutgoingRequest, Scheme,
};
use wasi::io::streams::{InputStream, StreamError};

use super::{HttpError, HttpErrorKind, Url};

/// Largest read [`Body::chunk`] asks of the host at once, whatever the caller wants: each read
/// is a guest allocation of that size.
pub const MAX_CHUNK: usize = 1 << 20;

/// A response whose body has not been read yet.
#[derive(Debug)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Body,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Every response header in the order received; names are as the host reports them
    /// (lower case for HTTP/1.1 through hyper), values decoded lossily as UTF-8.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }

    /// The announced body size, if the server sent a valid `content-length`.
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length")?.trim().parse().ok()
    }

    pub fn body(&mut self) -> &mut Body {
        &mut self.body
    }

    pub fn into_body(self) -> Body {
        self.body
    }
}

/// A response body, read chunk by chunk so it never has to fit in memory at once.
#[derive(Debug)]
pub struct Body {
    // Field order is drop order, and each resource is a child of the next: the stream of the
    // body, the body of the response, the response of the future.
    stream: InputStream,
    _body: IncomingBody,
    _response: IncomingResponse,
    _future: FutureIncomingResponse,
    ended: bool,
}

impl Body {
    /// The next chunk of at most `max` bytes (at least 1, at most [`MAX_CHUNK`]), blocking
    /// until some arrive; `None` once the body has ended.
    pub fn chunk(&mut self, max: usize) -> Result<Option<Vec<u8>>, HttpError> {
        let want = max.clamp(1, MAX_CHUNK) as u64;
        while !self.ended {
            match self.stream.blocking_read(want) {
                // An empty read is legal and means nothing yet, not the end.
                Ok(chunk) if chunk.is_empty() => continue,
                Ok(chunk) => return Ok(Some(chunk)),
                Err(StreamError::Closed) => self.ended = true,
                Err(StreamError::LastOperationFailed(e)) => {
                    self.ended = true;
                    return Err(match wasi::http::types::http_error_code(&e) {
                        Some(code) => failed(code),
                        None => uncoded(&e.to_debug_string()),
                    });
                }
            }
        }
        Ok(None)
    }
}

/// Sends a GET for `url` with `headers` and waits for the response head. The body is left
/// to the caller ([`Response::body`]); a status other than 2xx is not an error here.
pub fn get<K: AsRef<str>, V: AsRef<[u8]>>(
    url: &Url<'_>,
    headers: &[(K, V)],
) -> Result<Response, HttpError> {
    send(Method::Get, url, headers, None)
}

/// Sends a POST with `body` (streamed to the host in small writes, announced with its
/// `content-length` unless `headers` has one), then waits for the response head as [`get`]
/// does. The host caps request bodies at `[http] max_request_kb`.
pub fn post<K: AsRef<str>, V: AsRef<[u8]>>(
    url: &Url<'_>,
    headers: &[(K, V)],
    body: &[u8],
) -> Result<Response, HttpError> {
    send(Method::Post, url, headers, Some(body))
}

/// Sends a PUT with `body`, as [`post`] does (e.g. an upload to an object or artifact
/// store); the same `[http] max_request_kb` cap applies.
pub fn put<K: AsRef<str>, V: AsRef<[u8]>>(
    url: &Url<'_>,
    headers: &[(K, V)],
    body: &[u8],
) -> Result<Response, HttpError> {
    send(Method::Put, url, headers, Some(body))
}

/// Largest write `blocking-write-and-flush` accepts.
const WRITE_CHUNK: usize = 4096;

fn send<K: AsRef<str>, V: AsRef<[u8]>>(
    method: Method,
    url: &Url<'_>,
    headers: &[(K, V)],
    body: Option<&[u8]>,
) -> Result<Response, HttpError> {
    let fields = Fields::new();
    for (name, value) in headers {
        let name = name.as_ref();
        // The value stays out of the message: it may be a credential.
        fields.append(name, value.as_ref()).map_err(|e| {
            HttpError::new(
                HttpErrorKind::HeaderRefused,
                format!("header {name:?} refused: {e:?}"),
            )
        })?;
    }
    // The length is known, so it is announced: without it the host sends the body chunked,
    // and WSGI apps (Flask behind MLflow's server, for one) then read an empty body.
    if let Some(bytes) = body
        && !headers
            .iter()
            .any(|(name, _)| name.as_ref().eq_ignore_ascii_case("content-length"))
    {
        fields
            .append("content-length", bytes.len().to_string().as_bytes())
            .map_err(|e| {
                HttpError::new(
                    HttpErrorKind::HeaderRefused,
                    format!("header \"content-length\" refused: {e:?}"),
                )
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
        .set_method(&method)
        .and_then(|()| request.set_scheme(Some(&scheme)))
        .and_then(|()| request.set_authority(Some(url.authority)))
        .and_then(|()| request.set_path_with_query(Some(&url.path_with_query)))
        .map_err(|()| HttpError::new(HttpErrorKind::InvalidUrl, "the host rejected the URL"))?;

    // Without a body the outgoing body is never taken, so the host sends an empty one.
    let outgoing = match body {
        Some(_) => Some(
            request
                .body()
                .map_err(|()| broken("request body already taken"))?,
        ),
        None => None,
    };
    let future = outgoing_handler::handle(request, None).map_err(failed)?;
    if let (Some(outgoing), Some(bytes)) = (outgoing, body) {
        write_body(outgoing, bytes)?;
    }
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(result)) => result.map_err(failed)?,
        Some(Err(())) => return Err(broken("response already taken")),
        None => return Err(broken("response not ready after the pollable fired")),
    };
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
        .collect();
    let body = response
        .consume()
        .map_err(|()| broken("body already taken"))?;
    let stream = body
        .stream()
        .map_err(|()| broken("body stream already taken"))?;
    Ok(Response {
        status,
        headers,
        body: Body {
            stream,
            _body: body,
            _response: response,
            _future: future,
            ended: false,
        },
    })
}

/// Streams `bytes` into the request body and finishes it. A write that fails means the host
/// stopped taking the body (its cap, or the connection went away): the response future then
/// says why, so that error is left for it to report.
fn write_body(outgoing: OutgoingBody, bytes: &[u8]) -> Result<(), HttpError> {
    let stream = outgoing
        .write()
        .map_err(|()| broken("request body stream already taken"))?;
    let mut complete = true;
    for chunk in bytes.chunks(WRITE_CHUNK) {
        if stream.blocking_write_and_flush(chunk).is_err() {
            complete = false;
            break;
        }
    }
    // The stream is a child of the body: it must go first.
    drop(stream);
    if complete {
        OutgoingBody::finish(outgoing, None).map_err(failed)?;
    }
    Ok(())
}

/// How much a retry could help with `code`. Host refusals are policy and stay refused; DNS,
/// connection and timeout failures are the network's state, which changes.
pub(super) fn classify(code: &ErrorCode) -> HttpErrorKind {
    match code {
        ErrorCode::HttpRequestDenied => HttpErrorKind::Denied,
        ErrorCode::HttpResponseBodySize(_) => HttpErrorKind::BodyTooLarge,
        ErrorCode::DnsTimeout
        | ErrorCode::DnsError(_)
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTerminated
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::ConnectionLimitReached
        | ErrorCode::HttpResponseIncomplete
        | ErrorCode::HttpResponseTimeout
        | ErrorCode::InternalError(_) => HttpErrorKind::Transient,
        _ => HttpErrorKind::Failed,
    }
}

fn failed(code: ErrorCode) -> HttpError {
    let kind = classify(&code);
    // The Debug form names the wasi:http error code (e.g. HttpResponseBodySize), which is
    // what an operator needs to tell a refusal from a cap from a dead server.
    let message = if kind == HttpErrorKind::Denied {
        format!("request denied by the host: {code:?}")
    } else {
        format!("HTTP request failed: {code:?}")
    };
    HttpError::new(kind, message)
}

/// A body read error without a wasi:http code: wasmtime-wasi-http (48) keeps body errors as
/// its own type, which `http-error-code` does not map back, so the host's cap is recognised
/// by its text. Anything else cut the body short mid-transfer, which a new attempt may not.
fn uncoded(text: &str) -> HttpError {
    let kind = if text.to_ascii_lowercase().contains("body size") {
        HttpErrorKind::BodyTooLarge
    } else {
        HttpErrorKind::Transient
    };
    HttpError::new(kind, format!("HTTP request failed: {text}"))
}

fn broken(what: &str) -> HttpError {
    HttpError::new(
        HttpErrorKind::Failed,
        format!("HTTP request failed: {what}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_classified_by_what_a_retry_would_do() {
        assert_eq!(
            failed(ErrorCode::HttpRequestDenied).kind,
            HttpErrorKind::Denied
        );
        let cap = failed(ErrorCode::HttpResponseBodySize(Some(1024)));
        assert_eq!(cap.kind, HttpErrorKind::BodyTooLarge);
        assert!(cap.message.to_lowercase().contains("size"), "{cap}");
        for code in [
            ErrorCode::ConnectionRefused,
            ErrorCode::ConnectionTimeout,
            ErrorCode::DnsTimeout,
            ErrorCode::DestinationNotFound,
            ErrorCode::HttpResponseIncomplete,
        ] {
            assert_eq!(classify(&code), HttpErrorKind::Transient, "{code:?}");
        }
        for code in [
            ErrorCode::TlsCertificateError,
            ErrorCode::HttpProtocolError,
            ErrorCode::HttpRequestUriInvalid,
        ] {
            assert_eq!(classify(&code), HttpErrorKind::Failed, "{code:?}");
        }
    }

    #[test]
    fn uncoded_body_errors_are_told_apart_by_their_text() {
        let cap = uncoded("HTTP response body size exceeds limit: 1024 bytes");
        assert_eq!(cap.kind, HttpErrorKind::BodyTooLarge);
        assert!(cap.message.contains("size"), "{cap}");
        let cut = uncoded("error reading a body from connection");
        assert_eq!(cut.kind, HttpErrorKind::Transient);
    }
}
