//! extract_data with Parquet in and out.

use std::fs;
use std::path::{Path, PathBuf};

use mlx_plugin_sdk::{Context, PluginError};
use mlx_tabular::{Column, ColumnData, Format, Table, read_table, write_table};
use serde_json::{Value, json};

use crate::Extract;

const BREAST_CANCER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/breast_cancer.csv");

/// A fresh directory per test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mlx-csv-pq-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs extract_data; `Context::call` also fails on an error the operation does not declare.
fn extract(input: Value) -> Result<Value, PluginError> {
    Context::detached(1, None).call::<Extract>(input)
}

fn read(path: &Value) -> Table {
    read_table(Path::new(path.as_str().unwrap())).unwrap()
}

#[test]
fn parquet_out_holds_the_same_split_as_csv_out() {
    let dir = Scratch::new("out");
    let run = |format: &str| {
        extract(json!({
            "source": BREAST_CANCER, "target": "target", "format": format,
            "output_dir": dir.path(format),
        }))
        .unwrap()
    };
    let (csv, parquet) = (run("csv"), run("parquet"));
    assert!(csv["test"]["path"].as_str().unwrap().ends_with("/test.csv"));
    assert!(
        parquet["train"]["path"]
            .as_str()
            .unwrap()
            .ends_with("/train.parquet")
    );
    assert_eq!(parquet["train"]["rows"], 455);
    assert_eq!(parquet["classes"], csv["classes"]);
    for part in ["train", "test"] {
        let (from_csv, from_parquet) = (read(&csv[part]["path"]), read(&parquet[part]["path"]));
        assert_eq!(from_parquet, from_csv, "{part}");
        assert_eq!(from_parquet.names().last(), Some(&"target"));
    }
    let head = fs::read(parquet["test"]["path"].as_str().unwrap()).unwrap();
    assert_eq!(&head[..4], b"PAR1");
}

#[test]
fn parquet_in_gives_the_rows_csv_in_gives() {
    let dir = Scratch::new("in");
    let source = dir.path("breast_cancer.parquet");
    let table = read_table(Path::new(BREAST_CANCER)).unwrap();
    write_table(&table, Path::new(&source), Format::Parquet).unwrap();
    let filters = json!([{"column": "mean area", "op": ">=", "value": 700}]);
    let run = |source: &str, out: &str| {
        extract(json!({
            "source": source, "target": "target", "filters": filters,
            "columns": ["mean area", "mean radius"], "output_dir": dir.path(out),
        }))
        .unwrap()
    };
    let (from_csv, from_parquet) = (run(BREAST_CANCER, "a"), run(&source, "b"));
    for key in ["source_rows", "selected_rows", "classes", "features"] {
        assert_eq!(from_parquet[key], from_csv[key], "{key}");
    }
    assert_eq!(
        read(&from_parquet["test"]["path"]),
        read(&from_csv["test"]["path"])
    );
}

#[test]
fn parquet_to_parquet_keeps_column_types() {
    let dir = Scratch::new("types");
    let source = dir.path("codes.parquet");
    let n = 20;
    // "code" is text made of digits: CSV would read it back as numbers, Parquet keeps it text.
    let table = Table {
        columns: vec![
            Column::categorical("code", (0..n).map(|i| Some(format!("{}", i % 3))).collect()),
            Column::numeric("x", (0..n).map(|i| Some(f64::from(i) / 4.0)).collect()),
            Column::numeric("label", (0..n).map(|i| Some(f64::from(i % 2))).collect()),
        ],
    };
    write_table(&table, Path::new(&source), Format::Parquet).unwrap();
    let out = extract(json!({
        "source": source, "target": "label", "format": "parquet",
        "output_dir": dir.path("out"),
    }))
    .unwrap();
    // A numeric target's classes read as CSV would write them: 0.0 as "0".
    assert_eq!(out["classes"], json!(["0", "1"]));
    let train = read(&out["train"]["path"]);
    assert_eq!(train.names(), ["code", "x", "label"]);
    assert!(matches!(train.columns[0].data, ColumnData::Categorical(_)));
    assert!(train.columns[2].data.is_numeric());
}

#[test]
fn parquet_source_errors_are_declared() {
    let dir = Scratch::new("errors");
    let good = dir.path("good.parquet");
    let table = Table {
        columns: vec![
            Column::categorical("t", vec![Some("a".into()), Some("b".into())]),
            Column::categorical("word", vec![Some("x".into()), None]),
        ],
    };
    let size = write_table(&table, Path::new(&good), Format::Parquet).unwrap();
    let bytes = fs::read(&good).unwrap();
    let cut = dir.path("cut.csv");
    fs::write(&cut, &bytes[..size as usize / 2]).unwrap();
    let err = extract(json!({"source": cut, "target": "t"})).unwrap_err();
    assert_eq!(err.type_name, "MalformedParquet", "{err}");

    let filter = json!([{"column": "word", "op": ">", "value": 1}]);
    let err = extract(json!({"source": good, "target": "t", "filters": filter})).unwrap_err();
    assert_eq!(err.type_name, "NonNumericValue", "{err}");
    assert!(err.message.contains("data row 1"), "{err}");
    assert_eq!(err.details.unwrap()["row"], 1);
}
