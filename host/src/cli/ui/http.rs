//! The page's HTTP side: the embedded assets, the token (query once, then a cookie), the CSRF
//! check on every POST, and headers that keep the page to its own origin and its own script.

use std::{convert::Infallible, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    Method, Request, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderValue},
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::{Ui, api};

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const COOKIE: &str = "mlx_ui_token";
/// Largest request body (an action: a step id, a comment, a param value).
const MAX_BODY: usize = 64 * 1024;

pub(super) type Answer = Response<Full<Bytes>>;

pub(super) async fn serve(listener: TcpListener, ui: Arc<Ui>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: back off instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let ui = ui.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let ui = ui.clone();
                async move { Ok::<_, Infallible>(secured(answer(&ui, req).await)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Equal, in time that depends only on the lengths (a token's length is no secret).
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie_token(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

fn query_param(req: &Request<Incoming>, name: &str) -> Option<String> {
    url_params(req.uri().query().unwrap_or_default())
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

pub(super) fn url_params(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub(super) fn text(status: StatusCode, body: &str) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pub(super) fn json(status: StatusCode, value: &serde_json::Value) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn asset(body: &str, content_type: &'static str) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// What every answer carries: the page runs only its own script and style, cannot be framed,
/// and its answers are not cached (they hold run state, and the token's cookie is set here).
fn secured(mut response: Answer) -> Answer {
    let headers = response.headers_mut();
    // A file a step wrote carries a stricter policy of its own (files.rs).
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                 img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            ),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn answer(ui: &Ui, req: Request<Incoming>) -> Answer {
    // First visit: the token from the printed address becomes a cookie, and the address bar
    // loses it (so it is not left in history or a screenshot).
    if let Some(token) = query_param(&req, "token") {
        if !same(token.as_bytes(), ui.token.as_bytes()) {
            return text(StatusCode::UNAUTHORIZED, "wrong token\n");
        }
        let mut response = text(StatusCode::SEE_OTHER, "");
        let headers = response.headers_mut();
        headers.insert(header::LOCATION, HeaderValue::from_static("/"));
        let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.insert(header::SET_COOKIE, value);
        }
        return response;
    }
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let presented = bearer.or_else(|| cookie_token(&req));
    if !presented.is_some_and(|t| same(t.as_bytes(), ui.token.as_bytes())) {
        return text(
            StatusCode::UNAUTHORIZED,
            "open the address `mlx-worker ui` printed (it carries ?token=…), or send \
             Authorization: Bearer TOKEN\n",
        );
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/") => {
            let page = INDEX
                .replace("{{CSRF}}", &ui.csrf)
                .replace("{{TEMPORAL_UI}}", &html_attr(&ui.temporal_ui));
            asset(&page, "text/html; charset=utf-8")
        }
        (&Method::GET, "/app.js") => asset(APP_JS, "text/javascript; charset=utf-8"),
        (&Method::GET, "/app.css") => asset(APP_CSS, "text/css; charset=utf-8"),
        (&Method::GET, "/api/runs") => {
            api::runs(ui, &url_params(req.uri().query().unwrap_or_default())).await
        }
        (&Method::GET, "/api/run") => match query_param(&req, "id") {
            Some(id) => api::run(ui, &id).await,
            None => json(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({"error": "which run? ?id=WORKFLOW_ID"}),
            ),
        },
        (&Method::GET, "/api/plugins") => super::catalog::plugins(ui).await,
        (&Method::GET, "/api/step") => match (query_param(&req, "id"), query_param(&req, "step")) {
            (Some(id), Some(step)) => super::step::step(ui, &id, &step).await,
            _ => json(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({"error": "?id=WORKFLOW_ID&step=STEP"}),
            ),
        },
        (&Method::GET, "/api/schedules") => super::catalog::schedules(ui).await,
        (&Method::GET, "/api/output") => {
            match (query_param(&req, "id"), query_param(&req, "step")) {
                (Some(id), Some(step)) => api::output(ui, &id, &step).await,
                _ => json(
                    StatusCode::BAD_REQUEST,
                    &serde_json::json!({"error": "?id=WORKFLOW_ID&step=STEP"}),
                ),
            }
        }
        (&Method::GET, "/api/journal") => {
            match (query_param(&req, "id"), query_param(&req, "path")) {
                (Some(id), Some(path)) => super::files::journal(ui, &id, &path),
                _ => text(
                    StatusCode::BAD_REQUEST,
                    "?id=WORKFLOW_ID&path=/artifacts/.../checkpoint.jsonl\n",
                ),
            }
        }
        (&Method::GET, "/api/file") => match (query_param(&req, "id"), query_param(&req, "path")) {
            (Some(id), Some(path)) => super::files::serve(ui, &id, &path),
            _ => text(
                StatusCode::BAD_REQUEST,
                "?id=WORKFLOW_ID&path=/artifacts/...\n",
            ),
        },
        (&Method::POST, "/api/action") => {
            let csrf = req
                .headers()
                .get("x-mlx-csrf")
                .map(|v| v.as_bytes().to_vec())
                .unwrap_or_default();
            if !same(&csrf, ui.csrf.as_bytes()) {
                return json(
                    StatusCode::FORBIDDEN,
                    &serde_json::json!({"error": "missing or wrong X-MLX-CSRF header: reload the page"}),
                );
            }
            let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(body) => body.to_bytes(),
                Err(e) => {
                    return json(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &serde_json::json!({"error": format!("request body: {e}")}),
                    );
                }
            };
            api::action(ui, &body).await
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// `value` fit for an HTML attribute in double quotes.
fn html_attr(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
        assert!(!same(b"", b"a"));
    }

    #[test]
    fn an_attribute_value_cannot_close_its_quotes() {
        assert_eq!(
            html_attr(r#"x" onload="alert(1)"#),
            "x&quot; onload=&quot;alert(1)"
        );
    }
}
