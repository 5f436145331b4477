//! Tables for plugins: CSV and Parquet in, typed columns, feature encoding, Parquet out.
//!
//! - [`read_table`] reads CSV or Parquet (by the file's first bytes) into a [`Table`] of
//!   numeric and categorical columns with missing values; [`write_table`] writes one back.
//! - [`FeatureSpec::fit`] learns from a training table how to encode features (imputation,
//!   one-hot categories, scaling); [`FeatureSpec::transform`] turns any table with those
//!   columns into a [`Matrix`]. The spec is serde, to be stored inside model files.
//! - [`labels`] and [`values`] read a target column as class labels or numbers.
//! - Every error has its own type name, listed in [`ERRORS`].

mod arrow_cells;
mod csv_io;
mod error;
mod features;
mod file;
mod infer;
mod limits;
mod matrix;
mod parquet_read;
mod parquet_write;
mod table;

pub use csv_io::read_csv;
pub use error::ERRORS;
pub use features::{
    Encoding, FeatureColumn, FeatureOptions, FeatureSpec, MAX_CATEGORIES, Missing, Scale,
};
pub use file::{Format, read_table, write_table};
pub use infer::{MISSING_TOKENS, is_missing};
pub use limits::{MAX_CELLS, MAX_COLUMNS, MAX_PARQUET_BYTES, check_parquet_size};
pub use matrix::Matrix;
pub use parquet_read::read_parquet;
pub use table::{Column, ColumnData, Table, format_number, labels, values};
