//! Regression trees: smartcore's `DecisionTreeRegressor` (its `BaseTree` with the best-split
//! splitter and the squared-error criterion), the trees boosting fits every round.
//!
//! smartcore's own grower already partitions presorted columns per node; what it cannot do is
//! keep the sort between fits: boosting fits hundreds of trees to the same matrix and smartcore
//! argsorts every column for each (42 % of boosting's native time, BENCHMARKS.md).

use std::cmp::Ordering;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::Serialize;
use smartcore::error::{Failed, FailedError};
use smartcore::tree::decision_tree_regressor::DecisionTreeRegressorParameters;

use super::super::tree::RegTree;
use super::{Presorted, RowLists};

/// smartcore's `MeanStats`: weighted sum of the targets, and the weight.
#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    sum: f64,
    mass: f64,
}

impl Stats {
    fn add(&mut self, target: f64, mass: f64) {
        self.mass += mass;
        self.sum += target * mass;
    }

    fn minus(&self, part: &Stats) -> Stats {
        Stats {
            sum: self.sum - part.sum,
            mass: self.mass - part.mass,
        }
    }

    fn leaf_value(&self) -> f64 {
        if self.mass > 0.0 {
            self.sum / self.mass
        } else {
            0.0
        }
    }
}

/// smartcore's proxy of the squared-error decrease, which ranks the candidate splits.
fn proxy_improvement(t: &Stats, f: &Stats) -> f64 {
    if t.mass <= 0.0 || f.mass <= 0.0 {
        return 0.0;
    }
    let d = t.sum * f.mass - f.sum * t.mass;
    (d * d) / (t.mass * f.mass)
}

/// smartcore's weighted squared-error decrease of a split, stored as its score.
fn impurity_improvement(parent: &Stats, t: &Stats, f: &Stats) -> f64 {
    if t.mass <= 0.0 || f.mass <= 0.0 {
        return 0.0;
    }
    let d = t.sum * f.mass - f.sum * t.mass;
    (d * d) / (t.mass * f.mass * parent.mass)
}

/// A node in the serde form of smartcore's `BaseTree<…, f64>`.
#[derive(Debug, Clone, Serialize)]
struct Node {
    output: f64,
    split_feature: usize,
    split_value: Option<f64>,
    split_score: Option<f64>,
    true_child: Option<usize>,
    false_child: Option<usize>,
}

impl Node {
    fn new(output: f64) -> Self {
        Self {
            output,
            split_feature: 0,
            split_value: None,
            split_score: None,
            true_child: None,
            false_child: None,
        }
    }
}

/// The serde form of smartcore's `BaseTreeParameters`.
#[derive(Serialize)]
struct BaseParams {
    max_depth: Option<u16>,
    min_samples_leaf: usize,
    min_samples_split: usize,
    seed: Option<u64>,
    splitter: &'static str,
}

/// The serde form of smartcore's `BaseTree<…, f64>`.
#[derive(Serialize)]
struct BaseForm {
    nodes: Vec<Node>,
    parameters: Option<BaseParams>,
    depth: u16,
    root_mass: f64,
    _phantom_tx: (),
    _phantom_ty: (),
    _phantom_x: (),
    _phantom_y: (),
}

/// The serde form of smartcore's `DecisionTreeRegressor`.
#[derive(Serialize)]
struct TreeForm {
    tree_regressor: Option<BaseForm>,
    num_features: Option<usize>,
}

/// A node waiting to be split: its rows are `start..end` of every column's list.
struct Visitor {
    node: usize,
    start: usize,
    end: usize,
    level: u16,
    stats: Stats,
}

/// The tree smartcore's `DecisionTreeRegressor::fit` (`weights` absent) or `fit_with_weights`
/// grows on the matrix `sorted` holds: every row once, every feature tried at each node in an
/// order drawn from `params.seed`.
pub fn grow_reg_tree(
    sorted: &Presorted,
    y: &[f64],
    weights: Option<&[f64]>,
    params: &DecisionTreeRegressorParameters,
) -> Result<RegTree, Failed> {
    let rows = sorted.rows();
    if let Some(w) = weights {
        if w.len() != rows {
            return Err(Failed::fit(
                "Number of sample weights must equal number of rows in x",
            ));
        }
        if w.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err(Failed::fit(
                "Sample weights must be finite and non-negative",
            ));
        }
        if w.iter().sum::<f64>() <= 0.0 {
            return Err(Failed::fit("Sum of sample weights must be positive"));
        }
    }
    if rows != y.len() {
        return Err(Failed::fit("Size of x should equal size of y"));
    }
    if rows == 0 || sorted.features() == 0 {
        return Err(Failed::because(
            FailedError::ParametersError,
            "Training data must contain at least one sample and one feature.",
        ));
    }
    // Each row is in the sample once: its mass is its weight (smartcore's 1 × weight).
    let mass: Vec<f64> = weights.map_or_else(|| vec![1.0; rows], <[f64]>::to_vec);
    let mut root = Stats::default();
    for i in 0..rows {
        root.add(y[i], mass[i]);
    }
    // A row of weight 0 adds nothing; smartcore leaves it out of the nodes' rows and counts.
    let kept = mass.iter().filter(|&&m| m > 0.0).count();
    let entries: Vec<Vec<u32>> = if kept == rows {
        sorted.order.clone()
    } else {
        let order = sorted.order.iter();
        order
            .map(|o| {
                o.iter()
                    .copied()
                    .filter(|&i| mass[i as usize] > 0.0)
                    .collect()
            })
            .collect()
    };
    let max_depth = params.max_depth.unwrap_or(u16::MAX);
    let mut grower = Grower {
        sorted,
        targets: y.iter().zip(&mass).map(|(&y, &m)| [y, m]).collect(),
        min_leaf: params.min_samples_leaf,
        min_split: params.min_samples_split,
        max_depth,
        rng: StdRng::seed_from_u64(params.seed.unwrap_or(0)),
        variables: (0..sorted.features()).collect(),
        nodes: vec![Node::new(root.leaf_value())],
        depth: 0,
        goes_true: vec![false; rows],
        lists: RowLists::new(entries),
    };
    let mut visitor = Visitor {
        node: 0,
        start: 0,
        end: kept,
        level: 1,
        stats: root,
    };
    let mut stack = Vec::new();
    if max_depth > 1
        && kept > 0
        && kept >= grower.min_split
        && grower.find_best_cutoff(&mut visitor, kept)
    {
        stack.push(visitor);
    }
    while let Some(visitor) = stack.pop() {
        if visitor.level < max_depth {
            grower.split(visitor, &mut stack);
        }
    }
    let form = TreeForm {
        tree_regressor: Some(BaseForm {
            nodes: grower.nodes,
            parameters: Some(BaseParams {
                max_depth: params.max_depth,
                min_samples_leaf: params.min_samples_leaf,
                min_samples_split: params.min_samples_split,
                seed: params.seed,
                splitter: "Best",
            }),
            depth: grower.depth,
            root_mass: root.mass,
            _phantom_tx: (),
            _phantom_ty: (),
            _phantom_x: (),
            _phantom_y: (),
        }),
        num_features: Some(sorted.features()),
    };
    serde_json::to_value(form)
        .and_then(serde_json::from_value)
        .map_err(|e| Failed::fit(&format!("building smartcore's tree: {e}")))
}

struct Grower<'a> {
    sorted: &'a Presorted,
    min_leaf: usize,
    min_split: usize,
    max_depth: u16,
    rng: StdRng,
    /// The features, reshuffled in place at every node (smartcore's order of draws).
    variables: Vec<usize>,
    nodes: Vec<Node>,
    depth: u16,
    /// Per column, the rows of every node: a node's rows are one range of each list.
    lists: RowLists,
    goes_true: Vec<bool>,
    /// Each row's target and weight, side by side: the searches read both for every row they
    /// visit, at a row index, and one address for the two is cheaper than two, as Wasm most of
    /// all (each is an add to the memory's base).
    targets: Vec<[f64; 2]>,
}

impl Grower<'_> {
    /// smartcore's `find_best_cutoff`: the best split over every feature, tried in a freshly
    /// shuffled order; whether the node has one. `n` counts the node's rows.
    fn find_best_cutoff(&mut self, v: &mut Visitor, n: usize) -> bool {
        self.variables.shuffle(&mut self.rng);
        for k in 0..self.variables.len() {
            let j = self.variables[k];
            self.find_best_split(v, n, j);
        }
        self.nodes[v.node].split_score.is_some()
    }

    /// smartcore's `find_best_split` on column `j`: a candidate between each two neighbouring
    /// distinct values, kept if it ranks above the best so far.
    fn find_best_split(&mut self, v: &Visitor, n: usize, j: usize) {
        let list = self.lists.rows(v.level, j, v.start..v.end);
        let Some(&first) = list.first() else {
            return;
        };
        let col = &self.sorted.cols[j];
        let mut prev = col[first as usize];
        let mut true_stats = Stats::default();
        // tc: the rows before this one, which a split here sends to the true side.
        for (tc, &row) in list.iter().enumerate() {
            let row = row as usize;
            let x = col[row];
            if x != prev && tc >= self.min_leaf && n - tc >= self.min_leaf {
                let false_stats = v.stats.minus(&true_stats);
                let proxy = proxy_improvement(&true_stats, &false_stats);
                let node = &mut self.nodes[v.node];
                if node.split_score.is_none_or(|best| proxy > best) {
                    // The midpoint, unless it rounds up to x: then prev, which still parts them.
                    let mid = prev + (x - prev) / 2.0;
                    node.split_feature = j;
                    node.split_value = Some(if mid < x { mid } else { prev });
                    node.split_score = Some(proxy);
                }
            }
            prev = x;
            let [y, m] = self.targets[row];
            true_stats.add(y, m);
        }
    }

    /// smartcore's `split`: two children, the node's range of every column partitioned
    /// between them (unless neither can split again), each searched and stacked if it can.
    fn split(&mut self, v: Visitor, stack: &mut Vec<Visitor>) {
        let (feature, value) = {
            let node = &self.nodes[v.node];
            (node.split_feature, node.split_value.unwrap_or(f64::NAN))
        };
        let col = &self.sorted.cols[feature];
        let list = self.lists.rows(v.level, feature, v.start..v.end);
        let mut parent = Stats::default();
        let (mut tc, mut fc, mut n_true) = (0usize, 0usize, 0usize);
        for &row in list {
            let row = row as usize;
            // A NaN split value sends every row to the false side, as smartcore's `<=` does.
            if !matches!(
                col[row].partial_cmp(&value),
                Some(Ordering::Less | Ordering::Equal)
            ) {
                break;
            }
            self.goes_true[row] = true;
            tc += 1;
            let [y, m] = self.targets[row];
            parent.add(y, m);
            n_true += 1;
        }
        let true_stats = parent;
        let mut false_stats = Stats::default();
        for &row in &list[n_true..] {
            let row = row as usize;
            self.goes_true[row] = false;
            fc += 1;
            let [y, m] = self.targets[row];
            parent.add(y, m);
            false_stats.add(y, m);
        }
        if tc < self.min_leaf || fc < self.min_leaf {
            let node = &mut self.nodes[v.node];
            node.split_feature = 0;
            node.split_value = None;
            node.split_score = None;
            return;
        }
        self.nodes[v.node].split_score =
            Some(impurity_improvement(&parent, &true_stats, &false_stats));
        let true_child = self.nodes.len();
        self.nodes.push(Node::new(true_stats.leaf_value()));
        let false_child = self.nodes.len();
        self.nodes.push(Node::new(false_stats.leaf_value()));
        self.nodes[v.node].true_child = Some(true_child);
        self.nodes[v.node].false_child = Some(false_child);
        let level = v.level + 1;
        self.depth = self.depth.max(level);
        let true_can_split = level < self.max_depth && tc >= self.min_split;
        let false_can_split = level < self.max_depth && fc >= self.min_split;
        if !true_can_split && !false_can_split {
            return;
        }
        self.lists
            .partition(v.level, v.start..v.end, n_true, &self.goes_true);
        let middle = v.start + n_true;
        let mut t = Visitor {
            node: true_child,
            start: v.start,
            end: middle,
            level,
            stats: true_stats,
        };
        if true_can_split && self.find_best_cutoff(&mut t, tc) {
            stack.push(t);
        }
        let mut f = Visitor {
            node: false_child,
            start: middle,
            end: v.end,
            level,
            stats: false_stats,
        };
        if false_can_split && self.find_best_cutoff(&mut f, fc) {
            stack.push(f);
        }
    }
}
