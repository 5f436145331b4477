//! k-means on iris.

use serde_json::json;

use super::super::{Fit, Target, Task};
use super::data::{check_serde_round_trip, load, spec};

#[test]
fn kmeans_puts_setosa_in_a_cluster_of_its_own() {
    let data = load("iris.csv");
    let spec = spec(json!({"family": "kmeans", "hyperparameters": {"k": 3}}));
    let fitted = Fit::start(&spec, Task::Clustering, &data.x, &Target::None)
        .unwrap()
        .run_to_end()
        .unwrap();
    let clusters = fitted.predict(&data.x).unwrap();
    let setosa = data.class_names.iter().position(|c| c == "setosa").unwrap();
    let setosa_cluster = clusters[data.classes.iter().position(|&c| c == setosa).unwrap()];
    for (cluster, class) in clusters.iter().zip(&data.classes) {
        assert_eq!(
            *cluster == setosa_cluster,
            *class == setosa,
            "cluster {cluster}, class {class}"
        );
    }
    assert!(clusters.iter().all(|c| (0.0..3.0).contains(c)));
    assert_eq!(fitted.feature_importances(), None);
    let err = fitted.predict_proba(&data.x).unwrap_err();
    assert_eq!(err.type_name, "UnsupportedTask");
    check_serde_round_trip(&fitted, &data.x);
}

#[test]
fn kmeans_refuses_more_clusters_than_rows() {
    let data = load("iris.csv");
    let x = data.x.select_rows(&[0, 1, 2]);
    let spec = spec(json!({"family": "kmeans", "hyperparameters": {"k": 4}}));
    let err = Fit::start(&spec, Task::Clustering, &x, &Target::None).unwrap_err();
    assert_eq!(err.type_name, "InvalidParameter", "{err}");
}
