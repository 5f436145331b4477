//! A table in memory: named, typed columns of equal length, each cell possibly missing.

use mlx_plugin_sdk::PluginError;

use crate::error;

/// Named columns, all of the same length (one value per data row).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub columns: Vec<Column>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub data: ColumnData,
}

/// A column's cells; `None` is a missing value.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    Numeric(Vec<Option<f64>>),
    /// Text, booleans and anything else that is not all numbers.
    Categorical(Vec<Option<String>>),
}

impl Table {
    /// Data rows: the length of the first column (all have the same), 0 without columns.
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.data.len())
    }

    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// The column called `name`; `ColumnNotFound` lists the names there are.
    pub fn column(&self, name: &str) -> Result<&Column, PluginError> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| error::column_not_found(name, &self.names()))
    }

    /// The rows at `indices`, in that order (splits, bootstrap samples). Indices must be below
    /// [`Table::rows`]: they come from the program, not from a file.
    pub fn select_rows(&self, indices: &[usize]) -> Table {
        Table {
            columns: self
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.clone(),
                    data: c.data.select_rows(indices),
                })
                .collect(),
        }
    }
}

impl Column {
    pub fn numeric(name: impl Into<String>, values: Vec<Option<f64>>) -> Self {
        Self {
            name: name.into(),
            data: ColumnData::Numeric(values),
        }
    }

    pub fn categorical(name: impl Into<String>, values: Vec<Option<String>>) -> Self {
        Self {
            name: name.into(),
            data: ColumnData::Categorical(values),
        }
    }

    /// Number of missing cells.
    pub fn missing(&self) -> usize {
        match &self.data {
            ColumnData::Numeric(v) => v.iter().filter(|x| x.is_none()).count(),
            ColumnData::Categorical(v) => v.iter().filter(|x| x.is_none()).count(),
        }
    }
}

impl ColumnData {
    pub fn len(&self) -> usize {
        match self {
            ColumnData::Numeric(v) => v.len(),
            ColumnData::Categorical(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_numeric(&self) -> bool {
        matches!(self, ColumnData::Numeric(_))
    }

    /// "numeric" or "categorical", for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            ColumnData::Numeric(_) => "numeric",
            ColumnData::Categorical(_) => "categorical",
        }
    }

    /// The cells at `indices`, in that order; indices must be below [`ColumnData::len`].
    pub fn select_rows(&self, indices: &[usize]) -> Self {
        match self {
            ColumnData::Numeric(v) => ColumnData::Numeric(indices.iter().map(|&i| v[i]).collect()),
            ColumnData::Categorical(v) => {
                ColumnData::Categorical(indices.iter().map(|&i| v[i].clone()).collect())
            }
        }
    }
}

/// A number as a label or CSV cell: the shortest text that reads back as the same `f64`, so
/// whole numbers lose their `.0` (1.0 → "1", 2.5 → "2.5"): class labels read from a numeric
/// column then match the same labels written as text.
pub fn format_number(x: f64) -> String {
    // `{}` of an f64 is already the shortest round-tripping form, and never uses an exponent.
    format!("{x}")
}

/// A column's cells as labels (class names): numbers through [`format_number`].
pub fn labels(column: &Column) -> Vec<Option<String>> {
    match &column.data {
        ColumnData::Numeric(v) => v.iter().map(|x| x.map(format_number)).collect(),
        ColumnData::Categorical(v) => v.clone(),
    }
}

/// A numeric column's cells (regression targets); `ColumnTypeMismatch` for a categorical one.
pub fn values(column: &Column) -> Result<Vec<Option<f64>>, PluginError> {
    match &column.data {
        ColumnData::Numeric(v) => Ok(v.clone()),
        ColumnData::Categorical(v) => {
            let example = v
                .iter()
                .enumerate()
                .find_map(|(i, x)| Some((i, x.as_deref()?)));
            Err(error::not_numeric(&column.name, example))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_drop_the_point_of_whole_numbers() {
        let column = Column::numeric(
            "y",
            vec![Some(1.0), Some(2.5), None, Some(-0.0), Some(1e21)],
        );
        assert_eq!(
            labels(&column),
            [
                Some("1".into()),
                Some("2.5".into()),
                None,
                Some("-0".into()),
                Some("1000000000000000000000".into()),
            ]
        );
        assert_eq!(values(&column).unwrap()[1], Some(2.5));
        let text = Column::categorical("t", vec![None, Some("a".into())]);
        assert_eq!(labels(&text), [None, Some("a".to_string())]);
        let err = values(&text).unwrap_err();
        assert_eq!(err.type_name, "ColumnTypeMismatch");
        assert!(err.message.contains("data row 2: \"a\""), "{err}");
    }

    #[test]
    fn select_rows_and_column_lookup() {
        let table = Table {
            columns: vec![
                Column::numeric("a", vec![Some(1.0), Some(2.0)]),
                Column::categorical("b", vec![Some("x".into()), None]),
            ],
        };
        assert_eq!(table.rows(), 2);
        let picked = table.select_rows(&[1, 1, 0]);
        assert_eq!(picked.rows(), 3);
        assert_eq!(picked.columns[1].missing(), 2);
        let err = table.column("c").unwrap_err();
        assert_eq!(err.type_name, "ColumnNotFound");
        assert!(err.message.contains(r#"["a", "b"]"#), "{err}");
    }
}
