//! Joins the error declarations of the modules at compile time, as the trainer does: the SDK
//! fails a test on an undeclared error, so the operation's list is the modules' lists.

use mlx_plugin_sdk::ErrorDecl;

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
