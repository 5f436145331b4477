//! Parquet in, through arrow-rs: numeric arrow types become numeric columns, text, dictionary
//! text and booleans categorical ones; anything else is refused by name.

use std::path::Path;

use arrow::array::Array;
use arrow::datatypes::Field;
use bytes::Bytes;
use mlx_plugin_sdk::PluginError;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::json;

use crate::arrow_cells::{is_numeric, numbers, texts};
use crate::error::{duplicate_column, malformed_parquet, no_rows};
use crate::limits;
use crate::table::{Column, ColumnData, Table};

/// Rows decoded at a time: arrow's default, a few MB per batch for a wide table.
const BATCH_ROWS: usize = 8192;

fn unsupported(path: &Path, field: &Field) -> PluginError {
    PluginError::invalid_input(
        "UnsupportedColumnType",
        format!(
            "column {:?} of {} has type {}, which cannot be used as a feature or label; only \
             numbers, text and booleans can. Convert it (e.g. timestamps to numbers, lists to \
             one column per element) or drop it before writing the file",
            field.name(),
            path.display(),
            field.data_type()
        ),
    )
    .with_details(json!({
        "path": path.display().to_string(),
        "column": field.name(),
        "type": field.data_type().to_string(),
    }))
}

/// Appends an arrow array's cells to a column of the kind [`is_numeric`] chose.
fn append(data: &mut ColumnData, array: &dyn Array) -> Result<(), &'static str> {
    match data {
        ColumnData::Numeric(v) => {
            let cells = numbers(array).ok_or("a numeric column did not decode as numbers")?;
            // NaN is how pandas writes a missing number; it is missing in CSV too.
            v.extend(cells.into_iter().map(|x| x.filter(|x| !x.is_nan())));
        }
        ColumnData::Categorical(v) => {
            v.extend(texts(array).ok_or("a text column did not decode as text")?);
        }
    }
    Ok(())
}

/// Reads a whole Parquet file held in memory; `path` names it in errors only.
///
/// Nulls (and NaN in float columns) are missing; text is taken as it is, so "NA" in a Parquet
/// text column is a category, unlike in CSV.
pub fn read_parquet(data: Vec<u8>, path: &Path) -> Result<Table, PluginError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(data))
        .map_err(|e| malformed_parquet(path, e))?;
    let fields = builder.schema().fields().clone();
    limits::check_columns(path, fields.len())?;
    let declared_rows = builder.metadata().file_metadata().num_rows();
    let rows = usize::try_from(declared_rows)
        .map_err(|_| malformed_parquet(path, format!("it declares {declared_rows} rows")))?;
    limits::check_cells(path, rows, fields.len())?;

    let mut columns = Vec::with_capacity(fields.len());
    for field in &fields {
        let numeric = is_numeric(field.data_type()).ok_or_else(|| unsupported(path, field))?;
        if columns.iter().any(|c: &Column| c.name == *field.name()) {
            return Err(duplicate_column(path, field.name()));
        }
        // The row count is checked above, so reserving it cannot be a footer's bluff.
        let data = if numeric {
            ColumnData::Numeric(Vec::with_capacity(rows))
        } else {
            ColumnData::Categorical(Vec::with_capacity(rows))
        };
        columns.push(Column {
            name: field.name().clone(),
            data,
        });
    }

    let reader = builder
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| malformed_parquet(path, e))?;
    for batch in reader {
        let batch = batch.map_err(|e| malformed_parquet(path, e))?;
        for (column, array) in columns.iter_mut().zip(batch.columns()) {
            append(&mut column.data, array.as_ref())
                .map_err(|e| malformed_parquet(path, format!("column {:?}: {e}", column.name)))?;
        }
    }
    let table = Table { columns };
    if table.rows() == 0 {
        return Err(no_rows(path));
    }
    if table.columns.iter().any(|c| c.data.len() != rows) {
        return Err(malformed_parquet(
            path,
            format!("its footer declares {rows} rows but the pages hold another number"),
        ));
    }
    Ok(table)
}
