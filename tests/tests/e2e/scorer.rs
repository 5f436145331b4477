//! The scorer plugin (`make plugins`) in the real runtime, on scikit-learn models: the pinned
//! scikit-learn, skl2onnx and onnx of `make ml-tools` (tools/ml-venv) train them on the bundled
//! datasets and export them with `scripts/export_onnx.py`, which also writes scikit-learn's
//! own predictions for every row. The scorer's must agree: the same label on every row, and
//! probabilities and values within float32's reach (see [`PROBABILITY_TOLERANCE`]). Then the
//! ways a model or a file can be wrong, each with its error type and retryability.
//!
//! These tests do not install the Python tools: they fail, naming `make ml-tools`, when the
//! venv is missing or its versions are not mk/ml.mk's.

use std::{path::Path, process::Command, sync::OnceLock};

use mlx_e2e::{components, components::Hosted, workspace_root};
use mlx_runtime::failure::Failure;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Largest difference allowed between a probability from the scorer and scikit-learn's. tract
/// runs the exported models in float32 (skl2onnx exports float inputs, weights and thresholds),
/// scikit-learn in float64: each product and sum is rounded to float32's 24-bit mantissa
/// (about 6e-8 relative), and a model adds up to a few dozen such terms before a softmax or
/// logistic, so probabilities land within a few 1e-7 of scikit-learn's (measured: under 4e-7).
/// Trees compare the same float32 thresholds scikit-learn itself uses, so they pick the same
/// leaves; only the leaf sums differ.
const PROBABILITY_TOLERANCE: f64 = 1e-5;
/// Regression values are not bounded like probabilities (the diabetes target is 25 to 346):
/// float32 keeps about 7 significant digits, so the bound is relative to the value.
const VALUE_RELATIVE_TOLERANCE: f64 = 1e-6;

/// The models `scripts/export_onnx.py` wrote, once per test process, with its index.
struct Exported {
    dir: tempfile::TempDir,
    index: Value,
}

/// `NAME_VERSION := x` lines of mk/ml.mk: the versions the venv must have.
fn pinned_versions() -> Vec<(String, String)> {
    let mk = std::fs::read_to_string(workspace_root().join("mk/ml.mk")).unwrap();
    let pins: Vec<(String, String)> = mk
        .lines()
        .filter_map(|line| {
            let (name, version) = line.split_once("_VERSION := ")?;
            let package = match name {
                "SKLEARN" => "scikit-learn",
                other => return Some((other.to_lowercase(), version.trim().to_string())),
            };
            Some((package.to_string(), version.trim().to_string()))
        })
        .collect();
    assert!(pins.len() >= 3, "no versions pinned in mk/ml.mk: {pins:?}");
    pins
}

fn exported() -> &'static Exported {
    static EXPORTED: OnceLock<Exported> = OnceLock::new();
    EXPORTED.get_or_init(|| {
        let python = workspace_root().join("tools/ml-venv/bin/python");
        assert!(
            python.is_file(),
            "{} is missing: run `make ml-tools` (scikit-learn, skl2onnx and onnx for the scorer \
             tests)",
            python.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("mlx-scorer-models-")
            .tempdir()
            .unwrap();
        let out = Command::new(&python)
            .arg(workspace_root().join("scripts/export_onnx.py"))
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/export_onnx.py failed ({}); `make ml-tools` reinstalls the venv:\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let index: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("models.json")).unwrap())
                .unwrap();
        for (package, version) in pinned_versions() {
            if let Some(found) = index["versions"].get(&package) {
                assert_eq!(
                    found.as_str(),
                    Some(version.as_str()),
                    "tools/ml-venv has {package} {found}, mk/ml.mk pins {version}: run `make \
                     ml-tools`"
                );
            }
        }
        Exported { dir, index }
    })
}

/// The scorer with the bundled datasets at /data and the exported models (and the diabetes
/// data) at /models, both read-only.
async fn scorer() -> Hosted {
    let models = exported().dir.path();
    let manifest = format!(
        "[[filesystem]]\nhost = {:?}\nguest = \"/data\"\naccess = \"read-only\"\n\n\
         [[filesystem]]\nhost = {:?}\nguest = \"/models\"\naccess = \"read-only\"\n",
        workspace_root().join("data").display().to_string(),
        models.display().to_string(),
    );
    Hosted::load(&components().join("scorer.wasm"), "scorer", Some(&manifest)).await
}

/// Where the scorer sees a model's dataset.
fn dataset_in_guest(dataset: &str) -> String {
    if dataset == "diabetes.csv" {
        format!("/models/{dataset}")
    } else {
        format!("/data/{dataset}")
    }
}

/// A CSV file's header and rows (these files quote nothing).
fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text
        .lines()
        .map(|l| l.split(',').map(String::from).collect::<Vec<_>>());
    let header = lines.next().expect("a header row");
    (header, lines.collect())
}

async fn predict(scorer: &Hosted, input: Value) -> Result<Value, Failure> {
    let (result, _) = scorer.invoke("predict", input).await;
    result.map_err(|e| e.failure())
}

/// Figures of one model's comparison: rows, largest difference of a probability or value.
struct Compared {
    rows: usize,
    max_abs_diff: f64,
}

/// The scorer's predictions file against scikit-learn's, row by row.
fn compare(model: &Value, scored: &Path, expected: &Path) -> Compared {
    let name = model["name"].as_str().unwrap();
    let (header, rows) = read_csv(scored);
    let (want_header, want_rows) = read_csv(expected);
    assert_eq!(header, want_header, "{name}: columns");
    assert_eq!(rows.len(), want_rows.len(), "{name}: one row per input row");
    let classifier = model["kind"] == "classifier";
    let mut max_abs_diff = 0f64;
    for (i, (row, want)) in rows.iter().zip(&want_rows).enumerate() {
        let values = if classifier {
            assert_eq!(row[0], want[0], "{name}: label of data row {}", i + 1);
            1
        } else {
            0
        };
        for (column, (got, want)) in row.iter().zip(want).enumerate().skip(values) {
            let (got, want): (f64, f64) = (got.parse().unwrap(), want.parse().unwrap());
            let diff = (got - want).abs();
            max_abs_diff = max_abs_diff.max(diff);
            let bound = if classifier {
                PROBABILITY_TOLERANCE
            } else {
                VALUE_RELATIVE_TOLERANCE * want.abs().max(1.0)
            };
            assert!(
                diff <= bound,
                "{name}: data row {}, {}: {got} vs scikit-learn's {want} (bound {bound})",
                i + 1,
                header[column]
            );
        }
    }
    Compared {
        rows: rows.len(),
        max_abs_diff,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn predictions_agree_with_scikit_learn_on_every_row_of_every_model() {
    let exported = exported();
    let scorer = scorer().await;
    let mut report = Vec::new();
    for model in exported.index["models"].as_array().unwrap() {
        if model["expect"] != "predict" {
            continue;
        }
        let name = model["name"].as_str().unwrap();
        let output = format!("/artifacts/{name}/predictions.csv");
        let out = predict(
            &scorer,
            json!({
                "model": format!("/models/{}", model["model"].as_str().unwrap()),
                "data": dataset_in_guest(model["dataset"].as_str().unwrap()),
                "exclude": ["target"],
                "output": output,
            }),
        )
        .await
        .unwrap_or_else(|f| panic!("{name}: {f:#?}"));
        let rows = model["rows"].as_u64().unwrap();
        assert_eq!(out["path"], output);
        assert_eq!(out["rows"], rows, "{name}: {out:#}");
        assert_eq!(out["kind"], model["kind"], "{name}");
        assert_eq!(out["features"], model["features"], "{name}");
        assert_eq!(out["batches"], rows.div_ceil(1024), "{name}");
        if model["kind"] == "classifier" {
            assert_eq!(out["classes"], model["classes"], "{name}");
        }
        let file = exported.dir.path().join(model["model"].as_str().unwrap());
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(
            out["model"]["sha256"],
            format!("{:x}", Sha256::digest(&bytes)),
            "{name}"
        );
        assert_eq!(out["model"]["bytes"], bytes.len());
        let input = &out["model"]["inputs"][0];
        assert_eq!(input["name"], "X", "{name}: {out:#}");
        assert_eq!(input["type"], "float");
        assert_eq!(
            input["shape"][1],
            model["features"].as_array().unwrap().len()
        );
        assert!(
            out["model"]["producer"]
                .as_str()
                .unwrap()
                .starts_with("skl2onnx"),
            "{out:#}"
        );

        let scored = scorer.artifacts().join(name).join("predictions.csv");
        assert_eq!(
            out["bytes"],
            std::fs::metadata(&scored).unwrap().len(),
            "{name}"
        );
        let expected = exported
            .dir
            .path()
            .join(model["expected"].as_str().unwrap());
        let compared = compare(model, &scored, &expected);
        report.push(format!(
            "{name:<22} {:<28} rows {:>5}  max |diff| {:.2e}",
            model["estimator"].as_str().unwrap(),
            compared.rows,
            compared.max_abs_diff
        ));
    }
    assert!(report.len() >= 8, "{report:#?}");
    println!("{}", report.join("\n"));
    let timings = scorer.timings.0.lock().unwrap();
    for (model, (_, took, peak)) in report.iter().zip(timings.iter()) {
        let name = model.split_whitespace().next().unwrap_or_default();
        println!(
            "{name}: {took:?}, peak guest memory {} MiB",
            peak.unwrap_or(0) >> 20
        );
    }
}

/// Small batches give the same file as one batch: batching bounds memory, it changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn small_batches_write_the_same_predictions() {
    exported();
    let scorer = scorer().await;
    let mut files = Vec::new();
    for (batch_rows, batches) in [(7, 82), (1024, 1)] {
        let out = predict(
            &scorer,
            json!({
                "model": "/models/breast_cancer_gboost.onnx",
                "data": "/data/breast_cancer.csv",
                "exclude": ["target"],
                "output": format!("/artifacts/batches-{batch_rows}.csv"),
                "batch_rows": batch_rows,
            }),
        )
        .await
        .unwrap_or_else(|f| panic!("{f:#?}"));
        assert_eq!(out["batches"], batches, "{out:#}");
        files.push(
            std::fs::read(scorer.artifacts().join(format!("batches-{batch_rows}.csv"))).unwrap(),
        );
    }
    assert_eq!(files[0], files[1]);
}

/// `columns` picks and orders the features; a table with extra columns scores the same.
#[tokio::test(flavor = "multi_thread")]
async fn named_columns_select_the_features_in_model_order() {
    let exported = exported();
    let scorer = scorer().await;
    // iris with its columns reversed and an id column in front.
    let (header, rows) = read_csv(&workspace_root().join("data/iris.csv"));
    let mut text = format!(
        "id,{}\n",
        header.iter().rev().cloned().collect::<Vec<_>>().join(",")
    );
    for (i, row) in rows.iter().enumerate() {
        text += &format!(
            "{i},{}\n",
            row.iter().rev().cloned().collect::<Vec<_>>().join(",")
        );
    }
    std::fs::write(scorer.artifacts().join("iris-shuffled.csv"), text).unwrap();
    let features = &header[..4];
    let out = predict(
        &scorer,
        json!({
            "model": "/models/iris_logreg.onnx",
            "data": "/artifacts/iris-shuffled.csv",
            "columns": features,
            "output": "/artifacts/shuffled.csv",
        }),
    )
    .await
    .unwrap_or_else(|f| panic!("{f:#?}"));
    assert_eq!(out["features"], json!(features));
    let model = exported.index["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "iris_logreg")
        .unwrap();
    compare(
        model,
        &scorer.artifacts().join("shuffled.csv"),
        &exported.dir.path().join("iris_logreg.expected.csv"),
    );
}

fn assert_failure(failure: &Failure, type_name: &str, retryable: bool, says: &[&str]) {
    assert_eq!(failure.type_name, type_name, "{failure:#?}");
    assert_eq!(failure.retryable, retryable, "{failure:#?}");
    for words in says {
        assert!(
            failure.message.contains(words),
            "{:?} does not say {words:?}",
            failure.message
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_models_and_files_fail_with_their_error_types() {
    let exported = exported();
    let scorer = scorer().await;
    let iris = |model: &str| {
        json!({
            "model": model,
            "data": "/data/iris.csv",
            "exclude": ["target"],
            "output": "/artifacts/out.csv",
        })
    };

    // A model cut short, and a file that is not a model at all.
    let whole = std::fs::read(exported.dir.path().join("digits_forest.onnx")).unwrap();
    std::fs::write(
        scorer.artifacts().join("cut.onnx"),
        &whole[..whole.len() / 2],
    )
    .unwrap();
    std::fs::write(scorer.artifacts().join("text.onnx"), "not a model\n").unwrap();
    for file in ["cut.onnx", "text.onnx"] {
        let failure = predict(&scorer, iris(&format!("/artifacts/{file}")))
            .await
            .unwrap_err();
        assert_failure(
            &failure,
            "MalformedModel",
            false,
            &[file, "not a readable ONNX model"],
        );
    }

    // Missing files: the model, the data.
    let failure = predict(&scorer, iris("/models/absent.onnx"))
        .await
        .unwrap_err();
    assert_failure(&failure, "ModelNotFound", false, &["/models/absent.onnx"]);
    let mut input = iris("/models/iris_logreg.onnx");
    input["data"] = json!("/data/absent.csv");
    let failure = predict(&scorer, input).await.unwrap_err();
    assert_failure(&failure, "ArtifactNotFound", false, &["/data/absent.csv"]);

    // Four features in the model, thirty in the table.
    let failure = predict(
        &scorer,
        json!({
            "model": "/models/iris_forest.onnx",
            "data": "/data/breast_cancer.csv",
            "exclude": ["target"],
        }),
    )
    .await
    .unwrap_err();
    assert_failure(
        &failure,
        "FeatureCountMismatch",
        false,
        &["takes 4 features", "30 feature columns"],
    );
    let details = &failure.details.as_ref().unwrap()["details"];
    assert_eq!(
        (
            details["model_features"].clone(),
            details["data_features"].clone()
        ),
        (json!(4), json!(30))
    );

    // Operators tract does not implement, and ZipMap.
    let failure = predict(&scorer, iris("/models/iris_svc.onnx"))
        .await
        .unwrap_err();
    assert_failure(
        &failure,
        "UnsupportedModel",
        false,
        &["SVMClassifier", "tract"],
    );
    let failure = predict(&scorer, iris("/models/iris_zipmap.onnx"))
        .await
        .unwrap_err();
    assert_failure(
        &failure,
        "UnsupportedModel",
        false,
        &["ZipMap", "'zipmap': False"],
    );
    let failure = predict(
        &scorer,
        json!({
            "model": "/models/diabetes_forest.onnx",
            "data": "/models/diabetes.csv",
            "exclude": ["target"],
        }),
    )
    .await
    .unwrap_err();
    assert_failure(
        &failure,
        "UnsupportedModel",
        false,
        &["TreeEnsembleRegressor"],
    );

    // A text column among the features; a missing value.
    let failure = predict(
        &scorer,
        json!({
            "model": "/models/iris_logreg.onnx",
            "data": "/data/iris.csv",
            "columns": ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "target"],
        }),
    )
    .await
    .unwrap_err();
    assert_failure(
        &failure,
        "NonNumericValue",
        false,
        &["\"target\"", "setosa"],
    );
    let (header, mut rows) = read_csv(&workspace_root().join("data/iris.csv"));
    rows[41][2] = String::new();
    let text: String = std::iter::once(&header)
        .chain(&rows)
        .map(|r| r.join(",") + "\n")
        .collect();
    std::fs::write(scorer.artifacts().join("gap.csv"), text).unwrap();
    let mut input = iris("/models/iris_logreg.onnx");
    input["data"] = json!("/artifacts/gap.csv");
    let failure = predict(&scorer, input).await.unwrap_err();
    assert_failure(
        &failure,
        "MissingValues",
        false,
        &["petal length (cm)", "data row 42"],
    );

    // Outputs: a read-only grant, and an extension that names no format.
    let mut input = iris("/models/iris_logreg.onnx");
    input["output"] = json!("/data/predictions.csv");
    let failure = predict(&scorer, input).await.unwrap_err();
    assert_failure(
        &failure,
        "OutputNotWritable",
        false,
        &["/data/predictions.csv"],
    );
    let mut input = iris("/models/iris_logreg.onnx");
    input["output"] = json!("/artifacts/predictions.txt");
    let failure = predict(&scorer, input).await.unwrap_err();
    assert_failure(&failure, "InvalidParameter", false, &[".csv or .parquet"]);
    assert!(
        !scorer.artifacts().join("out.csv").exists(),
        "no failed call left an output behind"
    );
}

/// Where the scorer writes with no `output`: a CSV in the run's artifacts.
#[tokio::test(flavor = "multi_thread")]
async fn the_default_output_is_a_csv_in_the_artifacts() {
    exported();
    let scorer = scorer().await;
    let out = predict(
        &scorer,
        json!({
            "model": "/models/diabetes_ridge.onnx",
            "data": "/models/diabetes.csv",
            "exclude": ["target"],
        }),
    )
    .await
    .unwrap_or_else(|f| panic!("{f:#?}"));
    assert_eq!(out["path"], "/artifacts/predictions.csv");
    assert_eq!(out["format"], "csv");
    assert_eq!(out["columns"], json!(["prediction"]));
    assert_eq!(out["kind"], "regressor");
    let (header, rows) = read_csv(&scorer.artifacts().join("predictions.csv"));
    assert_eq!((header.len(), rows.len()), (1, 442));
}
