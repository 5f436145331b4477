//! Loading a numeric CSV artifact (as written by the csv plugin) into memory.

use std::fs::File;
use std::io::{BufReader, Read};

use mlx_plugin_sdk::PluginError;
use serde_json::json;

use crate::files;

/// A dataset with numeric features and string class labels.
#[derive(Debug)]
pub struct Dataset {
    pub header: Vec<String>,
    /// Feature column names: the header without the target, in file order.
    pub features: Vec<String>,
    /// One row of feature values per example.
    pub x: Vec<Vec<f64>>,
    pub labels: Vec<String>,
}

/// Opens and reads `path`; a missing file is `InvalidInput` `ArtifactNotFound`.
pub fn load(path: &str, target: &str) -> Result<Dataset, PluginError> {
    let file = File::open(path).map_err(|e| {
        files::read_error(
            path,
            e,
            "Pass the paths the csv plugin returned; they must be inside a directory granted to \
             the trainer (usually /artifacts)",
        )
    })?;
    read(BufReader::new(file), path, target)
}

impl Dataset {
    /// Each label's position in `classes`. A label outside `classes` is an error rather than
    /// a guess: its row can be neither predicted right nor counted in the confusion matrix.
    pub fn class_indices(&self, classes: &[String], path: &str) -> Result<Vec<usize>, PluginError> {
        let mut unknown: Vec<&str> = Vec::new();
        let indices = self
            .labels
            .iter()
            .map(|l| {
                classes.iter().position(|c| c == l).unwrap_or_else(|| {
                    unknown.push(l);
                    0
                })
            })
            .collect();
        if unknown.is_empty() {
            return Ok(indices);
        }
        unknown.sort_unstable();
        unknown.dedup();
        Err(PluginError::invalid_input(
            "UnknownClass",
            format!(
                "{path} has labels the model does not know: {unknown:?}; its classes are \
                 {classes:?}"
            ),
        )
        .with_details(json!({"path": path, "unknown": unknown, "classes": classes})))
    }
}

fn csv_error(path: &str, e: csv::Error) -> PluginError {
    if let csv::ErrorKind::Io(io) = e.kind() {
        return PluginError::retryable("ArtifactReadFailed", format!("reading {path}: {io}"));
    }
    PluginError::invalid_input("MalformedCsv", format!("{path} is not valid CSV: {e}"))
}

/// Reads CSV with a header row; every column but `target` must hold finite numbers.
pub fn read(input: impl Read, path: &str, target: &str) -> Result<Dataset, PluginError> {
    let mut reader = csv::Reader::from_reader(input);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| csv_error(path, e))?
        .iter()
        .map(str::to_owned)
        .collect();
    let target_index = header.iter().position(|h| h == target).ok_or_else(|| {
        PluginError::invalid_input(
            "ColumnNotFound",
            format!("{path} has no column {target:?}; its columns are {header:?}"),
        )
        .with_details(json!({"column": target, "available": header}))
    })?;
    let features: Vec<String> = header
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != target_index)
        .map(|(_, h)| h.clone())
        .collect();
    if features.is_empty() {
        return Err(PluginError::invalid_input(
            "NoFeatures",
            format!("{path} has no feature columns besides {target:?}"),
        ));
    }

    let (mut x, mut labels) = (Vec::new(), Vec::new());
    let mut record = csv::StringRecord::new();
    while reader
        .read_record(&mut record)
        .map_err(|e| csv_error(path, e))?
    {
        let line = record.position().map_or(0, |p| p.line());
        let mut row = Vec::with_capacity(features.len());
        for (i, cell) in record.iter().enumerate() {
            if i == target_index {
                labels.push(cell.to_owned());
                continue;
            }
            match cell.trim().parse::<f64>() {
                Ok(v) if v.is_finite() => row.push(v),
                _ => {
                    return Err(PluginError::invalid_input(
                        "NonNumericValue",
                        format!(
                            "{path} line {line}, column {:?}: {cell:?} is not a finite number; \
                             features must be numeric",
                            header[i]
                        ),
                    )
                    .with_details(json!({"path": path, "line": line, "column": header[i]})));
                }
            }
        }
        x.push(row);
    }
    Ok(Dataset {
        header,
        features,
        x,
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_features_and_labels() {
        let d = read("f1,t,f2\n1,a,2\n3,b,4\n".as_bytes(), "x.csv", "t").unwrap();
        assert_eq!(d.features, ["f1", "f2"]);
        assert_eq!(d.x, [[1.0, 2.0], [3.0, 4.0]]);
        assert_eq!(d.labels, ["a", "b"]);
    }

    #[test]
    fn rejects_non_numeric_and_missing_target() {
        let err = read("f,t\nNaN,a\n".as_bytes(), "x.csv", "t").unwrap_err();
        assert_eq!(err.type_name, "NonNumericValue");
        let err = read("f,t\n1,a\n".as_bytes(), "x.csv", "label").unwrap_err();
        assert_eq!(err.type_name, "ColumnNotFound");
        assert_eq!(
            load("/nonexistent.csv", "t").unwrap_err().type_name,
            "ArtifactNotFound"
        );
    }
}
