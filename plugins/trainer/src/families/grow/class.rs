//! Classification trees: smartcore's `DecisionTreeClassifier`, the trees of its forests.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use smartcore::error::Failed;
use smartcore::tree::decision_tree_classifier::{DecisionTreeClassifierParameters, SplitCriterion};
use std::collections::VecDeque;

use super::super::dense::Label;
use super::super::math::log2;
use super::super::tree::ClassTree;
use super::{Presorted, RowLists};

/// A node in the serde form of smartcore's `DecisionTreeClassifier`.
#[derive(Debug, Clone, Serialize)]
struct Node {
    output: usize,
    n_node_samples: usize,
    split_feature: usize,
    split_value: Option<f64>,
    split_score: Option<f64>,
    true_child: Option<usize>,
    false_child: Option<usize>,
    impurity: Option<f64>,
}

impl Node {
    fn new(output: usize, n_node_samples: usize) -> Self {
        Self {
            output,
            n_node_samples,
            split_feature: 0,
            split_value: None,
            split_score: None,
            true_child: None,
            false_child: None,
            impurity: None,
        }
    }
}

/// The serde form of smartcore's `DecisionTreeClassifier`.
#[derive(Serialize)]
struct TreeForm<'a> {
    nodes: Vec<Node>,
    parameters: Option<&'a DecisionTreeClassifierParameters>,
    num_classes: usize,
    classes: Vec<Label>,
    depth: u16,
    num_features: usize,
    _phantom_tx: (),
    _phantom_x: (),
    _phantom_y: (),
}

/// A node waiting to be split: its rows are `start..end` of every column's list.
struct Visitor {
    node: usize,
    start: usize,
    end: usize,
    level: u16,
    true_output: usize,
    false_output: usize,
}

/// The tree smartcore's `DecisionTreeClassifier::fit_weak_learner(x, labels, samples, mtry,
/// params)` grows, where `samples` counts each row's copies (a bootstrap sample; all ones for
/// a plain tree) and `params.seed` seeds the feature choice.
pub fn grow_class_tree(
    sorted: &Presorted,
    labels: &[Label],
    samples: &[usize],
    mtry: usize,
    params: &DecisionTreeClassifierParameters,
) -> Result<ClassTree, Failed> {
    let classes = sorted_classes(labels);
    let k = classes.len();
    if k < 2 {
        return Err(Failed::fit(&format!(
            "Incorrect number of classes: {k}. Should be >= 2."
        )));
    }
    if labels.len() != sorted.rows() || samples.len() != sorted.rows() {
        return Err(Failed::fit("Number of rows in X should = len(y)"));
    }
    let y: Vec<usize> = labels
        .iter()
        .map(|l| classes.binary_search(l).unwrap_or(0))
        .collect();
    let mut count = vec![0; k];
    for (&c, &s) in y.iter().zip(samples) {
        count[c] += s;
    }
    // Only rows drawn at least once take part; their relative order is smartcore's.
    let order: Vec<Vec<u32>> = sorted
        .order
        .iter()
        .map(|o| {
            o.iter()
                .copied()
                .filter(|&i| samples[i as usize] > 0)
                .collect()
        })
        .collect();
    let end = order.first().map_or(0, Vec::len);
    let mut grower = Grower {
        sorted,
        y: &y,
        samples,
        k,
        mtry,
        criterion: params.criterion.clone(),
        min_leaf: params.min_samples_leaf,
        min_split: params.min_samples_split,
        rng: StdRng::seed_from_u64(params.seed.unwrap_or(0)),
        nodes: vec![Node::new(which_max(&count), labels.len())],
        depth: 0,
        goes_true: vec![false; sorted.rows()],
        true_count: vec![0; k],
        false_count: vec![0; k],
        lists: RowLists::new(order),
    };
    let mut root = Visitor {
        node: 0,
        start: 0,
        end,
        level: 1,
        true_output: 0,
        false_output: 0,
    };
    let mut queue = VecDeque::new();
    if grower.find_best_cutoff(&mut root) {
        queue.push_back(root);
    }
    let max_depth = params.max_depth.unwrap_or(u16::MAX);
    while let Some(visitor) = queue.pop_front() {
        if visitor.level < max_depth {
            grower.split(visitor, &mut queue);
        }
    }
    let form = TreeForm {
        nodes: grower.nodes,
        parameters: Some(params),
        num_classes: k,
        classes,
        depth: grower.depth,
        num_features: sorted.features(),
        _phantom_tx: (),
        _phantom_x: (),
        _phantom_y: (),
    };
    serde_json::to_value(form)
        .and_then(serde_json::from_value)
        .map_err(|e| Failed::fit(&format!("building smartcore's tree: {e}")))
}

/// The classes present in `labels`, in order: smartcore's `y.unique()`, whose positions are
/// the class indices a tree predicts and the order the bootstrap draws classes in.
fn sorted_classes(labels: &[Label]) -> Vec<Label> {
    let mut classes = labels.to_vec();
    classes.sort_unstable();
    classes.dedup();
    classes
}

/// smartcore's forest bootstrap (`sample_with_replacement`), from a generator seeded `seed`:
/// from each class in turn, as many draws with replacement as it has rows; how often each row
/// was drawn. smartcore draws every tree's sample from one generator seeded with the forest's
/// seed and seeds tree i's feature draws with seed + i: in a one-tree forest, both are `seed`.
pub fn forest_bootstrap(labels: &[Label], seed: u64) -> Vec<usize> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut samples = vec![0; labels.len()];
    for class in sorted_classes(labels) {
        let rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        for _ in 0..rows.len() {
            samples[rows[rng.random_range(0..rows.len())]] += 1;
        }
    }
    samples
}

struct Grower<'a> {
    sorted: &'a Presorted,
    /// Each row's class, as an index into the sorted classes.
    y: &'a [usize],
    samples: &'a [usize],
    k: usize,
    mtry: usize,
    criterion: SplitCriterion,
    min_leaf: usize,
    min_split: usize,
    rng: StdRng,
    nodes: Vec<Node>,
    depth: u16,
    /// Per column, the rows of every node: a node's rows are one range of each list.
    lists: RowLists,
    goes_true: Vec<bool>,
    true_count: Vec<usize>,
    false_count: Vec<usize>,
}

impl Grower<'_> {
    /// smartcore's `find_best_cutoff`: the node's impurity, then the best split over `mtry`
    /// features in a shuffled order; whether the node has a split to make.
    fn find_best_cutoff(&mut self, v: &mut Visitor) -> bool {
        let rows = self.lists.rows(v.level, 0, v.start..v.end);
        let first = rows.first().map(|&i| self.y[i as usize]);
        let is_pure = rows.iter().all(|&i| Some(self.y[i as usize]) == first);
        let mut count = vec![0; self.k];
        let mut n = 0;
        for &i in rows {
            let (c, s) = (self.y[i as usize], self.samples[i as usize]);
            count[c] += s;
            n += s;
        }
        self.nodes[v.node].impurity = Some(impurity(&self.criterion, &count, n));
        if is_pure || n < self.min_split {
            return false;
        }
        let features = self.sorted.features();
        let mut variables: Vec<usize> = (0..features).collect();
        if self.mtry < features {
            variables.shuffle(&mut self.rng);
        }
        for &j in variables.iter().take(self.mtry) {
            self.find_best_split(v, n, &count, j);
        }
        self.nodes[v.node].split_score.is_some()
    }

    /// smartcore's `find_best_split` on column `j`: a candidate between each two neighbouring
    /// distinct values whose rows differ in class, kept if its gain beats the best so far.
    fn find_best_split(&mut self, v: &mut Visitor, n: usize, count: &[usize], j: usize) {
        let col = &self.sorted.cols[j];
        let parent_impurity = self.nodes[v.node].impurity.unwrap_or(f64::NAN);
        let true_count = &mut self.true_count;
        let false_count = &mut self.false_count;
        true_count.iter_mut().for_each(|c| *c = 0);
        let mut tc = 0;
        let mut prev: Option<(f64, usize)> = None;
        for &i in self.lists.rows(v.level, j, v.start..v.end) {
            let i = i as usize;
            let (x, y, s) = (col[i], self.y[i], self.samples[i]);
            let candidate = match prev {
                Some((px, py)) => x != px && y != py,
                None => false,
            };
            if candidate && tc >= self.min_leaf && n - tc >= self.min_leaf {
                let fc = n - tc;
                for l in 0..self.k {
                    false_count[l] = count[l] - true_count[l];
                }
                let gain = parent_impurity
                    - tc as f64 / n as f64 * impurity(&self.criterion, true_count, tc)
                    - fc as f64 / n as f64 * impurity(&self.criterion, false_count, fc);
                let node = &mut self.nodes[v.node];
                if node.split_score.is_none_or(|best| gain > best) {
                    let px = prev.map_or(f64::NAN, |p| p.0);
                    node.split_feature = j;
                    node.split_value = Some((x + px) / 2.0);
                    node.split_score = Some(gain);
                    v.true_output = which_max(true_count);
                    v.false_output = which_max(false_count);
                }
            }
            prev = Some((x, y));
            true_count[y] += s;
            tc += s;
        }
    }

    /// smartcore's `split`: the node's rows go to two children, which are searched for their
    /// own splits (true child first) and queued if they have one.
    fn split(&mut self, v: Visitor, queue: &mut VecDeque<Visitor>) {
        let (feature, value) = {
            let node = &self.nodes[v.node];
            (node.split_feature, node.split_value.unwrap_or(f64::NAN))
        };
        let col = &self.sorted.cols[feature];
        let (mut tc, mut fc, mut n_true) = (0, 0, 0);
        for &i in self.lists.rows(v.level, 0, v.start..v.end) {
            let i = i as usize;
            let goes_true = col[i] <= value;
            self.goes_true[i] = goes_true;
            if goes_true {
                tc += self.samples[i];
                n_true += 1;
            } else {
                fc += self.samples[i];
            }
        }
        if tc < self.min_leaf || fc < self.min_leaf {
            let node = &mut self.nodes[v.node];
            node.split_feature = 0;
            node.split_value = None;
            node.split_score = None;
            return;
        }
        let true_child = self.nodes.len();
        self.nodes.push(Node::new(v.true_output, tc));
        let false_child = self.nodes.len();
        self.nodes.push(Node::new(v.false_output, fc));
        self.nodes[v.node].true_child = Some(true_child);
        self.nodes[v.node].false_child = Some(false_child);
        self.depth = self.depth.max(v.level + 1);
        self.lists
            .partition(v.level, v.start..v.end, n_true, &self.goes_true);
        let middle = v.start + n_true;
        let child = |node, start, end| Visitor {
            node,
            start,
            end,
            level: v.level + 1,
            true_output: 0,
            false_output: 0,
        };
        for mut c in [
            child(true_child, v.start, middle),
            child(false_child, middle, v.end),
        ] {
            if self.find_best_cutoff(&mut c) {
                queue.push_back(c);
            }
        }
    }
}

/// smartcore's impurity of a node with class counts `count` summing to `n`, in its order of
/// operations (the split gains compare these to the last bit). Entropy's logarithm is libm's,
/// where smartcore's is the platform's, so that the component and the native build grow the
/// same trees (families/math.rs).
fn impurity(criterion: &SplitCriterion, count: &[usize], n: usize) -> f64 {
    let mut impurity = 0f64;
    match criterion {
        SplitCriterion::Gini => {
            impurity = 1f64;
            for &c in count {
                if c > 0 {
                    let p = c as f64 / n as f64;
                    impurity -= p * p;
                }
            }
        }
        SplitCriterion::Entropy => {
            for &c in count {
                if c > 0 {
                    let p = c as f64 / n as f64;
                    impurity -= p * log2(p);
                }
            }
        }
        SplitCriterion::ClassificationError => {
            for &c in count {
                if c > 0 {
                    impurity = impurity.max(c as f64 / n as f64);
                }
            }
            impurity = (1f64 - impurity).abs();
        }
    }
    impurity
}

/// The first index of the largest count.
fn which_max(x: &[usize]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate().skip(1) {
        if v > x[best] {
            best = i;
        }
    }
    best
}
