//! A real case: iris on its first two features (so the classes overlap), 24 stratified
//! test rows, probabilities of scikit-learn's LogisticRegression:
//!
//! ```python
//! X, y = load_iris(return_X_y=True); X = X[:, :2]
//! Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=24, random_state=0, stratify=y)
//! P = LogisticRegression(max_iter=1000).fit(Xtr, ytr).predict_proba(Xte)
//! ```
//!
//! printed with repr(), so the floats here are numpy's bit for bit. Several rows repeat
//! (equal scores: ties in the ROC curves).

use super::{all_close, close, names};
use crate::report::{class_roc_curves, classification_report};

#[test]
fn logistic_regression_on_iris_matches_sklearn() {
    let proba: Vec<Vec<f64>> = P.iter().map(|r| r.to_vec()).collect();
    let r = classification_report(&Y, &proba, &names(3)).unwrap();
    // accuracy_score(yte, P.argmax(1))
    close(r.accuracy, 0.75);
    // precision_recall_fscore_support(yte, pred, labels=[0, 1, 2], zero_division=0)
    let per = |f: fn(&crate::report::ClassMetrics) -> f64| -> Vec<f64> {
        r.per_class.iter().map(f).collect()
    };
    all_close(&per(|m| m.precision), &[1.0, 0.625, 0.625]);
    all_close(&per(|m| m.recall), &[1.0, 0.625, 0.625]);
    all_close(&per(|m| m.f1), &[1.0, 0.625, 0.625]);
    close(r.precision_macro, 0.75);
    close(r.f1_macro, 0.75);
    // confusion_matrix(yte, pred)
    assert_eq!(r.confusion_matrix, [[8, 0, 0], [0, 5, 3], [0, 3, 5]]);
    // log_loss(yte, P)
    close(r.log_loss, 0.5566319057962915);
    // roc_auc_score(yte, P, multi_class="ovr", average="macro")
    close(r.roc_auc.unwrap(), 0.8541666666666666);
    // roc_auc_score(yte == c, P[:, c])
    let auc: Vec<f64> = r.per_class.iter().map(|m| m.roc_auc.unwrap()).collect();
    all_close(&auc, &[1.0, 0.76171875, 0.80078125]);
    assert!(r.notes.is_empty(), "rows sum to 1 within 2.3e-16");

    let curves = class_roc_curves(&Y, &proba, &names(3)).unwrap();
    let curve_auc: Vec<f64> = curves.iter().map(|c| c.auc).collect();
    all_close(&curve_auc, &auc);
}

const Y: [usize; 24] = [
    0, 1, 1, 1, 0, 0, 2, 2, 1, 0, 0, 2, 1, 0, 2, 1, 1, 2, 2, 1, 2, 0, 0, 2,
];
const P: [[f64; 3]; 24] = [
    [0.9698436829809204, 0.021640267170638272, 0.0085160498484413],
    [0.006644980249669984, 0.2736360631807171, 0.719718956569613],
    [0.055771375241786963, 0.6733110134789049, 0.270917611279308],
    [0.10630931524992132, 0.6483527881624114, 0.24533789658766725],
    [0.9698436829809204, 0.021640267170638272, 0.0085160498484413],
    [
        0.9305195644123967,
        0.06402432073826052,
        0.005456114849342749,
    ],
    [0.055771375241786963, 0.6733110134789049, 0.270917611279308],
    [0.011145121504172247, 0.364423074785669, 0.6244318037101588],
    [0.10369455568054542, 0.7330958834090497, 0.16320956091040484],
    [
        0.8365468590933046,
        0.14349363091000844,
        0.019959509996686907,
    ],
    [
        0.9509526045153662,
        0.044818260937162645,
        0.004229134547471114,
    ],
    [0.0395797741656447, 0.7510751629848447, 0.20934506284951063],
    [0.006644980249669984, 0.2736360631807171, 0.719718956569613],
    [0.9698436829809204, 0.021640267170638272, 0.0085160498484413],
    [
        0.061324018666533725,
        0.35050944094606507,
        0.5881665403874012,
    ],
    [0.25368455452705424, 0.5353606458985878, 0.2109547995743581],
    [
        0.002465505866722409,
        0.17337449867992716,
        0.8241599954533504,
    ],
    [0.08203683512562814, 0.3211845663080719, 0.5967785985663001],
    [0.01787449301856408, 0.4640835928115673, 0.5180419141698686],
    [0.10630931524992132, 0.6483527881624114, 0.24533789658766725],
    [0.014084477433666535, 0.6188584516754098, 0.3670570708909237],
    [
        0.9178082135259793,
        0.06372103827440886,
        0.018470748199611742,
    ],
    [0.8866106366216889, 0.0898642974066559, 0.023525065971655056],
    [
        0.0005689551582667423,
        0.15677825365038267,
        0.8426527911913506,
    ],
];
