//! `trainer` plugin: trains classifiers, regressors and clusterings of every family in
//! `families` (smartcore) on CSV or Parquet splits, checkpointing ensembles so a retried
//! attempt resumes where the last one stopped, and writes the model with its metrics as JSON;
//! evaluates a saved model on other data (metrics and SVG plots) and registers it in a
//! versioned directory.

mod checkpoint;
mod data;
mod errors;
mod evaluate;
mod evaluation;
mod families;
mod files;
mod model_file;
mod register;
mod report;
mod train;

#[cfg(test)]
mod pipeline_tests;

pub use evaluate::EvaluateModel;
pub use register::RegisterModel;
pub use train::TrainModel;

// train_model first: `mlx-worker plugin describe` tests read operations[0].
mlx_plugin_sdk::plugin!(Trainer {
    name: "trainer",
    version: env!("CARGO_PKG_VERSION"),
    description: "Trains, evaluates and registers models (classification, regression, clustering) on CSV or Parquet artifacts.",
    operations: [TrainModel, EvaluateModel, RegisterModel],
});

#[cfg(test)]
mod tests {
    use mlx_plugin_sdk::{Context, Plugin};
    use serde_json::{Value, json};

    use super::*;
    use crate::pipeline_tests::{extract, workdir};

    /// Every key `schema` requires is in `value`, one level into object properties.
    fn assert_required(schema: &Value, value: &Value, what: &str) {
        for key in schema["required"].as_array().into_iter().flatten() {
            let key = key.as_str().unwrap();
            assert!(value.get(key).is_some(), "{what}: no {key:?} in {value}");
            if schema["properties"][key]["type"] == "object" && value[key].is_object() {
                assert_required(&schema["properties"][key], &value[key], what);
            }
        }
    }

    #[test]
    fn operations_are_dispatched_and_return_what_they_declare() {
        let info = Trainer::info();
        let names: Vec<&str> = info.operations.iter().map(|o| o.name.as_str()).collect();
        // train_model first: `mlx-worker plugin describe` tests read operations[0].
        assert_eq!(names, ["train_model", "evaluate_model", "register_model"]);

        let dir = workdir("dispatch");
        extract("iris.csv", &dir);
        let ctx = Context::detached(1, None);
        let path = |p: &str| dir.join(p).display().to_string();
        let inputs = [
            json!({"train": path("train.csv"), "test": path("test.csv"), "target": "target",
                   "output_dir": path("model")}),
            json!({"model": path("model/model.json"), "data": path("test.csv")}),
            json!({"model": path("model/model.json"), "name": "iris",
                   "registry_dir": path("registry")}),
        ];
        for (op, input) in info.operations.iter().zip(inputs) {
            let out = Trainer::invoke(&op.name, input, &ctx).unwrap();
            assert_required(&op.output_schema, &out, &op.name);
            let schema = &op.input_schema;
            for key in schema["required"].as_array().unwrap() {
                assert!(schema["properties"][key.as_str().unwrap()].is_object());
            }
        }
        let err = Trainer::invoke("evaluate_model", json!({"model": "m"}), &ctx).unwrap_err();
        assert_eq!(err.type_name, "InvalidInput", "data is required");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
