//! `mlx-worker pipeline ...` and `mlx-worker schedule ...` as an operator types them: the real
//! binary as a child process (stdout a pipe, so progress comes as plain lines), against the
//! shared dev server and an in-process worker serving the testkit component. Conditions are
//! polled with a deadline; every child is killed if its test fails first.

use std::{
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use mlx_e2e::{DevServer, PluginsDir, TestWorker, eventually, shared_server, unique};
use mlx_worker::temporal::PipelineWorkflow;
use serde_json::Value;
use temporalio_client::{
    Client, RpcOptions, WorkflowDescribeOptions, WorkflowExecutionStatus,
    errors::WorkflowInteractionError,
};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Longest a single command may take (a `--wait` follows a whole run).
const COMMAND_LIMIT: Duration = Duration::from_secs(120);

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `mlx-worker ARGS` against `server`, as an operator's shell would run it (no inherited
/// Temporal or MLX settings), with stdout a pipe.
fn command(server: &DevServer, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(mlx_e2e::worker_binary());
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("TEMPORAL_ADDRESS", &server.address)
        .env("USER", "ana")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn finish(child: tokio::process::Child) -> Out {
    let output = tokio::time::timeout(COMMAND_LIMIT, child.wait_with_output())
        .await
        .expect("the command finished in time")
        .expect("waiting for the command");
    Out {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn cli(server: &DevServer, args: &[&str]) -> Out {
    finish(command(server, args).spawn().expect("starting mlx-worker")).await
}

/// A `pipeline run --wait` in the background, its stdout and stderr read line by line as they
/// come, so a test can act once the follower has shown something.
struct Follower {
    child: tokio::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
    errors: Arc<Mutex<Vec<String>>>,
    readers: [tokio::task::JoinHandle<()>; 2],
}

/// Collects `stream`'s lines into `sink` until it closes.
fn read_lines(
    stream: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    sink: Arc<Mutex<Vec<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stream = BufReader::new(stream).lines();
        while let Ok(Some(line)) = stream.next_line().await {
            sink.lock().unwrap().push(line);
        }
    })
}

impl Follower {
    fn start(mut cmd: tokio::process::Command) -> anyhow::Result<Self> {
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let readers = [
            read_lines(stdout, lines.clone()),
            read_lines(stderr, errors.clone()),
        ];
        Ok(Self {
            child,
            lines,
            errors,
            readers,
        })
    }

    /// Until a progress line (without its clock) is `line`.
    async fn shows(&self, line: &str) -> anyhow::Result<()> {
        eventually(Duration::from_secs(60), line, || async {
            let text = self.lines.lock().unwrap().join("\n");
            progress_lines(&text).contains(&line).then_some(())
        })
        .await
    }

    /// Until a stderr line satisfies `wanted`; fails at once if the command exits first.
    async fn says(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> anyhow::Result<()> {
        let errors = self.errors.clone();
        let child = &mut self.child;
        eventually(Duration::from_secs(90), what, || {
            let found = errors.lock().unwrap().iter().any(|l| wanted(l));
            let exited = child.try_wait().ok().flatten();
            async move {
                match (found, exited) {
                    (true, _) => Some(Ok(())),
                    (false, Some(status)) => Some(Err(status)),
                    (false, None) => None,
                }
            }
        })
        .await?
        .map_err(|status| {
            anyhow::anyhow!(
                "exited ({status}) before saying {what}; stderr:\n{}",
                self.errors.lock().unwrap().join("\n")
            )
        })
    }

    async fn finish(self) -> Out {
        let mut out = finish(self.child).await;
        for reader in self.readers {
            reader.await.expect("the readers end with the pipes");
        }
        out.stdout = self.lines.lock().unwrap().join("\n") + "\n";
        out.stderr = self.errors.lock().unwrap().join("\n") + "\n";
        out
    }
}

/// A spec file in `dir`.
fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

async fn setup() -> anyhow::Result<(
    &'static DevServer,
    TestWorker,
    PluginsDir,
    tempfile::TempDir,
)> {
    let server = shared_server().await?;
    let plugins = PluginsDir::with(&["testkit"]);
    let worker = TestWorker::start(server, plugins.path()).await?;
    Ok((server, worker, plugins, tempfile::tempdir()?))
}

/// The lines of a plain progress report, without their `HH:MM:SS ` clock.
fn progress_lines(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter_map(|line| {
            let (clock, rest) = line.split_once(' ')?;
            let is_clock = clock.len() == 8 && clock.chars().filter(|c| *c == ':').count() == 2;
            is_clock.then_some(rest)
        })
        .collect()
}

fn workflow_id(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("workflow id: "))
        .unwrap_or_else(|| panic!("no workflow id in {stdout}"))
        .trim()
        .to_string()
}

const YAML: &str = r#"
name: greet
params:
  greeting: hello
  n: 1
steps:
  - id: first
    plugin: testkit
    operation: echo
    input: {say: "${params.greeting}", n: "${params.n}"}
  - id: flaky
    plugin: testkit
    operation: checkpoint
    depends_on: [first]
    input: {steps: 1, fail_attempts: 1}
    retry: {initial_interval_secs: 1, max_attempts: 3}
  - id: last
    plugin: testkit
    operation: echo
    depends_on: [flaky]
    input: {from: "${steps.first.output.input.say}"}
  - id: big
    plugin: testkit
    operation: echo
    depends_on: [first]
    when: params.n > 5
"#;

const TOML: &str = r#"
name = "toml-greet"

[params]
who = "toml"

[[steps]]
id = "hello"
plugin = "testkit"
operation = "echo"
input = { greet = "hello ${params.who}" }
"#;

/// `pipeline run FILE --wait` on the YAML example with `--param` overrides.
async fn run_yaml(server: &DevServer, worker: &TestWorker, dir: &Path) -> Out {
    let yaml = write(dir, "greet.yaml", YAML);
    cli(
        server,
        &[
            "pipeline",
            "run",
            &yaml,
            "--task-queue",
            &worker.task_queue,
            "--param",
            "greeting=hi",
            "--param",
            "n=2",
            "--wait",
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_yaml_run_is_followed_to_the_end_in_plain_lines() -> anyhow::Result<()> {
    let (server, worker, _plugins, dir) = setup().await?;
    let out = run_yaml(server, &worker, dir.path()).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        !out.stdout.contains('\x1b'),
        "no escape codes in a pipe: {out:?}"
    );
    let lines = progress_lines(&out.stdout);
    for expected in [
        "pipeline `greet` running",
        "first succeeded (attempt 1)",
        // Failed once on purpose: the second attempt is the one that succeeded.
        "flaky succeeded (attempt 2)",
        "last succeeded (attempt 1)",
        "big skipped: `params.n > 5` is false",
        "pipeline `greet` succeeded",
    ] {
        assert!(lines.contains(&expected), "missing {expected:?}: {out:?}");
    }
    let position = |line: &str| lines.iter().position(|l| *l == line).unwrap();
    assert!(position("first succeeded (attempt 1)") < position("last succeeded (attempt 1)"));
    assert_eq!(
        lines.last(),
        Some(&"pipeline `greet` succeeded"),
        "the end follows the steps: {out:?}"
    );
    // One line per change: nothing repeats.
    let mut unique_lines = lines.clone();
    unique_lines.sort();
    unique_lines.dedup();
    assert_eq!(unique_lines.len(), lines.len(), "{out:?}");
    assert!(out.stdout.contains("pipeline succeeded"), "{out:?}");
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn param_overrides_reach_the_run_and_show_in_output_and_status() -> anyhow::Result<()> {
    let (server, worker, _plugins, dir) = setup().await?;
    let out = run_yaml(server, &worker, dir.path()).await;
    assert_eq!(out.code, 0, "{out:?}");
    let id = workflow_id(&out.stdout);
    let first = cli(server, &["pipeline", "output", &id, "first"]).await;
    assert_eq!(first.code, 0, "{first:?}");
    let first: Value = serde_json::from_str(&first.stdout)?;
    assert_eq!(first["input"], serde_json::json!({"say": "hi", "n": 2}));
    let status = cli(server, &["pipeline", "status", &id, "--json"]).await;
    let status: Value = serde_json::from_str(&status.stdout)?;
    assert_eq!(status["state"], "succeeded");
    assert_eq!(status["params"]["greeting"], "hi");
    assert_eq!(status["steps"][1]["id"], "flaky");
    assert_eq!(status["steps"][1]["attempt"], 2);
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_toml_run_with_its_own_id_is_followed_and_its_output_read() -> anyhow::Result<()> {
    let (server, worker, _plugins, dir) = setup().await?;
    let toml = write(dir.path(), "greet.toml", TOML);
    let id = unique("from-toml");
    let out = cli(
        server,
        &[
            "pipeline",
            "run",
            &toml,
            "--task-queue",
            &worker.task_queue,
            "--id",
            &id,
            "--wait",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        progress_lines(&out.stdout).contains(&"hello succeeded (attempt 1)"),
        "{out:?}"
    );
    let hello = cli(server, &["pipeline", "output", &id, "hello"]).await;
    assert!(hello.stdout.contains("hello toml"), "{hello:?}");
    worker.stop().await
}

async fn not_started(client: &Client, id: &str) -> bool {
    matches!(
        client
            .get_workflow_handle::<PipelineWorkflow>(id)
            .describe(WorkflowDescribeOptions::default())
            .await,
        Err(WorkflowInteractionError::NotFound(_))
    )
}

/// YAML with an unknown dependency, a bad backoff and a misspelt operation.
fn bad_yaml() -> String {
    YAML.replace(
        "depends_on: [first]\n    input: {steps",
        "depends_on: [frist]\n    input: {steps",
    )
    .replace(
        "max_attempts: 3}",
        "max_attempts: 3, backoff_coefficient: 0.5}",
    )
    .replace("operation: checkpoint", "operation: checkpont")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_spec_exits_2_naming_step_and_field_and_starts_nothing() -> anyhow::Result<()> {
    let (server, worker, _plugins, dir) = setup().await?;
    let client = server.client().await?;
    let file = write(dir.path(), "bad.yaml", &bad_yaml());
    let id = unique("bad-run");
    let out = cli(
        server,
        &[
            "pipeline",
            "run",
            &file,
            "--task-queue",
            &worker.task_queue,
            "--id",
            &id,
            "--wait",
        ],
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
    for expected in [
        "nothing was started",
        "step `flaky`, depends_on[0]: unknown step `frist`",
        "step `flaky`, retry.backoff_coefficient: must be at least 1",
    ] {
        assert!(
            out.stderr.contains(expected),
            "missing {expected:?}: {out:?}"
        );
    }
    assert!(not_started(&client, &id).await);
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_plugins_directory_operation_names_are_checked_too() -> anyhow::Result<()> {
    let (server, worker, plugins, dir) = setup().await?;
    let client = server.client().await?;
    let file = write(dir.path(), "bad.yaml", &bad_yaml());
    let id = unique("bad-run");
    let plugins_dir = plugins.path().display().to_string();
    let out = cli(
        server,
        &[
            "pipeline",
            "run",
            &file,
            "--id",
            &id,
            "--plugins-dir",
            &plugins_dir,
        ],
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("step `flaky`, operation: `testkit` has no operation `checkpont`"),
        "{out:?}"
    );
    assert!(not_started(&client, &id).await);
    worker.stop().await
}

/// Unknown keys are refused with file, line and column.
#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_key_exits_2_with_file_line_and_column() -> anyhow::Result<()> {
    let (server, worker, _plugins, dir) = setup().await?;
    let client = server.client().await?;
    let toml = write(dir.path(), "bad.toml", &TOML.replace("input =", "inputs ="));
    let id = unique("bad-toml");
    let out = cli(server, &["pipeline", "run", &toml, "--id", &id]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("bad.toml: unknown field `inputs`"),
        "{out:?}"
    );
    assert!(out.stderr.contains("at line 11, column 1"), "{out:?}");
    assert!(not_started(&client, &id).await);
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_param_exits_2_listing_the_params() -> anyhow::Result<()> {
    let (server, worker, _plugins, dir) = setup().await?;
    let client = server.client().await?;
    let good = write(dir.path(), "good.yaml", YAML);
    let id = unique("bad-param");
    let out = cli(
        server,
        &[
            "pipeline",
            "run",
            &good,
            "--id",
            &id,
            "--param",
            "greting=x",
        ],
    )
    .await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr
            .contains("--param greting: no such param (params: greeting, n)"),
        "{out:?}"
    );
    assert!(not_started(&client, &id).await);
    worker.stop().await
}

const GATED: &str = r#"
name: gated
params:
  threshold: 0.9
  label: v1
steps:
  - id: train
    plugin: testkit
    operation: echo
    input: {accuracy: 0.95}
  - id: approve
    type: approval
    depends_on: [train]
    when: steps.train.output.input.accuracy >= params.threshold
  - id: register
    plugin: testkit
    operation: echo
    depends_on: [approve]
    input: {label: "${params.label}"}
"#;

/// Polls `status --json` until `step` is waiting for approval.
async fn wait_for_approval(server: &DevServer, id: &str, step: &str) -> anyhow::Result<Value> {
    eventually(
        Duration::from_secs(60),
        "step waiting for approval",
        || async {
            let out = cli(server, &["pipeline", "status", id, "--json"]).await;
            let status: Value = serde_json::from_str(&out.stdout).ok()?;
            let waiting = status["steps"]
                .as_array()?
                .iter()
                .any(|s| s["id"] == step && s["status"] == "waiting_approval");
            waiting.then_some(status)
        },
    )
    .await
}

/// A gated run followed with `--wait`, once it shows its approval step waiting.
async fn follow_gated(
    server: &DevServer,
    worker: &TestWorker,
    dir: &Path,
    id: &str,
) -> anyhow::Result<Follower> {
    let file = write(dir, "gated.yaml", GATED);
    let follower = Follower::start(command(
        server,
        &[
            "pipeline",
            "run",
            &file,
            "--task-queue",
            &worker.task_queue,
            "--id",
            id,
            "--wait",
        ],
    ))?;
    follower.shows("approve waiting_approval").await?;
    Ok(follower)
}

/// Refused: a param a started step read, a wrong type, a step not waiting.
#[tokio::test(flavor = "multi_thread")]
async fn steering_that_does_not_apply_is_refused_with_exit_status_2() -> anyhow::Result<()> {
    let (server, worker, _plugins, dir) = setup().await?;
    let id = unique("gated-refused");
    let _followed = follow_gated(server, &worker, dir.path(), &id).await?;
    let status = wait_for_approval(server, &id, "approve").await?;
    assert_eq!(status["state"], "running");
    assert_eq!(status["steps"][0]["attempt"], 1);

    let out = cli(server, &["pipeline", "set-param", &id, "threshold", "0.5"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains(
            "refused set-param: param `threshold` is read by steps that already started: approve"
        ),
        "{out:?}"
    );
    let out = cli(server, &["pipeline", "set-param", &id, "label", "3"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("param `label` is a string"), "{out:?}");
    let out = cli(server, &["pipeline", "approve", &id, "register"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("not waiting for approval"), "{out:?}");
    worker.stop().await
}

/// Followed while a person changes a param no started step read and approves from another
/// shell.
#[tokio::test(flavor = "multi_thread")]
async fn a_person_changes_a_param_and_approves_from_the_cli() -> anyhow::Result<()> {
    let (server, worker, _plugins, dir) = setup().await?;
    let id = unique("gated-yes");
    let approved = follow_gated(server, &worker, dir.path(), &id).await?;
    wait_for_approval(server, &id, "approve").await?;
    let out = cli(server, &["pipeline", "set-param", &id, "label", "v2"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(r#"param `label`: "v1" -> "v2""#),
        "{out:?}"
    );
    let out = cli(
        server,
        &[
            "pipeline",
            "approve",
            &id,
            "approve",
            "--comment",
            "metrics checked",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("step `approve`: succeeded"), "{out:?}");
    let followed = approved.finish().await;
    assert_eq!(followed.code, 0, "{followed:?}");
    let lines = progress_lines(&followed.stdout);
    assert!(
        lines.contains(&"approve succeeded: approved by ana: metrics checked"),
        "{followed:?}"
    );
    let register = cli(server, &["pipeline", "output", &id, "register"]).await;
    assert!(register.stdout.contains(r#""label": "v2""#), "{register:?}");
    let table = cli(server, &["pipeline", "status", &id]).await;
    assert!(
        table.stdout.contains("pipeline `gated`: succeeded"),
        "{table:?}"
    );
    assert!(
        table.stdout.contains("approved by ana: metrics checked"),
        "{table:?}"
    );
    worker.stop().await
}

/// The server goes away under a followed run and comes back on the same port and database
/// (a restart, as clients see it): the follower says it is retrying, waits, and exits with the
/// run's own outcome. A private server: the shared one is never stopped.
#[tokio::test(flavor = "multi_thread")]
async fn a_followed_run_rides_out_a_server_restart() -> anyhow::Result<()> {
    let state = tempfile::tempdir()?;
    let db = state.path().join("temporal.db");
    let port = mlx_e2e::free_port();
    let server = DevServer::start_on(port, Some(&db)).await?;
    let plugins = PluginsDir::with(&["testkit"]);
    let worker = TestWorker::start(&server, plugins.path()).await?;
    let id = unique("gated-blip");
    // Waiting for a person: nothing moves while the server is away, so the outage is the
    // test's to choose.
    let mut followed = follow_gated(&server, &worker, state.path(), &id).await?;

    drop(server);
    // Several seconds down: the follower has retried for at least five of them.
    followed
        .says("a retry notice after 5 s or more", |line| {
            line.strip_prefix("server unreachable, retrying (")
                .and_then(|rest| rest.split_once(' '))
                .and_then(|(seconds, _)| seconds.parse::<u64>().ok())
                .is_some_and(|seconds| seconds >= 5)
        })
        .await?;
    let server = DevServer::start_on(port, Some(&db)).await?;
    let out = cli(&server, &["pipeline", "approve", &id, "approve"]).await;
    assert_eq!(out.code, 0, "{out:?}");

    let followed = followed.finish().await;
    assert_eq!(followed.code, 0, "{followed:?}");
    assert!(
        followed.stdout.contains("pipeline succeeded"),
        "{followed:?}"
    );
    assert!(
        followed.stderr.contains("server reachable again after"),
        "{followed:?}"
    );
    worker.stop().await
}

/// Rejected: the approval step fails, and with it the followed run (exit 1).
#[tokio::test(flavor = "multi_thread")]
async fn a_rejection_from_the_cli_fails_the_followed_run() -> anyhow::Result<()> {
    let (server, worker, _plugins, dir) = setup().await?;
    let id = unique("gated-no");
    let rejected = follow_gated(server, &worker, dir.path(), &id).await?;
    let out = cli(
        server,
        &[
            "pipeline",
            "reject",
            &id,
            "approve",
            "--by",
            "bo",
            "--comment",
            "too low",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let followed = rejected.finish().await;
    assert_eq!(followed.code, 1, "{followed:?}");
    assert!(
        followed
            .stdout
            .contains("pipeline failed: step `approve` failed: rejected by bo: too low"),
        "{followed:?}"
    );
    worker.stop().await
}

/// Fails once, then waits a minute before its second attempt: a window in which the step is
/// running on attempt 2 as far as the server knows, and the workflow does not.
const RETRYING: &str = r#"{
  "name": "retrying",
  "steps": [
    {"id": "flaky", "plugin": "testkit", "operation": "checkpoint",
     "input": {"steps": 1, "fail_attempts": 1},
     "retry": {"initial_interval_secs": 60, "max_attempts": 2}},
    {"id": "after", "plugin": "testkit", "operation": "echo", "depends_on": ["flaky"]}
  ]
}"#;

async fn status_json(server: &DevServer, id: &str) -> Option<Value> {
    let out = cli(server, &["pipeline", "status", id, "--json"]).await;
    serde_json::from_str(&out.stdout).ok()
}

/// Starts RETRYING (without waiting) and returns its id once `flaky` is on attempt 2 (in its
/// retry backoff), with that step's status.
async fn retrying(
    server: &DevServer,
    worker: &TestWorker,
    dir: &Path,
) -> anyhow::Result<(String, Value)> {
    let file = write(dir, "retrying.json", RETRYING);
    let id = unique("retrying");
    let out = cli(
        server,
        &[
            "pipeline",
            "run",
            &file,
            "--task-queue",
            &worker.task_queue,
            "--id",
            &id,
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("run id:      "), "{out:?}");
    let flaky = eventually(Duration::from_secs(60), "flaky on attempt 2", || async {
        let status = status_json(server, &id).await?;
        let flaky = status["steps"][0].clone();
        (flaky["attempt"] == 2).then_some(flaky)
    })
    .await?;
    Ok((id, flaky))
}

/// The attempt and the last failure come from the server's pending activity.
#[tokio::test(flavor = "multi_thread")]
async fn status_shows_a_step_waiting_to_retry_with_its_last_failure() -> anyhow::Result<()> {
    let (server, worker, _plugins, dir) = setup().await?;
    let (id, flaky) = retrying(server, &worker, dir.path()).await?;
    assert_eq!(flaky["status"], "running");
    let note = flaky["note"].as_str().unwrap_or_default();
    assert!(note.starts_with("retry at "), "{flaky:#}");
    assert!(note.contains("last failure: attempt 1 fails"), "{flaky:#}");
    let table = cli(server, &["pipeline", "status", &id]).await;
    let row = table
        .stdout
        .lines()
        .find(|l| l.starts_with("flaky "))
        .unwrap_or_else(|| panic!("{table:?}"));
    assert!(
        row.contains(" running ") && row.contains(" 2 "),
        "{table:?}"
    );
    assert!(row.contains("retry at"), "{table:?}");
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_is_paused_and_resumed_from_the_cli() -> anyhow::Result<()> {
    let (server, worker, _plugins, dir) = setup().await?;
    let (id, _) = retrying(server, &worker, dir.path()).await?;
    for (command, state) in [("pause", "paused"), ("resume", "running")] {
        let out = cli(server, &["pipeline", command, &id]).await;
        assert_eq!(out.code, 0, "{out:?}");
        eventually(Duration::from_secs(30), state, || async {
            let status = status_json(server, &id).await?;
            (status["state"] == state).then_some(())
        })
        .await?;
    }
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_step_waiting_to_retry_is_cancelled_from_the_cli() -> anyhow::Result<()> {
    let (server, worker, _plugins, dir) = setup().await?;
    let (id, _) = retrying(server, &worker, dir.path()).await?;
    let out = cli(
        server,
        &[
            "pipeline",
            "cancel-step",
            &id,
            "flaky",
            "--comment",
            "no time",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("step `flaky`: cancelling"), "{out:?}");
    let status = eventually(Duration::from_secs(60), "the run failed", || async {
        let status = status_json(server, &id).await?;
        (status["state"] == "failed").then_some(status)
    })
    .await?;
    assert_eq!(status["steps"][0]["status"], "cancelled", "{status:#}");
    let note = status["steps"][0]["note"].as_str().unwrap_or_default();
    assert!(
        note.starts_with("cancelled by ") && note.ends_with(": no time"),
        "{status:#}"
    );
    assert_eq!(status["steps"][1]["status"], "pending", "{status:#}");
    let out = cli(server, &["pipeline", "cancel-step", &id, "flaky"]).await;
    assert_eq!(out.code, 1, "a closed run takes no updates: {out:?}");
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_starts_pipeline_runs_until_it_is_deleted() -> anyhow::Result<()> {
    let (server, worker, _plugins, dir) = setup().await?;
    let client = server.client().await?;
    let toml = write(dir.path(), "greet.toml", TOML);
    let name = unique("every-2s");
    let out = cli(
        server,
        &[
            "schedule",
            "create",
            &name,
            &toml,
            "--every",
            "2s",
            "--task-queue",
            &worker.task_queue,
            "--param",
            "who=schedule",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "created schedule `{name}`: every 2s; starts pipeline `toml-greet`"
        )),
        "{out:?}"
    );

    // The server fires it: a run it started completes, with the overridden param.
    let schedule = client.get_schedule_handle(name.clone());
    let run = eventually(
        Duration::from_secs(60),
        "a scheduled run completed",
        || async {
            let description = schedule.describe(RpcOptions::default()).await.ok()?;
            for action in description.recent_actions() {
                let handle =
                    client.get_workflow_handle::<PipelineWorkflow>(action.workflow_id.clone());
                let described = handle
                    .describe(WorkflowDescribeOptions::default())
                    .await
                    .ok()?;
                if described.status() == WorkflowExecutionStatus::Completed {
                    return Some(action.workflow_id);
                }
            }
            None
        },
    )
    .await?;
    assert!(run.starts_with(&format!("{name}-")), "{run}");
    let output = cli(server, &["pipeline", "output", &run, "hello"]).await;
    assert!(output.stdout.contains("hello schedule"), "{output:?}");

    // `list` reads visibility, which lags a moment behind.
    let listed = format!("{name} ");
    eventually(Duration::from_secs(30), "the schedule listed", || async {
        let out = cli(server, &["schedule", "list"]).await;
        let line = out.stdout.lines().find(|l| l.starts_with(&listed))?;
        (line.contains("every 2s") && line.ends_with("no")).then_some(())
    })
    .await?;
    let out = cli(server, &["schedule", "describe", &name]).await;
    assert_eq!(out.code, 0, "{out:?}");
    for expected in [
        "times:     every 2s",
        "PipelineWorkflow `toml-greet`",
        "params:    who=\"schedule\"",
        "next runs: ",
    ] {
        assert!(
            out.stdout.contains(expected),
            "missing {expected:?}: {out:?}"
        );
    }
    let run_line = out
        .stdout
        .lines()
        .find(|l| l.contains(&run))
        .unwrap_or_else(|| panic!("{run} not among recent runs: {out:?}"));
    assert!(run_line.ends_with("completed"), "{out:?}");

    let out = cli(server, &["schedule", "delete", &name]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let out = cli(server, &["schedule", "describe", &name]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains(&format!("schedule `{name}` not found")),
        "{out:?}"
    );
    eventually(Duration::from_secs(30), "the schedule unlisted", || async {
        let out = cli(server, &["schedule", "list"]).await;
        (!out.stdout.contains(&name)).then_some(())
    })
    .await?;
    worker.stop().await
}
