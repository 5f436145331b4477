//! The `evaluate_model` operation: score a saved model on a labelled CSV.

use mlx_plugin_sdk::{Context, ErrorDecl, JsonSchema, Operation, PluginError, log};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::data;
use crate::metrics::{Report, evaluate};
use crate::model_file;

/// `evaluate_model`.
pub struct EvaluateModel;

impl Operation for EvaluateModel {
    const NAME: &str = "evaluate_model";
    const DOC: &str = "Scores a model.json written by train_model on a labelled CSV with the \
                       model's feature columns (same names, same order) and its target column: \
                       predicts every row and reports the metrics train_model reports for its \
                       test split.";
    const ERRORS: &[ErrorDecl] = &[
        ErrorDecl::invalid_input("InvalidParameter", "the model records no target; pass one"),
        ErrorDecl::invalid_input(
            "ArtifactNotFound",
            "model or data is missing or not granted",
        ),
        ErrorDecl::invalid_input("InvalidModel", "model is not a trainer model.json"),
        ErrorDecl::invalid_input("UnsupportedModelFormat", "model is of a newer format"),
        ErrorDecl::invalid_input("ColumnNotFound", "target is not in the header"),
        ErrorDecl::invalid_input("HeaderMismatch", "data has other feature columns"),
        ErrorDecl::invalid_input("NonNumericValue", "a feature cell is not a number"),
        ErrorDecl::invalid_input("MalformedCsv", ""),
        ErrorDecl::invalid_input("NoFeatures", "no column besides the target"),
        ErrorDecl::invalid_input("NoRows", "data has no rows"),
        ErrorDecl::invalid_input("UnknownClass", "data has a class the model does not know"),
        ErrorDecl::retryable("ArtifactReadFailed", ""),
    ];
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
    /// Path of a CSV with the model's feature columns and the target column.
    pub data: String,
    /// Class column; defaults to the one recorded in the model.
    #[serde(default)]
    pub target: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct EvaluateOutput {
    pub metrics: Report,
    #[schemars(range(min = 1))]
    pub rows: u64,
    /// confusion_matrix[true][predicted], in classes order.
    pub confusion_matrix: Vec<Vec<u64>>,
    pub classes: Vec<String>,
}

pub fn evaluate_model(input: EvaluateInput) -> Result<EvaluateOutput, PluginError> {
    let model = model_file::parse(&model_file::read(&input.model)?, &input.model)?;
    let target = input
        .target
        .or_else(|| model.target.clone())
        .ok_or_else(|| {
            PluginError::invalid_input(
                "InvalidParameter",
                format!(
                    "{} does not record its target column; pass \"target\"",
                    input.model
                ),
            )
        })?;
    let data = data::load(&input.data, &target)?;
    // Weights are per position, so a reordered or renamed column would silently feed the
    // wrong feature into each weight.
    if data.features != model.features {
        return Err(PluginError::invalid_input(
            "HeaderMismatch",
            format!(
                "{} has feature columns {:?} but the model was trained on {:?} (same names, \
                 same order, besides the target {target:?})",
                input.data, data.features, model.features
            ),
        )
        .with_details(json!({"expected": model.features, "found": data.features})));
    }
    if data.x.is_empty() {
        return Err(PluginError::invalid_input(
            "NoRows",
            format!("{} has no rows to evaluate", input.data),
        ));
    }
    let y = data.class_indices(&model.classes, &input.data)?;
    let evaluation = evaluate(&model.predict(&data.x), &y, &model.classes);
    log::info(
        "model evaluated",
        &[("accuracy", &evaluation.accuracy), ("rows", &y.len())],
    );
    Ok(EvaluateOutput {
        confusion_matrix: evaluation.confusion_matrix.clone(),
        metrics: evaluation.report(&model.classes),
        rows: y.len() as u64,
        classes: model.classes,
    })
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use mlx_plugin_sdk::{Context, ErrorKind};

    use serde_json::Value;

    use super::*;
    use crate::pipeline_tests::{extract, input, train, workdir};

    fn eval(dir: &Path, data: &str, extra: Value) -> Result<Value, PluginError> {
        let mut v = json!({"model": dir.join("model/model.json"), "data": dir.join(data)});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        Context::detached(1, None).call::<EvaluateModel>(v)
    }

    #[test]
    fn reproduces_train_model_metrics_on_the_same_split() {
        for (name, data) in [("eval-iris", "iris.csv"), ("eval-bc", "breast_cancer.csv")] {
            let dir = workdir(name);
            extract(data, &dir);
            let trained = train(input(&dir, json!({})), &Context::detached(1, None)).unwrap();
            let out = eval(&dir, "test.csv", json!({})).unwrap();
            // Every key evaluate reports, train_model reported identically for its test split.
            let (m, t) = (&out["metrics"], &trained["metrics"]);
            for (key, value) in m.as_object().unwrap() {
                assert_eq!(value, &t[key], "{data}: metrics.{key}");
            }
            for key in ["accuracy", "f1_macro", "log_loss", "per_class"] {
                assert!(!m[key].is_null(), "{data}: metrics.{key} missing");
            }
            assert_eq!(out["rows"], trained["test_rows"], "{data}");
            assert_eq!(out["confusion_matrix"], t["confusion_matrix"], "{data}");
            assert_eq!(out["classes"], t["classes"], "{data}");

            // On the train split the same model gives train_model's train metrics.
            let on_train = eval(&dir, "train.csv", json!({})).unwrap();
            assert_eq!(on_train["rows"], trained["train_rows"], "{data}");
            assert_eq!(
                on_train["metrics"]["accuracy"], t["train_accuracy"],
                "{data}"
            );
            let (a, b) = (
                on_train["metrics"]["log_loss"].as_f64().unwrap(),
                t["train_log_loss"].as_f64().unwrap(),
            );
            assert!((a - b).abs() < 1e-12, "{data}: train log loss {a} vs {b}");
            fs::remove_dir_all(dir).unwrap();
        }
    }

    #[test]
    fn typed_errors() {
        let dir = workdir("eval-errors");
        let err = eval(&dir, "test.csv", json!({})).unwrap_err();
        assert_eq!(
            (err.kind, err.type_name.as_str()),
            (ErrorKind::InvalidInput, "ArtifactNotFound")
        );

        extract("iris.csv", &dir);
        train(
            input(&dir, json!({"epochs": 20})),
            &Context::detached(1, None),
        )
        .unwrap();
        let test = fs::read_to_string(dir.join("test.csv")).unwrap();
        let (header, rows) = test.split_once('\n').unwrap();
        let write = |name: &str, text: String| fs::write(dir.join(name), text).unwrap();

        // Feature columns swapped: same names, wrong positions for the weights.
        let mut cols: Vec<&str> = header.split(',').collect();
        cols.swap(0, 1);
        write("swapped.csv", format!("{}\n{rows}", cols.join(",")));
        assert_eq!(
            eval(&dir, "swapped.csv", json!({})).unwrap_err().type_name,
            "HeaderMismatch"
        );

        write("unknown.csv", format!("{header}\n1,2,3,4,daisy\n{rows}"));
        let err = eval(&dir, "unknown.csv", json!({})).unwrap_err();
        assert_eq!(err.type_name, "UnknownClass");
        assert_eq!(err.details.unwrap()["unknown"], json!(["daisy"]));

        write("empty.csv", format!("{header}\n"));
        assert_eq!(
            eval(&dir, "empty.csv", json!({})).unwrap_err().type_name,
            "NoRows"
        );

        let err = eval(&dir, "test.csv", json!({"target": "species"})).unwrap_err();
        assert_eq!(err.type_name, "ColumnNotFound");

        // A model that does not record its target needs one in the input.
        let path = dir.join("model/model.json");
        let mut model: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        model.as_object_mut().unwrap().remove("target");
        fs::write(&path, serde_json::to_vec(&model).unwrap()).unwrap();
        assert_eq!(
            eval(&dir, "test.csv", json!({})).unwrap_err().type_name,
            "InvalidParameter"
        );
        let out = eval(&dir, "test.csv", json!({"target": "target"})).unwrap();
        assert_eq!(out["rows"], 30);

        fs::write(
            &path,
            b"{\"format\": \"mlx-softmax-regression\", \"format_version\": 2}",
        )
        .unwrap();
        assert_eq!(
            eval(&dir, "test.csv", json!({})).unwrap_err().type_name,
            "UnsupportedModelFormat"
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
