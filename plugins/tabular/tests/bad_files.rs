//! Every kind of bad file gets its own error type, names the file, and is never retryable
//! (only I/O errors are).

mod common;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, Float64Array, Int32Array, ListArray, TimestampMillisecondArray,
};
use arrow::datatypes::Int32Type;
use common::{Scratch, assert_error, parquet_of};
use mlx_plugin_sdk::{ErrorKind, PluginError};
use mlx_tabular::{ColumnData, MAX_CELLS, MAX_COLUMNS, MAX_PARQUET_BYTES, read_table};

fn small_parquet() -> Vec<u8> {
    parquet_of(vec![
        (
            "x",
            Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])) as ArrayRef,
        ),
        ("n", Arc::new(Int32Array::from(vec![4, 5, 6]))),
    ])
}

fn read_err(dir: &Scratch, name: &str, bytes: impl AsRef<[u8]>) -> PluginError {
    let path = dir.write(name, bytes);
    let err = read_table(&path).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
    assert!(err.message.contains(name), "names the file: {err}");
    err
}

#[test]
fn missing_file_and_directory_are_not_found() {
    let dir = Scratch::new("missing");
    let err = read_table(&dir.path("nope.csv")).unwrap_err();
    assert_error(&err, "ArtifactNotFound");
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert_error(&read_table(&dir.0).unwrap_err(), "ArtifactNotFound");
}

#[test]
fn csv_errors() {
    let dir = Scratch::new("csv");
    let err = read_err(&dir, "ragged.csv", "a,b\n1,2\n3\n");
    assert_error(&err, "MalformedCsv");
    assert!(err.message.contains("line: 3"), "{err}");
    assert_error(
        &read_err(&dir, "latin1.csv", b"name,x\ncaf\xe9,1\n"),
        "MalformedCsv",
    );
    assert_error(&read_err(&dir, "empty.csv", ""), "MalformedCsv");
    assert_error(&read_err(&dir, "blank.csv", "\n\n"), "MalformedCsv");
    assert_error(&read_err(&dir, "header.csv", "a,b\n"), "NoRows");
    let err = read_err(&dir, "dup.csv", "a,b,a\n1,2,3\n");
    assert_error(&err, "DuplicateColumn");
    assert!(err.message.contains("\"a\""), "{err}");
}

#[test]
fn too_many_columns_are_refused_before_reading_rows() {
    let dir = Scratch::new("wide");
    let header: Vec<String> = (0..=MAX_COLUMNS).map(|i| format!("c{i}")).collect();
    let err = read_err(&dir, "wide.csv", header.join(",") + "\n");
    assert_error(&err, "TableTooLarge");
}

#[test]
fn too_many_cells_are_refused_while_reading() {
    let dir = Scratch::new("cells");
    let row = vec!["0"; MAX_COLUMNS].join(",") + "\n";
    let header: Vec<String> = (0..MAX_COLUMNS).map(|i| format!("c{i}")).collect();
    let rows = MAX_CELLS / MAX_COLUMNS + 1;
    let err = read_err(
        &dir,
        "tall.csv",
        header.join(",") + "\n" + &row.repeat(rows),
    );
    assert_error(&err, "TableTooLarge");
    assert!(err.message.contains("cells"), "{err}");
}

#[test]
fn oversized_parquet_is_refused_before_reading() {
    let dir = Scratch::new("huge");
    let path = dir.write("huge.parquet", "PAR1");
    // Sparse: the length is what counts, and it costs no disk.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(MAX_PARQUET_BYTES + 1).unwrap();
    let err = read_table(&path).unwrap_err();
    assert_error(&err, "TableTooLarge");
}

#[test]
fn parquet_errors() {
    let dir = Scratch::new("parquet");
    let good = small_parquet();
    let err = read_err(&dir, "cut.parquet", &good[..good.len() / 2]);
    assert_error(&err, "MalformedParquet");
    assert_error(
        &read_err(&dir, "tail.parquet", &good[..good.len() - 3]),
        "MalformedParquet",
    );
    assert_error(&read_err(&dir, "magic.parquet", "PAR1"), "MalformedParquet");
    assert_error(
        &read_err(
            &dir,
            "garbage.parquet",
            b"PAR1 this is not parquet at all PAR1",
        ),
        "MalformedParquet",
    );
    let err = read_err(&dir, "secret.parquet", b"PARE\x00\x00\x00\x00PARE");
    assert_error(&err, "MalformedParquet");
    assert!(err.message.contains("encrypted"), "{err}");
}

#[test]
fn corrupt_pages_are_malformed_not_retryable() {
    let dir = Scratch::new("pages");
    let good = small_parquet();
    // Overwrite everything between the leading magic and the footer: the page headers and
    // data become noise while the footer still describes them.
    let footer_len = u32::from_le_bytes(good[good.len() - 8..good.len() - 4].try_into().unwrap());
    let data_end = good.len() - 8 - footer_len as usize;
    let mut bad = good.clone();
    for b in &mut bad[4..data_end] {
        *b = 0xff;
    }
    assert_error(&read_err(&dir, "pages.parquet", &bad), "MalformedParquet");
}

#[test]
fn unsupported_parquet_types_are_named() {
    let dir = Scratch::new("types");
    let list =
        ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1), Some(2)]), None]);
    let bytes = parquet_of(vec![
        (
            "ok",
            Arc::new(Float64Array::from(vec![1.0, 2.0])) as ArrayRef,
        ),
        ("tags", Arc::new(list)),
    ]);
    let err = read_err(&dir, "nested.parquet", bytes);
    assert_error(&err, "UnsupportedColumnType");
    assert!(
        err.message.contains("\"tags\"") && err.message.contains("List"),
        "{err}"
    );

    let stamps = TimestampMillisecondArray::from(vec![0, 86_400_000]);
    let err = read_err(
        &dir,
        "time.parquet",
        parquet_of(vec![("when", Arc::new(stamps) as ArrayRef)]),
    );
    assert_error(&err, "UnsupportedColumnType");
    assert!(
        err.message.contains("\"when\"") && err.message.contains("Timestamp"),
        "{err}"
    );

    let blobs = BinaryArray::from(vec![b"a".as_ref(), b"b".as_ref()]);
    let err = read_err(
        &dir,
        "blob.parquet",
        parquet_of(vec![("blob", Arc::new(blobs) as ArrayRef)]),
    );
    assert_error(&err, "UnsupportedColumnType");
}

#[test]
fn parquet_without_rows_is_no_rows() {
    let dir = Scratch::new("norows");
    let empty = parquet_of(vec![(
        "x",
        Arc::new(Float64Array::from(Vec::<f64>::new())) as ArrayRef,
    )]);
    assert_error(&read_err(&dir, "empty.parquet", empty), "NoRows");
}

#[test]
fn format_comes_from_magic_bytes_not_the_extension() {
    let dir = Scratch::new("magic");
    let parquet_named_csv = dir.write("really-parquet.csv", small_parquet());
    let table = read_table(&parquet_named_csv).unwrap();
    assert_eq!(table.names(), ["x", "n"]);
    assert_eq!(
        table.column("n").unwrap().data,
        ColumnData::Numeric(vec![Some(4.0), Some(5.0), Some(6.0)])
    );
    let csv_named_parquet = dir.write("really-csv.parquet", "x,y\n1,a\n");
    let table = read_table(&csv_named_parquet).unwrap();
    assert_eq!(table.rows(), 1);
    assert!(!table.column("y").unwrap().data.is_numeric());
}
