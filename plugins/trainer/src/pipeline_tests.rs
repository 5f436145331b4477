//! End-to-end checks of extract → train on the real datasets, natively. The csv plugin's
//! splitting code is compiled in here so the split is exactly the one the `extract_data`
//! operation makes (its own unit tests therefore also run here, harmlessly).

use std::fs::File;
use std::path::{Path, PathBuf};

use mlx_plugin_sdk::{Context, ErrorKind};
use serde_json::{Value, json};

use crate::train::TrainModel;

#[allow(dead_code)]
#[path = "../../csv/src/split.rs"]
mod split;

/// Splits `data/<name>` as `extract_data` does (seed 42, 20% test, stratified) into `dir`.
pub fn extract(name: &str, dir: &Path) {
    split_into(name, dir, true)
}

/// The same for a numeric target, which is not stratified.
pub fn extract_regression(name: &str, dir: &Path) {
    split_into(name, dir, false)
}

fn split_into(name: &str, dir: &Path, stratify: bool) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name);
    let table = mlx_tabular::read_table(&source).unwrap();
    let labels: Vec<String> = mlx_tabular::labels(table.column("target").unwrap())
        .into_iter()
        .map(Option::unwrap)
        .collect();
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    let (train_rows, test_rows) = split::split(&labels, 0.2, 42, stratify);
    std::fs::create_dir_all(dir).unwrap();
    for (part, rows) in [("train", train_rows), ("test", test_rows)] {
        let path = dir.join(format!("{part}.csv"));
        let rows = table.select_rows(&rows);
        mlx_tabular::write_table(&rows, &path, mlx_tabular::Format::Csv).unwrap();
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

fn accuracy(out: &Value) -> f64 {
    out["metrics"]["accuracy"].as_f64().unwrap()
}

fn model_file(dir: &Path) -> Value {
    serde_json::from_reader(File::open(dir.join("model/model.json")).unwrap()).unwrap()
}

#[test]
fn breast_cancer_logistic_regression_by_default() {
    let dir = workdir("bc");
    extract("breast_cancer.csv", &dir);
    let ctx = Context::detached(1, None);
    let out = train(input(&dir, json!({})), &ctx).unwrap();
    assert_eq!(
        (out["train_rows"].as_u64(), out["test_rows"].as_u64()),
        (Some(455), Some(114))
    );
    assert_eq!(out["family"], "logistic_regression");
    assert!(accuracy(&out) > 0.9, "test accuracy {}", out["metrics"]);
    assert!(out["train_metrics"]["accuracy"].as_f64().unwrap() > 0.95);
    assert_eq!(out["rounds"]["total"], 1);
    let model = model_file(&dir);
    assert_eq!(model["classes"], json!(["benign", "malignant"]));
    assert_eq!(model["features"]["columns"].as_array().unwrap().len(), 30);
    // Logistic regression scales by default, and the scaling is stored with the model.
    assert_eq!(model["features"]["options"]["scale"], true);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Every family trains through train_model on its task and reaches a sensible score.
#[test]
fn every_family_trains_on_real_data() {
    let dir = workdir("families");
    extract("iris.csv", &dir);
    for (family, params, floor) in [
        ("logistic_regression", json!({}), 0.85),
        ("decision_tree", json!({"max_depth": 4}), 0.85),
        (
            "random_forest",
            json!({"n_estimators": 30, "seed": 7}),
            0.85,
        ),
        ("gradient_boosting", json!({"n_estimators": 30}), 0.85),
    ] {
        let model = json!({"family": family, "hyperparameters": params});
        let out = train(
            input(&dir, json!({"model": model})),
            &Context::detached(1, None),
        )
        .unwrap_or_else(|e| panic!("{family}: {e:?}"));
        assert!(accuracy(&out) > floor, "{family}: {}", out["metrics"]);
        assert_eq!(out["family"], family);
        assert_eq!(model_file(&dir)["model"]["spec"]["family"], family);
    }
    let diabetes = workdir("diabetes");
    extract_regression("diabetes.csv", &diabetes);
    for (family, floor) in [
        ("linear_regression", 0.3),
        ("ridge", 0.3),
        ("random_forest", 0.2),
        ("gradient_boosting", 0.2),
        ("decision_tree", -1.0),
    ] {
        let extra = json!({"task": "regression", "model": {"family": family}});
        let out = train(input(&diabetes, extra), &Context::detached(1, None))
            .unwrap_or_else(|e| panic!("{family}: {e:?}"));
        let r2 = out["metrics"]["r2"].as_f64().unwrap();
        assert!(r2 > floor, "{family}: {}", out["metrics"]);
        assert!(out["metrics"]["rmse"].as_f64().unwrap() > 0.0);
    }
    let extra = json!({"model": {"family": "kmeans", "hyperparameters": {"k": 3, "seed": 1}}});
    let out = train(input(&dir, extra), &Context::detached(1, None)).unwrap();
    assert_eq!(out["task"], "clustering");
    assert_eq!(out["metrics"]["n_clusters"], 3);
    assert!(out["metrics"]["silhouette"].as_f64().unwrap() > 0.3);
    std::fs::remove_dir_all(dir).unwrap();
    std::fs::remove_dir_all(diabetes).unwrap();
}

#[test]
fn cancelled_attempt_resumes_from_its_checkpoint_journal() {
    let dir = workdir("resume");
    extract("iris.csv", &dir);
    let forest = |seed: u64| {
        json!({
            "model": {"family": "random_forest",
                      "hyperparameters": {"n_estimators": 20, "seed": seed}},
            "checkpoint_every": 5,
        })
    };
    let journal = dir.join("model/checkpoint.jsonl");
    let full = train(input(&dir, forest(3)), &Context::detached(1, None)).unwrap();
    assert!(!journal.exists(), "removed once the model is written");

    let first = Context::detached(1, None).cancel_after(12);
    let err = train(input(&dir, forest(3)), &first).unwrap_err();
    assert_eq!(
        (err.kind, err.type_name.as_str()),
        (ErrorKind::Retryable, "Cancelled")
    );
    let beats = first.recorded_heartbeats();
    let last = beats.last().unwrap();
    assert_eq!(last["round"], 12);
    assert_eq!(last["checkpoint"]["rounds"], 10);

    // The journal is its own record: a retry resumes from it whatever heartbeat (if any) the
    // server kept, since Temporal throttles them.
    let second = Context::detached(2, None);
    let resumed = train(input(&dir, forest(3)), &second).unwrap();
    assert_eq!(resumed["rounds"]["resumed_from"], 10);
    assert_eq!(resumed["rounds"]["run"], 10);
    // Trees are seeded by their index, so resuming reproduces the uninterrupted forest.
    assert_eq!(resumed["metrics"], full["metrics"]);
    assert!(!journal.exists());

    // A line torn by a kill is dropped: the retry resumes from the whole rounds before it.
    let third = Context::detached(1, None).cancel_after(7);
    train(input(&dir, forest(3)), &third).unwrap_err();
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes.extend_from_slice(br#"{"round":6,"loss":null,"record":{"#);
    std::fs::write(&journal, bytes).unwrap();
    let torn = train(input(&dir, forest(3)), &Context::detached(2, None)).unwrap();
    assert_eq!(torn["rounds"]["resumed_from"], 5);
    assert_eq!(torn["metrics"], full["metrics"]);

    // A journal of other training (another seed) is not resumed.
    let other = Context::detached(1, None).cancel_after(7);
    train(input(&dir, forest(4)), &other).unwrap_err();
    assert!(journal.exists());
    let fresh = train(input(&dir, forest(3)), &Context::detached(2, None)).unwrap();
    assert_eq!(fresh["rounds"]["resumed_from"], Value::Null);
    assert_eq!(fresh["rounds"]["run"], 20);
    assert_eq!(fresh["metrics"], full["metrics"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn parquet_splits_train_like_csv_ones() {
    let dir = workdir("parquet");
    extract("wine.csv", &dir);
    for part in ["train", "test"] {
        let table = mlx_tabular::read_table(&dir.join(format!("{part}.csv"))).unwrap();
        let path = dir.join(format!("{part}.parquet"));
        mlx_tabular::write_table(&table, &path, mlx_tabular::Format::Parquet).unwrap();
    }
    let model = json!({"family": "random_forest", "hyperparameters": {"n_estimators": 10}});
    let csv = train(
        input(&dir, json!({"model": model})),
        &Context::detached(1, None),
    )
    .unwrap();
    let mut parquet = input(&dir, json!({"model": model}));
    parquet["train"] = json!(dir.join("train.parquet"));
    parquet["test"] = json!(dir.join("test.parquet"));
    let parquet = train(parquet, &Context::detached(1, None)).unwrap();
    assert_eq!(parquet["metrics"], csv["metrics"]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn missing_values_are_refused_or_imputed_and_categories_encoded() {
    let dir = workdir("missing");
    std::fs::create_dir_all(&dir).unwrap();
    let mut rows = String::from("size,color,target\n");
    for i in 0..60 {
        let color = ["red", "green", "blue"][i % 3];
        let size = if i == 7 {
            String::new()
        } else {
            format!("{}", i % 10)
        };
        let label = if i % 3 == 0 { "a" } else { "b" };
        rows.push_str(&format!("{size},{color},{label}\n"));
    }
    std::fs::write(dir.join("train.csv"), &rows).unwrap();
    std::fs::write(
        dir.join("test.csv"),
        "size,color,target\n3,red,a\n4,purple,b\n",
    )
    .unwrap();
    let model = json!({"family": "decision_tree"});
    let err = train(
        input(&dir, json!({"model": model})),
        &Context::detached(1, None),
    )
    .unwrap_err();
    assert_eq!(err.type_name, "MissingValues", "{err:?}");
    let out = train(
        input(&dir, json!({"model": model, "missing": "impute"})),
        &Context::detached(1, None),
    )
    .unwrap();
    // color decides the class; the unseen "purple" encodes as no known color.
    assert_eq!(out["features"], 4, "size and one column per color");
    assert_eq!(out["test_rows"], 2);
    let spec = &model_file(&dir)["features"]["columns"][1];
    assert_eq!(
        spec["encoding"]["categories"],
        json!(["blue", "green", "red"])
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn rejects_bad_models_and_inputs() {
    let dir = workdir("errors");
    let ctx = Context::detached(1, None);
    for bad in [
        json!({"model": {"family": "random_forest", "hyperparameters": {"n_estimators": 0}}}),
        json!({"model": {"family": "svm"}}),
        json!({"model": {"family": "ridge", "hyperparameters": {"alpha": -1}}}),
        json!({"checkpoint_every": 0}),
        json!({"task": "ranking"}),
    ] {
        // The host refuses each by the schema, before any sandbox.
        let err = train(input(&dir, bad.clone()), &ctx).unwrap_err();
        assert_eq!(err.type_name, "InvalidInput", "{bad}");
    }
    assert_eq!(
        train(input(&dir, json!({})), &ctx).unwrap_err().type_name,
        "ArtifactNotFound"
    );
    extract("iris.csv", &dir);
    let unsupported = json!({"model": {"family": "linear_regression"}});
    let err = train(input(&dir, unsupported), &ctx).unwrap_err();
    assert_eq!(err.type_name, "UnsupportedTask", "{err:?}");
    let mut no_target = input(&dir, json!({}));
    no_target.as_object_mut().unwrap().remove("target");
    assert_eq!(
        train(no_target, &ctx).unwrap_err().type_name,
        "MissingTarget"
    );
    let regression_of_names = json!({"task": "regression"});
    let err = train(input(&dir, regression_of_names), &ctx).unwrap_err();
    assert_eq!(err.type_name, "ColumnTypeMismatch", "{err:?}");

    std::fs::write(dir.join("train.csv"), "a,target\n1,x\n2,y\n").unwrap();
    std::fs::write(dir.join("test.csv"), "b,target\n1,x\n").unwrap();
    assert_eq!(
        train(input(&dir, json!({})), &ctx).unwrap_err().type_name,
        "ColumnNotFound"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
