//! Parquet in, through arrow-rs: numeric arrow types become numeric columns, text, dictionary
//! text and booleans categorical ones; anything else is refused by name.

use std::path::Path;

use arrow::array::{ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type};
use bytes::Bytes;
use mlx_plugin_sdk::PluginError;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::json;

use crate::error::{duplicate_column, malformed_parquet, no_rows};
use crate::limits;
use crate::table::{Column, ColumnData, Table};

/// Rows decoded at a time: arrow's default, a few MB per batch for a wide table.
const BATCH_ROWS: usize = 8192;

/// How an arrow type is read, if at all.
fn kind(data_type: &DataType) -> Option<(DataType, bool)> {
    use DataType::*;
    match data_type {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Float16 | Float32
        | Float64 | Decimal32(..) | Decimal64(..) | Decimal128(..) | Decimal256(..) => {
            Some((Float64, true))
        }
        Utf8 | LargeUtf8 | Utf8View | Boolean => Some((Utf8, false)),
        Dictionary(_, values) => kind(values),
        _ => None,
    }
}

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

/// Appends an arrow array's cells to a column of the kind [`kind`] chose.
fn append(data: &mut ColumnData, array: &ArrayRef, to: &DataType) -> Result<(), String> {
    let array = cast(array, to).map_err(|e| e.to_string())?;
    match data {
        ColumnData::Numeric(v) => {
            let array = array
                .as_primitive_opt::<Float64Type>()
                .ok_or("a numeric column did not decode as numbers")?;
            // NaN is how pandas writes a missing number; it is missing in CSV too.
            v.extend(array.iter().map(|x| x.filter(|x| !x.is_nan())));
        }
        ColumnData::Categorical(v) => {
            let array = array
                .as_string_opt::<i32>()
                .ok_or("a text column did not decode as text")?;
            v.extend(array.iter().map(|x| x.map(str::to_owned)));
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
    let mut targets = Vec::with_capacity(fields.len());
    for field in &fields {
        let (to, numeric) = kind(field.data_type()).ok_or_else(|| unsupported(path, field))?;
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
        targets.push(to);
    }

    let reader = builder
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| malformed_parquet(path, e))?;
    for batch in reader {
        let batch = batch.map_err(|e| malformed_parquet(path, e))?;
        for ((column, array), to) in columns.iter_mut().zip(batch.columns()).zip(&targets) {
            append(&mut column.data, array, to)
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
