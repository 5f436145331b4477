//! Outbound HTTP from a real component through `wasi:http`, against a server on loopback:
//! allowed origins work; everything else is refused before any connection is made.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use mlx_e2e::PluginsDir;
use mlx_worker::{
    capabilities::activity::ActivitySignals,
    contract::InvocationContext,
    failure::InvocationError,
    runtime::{LoadedPlugin, Runtime, RuntimeSettings},
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// A loopback HTTP server answering every request with `body`; counts connections.
async fn server(body: Vec<u8>) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            tokio::spawn(async move {
                let mut request: Vec<u8> = Vec::new();
                let mut buf = [0u8; 1024];
                // Answer at the end of the request head, or at once when the client does not
                // speak HTTP (e.g. a TLS ClientHello), so such a client fails instead of waiting.
                while !request.windows(4).any(|w| w == b"\r\n\r\n")
                    && request.first().is_none_or(|b| b.is_ascii_uppercase())
                {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
            });
        }
    });
    (port, connections)
}

async fn probe(manifest: &str) -> (Arc<Runtime>, LoadedPlugin, PluginsDir) {
    let rt = Runtime::new(RuntimeSettings::default()).unwrap();
    let plugins = PluginsDir::with(&["http_probe"]);
    plugins.write_manifest("http_probe", manifest);
    let plugin = rt
        .load(&plugins.path().join("http_probe.wasm"))
        .await
        .unwrap();
    (rt, plugin, plugins)
}

async fn get(rt: &Runtime, plugin: &LoadedPlugin, input: Value) -> Result<Value, InvocationError> {
    let (signals, _) = ActivitySignals::new(CancellationToken::new());
    let ctx = InvocationContext {
        workflow_id: "http".into(),
        activity_id: "1".into(),
        attempt: 1,
        last_heartbeat_details: None,
    };
    rt.invoke(plugin, "get", &input, &ctx, signals, None)
        .await
        .map(|done| done.output)
}

fn failure_type(result: Result<Value, InvocationError>) -> String {
    result.expect_err("request must fail").failure().type_name
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allowed_origin_is_reachable() {
    let (port, connections) = server(b"hello from loopback".to_vec()).await;
    let (rt, plugin, _dir) =
        probe(&format!("[http]\nallow = [\"http://127.0.0.1:{port}\"]\n")).await;
    let out = get(
        &rt,
        &plugin,
        json!({"url": format!("http://127.0.0.1:{port}/data")}),
    )
    .await
    .unwrap();
    assert_eq!(out["status"], 200);
    assert_eq!(out["body_prefix"], "hello from loopback");
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn everything_else_is_refused_before_connecting() {
    let (port, connections) = server(b"secret".to_vec()).await;
    let (rt, plugin, _dir) = probe(&format!(
        "[http]\nallow = [\"http://localhost:{port}\", \"http://api.example.com\"]\n"
    ))
    .await;
    for url in [
        // Not on the allow list (other port of the same host).
        format!("http://127.0.0.1:{}/", port.wrapping_add(1)),
        // Allowed by name, but the name resolves to loopback: only a literal grant permits it.
        format!("http://localhost:{port}/"),
        // Metadata service and private ranges, directly.
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/".to_string(),
        // Allowed host, other scheme.
        "https://api.example.com:80/".to_string(),
    ] {
        let result = get(&rt, &plugin, json!({"url": url})).await;
        assert_eq!(failure_type(result), "CapabilityDenied", "{url}");
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "a refused request reached the server"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_host_header_cannot_be_forged() {
    let (port, connections) = server(b"x".to_vec()).await;
    let (rt, plugin, _dir) =
        probe(&format!("[http]\nallow = [\"http://127.0.0.1:{port}\"]\n")).await;
    let input = json!({
        "url": format!("http://127.0.0.1:{port}/"),
        "headers": [["host", "169.254.169.254"]],
    });
    assert_eq!(
        failure_type(get(&rt, &plugin, input).await),
        "HeaderRefused"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn response_bodies_are_capped() {
    let (port, _) = server(vec![b'z'; 64 << 10]).await;
    let (rt, plugin, _dir) = probe(&format!(
        "[http]\nallow = [\"http://127.0.0.1:{port}\"]\nmax_response_kb = 1\n"
    ))
    .await;
    let result = get(
        &rt,
        &plugin,
        json!({"url": format!("http://127.0.0.1:{port}/big")}),
    )
    .await;
    let err = result.expect_err("body over the cap");
    assert_eq!(err.failure().type_name, "HttpFailed", "{err}");
    assert!(err.to_string().to_lowercase().contains("size"), "{err}");
}

#[tokio::test]
async fn without_an_http_grant_the_component_is_refused_at_load() {
    let rt = Runtime::new(RuntimeSettings::default()).unwrap();
    let plugins = PluginsDir::with(&["http_probe"]);
    let err = rt
        .load(&plugins.path().join("http_probe.wasm"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("wasi:http/") && err.contains("[http] allow"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn https_to_a_server_that_does_not_speak_tls_fails_cleanly() {
    // Exercises the TLS client path (rustls with the Mozilla roots): a plain HTTP server on
    // an allowed literal origin makes the handshake fail, which must be an HTTP error for the
    // plugin, not a trap or a worker panic.
    let (port, connections) = server(b"not tls".to_vec()).await;
    let (rt, plugin, _dir) =
        probe(&format!("[http]\nallow = [\"https://127.0.0.1:{port}\"]\n")).await;
    let result = get(
        &rt,
        &plugin,
        json!({"url": format!("https://127.0.0.1:{port}/")}),
    )
    .await;
    assert_eq!(failure_type(result), "HttpFailed");
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "the checked address was dialled"
    );
}
