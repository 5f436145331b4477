//! Parquet out: one nullable Float64 or Utf8 column per table column, Snappy-compressed.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;

use crate::table::{ColumnData, Table};

/// Encodes the whole table in memory: the caller writes the bytes in one go, so every I/O
/// error comes from that write, and an encoding error never leaves a file behind.
pub fn encode_parquet(table: &Table) -> Result<Vec<u8>, ParquetError> {
    let fields: Vec<Field> = table
        .columns
        .iter()
        .map(|c| {
            let data_type = match c.data {
                ColumnData::Numeric(_) => DataType::Float64,
                ColumnData::Categorical(_) => DataType::Utf8,
            };
            Field::new(c.name.clone(), data_type, true)
        })
        .collect();
    let arrays: Vec<ArrayRef> = table
        .columns
        .iter()
        .map(|c| -> ArrayRef {
            match &c.data {
                ColumnData::Numeric(v) => Arc::new(Float64Array::from(v.clone())),
                ColumnData::Categorical(v) => Arc::new(StringArray::from_iter(v.iter())),
            }
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties))?;
    // A table without columns has no rows to write, and a RecordBatch needs at least one.
    if !arrays.is_empty() {
        writer.write(&RecordBatch::try_new(schema, arrays)?)?;
    }
    writer.into_inner()
}
