//! The `extract_data` operation: source CSV → filtered, split train.csv / test.csv artifacts.

use std::fs::{self, File};
use std::io::{self, BufReader};
use std::path::Path;

use mlx_plugin_sdk::{Context, PluginError, log};
use serde::Deserialize;
use serde_json::{Value, json};

use mlx_plugin_sdk::labels::sorted_labels;

use crate::split::split;
use crate::table::{self, Filter, Table};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractInput {
    pub source: String,
    pub target: String,
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    #[serde(default)]
    pub filters: Vec<Filter>,
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default = "default_true")]
    pub stratify: bool,
    #[serde(default = "default_output_dir")]
    pub output_dir: String,
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

fn open_source(path: &str) -> Result<File, PluginError> {
    File::open(path).map_err(|e| match e.kind() {
        // Outside every preopened directory WASI reports the path as missing or not permitted.
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied => PluginError::invalid_input(
            "SourceNotFound",
            format!(
                "cannot open {path}: {e}. The file must exist in a directory granted to the csv \
                 plugin in its manifest (usually mounted at /data)"
            ),
        )
        .with_details(json!({"path": path})),
        _ => PluginError::retryable("SourceReadFailed", format!("cannot open {path}: {e}")),
    })
}

/// A write error. Paths outside every directory granted read-write (or inside a read-only
/// one) fail the same way on every attempt, so those are `InvalidInput`; anything else may be
/// transient.
fn write_error(path: &Path, e: &io::Error) -> PluginError {
    let message = format!(
        "writing {}: {e}. output_dir must be inside a directory granted read-write (usually \
         /artifacts)",
        path.display()
    );
    match e.kind() {
        io::ErrorKind::NotFound
        | io::ErrorKind::PermissionDenied
        | io::ErrorKind::ReadOnlyFilesystem => {
            PluginError::invalid_input("OutputNotWritable", message)
        }
        _ => PluginError::retryable("ArtifactWriteFailed", message),
    }
}

fn write_csv(path: &Path, header: &[&str], rows: &[&Vec<String>]) -> Result<(), PluginError> {
    let failed = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(io) => write_error(path, &io),
        other => PluginError::retryable(
            "ArtifactWriteFailed",
            format!("writing {}: {other:?}", path.display()),
        ),
    };
    let mut writer = csv::Writer::from_path(path).map_err(failed)?;
    writer.write_record(header).map_err(failed)?;
    for row in rows {
        writer.write_record(*row).map_err(failed)?;
    }
    writer.flush().map_err(|e| write_error(path, &e))
}

pub fn extract(input: ExtractInput, ctx: &Context) -> Result<Value, PluginError> {
    if !(input.test_fraction > 0.0 && input.test_fraction < 1.0) {
        return Err(PluginError::invalid_input(
            "InvalidParameter",
            format!(
                "test_fraction must be between 0 and 1 (exclusive), got {}",
                input.test_fraction
            ),
        ));
    }
    let file = open_source(&input.source)?;
    let Table {
        features,
        target,
        rows,
        source_rows,
    } = table::read(
        BufReader::new(file),
        &input.source,
        &input.target,
        input.columns.as_deref(),
        &input.filters,
        ctx,
    )?;
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
    let header: Vec<&str> = features
        .iter()
        .chain([&target])
        .map(String::as_str)
        .collect();
    let mut parts = serde_json::Map::new();
    for (name, indices) in [("train", &train), ("test", &test)] {
        let path = dir.join(format!("{name}.csv"));
        let part: Vec<&Vec<String>> = indices.iter().map(|&i| &rows[i]).collect();
        write_csv(&path, &header, &part)?;
        parts.insert(
            name.into(),
            json!({"path": path.display().to_string(), "rows": part.len()}),
        );
    }
    log::info(
        "dataset extracted",
        &[
            ("source", &input.source),
            ("rows", &rows.len()),
            ("train", &train.len()),
            ("test", &test.len()),
        ],
    );
    Ok(json!({
        "train": parts["train"],
        "test": parts["test"],
        "features": features,
        "target": target,
        "classes": classes,
        "source_rows": source_rows,
        "selected_rows": rows.len(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(extra: Value) -> ExtractInput {
        let mut base = json!({
            "source": concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/breast_cancer.csv"),
            "target": "target",
        });
        base.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn temp_dir(name: &str) -> String {
        let dir = std::env::temp_dir().join(format!("mlx-csv-{name}-{}", std::process::id()));
        dir.display().to_string()
    }

    #[test]
    fn extracts_breast_cancer_with_stratified_split() {
        let out = temp_dir("bc");
        let result = extract(
            input(json!({"output_dir": out})),
            &Context::detached(1, None),
        )
        .unwrap();
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
        let result = extract(filtered, &Context::detached(1, None)).unwrap();
        assert_eq!(result["features"], json!(["mean area", "mean radius"]));
        assert!(result["selected_rows"].as_u64().unwrap() < 569);
        fs::remove_dir_all(out).unwrap();

        let missing = input(json!({"source": "/nonexistent/x.csv"}));
        assert_eq!(
            extract(missing, &Context::detached(1, None))
                .unwrap_err()
                .type_name,
            "SourceNotFound"
        );
        let none = input(json!({"filters": [{"column": "mean area", "op": "<", "value": 0}]}));
        assert_eq!(
            extract(none, &Context::detached(1, None))
                .unwrap_err()
                .type_name,
            "NoRows"
        );
        let bad = input(json!({"test_fraction": 1.0}));
        assert_eq!(
            extract(bad, &Context::detached(1, None))
                .unwrap_err()
                .type_name,
            "InvalidParameter"
        );
    }
}
