//! The `extract_data` operation: source CSV or Parquet → filtered, split train / test
//! artifacts in CSV or Parquet.

use std::fs;
use std::path::Path;

use mlx_plugin_sdk::labels::sorted_labels;
use mlx_plugin_sdk::{Context, ErrorDecl, JsonSchema, Operation, PluginError, log};
use mlx_tabular::Format;
use serde::{Deserialize, Serialize};

use crate::filter::Filter;
use crate::output::{self, write_error};
use crate::source::{self, Source};
use crate::split::split;

/// `extract_data`: one place for its name, doc, types and errors.
pub struct Extract;

impl Operation for Extract {
    const NAME: &str = "extract_data";
    const DOC: &str = "Reads a CSV file with a header row, or a Parquet file (told apart by \
                       their first bytes), from a granted directory, keeps the selected columns \
                       (target last) of the rows passing every filter, splits them with a seeded \
                       shuffle (stratified by target by default) and writes train and test into \
                       output_dir as train.csv and test.csv with a header, or as train.parquet \
                       and test.parquet when format is parquet. Returns paths and counts, not \
                       data.";
    const ERRORS: &[ErrorDecl] = &[
        ErrorDecl::invalid_input("SourceNotFound", "source is missing or outside every grant"),
        ErrorDecl::invalid_input("ColumnNotFound", "a named column is not in the header"),
        ErrorDecl::invalid_input("DuplicateColumn", "a column is selected twice"),
        ErrorDecl::invalid_input("InvalidFilter", "a filter value fits no cell type"),
        ErrorDecl::invalid_input("NonNumericValue", "a numeric filter meets a non-number"),
        ErrorDecl::invalid_input("MalformedCsv", "the source is not valid CSV"),
        ErrorDecl::invalid_input("MalformedParquet", "the source is a damaged Parquet file"),
        ErrorDecl::invalid_input(
            "UnsupportedColumnType",
            "a Parquet column is not numbers, text or booleans",
        ),
        ErrorDecl::invalid_input(
            "TableTooLarge",
            "a Parquet source exceeds mlx-tabular's caps (bytes, columns, cells)",
        ),
        ErrorDecl::invalid_input("InvalidParameter", "test_fraction is not in (0, 1)"),
        ErrorDecl::invalid_input("NoRows", "no rows pass, or a split is empty"),
        ErrorDecl::invalid_input("OutputNotWritable", "output_dir is not granted read-write"),
        ErrorDecl::retryable("SourceReadFailed", ""),
        ErrorDecl::retryable("ArtifactWriteFailed", ""),
        ErrorDecl::CANCELLED,
    ];
    type Input = ExtractInput;
    type Output = ExtractOutput;

    fn run(input: ExtractInput, ctx: &Context) -> Result<ExtractOutput, PluginError> {
        extract(input, ctx)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractInput {
    /// Path of the CSV or Parquet file inside the plugin, e.g. /data/breast_cancer.csv. The
    /// format is told by the file's first bytes, not its extension.
    pub source: String,
    /// Name of the class column.
    pub target: String,
    /// Feature columns to keep, in this order. Default: all but the target.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub columns: Option<Vec<String>>,
    /// Rows must pass every filter. A number compares numerically (cells must be numbers), a
    /// string lexically.
    #[serde(default)]
    pub filters: Vec<Filter>,
    /// Share of the rows in the test part.
    #[serde(default = "default_test_fraction")]
    #[schemars(extend("exclusiveMinimum" = 0, "exclusiveMaximum" = 1))]
    pub test_fraction: f64,
    /// Seed of the shuffle: the same seed and rows give the same split.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Split each class separately to keep class ratios.
    #[serde(default = "default_true")]
    pub stratify: bool,
    #[serde(default = "default_output_dir")]
    pub output_dir: String,
    /// What train and test are written as: "csv" (train.csv, test.csv) or "parquet"
    /// (train.parquet, test.parquet, Snappy, columns typed as mlx-tabular reads them).
    #[serde(default)]
    pub format: Format,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ExtractOutput {
    pub train: Part,
    pub test: Part,
    pub features: Vec<String>,
    pub target: String,
    /// Distinct target values, numeric-aware sorted.
    pub classes: Vec<String>,
    pub source_rows: u64,
    #[schemars(range(min = 1))]
    pub selected_rows: u64,
}

/// One written split.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Part {
    pub path: String,
    #[schemars(range(min = 1))]
    pub rows: u64,
}

fn default_test_fraction() -> f64 {
    0.2
}

fn default_seed() -> u64 {
    42
}

fn default_true() -> bool {
    true
}

fn default_output_dir() -> String {
    "/artifacts/dataset".into()
}

pub fn extract(input: ExtractInput, ctx: &Context) -> Result<ExtractOutput, PluginError> {
    if !(input.test_fraction > 0.0 && input.test_fraction < 1.0) {
        return Err(PluginError::invalid_input(
            "InvalidParameter",
            format!(
                "test_fraction must be between 0 and 1 (exclusive), got {}",
                input.test_fraction
            ),
        ));
    }
    let Source { table, typed } = source::read(
        &input.source,
        &input.target,
        input.columns.as_deref(),
        &input.filters,
        ctx,
    )?;
    let (rows, source_rows) = (&table.rows, table.source_rows);
    if rows.is_empty() {
        return Err(PluginError::invalid_input(
            "NoRows",
            format!(
                "no rows of {source_rows} in {} pass the filters",
                input.source
            ),
        ));
    }
    let labels: Vec<&str> = rows
        .iter()
        .map(|r| r.last().map_or("", String::as_str))
        .collect();
    let classes = sorted_labels(labels.iter().copied());
    let (train, test) = split(&labels, input.test_fraction, input.seed, input.stratify);
    if train.is_empty() || test.is_empty() {
        return Err(PluginError::invalid_input(
            "NoRows",
            format!(
                "splitting {} rows with test_fraction {} leaves an empty {} set; select more rows \
                 or change test_fraction",
                rows.len(),
                input.test_fraction,
                if train.is_empty() { "train" } else { "test" }
            ),
        ));
    }

    let dir = Path::new(&input.output_dir);
    fs::create_dir_all(dir).map_err(|e| write_error(dir, &e))?;
    let typed = match input.format {
        Format::Csv => None,
        Format::Parquet => Some(output::typed(&table, typed.as_ref())?),
    };
    let write_part = |name: &str, indices: &[usize]| -> Result<Part, PluginError> {
        let path = dir.join(format!("{name}.{}", input.format.extension()));
        match &typed {
            None => output::write_csv(&path, &table, indices)?,
            Some(typed) => output::write_parquet(&path, typed, indices)?,
        }
        Ok(Part {
            path: path.display().to_string(),
            rows: indices.len() as u64,
        })
    };
    let (train_part, test_part) = (write_part("train", &train)?, write_part("test", &test)?);
    log::info(
        "dataset extracted",
        &[
            ("source", &input.source),
            ("rows", &rows.len()),
            ("train", &train.len()),
            ("test", &test.len()),
        ],
    );
    let selected_rows = rows.len() as u64;
    Ok(ExtractOutput {
        train: train_part,
        test: test_part,
        features: table.features,
        target: table.target,
        classes,
        source_rows,
        selected_rows,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn input(extra: Value) -> Value {
        let mut base = json!({
            "source": concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/breast_cancer.csv"),
            "target": "target",
        });
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        base
    }

    fn extract(input: Value) -> Result<Value, PluginError> {
        Context::detached(1, None).call::<Extract>(input)
    }

    fn temp_dir(name: &str) -> String {
        let dir = std::env::temp_dir().join(format!("mlx-csv-{name}-{}", std::process::id()));
        dir.display().to_string()
    }

    #[test]
    fn extracts_breast_cancer_with_stratified_split() {
        let out = temp_dir("bc");
        let result = extract(input(json!({"output_dir": out}))).unwrap();
        assert_eq!(result["source_rows"], 569);
        assert_eq!(result["classes"], json!(["benign", "malignant"]));
        assert_eq!(
            (
                result["train"]["rows"].as_u64(),
                result["test"]["rows"].as_u64()
            ),
            (Some(455), Some(114))
        );
        let test = fs::read_to_string(Path::new(&out).join("test.csv")).unwrap();
        // round(212 * 0.2) = 42 malignant rows in test.
        assert_eq!(
            test.lines().filter(|l| l.ends_with(",malignant")).count(),
            42
        );
        assert!(test.starts_with("mean radius,"));
        fs::remove_dir_all(out).unwrap();
    }

    #[test]
    fn filters_columns_and_errors() {
        let out = temp_dir("filter");
        let filtered = input(json!({
            "columns": ["mean area", "mean radius"], "output_dir": out,
            "filters": [{"column": "mean area", "op": ">=", "value": 1000}],
        }));
        let result = extract(filtered).unwrap();
        assert_eq!(result["features"], json!(["mean area", "mean radius"]));
        assert!(result["selected_rows"].as_u64().unwrap() < 569);
        fs::remove_dir_all(out).unwrap();

        let missing = input(json!({"source": "/nonexistent/x.csv"}));
        assert_eq!(extract(missing).unwrap_err().type_name, "SourceNotFound");
        let none = input(json!({"filters": [{"column": "mean area", "op": "<", "value": 0}]}));
        assert_eq!(extract(none).unwrap_err().type_name, "NoRows");
        // The host refuses it by the schema; the plugin's own check is the backstop.
        let bad = input(json!({"test_fraction": 1.0}));
        assert_eq!(extract(bad.clone()).unwrap_err().type_name, "InvalidInput");
        let bad = serde_json::from_value(bad).unwrap();
        assert_eq!(
            super::extract(bad, &Context::detached(1, None))
                .unwrap_err()
                .type_name,
            "InvalidParameter"
        );
    }
}
