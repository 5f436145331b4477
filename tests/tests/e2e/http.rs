//! Outbound HTTP from a real component through `wasi:http`, against a server on loopback:
//! allowed origins work; everything else is refused before any connection is made.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use mlx_e2e::{PluginsDir, invoke_once};
use mlx_runtime::{PluginHost, failure::InvocationError, plugin::LoadedPlugin};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A loopback HTTP server answering every request with `body`; counts connections.
async fn server(body: Vec<u8>) -> (u16, Arc<AtomicUsize>) {
    serve(body, None).await
}

/// The same, behind TLS with `acceptor`.
async fn serve(body: Vec<u8>, tls: Option<tokio_rustls::TlsAcceptor>) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    None => answer(socket, &body).await,
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(socket).await {
                            answer(stream, &body).await;
                        }
                    }
                }
            });
        }
    });
    (port, connections)
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut socket: S, body: &[u8]) {
    let mut request: Vec<u8> = Vec::new();
    let mut buf = [0u8; 1024];
    // Answer at the end of the request head, or at once when the client does not speak
    // HTTP (e.g. a TLS ClientHello), so such a client fails instead of waiting.
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
    let _ = socket.write_all(body).await;
    let _ = socket.shutdown().await;
}

/// A private CA (PEM) and a TLS acceptor whose certificate it signed, for 127.0.0.1.
fn private_ca_and_acceptor() -> (String, tokio_rustls::TlsAcceptor) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    (
        ca_cert.pem(),
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    )
}

/// A loopback server that reads each connection to its end and never answers. Returns the
/// bytes received and the connections that ended.
async fn sink_server() -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(AtomicUsize::new(0));
    let ended = Arc::new(AtomicUsize::new(0));
    let (total, done) = (received.clone(), ended.clone());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (total, done) = (total.clone(), done.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    total.fetch_add(n, Ordering::SeqCst);
                }
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (port, received, ended)
}

async fn probe(manifest: &str) -> (Arc<PluginHost>, LoadedPlugin, PluginsDir) {
    let rt = PluginHost::new(mlx_e2e::host_settings()).unwrap();
    let plugins = PluginsDir::with(&["http_probe"]);
    plugins.write_manifest("http_probe", manifest);
    let plugin = rt
        .load(&plugins.path().join("http_probe.wasm"))
        .await
        .unwrap();
    (rt, plugin, plugins)
}

async fn get(
    rt: &PluginHost,
    plugin: &LoadedPlugin,
    input: Value,
) -> Result<Value, InvocationError> {
    invoke_once(rt, plugin, "get", &input, "http")
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
    // Names the system resolver turns into special addresses without any DNS server: the
    // numeric forms inet_aton accepts (a classic way to smuggle an address past a name check).
    let (rt, plugin, _dir) = probe(&format!(
        "[http]\nallow = [\"http://localhost:{port}\", \"http://api.example.com\", \
         \"http://2130706433:{port}\", \"http://0x7f000001:{port}\", \"http://167772161\", \
         \"http://2852039166\"]\n"
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
        // Allowed names that resolve to 127.0.0.1, 10.0.0.1 and 169.254.169.254.
        format!("http://2130706433:{port}/"),
        format!("http://0x7f000001:{port}/"),
        "http://167772161/".to_string(),
        "http://2852039166/latest/meta-data/".to_string(),
    ] {
        let err = get(&rt, &plugin, json!({"url": url}))
            .await
            .expect_err("refused");
        // Classified by the host from its own record of the refusal, not from the plugin's say.
        let InvocationError::CapabilityDenied { denied, .. } = &err else {
            panic!("{url}: {err:?}");
        };
        assert!(denied[0].starts_with("outbound HTTP:"), "{url}: {denied:?}");
        let failure = err.failure();
        assert_eq!(failure.type_name, "CapabilityDenied", "{url}");
        assert!(!failure.retryable);
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

/// A component that imports `wasi:http` loads without a grant (toolchains import it by
/// default), and its request is refused before any connection: `CapabilityDenied`, naming the
/// manifest key that would grant it.
#[tokio::test(flavor = "multi_thread")]
async fn without_an_http_grant_the_component_loads_and_every_request_is_denied() {
    let (port, connections) = server(b"secret".to_vec()).await;
    let (rt, plugin, _dir) = probe("").await;
    let err = get(
        &rt,
        &plugin,
        json!({"url": format!("http://127.0.0.1:{port}/")}),
    )
    .await
    .unwrap_err();
    let failure = err.failure();
    assert_eq!(failure.type_name, "CapabilityDenied", "{err}");
    assert!(!failure.retryable);
    assert!(failure.message.contains("[http]"), "{}", failure.message);
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "no connection was made"
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

#[tokio::test(flavor = "multi_thread")]
async fn https_works_with_a_ca_the_manifest_adds_and_only_with_it() {
    let (ca_pem, acceptor) = private_ca_and_acceptor();
    let (port, connections) = serve(b"over tls".to_vec(), Some(acceptor)).await;
    let url = format!("https://127.0.0.1:{port}/data");
    let allow = format!("[http]\nallow = [\"https://127.0.0.1:{port}\"]\n");

    let rt = PluginHost::new(mlx_e2e::host_settings()).unwrap();
    let dir = PluginsDir::with(&["http_probe"]);
    // Relative to the manifest's directory.
    std::fs::write(dir.path().join("internal-ca.pem"), &ca_pem).unwrap();
    dir.write_manifest(
        "http_probe",
        &format!("{allow}ca_certs = [\"internal-ca.pem\"]\n"),
    );
    let plugin = rt.load(&dir.path().join("http_probe.wasm")).await.unwrap();
    let out = get(&rt, &plugin, json!({"url": url})).await.unwrap();
    assert_eq!(out["status"], 200);
    assert_eq!(out["body_prefix"], "over tls");

    // The Mozilla roots alone do not trust a private CA: the handshake fails, cleanly.
    let (rt, plugin, _dir) = probe(&allow).await;
    assert_eq!(
        failure_type(get(&rt, &plugin, json!({"url": url})).await),
        "HttpFailed"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn request_bodies_are_capped() {
    let (port, received, ended) = sink_server().await;
    let (rt, plugin, _dir) = probe(&format!(
        "[http]\nallow = [\"http://127.0.0.1:{port}\"]\nmax_request_kb = 4\n\n\
         [limits]\ntimeout_secs = 10\n"
    ))
    .await;
    let input = json!({"url": format!("http://127.0.0.1:{port}/upload"), "post_bytes": 256 << 10});
    // Without the cap the sink would take the whole body and never answer: a deadline.
    let err = get(&rt, &plugin, input).await.expect_err("over the cap");
    assert_eq!(err.failure().type_name, "HttpFailed", "{err}");
    // The host dropped the connection; once the server has seen it end, count what arrived:
    // the head plus at most the 4 KiB allowed, nothing of the rest.
    mlx_e2e::eventually(
        Duration::from_secs(10),
        "the upload connection ends",
        || async { (ended.load(Ordering::SeqCst) == 1).then_some(()) },
    )
    .await
    .unwrap();
    let sent = received.load(Ordering::SeqCst);
    assert!(sent < 8 << 10, "{sent} bytes reached the server");
}
