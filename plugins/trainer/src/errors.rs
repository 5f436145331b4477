//! The errors each operation declares, assembled at compile time from the parts it calls:
//! mlx-tabular's (reading and encoding tables), the families' and its own. The SDK checks the
//! declarations for duplicates and fails a test on an undeclared error, so each list must be
//! complete and each name appear once.

use mlx_plugin_sdk::ErrorDecl;

/// What `families` returns.
pub const FAMILIES: &[ErrorDecl] = &[
    ErrorDecl::invalid_input("InvalidParameter", "a hyperparameter is out of range"),
    ErrorDecl::invalid_input("UnsupportedTask", "the family does not do the task"),
    ErrorDecl::invalid_input("FitFailed", "the family cannot be fitted to this data"),
    ErrorDecl::invalid_input("TrainingDiverged", "the loss is no longer finite"),
    ErrorDecl::permanent(
        "PredictFailed",
        "the model cannot predict (an edited file?)",
    ),
    ErrorDecl::permanent("InternalError", "a state the trainer should never reach"),
];

/// What scoring a model returns (`evaluation`, `data`).
pub const SCORING: &[ErrorDecl] = &[
    ErrorDecl::invalid_input("MissingTarget", "the task needs a target column"),
    ErrorDecl::invalid_input("UnknownClass", "a label the model does not know"),
    ErrorDecl::permanent("MetricsFailed", "the model's predictions cannot be scored"),
];

/// The summed length of `parts`.
pub const fn total(parts: &[&[ErrorDecl]]) -> usize {
    let (mut n, mut i) = (0, 0);
    while i < parts.len() {
        n += parts[i].len();
        i += 1;
    }
    n
}

/// The concatenation of `parts`; `N` must be their total length (checked at compile time).
pub const fn concat<const N: usize>(parts: &[&[ErrorDecl]]) -> [ErrorDecl; N] {
    let mut out = [ErrorDecl::invalid_input("", ""); N];
    let (mut k, mut i) = (0, 0);
    while i < parts.len() {
        let mut j = 0;
        while j < parts[i].len() {
            out[k] = parts[i][j];
            k += 1;
            j += 1;
        }
        i += 1;
    }
    assert!(k == N, "concat: N is not the total length");
    out
}
