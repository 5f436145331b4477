//! Parquet out: one optional DOUBLE or UTF-8 BYTE_ARRAY column per table column, Snappy.
//!
//! Written with parquet's column writers rather than arrow's `ArrowWriter`: for two column
//! types the arrow layer adds nothing, and it links arrow's `take` for every type (run arrays
//! and their comparators included), about 1 MB of each component. Arrow readers, ours and
//! pyarrow's, read these columns back as Float64 and Utf8.

use std::ops::Range;
use std::sync::Arc;

use parquet::basic::{Compression, LogicalType, Repetition, Type as PhysicalType};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use crate::table::{Column, ColumnData, Table};

/// Rows per row group: parquet's default, so readers can skip or parallelise by million rows.
const ROW_GROUP_ROWS: usize = 1 << 20;

fn field(column: &Column) -> Result<Arc<Type>, ParquetError> {
    let builder = match column.data {
        ColumnData::Numeric(_) => Type::primitive_type_builder(&column.name, PhysicalType::DOUBLE),
        ColumnData::Categorical(_) => {
            Type::primitive_type_builder(&column.name, PhysicalType::BYTE_ARRAY)
                .with_logical_type(Some(LogicalType::String))
        }
    };
    Ok(Arc::new(
        builder.with_repetition(Repetition::OPTIONAL).build()?,
    ))
}

/// The definition levels of optional cells (1 present, 0 missing) and the present values.
fn split<T, U>(cells: &[Option<T>], value: impl Fn(&T) -> U) -> (Vec<i16>, Vec<U>) {
    let levels = cells.iter().map(|c| i16::from(c.is_some())).collect();
    let values = cells.iter().flatten().map(value).collect();
    (levels, values)
}

/// Writes the cells of `rows` (a row group) of a column.
fn write_column(
    writer: &mut ColumnWriter<'_>,
    data: &ColumnData,
    rows: Range<usize>,
) -> Result<(), ParquetError> {
    match (writer, data) {
        (ColumnWriter::DoubleColumnWriter(w), ColumnData::Numeric(cells)) => {
            let (levels, values) = split(&cells[rows], |&x| x);
            w.write_batch(&values, Some(&levels), None)?;
        }
        (ColumnWriter::ByteArrayColumnWriter(w), ColumnData::Categorical(cells)) => {
            let (levels, values) = split(&cells[rows], |s| ByteArray::from(s.as_bytes().to_vec()));
            w.write_batch(&values, Some(&levels), None)?;
        }
        _ => {
            return Err(ParquetError::General(
                "a column writer does not match its column's type".into(),
            ));
        }
    }
    Ok(())
}

/// Encodes the whole table in memory: the caller writes the bytes in one go, so every I/O
/// error comes from that write, and an encoding error never leaves a file behind.
pub fn encode_parquet(table: &Table) -> Result<Vec<u8>, ParquetError> {
    let fields = table.columns.iter().map(field).collect::<Result<_, _>>()?;
    let schema = Type::group_type_builder("schema")
        .with_fields(fields)
        .build()?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = SerializedFileWriter::new(Vec::new(), Arc::new(schema), Arc::new(properties))?;
    let rows = table.rows();
    let mut start = 0;
    while start < rows {
        let end = rows.min(start + ROW_GROUP_ROWS);
        let mut group = writer.next_row_group()?;
        for column in &table.columns {
            let mut column_writer = group.next_column()?.ok_or_else(|| {
                ParquetError::General("the schema has fewer columns than the table".into())
            })?;
            write_column(column_writer.untyped(), &column.data, start..end)?;
            column_writer.close()?;
        }
        group.close()?;
        start = end;
    }
    writer.into_inner()
}
