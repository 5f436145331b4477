//! Applying a [`FeatureSpec`] to a table: the encoded, finite matrix.

use mlx_plugin_sdk::PluginError;

use super::fit::refuse_missing;
use super::{Encoding, FeatureSpec, Missing, errors};
use crate::error::not_numeric;
use crate::limits::MAX_CELLS;
use crate::matrix::Matrix;
use crate::table::{Column, ColumnData, Table, format_number};

impl FeatureSpec {
    /// Encodes `table`, which must have every feature column (others are ignored, the target
    /// included). A numeric feature that reads as categorical here is `ColumnTypeMismatch`;
    /// a categorical feature that reads as numbers is matched by its numbers' text (1.0 as
    /// "1"). Categories unseen in training encode as all zeros.
    pub fn transform(&self, table: &Table) -> Result<Matrix, PluginError> {
        let rows = table.rows();
        let cols: usize = self.columns.iter().map(|c| c.encoding.width()).sum();
        if rows.saturating_mul(cols) > MAX_CELLS {
            return Err(errors::too_large(rows, cols));
        }
        let mut matrix = Matrix {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        };
        let mut offset = 0;
        for feature in &self.columns {
            let column = table.column(&feature.name)?;
            if self.options.missing == Missing::Refuse {
                refuse_missing(column, false)?;
            }
            let mut set = |row: usize, j: usize, x: f64| matrix.data[row * cols + offset + j] = x;
            match &feature.encoding {
                Encoding::Numeric { impute, scale } => {
                    for (i, x) in numbers(column)?.iter().enumerate() {
                        let x = x.unwrap_or(*impute);
                        if !x.is_finite() {
                            return Err(errors::non_finite(&column.name, i, x));
                        }
                        set(i, 0, scale.map_or(x, |s| (x - s.mean) / s.std));
                    }
                }
                Encoding::OneHot { categories, impute } => {
                    let mut put = |i: usize, label: Option<&str>| {
                        let label = label.unwrap_or(impute);
                        if let Ok(j) = categories.binary_search_by(|c| c.as_str().cmp(label)) {
                            set(i, j, 1.0);
                        }
                    };
                    match &column.data {
                        ColumnData::Categorical(v) => {
                            for (i, label) in v.iter().enumerate() {
                                put(i, label.as_deref());
                            }
                        }
                        ColumnData::Numeric(v) => {
                            for (i, x) in v.iter().enumerate() {
                                put(i, x.map(format_number).as_deref());
                            }
                        }
                    }
                }
            }
            offset += feature.encoding.width();
        }
        Ok(matrix)
    }
}

impl Encoding {
    /// Matrix columns this feature takes.
    pub fn width(&self) -> usize {
        match self {
            Encoding::Numeric { .. } => 1,
            Encoding::OneHot { categories, .. } => categories.len(),
        }
    }
}

fn numbers(column: &Column) -> Result<&[Option<f64>], PluginError> {
    match &column.data {
        ColumnData::Numeric(v) => Ok(v),
        ColumnData::Categorical(v) => {
            // Show a cell that is not a number: the likely reason the column read as text.
            let example = v.iter().enumerate().find_map(|(i, x)| {
                let x = x.as_deref()?;
                x.trim().parse::<f64>().is_err().then_some((i, x))
            });
            Err(not_numeric(&column.name, example))
        }
    }
}
