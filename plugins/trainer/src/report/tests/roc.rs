use super::{all_close, close, names};
use crate::report::{class_roc_curves, roc_curve};

/// roc_curve(y, scores) (drop_intermediate=True), thresholds[0] = inf.
#[test]
fn curve_points_with_ties_match_roc_curve() {
    let y = [
        false, false, true, true, false, true, false, true, true, false,
    ];
    let scores = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.7, 0.7, 0.9, 0.2];
    let c = roc_curve(&y, &scores).unwrap();
    all_close(&c.fpr, &[0.0, 0.0, 0.0, 0.2, 0.6, 0.6, 1.0]);
    all_close(&c.tpr, &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.0]);
    assert_eq!(c.thresholds[0], f64::INFINITY);
    all_close(&c.thresholds[1..], &[0.9, 0.8, 0.7, 0.4, 0.35, 0.1]);
    // roc_auc_score(y, scores)
    close(c.auc(), 0.78);
}

/// Collinear points are dropped as with drop_intermediate=True: roc_curve(y, s) of
/// y = [1, 1, 1, 0, 0, 0, 1, 0], s = [0.9, 0.8, ..., 0.2].
#[test]
fn collinear_points_are_dropped() {
    let y = [true, true, true, false, false, false, true, false];
    let s = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2];
    let c = roc_curve(&y, &s).unwrap();
    all_close(&c.fpr, &[0.0, 0.0, 0.0, 0.75, 0.75, 1.0]);
    all_close(&c.tpr, &[0.0, 0.25, 0.75, 0.75, 1.0, 1.0]);
    all_close(&c.thresholds[1..], &[0.9, 0.7, 0.4, 0.3, 0.2]);
    // roc_auc_score(y, s)
    close(c.auc(), 0.8125);
}

/// All scores tied: one diagonal step, AUC 0.5 (roc_auc_score(y, [0.3] * 4)).
#[test]
fn all_tied_scores_give_the_diagonal() {
    let c = roc_curve(&[true, false, true, false], &[0.3; 4]).unwrap();
    all_close(&c.fpr, &[0.0, 1.0]);
    all_close(&c.tpr, &[0.0, 1.0]);
    close(c.auc(), 0.5);
}

#[test]
fn no_curve_without_both_kinds_of_example() {
    assert_eq!(
        roc_curve(&[true, true], &[0.1, 0.2]).unwrap_err(),
        "no negative example"
    );
    assert_eq!(
        roc_curve(&[false], &[0.1]).unwrap_err(),
        "no positive example"
    );
    assert!(roc_curve(&[true, false], &[0.1]).is_err());
    assert!(roc_curve(&[true, false], &[0.1, f64::NAN]).is_err());
}

#[test]
fn class_curves_are_the_positive_class_or_one_per_class() {
    let binary = class_roc_curves(&[0, 1], &[vec![0.8, 0.2], vec![0.3, 0.7]], &names(2)).unwrap();
    assert_eq!(binary.len(), 1);
    assert_eq!(binary[0].class, "versicolor");
    close(binary[0].auc, 1.0);

    let three = class_roc_curves(
        &[0, 1, 2, 0],
        &[
            vec![0.6, 0.2, 0.2],
            vec![0.2, 0.6, 0.2],
            vec![0.5, 0.1, 0.4],
            vec![0.1, 0.1, 0.8],
        ],
        &names(3),
    )
    .unwrap();
    let classes: Vec<&str> = three.iter().map(|c| c.class.as_str()).collect();
    assert_eq!(classes, ["setosa", "versicolor", "virginica"]);

    // A class with no example has no curve.
    let two = class_roc_curves(
        &[0, 0, 2],
        &[
            vec![0.6, 0.2, 0.2],
            vec![0.2, 0.6, 0.2],
            vec![0.5, 0.1, 0.4],
        ],
        &names(3),
    )
    .unwrap();
    assert_eq!(two.len(), 2);
    assert!(class_roc_curves(&[3], &[vec![1.0, 0.0, 0.0]], &names(3)).is_err());
}
