//! Multinomial (softmax) logistic regression trained by full-batch gradient descent.
//!
//! For K classes and D features the model holds weights W (K×D) and bias b (K). Example x gets
//! probabilities p = softmax(W x + b); the objective minimized is the mean cross-entropy plus
//! (l2 / 2)·‖W‖² (the bias is not regularized). With two classes this is ordinary logistic
//! regression, over-parameterized by one redundant row that the L2 term keeps bounded.

use serde::{Deserialize, Serialize};

/// Per-feature standardization fitted on the training split only, so no test statistics leak.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Standardizer {
    /// Population mean and standard deviation per column. A constant column gets std 1, so it
    /// maps to 0 instead of dividing by zero.
    pub fn fit(x: &[Vec<f64>]) -> Self {
        let d = x.first().map_or(0, Vec::len);
        let n = x.len().max(1) as f64;
        let mut mean = vec![0.0; d];
        for row in x {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v / n;
            }
        }
        let mut var = vec![0.0; d];
        for row in x {
            for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (v - m) * (v - m) / n;
            }
        }
        let std = var
            .into_iter()
            .map(|v| if v.sqrt() > 1e-12 { v.sqrt() } else { 1.0 })
            .collect();
        Self { mean, std }
    }

    pub fn transform(&self, x: &[Vec<f64>]) -> Vec<Vec<f64>> {
        x.iter()
            .map(|row| {
                row.iter()
                    .zip(self.mean.iter().zip(&self.std))
                    .map(|(v, (m, s))| (v - m) / s)
                    .collect()
            })
            .collect()
    }
}

/// Smallest probability used in a logarithm, as scikit-learn's `log_loss` clips.
pub const PROB_FLOOR: f64 = 1e-15;

#[derive(Debug, Clone, PartialEq)]
pub struct Softmax {
    /// One row of D weights per class.
    pub weights: Vec<Vec<f64>>,
    pub bias: Vec<f64>,
}

impl Softmax {
    pub fn zeros(classes: usize, features: usize) -> Self {
        Self {
            weights: vec![vec![0.0; features]; classes],
            bias: vec![0.0; classes],
        }
    }

    /// Class probabilities for one (standardized) example.
    pub fn probabilities(&self, row: &[f64]) -> Vec<f64> {
        let logits: Vec<f64> = self
            .weights
            .iter()
            .zip(&self.bias)
            .map(|(w, b)| b + dot(w, row))
            .collect();
        // Subtracting the max keeps exp from overflowing; softmax is shift-invariant.
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exps: Vec<f64> = logits.iter().map(|z| (z - max).exp()).collect();
        let total: f64 = exps.iter().sum();
        exps.into_iter().map(|e| e / total).collect()
    }

    /// Class probabilities for every (standardized) example.
    pub fn predict(&self, x: &[Vec<f64>]) -> Vec<Vec<f64>> {
        x.iter().map(|row| self.probabilities(row)).collect()
    }

    /// Mean cross-entropy of the true classes `y` (no regularization term).
    pub fn cross_entropy(&self, x: &[Vec<f64>], y: &[usize]) -> f64 {
        let total: f64 = x
            .iter()
            .zip(y)
            .map(|(row, &c)| -self.probabilities(row)[c].max(PROB_FLOOR).ln())
            .sum();
        total / x.len().max(1) as f64
    }

    /// One full-batch gradient-descent step. Returns the objective (cross-entropy plus L2
    /// term) at the weights before the step.
    pub fn step(&mut self, x: &[Vec<f64>], y: &[usize], learning_rate: f64, l2: f64) -> f64 {
        let (loss, grad) = self.gradient(x, y, l2);
        for (w, g) in self.weights.iter_mut().zip(&grad.weights) {
            for (w, g) in w.iter_mut().zip(g) {
                *w -= learning_rate * g;
            }
        }
        for (b, g) in self.bias.iter_mut().zip(&grad.bias) {
            *b -= learning_rate * g;
        }
        loss
    }

    /// The objective and its gradient: dL/dW = (P − Y)ᵀX / n + l2·W, dL/db = mean(P − Y).
    fn gradient(&self, x: &[Vec<f64>], y: &[usize], l2: f64) -> (f64, Softmax) {
        let n = x.len().max(1) as f64;
        let mut grad = Softmax::zeros(self.bias.len(), self.weights.first().map_or(0, Vec::len));
        let mut loss = 0.0;
        for (row, &class) in x.iter().zip(y) {
            let p = self.probabilities(row);
            loss -= p[class].max(PROB_FLOOR).ln() / n;
            for (k, pk) in p.iter().enumerate() {
                let residual = (pk - if k == class { 1.0 } else { 0.0 }) / n;
                grad.bias[k] += residual;
                add_scaled(&mut grad.weights[k], residual, row);
            }
        }
        let mut penalty = 0.0;
        for (g, w) in grad.weights.iter_mut().zip(&self.weights) {
            for (g, w) in g.iter_mut().zip(w) {
                *g += l2 * w;
                penalty += w * w;
            }
        }
        (loss + 0.5 * l2 * penalty, grad)
    }
}

// The two inner loops of training. Wasmtime checks for an epoch change at every loop head,
// and the check's slow path is a call that clobbers every float register, so Cranelift keeps
// float values that live across a loop head (the running sum, the scale) in stack slots and
// reloads them on each iteration (wasmtime issue 7244, "Epoch performance issues"). Inlined
// into the big training function, with its many live values, everything was spilled and the
// component ran ~3x slower than native. Out of line, and eight elements per iteration, the
// spills are paid once per eight multiply-adds instead of once per one to four: ~1.8x native
// (the same code measured ~1.4x with epoch checks off). The arithmetic is the plain loops',
// in the same order, so results are unchanged bit for bit (tested below).

/// `Σ w·x`, summed in index order.
#[inline(never)]
fn dot(w: &[f64], x: &[f64]) -> f64 {
    // -0.0, as `Iterator::sum` starts, so the sum is the plain fold's bit for bit.
    let mut sum = -0.0;
    let (mut wc, mut xc) = (w.chunks_exact(8), x.chunks_exact(8));
    for (w, x) in (&mut wc).zip(&mut xc) {
        for i in 0..8 {
            sum += w[i] * x[i];
        }
    }
    for (w, x) in wc.remainder().iter().zip(xc.remainder()) {
        sum += w * x;
    }
    sum
}

/// `y += a·x`, element by element.
#[inline(never)]
fn add_scaled(y: &mut [f64], a: f64, x: &[f64]) {
    let (mut yc, mut xc) = (y.chunks_exact_mut(8), x.chunks_exact(8));
    for (y, x) in (&mut yc).zip(&mut xc) {
        for i in 0..8 {
            y[i] += a * x[i];
        }
    }
    for (y, x) in yc.into_remainder().iter_mut().zip(xc.remainder()) {
        *y += a * x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardizer_centers_and_scales_with_constant_columns() {
        let s = Standardizer::fit(&[vec![1.0, 5.0], vec![3.0, 5.0]]);
        assert_eq!(
            (s.mean.clone(), s.std.clone()),
            (vec![2.0, 5.0], vec![1.0, 1.0])
        );
        assert_eq!(s.transform(&[vec![3.0, 5.0]]), [[1.0, 0.0]]);
    }

    #[test]
    fn unrolled_loops_are_the_plain_loops_bit_for_bit() {
        // Lengths around the chunk size of 8, values whose sums round differently by order.
        for n in 0..=19 {
            let x: Vec<f64> = (0..n).map(|i| 1.0 / (i as f64 + 0.7) - 0.3).collect();
            let w: Vec<f64> = (0..n).map(|i| (i as f64 * 1.3).sin() * 1e3).collect();
            let plain: f64 = w.iter().zip(&x).map(|(w, x)| w * x).sum();
            assert_eq!(dot(&w, &x).to_bits(), plain.to_bits(), "dot, n = {n}");
            let mut y = w.clone();
            add_scaled(&mut y, 0.37, &x);
            let expected: Vec<f64> = w.iter().zip(&x).map(|(w, x)| w + 0.37 * x).collect();
            assert_eq!(y, expected, "add_scaled, n = {n}");
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let x = vec![vec![0.5, -1.0], vec![-0.3, 0.8], vec![1.2, 0.1]];
        let y = [0, 2, 1];
        let mut m = Softmax::zeros(3, 2);
        m.weights = vec![vec![0.1, -0.2], vec![0.3, 0.05], vec![-0.4, 0.2]];
        m.bias = vec![0.1, 0.0, -0.1];
        let (_, grad) = m.gradient(&x, &y, 0.01);
        let h = 1e-6;
        for k in 0..3 {
            for j in 0..2 {
                let (mut plus, mut minus) = (m.clone(), m.clone());
                plus.weights[k][j] += h;
                minus.weights[k][j] -= h;
                let numeric =
                    (plus.gradient(&x, &y, 0.01).0 - minus.gradient(&x, &y, 0.01).0) / (2.0 * h);
                assert!((numeric - grad.weights[k][j]).abs() < 1e-6, "w[{k}][{j}]");
            }
        }
    }

    #[test]
    fn learns_a_separable_three_class_problem() {
        let centers = [(-3.0, 0.0), (3.0, 0.0), (0.0, 3.0)];
        let offsets = [(0.3, 0.2), (-0.2, 0.4), (0.1, -0.3), (-0.4, -0.1)];
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for (class, (cx, cy)) in centers.iter().enumerate() {
            for (dx, dy) in offsets {
                x.push(vec![cx + dx, cy + dy]);
                y.push(class);
            }
        }
        let mut m = Softmax::zeros(3, 2);
        let first = m.step(&x, &y, 0.5, 0.0);
        assert!(
            (first - 3f64.ln()).abs() < 1e-12,
            "uniform start has loss ln 3"
        );
        let mut last = first;
        for _ in 0..200 {
            let loss = m.step(&x, &y, 0.5, 0.0);
            assert!(
                loss <= last + 1e-12,
                "gradient descent must not increase the loss here"
            );
            last = loss;
        }
        assert!(last < 0.05, "loss {last}");
        for (row, &class) in x.iter().zip(&y) {
            let p = m.probabilities(row);
            let best = (0..3).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
            assert_eq!(best, class);
        }
    }
}
