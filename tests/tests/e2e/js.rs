//! A JavaScript plugin (componentize-js, the `mlx_plugin` SDK in plugins/js) in the real
//! runtime: the `validate` component that `make js-plugins` builds into `plugins/target/js/`.
//! These tests do not build it (that needs the pinned toolchain in `tools/node`): they fail,
//! saying so, when it is missing or older than its sources. The contract plugin `contract-js`
//! is exercised by the shared table in `contract.rs`.

use std::path::PathBuf;

use mlx_e2e::{
    components::{Hosted, built_component, guest_log_line, invoke_logged, one_compile_at_a_time},
    workspace_root,
};
use serde_json::{Value, json};

/// The built `validate` component, checked to be newer than its sources (the plugin, the
/// SDK, the JavaScript world and the WIT contract).
fn validate_wasm() -> PathBuf {
    built_component(
        "plugins/target/js/validate.wasm",
        &[
            "plugins/js/validate",
            "plugins/js/mlx_plugin",
            "plugins/js/wit",
        ],
        &["js", "toml", "wit"],
        "make js-plugins",
    )
}

/// The component with a manifest granting the bundled datasets at `/data` (read-only), as
/// the shipped `validate.toml` does.
async fn validate() -> Hosted {
    let manifest = format!(
        "[[filesystem]]\nhost = {:?}\nguest = \"/data\"\naccess = \"read-only\"\n",
        workspace_root().join("data").display().to_string()
    );
    Hosted::load(&validate_wasm(), "validate", Some(&manifest)).await
}

/// The report the plugin wrote, read on the host.
fn report_of(v: &Hosted, out: &Value) -> Value {
    let path = out["report"].as_str().unwrap();
    let relative = path.strip_prefix("/artifacts/").unwrap();
    let text = std::fs::read_to_string(v.artifacts().join(relative)).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn describes_its_operations_with_schemas() {
    let v = validate().await;
    let info = &v.plugin.info;
    assert_eq!(
        (info.name.as_str(), info.version.as_str()),
        ("validate", "0.1.0")
    );
    let names: Vec<&str> = info.operations.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["validate_table", "raise_error"]);
    let input: Value = serde_json::from_str(&info.operations[0].input_schema).unwrap();
    assert_eq!(input["required"], json!(["source"]));
    assert_eq!(input["additionalProperties"], false);
    let output: Value = serde_json::from_str(&info.operations[0].output_schema).unwrap();
    assert!(output["properties"]["valid"].is_object(), "{output:#}");
}

#[tokio::test]
async fn validates_a_real_table_from_the_granted_data_directory() {
    let v = validate().await;
    let (result, heartbeat) = v
        .invoke("validate_table", json!({"source": "/data/iris.csv"}))
        .await;
    let out = result.unwrap_or_else(|e| panic!("{e}: {:#?}", e.failure()));
    assert_eq!(out["valid"], true, "{out:#}");
    assert_eq!(
        (out["rows"].clone(), out["columns"].clone()),
        (json!(150), json!(5))
    );
    assert_eq!(out["types"]["target"], "category");
    assert_eq!(out["types"]["sepal length (cm)"], "number");
    assert_eq!(heartbeat, Some(json!({"phase": "read", "rows": 150})));

    // The report is on the host, in the workflow's artifacts directory.
    let report = report_of(&v, &out);
    let sepal = &report["column_reports"]["sepal length (cm)"];
    assert_eq!(
        (sepal["min"].clone(), sepal["max"].clone()),
        (json!(4.3), json!(7.9))
    );
    assert_eq!(
        report["column_reports"]["target"]["categories"],
        json!(["setosa", "versicolor", "virginica"])
    );

    for (instantiation, duration, peak) in v.timings.0.lock().unwrap().iter() {
        eprintln!(
            "validate: instantiation {instantiation:?}, invocation {duration:?}, peak memory \
             {:?} MiB",
            peak.map(|bytes| bytes >> 20)
        );
    }
}

#[tokio::test]
async fn the_report_catches_planted_missing_and_out_of_range_values() {
    let v = validate().await;
    // breast_cancer.csv with three cells broken: data row 2 loses its mean radius, row 5 gets
    // a mean area of -1, row 8 an unknown diagnosis.
    let original =
        std::fs::read_to_string(workspace_root().join("data/breast_cancer.csv")).unwrap();
    let mut rows: Vec<Vec<String>> = original
        .lines()
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    let column = |name: &str| rows[0].iter().position(|c| c == name).unwrap();
    let (radius, area, target) = (column("mean radius"), column("mean area"), column("target"));
    rows[2][radius] = String::new();
    rows[5][area] = "-1".into();
    rows[8][target] = "unknown".into();
    let broken: String = rows.iter().map(|r| r.join(",") + "\n").collect();
    std::fs::write(v.artifacts().join("broken.csv"), broken).unwrap();

    let rules = json!({
        "mean radius": {"type": "number", "max_missing": 0},
        "mean area": {"type": "number", "min": 0},
        "target": {"type": "category", "allowed": ["benign", "malignant"]},
    });
    let (result, _) = v
        .invoke(
            "validate_table",
            json!({"source": "/artifacts/broken.csv", "rules": rules,
                   "report": "/artifacts/checks/broken.json"}),
        )
        .await;
    let out = result.unwrap_or_else(|e| panic!("{e}: {:#?}", e.failure()));
    assert_eq!(out["valid"], false, "{out:#}");
    assert_eq!(
        out["invalid_columns"],
        json!(["mean radius", "mean area", "target"])
    );
    assert_eq!(
        (out["missing_cells"].clone(), out["violations"].clone()),
        (json!(1), json!(3))
    );
    let columns = &report_of(&v, &out)["column_reports"];
    assert_eq!(
        columns["mean radius"]["violations"],
        json!([{"rule": "max_missing", "limit": 0, "count": 1, "rows": [2], "values": [""]}])
    );
    assert_eq!(
        columns["mean area"]["violations"],
        json!([{"rule": "min", "limit": 0, "count": 1, "rows": [5], "values": ["-1"]}])
    );
    assert_eq!(columns["target"]["violations"][0]["rows"], json!([8]));
    assert_eq!(columns["mean texture"]["valid"], true);

    // A typed error the plugin means keeps its own type, and the input schema holds.
    let (result, _) = v
        .invoke("validate_table", json!({"source": "/data/nope.csv"}))
        .await;
    let failure = result.unwrap_err().failure();
    assert_eq!(failure.type_name, "SourceNotFound", "{failure:#?}");
    assert!(!failure.retryable);
    let (result, _) = v.invoke("validate_table", json!({"source": 3})).await;
    let failure = result.unwrap_err().failure();
    assert_eq!(failure.type_name, "InvalidInput", "{failure:#?}");
    assert!(!failure.retryable);
}

#[tokio::test]
async fn an_uncaught_exception_is_permanent_with_its_stack_not_a_trap() {
    let v = validate().await;
    let (result, _) = v.invoke("raise_error", json!({})).await;
    let failure = result.unwrap_err().failure();
    assert_eq!(failure.type_name, "UncaughtException", "{failure:#?}");
    assert!(!failure.retryable);
    // SpiderMonkey's wording, not V8's.
    assert!(
        failure.message.starts_with("TypeError: ") && failure.message.contains("undefined"),
        "{}",
        failure.message
    );
    let details = failure.details.expect("details");
    assert_eq!(details["kind"], "permanent", "{details:#}");
    let guest = &details["details"];
    assert_eq!(guest["exception"], "TypeError");
    assert_eq!(guest["operation"], "raise_error");
    assert_eq!(guest["where"]["function"], "columnsOf", "{guest:#}");
    let stack = guest["stack"].as_str().unwrap();
    assert!(
        stack.starts_with(failure.message.as_str())
            && stack.contains("columnsOf@js/validate/plugin.js:")
            && stack.contains("handler@js/validate/plugin.js:")
            && !stack.contains("initializer.js"),
        "{stack}"
    );
}

/// The worker's log, as `mlx-worker plugin invoke` writes it: the plugin's `log.info` line
/// with its fields, tagged as a guest log line. Runs the component where `make js-plugins`
/// put it, with its shipped manifest (`/data` from `validate.toml`).
#[tokio::test]
async fn a_log_line_reaches_the_worker_log() {
    let wasm = validate_wasm();
    let artifacts = tempfile::tempdir().unwrap();
    let _one_at_a_time = one_compile_at_a_time().await;
    let (output, log) = invoke_logged(
        &wasm,
        "validate_table",
        r#"{"source": "/data/breast_cancer.csv"}"#,
        artifacts.path(),
    );
    let line = guest_log_line(&log, "validation report written");
    assert!(
        line.contains(r#"rows=\"569\""#)
            && line.contains(r#"columns=\"31\""#)
            && line.contains(r#"valid=\"true\""#),
        "{line}"
    );
    assert_eq!(output["rows"], 569);
    assert!(
        artifacts
            .path()
            .join("local/validation/report.json")
            .is_file()
    );
}
