//! Release-mode training times on digits, for the record:
//! `cargo test --release -p mlx-plugin-trainer --target x86_64-unknown-linux-gnu -- --ignored --nocapture timing`

use std::time::Instant;

use serde_json::json;

use super::data::{classify, load};

#[test]
#[ignore = "a measurement, not a check; run it in release mode"]
fn timing_on_digits() {
    let data = load("digits.csv");
    for (model, scale) in [
        (json!({"family": "random_forest"}), false),
        (json!({"family": "gradient_boosting"}), false),
        (json!({"family": "logistic_regression"}), true),
    ] {
        let started = Instant::now();
        let (accuracy, fitted) = classify(&data, model.clone(), scale);
        let elapsed = started.elapsed();
        let bytes = serde_json::to_vec(&fitted).unwrap().len();
        println!(
            "{model}: {elapsed:.2?} to train on 1437×64 and test on 360, accuracy {accuracy:.3}, \
             model {bytes} bytes of JSON"
        );
    }
}
