//! Bad data and impossible fits are classified errors with messages, never panics.

use mlx_plugin_sdk::ErrorKind;
use serde_json::json;

use super::super::{Fit, Matrix, Target, Task};
use super::data::{load, spec};

fn rows(n: usize, cols: usize) -> Matrix {
    let rows: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..cols).map(|j| ((i * 7 + j * 3) % 11) as f64).collect())
        .collect();
    Matrix::from_rows(&rows).unwrap()
}

#[test]
fn smartcore_refusals_are_invalid_input_naming_the_family() {
    // Ridge needs more rows than features.
    let x = rows(3, 5);
    let err = Fit::start(
        &spec(json!({"family": "ridge"})),
        Task::Regression,
        &x,
        &Target::Values(vec![1.0, 2.0, 3.0]),
    )
    .unwrap()
    .step()
    .unwrap_err();
    assert_eq!(
        (err.kind, err.type_name.as_str()),
        (ErrorKind::InvalidInput, "FitFailed")
    );
    assert!(
        err.message.starts_with("ridge cannot be fitted"),
        "{}",
        err.message
    );

    // One class present where the task says two.
    let x = rows(10, 2);
    let err = Fit::start(
        &spec(json!({"family": "logistic_regression"})),
        Task::Classification { classes: 2 },
        &x,
        &Target::Classes(vec![0; 10]),
    )
    .unwrap()
    .step()
    .unwrap_err();
    assert_eq!(
        (err.kind, err.type_name.as_str()),
        (ErrorKind::InvalidInput, "FitFailed")
    );
}

#[test]
fn bad_training_data_is_refused_before_training() {
    let forest = spec(json!({"family": "random_forest"}));
    let task = Task::Classification { classes: 2 };
    let cases = [
        (rows(4, 2), Target::Classes(vec![0, 1, 0]), "InvalidTarget"),
        (
            rows(4, 2),
            Target::Classes(vec![0, 1, 0, 2]),
            "InvalidTarget",
        ),
        (rows(4, 2), Target::Values(vec![0.0; 4]), "InvalidTarget"),
        (rows(0, 2), Target::Classes(vec![]), "NoRows"),
    ];
    for (x, y, expected) in cases {
        let err = Fit::start(&forest, task, &x, &y).unwrap_err();
        assert_eq!(err.type_name, expected, "{err}");
    }
    let mut x = rows(4, 2);
    x.data[3] = f64::NAN;
    let err = Fit::start(&forest, task, &x, &Target::Classes(vec![0, 1, 0, 1])).unwrap_err();
    assert_eq!(err.type_name, "NonFiniteValue");
    assert!(err.message.contains("row 1, column 1"), "{}", err.message);
    let too_many = spec(json!({"family": "random_forest",
                               "hyperparameters": {"max_features": 3}}));
    let err = Fit::start(
        &too_many,
        task,
        &rows(4, 2),
        &Target::Classes(vec![0, 1, 0, 1]),
    )
    .unwrap_err();
    assert_eq!(err.type_name, "InvalidParameter");
}

#[test]
fn prediction_needs_the_training_features() {
    let data = load("iris.csv");
    let y = Target::Classes(data.classes.clone());
    let fitted = Fit::start(
        &spec(json!({"family": "logistic_regression"})),
        Task::Classification { classes: 3 },
        &data.x,
        &y,
    )
    .unwrap()
    .run_to_end()
    .unwrap();
    let err = fitted.predict(&rows(2, 3)).unwrap_err();
    assert_eq!(err.type_name, "FeatureMismatch");
    let mut x = data.x.clone();
    x.data[0] = f64::INFINITY;
    assert_eq!(fitted.predict(&x).unwrap_err().type_name, "NonFiniteValue");
}
