//! The JSON contract: defaults, refusals, the schema the host checks, and validate.

use mlx_plugin_sdk::{Context, JsonSchema, Operation, PluginError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::super::{
    ForestParams, KmeansParams, LinearParams, MaxFeatures, MaxFeaturesRule, ModelSpec, Task,
};

/// An operation taking a spec, to run inputs through the host's schema check as an
/// operation's input would be.
struct TakesSpec;

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Input {
    model: ModelSpec,
}

#[derive(Serialize, JsonSchema)]
struct Output {
    family: String,
}

impl Operation for TakesSpec {
    const NAME: &str = "takes_spec";
    const DOC: &str = "";
    type Input = Input;
    type Output = Output;

    fn run(input: Input, _: &Context) -> Result<Output, PluginError> {
        Ok(Output {
            family: input.model.family().into(),
        })
    }
}

/// Whether the host's schema check accepts `model`.
fn schema_accepts(model: &Value) -> bool {
    Context::detached(1, None)
        .call::<TakesSpec>(json!({ "model": model }))
        .is_ok()
}

/// Whether `model` reads and validates for a task its family does; the schema must agree.
fn accepted(model: Value) -> bool {
    let by_serde = serde_json::from_value::<ModelSpec>(model.clone())
        .is_ok_and(|spec| spec.validate(task_for(&spec)).is_ok());
    assert_eq!(
        schema_accepts(&model),
        by_serde,
        "schema and code disagree on {model}"
    );
    by_serde
}

fn task_for(spec: &ModelSpec) -> Task {
    match spec {
        ModelSpec::Kmeans(_) => Task::Clustering,
        ModelSpec::LinearRegression(_) | ModelSpec::Ridge(_) => Task::Regression,
        _ => Task::Classification { classes: 3 },
    }
}

#[test]
fn a_family_alone_takes_the_defaults() {
    for family in [
        "logistic_regression",
        "decision_tree",
        "random_forest",
        "gradient_boosting",
        "linear_regression",
        "ridge",
        "kmeans",
    ] {
        assert!(accepted(json!({ "family": family })), "{family}");
        let spec: ModelSpec = serde_json::from_value(json!({ "family": family })).unwrap();
        assert_eq!(spec.family(), family);
        let with_empty: ModelSpec =
            serde_json::from_value(json!({ "family": family, "hyperparameters": {} })).unwrap();
        assert_eq!(spec, with_empty);
    }
    let spec: ModelSpec = serde_json::from_value(json!({"family": "random_forest"})).unwrap();
    assert_eq!(spec, ModelSpec::RandomForest(ForestParams::default()));
    assert_eq!(ForestParams::default().n_estimators, 100);
    assert_eq!(KmeansParams::default().k, 8);
    // A spec written back reads the same.
    let written = serde_json::to_value(&spec).unwrap();
    assert_eq!(serde_json::from_value::<ModelSpec>(written).unwrap(), spec);
    let linear = ModelSpec::LinearRegression(LinearParams {});
    let written = serde_json::to_value(&linear).unwrap();
    assert_eq!(
        serde_json::from_value::<ModelSpec>(written).unwrap(),
        linear
    );
}

#[test]
fn max_features_is_a_rule_or_a_count() {
    let forest = |max_features: Value| json!({"family": "random_forest", "hyperparameters": {"max_features": max_features}});
    for (value, expected) in [
        (json!("sqrt"), MaxFeatures::Named(MaxFeaturesRule::Sqrt)),
        (json!("all"), MaxFeatures::Named(MaxFeaturesRule::All)),
        (json!(3), MaxFeatures::Count(3)),
    ] {
        assert!(accepted(forest(value.clone())), "{value}");
        let ModelSpec::RandomForest(p) = serde_json::from_value(forest(value)).unwrap() else {
            panic!("not a forest");
        };
        assert_eq!(p.max_features, Some(expected));
    }
    assert!(!accepted(forest(json!("log2"))));
    assert!(!accepted(forest(json!(0))));
}

#[test]
fn misspelt_and_out_of_range_hyperparameters_are_refused_by_schema_and_validate() {
    for model in [
        json!({"family": "random_forest", "hyperparameters": {"n_trees": 10}}),
        json!({"family": "random_forest", "hyperparameters": {"n_estimators": 0}}),
        json!({"family": "random_forest", "hyperparameters": {"max_depth": 0}}),
        json!({"family": "random_forest", "params": {}}),
        json!({"family": "gradient_boosting", "hyperparameters": {"learning_rate": 0}}),
        json!({"family": "gradient_boosting", "hyperparameters": {"learning_rate": 1.5}}),
        json!({"family": "decision_tree", "hyperparameters": {"criterion": "mse"}}),
        json!({"family": "decision_tree", "hyperparameters": {"min_samples_split": 1}}),
        json!({"family": "logistic_regression", "hyperparameters": {"alpha": -1}}),
        json!({"family": "linear_regression", "hyperparameters": {"alpha": 1}}),
        json!({"family": "kmeans", "hyperparameters": {"k": 1}}),
        json!({"family": "svm"}),
        json!({}),
    ] {
        assert!(!accepted(model.clone()), "{model}");
    }
}

#[test]
fn the_schema_documents_defaults_and_ranges() {
    let schema = mlx_plugin_sdk::schema::input::<Input>();
    let text = schema.to_string();
    for expected in [
        "scikit-learn's default 100",
        "\"maximum\":10000",
        "\"exclusiveMinimum\":0",
    ] {
        assert!(text.contains(expected), "{expected} not in {schema:#}");
    }
}

#[test]
fn validate_names_the_tasks_a_family_does() {
    let linear: ModelSpec = serde_json::from_value(json!({"family": "linear_regression"})).unwrap();
    let err = linear
        .validate(Task::Classification { classes: 3 })
        .unwrap_err();
    assert_eq!(err.type_name, "UnsupportedTask");
    assert!(err.message.contains("regression only"), "{}", err.message);
    let forest: ModelSpec = serde_json::from_value(json!({"family": "random_forest"})).unwrap();
    assert_eq!(
        forest.validate(Task::Clustering).unwrap_err().type_name,
        "UnsupportedTask"
    );
    forest.validate(Task::Regression).unwrap();
    forest
        .validate(Task::Classification { classes: 2 })
        .unwrap();
    let err = forest
        .validate(Task::Classification { classes: 1 })
        .unwrap_err();
    assert_eq!(err.type_name, "TooFewClasses");
    let entropy: ModelSpec = serde_json::from_value(
        json!({"family": "decision_tree", "hyperparameters": {"criterion": "entropy"}}),
    )
    .unwrap();
    assert_eq!(
        entropy.validate(Task::Regression).unwrap_err().type_name,
        "InvalidParameter"
    );
}
