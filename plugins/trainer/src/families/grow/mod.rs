//! smartcore's trees, grown node for node as smartcore grows them, but over columns sorted once
//! per training and partitioned per node.
//!
//! Why: smartcore 0.7's `DecisionTreeClassifier` (the forest's trees too) scans every row of the
//! training set, in each tried column's sort order, at every node, skipping the rows outside
//! the node, and argsorts every column again for every tree. A deep forest tree has hundreds of
//! nodes, so nearly all of that work is skipping; and it reads each value through
//! `Array2::get` on a row-major matrix, a strided load per row. Here each node owns a range of
//! every column's sorted row list, split stably between its children, so a node reads only its
//! own rows, from one column at a time, and the columns are sorted once per training
//! ([`Presorted`]). smartcore's regression trees already partition per node, but sort again
//! for every tree. It made boosting twice as fast natively and a third faster as Wasm; the
//! Wasm / native ratio did not drop (BENCHMARKS.md, section 3).
//!
//! What is kept: smartcore's algorithm exactly (the candidates it tries, the order it tries them
//! in, its impurity arithmetic, its tie-breaking, its random feature choice drawn from the same
//! generator in the same order), and its models: a tree is built through the serde form of
//! smartcore's `DecisionTreeClassifier` or `DecisionTreeRegressor`, which predict, serialize and
//! report importances as before. Unit tests grow both ways and compare the serialized trees
//! exactly (`families/tests/grow.rs`).

mod class;
mod regression;

pub use class::{forest_bootstrap, grow_class_tree};
pub use regression::grow_reg_tree;

use smartcore::linalg::basic::arrays::{Array, MutArrayView1};

use super::dense::Dense;

/// The training matrix by column, each column's rows in smartcore's sort order (its own
/// `argsort_mut`, whose order among equal values decides which splits are tried).
#[derive(Debug, Clone)]
pub struct Presorted {
    cols: Vec<Vec<f64>>,
    order: Vec<Vec<u32>>,
}

impl Presorted {
    pub fn new(x: &Dense) -> Self {
        let (rows, features) = x.shape();
        let cols: Vec<Vec<f64>> = (0..features)
            .map(|j| (0..rows).map(|i| *x.get((i, j))).collect())
            .collect();
        let order = cols
            .iter()
            .map(|col| {
                let mut values = col.clone();
                // Row indices fit in u32: a wasm32 guest cannot hold 2^32 rows of features.
                values.argsort_mut().into_iter().map(|i| i as u32).collect()
            })
            .collect();
        Self { cols, order }
    }

    fn rows(&self) -> usize {
        self.cols.first().map_or(0, Vec::len)
    }

    fn features(&self) -> usize {
        self.cols.len()
    }
}

/// Splits a node's `range` of every column's list between its children: the rows that
/// `goes_true` sends to the true child first.
fn partition_node(
    lists: &mut [Vec<u32>],
    range: std::ops::Range<usize>,
    scratch: &mut [u32],
    goes_true: &[bool],
) {
    for list in lists {
        stable_partition(&mut list[range.clone()], scratch, goes_true);
    }
}

/// Moves the rows that go to the true child to the front of `rows`, both sides keeping their
/// order, so each child's range of every column stays sorted.
///
/// Without a branch on the side (each row is written to both places, one cursor advances):
/// the sides alternate unpredictably, and a mispredicted branch per row was a fifth of
/// boosting's time.
fn stable_partition(rows: &mut [u32], scratch: &mut [u32], goes_true: &[bool]) {
    let n = rows.len();
    let scratch = &mut scratch[..n];
    let (mut t, mut f) = (0, 0);
    for k in 0..n {
        let row = rows[k];
        let to_true = goes_true[row as usize];
        // t <= k: this never overwrites a row not yet read.
        rows[t] = row;
        scratch[f] = row;
        t += usize::from(to_true);
        f += usize::from(!to_true);
    }
    rows[t..].copy_from_slice(&scratch[..f]);
}
