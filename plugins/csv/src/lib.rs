//! `csv` plugin: turns a CSV or Parquet dataset from a granted directory into train/test
//! artifacts. It returns references and counts only, never the data, so workflow histories
//! stay small.

mod extract;
mod filter;
mod output;
#[cfg(test)]
mod parquet_tests;
mod source;
mod split;
mod table;

pub use extract::Extract;

mlx_plugin_sdk::plugin!(CsvPlugin {
    name: "csv",
    version: env!("CARGO_PKG_VERSION"),
    description: "Extracts tabular datasets from CSV or Parquet files into train/test artifacts.",
    operations: [Extract],
});
