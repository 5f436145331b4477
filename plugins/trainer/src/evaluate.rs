//! The `evaluate_model` operation: score a saved model on a CSV or Parquet file whose truth is
//! known, and draw the plots of that score next to the metrics.

use std::path::{Path, PathBuf};

use mlx_plugin_sdk::{Context, ErrorDecl, JsonSchema, Operation, PluginError, log};
use serde::{Deserialize, Serialize};

use crate::data;
use crate::errors::{FAMILIES, SCORING, concat, total};
use crate::evaluation::{self, Metrics, Plots, Truth};
use crate::families::Task;
use crate::model_file;

/// `evaluate_model`.
pub struct EvaluateModel;

const OWN_ERRORS: &[ErrorDecl] = &[
    ErrorDecl::invalid_input("InvalidModel", "model is not a trainer model.json"),
    ErrorDecl::invalid_input("UnsupportedModelFormat", "model is of another format"),
];
const PARTS: &[&[ErrorDecl]] = &[mlx_tabular::ERRORS, FAMILIES, SCORING, OWN_ERRORS];
const EVALUATE_ERRORS: [ErrorDecl; total(PARTS)] = concat(PARTS);

impl Operation for EvaluateModel {
    const NAME: &str = "evaluate_model";
    const DOC: &str = "Scores a model.json written by train_model on a CSV or Parquet file with \
                       the model's feature columns (encoded as in training) and its target: \
                       the metrics train_model reports for its test split, and SVG plots in \
                       plots_dir (confusion matrix and ROC curves for classifiers, residuals \
                       for regressors, feature importances where the family has them).";
    const ERRORS: &[ErrorDecl] = &EVALUATE_ERRORS;
    type Input = EvaluateInput;
    type Output = EvaluateOutput;

    fn run(input: EvaluateInput, _ctx: &Context) -> Result<EvaluateOutput, PluginError> {
        evaluate_model(input)
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateInput {
    /// Path of model.json (train_model's model.path).
    pub model: String,
    /// Path of a CSV or Parquet file with the model's feature columns and its target column.
    pub data: String,
    /// Target column; defaults to the one recorded in the model.
    #[serde(default)]
    pub target: Option<String>,
    /// Where the SVG plots go. Default: an `evaluation` directory beside the model.
    #[serde(default)]
    pub plots_dir: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct EvaluateOutput {
    pub family: String,
    pub metrics: Metrics,
    #[schemars(range(min = 1))]
    pub rows: u64,
    pub plots: Plots,
}

pub fn evaluate_model(input: EvaluateInput) -> Result<EvaluateOutput, PluginError> {
    let file = model_file::parse(&model_file::read(&input.model)?, &input.model)?;
    let table = data::load(&input.data)?;
    let x = file.features.transform(&table)?;
    let target = input.target.as_deref().or(file.target.as_deref());
    let need_target = || {
        PluginError::invalid_input(
            "MissingTarget",
            format!(
                "{} does not record its target column; pass \"target\"",
                input.model
            ),
        )
    };
    let (classes_y, values_y);
    let truth = match file.model.task() {
        Task::Classification { .. } => {
            let target = target.ok_or_else(need_target)?;
            classes_y = data::class_indices(&table, target, &file.classes, &input.data)?;
            Truth::Classes(&classes_y)
        }
        Task::Regression => {
            let target = target.ok_or_else(need_target)?;
            values_y = data::target_values(&table, target, &input.data)?;
            Truth::Values(&values_y)
        }
        Task::Clustering => Truth::None,
    };
    let scored = evaluation::score(&file.model, &x, &truth, &file.classes)?;
    let dir = input.plots_dir.map(PathBuf::from).unwrap_or_else(|| {
        Path::new(&input.model)
            .parent()
            .unwrap_or(Path::new("."))
            .join("evaluation")
    });
    let names = file.features.output_names();
    let plots = evaluation::write_plots(&dir, &scored, &truth, &file.model, &file.classes, &names)?;
    let family = file.model.spec().family().to_string();
    log::info(
        "model evaluated",
        &[
            ("family", &family),
            ("rows", &x.rows),
            ("plots", &dir.display().to_string()),
        ],
    );
    Ok(EvaluateOutput {
        family,
        metrics: scored.metrics,
        rows: x.rows as u64,
        plots,
    })
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use mlx_plugin_sdk::{Context, ErrorKind};
    use serde_json::{Value, json};

    use super::*;
    use crate::pipeline_tests::{extract, extract_regression, input, train, workdir};

    fn eval(dir: &Path, data: &str, extra: Value) -> Result<Value, PluginError> {
        let mut v = json!({"model": dir.join("model/model.json"), "data": dir.join(data)});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        Context::detached(1, None).call::<EvaluateModel>(v)
    }

    fn svg(path: &Value) -> String {
        let text = fs::read_to_string(path.as_str().unwrap()).unwrap();
        assert!(text.contains("<svg"), "{path}: {text}");
        text
    }

    #[test]
    fn reproduces_train_model_metrics_and_draws_the_plots() {
        let dir = workdir("eval-forest");
        extract("wine.csv", &dir);
        let model = json!({"family": "random_forest", "hyperparameters": {"n_estimators": 15}});
        let trained = train(
            input(&dir, json!({"model": model})),
            &Context::detached(1, None),
        )
        .unwrap();
        let out = eval(&dir, "test.csv", json!({})).unwrap();
        assert_eq!(out["metrics"], trained["metrics"]);
        assert_eq!(out["rows"], trained["test_rows"]);
        assert_eq!(out["family"], "random_forest");
        let plots = &out["plots"];
        assert!(svg(&plots["confusion_matrix"]).contains("class_2"));
        svg(&plots["roc_curve"]);
        svg(&plots["feature_importances"]);
        assert_eq!(
            plots["residuals"],
            Value::Null,
            "a classifier has no residuals"
        );
        assert!(
            plots["roc_curve"]
                .as_str()
                .unwrap()
                .contains("model/evaluation/")
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn regression_gets_residuals_and_clustering_no_truth() {
        let dir = workdir("eval-regression");
        extract_regression("diabetes.csv", &dir);
        let extra = json!({"task": "regression", "model": {"family": "ridge"}});
        let trained = train(input(&dir, extra), &Context::detached(1, None)).unwrap();
        let plots_dir = dir.join("plots");
        let out = eval(&dir, "test.csv", json!({"plots_dir": plots_dir})).unwrap();
        assert_eq!(out["metrics"], trained["metrics"]);
        svg(&out["plots"]["residuals"]);
        svg(&out["plots"]["feature_importances"]);
        assert!(plots_dir.join("residuals.svg").exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn refuses_unknown_classes_other_formats_and_missing_files() {
        let dir = workdir("eval-errors");
        extract("iris.csv", &dir);
        train(input(&dir, json!({})), &Context::detached(1, None)).unwrap();
        fs::write(
            dir.join("odd.csv"),
            "sepal length (cm),sepal width (cm),petal length (cm),petal width (cm),target\n\
             5.1,3.5,1.4,0.2,daisy\n",
        )
        .unwrap();
        let err = eval(&dir, "odd.csv", json!({})).unwrap_err();
        assert_eq!(
            (err.kind, err.type_name.as_str()),
            (ErrorKind::InvalidInput, "UnknownClass")
        );
        let err = eval(&dir, "missing.csv", json!({})).unwrap_err();
        assert_eq!(err.type_name, "ArtifactNotFound");
        let old = r#"{"format": "mlx-softmax-regression", "format_version": 1}"#;
        fs::write(dir.join("model/model.json"), old).unwrap();
        let err = eval(&dir, "test.csv", json!({})).unwrap_err();
        assert_eq!(err.type_name, "UnsupportedModelFormat");
        assert!(
            err.message.contains("Train the model again"),
            "{}",
            err.message
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
