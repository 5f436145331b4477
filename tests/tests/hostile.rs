//! The hostile-plugin suite: each attack runs as a real activity next to a healthy one. For
//! each, the attack fails with its documented failure type, the worker stays up, and the
//! healthy activity running at the same time completes within its own deadline.

use mlx_e2e::{
    DevServer, PluginsDir, TestWorker, find, run_step, single_failed_attempt, workspace_root,
};
use serde_json::{Value, json};

/// Host limits for the hostile plugin, small so that bombs and loops end quickly.
const HOSTILE_MANIFEST: &str = r#"
[[filesystem]]
host = "data"
guest = "/data"
access = "read-only"

[limits]
memory_mb = 64
timeout_secs = 3
"#;

/// The HTTP probe may reach one literal loopback origin (nothing listens there), and two
/// names that the system resolver turns into loopback and the metadata address (numeric forms
/// inet_aton accepts). Every request below is refused before a connection is attempted.
const HTTP_MANIFEST: &str =
    "[http]\nallow = [\"http://127.0.0.1:9\", \"http://2130706433:9\", \"http://2852039166\"]\n";

struct Attack {
    plugin: &'static str,
    operation: &'static str,
    input: Value,
    failure_type: &'static str,
}

fn attacks() -> Vec<Attack> {
    let denied = |operation: &'static str, input: Value| Attack {
        plugin: "hostile",
        operation,
        input,
        failure_type: "CapabilityDenied",
    };
    let host = |plugin: &'static str, operation: &'static str, input: Value, failure_type| Attack {
        plugin,
        operation,
        input,
        failure_type,
    };
    let http = |url: &str, headers: Value, failure_type| Attack {
        plugin: "http-probe",
        operation: "get",
        input: json!({"url": url, "headers": headers}),
        failure_type,
    };
    vec![
        // Outbound HTTP: the probe may reach only http://127.0.0.1:9 (see HTTP_MANIFEST).
        http("http://127.0.0.1:8/", json!([]), "CapabilityDenied"),
        http("http://localhost:9/", json!([]), "CapabilityDenied"),
        http(
            "http://169.254.169.254/latest/meta-data/",
            json!([]),
            "CapabilityDenied",
        ),
        http("http://10.0.0.1/", json!([]), "CapabilityDenied"),
        // Allowed names that resolve to loopback and to the metadata service.
        http("http://2130706433:9/", json!([]), "CapabilityDenied"),
        http(
            "http://2852039166/latest/meta-data/",
            json!([]),
            "CapabilityDenied",
        ),
        http(
            "http://127.0.0.1:9/",
            json!([["host", "169.254.169.254"]]),
            "HeaderRefused",
        ),
        denied("dotdot_escape", json!({})),
        denied("absolute_escape", json!({})),
        denied("symlink_escape", json!({"dir": "/data", "link": "escape"})),
        denied("create_symlink_escape", json!({"dir": "/artifacts"})),
        denied("trailing_slash_escape", json!({})),
        denied("hardlink_escape", json!({})),
        denied("truncate_readonly", json!({"path": "/data/victim.csv"})),
        denied("write_readonly", json!({})),
        denied("read_env", json!({})),
        host(
            "hostile",
            "memory_bomb",
            json!({}),
            "PluginMemoryLimitExceeded",
        ),
        // Counts far beyond what any machine gets through before the 3 s deadline: the host
        // calls are cheap once rate-limited, so a smaller flood could finish and "succeed".
        host(
            "hostile",
            "heartbeat_spam",
            json!({"count": 10_000_000_000u64}),
            "PluginDeadlineExceeded",
        ),
        host(
            "hostile",
            "log_flood",
            json!({"lines": 10_000_000_000u64, "line_bytes": 1000}),
            "PluginDeadlineExceeded",
        ),
        host(
            "hostile",
            "huge_output",
            json!({"mb": 4}),
            "PluginOutputTooLarge",
        ),
        host("hostile", "abort", json!({}), "PluginTrapped"),
        host(
            "hostile",
            "exit",
            json!({"code": 0}),
            "PluginContractViolation",
        ),
        host(
            "hostile",
            "busy_with_host_calls",
            json!({}),
            "PluginDeadlineExceeded",
        ),
        host("testkit", "spin", json!({}), "PluginDeadlineExceeded"),
        host("testkit", "recurse", json!({}), "PluginStackOverflow"),
        host(
            "testkit",
            "panic",
            json!({"message": "hostile"}),
            "PluginTrapped",
        ),
        host(
            "testkit",
            "raw_heartbeat",
            json!({"text": "not json"}),
            "PluginContractViolation",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_attack_is_contained_and_a_neighbour_completes_on_time() -> anyhow::Result<()> {
    let plugins = PluginsDir::with(&["hostile", "testkit", "http_probe"]);
    // The hostile plugin's data: a copy of a real file to attack, and a symlink that points
    // out of the grant.
    let data = plugins.path().join("data");
    std::fs::create_dir(&data)?;
    let victim = data.join("victim.csv");
    std::fs::copy(workspace_root().join("data/iris.csv"), &victim)?;
    let victim_len = std::fs::metadata(&victim)?.len();
    std::os::unix::fs::symlink("/etc", data.join("escape"))?;
    plugins.write_manifest("hostile", HOSTILE_MANIFEST);
    plugins.write_manifest("testkit", "[limits]\ntimeout_secs = 3\n");
    plugins.write_manifest("http_probe", HTTP_MANIFEST);

    let server = DevServer::start().await?;
    let worker = TestWorker::start(&server, plugins.path()).await?;
    for (i, attack) in attacks().into_iter().enumerate() {
        let step = json!({
            "plugin": attack.plugin, "operation": attack.operation, "input": attack.input,
            "start_to_close_secs": 30,
        });
        // ~1 s of real work with heartbeats, due well within its 20 s deadline.
        let healthy = json!({
            "plugin": "testkit", "operation": "wait_for_cancel",
            "input": {"max_beats": 10, "interval_ms": 100},
            "start_to_close_secs": 20, "heartbeat_timeout_secs": 5,
        });
        let attack_id = format!("attack-{i}-{}", attack.operation);
        let healthy_id = format!("healthy-{i}");
        let (attacked, healthy) = tokio::join!(
            run_step(&server, &worker, &attack_id, step),
            run_step(&server, &worker, &healthy_id, healthy),
        );
        let (result, events_) = attacked?;
        assert!(
            result.is_err(),
            "{}: the attack succeeded: {result:?}",
            attack.operation
        );
        let failure = single_failed_attempt(&events_);
        assert_eq!(
            find(&failure, "type"),
            Some(&json!(attack.failure_type)),
            "{}: {failure:#}",
            attack.operation
        );
        let (healthy, _) = healthy?;
        let healthy =
            healthy.map_err(|e| anyhow::anyhow!("{}: neighbour failed: {e}", attack.operation))?;
        assert_eq!(healthy["beats"], 10, "{}", attack.operation);
    }
    assert_eq!(
        std::fs::metadata(&victim)?.len(),
        victim_len,
        "read-only file was changed"
    );
    assert_eq!(
        worker.runtime.active_invocations(),
        0,
        "no instance outlived its activity"
    );
    worker.stop().await
}
