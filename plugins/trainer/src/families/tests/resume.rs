//! A training interrupted after any round and resumed from its journal (header and round
//! records) gives the model an uninterrupted run gives, bit for bit; a journal of other
//! training is refused.

use serde_json::{Value, json};

use super::super::{Fit, Header, Matrix, Target, Task};
use super::data::{Dataset, load, spec};

fn classes(data: &Dataset) -> (Task, Target) {
    let task = Task::Classification {
        classes: data.class_names.len(),
    };
    (task, Target::Classes(data.classes.clone()))
}

/// What a journal of `fit`'s rounds so far holds, through JSON text as through the file.
fn journal(fit: &Fit) -> (Header, Vec<Value>) {
    let text = serde_json::to_string(&fit.header()).unwrap();
    let records = (1..=fit.rounds_done())
        .map(|r| {
            let line = serde_json::to_string(&fit.record(r).unwrap()).unwrap();
            serde_json::from_str(&line).unwrap()
        })
        .collect();
    (serde_json::from_str(&text).unwrap(), records)
}

/// Trains 10 rounds uninterrupted, and again stopping after 4 with the journal going
/// through JSON text (as it does through a file between attempts); compares everything.
fn check_resume_is_exact(spec_json: Value, task: Task, x: &Matrix, y: &Target) {
    let spec = spec(spec_json);
    let mut whole = Fit::start(&spec, task, x, y).unwrap();
    assert_eq!(whole.rounds_total(), 10);
    let mut whole_losses = Vec::new();
    while whole.rounds_done() < whole.rounds_total() {
        whole_losses.push(whole.step().unwrap());
    }
    let whole = whole.finish().unwrap();

    let mut first = Fit::start(&spec, task, x, y).unwrap();
    for _ in 0..4 {
        first.step().unwrap();
    }
    let (header, records) = journal(&first);
    drop(first);
    assert_eq!(records.len(), 4);
    let mut resumed = Fit::resume(&spec, task, x, y, &header, records).unwrap();
    assert_eq!(resumed.rounds_done(), 4);
    let mut resumed_losses = Vec::new();
    while resumed.rounds_done() < resumed.rounds_total() {
        resumed_losses.push(resumed.step().unwrap());
    }
    assert_eq!(resumed_losses, whole_losses[4..]);
    let resumed = resumed.finish().unwrap();

    assert_eq!(resumed.predict(x).unwrap(), whole.predict(x).unwrap());
    if let Task::Classification { .. } = task {
        assert_eq!(
            resumed.predict_proba(x).unwrap(),
            whole.predict_proba(x).unwrap()
        );
    }
    assert_eq!(resumed.feature_importances(), whole.feature_importances());
}

#[test]
fn a_resumed_random_forest_is_the_uninterrupted_forest() {
    let data = load("iris.csv");
    let (task, y) = classes(&data);
    let forest = json!({"family": "random_forest",
                        "hyperparameters": {"n_estimators": 10, "seed": 7}});
    check_resume_is_exact(forest.clone(), task, &data.x, &y);
    let data = load("diabetes.csv");
    check_resume_is_exact(
        forest,
        Task::Regression,
        &data.x,
        &Target::Values(data.values),
    );
}

#[test]
fn resumed_gradient_boosting_is_the_uninterrupted_boosting() {
    let data = load("iris.csv");
    let (task, y) = classes(&data);
    let boosting = json!({"family": "gradient_boosting",
                          "hyperparameters": {"n_estimators": 10, "seed": 7}});
    check_resume_is_exact(boosting.clone(), task, &data.x, &y);
    let data = load("diabetes.csv");
    check_resume_is_exact(
        boosting,
        Task::Regression,
        &data.x,
        &Target::Values(data.values),
    );
}

#[test]
fn boosting_reports_a_falling_training_loss() {
    let data = load("breast_cancer.csv");
    let (task, y) = classes(&data);
    let spec = spec(json!({"family": "gradient_boosting",
                           "hyperparameters": {"n_estimators": 20}}));
    let mut fit = Fit::start(&spec, task, &data.x, &y).unwrap();
    let mut losses = Vec::new();
    while fit.rounds_done() < fit.rounds_total() {
        let report = fit.step().unwrap();
        assert_eq!(report.round, fit.rounds_done());
        losses.push(report.loss.unwrap());
    }
    assert!(losses.windows(2).all(|w| w[1] < w[0]), "{losses:?}");
    // A step past the end is refused; finishing is then allowed.
    assert_eq!(fit.step().unwrap_err().type_name, "InternalError");
    fit.finish().unwrap();
}

#[test]
fn the_trees_of_a_forest_are_seeded_apart() {
    let data = load("digits.csv");
    let (task, y) = classes(&data);
    let proba = |seed: u64| {
        let spec = spec(json!({"family": "random_forest",
                               "hyperparameters": {"n_estimators": 5, "seed": seed}}));
        let fit = Fit::start(&spec, task, &data.x, &y).unwrap();
        fit.run_to_end().unwrap().predict_proba(&data.x).unwrap()
    };
    let seed0 = proba(0);
    assert_eq!(seed0, proba(0));
    assert_ne!(seed0, proba(1));
    // Five independent trees rarely all agree on every row.
    assert!(seed0.iter().any(|p| p.iter().all(|v| *v < 1.0)));
}

#[test]
fn a_journal_of_other_training_is_refused() {
    let data = load("iris.csv");
    let (task, y) = classes(&data);
    let forest = |seed: u64| {
        spec(json!({"family": "random_forest",
                    "hyperparameters": {"n_estimators": 10, "seed": seed}}))
    };
    let mut fit = Fit::start(&forest(0), task, &data.x, &y).unwrap();
    fit.step().unwrap();
    let (header, records) = journal(&fit);
    let refused = |result: Result<Fit, mlx_plugin_sdk::PluginError>| {
        assert_eq!(result.unwrap_err().type_name, "CheckpointMismatch");
    };
    refused(Fit::resume(
        &forest(1),
        task,
        &data.x,
        &y,
        &header,
        records.clone(),
    ));
    let fewer = data.x.select_rows(&(0..149).collect::<Vec<_>>());
    let y_fewer = Target::Classes(data.classes[..149].to_vec());
    refused(Fit::resume(
        &forest(0),
        task,
        &fewer,
        &y_fewer,
        &header,
        records.clone(),
    ));
    let mut changed = data.x.clone();
    changed.data[0] += 1.0;
    refused(Fit::resume(
        &forest(0),
        task,
        &changed,
        &y,
        &header,
        records.clone(),
    ));
    let mut other_version = serde_json::to_value(&header).unwrap();
    other_version["version"] = json!(1);
    let other_version = serde_json::from_value(other_version).unwrap();
    refused(Fit::resume(
        &forest(0),
        task,
        &data.x,
        &y,
        &other_version,
        records.clone(),
    ));
    // A record that is not a tree of this forest, e.g. a boosting round's list of trees.
    refused(Fit::resume(
        &forest(0),
        task,
        &data.x,
        &y,
        &header,
        vec![json!([records[0]])],
    ));
    // As many records as rounds: nothing left to resume, so nothing to trust.
    refused(Fit::resume(
        &forest(0),
        task,
        &data.x,
        &y,
        &header,
        vec![records[0].clone(); 10],
    ));
    // The right training resumes.
    let fit = Fit::resume(&forest(0), task, &data.x, &y, &header, records).unwrap();
    assert_eq!(fit.rounds_done(), 1);
}

#[test]
fn a_loss_that_overflows_is_training_diverged() {
    let x = Matrix::from_rows(&(0..20).map(|i| vec![i as f64]).collect::<Vec<_>>()).unwrap();
    let y = Target::Values(
        (0..20)
            .map(|i| if i % 2 == 0 { 1e200 } else { -1e200 })
            .collect(),
    );
    let spec = spec(json!({"family": "gradient_boosting"}));
    let mut fit = Fit::start(&spec, Task::Regression, &x, &y).unwrap();
    let err = fit.step().unwrap_err();
    assert_eq!(err.type_name, "TrainingDiverged", "{err}");
}
