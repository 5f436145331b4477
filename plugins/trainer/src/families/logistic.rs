//! `logistic_regression`: smartcore's model and L-BFGS optimizer, with the objective (the binary
//! or multinomial log loss and its gradient) evaluated here over the rows as slices.
//!
//! smartcore's own objective reads every value through `Array2::get` on a generic matrix: a
//! bounds check, a layout branch and index arithmetic for each multiply. Natively LLVM hides
//! most of that; Cranelift, compiling the component, does not, and it was most of logistic
//! regression's gap to native (BENCHMARKS.md section 3). The arithmetic here is smartcore's in
//! its order (each dot product left to right, then the bias; its softmax, its thresholds), with
//! exp and ln from libm as everywhere in the trainer, so the optimizer takes the steps it took
//! before to within rounding (a test fits both ways and compares).

use mlx_plugin_sdk::PluginError;
use serde_json::json;
use smartcore::error::Failed;
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::optimization::{
    FunctionOrder,
    first_order::{FirstOrderOptimizer, lbfgs::LBFGS},
    line_search::Backtracking,
};

use super::dense::{Dense, Label};
use super::error::{fit_failed, internal};
use super::math::{exp, ln, ln_1p};

/// The loss of weights `w` (per score: `p` weights, then the bias) on rows `x` (row-major,
/// `p` columns) with class positions `y`: one score for two classes, one per class otherwise.
struct Objective<'a> {
    x: &'a [f64],
    p: usize,
    y: &'a [usize],
    k: usize,
    alpha: f64,
}

/// `row · weights + bias`, summed left to right as smartcore's `partial_dot` does.
fn score(row: &[f64], w: &[f64]) -> f64 {
    let (weights, bias) = w.split_at(row.len());
    row.iter().zip(weights).fold(0.0, |s, (x, w)| s + x * w) + bias[0]
}

/// smartcore's `softmax_mut`.
fn softmax(v: &mut [f64]) {
    let max = v.iter().fold(f64::MIN, |m, &x| if x > m { x } else { m });
    let mut z = 0.0;
    for x in v.iter_mut() {
        *x = exp(*x - max);
        z += *x;
    }
    for x in v.iter_mut() {
        *x /= z;
    }
}

/// smartcore's `ln_1pe`: ln(1 + e^x).
fn ln_1pe(x: f64) -> f64 {
    if x > 15. { x } else { ln_1p(exp(x)) }
}

/// smartcore's `sigmoid`.
fn sigmoid(x: f64) -> f64 {
    if x < -40. {
        0.
    } else if x > 40. {
        1.
    } else {
        1. / (1. + exp(-x))
    }
}

impl Objective<'_> {
    fn rows(&self) -> impl Iterator<Item = (&[f64], usize)> {
        let p = self.p;
        (0..self.y.len()).map(move |i| (&self.x[i * p..(i + 1) * p], self.y[i]))
    }

    /// The weights' squared norm, biases excluded, times α/2.
    fn penalty(&self, w: &[f64]) -> f64 {
        let scores = if self.k == 2 { 1 } else { self.k };
        let mut w_squared = 0.0;
        for s in 0..scores {
            for wi in &w[s * (self.p + 1)..s * (self.p + 1) + self.p] {
                w_squared += wi * wi;
            }
        }
        0.5 * self.alpha * w_squared
    }

    fn f(&self, w: &[f64]) -> f64 {
        let mut f = 0.0;
        if self.k == 2 {
            for (row, yi) in self.rows() {
                let wx = score(row, w);
                f += ln_1pe(wx) - yi as f64 * wx;
            }
        } else {
            let mut prob = vec![0.0; self.k];
            for (row, yi) in self.rows() {
                for (pj, wj) in prob.iter_mut().zip(w.chunks_exact(self.p + 1)) {
                    *pj = score(row, wj);
                }
                softmax(&mut prob);
                f -= ln(prob[yi]);
            }
        }
        if self.alpha > 0.0 {
            f += self.penalty(w);
        }
        f
    }

    fn df(&self, g: &mut [f64], w: &[f64]) {
        g.fill(0.0);
        let p = self.p;
        if self.k == 2 {
            for (row, yi) in self.rows() {
                let dyi = yi as f64 - sigmoid(score(row, w));
                for (gj, xj) in g.iter_mut().zip(row) {
                    *gj -= dyi * xj;
                }
                g[p] -= dyi;
            }
        } else {
            let mut prob = vec![0.0; self.k];
            for (row, yi) in self.rows() {
                for (pj, wj) in prob.iter_mut().zip(w.chunks_exact(p + 1)) {
                    *pj = score(row, wj);
                }
                softmax(&mut prob);
                for (j, gj) in g.chunks_exact_mut(p + 1).enumerate() {
                    let d = if yi == j { 1.0 } else { 0.0 } - prob[j];
                    for (gl, xl) in gj.iter_mut().zip(row) {
                        *gl -= d * xl;
                    }
                    gj[p] -= d;
                }
            }
        }
        if self.alpha > 0.0 {
            let scores = if self.k == 2 { 1 } else { self.k };
            for s in 0..scores {
                let at = s * (p + 1);
                for (gj, wj) in g[at..at + p].iter_mut().zip(&w[at..at + p]) {
                    *gj += self.alpha * wj;
                }
            }
        }
    }
}

/// What `LogisticRegression::fit(x, labels, alpha)` returns, fitted as described above.
pub(super) fn fit(
    x: &Dense,
    labels: &[Label],
    alpha: f64,
) -> Result<LogisticRegressionModel, PluginError> {
    let (n, p) = x.shape();
    if n != labels.len() {
        return Err(internal(format!(
            "logistic_regression: {n} rows but {} labels",
            labels.len()
        )));
    }
    // smartcore's classes: the labels present, in order; each row's class is its position.
    let mut classes = labels.to_vec();
    classes.sort_unstable();
    classes.dedup();
    let k = classes.len();
    if k < 2 {
        let failed = Failed::fit(&format!(
            "incorrect number of classes: {k}. Should be >= 2."
        ));
        return Err(fit_failed("logistic_regression", failed));
    }
    let y: Vec<usize> = labels
        .iter()
        .map(|l| classes.binary_search(l).expect("every label is a class"))
        .collect();
    let rows: Vec<f64> = (0..n)
        .flat_map(|i| (0..p).map(move |j| (i, j)))
        .map(|at| *x.get(at))
        .collect();
    let objective = Objective {
        x: &rows,
        p,
        y: &y,
        k,
        alpha,
    };
    let scores = if k == 2 { 1 } else { k };
    let f = |w: &Vec<f64>| objective.f(w);
    let df = |g: &mut Vec<f64>, w: &Vec<f64>| objective.df(g, w);
    let ls: Backtracking<f64> = Backtracking {
        order: FunctionOrder::THIRD,
        ..Default::default()
    };
    let x0 = vec![0.0; scores * (p + 1)];
    let weights = LBFGS::default().optimize(&f, &df, &x0, &ls).x;
    let (mut coefficients, mut intercept) = (Vec::with_capacity(scores * p), Vec::new());
    for w in weights.chunks_exact(p + 1) {
        coefficients.extend_from_slice(&w[..p]);
        intercept.push(w[p]);
    }
    let matrix = |rows, cols, values| {
        DenseMatrix::new(rows, cols, values, false)
            .map_err(|e| internal(format!("logistic_regression's weights: {e}")))
    };
    // smartcore's model has no constructor but its serde form, which model.json holds anyway.
    let model = json!({
        "coefficients": matrix(scores, p, coefficients)?,
        "intercept": matrix(scores, 1, intercept)?,
        "classes": classes,
        "num_attributes": p,
        "num_classes": k,
        "_phantom_tx": null,
        "_phantom_y": null,
    });
    serde_json::from_value(model)
        .map_err(|e| internal(format!("logistic_regression's model from its weights: {e}")))
}

pub(super) type LogisticRegressionModel =
    smartcore::linear::logistic_regression::LogisticRegression<f64, Label, Dense, Vec<Label>>;

#[cfg(test)]
mod tests {
    use smartcore::linear::logistic_regression::{
        LogisticRegression, LogisticRegressionParameters,
    };

    use super::*;

    /// Rows in three overlapping clusters, so the fit needs many L-BFGS steps.
    fn data(classes: u32) -> (Dense, Vec<Label>) {
        let (n, p) = (90, 4);
        let mut values = Vec::with_capacity(n * p);
        let mut labels = Vec::with_capacity(n);
        let mut state = 7u64;
        for i in 0..n {
            let label = i as u32 % classes;
            for j in 0..p {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let noise = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                values.push(label as f64 * (j as f64 * 0.3 - 0.4) + noise * 2.0);
            }
            labels.push(label);
        }
        (DenseMatrix::new(n, p, values, false).unwrap(), labels)
    }

    fn coefficients(model: &LogisticRegressionModel) -> Vec<f64> {
        let (c, b) = (model.coefficients(), model.intercept());
        c.iterator(0).chain(b.iterator(0)).copied().collect()
    }

    #[test]
    fn the_fit_is_smartcores_to_rounding() {
        for (classes, alpha) in [(2, 0.0), (2, 0.5), (3, 0.0), (3, 1.0)] {
            let (x, labels) = data(classes);
            let ours = fit(&x, &labels, alpha).unwrap();
            let params = LogisticRegressionParameters::default().with_alpha(alpha);
            let theirs = LogisticRegression::fit(&x, &labels, params).unwrap();
            let (a, b) = (coefficients(&ours), coefficients(&theirs));
            assert_eq!(a.len(), b.len());
            // libm's exp and ln against std's: the last bits of some steps differ, and where
            // L-BFGS stops on its tolerance those bits can move the weights by ~1e-8.
            for (u, v) in a.iter().zip(&b) {
                assert!(
                    (u - v).abs() <= 1e-7 * v.abs().max(1.0),
                    "{classes} classes, alpha {alpha}: {a:?} vs {b:?}"
                );
            }
            assert_eq!(ours.predict(&x).unwrap(), theirs.predict(&x).unwrap());
            assert_eq!(ours.classes(), theirs.classes());
        }
    }

    #[test]
    fn one_class_is_refused_as_smartcore_refuses_it() {
        let (x, _) = data(2);
        let err = fit(&x, &[1; 90], 0.0).unwrap_err();
        assert!(
            format!("{err:?}").contains("incorrect number of classes"),
            "{err:?}"
        );
    }
}
