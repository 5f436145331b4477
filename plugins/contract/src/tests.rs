//! The contract's cases, natively, on a detached context standing in for the worker.

use mlx_plugin_sdk::{Context, ErrorKind, Plugin, PluginError};
use serde_json::{Value, json};

use crate::*;

fn ctx() -> Context {
    Context::detached(1, None)
}

fn kind_and_type(error: &PluginError) -> (ErrorKind, &str) {
    (error.kind, error.type_name.as_str())
}

#[test]
fn lists_the_contract_operations_in_order() {
    let info = ContractRust::info();
    let names: Vec<&str> = info.operations.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "echo",
            "fail",
            "throw",
            "checkpoint",
            "wait_for_cancel",
            "config",
            "secret",
            "log",
            "connect",
            "read_file"
        ]
    );
    for op in &info.operations {
        assert_eq!(
            op.input_schema["additionalProperties"], false,
            "{}",
            op.name
        );
    }
    let wait = &info.operations[4].description;
    assert!(wait.contains("Retryable Cancelled"), "{wait}");
}

#[test]
fn echo_returns_value_times_and_attempt() {
    let ctx = Context::detached(3, None);
    let out = ctx.call::<Echo>(json!({"value": {"a": [1]}})).unwrap();
    assert_eq!(out, json!({"value": {"a": [1]}, "times": 1, "attempt": 3}));
    for bad in [
        json!({"value": 1, "times": 11}),
        json!({"times": 1}),
        json!(null),
    ] {
        let err = ctx.call::<Echo>(bad.clone()).unwrap_err();
        assert_eq!(
            kind_and_type(&err),
            (ErrorKind::InvalidInput, "InvalidInput"),
            "{bad}"
        );
    }
    let err = ctx
        .call::<Echo>(json!({"value": 1, "extra": 2}))
        .unwrap_err();
    assert!(err.message.contains("extra"), "{}", err.message);
}

#[test]
fn fail_returns_the_error_it_is_told() {
    for (kind, expected) in [
        ("invalid_input", ErrorKind::InvalidInput),
        ("retryable", ErrorKind::Retryable),
        ("permanent", ErrorKind::Permanent),
    ] {
        let input = json!({"kind": kind, "type": "Boom", "message": "m", "details": {"x": 1}});
        let err = ctx().call::<Fail>(input).unwrap_err();
        assert_eq!(kind_and_type(&err), (expected, "Boom"));
        assert_eq!(
            (err.message.as_str(), err.details),
            ("m", Some(json!({"x": 1})))
        );
    }
    let err = ctx()
        .call::<Fail>(json!({"kind": "fatal", "type": "T", "message": "m"}))
        .unwrap_err();
    assert_eq!(err.type_name, "InvalidInput");
}

#[test]
#[should_panic(expected = "boom")]
fn throw_panics() {
    let _ = ctx().call::<Throw>(json!({"message": "boom"}));
}

#[test]
fn checkpoint_fails_once_then_resumes_from_the_last_heartbeat() {
    let first = ctx();
    let input = json!({"steps": 5, "fail_at": 3});
    let err = first.call::<Checkpoint>(input.clone()).unwrap_err();
    assert_eq!(kind_and_type(&err), (ErrorKind::Retryable, "Interrupted"));
    assert_eq!(
        first.recorded_heartbeats(),
        [json!({"done": 1}), json!({"done": 2}), json!({"done": 3})]
    );

    let last = first.recorded_heartbeats().last().unwrap().to_string();
    let second = Context::detached(2, Some(&last));
    let out = second.call::<Checkpoint>(input).unwrap();
    assert_eq!(out, json!({"resumed_from": 3, "done": 5, "attempt": 2}));
    assert_eq!(
        second.recorded_heartbeats(),
        [json!({"done": 4}), json!({"done": 5})]
    );
}

#[test]
fn wait_for_cancel_stops_when_cancelled_or_gives_up() {
    let ctx = Context::detached(1, None).cancel_after(3);
    let err = ctx.call::<WaitForCancel>(Value::Null).unwrap_err();
    assert_eq!(kind_and_type(&err), (ErrorKind::Retryable, "Cancelled"));
    assert_eq!(ctx.recorded_heartbeats().len(), 3);

    let err = self::ctx()
        .call::<WaitForCancel>(json!({"max_heartbeats": 2}))
        .unwrap_err();
    assert_eq!(kind_and_type(&err), (ErrorKind::Permanent, "NotCancelled"));
}

#[test]
fn config_and_secret_read_what_is_granted_and_never_reveal_a_secret() {
    let ctx = ctx()
        .with_config("greeting", "hello")
        .with_secret("token", "s3cr3t-é");
    assert_eq!(
        ctx.call::<Config>(json!({"key": "greeting"})).unwrap(),
        json!({"value": "hello"})
    );
    assert_eq!(
        ctx.call::<Config>(json!({"key": "other"})).unwrap(),
        json!({"value": null})
    );
    let out = ctx.call::<Secret>(json!({"name": "token"})).unwrap();
    assert_eq!(out, json!({"present": true, "length": 8}));
    assert_eq!(
        ctx.call::<Secret>(json!({"name": "nope"})).unwrap(),
        json!({"present": false, "length": null})
    );
    assert!(
        !format!("{ctx:?}").contains("s3cr3t"),
        "secrets stay out of Debug"
    );
}

#[test]
fn log_logs_with_fields() {
    let input = json!({"message": "hi", "fields": {"k": "v"}});
    assert_eq!(ctx().call::<Log>(input).unwrap(), json!({"logged": true}));
    let err = ctx()
        .call::<Log>(json!({"message": "hi", "fields": {"k": 1}}))
        .unwrap_err();
    assert_eq!(err.type_name, "InvalidInput");
}

#[test]
fn connect_reports_a_refused_connection_as_connect_failed() {
    // A port just released is closed: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = ctx().call::<Connect>(json!({"port": port})).unwrap_err();
    assert_eq!(kind_and_type(&err), (ErrorKind::Permanent, "ConnectFailed"));
    let err = ctx().call::<Connect>(json!({"port": 0})).unwrap_err();
    assert_eq!(
        err.type_name, "InvalidInput",
        "port 0 is out of the schema's range"
    );
}

#[test]
fn read_file_counts_bytes_or_names_the_os_error() {
    let path = std::env::temp_dir().join(format!("contract-rust-{}", std::process::id()));
    std::fs::write(&path, b"12345").unwrap();
    let out = ctx().call::<ReadFile>(json!({"path": path})).unwrap();
    assert_eq!(out, json!({"bytes": 5}));
    std::fs::remove_file(&path).unwrap();
    let err = ctx().call::<ReadFile>(json!({"path": path})).unwrap_err();
    assert_eq!(kind_and_type(&err), (ErrorKind::Permanent, "ReadFailed"));
    assert!(err.details.unwrap()["errno"].is_number());
}
