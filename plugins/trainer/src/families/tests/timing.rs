//! Release-mode training times on digits, for the record:
//! `cargo test --release -p mlx-plugin-trainer --target x86_64-unknown-linux-gnu -- --ignored --nocapture timing`

use std::time::Instant;

use serde_json::json;

use super::super::{Fit, Target, Task};
use super::data::{load, spec};

#[test]
#[ignore = "a measurement, not a check; run it in release mode"]
fn timing_on_digits() {
    let data = load("digits.csv");
    let task = Task::Classification { classes: 10 };
    let y = Target::Classes(data.classes.clone());
    for model in [
        json!({"family": "random_forest"}),
        json!({"family": "gradient_boosting"}),
        json!({"family": "logistic_regression"}),
    ] {
        let started = Instant::now();
        let fitted = Fit::start(&spec(model.clone()), task, &data.x, &y)
            .unwrap()
            .run_to_end()
            .unwrap();
        let elapsed = started.elapsed();
        let bytes = serde_json::to_vec(&fitted).unwrap().len();
        println!("{model}: {elapsed:.2?} on 1797×64, model {bytes} bytes of JSON");
    }
}
