//! One behaviour, three languages: the contract plugins of plugins/CONTRACT.md, written with
//! the Rust, Python and JavaScript SDKs, run through the same cases in the real runtime.
//! A case that passes for one language and fails for another is an SDK that drifted.
//!
//! The components are built by `make plugins`, `make python-plugins` and `make js-plugins`;
//! these tests fail, naming the command, when one is missing or older than its sources.

use std::{
    net::TcpListener,
    path::PathBuf,
    time::{Duration, Instant},
};

use mlx_e2e::{
    components::{Hosted, built_component, guest_log_line, invoke_logged, one_compile_at_a_time},
    workspace_root,
};
use mlx_runtime::{
    contract::InvocationContext,
    failure::{Failure, InvocationError},
    sandbox::capabilities::activity::ActivitySignals,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Lang {
    Rust,
    Python,
    Js,
}

const SECRET: &str = "s3cret-token";

impl Lang {
    /// The built component, its source directories and their files' extensions (newest
    /// wins), and the command that builds it.
    fn component(
        self,
    ) -> (
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        &'static str,
    ) {
        match self {
            Lang::Rust => (
                "plugins/target/wasm32-wasip2/release/contract_rust.wasm",
                &["plugins/contract/src", "plugins/sdk/src"],
                &["rs"],
                "make plugins",
            ),
            Lang::Python => (
                "plugins/target/python/contract.wasm",
                &["plugins/python/contract", "plugins/python/mlx_plugin"],
                &["py"],
                "make python-plugins",
            ),
            Lang::Js => (
                "plugins/target/js/contract.wasm",
                &["plugins/js/contract", "plugins/js/mlx_plugin"],
                &["js"],
                "make js-plugins",
            ),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Lang::Rust => "contract-rust",
            Lang::Python => "contract-python",
            Lang::Js => "contract-js",
        }
    }

    /// Python and JavaScript catch what a handler throws; a Rust panic is a trap by design.
    fn uncaught_is_an_error(self) -> bool {
        self != Lang::Rust
    }
}

fn built(lang: Lang) -> PathBuf {
    let (file, sources, extensions, build) = lang.component();
    built_component(file, sources, extensions, build)
}

struct Contract {
    hosted: Hosted,
    _secrets: tempfile::TempDir,
}

/// The plugin with the manifest every contract plugin gets: a config value, a secret from a
/// file, and the bundled datasets read-only at /data.
async fn contract(lang: Lang) -> Contract {
    let secrets = tempfile::tempdir().unwrap();
    let token = secrets.path().join("token.txt");
    std::fs::write(&token, SECRET).unwrap();
    let manifest = format!(
        "[config]\ngreeting = \"hello\"\n\n[secrets]\ntoken = {{ file = {:?} }}\n\n\
         [[filesystem]]\nhost = {:?}\nguest = \"/data\"\naccess = \"read-only\"\n",
        token.display().to_string(),
        workspace_root().join("data").display().to_string()
    );
    Contract {
        hosted: Hosted::load(&built(lang), lang.name(), Some(&manifest)).await,
        _secrets: secrets,
    }
}

/// What an invocation returned, with every heartbeat the host forwarded (oldest first).
struct Run {
    result: Result<Value, InvocationError>,
    heartbeats: Vec<Value>,
}

impl Run {
    fn ok(&self) -> &Value {
        match &self.result {
            Ok(v) => v,
            Err(e) => panic!("expected output, got {e}: {:#?}", e.failure()),
        }
    }

    fn failure(&self) -> Failure {
        match &self.result {
            Ok(v) => panic!("expected a failure, got {v}"),
            Err(e) => e.failure(),
        }
    }
}

impl Contract {
    async fn call(&self, operation: &str, input: Value) -> Run {
        self.call_with(operation, input, 1, None).await
    }

    async fn call_with(
        &self,
        operation: &str,
        input: Value,
        attempt: u32,
        last_heartbeat: Option<Value>,
    ) -> Run {
        let (result, heartbeats) = self
            .hosted
            .invoke_attempt(operation, input, attempt, last_heartbeat)
            .await;
        Run { result, heartbeats }
    }
}

async fn describes_the_contract_operations(lang: Lang) {
    let c = contract(lang).await;
    assert_eq!(c.hosted.plugin.info.name, lang.name());
    let mut names = c.hosted.plugin.info.operation_names();
    names.sort();
    assert_eq!(
        names,
        [
            "checkpoint",
            "config",
            "connect",
            "echo",
            "fail",
            "log",
            "read_file",
            "secret",
            "throw",
            "wait_for_cancel",
        ]
    );
}

async fn echo_returns_its_input_and_the_attempt(lang: Lang) {
    let c = contract(lang).await;
    let value = json!({"nested": [1, "two", null], "é": 3.5});
    let run = c.call("echo", json!({"value": value, "times": 2})).await;
    assert_eq!(run.ok(), &json!({"value": value, "times": 2, "attempt": 1}));
    let run = c.call_with("echo", json!({"value": 1}), 3, None).await;
    assert_eq!(run.ok(), &json!({"value": 1, "times": 1, "attempt": 3}));
}

/// The worker checks inputs against the declared schema, so every language refuses the same
/// input with the same failure, before an instance exists.
async fn a_bad_input_is_refused_by_the_schema_with_its_path_and_rule(lang: Lang) {
    let c = contract(lang).await;
    for (input, path, rule) in [
        (json!({"value": 1, "times": 0}), "/times", "minimum"),
        (json!({"value": 1, "times": 11}), "/times", "maximum"),
        (
            json!({"value": 1, "extra": true}),
            "(input)",
            "additionalProperties",
        ),
        (json!({"times": 2}), "(input)", "required"),
        (Value::Null, "(input)", "required"),
    ] {
        let failure = c.call("echo", input.clone()).await.failure();
        assert_eq!(failure.type_name, "InvalidInput", "{input}: {failure:#?}");
        assert!(!failure.retryable);
        assert!(
            failure.message.contains(&format!("{path}: "))
                && failure.message.contains(&format!("({rule})")),
            "{input}: {}",
            failure.message
        );
        assert_eq!(
            failure.details.as_ref().unwrap()["violations"][0]["rule"],
            rule
        );
    }
}

async fn typed_errors_keep_their_kind_type_message_and_details(lang: Lang) {
    let c = contract(lang).await;
    for (kind, retryable) in [
        ("invalid_input", false),
        ("retryable", true),
        ("permanent", false),
    ] {
        let input = json!({
            "kind": kind, "type": "ModelDiverged", "message": "loss is NaN at step 7",
            "details": {"step": 7},
        });
        let failure = c.call("fail", input).await.failure();
        assert_eq!(
            (
                failure.type_name.as_str(),
                failure.retryable,
                failure.message.as_str()
            ),
            ("ModelDiverged", retryable, "loss is NaN at step 7"),
            "{kind}: {failure:#?}"
        );
        let details = failure.details.unwrap();
        assert_eq!(details["kind"], kind, "{details}");
        assert_eq!(details["details"], json!({"step": 7}));
    }
}

async fn an_uncaught_exception_is_a_permanent_error_not_a_retried_trap(lang: Lang) {
    let c = contract(lang).await;
    let failure = c
        .call("throw", json!({"message": "column 'age' has no values"}))
        .await
        .failure();
    assert!(
        failure.message.contains("column 'age' has no values"),
        "{failure:#?}"
    );
    if lang.uncaught_is_an_error() {
        assert_eq!(failure.type_name, "UncaughtException", "{failure:#?}");
        assert!(!failure.retryable);
        let details = &failure.details.as_ref().unwrap()["details"];
        let trace = details["traceback"]
            .as_str()
            .or(details["stack"].as_str())
            .unwrap_or_else(|| panic!("no traceback or stack in {details}"));
        assert!(trace.contains("column 'age' has no values"), "{trace}");
    } else {
        assert_eq!(failure.type_name, "PluginTrapped", "{failure:#?}");
    }
}

/// Attempt 1 checkpoints and fails; attempt 2 gets the last checkpoint and resumes from it.
async fn a_retry_resumes_from_the_last_heartbeat(lang: Lang) {
    let c = contract(lang).await;
    let first = c
        .call("checkpoint", json!({"steps": 5, "fail_at": 3}))
        .await;
    let failure = first.failure();
    assert_eq!(
        (failure.type_name.as_str(), failure.retryable),
        ("Interrupted", true),
        "{failure:#?}"
    );
    let last = first.heartbeats.last().cloned();
    assert_eq!(last, Some(json!({"done": 3})), "{:?}", first.heartbeats);
    let second = c
        .call_with("checkpoint", json!({"steps": 5, "fail_at": 3}), 2, last)
        .await;
    assert_eq!(
        second.ok(),
        &json!({"resumed_from": 3, "done": 5, "attempt": 2})
    );
    assert_eq!(second.heartbeats.last(), Some(&json!({"done": 5})));
}

/// Cancellation reaches the plugin through its heartbeat, and the plugin stops by itself
/// (the host would interrupt it after a grace period otherwise).
async fn cancellation_is_seen_at_the_next_heartbeat(lang: Lang) {
    let c = contract(lang).await;
    let cancel = CancellationToken::new();
    let (signals, mut beats) = ActivitySignals::new(cancel.clone());
    let ctx = InvocationContext {
        workflow_id: "wf-cancel".into(),
        activity_id: "1".into(),
        attempt: 1,
        last_heartbeat_details: None,
    };
    let canceller = async {
        // Cancel once the plugin is demonstrably running (it has heartbeated).
        while beats.changed().await.is_ok() {
            if beats.borrow_and_update().is_some() {
                cancel.cancel();
                return;
            }
        }
    };
    let started = Instant::now();
    let input = json!({});
    let invoke = c.hosted.runtime.invoke(
        &c.hosted.plugin,
        "wait_for_cancel",
        &input,
        &ctx,
        signals,
        None,
    );
    let (result, ()) = tokio::join!(invoke, canceller);
    match result {
        Err(InvocationError::Cancelled {
            acknowledged_by_plugin: true,
        }) => {}
        other => panic!("expected a cancellation the plugin acknowledged, got {other:?}"),
    }
    // Far below the default of 100000 heartbeats at 10 ms: the plugin did not run out its loop.
    assert!(started.elapsed() < Duration::from_secs(600));
}

async fn config_and_secrets_are_what_the_manifest_grants(lang: Lang) {
    let c = contract(lang).await;
    assert_eq!(
        c.call("config", json!({"key": "greeting"})).await.ok(),
        &json!({"value": "hello"})
    );
    assert_eq!(
        c.call("config", json!({"key": "HOME"})).await.ok(),
        &json!({"value": null})
    );
    assert_eq!(
        c.call("secret", json!({"name": "token"})).await.ok(),
        &json!({"present": true, "length": SECRET.len()})
    );
    assert_eq!(
        c.call("secret", json!({"name": "AWS_SECRET_ACCESS_KEY"}))
            .await
            .ok(),
        &json!({"present": false, "length": null})
    );
}

/// The network is denied without a grant: the host refuses the connection before a socket
/// exists and reports `CapabilityDenied` whatever the language made of the refusal.
async fn a_connection_without_a_grant_is_denied(lang: Lang) {
    let c = contract(lang).await;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let failure = c
        .call("connect", json!({"host": "127.0.0.1", "port": port}))
        .await
        .failure();
    assert_eq!(failure.type_name, "CapabilityDenied", "{failure:#?}");
    assert!(!failure.retryable);
    assert!(
        listener.accept().is_err(),
        "the plugin reached a socket on the worker's machine"
    );
}

async fn files_are_reachable_only_under_granted_directories(lang: Lang) {
    let c = contract(lang).await;
    let iris = std::fs::metadata(workspace_root().join("data/iris.csv"))
        .unwrap()
        .len();
    assert_eq!(
        c.call("read_file", json!({"path": "/data/iris.csv"}))
            .await
            .ok(),
        &json!({"bytes": iris})
    );
    for path in [
        "/etc/passwd",
        "/data/../../etc/passwd",
        "/proc/self/environ",
    ] {
        let failure = c.call("read_file", json!({"path": path})).await.failure();
        assert_eq!(
            (failure.type_name.as_str(), failure.retryable),
            ("ReadFailed", false),
            "{path}: {failure:#?}"
        );
    }
}

/// The plugin's log line reaches the worker's log with its fields, as `plugin invoke` (the
/// worker's own logging) writes it.
async fn a_log_line_reaches_the_worker_log_with_its_fields(lang: Lang) {
    let wasm = built(lang);
    let _one_at_a_time = one_compile_at_a_time().await;
    let artifacts = tempfile::tempdir().unwrap();
    let (output, log) = invoke_logged(
        &wasm,
        "log",
        r#"{"message": "epoch finished", "fields": {"epoch": "3", "loss": "0.25"}}"#,
        artifacts.path(),
    );
    let line = guest_log_line(&log, "epoch finished");
    assert!(
        line.contains(" INFO ")
            && line.contains(r#"epoch=\"3\""#)
            && line.contains(r#"loss=\"0.25\""#),
        "{line}"
    );
    assert_eq!(output, json!({"logged": true}));
}

/// Every case above, once per language.
macro_rules! contract_tests {
    ($($lang:ident: $variant:expr),* $(,)?) => {$(
        mod $lang {
            use super::*;

            contract_tests!(@cases $variant;
                describes_the_contract_operations,
                echo_returns_its_input_and_the_attempt,
                a_bad_input_is_refused_by_the_schema_with_its_path_and_rule,
                typed_errors_keep_their_kind_type_message_and_details,
                an_uncaught_exception_is_a_permanent_error_not_a_retried_trap,
                a_retry_resumes_from_the_last_heartbeat,
                cancellation_is_seen_at_the_next_heartbeat,
                config_and_secrets_are_what_the_manifest_grants,
                a_connection_without_a_grant_is_denied,
                files_are_reachable_only_under_granted_directories,
                a_log_line_reaches_the_worker_log_with_its_fields,
            );
        }
    )*};
    (@cases $variant:expr; $($case:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $case() {
            super::$case($variant).await;
        }
    )*};
}

contract_tests!(rust: Lang::Rust, python: Lang::Python, js: Lang::Js);
