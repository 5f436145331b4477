//! MLflow's REST API (`/api/2.0/mlflow/...` and the artifact proxy
//! `/api/2.0/mlflow-artifacts/...`) over wasi:http. The URL and path building is pure and
//! tested natively; only [`Client::call`] and [`Client::upload`] need the host.

use mlx_plugin_sdk::http::{self, HttpError, HttpErrorKind};
use mlx_plugin_sdk::{ErrorDecl, PluginError};
use serde_json::{Value, json};

/// The errors this module returns.
pub const ERRORS: &[ErrorDecl] = &[
    ErrorDecl::invalid_input(
        "InvalidTrackingUri",
        "tracking_uri is not an http(s) URL without query",
    ),
    ErrorDecl::permanent(
        "MlflowRejected",
        "MLflow answered 4xx (its error_code and message are shown)",
    ),
    ErrorDecl::permanent(
        "MlflowBadResponse",
        "the answer is not the JSON MLflow sends (not an MLflow server?)",
    ),
    ErrorDecl::permanent(
        "ArtifactsNotServed",
        "the server does not proxy artifacts (started without --serve-artifacts)",
    ),
    ErrorDecl::permanent(
        "CapabilityDenied",
        "the tracking server's origin is not under [http] allow",
    ),
    ErrorDecl::permanent("HeaderRefused", "the host refused a request header"),
    ErrorDecl::permanent(
        "HttpFailed",
        "TLS or protocol error, or an answer past [http] max_response_kb",
    ),
    ErrorDecl::retryable(
        "MlflowUnavailable",
        "connection failed or timed out, or MLflow answered 429 or 5xx",
    ),
];

/// Largest answer body read; MLflow's JSON answers here are small, so more means something
/// else answered.
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// A checked tracking URI: `http(s)://host[:port][/prefix]`, without a trailing '/'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingUri(String);

impl TrackingUri {
    pub fn parse(uri: &str) -> Result<Self, PluginError> {
        let bad = |why: &str| {
            PluginError::invalid_input(
                "InvalidTrackingUri",
                format!("tracking_uri {uri:?} {why}; give the server's http://host:port"),
            )
        };
        let parsed = http::parse(uri).map_err(|e| bad(&format!("is not a URL ({e})")))?;
        if parsed.path_with_query.contains('?') || uri.contains('#') {
            return Err(bad("has a query or fragment"));
        }
        Ok(Self(uri.trim_end_matches('/').to_string()))
    }

    #[cfg(test)]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An endpoint of the tracking API, e.g. `runs/create`.
    pub fn api(&self, endpoint: &str) -> String {
        format!("{}/api/2.0/mlflow/{endpoint}", self.0)
    }

    /// The UI page of a run.
    pub fn run_url(&self, experiment_id: &str, run_id: &str) -> String {
        format!("{}/#/experiments/{experiment_id}/runs/{run_id}", self.0)
    }

    /// Where the artifact proxy takes the file `path` (relative, '/'-separated) of the run
    /// whose `artifact_uri` is given.
    pub fn artifact_url(&self, artifact_uri: &str, path: &str) -> Result<String, PluginError> {
        let root = artifact_root(artifact_uri)?;
        let path: Vec<String> = path.split('/').map(encode).collect();
        Ok(format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{root}/{}",
            self.0,
            path.join("/")
        ))
    }
}

/// The path under the artifact proxy of a run's `artifact_uri`, which is
/// `mlflow-artifacts:/<experiment>/<run>/artifacts` (or with `//host:port` after the colon)
/// when the server proxies artifacts. Any other scheme is a store the plugin cannot reach
/// through its grant (a local path on the server, s3://...).
pub fn artifact_root(artifact_uri: &str) -> Result<String, PluginError> {
    let not_served = || {
        PluginError::permanent(
            "ArtifactsNotServed",
            format!(
                "the run's artifact_uri is {artifact_uri:?}, not mlflow-artifacts:/...: the \
                 server does not proxy artifacts. Start it with --serve-artifacts (the default \
                 of `mlflow server`) and --artifacts-destination, with a fresh experiment \
                 (an experiment keeps the artifact location it was created with)"
            ),
        )
    };
    let rest = artifact_uri
        .strip_prefix("mlflow-artifacts:")
        .ok_or_else(not_served)?;
    let rest = match rest.strip_prefix("//") {
        Some(authority_and_path) => {
            &authority_and_path[authority_and_path.find('/').unwrap_or(0)..]
        }
        None => rest,
    };
    let root = rest.trim_matches('/');
    if root.is_empty() || root.split('/').any(|s| s.is_empty() || s == "..") {
        return Err(not_served());
    }
    Ok(root.split('/').map(encode).collect::<Vec<_>>().join("/"))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `runs/search` filter for runs tagged `key` = `value`. MLflow's filter grammar has no
/// escape for a quote inside a string, so a value with both quote kinds cannot be searched.
pub fn tag_filter(key: &str, value: &str) -> Result<String, PluginError> {
    let quote = if !value.contains('\'') {
        '\''
    } else if !value.contains('"') {
        '"'
    } else {
        return Err(PluginError::invalid_input(
            "InvalidInput",
            format!("{value:?} has both quote kinds, which an MLflow filter cannot match"),
        ));
    };
    Ok(format!("tags.\"{key}\" = {quote}{value}{quote}"))
}

/// A failed call: the HTTP layer's error, or MLflow's answer.
#[derive(Debug)]
pub enum Failure {
    Http(HttpError),
    Api {
        status: u16,
        /// MLflow's `error_code`, e.g. RESOURCE_DOES_NOT_EXIST.
        code: String,
        message: String,
        what: String,
    },
    Plugin(PluginError),
}

impl Failure {
    pub fn is_code(&self, code: &str) -> bool {
        matches!(self, Failure::Api { code: c, .. } if c == code)
    }
}

impl From<Failure> for PluginError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Http(e) => http_error(e),
            Failure::Api {
                status,
                code,
                message,
                what,
            } => api_error(status, &code, &message, &what),
            Failure::Plugin(e) => e,
        }
    }
}

/// A transient HTTP failure is the tracking server being down or slow, which a retry of the
/// step can outlast; the host's refusals are configuration and stay refused.
fn http_error(e: HttpError) -> PluginError {
    let HttpError { kind, message } = e;
    let hint = "is the MLflow server running at tracking_uri?";
    match kind {
        HttpErrorKind::Denied => PluginError::permanent(
            "CapabilityDenied",
            format!(
                "{message}: grant the tracking server's origin under [http] allow in \
                 mlflow.toml (loopback and private addresses as IP literals, e.g. \
                 \"http://127.0.0.1:5000\")"
            ),
        ),
        HttpErrorKind::HeaderRefused => PluginError::permanent("HeaderRefused", message),
        HttpErrorKind::InvalidUrl => PluginError::invalid_input("InvalidTrackingUri", message),
        HttpErrorKind::Transient => {
            PluginError::retryable("MlflowUnavailable", format!("{message} ({hint})"))
        }
        HttpErrorKind::BodyTooLarge | HttpErrorKind::Failed => {
            PluginError::permanent("HttpFailed", message)
        }
    }
}

/// MLflow's error answer, classified by status: 429 and 5xx are the server's state, other
/// 4xx are about the request and would be refused again.
pub fn api_error(status: u16, code: &str, message: &str, what: &str) -> PluginError {
    let text = format!("MLflow answered {status} {code} to {what}: {message}");
    let details = json!({"status": status, "error_code": code, "message": message});
    if status == 429 || status >= 500 {
        PluginError::retryable("MlflowUnavailable", text).with_details(details)
    } else {
        PluginError::permanent("MlflowRejected", text).with_details(details)
    }
}

/// The `error_code` and `message` of an MLflow error body, or the body's start when it is
/// not one (a proxy's HTML page).
pub fn parse_error_body(body: &[u8]) -> (String, String) {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v["error_code"].is_string() => (
            v["error_code"].as_str().unwrap_or_default().to_string(),
            v["message"].as_str().unwrap_or_default().to_string(),
        ),
        _ => {
            let text = String::from_utf8_lossy(body);
            let start: String = text.chars().take(300).collect();
            ("UNKNOWN".to_string(), start.trim().to_string())
        }
    }
}

pub struct Client {
    pub uri: TrackingUri,
}

impl Client {
    /// GET (`body` None) or POST of JSON to `endpoint` of the tracking API; the answer's JSON.
    pub fn call(&self, endpoint: &str, body: Option<&Value>) -> Result<Value, Failure> {
        let url = self.uri.api(endpoint);
        let what = endpoint.split('?').next().unwrap_or(endpoint).to_string();
        let answer = match body {
            None => self.send(&url, None, "application/json")?,
            Some(b) => self.send(&url, Some(&b.to_string().into_bytes()), "application/json")?,
        };
        finish(answer, &what)
    }

    /// PUTs `bytes` through the artifact proxy as the run's file `path`.
    pub fn upload(&self, artifact_uri: &str, path: &str, bytes: &[u8]) -> Result<(), Failure> {
        let url = self
            .uri
            .artifact_url(artifact_uri, path)
            .map_err(Failure::Plugin)?;
        let answer = self.put(&url, bytes)?;
        finish(answer, &format!("the upload of {path}")).map(|_| ())
    }

    fn send(
        &self,
        url: &str,
        body: Option<&[u8]>,
        content_type: &str,
    ) -> Result<(u16, Vec<u8>), Failure> {
        let parsed = http::parse(url)
            .map_err(|e| Failure::Http(HttpError::new(HttpErrorKind::InvalidUrl, e.to_string())))?;
        let headers = [
            ("accept", "application/json"),
            ("content-type", content_type),
        ];
        let mut response = match body {
            None => http::get(&parsed, &headers[..1]),
            Some(b) => http::post(&parsed, &headers, b),
        }
        .map_err(Failure::Http)?;
        read(&mut response)
    }

    fn put(&self, url: &str, bytes: &[u8]) -> Result<(u16, Vec<u8>), Failure> {
        let parsed = http::parse(url)
            .map_err(|e| Failure::Http(HttpError::new(HttpErrorKind::InvalidUrl, e.to_string())))?;
        let headers = [
            ("accept", "application/json"),
            ("content-type", "application/octet-stream"),
        ];
        let mut response = http::put(&parsed, &headers, bytes).map_err(Failure::Http)?;
        read(&mut response)
    }
}

fn read(response: &mut http::Response) -> Result<(u16, Vec<u8>), Failure> {
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response.body().chunk(64 * 1024).map_err(Failure::Http)? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ANSWER_BYTES {
            return Err(Failure::Plugin(PluginError::permanent(
                "MlflowBadResponse",
                format!("an answer of more than {MAX_ANSWER_BYTES} bytes: not an MLflow server?"),
            )));
        }
    }
    Ok((status, body))
}

/// The JSON of a 2xx answer, or the classified failure.
fn finish((status, body): (u16, Vec<u8>), what: &str) -> Result<Value, Failure> {
    if !(200..300).contains(&status) {
        let (code, message) = parse_error_body(&body);
        return Err(Failure::Api {
            status,
            code,
            message,
            what: what.to_string(),
        });
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(&body).map_err(|e| {
        Failure::Plugin(PluginError::permanent(
            "MlflowBadResponse",
            format!("the answer to {what} is not JSON ({e}): is tracking_uri an MLflow server?"),
        ))
    })
}

#[cfg(test)]
mod tests {
    use mlx_plugin_sdk::ErrorKind;

    use super::*;

    #[test]
    fn tracking_uris_are_checked_and_endpoints_built_from_them() {
        let uri = TrackingUri::parse("http://127.0.0.1:5000/").unwrap();
        assert_eq!(uri.as_str(), "http://127.0.0.1:5000");
        assert_eq!(
            uri.api("runs/create"),
            "http://127.0.0.1:5000/api/2.0/mlflow/runs/create"
        );
        assert_eq!(
            uri.run_url("3", "abc"),
            "http://127.0.0.1:5000/#/experiments/3/runs/abc"
        );
        let prefixed = TrackingUri::parse("https://ml.example.org/mlflow").unwrap();
        assert_eq!(
            prefixed.api("experiments/create"),
            "https://ml.example.org/mlflow/api/2.0/mlflow/experiments/create"
        );
        for bad in [
            "",
            "127.0.0.1:5000",
            "ftp://host",
            "http://host/?x=1",
            "http://h/#x",
        ] {
            let err = TrackingUri::parse(bad).unwrap_err();
            assert_eq!(err.type_name, "InvalidTrackingUri", "{bad}");
            assert_eq!(err.kind, ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn artifact_paths_come_from_the_runs_artifact_uri() {
        let uri = TrackingUri::parse("http://127.0.0.1:5000").unwrap();
        assert_eq!(
            uri.artifact_url("mlflow-artifacts:/1/abc/artifacts", "model/model.json")
                .unwrap(),
            "http://127.0.0.1:5000/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/model/model.json"
        );
        assert_eq!(
            uri.artifact_url(
                "mlflow-artifacts://127.0.0.1:5000/1/abc/artifacts",
                "files/roc curve.svg"
            )
            .unwrap(),
            "http://127.0.0.1:5000/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/files/roc%20curve.svg"
        );
        for other in [
            "/srv/mlruns/1/abc/artifacts",
            "file:///srv/mlruns/1/abc/artifacts",
            "s3://bucket/1/abc/artifacts",
            "mlflow-artifacts:",
            "mlflow-artifacts:/1/../x",
        ] {
            let err = artifact_root(other).unwrap_err();
            assert_eq!(err.type_name, "ArtifactsNotServed", "{other}");
            assert_eq!(err.kind, ErrorKind::Permanent);
            assert!(err.message.contains("--serve-artifacts"));
        }
    }

    #[test]
    fn names_are_percent_encoded_and_filters_quoted() {
        assert_eq!(encode("my exp/1+ä"), "my%20exp%2F1%2B%C3%A4");
        assert_eq!(encode("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(
            tag_filter("mlx.plugin_run", "wf-1/train").unwrap(),
            "tags.\"mlx.plugin_run\" = 'wf-1/train'"
        );
        assert_eq!(tag_filter("k", "it's").unwrap(), "tags.\"k\" = \"it's\"");
        assert!(tag_filter("k", "'\"").is_err());
    }

    #[test]
    fn answers_are_classified_by_status_with_mlflows_words() {
        let (code, message) =
            parse_error_body(br#"{"error_code": "INVALID_PARAMETER_VALUE", "message": "bad key"}"#);
        let err = api_error(400, &code, &message, "runs/log-batch");
        assert_eq!(
            (err.kind, err.type_name.as_str()),
            (ErrorKind::Permanent, "MlflowRejected")
        );
        assert!(err.message.contains("INVALID_PARAMETER_VALUE"));
        assert!(err.message.contains("bad key"));
        for status in [429, 500, 503] {
            let err = api_error(status, "X", "busy", "runs/create");
            assert_eq!(err.kind, ErrorKind::Retryable, "{status}");
            assert_eq!(err.type_name, "MlflowUnavailable");
        }
        let (code, message) = parse_error_body(b"<html>Bad Gateway</html>");
        assert_eq!(code, "UNKNOWN");
        assert!(message.contains("Bad Gateway"));
        let denied = http_error(HttpError::new(HttpErrorKind::Denied, "denied"));
        assert_eq!(denied.type_name, "CapabilityDenied");
        let down = http_error(HttpError::new(HttpErrorKind::Transient, "refused"));
        assert_eq!(down.kind, ErrorKind::Retryable);
    }
}
