//! OpenLineage run events from a worker running a real pipeline, to a file and to an HTTP
//! endpoint, checked by the OpenLineage project's own Python client (`make lineage-tools`,
//! scripts/check_openlineage.py).

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use mlx_e2e::{PluginsDir, TestWorker, eventually, shared_server, unique, workspace_root};
use mlx_worker::openlineage::Sink;
use serde_json::{Value, json};
use temporalio_client::WorkflowGetResultOptions;

use crate::pipeline::start;

fn python() -> PathBuf {
    let python = workspace_root().join("tools/lineage-venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run `make lineage-tools` (openlineage-python for these tests)",
        python.display()
    );
    python
}

/// The events in `path` once there are `count`, as the client's checker summarises them.
async fn checked(path: &Path, count: usize) -> anyhow::Result<Value> {
    eventually(
        Duration::from_secs(60),
        &format!("{count} events in {}", path.display()),
        || async {
            let text = std::fs::read_to_string(path).ok()?;
            (text.lines().count() >= count).then_some(())
        },
    )
    .await?;
    let out = Command::new(python())
        .arg(workspace_root().join("scripts/check_openlineage.py"))
        .arg(path)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "openlineage-python refused the events:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// extract (csv, reads /data, writes the splits) -> train (reads them, writes the model), and
/// a step that fails for good beside them (on_failure: continue).
fn pipeline() -> Value {
    json!({
        "name": "lineage",
        "steps": [
            {"id": "extract", "plugin": "csv", "operation": "extract_data",
             "input": {"source": "/data/iris.csv", "target": "target", "seed": 1}},
            {"id": "train", "plugin": "trainer", "operation": "train_model",
             "depends_on": ["extract"],
             "input": {"train": "${steps.extract.output.train.path}",
                       "test": "${steps.extract.output.test.path}",
                       "target": "${steps.extract.output.target}"}},
            {"id": "broken", "plugin": "testkit", "operation": "fail", "on_failure": "continue",
             "input": {"kind": "permanent", "type_name": "Diverged", "message": "loss is NaN"}}
        ]
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_leaves_start_and_complete_or_fail_events_the_client_accepts()
-> anyhow::Result<()> {
    let server = shared_server().await?;
    let plugins = PluginsDir::with(&["csv", "trainer", "testkit"]);
    plugins.grant_data("csv");
    let events = tempfile::tempdir()?;
    let file = events.path().join("events.jsonl");
    let sink = Sink::File(file.clone());
    let worker = TestWorker::start_with(server, plugins.path(), |s| {
        s.openlineage = Some((sink, "ml-platform".into()));
    })
    .await?;
    let client = server.client().await?;
    let id = unique("openlineage");
    let handle = start(&client, &worker, &id, pipeline()).await?;
    handle
        .get_result(WorkflowGetResultOptions::default())
        .await?;

    let summary = checked(&file, 6).await?;
    assert_eq!(
        summary["types"],
        json!({"START": 3, "COMPLETE": 2, "FAIL": 1}),
        "{summary:#}"
    );
    let jobs: Vec<&str> = summary["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for job in ["csv.extract_data", "trainer.train_model", "testkit.fail"] {
        assert!(jobs.contains(&job), "{jobs:?}");
    }
    // Each run (one attempt of one step) has its START and then its end.
    for (run, events) in summary["runs"].as_object().unwrap() {
        let types: Vec<&str> = events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert!(
            types == ["START", "COMPLETE"] || types == ["START", "FAIL"],
            "{run}: {types:?}"
        );
    }
    // The split extract wrote is the dataset train read: the same host file, so a lineage
    // consumer joins the two jobs.
    let run_dir = worker.artifacts.path().join(&id);
    let split = run_dir.join("dataset/train.csv").display().to_string();
    let outputs = summary["outputs"].as_array().unwrap();
    let inputs = summary["inputs"].as_array().unwrap();
    assert!(outputs.contains(&json!(split)), "{outputs:?}");
    assert!(inputs.contains(&json!(split)), "{inputs:?}");
    let data = workspace_root().join("data/iris.csv");
    let data = std::fs::canonicalize(data)?.display().to_string();
    assert!(inputs.contains(&json!(data)), "{inputs:?}");

    let lines = std::fs::read_to_string(&file)?;
    let fail: Value = lines
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["eventType"] == "FAIL")
        .unwrap();
    assert_eq!(
        fail["run"]["facets"]["errorMessage"]["message"],
        "Diverged: loss is NaN"
    );
    assert_eq!(fail["run"]["facets"]["parent"]["job"]["name"], id.as_str());
    assert_eq!(fail["job"]["namespace"], "ml-platform");
    worker.stop().await
}

/// A loopback HTTP endpoint in Python that appends every POSTed body to a file.
struct Endpoint {
    child: Child,
    port: u16,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn endpoint(out: &Path) -> anyhow::Result<Endpoint> {
    const SERVER: &str = r#"
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ok = self.path == "/lineage/api/v1/lineage" and self.headers["Content-Type"] == "application/json"
        if ok:
            with open(sys.argv[1], "ab") as f:
                f.write(body + b"\n")
        self.send_response(201 if ok else 400)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_port, flush=True)
server.serve_forever()
"#;
    let mut child = Command::new(python())
        .args(["-c", SERVER])
        .arg(out)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
    let port = line.trim().parse()?;
    Ok(Endpoint { child, port })
}

#[tokio::test(flavor = "multi_thread")]
async fn events_reach_an_http_endpoint() -> anyhow::Result<()> {
    let server = shared_server().await?;
    let plugins = PluginsDir::with(&["testkit"]);
    let received = tempfile::tempdir()?;
    let file = received.path().join("received.jsonl");
    let http = endpoint(&file)?;
    let url = format!("http://127.0.0.1:{}/lineage", http.port);
    let sink: Sink = url.parse().map_err(anyhow::Error::msg)?;
    let worker = TestWorker::start_with(server, plugins.path(), |s| {
        s.openlineage = Some((sink, "mlx".into()));
    })
    .await?;
    let client = server.client().await?;
    let spec = json!({"name": "one", "steps": [
        {"id": "hello", "plugin": "testkit", "operation": "echo", "input": {"x": 1}}
    ]});
    let handle = start(&client, &worker, &unique("openlineage-http"), spec).await?;
    handle
        .get_result(WorkflowGetResultOptions::default())
        .await?;
    let summary = checked(&file, 2).await?;
    assert_eq!(summary["types"], json!({"START": 1, "COMPLETE": 1}));
    assert_eq!(summary["jobs"], json!(["testkit.echo"]));
    worker.stop().await
}
