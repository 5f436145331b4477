//! `csv` plugin: turns a CSV dataset from a granted directory into train/test artifacts.
//! It returns references and counts only, never the data, so workflow histories stay small.

mod extract;
mod split;
mod table;

pub use extract::Extract;

mlx_plugin_sdk::plugin!(CsvPlugin {
    name: "csv",
    version: env!("CARGO_PKG_VERSION"),
    description: "Extracts tabular datasets from CSV files into train/test artifacts.",
    operations: [Extract],
});
