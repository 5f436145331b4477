use super::{all_close, close, names};
use crate::report::{ClassificationReport, ReportError, classification_report};

fn report(y: &[usize], proba: &[&[f64]], k: usize) -> ClassificationReport {
    let proba: Vec<Vec<f64>> = proba.iter().map(|r| r.to_vec()).collect();
    classification_report(y, &proba, &names(k)).unwrap()
}

fn column(r: &ClassificationReport, f: fn(&crate::report::ClassMetrics) -> f64) -> Vec<f64> {
    r.per_class.iter().map(f).collect()
}

/// Three classes, the third never predicted (zero_division), an argmax tie (row 5:
/// 0.4 / 0.4 goes to the first class).
#[test]
fn three_classes_with_one_never_predicted() {
    let y = [0, 0, 1, 2, 1, 0, 2, 1];
    let r = report(
        &y,
        &[
            &[0.7, 0.2, 0.1],
            &[0.3, 0.6, 0.1],
            &[0.2, 0.5, 0.3],
            &[0.45, 0.3, 0.25],
            &[0.1, 0.8, 0.1],
            &[0.4, 0.4, 0.2],
            &[0.2, 0.5, 0.3],
            &[0.6, 0.3, 0.1],
        ],
        3,
    );
    // accuracy_score(y, proba.argmax(1))
    close(r.accuracy, 0.5);
    // precision_recall_fscore_support(y, pred, labels=[0, 1, 2], zero_division=0)
    all_close(&column(&r, |m| m.precision), &[0.5, 0.5, 0.0]);
    all_close(
        &column(&r, |m| m.recall),
        &[0.6666666666666666, 0.6666666666666666, 0.0],
    );
    all_close(
        &column(&r, |m| m.f1),
        &[0.5714285714285714, 0.5714285714285714, 0.0],
    );
    assert_eq!(
        r.per_class.iter().map(|m| m.support).collect::<Vec<_>>(),
        [3, 3, 2]
    );
    // the same with average="macro"
    close(r.precision_macro, 0.3333333333333333);
    close(r.recall_macro, 0.4444444444444444);
    close(r.f1_macro, 0.38095238095238093);
    // log_loss(y, proba, labels=[0, 1, 2])
    close(r.log_loss, 0.8984336477230928);
    // confusion_matrix(y, pred, labels=[0, 1, 2])
    assert_eq!(r.confusion_matrix, [[2, 1, 0], [1, 2, 0], [1, 1, 0]]);
    // roc_auc_score(y, proba, multi_class="ovr", average="macro")
    close(r.roc_auc.unwrap(), 0.7583333333333333);
    assert_eq!(r.roc_auc_undefined, None);
    // roc_auc_score(y == c, proba[:, c]) per class
    let per: Vec<f64> = r.per_class.iter().map(|m| m.roc_auc.unwrap()).collect();
    all_close(&per, &[0.7333333333333333, 0.6666666666666666, 0.875]);
    assert!(r.notes.is_empty());
}

/// Binary, with tied scores (0.4 three times, 0.7 twice) across both classes.
#[test]
fn binary_with_ties() {
    let scores = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.7, 0.7, 0.9, 0.2];
    let rows: Vec<Vec<f64>> = scores.iter().map(|s| vec![1.0 - s, *s]).collect();
    let y = [0, 0, 1, 1, 0, 1, 0, 1, 1, 0];
    let r = classification_report(&y, &rows, &names(2)).unwrap();
    close(r.accuracy, 0.7);
    all_close(&column(&r, |m| m.precision), &[0.6666666666666666, 0.75]);
    all_close(&column(&r, |m| m.recall), &[0.8, 0.6]);
    all_close(
        &column(&r, |m| m.f1),
        &[0.7272727272727273, 0.6666666666666666],
    );
    close(r.precision_macro, 0.7083333333333333);
    close(r.recall_macro, 0.7);
    close(r.f1_macro, 0.696969696969697);
    close(r.log_loss, 0.5205419986113554);
    assert_eq!(r.confusion_matrix, [[4, 1], [2, 3]]);
    // roc_auc_score(y, proba[:, 1])
    close(r.roc_auc.unwrap(), 0.78);
    close(r.per_class[0].roc_auc.unwrap(), 0.78);
}

#[test]
fn perfect_predictions() {
    let r = report(
        &[0, 1, 2, 1],
        &[
            &[1.0, 0.0, 0.0],
            &[0.0, 1.0, 0.0],
            &[0.0, 0.0, 1.0],
            &[0.0, 1.0, 0.0],
        ],
        3,
    );
    close(r.accuracy, 1.0);
    close(r.f1_macro, 1.0);
    close(r.roc_auc.unwrap(), 1.0);
    // log_loss of certain, right answers: -ln(1 - eps) ~ eps, not 0, since sklearn clips
    // to [eps, 1 - eps]; sklearn's 2.220446049250313e-16 and this differ in the last bit.
    assert!(
        (r.log_loss - 2.220446049250313e-16).abs() < 1e-30,
        "{}",
        r.log_loss
    );

    let r = report(&[0, 1, 1], &[&[0.9, 0.1], &[0.2, 0.8], &[0.0, 1.0]], 2);
    close(r.accuracy, 1.0);
    close(r.roc_auc.unwrap(), 1.0);
    // log_loss(y, proba): the 0.0 of a wrong class is not read, the 1.0 is clipped.
    close(r.log_loss, 0.10950135565734541);
}

/// roc_auc_score warns "Only one class is present in y_true" and returns nan; the report
/// says null, with the reason, and the other metrics are still there.
#[test]
fn binary_roc_auc_with_a_single_class_is_null_with_a_reason() {
    let r = report(&[1, 1, 1], &[&[0.2, 0.8], &[0.6, 0.4], &[0.1, 0.9]], 2);
    assert_eq!(r.roc_auc, None);
    let reason = r.roc_auc_undefined.as_deref().unwrap();
    assert!(
        reason.contains("only one class") && reason.contains("setosa"),
        "{reason}"
    );
    assert_eq!(r.per_class[0].roc_auc, None);
    assert_eq!(r.per_class[1].roc_auc, None);
    close(r.accuracy, 0.6666666666666666);
    // class 0: never true, never predicted right: precision, recall and F1 0 (zero_division)
    all_close(&column(&r, |m| m.precision), &[0.0, 1.0]);
    all_close(&column(&r, |m| m.recall), &[0.0, 0.6666666666666666]);
    all_close(&column(&r, |m| m.f1), &[0.0, 0.8]);
    close(r.precision_macro, 0.5);
    close(r.recall_macro, 0.3333333333333333);
    close(r.f1_macro, 0.4);
    close(r.log_loss, 0.41493159961539705);
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["roc_auc"].is_null());
    assert_eq!(json["per_class"][0]["support"], 0);
}

/// roc_auc_score(y, proba, multi_class="ovr", labels=[0, 1, 2]) is nan when a class is
/// absent (without labels= it raises); the classes present keep their own AUC.
#[test]
fn multiclass_roc_auc_with_an_absent_class_is_null() {
    let r = report(
        &[0, 2, 0, 2],
        &[
            &[0.5, 0.3, 0.2],
            &[0.2, 0.3, 0.5],
            &[0.3, 0.4, 0.3],
            &[0.6, 0.1, 0.3],
        ],
        3,
    );
    assert_eq!(r.roc_auc, None);
    assert!(
        r.roc_auc_undefined
            .as_deref()
            .unwrap()
            .contains("versicolor")
    );
    assert_eq!(r.per_class[1].roc_auc, None);
    close(r.per_class[0].roc_auc.unwrap(), 0.5);
    close(r.per_class[2].roc_auc.unwrap(), 0.875);
    all_close(&column(&r, |m| m.precision), &[0.5, 0.0, 1.0]);
    all_close(&column(&r, |m| m.recall), &[0.5, 0.0, 0.5]);
    close(r.f1_macro, 0.38888888888888884);
    close(r.log_loss, 0.9485599924429406);
    assert_eq!(r.confusion_matrix, [[1, 1, 0], [0, 0, 0], [1, 0, 1]]);
}

/// log_loss only warns "The y_prob values do not sum to one" and computes on the values as
/// given (clipped, not renormalised); the report notes it.
#[test]
fn rows_not_summing_to_one_are_noted_and_used_as_given() {
    let r = report(&[0, 1], &[&[0.5, 0.4], &[0.3, 0.3]], 2);
    close(r.log_loss, 0.9485599924429406);
    assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
    assert!(
        r.notes[0].starts_with("2 probability rows"),
        "{:?}",
        r.notes
    );
    // roc_auc_score(y, proba[:, 1]): binary AUC does not need distributions.
    close(r.roc_auc.unwrap(), 0.0);

    // Multiclass one-vs-rest raises "Target scores need to be probabilities" there.
    let r = report(
        &[0, 1, 2],
        &[&[0.5, 0.2, 0.2], &[0.1, 0.8, 0.1], &[0.1, 0.1, 0.8]],
        3,
    );
    assert_eq!(r.roc_auc, None);
    assert!(r.roc_auc_undefined.unwrap().contains("sum to 1"));
}

#[test]
fn invalid_input_is_an_error_not_a_panic() {
    let classes = names(2);
    let err = |y: &[usize], p: &[Vec<f64>]| -> ReportError {
        classification_report(y, p, &classes).unwrap_err()
    };
    assert!(err(&[], &[]).0.contains("no examples"));
    assert!(err(&[0], &[]).0.contains("1 true classes but 0"));
    assert!(err(&[2], &[vec![0.5, 0.5]]).0.contains("class index 2"));
    assert!(err(&[0], &[vec![1.0]]).0.contains("1 probabilities for 2"));
    assert!(err(&[0], &[vec![1.5, -0.5]]).0.contains("not in [0, 1]"));
    assert!(err(&[0], &[vec![f64::NAN, 0.5]]).0.contains("NaN"));
    assert!(classification_report(&[0], &[vec![]], &[]).is_err());
}

/// A single-class model: every metric but ROC AUC is defined.
#[test]
fn a_single_class_model() {
    let r = report(&[0, 0], &[&[1.0], &[1.0]], 1);
    close(r.accuracy, 1.0);
    assert_eq!(r.roc_auc, None);
    assert!(r.roc_auc_undefined.unwrap().contains("single class"));
}

#[test]
fn the_schema_has_accuracy_at_the_top() {
    let schema = schemars::schema_for!(ClassificationReport);
    let schema = serde_json::to_value(schema).unwrap();
    assert_eq!(schema["properties"]["accuracy"]["type"], "number");
    let required = schema["required"].as_array().unwrap();
    assert!(required.iter().any(|k| k == "accuracy"));
}
