//! The `log_run` operation: one MLflow run per pipeline step, found again by its
//! `mlx.plugin_run` tag so a retried step never logs a second run.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::ErrorKind;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use mlx_plugin_sdk::{Context, ErrorDecl, JsonSchema, Operation, PluginError, log};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::batch::{self, KeyValue, Metric};
use crate::errors::{concat, total};
use crate::model::{self, LOSS_METRIC};
use crate::rest::{self, Client, Failure, TrackingUri};

/// The tags linking a run to the pipeline run and step that logged it.
pub const TAG_WORKFLOW: &str = "mlx.workflow_id";
pub const TAG_STEP: &str = "mlx.step";
/// `<workflow_id>/<activity_id>`: unique per step of a pipeline run, the same for every
/// attempt of it, so it is what a retry finds its earlier run by.
pub const TAG_PLUGIN_RUN: &str = "mlx.plugin_run";

/// Where the model file goes among the run's artifacts.
pub const MODEL_ARTIFACT: &str = "model/model.json";
/// The folder the `artifacts` files go to.
pub const FILES_DIR: &str = "files";

const OWN_ERRORS: &[ErrorDecl] = &[
    ErrorDecl::invalid_input("ParamTooLong", "a param value is over 6000 characters"),
    ErrorDecl::invalid_input(
        "ArtifactNotFound",
        "model or an artifacts file is missing or not granted",
    ),
    ErrorDecl::invalid_input("InvalidModel", "model is not a trainer model.json"),
    ErrorDecl::invalid_input(
        "DuplicateArtifact",
        "two artifacts files have the same name",
    ),
    ErrorDecl::retryable("ArtifactReadFailed", "a file could not be read"),
];

const N_ERRORS: usize = total(&[OWN_ERRORS, rest::ERRORS]);
const ALL_ERRORS: [ErrorDecl; N_ERRORS] = concat(&[OWN_ERRORS, rest::ERRORS]);

/// `log_run`.
pub struct LogRun;

impl Operation for LogRun {
    const NAME: &str = "log_run";
    const DOC: &str = "Logs one run to the MLflow tracking server at tracking_uri (its origin \
                       granted under [http] allow) in experiment (created if missing): params, \
                       every numeric leaf of metrics (nested keys joined with '.'), and with \
                       model (a trainer model.json) its family and hyperparameters as params, \
                       training.losses as the train_loss history (step = round) and the file \
                       as artifact model/model.json; artifacts files go under files/. The run \
                       is tagged mlx.workflow_id, mlx.step and mlx.plugin_run = \
                       <workflow_id>/<step>. Idempotent: a FINISHED run with the same \
                       mlx.plugin_run is returned with already_logged, an unfinished one (an \
                       attempt that died) is deleted and logged again.";
    const ERRORS: &[ErrorDecl] = &ALL_ERRORS;
    type Input = LogRunInput;
    type Output = LogRunOutput;

    fn run(input: LogRunInput, ctx: &Context) -> Result<LogRunOutput, PluginError> {
        let link = RunLink {
            workflow_id: ctx.workflow_id().to_string(),
            step: ctx.activity_id().to_string(),
        };
        log_run(input, &link)
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogRunInput {
    /// The MLflow server, http://host:port; its origin must be under [http] allow in the
    /// plugin's manifest.
    pub tracking_uri: String,
    /// The experiment's name; created if missing.
    #[schemars(length(min = 1))]
    pub experiment: String,
    /// Default: the step id.
    #[serde(default)]
    pub run_name: Option<String>,
    /// Logged as params: strings as they are, other values as compact JSON.
    #[serde(default)]
    pub params: Option<Map<String, Value>>,
    /// Every numeric leaf is logged as a metric (step 0), nested keys and array indices
    /// joined with '.'; other leaves are skipped and counted.
    #[serde(default)]
    pub metrics: Option<Map<String, Value>>,
    /// Path of a trainer model.json: adds params family and hyperparameters.<name> (params
    /// win on a clash), the train_loss history and the artifact model/model.json.
    #[serde(default)]
    pub model: Option<String>,
    /// More files to upload, as files/<file name> (e.g. evaluate_model's plots).
    #[serde(default)]
    pub artifacts: Vec<String>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LogRunOutput {
    pub run_id: String,
    pub experiment_id: String,
    /// The run's page in the MLflow UI.
    pub run_url: String,
    /// Params logged.
    pub params: u64,
    /// Metric values logged, the loss history's included.
    pub metric_points: u64,
    /// Leaves of metrics that are not numbers.
    pub skipped_metrics: u64,
    /// The run's artifact paths.
    pub artifacts: Vec<String>,
    /// A previous attempt of this step already logged the run: nothing was logged again.
    pub already_logged: bool,
}

/// Which pipeline run and step a run belongs to.
#[derive(Debug, Clone)]
pub struct RunLink {
    pub workflow_id: String,
    pub step: String,
}

impl RunLink {
    pub fn plugin_run(&self) -> String {
        format!("{}/{}", self.workflow_id, self.step)
    }
}

/// Everything a run logs, read and checked before the first request, so bad input never
/// leaves a half-logged run behind.
#[derive(Debug)]
pub struct Plan {
    pub params: Vec<KeyValue>,
    pub metrics: Vec<Metric>,
    pub skipped_metrics: u64,
    pub tags: Vec<KeyValue>,
    /// `(artifact path, bytes)`.
    pub files: Vec<(String, Vec<u8>)>,
}

pub fn plan(input: &LogRunInput, link: &RunLink, now_ms: i64) -> Result<Plan, PluginError> {
    let mut params = input
        .params
        .as_ref()
        .map(batch::params_from)
        .transpose()?
        .unwrap_or_default();
    let mut metrics = Vec::new();
    let mut flat = Vec::new();
    let skipped_metrics = input
        .metrics
        .as_ref()
        .map(|m| batch::flatten_metrics("", &Value::Object(m.clone()), &mut flat))
        .unwrap_or(0);
    metrics.extend(flat.into_iter().map(|(key, value)| Metric {
        key,
        value,
        timestamp: now_ms,
        step: 0,
    }));
    let mut files = Vec::new();
    if let Some(path) = &input.model {
        let bytes = read_file(path, "model")?;
        let trained = model::parse(&bytes, path)?;
        let explicit: BTreeSet<String> = params.iter().map(|p| p.key.clone()).collect();
        params.extend(
            trained
                .params
                .into_iter()
                .filter(|p| !explicit.contains(&p.key)),
        );
        metrics.extend(trained.losses.into_iter().map(|(round, loss)| Metric {
            key: LOSS_METRIC.into(),
            value: loss,
            timestamp: now_ms,
            step: round,
        }));
        files.push((MODEL_ARTIFACT.to_string(), bytes));
    }
    for path in &input.artifacts {
        let name = Path::new(path)
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| not_found(path, "artifacts", "it names no file"))?;
        let target = format!("{FILES_DIR}/{name}");
        if files.iter().any(|(t, _)| *t == target) {
            return Err(PluginError::invalid_input(
                "DuplicateArtifact",
                format!("two artifacts files are named {name:?}; they would overwrite each other"),
            ));
        }
        files.push((target, read_file(path, "artifacts")?));
    }
    let mut tags: Vec<KeyValue> = Vec::new();
    for (key, value) in input.tags.iter().flatten() {
        tags.push(KeyValue::new(key, value));
    }
    // The link tags go last and replace any given under the same keys: a retry finds its run
    // by them, so they cannot be left to the input.
    tags.retain(|t| ![TAG_WORKFLOW, TAG_STEP, TAG_PLUGIN_RUN].contains(&t.key.as_str()));
    tags.extend(link_tags(link));
    Ok(Plan {
        params,
        metrics,
        skipped_metrics,
        tags,
        files,
    })
}

pub fn link_tags(link: &RunLink) -> Vec<KeyValue> {
    vec![
        KeyValue::new(TAG_WORKFLOW, &link.workflow_id),
        KeyValue::new(TAG_STEP, &link.step),
        KeyValue::new(TAG_PLUGIN_RUN, link.plugin_run()),
    ]
}

fn read_file(path: &str, field: &str) -> Result<Vec<u8>, PluginError> {
    fs::read(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound | ErrorKind::PermissionDenied | ErrorKind::IsADirectory => {
            not_found(path, field, &e.to_string())
        }
        _ => PluginError::retryable("ArtifactReadFailed", format!("reading {path}: {e}"))
            .with_details(json!({"path": path})),
    })
}

fn not_found(path: &str, field: &str, why: &str) -> PluginError {
    PluginError::invalid_input(
        "ArtifactNotFound",
        format!(
            "{field} file {path} cannot be read ({why}); it must be a file inside a directory \
             granted to the plugin (usually /artifacts)"
        ),
    )
    .with_details(json!({"path": path}))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn log_run(input: LogRunInput, link: &RunLink) -> Result<LogRunOutput, PluginError> {
    let uri = TrackingUri::parse(&input.tracking_uri)?;
    let start = now_ms();
    let plan = plan(&input, link, start)?;
    let client = Client { uri };
    let experiment_id = experiment(&client, &input.experiment)?;
    let artifacts: Vec<String> = plan.files.iter().map(|(p, _)| p.clone()).collect();
    let output = |run_id: String, already_logged: bool| LogRunOutput {
        run_url: client.uri.run_url(&experiment_id, &run_id),
        run_id,
        experiment_id: experiment_id.clone(),
        params: plan.params.len() as u64,
        metric_points: plan.metrics.len() as u64,
        skipped_metrics: plan.skipped_metrics,
        artifacts: artifacts.clone(),
        already_logged,
    };

    let filter = rest::tag_filter(TAG_PLUGIN_RUN, &link.plugin_run())?;
    let found = client.call(
        "runs/search",
        Some(&json!({"experiment_ids": [experiment_id], "filter": filter, "max_results": 100})),
    )?;
    for run in found["runs"].as_array().into_iter().flatten() {
        let info = &run["info"];
        let run_id = info["run_id"].as_str().unwrap_or_default().to_string();
        if info["status"] == "FINISHED" {
            log::info(
                "run already logged",
                &[("run_id", &run_id), ("plugin_run", &link.plugin_run())],
            );
            return Ok(output(run_id, true));
        }
        // An attempt that died midway: its run may miss anything, and MLflow refuses to log
        // a param twice with another value, so it is replaced rather than completed.
        log::warn(
            "deleting an unfinished run of an earlier attempt",
            &[("run_id", &run_id), ("status", &info["status"])],
        );
        client.call("runs/delete", Some(&json!({"run_id": run_id})))?;
    }

    let run_name = input.run_name.clone().unwrap_or_else(|| link.step.clone());
    let created = client.call(
        "runs/create",
        Some(&json!({
            "experiment_id": experiment_id, "run_name": run_name, "start_time": start,
            "tags": link_tags(link),
        })),
    )?;
    let info = &created["run"]["info"];
    let run_id = info["run_id"]
        .as_str()
        .ok_or_else(|| bad_response("runs/create", &created))?
        .to_string();
    let artifact_uri = info["artifact_uri"].as_str().unwrap_or_default();
    if !plan.files.is_empty()
        && let Err(e) = rest::artifact_root(artifact_uri)
    {
        fail_run(&client, &run_id);
        return Err(e);
    }

    for batch in batch::chunk(plan.metrics.clone(), plan.params.clone(), plan.tags.clone()) {
        let mut body = serde_json::to_value(&batch)
            .map_err(|e| bad_response("log-batch", &json!(e.to_string())))?;
        body["run_id"] = json!(run_id);
        client.call("runs/log-batch", Some(&body))?;
    }
    for (path, bytes) in &plan.files {
        client.upload(artifact_uri, path, bytes)?;
    }
    client.call(
        "runs/update",
        Some(&json!({"run_id": run_id, "status": "FINISHED", "end_time": now_ms()})),
    )?;
    log::info(
        "run logged",
        &[
            ("run_id", &run_id),
            ("params", &plan.params.len()),
            ("metric_points", &plan.metrics.len()),
            ("artifacts", &artifacts.len()),
        ],
    );
    Ok(output(run_id, false))
}

/// The id of experiment `name`, created if missing.
fn experiment(client: &Client, name: &str) -> Result<String, PluginError> {
    let get = || {
        client.call(
            &format!(
                "experiments/get-by-name?experiment_name={}",
                rest::encode(name)
            ),
            None,
        )
    };
    let id = |answer: &Value, what: &str| {
        answer["experiment"]["experiment_id"]
            .as_str()
            .or_else(|| answer["experiment_id"].as_str())
            .map(str::to_string)
            .ok_or_else(|| bad_response(what, answer))
    };
    match get() {
        Ok(found) => return id(&found, "experiments/get-by-name"),
        Err(e) if e.is_code("RESOURCE_DOES_NOT_EXIST") => {}
        Err(e) => return Err(e.into()),
    }
    match client.call("experiments/create", Some(&json!({"name": name}))) {
        Ok(created) => id(&created, "experiments/create"),
        // Another step created it between the two calls.
        Err(e) if e.is_code("RESOURCE_ALREADY_EXISTS") => id(
            &get().map_err(PluginError::from)?,
            "experiments/get-by-name",
        ),
        Err(e) => Err(e.into()),
    }
}

/// Marks a run that cannot be completed FAILED, so the UI does not show it running forever;
/// best effort, since the error being returned is the one that matters.
fn fail_run(client: &Client, run_id: &str) {
    let _: Result<Value, Failure> = client.call(
        "runs/update",
        Some(&json!({"run_id": run_id, "status": "FAILED", "end_time": now_ms()})),
    );
}

fn bad_response(what: &str, answer: &Value) -> PluginError {
    let text: String = answer.to_string().chars().take(300).collect();
    PluginError::permanent(
        "MlflowBadResponse",
        format!("the answer to {what} is not what MLflow sends: {text}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(extra: Value) -> LogRunInput {
        let mut base = json!({"tracking_uri": "http://127.0.0.1:5000", "experiment": "e"});
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn link() -> RunLink {
        RunLink {
            workflow_id: "wf-1".into(),
            step: "track".into(),
        }
    }

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("mlx-mlflow-{}-{name}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_model_adds_its_params_loss_history_and_file_and_explicit_params_win() {
        let dir = temp("plan");
        let model = dir.join("model.json");
        fs::write(
            &model,
            json!({
                "format": "mlx-trainer-model",
                "model": {"spec": {"family": "gradient_boosting",
                                   "hyperparameters": {"n_estimators": 2, "max_depth": 3}}},
                "training": {"losses": [[1, 0.5], [2, 0.25]]},
            })
            .to_string(),
        )
        .unwrap();
        let plot = dir.join("roc.svg");
        fs::write(&plot, "<svg/>").unwrap();
        let input = input(json!({
            "params": {"hyperparameters.max_depth": "tuned", "dataset": "bc"},
            "metrics": {"accuracy": 0.9, "classes": ["a", "b"]},
            "model": model.display().to_string(),
            "artifacts": [plot.display().to_string()],
            "tags": {"team": "ml", "mlx.step": "spoofed"},
        }));
        let plan = plan(&input, &link(), 7).unwrap();
        let params: Vec<(&str, &str)> = plan
            .params
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(
            params,
            [
                ("dataset", "bc"),
                ("hyperparameters.max_depth", "tuned"),
                ("family", "gradient_boosting"),
                ("hyperparameters.n_estimators", "2"),
            ]
        );
        let metrics: Vec<(&str, f64, i64)> = plan
            .metrics
            .iter()
            .map(|m| (m.key.as_str(), m.value, m.step))
            .collect();
        assert_eq!(
            metrics,
            [
                ("accuracy", 0.9, 0),
                ("train_loss", 0.5, 1),
                ("train_loss", 0.25, 2)
            ]
        );
        assert!(plan.metrics.iter().all(|m| m.timestamp == 7));
        assert_eq!(plan.skipped_metrics, 2);
        let files: Vec<&str> = plan.files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(files, ["model/model.json", "files/roc.svg"]);
        let tags: Vec<(&str, &str)> = plan
            .tags
            .iter()
            .map(|t| (t.key.as_str(), t.value.as_str()))
            .collect();
        assert_eq!(
            tags,
            [
                ("team", "ml"),
                ("mlx.workflow_id", "wf-1"),
                ("mlx.step", "track"),
                ("mlx.plugin_run", "wf-1/track"),
            ]
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_files_are_invalid_input_naming_the_path() {
        for extra in [
            json!({"model": "/nowhere/model.json"}),
            json!({"artifacts": ["/nowhere/plot.svg"]}),
        ] {
            let err = plan(&input(extra), &link(), 0).unwrap_err();
            assert_eq!(err.type_name, "ArtifactNotFound");
            assert_eq!(err.kind, mlx_plugin_sdk::ErrorKind::InvalidInput);
            assert!(err.message.contains("/nowhere/"), "{}", err.message);
        }
        let dir = temp("dup");
        for sub in ["a", "b"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
            fs::write(dir.join(sub).join("p.svg"), "x").unwrap();
        }
        let paths: Vec<String> = ["a", "b"]
            .iter()
            .map(|s| dir.join(s).join("p.svg").display().to_string())
            .collect();
        let err = plan(&input(json!({"artifacts": paths})), &link(), 0).unwrap_err();
        assert_eq!(err.type_name, "DuplicateArtifact");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unknown_fields_are_refused() {
        let bad = json!({"tracking_uri": "http://h:1", "experiment": "e", "metric": {}});
        assert!(serde_json::from_value::<LogRunInput>(bad).is_err());
    }
}
