//! End-to-end checks of extract → train on the real datasets, natively. The csv plugin's
//! reading and splitting code is compiled in here so the split is exactly the one the
//! `extract_data` operation makes (its own unit tests therefore also run here, harmlessly).

use std::fs::File;
use std::path::{Path, PathBuf};

use mlx_plugin_sdk::{Context, ErrorKind};
use serde_json::{Value, json};

use crate::train::TrainModel;

#[allow(dead_code)]
#[path = "../../csv/src/split.rs"]
mod split;
#[allow(dead_code)]
#[path = "../../csv/src/table.rs"]
mod table;

/// Splits `data/<name>` as `extract_data` does (seed 42, 20% test, stratified) into `dir`.
pub fn extract(name: &str, dir: &Path) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name);
    let file = File::open(&source).unwrap();
    let ctx = Context::detached(1, None);
    let t = table::read(file, name, "target", None, &[], &ctx).unwrap();
    let labels: Vec<&str> = t.rows.iter().map(|r| r.last().unwrap().as_str()).collect();
    let (train_rows, test_rows) = split::split(&labels, 0.2, 42, true);
    std::fs::create_dir_all(dir).unwrap();
    for (part, rows) in [("train", train_rows), ("test", test_rows)] {
        let mut w = csv::Writer::from_path(dir.join(format!("{part}.csv"))).unwrap();
        w.write_record(t.features.iter().chain([&t.target]))
            .unwrap();
        for i in rows {
            w.write_record(&t.rows[i]).unwrap();
        }
        w.flush().unwrap();
    }
}

pub fn workdir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("mlx-trainer-{name}-{}", std::process::id()))
}

/// `train_model` as the worker runs it: schema check, then the operation.
pub fn train(input: Value, ctx: &Context) -> Result<Value, mlx_plugin_sdk::PluginError> {
    ctx.call::<TrainModel>(input)
}

pub fn input(dir: &Path, extra: Value) -> Value {
    let mut v = json!({
        "train": dir.join("train.csv"), "test": dir.join("test.csv"), "target": "target",
        "output_dir": dir.join("model"),
    });
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    v
}

#[test]
fn breast_cancer_reaches_high_test_accuracy() {
    let dir = workdir("bc");
    extract("breast_cancer.csv", &dir);
    let ctx = Context::detached(1, None);
    let out = train(input(&dir, json!({})), &ctx).unwrap();
    let m = &out["metrics"];
    eprintln!(
        "breast_cancer metrics: {}",
        serde_json::to_string_pretty(m).unwrap()
    );
    assert_eq!(
        (out["train_rows"].as_u64(), out["test_rows"].as_u64()),
        (Some(455), Some(114))
    );
    assert!(
        m["accuracy"].as_f64().unwrap() > 0.9,
        "test accuracy {}",
        m["accuracy"]
    );
    assert!(m["train_accuracy"].as_f64().unwrap() > 0.95);
    assert_eq!(ctx.recorded_heartbeats().len(), 300);
    let model: Value =
        serde_json::from_reader(File::open(dir.join("model/model.json")).unwrap()).unwrap();
    assert_eq!(model["classes"], json!(["benign", "malignant"]));
    assert_eq!(
        model["standardization"]["mean"].as_array().unwrap().len(),
        30
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn iris_multiclass() {
    let dir = workdir("iris");
    extract("iris.csv", &dir);
    let out = train(
        input(&dir, json!({"checkpoint_every": 50})),
        &Context::detached(1, None),
    )
    .unwrap();
    eprintln!("iris metrics: {}", out["metrics"]);
    assert!(out["metrics"]["accuracy"].as_f64().unwrap() > 0.85);
    assert_eq!(
        out["metrics"]["confusion_matrix"].as_array().unwrap().len(),
        3
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn cancelled_attempt_resumes_from_its_checkpoint() {
    let dir = workdir("resume");
    extract("iris.csv", &dir);
    let full = train(
        input(&dir, json!({"epochs": 60})),
        &Context::detached(1, None),
    )
    .unwrap();

    let first = Context::detached(1, None).cancel_after(25);
    let err = train(input(&dir, json!({"epochs": 60})), &first).unwrap_err();
    assert_eq!(
        (err.kind, err.type_name.as_str()),
        (ErrorKind::Retryable, "Cancelled")
    );
    let checkpoint = first.recorded_heartbeats().last().unwrap().to_string();

    let second = Context::detached(2, Some(&checkpoint));
    let resumed = train(input(&dir, json!({"epochs": 60})), &second).unwrap();
    assert_eq!(resumed["resumed_from_epoch"], 25);
    assert_eq!(resumed["epochs_run"], 35);
    // Gradient descent is deterministic, so resuming reproduces the uninterrupted run.
    assert_eq!(resumed["metrics"], full["metrics"]);

    // A checkpoint of another shape is ignored rather than trusted.
    let other = Context::detached(
        2,
        Some(r#"{"epoch":5,"loss":1,"weights":[[1]],"bias":[0]}"#),
    );
    let fresh = train(input(&dir, json!({"epochs": 60})), &other).unwrap();
    assert_eq!(fresh["resumed_from_epoch"], Value::Null);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn rejects_bad_hyperparameters_and_inputs() {
    let dir = workdir("errors");
    let ctx = Context::detached(1, None);
    for bad in [
        json!({"epochs": 0}),
        json!({"epochs": 100_001}),
        json!({"learning_rate": 0.0}),
        json!({"l2": -1.0}),
        json!({"checkpoint_every": 0}),
    ] {
        // The host refuses each by the schema; the plugin's own checks are the backstop.
        let err = train(input(&dir, bad.clone()), &ctx).unwrap_err();
        assert_eq!(err.type_name, "InvalidInput", "{bad}");
        let unchecked = serde_json::from_value(input(&dir, bad.clone())).unwrap();
        let err = crate::train::train(unchecked, &ctx).unwrap_err();
        assert_eq!(err.type_name, "InvalidParameter", "{bad}");
    }
    assert_eq!(
        train(input(&dir, json!({})), &ctx).unwrap_err().type_name,
        "ArtifactNotFound"
    );

    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("train.csv"), "a,target\n1,x\n2,y\n").unwrap();
    std::fs::write(dir.join("test.csv"), "b,target\n1,x\n").unwrap();
    assert_eq!(
        train(input(&dir, json!({})), &ctx).unwrap_err().type_name,
        "HeaderMismatch"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
