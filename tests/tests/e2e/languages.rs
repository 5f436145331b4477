//! Plugins in three languages in one pipeline on the shared dev server: the example
//! `pipelines/features.yaml` runs the Rust csv plugin, the JavaScript validate plugin
//! (`make js-plugins`), the Python features plugin (`make python-plugins`) and the Rust
//! trainer, each step a `plugin_activity` of the same worker, handing the next one files in the
//! run's /artifacts. Asserted on what they wrote: the validation reports, the engineered files,
//! the model's metrics. These tests do not build the Python and JavaScript components (that
//! needs their pinned toolchains): they fail, saying so, when one is missing or stale.

use std::{
    path::{Path, PathBuf},
    time::SystemTime,
};

use mlx_e2e::{PluginsDir, TestWorker, events, shared_server, unique, workspace_root};
use mlx_worker::temporal::PipelineWorkflow;
use serde_json::{Value, json};
use temporalio_client::{
    Client, WorkflowFetchHistoryOptions, WorkflowGetResultOptions, WorkflowStartOptions,
};
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};

const FEATURES: [&str; 4] = [
    "sepal length (cm)",
    "sepal width (cm)",
    "petal length (cm)",
    "petal width (cm)",
];

/// Newest modification time of the files directly in `dir` with one of `extensions`.
fn newest(dir: &Path, extensions: &[&str]) -> SystemTime {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
        })
        .map(|path| std::fs::metadata(&path).unwrap().modified().unwrap())
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// A component `make` built outside Cargo, checked to exist and to be newer than the files
/// it is built from (`sources`: directories, with the extensions that count).
fn built(file: &str, sources: &[(&str, &[&str])], build: &str) -> PathBuf {
    let root = workspace_root();
    let file = root.join(file);
    let made = match std::fs::metadata(&file) {
        Ok(meta) => meta.modified().unwrap(),
        Err(e) => panic!("{} is missing ({e}): run `{build}`", file.display()),
    };
    for (dir, extensions) in sources {
        assert!(
            made >= newest(&root.join(dir), extensions),
            "{} is older than {dir}: run `{build}`",
            file.display()
        );
    }
    file
}

/// One worker start at a time: the first compiles the Python and JavaScript components (an
/// interpreter each, tens of seconds of both cores in a debug build) into the run's compile
/// cache, and the others load them from there instead of compiling them again alongside.
static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A worker serving all four plugins. The csv plugin reads the bundled datasets at `/data`,
/// or `data` when given (a test's own tables); validate and features get no grant at all:
/// they read only what the steps before them wrote into /artifacts.
async fn worker(data: Option<&Path>) -> anyhow::Result<(TestWorker, Client, PluginsDir)> {
    let server = shared_server().await?;
    let plugins = PluginsDir::with(&["csv", "trainer"]);
    match data {
        None => plugins.grant_data("csv"),
        Some(dir) => plugins.write_manifest(
            "csv",
            &format!(
                "[[filesystem]]\nhost = {:?}\nguest = \"/data\"\naccess = \"read-only\"\n",
                dir.display().to_string()
            ),
        ),
    }
    let python = built(
        "plugins/target/python/features.wasm",
        &[
            ("plugins/python/features", &["py"]),
            ("plugins/python/mlx_plugin", &["py"]),
            ("wit", &["wit"]),
        ],
        "make python-plugins",
    );
    let js = built(
        "plugins/target/js/validate.wasm",
        &[
            ("plugins/js/validate", &["js"]),
            ("plugins/js/mlx_plugin", &["js"]),
            ("plugins/js/wit", &["wit"]),
            ("wit", &["wit"]),
        ],
        "make js-plugins",
    );
    std::fs::copy(python, plugins.path().join("features.wasm"))?;
    std::fs::copy(js, plugins.path().join("validate.wasm"))?;
    let worker = {
        let _one_at_a_time = STARTING.lock().await;
        TestWorker::start(server, plugins.path()).await?
    };
    let client = server.client().await?;
    Ok((worker, client, plugins))
}

/// The example spec as `make run` runs it, with `params` changed.
fn spec(params: Value) -> anyhow::Result<Value> {
    let mut spec = mlx_pipeline::load::load(&workspace_root().join("pipelines/features.yaml"))?;
    for (name, value) in params.as_object().unwrap() {
        assert!(
            spec.params.contains_key(name),
            "no param {name} in the spec"
        );
        spec.params.insert(name.clone(), value.clone());
    }
    Ok(serde_json::to_value(spec)?)
}

/// Runs `spec` to its end; returns the result and the history (JSON), the history replayed
/// against this build's workflow code first (determinism).
async fn run(
    client: &Client,
    worker: &TestWorker,
    id: &str,
    spec: Value,
) -> anyhow::Result<(Value, Vec<Value>)> {
    let handle = client
        .start_workflow(
            PipelineWorkflow::run,
            mlx_worker::temporal::payload::json_input(&spec),
            WorkflowStartOptions::new(worker.task_queue.clone(), id.to_string()).build(),
        )
        .await?;
    let result = handle
        .get_result(WorkflowGetResultOptions::default())
        .await?;
    let json = handle
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .to_json()
        .await?;
    WorkflowReplayer::new(
        WorkflowReplayerOptions::new()
            .register_workflow::<PipelineWorkflow>()?
            .build(),
    )?
    .replay_workflow(temporalio_client::WorkflowHistory::from_json(&json)?)
    .await
    .map_err(|e| anyhow::anyhow!("replaying {id}: {e:?}"))?;
    let history: Value = serde_json::from_slice(&json)?;
    Ok((
        result,
        history["events"].as_array().cloned().unwrap_or_default(),
    ))
}

/// The activity ids (step ids) scheduled in a history, in order.
fn scheduled(events_: &[Value]) -> Vec<String> {
    events(events_, "ActivityTaskScheduled")
        .iter()
        .map(|a| a["activity_id"].as_str().unwrap().to_string())
        .collect()
}

/// Where a step's `/artifacts/...` path of run `id` is on the host.
fn on_host(worker: &TestWorker, id: &str, guest: &Value) -> PathBuf {
    let guest = guest.as_str().expect("a path");
    worker
        .artifacts
        .path()
        .join(mlx_runtime::sandbox::workflow_dir_name(id))
        .join(
            guest
                .strip_prefix("/artifacts/")
                .expect("inside /artifacts"),
        )
}

/// A CSV file as its header and rows of cells (the files here have no quoted commas).
fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text
        .lines()
        .map(|l| l.split(',').map(String::from).collect());
    let header = lines.next().expect("a header");
    (header, lines.collect())
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Mean and population standard deviation of column `index`.
fn mean_std(rows: &[Vec<String>], index: usize) -> (f64, f64) {
    let values: Vec<f64> = rows.iter().map(|r| r[index].parse().unwrap()).collect();
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, variance.sqrt())
}

/// data/iris.csv with `edit` applied to each line's cells: line 0 is the header, line 1 the
/// first row.
fn iris_with(edit: impl Fn(usize, &mut Vec<String>)) -> String {
    let (header, rows) = read_csv(&workspace_root().join("data/iris.csv"));
    let mut out = String::new();
    for (line, mut cells) in std::iter::once(header).chain(rows).enumerate() {
        edit(line, &mut cells);
        out += &(cells.join(",") + "\n");
    }
    out
}

/// The example as `make run` runs it: the bundled iris split by Rust, both splits validated by
/// JavaScript, features engineered by Python (fitted on train, applied to test), a model
/// trained and evaluated by Rust on the engineered files.
#[tokio::test(flavor = "multi_thread")]
async fn the_example_pipeline_runs_rust_javascript_and_python_plugins() -> anyhow::Result<()> {
    let (worker, client, _plugins) = worker(None).await?;
    let id = unique("features-example");
    let (result, history) = run(&client, &worker, &id, spec(json!({}))?).await?;
    let steps = &result["steps"];
    for (step, state) in steps.as_object().unwrap() {
        assert_eq!(state["status"], "succeeded", "{step}: {result:#}");
    }

    // Both splits validated at once, both before anything was engineered; the test split's
    // features only after the training split's (it needs their statistics).
    let order = scheduled(&history);
    let at = |step: &str| order.iter().position(|s| s == step).unwrap();
    assert_eq!(order.len(), 7, "one attempt per step: {order:?}");
    assert!(at("extract") < at("validate_train") && at("validate_test") < at("features_train"));
    assert!(at("validate_train") < at("features_train"));
    assert!(at("features_train") < at("features_test") && at("features_test") < at("train"));

    // JavaScript: each split checked against the spec's rules, the report on disk.
    for (step, rows) in [("validate_train", 120), ("validate_test", 30)] {
        let summary = &steps[step]["output"];
        assert_eq!(summary["valid"], true, "{summary:#}");
        assert_eq!(summary["rows"], rows);
        assert_eq!(summary["columns"], 5);
        assert_eq!(summary["missing_cells"], 0);
        assert_eq!(summary["violations"], 0);
        let mut types = json!({"target": "category"});
        for feature in FEATURES {
            types[feature] = json!("number");
        }
        assert_eq!(summary["types"], types);
        let report = read_json(&on_host(&worker, &id, &summary["report"]));
        assert_eq!(report["valid"], true);
        assert_eq!(
            report["rules"]["target"]["allowed"],
            json!(["setosa", "versicolor", "virginica"])
        );
        let petals = &report["column_reports"]["petal length (cm)"];
        assert!(petals["min"].as_f64().unwrap() >= 1.0, "{petals:#}");
        assert!(petals["max"].as_f64().unwrap() <= 6.9, "{petals:#}");
        assert_eq!(
            report["column_reports"]["target"]["categories"],
            json!(["setosa", "versicolor", "virginica"])
        );
    }

    // Python: standardised with the training split's statistics, on both files.
    let train = &steps["features_train"]["output"];
    let test = &steps["features_test"]["output"];
    let mut columns: Vec<&str> = FEATURES.to_vec();
    columns.push("target");
    assert_eq!(train["columns"], json!(columns));
    assert_eq!(test["columns"], json!(columns));
    assert_eq!(
        (train["fitted"].clone(), test["fitted"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(
        test["stats"], train["stats"],
        "the test split gets the training split's statistics"
    );
    assert_eq!(
        (train["rows"].clone(), test["rows"].clone()),
        (json!(120), json!(30))
    );
    let (header, rows) = read_csv(&on_host(&worker, &id, &train["path"]));
    assert_eq!(header, columns);
    let (raw_header, raw_rows) = read_csv(&on_host(
        &worker,
        &id,
        &steps["extract"]["output"]["train"]["path"],
    ));
    for (i, feature) in FEATURES.iter().enumerate() {
        let (mean, std) = mean_std(&rows, i);
        assert!(
            mean.abs() < 1e-9 && (std - 1.0).abs() < 1e-9,
            "{feature}: mean {mean}, std {std}"
        );
        let fitted = &train["stats"]["numeric"][feature];
        let raw = raw_header.iter().position(|h| h == feature).unwrap();
        let (raw_mean, raw_std) = mean_std(&raw_rows, raw);
        assert!(
            (fitted["mean"].as_f64().unwrap() - raw_mean).abs() < 1e-9,
            "{fitted}"
        );
        assert!(
            (fitted["std"].as_f64().unwrap() - raw_std).abs() < 1e-9,
            "{fitted}"
        );
    }
    let (_, test_rows) = read_csv(&on_host(&worker, &id, &test["path"]));
    assert_eq!(test_rows.len(), 30);

    // Rust: trained and evaluated on the engineered files.
    let trained = &steps["train"]["output"];
    let evaluated = &steps["evaluate"]["output"];
    assert_eq!(
        (trained["train_rows"].clone(), evaluated["rows"].clone()),
        (json!(120), json!(30))
    );
    let accuracy = evaluated["metrics"]["accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.9, "{evaluated:#}");
    assert_eq!(
        evaluated["metrics"]["accuracy"], trained["metrics"]["accuracy"],
        "evaluating the engineered test split reproduces training's own test metrics"
    );
    assert_eq!(
        evaluated["metrics"]["classes"],
        json!(["setosa", "versicolor", "virginica"])
    );
    assert_eq!(trained["family"], "logistic_regression", "{trained:#}");
    // The model was fitted on the engineered file: its own standardisation found the means
    // already at 0 and the deviations at 1.
    let model = read_json(&on_host(&worker, &id, &trained["model"]["path"]));
    let columns = model["features"]["columns"].as_array().unwrap();
    let names: Vec<&Value> = columns.iter().map(|c| &c["name"]).collect();
    assert_eq!(json!(names), json!(FEATURES));
    for column in columns {
        let scale = &column["encoding"]["scale"];
        assert!(
            scale["mean"].as_f64().unwrap().abs() < 1e-9
                && (scale["std"].as_f64().unwrap() - 1.0).abs() < 1e-9,
            "{column}"
        );
    }
    worker.stop().await
}

/// A table with missing cells and a text column, which the trainer alone refuses (its features
/// must be numbers): validation lets the few missing cells through, Python imputes them and
/// one-hot encodes the text column, and the trainer trains on the result.
#[tokio::test(flavor = "multi_thread")]
async fn missing_cells_are_imputed_and_text_one_hot_encoded_before_training() -> anyhow::Result<()>
{
    let data = tempfile::tempdir()?;
    // Missing cells spelt in four ways, at most one per split and column (under the rules'
    // 5 %). Rows 13 and 130 fall in the test split of seed 42, the others in the training one.
    let blanks = [
        (10, 0, ""),
        (60, 3, "NA"),
        (110, 1, ""),
        (140, 2, "?"),
        (13, 1, "NaN"),
        (130, 3, ""),
    ];
    let table = iris_with(|line, cells| {
        for &(row, column, cell) in &blanks {
            if line == row {
                cells[column] = cell.to_string();
            }
        }
        // A text column before the target: who measured the flower.
        let collector = if line == 0 {
            "collector"
        } else {
            ["ana", "ben", "chloe"][line % 3]
        };
        cells.insert(cells.len() - 1, collector.to_string());
    });
    std::fs::write(data.path().join("iris-gaps.csv"), table)?;
    let (worker, client, _plugins) = worker(Some(data.path())).await?;
    let id = unique("features-gaps");
    let (result, _) = run(
        &client,
        &worker,
        &id,
        spec(json!({"dataset": "/data/iris-gaps.csv"}))?,
    )
    .await?;
    let steps = &result["steps"];
    assert_eq!(steps["evaluate"]["status"], "succeeded", "{result:#}");

    let (v_train, v_test) = (
        &steps["validate_train"]["output"],
        &steps["validate_test"]["output"],
    );
    assert_eq!(
        (v_train["valid"].clone(), v_test["valid"].clone()),
        (json!(true), json!(true))
    );
    let missing = |out: &Value| out["missing_cells"].as_u64().unwrap();
    assert_eq!(
        missing(v_train) + missing(v_test),
        blanks.len() as u64,
        "every planted gap is counted: {v_train:#} {v_test:#}"
    );
    assert!(missing(v_test) > 0, "a gap in the test split: {v_test:#}");
    assert_eq!(v_train["types"]["collector"], "category");

    let (train, test) = (
        &steps["features_train"]["output"],
        &steps["features_test"]["output"],
    );
    let imputed = |out: &Value| {
        out["imputed"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum::<u64>()
    };
    // What JavaScript found missing, Python filled in, split by split.
    assert_eq!(imputed(train), missing(v_train), "{train:#}");
    assert_eq!(imputed(test), missing(v_test), "{test:#}");
    assert_eq!(
        train["stats"]["categorical"]["collector"]["categories"],
        json!(["ana", "ben", "chloe"])
    );
    let one_hot = ["collector=ana", "collector=ben", "collector=chloe"];
    let mut columns: Vec<&str> = FEATURES.to_vec();
    columns.extend(one_hot);
    columns.push("target");
    assert_eq!(train["columns"], json!(columns));
    assert_eq!(test["columns"], json!(columns));
    for out in [train, test] {
        let (header, rows) = read_csv(&on_host(&worker, &id, &out["path"]));
        assert_eq!(header, columns);
        for row in &rows {
            // Numbers everywhere the gaps were, exactly one category set per row.
            assert!(
                row[..4]
                    .iter()
                    .all(|c| c.parse::<f64>().is_ok_and(f64::is_finite)),
                "{row:?}"
            );
            let hot: Vec<&str> = row[4..7].iter().map(String::as_str).collect();
            assert_eq!(hot.iter().filter(|c| **c == "1").count(), 1, "{row:?}");
            assert!(hot.iter().all(|c| *c == "0" || *c == "1"), "{row:?}");
        }
    }
    // A gap in the test split holds the training split's mean: 0 once standardised with the
    // training split's statistics.
    let extracted = &steps["extract"]["output"];
    let (_, raw_test) = read_csv(&on_host(&worker, &id, &extracted["test"]["path"]));
    let (_, engineered_test) = read_csv(&on_host(&worker, &id, &test["path"]));
    let mut gaps = 0;
    for (raw, engineered) in raw_test.iter().zip(&engineered_test) {
        for column in 0..FEATURES.len() {
            if ["", "NA", "NaN", "?"].contains(&raw[column].as_str()) {
                assert_eq!(engineered[column].parse::<f64>()?, 0.0, "{engineered:?}");
                gaps += 1;
            }
        }
    }
    assert_eq!(gaps, missing(v_test));
    let model = read_json(&on_host(
        &worker,
        &id,
        &steps["train"]["output"]["model"]["path"],
    ));
    let names: Vec<&Value> = model["features"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["name"])
        .collect();
    assert_eq!(json!(names), json!(columns[..columns.len() - 1]));
    let accuracy = steps["evaluate"]["output"]["metrics"]["accuracy"]
        .as_f64()
        .unwrap();
    assert!(accuracy >= 0.8, "{result:#}");
    worker.stop().await
}

/// A table breaking a rule is reported by the JavaScript step, with the rows, and nothing is
/// engineered or trained: the condition on the features step skips it and all that follows.
#[tokio::test(flavor = "multi_thread")]
async fn a_table_breaking_a_rule_is_reported_and_nothing_is_trained() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    // Negative petal lengths in every tenth row: both splits get some.
    let planted = (1..=150).filter(|row| row % 10 == 0).count();
    let table = iris_with(|line, cells| {
        if line > 0 && line % 10 == 0 {
            cells[2] = format!("-{}", cells[2]);
        }
    });
    std::fs::write(data.path().join("iris-bad.csv"), table)?;
    let (worker, client, _plugins) = worker(Some(data.path())).await?;
    let id = unique("features-invalid");
    let (result, history) = run(
        &client,
        &worker,
        &id,
        spec(json!({"dataset": "/data/iris-bad.csv"}))?,
    )
    .await?;
    let steps = &result["steps"];
    for step in ["features_train", "features_test", "train", "evaluate"] {
        assert_eq!(steps[step]["status"], "skipped", "{step}: {result:#}");
    }
    assert_eq!(
        scheduled(&history),
        ["extract", "validate_train", "validate_test"],
        "no activity beyond validation"
    );

    let mut counted = 0;
    for step in ["validate_train", "validate_test"] {
        let summary = &steps[step]["output"];
        assert_eq!(summary["valid"], false, "{summary:#}");
        assert_eq!(summary["invalid_columns"], json!(["petal length (cm)"]));
        let report = read_json(&on_host(&worker, &id, &summary["report"]));
        let column = &report["column_reports"]["petal length (cm)"];
        assert_eq!(column["valid"], false);
        let violations = column["violations"].as_array().unwrap();
        assert_eq!(violations.len(), 1, "{column:#}");
        let below = &violations[0];
        assert_eq!(
            (below["rule"].clone(), below["limit"].clone()),
            (json!("min"), json!(0))
        );
        assert_eq!(below["count"], summary["violations"]);
        assert!(
            below["values"]
                .as_array()
                .unwrap()
                .iter()
                .all(|v| v.as_str().unwrap().starts_with('-')),
            "{below:#}"
        );
        counted += below["count"].as_u64().unwrap();
    }
    assert_eq!(
        counted, planted as u64,
        "every planted row is reported once"
    );
    worker.stop().await
}
