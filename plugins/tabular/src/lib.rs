//! Tables for plugins: CSV and Parquet in, typed columns, feature encoding, Parquet out.

mod matrix;

pub use matrix::Matrix;
