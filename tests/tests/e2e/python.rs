//! A Python plugin (componentize-py, the `mlx_plugin` SDK) in the real runtime: the `features`
//! component that `make python-plugins` builds into `plugins/target/python/`. These tests do
//! not build it (that needs the pinned componentize-py in `tools/venv`): they fail, saying so,
//! when it is missing or older than its sources.

use std::path::PathBuf;

use mlx_e2e::{
    components::{Hosted, built_component, guest_log_line, invoke_logged, one_compile_at_a_time},
    workspace_root,
};
use serde_json::{Value, json};

const IRIS_HEADER: &str =
    "sepal length (cm),sepal width (cm),petal length (cm),petal width (cm),target";

/// The built `features` component, checked to be newer than its sources (the plugin, the
/// SDK and the WIT contract).
fn features_wasm() -> PathBuf {
    built_component(
        "plugins/target/python/features.wasm",
        &["plugins/python/features", "plugins/python/mlx_plugin"],
        &["py", "toml"],
        "make python-plugins",
    )
}

async fn features() -> Hosted {
    Hosted::load(&features_wasm(), "features", None).await
}

#[tokio::test]
async fn describes_its_operations_with_schemas() {
    let f = features().await;
    let info = &f.plugin.info;
    assert_eq!(info.name, "features");
    let names: Vec<&str> = info.operations.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["engineer_features", "raise_error"]);
    let engineer = &info.operations[0];
    let input: Value = serde_json::from_str(&engineer.input_schema).unwrap();
    assert_eq!(input["required"], json!(["source"]));
    let output: Value = serde_json::from_str(&engineer.output_schema).unwrap();
    assert!(output["properties"]["stats"].is_object(), "{output:#}");
}

#[tokio::test]
async fn engineers_features_of_a_real_csv_from_the_artifacts() {
    let f = features().await;
    let dataset = f.artifacts().join("dataset");
    std::fs::create_dir_all(&dataset).unwrap();
    std::fs::copy(
        workspace_root().join("data/iris.csv"),
        dataset.join("train.csv"),
    )
    .unwrap();
    let (result, heartbeat) = f
        .invoke(
            "engineer_features",
            json!({"source": "/artifacts/dataset/train.csv", "target": "target"}),
        )
        .await;
    let out = result.unwrap_or_else(|e| panic!("{e}: {:#?}", e.failure()));
    assert_eq!(out["path"], "/artifacts/features/features.csv");
    assert_eq!(out["rows"], 150);
    assert_eq!(out["fitted"], true);
    let mean = out["stats"]["numeric"]["sepal length (cm)"]["mean"]
        .as_f64()
        .unwrap();
    assert!((mean - 5.843_333_333_333_334).abs() < 1e-12, "{mean}");
    assert_eq!(heartbeat, Some(json!({"phase": "read", "rows": 150})));

    // The result is on the host, in the workflow's artifacts directory, standardised.
    let written = std::fs::read_to_string(f.artifacts().join("features/features.csv")).unwrap();
    let mut lines = written.lines();
    assert_eq!(lines.next().unwrap(), IRIS_HEADER);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 150);
    // scikit-learn's StandardScaler on iris, first row, first column.
    let first: f64 = rows[0][0].parse().unwrap();
    assert!((first - -0.900_681_170_297_808_8).abs() < 1e-12, "{first}");
    let column_mean = rows
        .iter()
        .map(|r| r[0].parse::<f64>().unwrap())
        .sum::<f64>()
        / 150.0;
    assert!(column_mean.abs() < 1e-12, "{column_mean}");
    assert_eq!(rows[149][4], "virginica");

    // The test set is transformed with the training set's statistics.
    // One row: sepal length at the training mean, sepal width missing (imputed to the mean).
    let test_csv = format!("{IRIS_HEADER}\n5.843333333333334,,1,1,setosa\n");
    std::fs::write(dataset.join("test.csv"), test_csv).unwrap();
    let (result, _) = f
        .invoke(
            "engineer_features",
            json!({"source": "/artifacts/dataset/test.csv", "target": "target",
                   "output": "/artifacts/features/test.csv", "stats": out["stats"]}),
        )
        .await;
    let test = result.unwrap_or_else(|e| panic!("{e}: {:#?}", e.failure()));
    assert_eq!(
        (test["rows"].clone(), test["fitted"].clone()),
        (json!(1), json!(false))
    );
    assert_eq!(test["imputed"]["sepal width (cm)"], 1);
    let written = std::fs::read_to_string(f.artifacts().join("features/test.csv")).unwrap();
    let row: Vec<&str> = written.lines().nth(1).unwrap().split(',').collect();
    assert_eq!((row[0], row[1], row[4]), ("0.0", "0.0", "setosa"));

    for (instantiation, duration, peak) in f.timings.0.lock().unwrap().iter() {
        eprintln!(
            "features: instantiation {instantiation:?}, invocation {duration:?}, peak memory \
             {:?} MiB",
            peak.map(|bytes| bytes >> 20)
        );
    }
}

#[tokio::test]
async fn an_uncaught_exception_is_permanent_with_its_traceback_not_a_trap() {
    let f = features().await;
    let (result, _) = f.invoke("raise_error", json!({})).await;
    let err = result.unwrap_err();
    let failure = err.failure();
    assert_eq!(failure.type_name, "UncaughtException", "{failure:#?}");
    assert!(!failure.retryable);
    assert_eq!(failure.message, "ZeroDivisionError: division by zero");
    let details = failure.details.expect("details");
    assert_eq!(details["kind"], "permanent", "{details:#}");
    let guest = &details["details"];
    assert_eq!(guest["exception"], "ZeroDivisionError");
    let traceback = guest["traceback"].as_str().unwrap();
    assert!(
        traceback.starts_with("Traceback (most recent call last)")
            && traceback.contains("in _ratio")
            && traceback.ends_with("ZeroDivisionError: division by zero\n"),
        "{traceback}"
    );

    // A typed error the plugin means keeps its own type: a missing source is InvalidInput.
    let (result, _) = f
        .invoke(
            "engineer_features",
            json!({"source": "/artifacts/nope.csv"}),
        )
        .await;
    let failure = result.unwrap_err().failure();
    assert_eq!(failure.type_name, "SourceNotFound", "{failure:#?}");
    assert!(!failure.retryable);
    // An input its declared schema refuses never reaches the plugin: the worker names the
    // path and the rule (the SDK's own check, for hosts that do not, is unit-tested).
    let (result, _) = f.invoke("engineer_features", json!({"source": 3})).await;
    let failure = result.unwrap_err().failure();
    assert_eq!(failure.type_name, "InvalidInput", "{failure:#?}");
    assert!(!failure.retryable);
    assert!(
        failure
            .message
            .ends_with(r#"/source: 3 is not of type "string" (type)"#),
        "{}",
        failure.message
    );
}

/// The worker's log, as `mlx-worker plugin invoke` writes it: the plugin's `log.info` line
/// with its fields, tagged as a guest log line.
#[tokio::test]
async fn a_log_line_reaches_the_worker_log() {
    let wasm = features_wasm();
    let artifacts = tempfile::tempdir().unwrap();
    let source = artifacts.path().join("local");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::copy(
        workspace_root().join("data/breast_cancer.csv"),
        source.join("bc.csv"),
    )
    .unwrap();
    let _one_at_a_time = one_compile_at_a_time().await;
    let (output, log) = invoke_logged(
        &wasm,
        "engineer_features",
        r#"{"source": "/artifacts/bc.csv", "target": "target"}"#,
        artifacts.path(),
    );
    let line = guest_log_line(&log, "features written");
    assert!(
        line.contains(r#"rows=\"569\""#) && line.contains(r#"columns=\"31\""#),
        "{line}"
    );
    assert_eq!(output["rows"], 569);
}
