//! Tables survive CSV → Table → Parquet → Table (and back to CSV) unchanged, and Parquet
//! written by other tools reads with the documented types.

mod common;

use std::fs;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Decimal128Array, Decimal256Array, DictionaryArray, Float16Array,
    Float32Array, Float64Array, Int8Array, Int64Array, LargeStringArray, StringArray,
    StringViewArray, UInt8Array,
};
use arrow::datatypes::{ArrowPrimitiveType, Float16Type, Int8Type, Int32Type, i256};
use common::{Scratch, assert_error, dataset, parquet_of};
use mlx_tabular::{Column, ColumnData, Format, Table, read_table, write_table};

fn round_trip(table: &Table, dir: &Scratch, name: &str) {
    for format in [Format::Parquet, Format::Csv] {
        let path = dir.path(&format!("{name}.{}", format.extension()));
        let bytes = write_table(table, &path, format).unwrap();
        assert_eq!(bytes, fs::metadata(&path).unwrap().len());
        assert_eq!(
            &read_table(&path).unwrap(),
            table,
            "{name} through {format:?}"
        );
    }
}

#[test]
fn bundled_datasets_round_trip_through_parquet_and_csv() {
    let dir = Scratch::new("datasets");
    for (name, rows, columns) in [
        ("iris", 150, 5),
        ("breast_cancer", 569, 31),
        ("digits", 1797, 65),
    ] {
        let table = read_table(&dataset(&format!("{name}.csv"))).unwrap();
        assert_eq!(
            (table.rows(), table.columns.len()),
            (rows, columns),
            "{name}"
        );
        round_trip(&table, &dir, name);
    }
    // No partial files are left beside the outputs.
    let names: Vec<String> = fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

#[test]
fn iris_types_are_inferred() {
    let table = read_table(&dataset("iris.csv")).unwrap();
    for column in &table.columns[..4] {
        assert!(column.data.is_numeric(), "{}", column.name);
    }
    let target = table.column("target").unwrap();
    assert_eq!(target.data.kind(), "categorical");
    assert_eq!(mlx_tabular::labels(target)[0].as_deref(), Some("setosa"));
    let err = mlx_tabular::values(target).unwrap_err();
    assert_error(&err, "ColumnTypeMismatch");
    assert!(err.message.contains("setosa"), "{err}");
    let err = table.column("species").unwrap_err();
    assert_error(&err, "ColumnNotFound");
    assert!(err.message.contains("sepal length (cm)"), "{err}");
}

#[test]
fn missing_values_and_text_round_trip() {
    let dir = Scratch::new("mixed");
    let csv = "x,color,note,empty\n1.5,red,\"a, quoted\",\nNA,,plain,NA\n-2,blue,null,\n";
    let path = dir.write("mixed.csv", csv);
    let table = read_table(&path).unwrap();
    assert_eq!(
        table.columns,
        [
            Column::numeric("x", vec![Some(1.5), None, Some(-2.0)]),
            Column::categorical("color", vec![Some("red".into()), None, Some("blue".into())]),
            Column::categorical(
                "note",
                vec![Some("a, quoted".into()), Some("plain".into()), None]
            ),
            Column::numeric("empty", vec![None, None, None]),
        ]
    );
    assert_eq!(table.column("x").unwrap().missing(), 1);
    round_trip(&table, &dir, "mixed-out");
    let selected = table.select_rows(&[2, 0]);
    assert_eq!(
        selected.column("x").unwrap().data,
        ColumnData::Numeric(vec![Some(-2.0), Some(1.5)])
    );
}

#[test]
fn a_bom_and_spaces_around_numbers_are_accepted() {
    let dir = Scratch::new("bom");
    let path = dir.write("bom.csv", "\u{feff}a,b\n 1 ,x\n2,y\n");
    let table = read_table(&path).unwrap();
    assert_eq!(table.names(), ["a", "b"]);
    assert!(table.column("a").unwrap().data.is_numeric());
}

#[test]
fn parquet_from_other_writers_reads_with_documented_types() {
    let dir = Scratch::new("foreign");
    let dictionary: DictionaryArray<Int32Type> =
        vec![Some("b"), None, Some("a")].into_iter().collect();
    let decimals = Decimal128Array::from(vec![Some(12345), None, Some(-5)])
        .with_precision_and_scale(10, 2)
        .unwrap();
    let bytes = parquet_of(vec![
        (
            "i64",
            Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])) as ArrayRef,
        ),
        ("u8", Arc::new(UInt8Array::from(vec![7, 8, 9]))),
        (
            "f32",
            Arc::new(Float32Array::from(vec![0.5, f32::NAN, 2.0])),
        ),
        (
            "f64",
            Arc::new(Float64Array::from(vec![Some(1.25), None, Some(f64::NAN)])),
        ),
        ("dec", Arc::new(decimals)),
        (
            "s",
            Arc::new(StringArray::from(vec![Some("NA"), None, Some("")])),
        ),
        ("ls", Arc::new(LargeStringArray::from(vec!["x", "y", "z"]))),
        ("dict", Arc::new(dictionary)),
        (
            "flag",
            Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
        ),
    ]);
    let table = read_table(&dir.write("foreign.parquet", bytes)).unwrap();
    let data = |name: &str| table.column(name).unwrap().data.clone();
    let text = |v: &[Option<&str>]| {
        ColumnData::Categorical(v.iter().map(|s| s.map(str::to_owned)).collect())
    };
    assert_eq!(
        data("i64"),
        ColumnData::Numeric(vec![Some(1.0), None, Some(3.0)])
    );
    assert_eq!(
        data("u8"),
        ColumnData::Numeric(vec![Some(7.0), Some(8.0), Some(9.0)])
    );
    // NaN is missing, as in CSV.
    assert_eq!(
        data("f32"),
        ColumnData::Numeric(vec![Some(0.5), None, Some(2.0)])
    );
    assert_eq!(
        data("f64"),
        ColumnData::Numeric(vec![Some(1.25), None, None])
    );
    assert_eq!(
        data("dec"),
        ColumnData::Numeric(vec![Some(123.45), None, Some(-0.05)])
    );
    // Parquet text is taken as it is: only nulls are missing.
    assert_eq!(data("s"), text(&[Some("NA"), None, Some("")]));
    assert_eq!(data("ls"), text(&[Some("x"), Some("y"), Some("z")]));
    assert_eq!(data("dict"), text(&[Some("b"), None, Some("a")]));
    assert_eq!(data("flag"), text(&[Some("true"), Some("false"), None]));
}

#[test]
fn rarer_arrow_types_read_too() {
    let dir = Scratch::new("rare");
    let half = Float16Array::from(vec![Some(F16::from_f32(1.5)), None]);
    let wide = Decimal256Array::from(vec![Some(i256::from_i128(-250)), None])
        .with_precision_and_scale(40, 2)
        .unwrap();
    let view = StringViewArray::from(vec![Some("a long enough string to be out of line"), None]);
    let coded = DictionaryArray::<Int8Type>::new(
        Int8Array::from(vec![Some(1), None]),
        Arc::new(Float64Array::from(vec![10.0, 20.0])),
    );
    let bytes = parquet_of(vec![
        ("half", Arc::new(half) as ArrayRef),
        ("wide", Arc::new(wide)),
        ("view", Arc::new(view)),
        ("coded", Arc::new(coded)),
    ]);
    let table = read_table(&dir.write("rare.parquet", bytes)).unwrap();
    let data = |name: &str| table.column(name).unwrap().data.clone();
    assert_eq!(data("half"), ColumnData::Numeric(vec![Some(1.5), None]));
    assert_eq!(data("wide"), ColumnData::Numeric(vec![Some(-2.5), None]));
    assert_eq!(
        data("view"),
        ColumnData::Categorical(vec![
            Some("a long enough string to be out of line".into()),
            None
        ])
    );
    assert_eq!(data("coded"), ColumnData::Numeric(vec![Some(20.0), None]));
}

/// arrow's f16 (the `half` crate's, not a dependency here).
type F16 = <Float16Type as ArrowPrimitiveType>::Native;

#[test]
fn writing_replaces_whole_files_and_refuses_unwritable_places() {
    let dir = Scratch::new("write");
    let table = Table {
        columns: vec![Column::numeric("x", vec![Some(1.0), Some(2.0)])],
    };
    let path = dir.path("t.parquet");
    fs::write(&path, "old contents").unwrap();
    write_table(&table, &path, Format::Parquet).unwrap();
    assert_eq!(read_table(&path).unwrap(), table);

    let nowhere = dir.path("no/such/dir/t.csv");
    assert_error(
        &write_table(&table, &nowhere, Format::Csv).unwrap_err(),
        "OutputNotWritable",
    );
    let ragged = Table {
        columns: vec![
            Column::numeric("x", vec![Some(1.0)]),
            Column::numeric("y", vec![]),
        ],
    };
    assert_error(
        &write_table(&ragged, &dir.path("r.csv"), Format::Csv).unwrap_err(),
        "InvalidTable",
    );
}

#[test]
fn format_serde_is_snake_case() {
    assert_eq!(
        serde_json::to_string(&Format::Parquet).unwrap(),
        "\"parquet\""
    );
    assert_eq!(
        serde_json::from_str::<Format>("\"csv\"").unwrap(),
        Format::default()
    );
}

#[test]
fn parquet_is_snappy_in_row_groups_of_a_million_rows() {
    use parquet::basic::Compression;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    let dir = Scratch::new("groups");
    let rows = (1 << 20) + 3;
    let table = Table {
        columns: vec![
            Column::numeric("x", (0..rows).map(|i| Some(i as f64)).collect()),
            Column::categorical(
                "c",
                (0..rows)
                    .map(|i| (i % 7 == 0).then(|| "seven".into()))
                    .collect(),
            ),
        ],
    };
    let path = dir.path("big.parquet");
    write_table(&table, &path, Format::Parquet).unwrap();
    let reader = SerializedFileReader::new(fs::File::open(&path).unwrap()).unwrap();
    let groups = reader.metadata().row_groups();
    assert_eq!(
        groups.iter().map(|g| g.num_rows()).collect::<Vec<_>>(),
        [1 << 20, 3]
    );
    assert!(
        groups[0]
            .columns()
            .iter()
            .all(|c| c.compression() == Compression::SNAPPY)
    );
    assert_eq!(read_table(&path).unwrap(), table);
}
