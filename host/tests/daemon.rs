//! The daemon itself, `mlx-worker run`, as an operator runs it: a child process with its own
//! environment, against a real Temporal dev server.

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use mlx_e2e::{
    DevServer, PluginsDir, WorkerProcess, find, history_text, run_step_on, single_failed_attempt,
    workspace_root,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "tok-8f3a61c2e9d4";

fn worker_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_mlx-worker"))
}

/// A loopback data server: the file to anyone presenting `Bearer TOKEN`, 401 to the rest.
/// Returns its port and the authorization header of each request.
async fn data_server(body: Vec<u8>) -> (u16, Arc<Mutex<Vec<Option<String>>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let body = body.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let auth = head.lines().find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("authorization")
                        .then(|| value.trim().to_string())
                });
                let ok = auth.as_deref() == Some(&format!("Bearer {TOKEN}"));
                log.lock().unwrap().push(auth);
                let (status, body) = if ok {
                    ("200 OK", body)
                } else {
                    ("401 Unauthorized", b"who are you?".to_vec())
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.write_all(&body).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (port, seen)
}

fn download(port: u16, secret: &str) -> serde_json::Value {
    json!({
        "plugin": "fetch", "operation": "download",
        "input": {
            "url": format!("http://127.0.0.1:{port}/breast_cancer.csv"),
            "dest": "raw/breast_cancer.csv",
            "auth_secret": secret,
        },
        "start_to_close_secs": 60,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_data_source_plugin_reads_its_token_from_the_worker_environment() -> anyhow::Result<()>
{
    let csv = std::fs::read(workspace_root().join("data/breast_cancer.csv"))?;
    let (port, seen) = data_server(csv.clone()).await;
    let plugins = PluginsDir::with(&["fetch"]);
    plugins.write_manifest(
        "fetch",
        &format!(
            "[http]\nallow = [\"http://127.0.0.1:{port}\"]\nmax_response_kb = 1024\n\n\
             [secrets]\ndata_token = {{ env = \"MLX_SECRET_DATA_TOKEN\" }}\n"
        ),
    );
    let server = DevServer::start().await?;
    let worker = WorkerProcess::start(
        worker_binary(),
        &server,
        plugins.path(),
        &[("MLX_SECRET_DATA_TOKEN", TOKEN)],
    )?;

    let (result, events) = run_step_on(
        &server,
        &worker.task_queue,
        "fetch-granted",
        download(port, "data_token"),
    )
    .await?;
    let out = result.map_err(|e| anyhow::anyhow!("download failed: {e}"))?;
    assert_eq!(out["bytes"], csv.len());
    assert_eq!(out["status"], 200);
    assert_eq!(out["path"], "/artifacts/raw/breast_cancer.csv");
    let on_disk = std::fs::read(
        worker
            .artifacts
            .path()
            .join("fetch-granted/raw/breast_cancer.csv"),
    )?;
    assert!(on_disk == csv, "the artifact differs from the served file");
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        &[Some(format!("Bearer {TOKEN}"))]
    );

    // A secret the manifest does not grant: the host refuses it, says which key grants it,
    // and no request leaves the worker.
    let (result, events_denied) = run_step_on(
        &server,
        &worker.task_queue,
        "fetch-ungranted",
        download(port, "other"),
    )
    .await?;
    assert!(result.is_err());
    let failure = single_failed_attempt(&events_denied);
    assert_eq!(find(&failure, "type"), Some(&json!("CapabilityDenied")));
    assert_eq!(find(&failure, "nonRetryable"), Some(&json!(true)));
    let text = history_text(&events_denied);
    assert!(
        text.contains("secret \"other\" is not granted") && text.contains("[secrets]"),
        "{text}"
    );
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "an ungranted call reached the server"
    );

    // The token never appears in Temporal's history (payloads decoded: the request is there).
    for events in [&events, &events_denied] {
        let text = history_text(events);
        assert!(
            text.contains("raw/breast_cancer.csv"),
            "payloads not decoded"
        );
        assert!(!text.contains(TOKEN), "the token leaked into history");
    }
    Ok(())
}
