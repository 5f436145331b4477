//! `csv` plugin: turns a CSV dataset from a granted directory into train/test artifacts.
//! It returns references and counts only, never the data, so workflow histories stay small.

mod extract;
mod split;
mod table;

use mlx_plugin_sdk::{Context, Operation, Plugin, PluginError, PluginInfo, parse_input};
use serde_json::{Value, json};

pub struct CsvPlugin;

impl Plugin for CsvPlugin {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "csv".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Extracts tabular datasets from CSV files into train/test artifacts."
                .into(),
            operations: vec![Operation::new(
                "extract_data",
                "Reads a CSV file with a header row from a granted directory, keeps the selected \
                 columns (target last) of the rows passing every filter, splits them with a \
                 seeded shuffle (stratified by target by default) and writes train.csv and \
                 test.csv with a header into output_dir. Returns paths and counts, not data. \
                 Errors: InvalidInput SourceNotFound, ColumnNotFound, DuplicateColumn, \
                 InvalidFilter, NonNumericValue, MalformedCsv, InvalidParameter, NoRows, \
                 OutputNotWritable; Retryable SourceReadFailed, ArtifactWriteFailed, Cancelled.",
                input_schema(),
                output_schema(),
            )],
        }
    }

    fn invoke(operation: &str, input: Value, ctx: &Context) -> Result<Value, PluginError> {
        match operation {
            "extract_data" => extract::extract(parse_input(input)?, ctx),
            other => Err(PluginError::unknown_operation(other)),
        }
    }
}

fn input_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "source": {"type": "string", "description": "Path of the CSV file inside the plugin, \
                       e.g. /data/breast_cancer.csv."},
            "target": {"type": "string", "description": "Name of the class column."},
            "columns": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                        "description": "Feature columns to keep, in this order. Default: all \
                                        but the target."},
            "filters": {
                "type": "array",
                "default": [],
                "description": "Rows must pass every filter. A number compares numerically \
                                (cells must be numbers), a string lexically.",
                "items": {
                    "type": "object",
                    "properties": {
                        "column": {"type": "string"},
                        "op": {"enum": ["==", "!=", "<", "<=", ">", ">="]},
                        "value": {"type": ["number", "string"]},
                    },
                    "required": ["column", "op", "value"],
                    "additionalProperties": false,
                },
            },
            "test_fraction": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1,
                              "default": 0.2},
            "seed": {"type": "integer", "minimum": 0, "maximum": u64::MAX, "default": 42},
            "stratify": {"type": "boolean", "default": true,
                         "description": "Split each class separately to keep class ratios."},
            "output_dir": {"type": "string", "default": "/artifacts/dataset"},
        },
        "required": ["source", "target"],
        "additionalProperties": false,
    })
}

fn output_schema() -> Value {
    let part = json!({
        "type": "object",
        "properties": {
            "path": {"type": "string"},
            "rows": {"type": "integer", "minimum": 1},
        },
        "required": ["path", "rows"],
    });
    json!({
        "type": "object",
        "properties": {
            "train": part,
            "test": part,
            "features": {"type": "array", "items": {"type": "string"}},
            "target": {"type": "string"},
            "classes": {"type": "array", "items": {"type": "string"},
                        "description": "Distinct target values, numeric-aware sorted."},
            "source_rows": {"type": "integer", "minimum": 0},
            "selected_rows": {"type": "integer", "minimum": 1},
        },
        "required": ["train", "test", "features", "target", "classes", "source_rows",
                     "selected_rows"],
    })
}

mlx_plugin_sdk::export_plugin!(CsvPlugin);
