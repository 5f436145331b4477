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
//! ([`Presorted`]) and partitioned from one copy of the lists to another ([`RowLists`]).
//! smartcore's regression trees already partition per node, but sort again for every tree.
//! Presorting made boosting twice as fast natively and a third faster as Wasm, without
//! lowering the Wasm / native ratio; the one-pass partition lowered it (BENCHMARKS.md,
//! section 3).
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

/// Every column's rows in sort order, where a node's rows are one range of each column's list,
/// kept twice: the nodes of odd tree levels (the root is level 1) find their rows in one copy,
/// those of even levels in the other, and splitting a node writes its children's rows into
/// the other copy over the same range. The partition is then one pass from one copy to the
/// other, where in place it needed a scratch list and a copy back (in Wasm a `memory.copy`, a
/// call out of the guest, per column and node). Any order of visiting nodes works: a node's
/// range lies in its parent's, and only the parent, already split, read that range of this
/// copy.
#[derive(Debug, Clone)]
struct RowLists {
    copies: [Vec<Vec<u32>>; 2],
}

impl RowLists {
    /// Lists for a tree whose root (level 1) has the rows `order`.
    fn new(order: Vec<Vec<u32>>) -> Self {
        let other = order.iter().map(|list| vec![0; list.len()]).collect();
        Self {
            copies: [order, other],
        }
    }

    /// The copy holding the rows of the nodes at `level`: 0 for odd levels, 1 for even.
    fn copy_of(level: u16) -> usize {
        usize::from(level.is_multiple_of(2))
    }

    /// Column `j`'s rows of the node at `level` whose rows are `range`.
    fn rows(&self, level: u16, j: usize, range: std::ops::Range<usize>) -> &[u32] {
        &self.copies[Self::copy_of(level)][j][range]
    }

    /// Splits the `range` of the node at `level` between its children, in every column: the
    /// `n_true` rows that `goes_true` sends to the true child first, both sides in their order,
    /// so each child's range of every column stays sorted.
    fn partition(
        &mut self,
        level: u16,
        range: std::ops::Range<usize>,
        n_true: usize,
        goes_true: &[bool],
    ) {
        let [first, second] = &mut self.copies;
        let (from, to) = match Self::copy_of(level) {
            0 => (first, second),
            _ => (second, first),
        };
        for (from, to) in from.iter().zip(to.iter_mut()) {
            partition(
                &from[range.clone()],
                &mut to[range.clone()],
                n_true,
                goes_true,
            );
        }
    }
}

/// Writes `rows` into `to`, those `goes_true` sends to the true side (`n_true` of them) first.
///
/// The destination is a select, not a branch: the sides alternate unpredictably, and a
/// mispredicted branch per row was a fifth of boosting's time. The loop carries two counters
/// only (position, trues so far): the fewer values live in it, the fewer Cranelift spills.
fn partition(rows: &[u32], to: &mut [u32], n_true: usize, goes_true: &[bool]) {
    let mut t = 0;
    for (k, &row) in rows.iter().enumerate() {
        let to_true = goes_true[row as usize];
        // The falses so far are k - t; they follow all n_true trues.
        let at = if to_true { t } else { n_true + k - t };
        to[at] = row;
        t += usize::from(to_true);
    }
}
