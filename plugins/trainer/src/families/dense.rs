//! The training data, checked once and held in smartcore's types.

use std::cell::OnceCell;

use mlx_plugin_sdk::PluginError;
use mlx_tabular::Matrix;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use smartcore::linalg::basic::matrix::DenseMatrix;

use super::grow::Presorted;
use super::spec::task_name;
use super::{Target, Task};

pub type Dense = DenseMatrix<f64>;

/// smartcore's class labels: it needs an `Ord` number type, and the labels are the class
/// indices themselves, so a label is its column in the probabilities.
pub type Label = u32;

/// The targets in the form the families train on.
#[derive(Debug, Clone)]
pub enum Y {
    Classes { labels: Vec<Label>, classes: usize },
    Values(Vec<f64>),
    None,
}

/// Checked training data.
#[derive(Debug, Clone)]
pub struct TrainData {
    pub x: Dense,
    pub rows: usize,
    pub cols: usize,
    pub y: Y,
    /// Computed on first use: only a training that checkpoints (or resumes) needs it, and
    /// hashing the matrix is a SHA-256 over all of it, which in Wasm has no SHA instructions
    /// to run on (a few ms for digits' 735 kB, a tenth of a k-means training).
    key: OnceCell<DataKey>,
    /// Sorted once, on first use, for every tree of the training.
    presorted: OnceCell<Presorted>,
}

/// Identifies the training data a checkpoint was made on, so a retried attempt resumes only
/// onto the same rows (same shape is not enough: a re-split of the same file has it too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataKey {
    pub rows: usize,
    pub cols: usize,
    /// SHA-256 of the matrix's and the targets' bits, hex.
    pub sha256: String,
}

fn invalid(type_name: &str, message: String) -> PluginError {
    PluginError::invalid_input(type_name, message)
}

/// `m` as a smartcore matrix, refusing a `Matrix` whose fields disagree (it may have been
/// deserialized) and non-finite values (smartcore's splits and solvers assume finite input).
pub fn dense(m: &Matrix) -> Result<Dense, PluginError> {
    if m.rows.checked_mul(m.cols) != Some(m.data.len()) {
        return Err(invalid(
            "MalformedMatrix",
            format!(
                "the matrix claims {}×{} but holds {} values",
                m.rows,
                m.cols,
                m.data.len()
            ),
        ));
    }
    if let Some(i) = m.data.iter().position(|v| !v.is_finite()) {
        return Err(invalid(
            "NonFiniteValue",
            format!(
                "row {}, column {} is {}; features must be finite",
                i / m.cols.max(1),
                i % m.cols.max(1),
                m.data[i]
            ),
        ));
    }
    DenseMatrix::new(m.rows, m.cols, m.data.clone(), false)
        .map_err(|e| invalid("MalformedMatrix", e.to_string()))
}

/// `m` for prediction by a model trained on `features` columns.
pub fn for_prediction(m: &Matrix, features: usize) -> Result<Dense, PluginError> {
    if m.cols != features {
        return Err(invalid(
            "FeatureMismatch",
            format!(
                "the model was trained on {features} features, the data has {}",
                m.cols
            ),
        ));
    }
    dense(m)
}

impl TrainData {
    pub fn new(task: Task, x: &Matrix, y: &Target) -> Result<Self, PluginError> {
        if x.rows == 0 {
            return Err(invalid("NoRows", "the training matrix has no rows".into()));
        }
        if x.cols == 0 {
            return Err(invalid(
                "NoFeatures",
                "the training matrix has no feature columns".into(),
            ));
        }
        let dense_x = dense(x)?;
        let y = match (task, y) {
            (Task::Classification { classes }, Target::Classes(c)) => {
                check_len(x.rows, c.len())?;
                let labels = c
                    .iter()
                    .map(|&class| {
                        Label::try_from(class)
                            .ok()
                            .filter(|_| class < classes)
                            .ok_or_else(|| {
                                invalid(
                                    "InvalidTarget",
                                    format!("class {class} is not in 0..{classes}"),
                                )
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Y::Classes { labels, classes }
            }
            (Task::Regression, Target::Values(v)) => {
                check_len(x.rows, v.len())?;
                if let Some(i) = v.iter().position(|v| !v.is_finite()) {
                    return Err(invalid(
                        "NonFiniteValue",
                        format!("the target of row {i} is {}; it must be finite", v[i]),
                    ));
                }
                Y::Values(v.clone())
            }
            (Task::Clustering, Target::None) => Y::None,
            (task, _) => {
                return Err(invalid(
                    "InvalidTarget",
                    format!(
                        "{} needs {} targets",
                        task_name(task),
                        expected_target(task)
                    ),
                ));
            }
        };
        Ok(Self {
            x: dense_x,
            rows: x.rows,
            cols: x.cols,
            y,
            key: OnceCell::new(),
            presorted: OnceCell::new(),
        })
    }

    /// Identifies this training data in a checkpoint.
    pub fn key(&self) -> &DataKey {
        self.key.get_or_init(|| DataKey {
            rows: self.rows,
            cols: self.cols,
            sha256: digest(&self.x, self.rows, self.cols, &self.y),
        })
    }

    /// The columns and their sort orders the trees are grown on.
    pub fn presorted(&self) -> &Presorted {
        self.presorted.get_or_init(|| Presorted::new(&self.x))
    }
}

fn expected_target(task: Task) -> &'static str {
    match task {
        Task::Classification { .. } => "class",
        Task::Regression => "real-valued",
        Task::Clustering => "no",
    }
}

fn check_len(rows: usize, targets: usize) -> Result<(), PluginError> {
    if rows == targets {
        return Ok(());
    }
    Err(invalid(
        "InvalidTarget",
        format!("{rows} rows but {targets} targets"),
    ))
}

/// SHA-256 of the shape, the values and the targets. `x` yields its values row-major, the order
/// `dense` built it in from the input matrix's `data`.
fn digest(x: &Dense, rows: usize, cols: usize, y: &Y) -> String {
    let mut h = Sha256::new();
    h.update((rows as u64).to_le_bytes());
    h.update((cols as u64).to_le_bytes());
    for v in x.iter() {
        h.update(v.to_bits().to_le_bytes());
    }
    match y {
        Y::Classes { labels, classes } => {
            h.update((*classes as u64).to_le_bytes());
            for l in labels {
                h.update(l.to_le_bytes());
            }
        }
        Y::Values(values) => {
            for v in values {
                h.update(v.to_bits().to_le_bytes());
            }
        }
        Y::None => {}
    }
    h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
}
