//! Reading a source: column selection and row filters. CSV is streamed so only kept cells stay
//! in memory; a Parquet source, already read whole, is filtered through the same text cells.

use std::io::Read;

use mlx_plugin_sdk::{Context, PluginError};
use mlx_tabular::{ColumnData, format_number};
use serde_json::json;

use crate::filter::{Filter, Position, compile};

/// Rows between progress heartbeats while reading.
const HEARTBEAT_EVERY_ROWS: u64 = 10_000;

/// The kept part of a source: feature cells then the target cell, per selected row.
#[derive(Debug)]
pub struct Table {
    pub features: Vec<String>,
    pub target: String,
    pub rows: Vec<Vec<String>>,
    /// The source's index (from 0) of each kept row.
    pub kept: Vec<usize>,
    /// Data rows in the source, before filtering.
    pub source_rows: u64,
}

pub fn column_index(header: &[String], name: &str) -> Result<usize, PluginError> {
    header.iter().position(|h| h == name).ok_or_else(|| {
        PluginError::invalid_input(
            "ColumnNotFound",
            format!("no column {name:?}; the source has columns {header:?}"),
        )
        .with_details(json!({"column": name, "available": header}))
    })
}

/// Resolves the feature columns (all but the target when `columns` is absent).
fn select(
    header: &[String],
    target: &str,
    columns: Option<&[String]>,
) -> Result<Vec<usize>, PluginError> {
    column_index(header, target)?;
    let names: Vec<&String> = match columns {
        Some(columns) => columns.iter().filter(|c| *c != target).collect(),
        None => header.iter().filter(|c| *c != target).collect(),
    };
    if names.is_empty() {
        return Err(PluginError::invalid_input(
            "InvalidParameter",
            "no feature columns selected: `columns` must name at least one column besides the target",
        ));
    }
    let mut indices = Vec::with_capacity(names.len());
    for name in names {
        let index = column_index(header, name)?;
        if indices.contains(&index) {
            return Err(PluginError::invalid_input(
                "DuplicateColumn",
                format!("column {name:?} is selected twice"),
            ));
        }
        indices.push(index);
    }
    Ok(indices)
}

fn csv_error(source: &str, e: csv::Error) -> PluginError {
    let line = e.position().map(|p| p.line());
    if let csv::ErrorKind::Io(io) = e.kind() {
        return PluginError::retryable("SourceReadFailed", format!("reading {source}: {io}"));
    }
    PluginError::invalid_input("MalformedCsv", format!("{source} is not valid CSV: {e}"))
        .with_details(json!({"path": source, "line": line}))
}

/// Reads `input` (CSV with a header row), keeping the selected columns of the rows that pass
/// every filter. Heartbeats `{"rows_read": n}` every 10,000 rows and stops if cancelled.
pub fn read(
    input: impl Read,
    source: &str,
    target: &str,
    columns: Option<&[String]>,
    filters: &[Filter],
    ctx: &Context,
) -> Result<Table, PluginError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(input);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| csv_error(source, e))?
        .iter()
        .map(str::to_owned)
        .collect();
    if header.iter().all(String::is_empty) {
        return Err(PluginError::invalid_input(
            "MalformedCsv",
            format!("{source} has no header row"),
        ));
    }
    let records = reader.into_records().map(|record| {
        let record = record.map_err(|e| csv_error(source, e))?;
        let line = record.position().map_or(0, |p| p.line());
        Ok((record, Position::Line(line)))
    });
    keep(&header, records, target, columns, filters, ctx)
}

/// The same selection from a table read from Parquet, its cells as text: numbers in their
/// shortest form (1.0 as "1"), missing cells empty, as they would be in a CSV file.
pub fn from_typed(
    typed: &mlx_tabular::Table,
    target: &str,
    columns: Option<&[String]>,
    filters: &[Filter],
    ctx: &Context,
) -> Result<Table, PluginError> {
    let header: Vec<String> = typed.columns.iter().map(|c| c.name.clone()).collect();
    let records = (0..typed.rows()).map(|i| {
        let cells = typed.columns.iter().map(|c| match &c.data {
            ColumnData::Numeric(v) => v[i].map(format_number).unwrap_or_default(),
            ColumnData::Categorical(v) => v[i].clone().unwrap_or_default(),
        });
        Ok((
            csv::StringRecord::from_iter(cells),
            Position::Row(i as u64 + 1),
        ))
    });
    keep(&header, records, target, columns, filters, ctx)
}

/// Keeps the selected columns (target last) of the records passing every filter.
fn keep(
    header: &[String],
    records: impl Iterator<Item = Result<(csv::StringRecord, Position), PluginError>>,
    target: &str,
    columns: Option<&[String]>,
    filters: &[Filter],
    ctx: &Context,
) -> Result<Table, PluginError> {
    let mut keep = select(header, target, columns)?;
    let features = keep.iter().map(|&i| header[i].clone()).collect();
    keep.push(column_index(header, target)?);
    let filters = compile(header, filters)?;

    let mut table = Table {
        features,
        target: target.to_owned(),
        rows: Vec::new(),
        kept: Vec::new(),
        source_rows: 0,
    };
    for record in records {
        let (record, at) = record?;
        table.source_rows += 1;
        if table.source_rows.is_multiple_of(HEARTBEAT_EVERY_ROWS)
            && ctx.heartbeat(&json!({"rows_read": table.source_rows}))
        {
            return Err(PluginError::cancelled(format!(
                "cancelled after reading {} rows",
                table.source_rows
            )));
        }
        let mut kept = true;
        for filter in &filters {
            if !filter.matches(&record, at)? {
                kept = false;
                break;
            }
        }
        if kept {
            table.kept.push(table.source_rows as usize - 1);
            table.rows.push(
                keep.iter()
                    .map(|&i| record.get(i).unwrap_or_default().to_owned())
                    .collect(),
            );
        }
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlx_plugin_sdk::ErrorKind;
    use serde_json::Value;

    const CSV: &str = "a,b,label\n1,x,yes\n5,y,no\n3,z,yes\n";

    fn filters(v: Value) -> Vec<Filter> {
        serde_json::from_value(v).unwrap()
    }

    fn run(columns: Option<&[String]>, f: Value) -> Result<Table, PluginError> {
        read(
            CSV.as_bytes(),
            "t.csv",
            "label",
            columns,
            &filters(f),
            &Context::detached(1, None),
        )
    }

    #[test]
    fn keeps_all_columns_with_target_last() {
        let t = run(None, json!([])).unwrap();
        assert_eq!(
            (t.features.clone(), t.source_rows),
            (vec!["a".to_string(), "b".into()], 3)
        );
        assert_eq!(t.rows[1], ["5", "y", "no"]);
    }

    #[test]
    fn numeric_and_text_filters() {
        let t = run(None, json!([{"column": "a", "op": ">=", "value": 3}])).unwrap();
        assert_eq!(t.rows.len(), 2);
        let t = run(
            None,
            json!([{"column": "label", "op": "==", "value": "yes"},
                                 {"column": "a", "op": "<", "value": 2}]),
        )
        .unwrap();
        assert_eq!(t.rows, [["1", "x", "yes"]]);
    }

    #[test]
    fn selected_columns_exclude_target_duplicates() {
        let cols = ["b".to_string(), "label".into()];
        let t = run(Some(&cols), json!([])).unwrap();
        assert_eq!(t.features, ["b"]);
        assert_eq!(t.rows[0], ["x", "yes"]);
    }

    #[test]
    fn typed_errors() {
        let err = run(Some(&["nope".to_string()]), json!([])).unwrap_err();
        assert_eq!(
            (err.kind, err.type_name.as_str()),
            (ErrorKind::InvalidInput, "ColumnNotFound")
        );
        assert!(
            err.message.contains("\"a\", \"b\", \"label\""),
            "{}",
            err.message
        );
        let err = run(None, json!([{"column": "b", "op": ">", "value": 1}])).unwrap_err();
        assert_eq!(err.type_name, "NonNumericValue");
        let err = read(
            "a,t\n1,2\n3\n".as_bytes(),
            "r.csv",
            "t",
            None,
            &[],
            &Context::detached(1, None),
        )
        .unwrap_err();
        assert_eq!(err.type_name, "MalformedCsv");
    }

    #[test]
    fn heartbeats_and_stops_on_cancel() {
        let data: String = std::iter::once("v,t\n".to_string())
            .chain((0..25_000).map(|i| format!("{i},c\n")))
            .collect();
        let ctx = Context::detached(1, None);
        read(data.as_bytes(), "big.csv", "t", None, &[], &ctx).unwrap();
        assert_eq!(
            ctx.recorded_heartbeats(),
            [json!({"rows_read": 10000}), json!({"rows_read": 20000})]
        );
        let ctx = Context::detached(1, None).cancel_after(1);
        let err = read(data.as_bytes(), "big.csv", "t", None, &[], &ctx).unwrap_err();
        assert_eq!(err.type_name, "Cancelled");
    }
}
