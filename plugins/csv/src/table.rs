//! Reading a CSV source: column selection and row filters, streamed so only kept cells stay
//! in memory.

use std::io::Read;

use mlx_plugin_sdk::schemars::{Schema, SchemaGenerator, json_schema};
use mlx_plugin_sdk::{Context, JsonSchema, PluginError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Rows between progress heartbeats while reading.
const HEARTBEAT_EVERY_ROWS: u64 = 10_000;

/// Keeps the rows whose `column` compares to `value` as `op` says.
// Serialize too: the schema shows `filters`' default only for a type it can write.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub column: String,
    pub op: Op,
    /// A number compares numerically (cells must parse as numbers), a string lexically.
    #[schemars(schema_with = "number_or_string")]
    pub value: Value,
}

fn number_or_string(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": ["number", "string"]})
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
pub enum Op {
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
}

impl Op {
    fn holds<T: PartialOrd + ?Sized>(self, a: &T, b: &T) -> bool {
        match self {
            Op::Eq => a == b,
            Op::Ne => a != b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
        }
    }
}

enum Operand {
    Number(f64),
    Text(String),
}

struct CompiledFilter {
    index: usize,
    column: String,
    op: Op,
    operand: Operand,
}

impl CompiledFilter {
    fn matches(&self, record: &csv::StringRecord, line: u64) -> Result<bool, PluginError> {
        let cell = record.get(self.index).unwrap_or_default();
        match &self.operand {
            Operand::Text(text) => Ok(self.op.holds(cell, text.as_str())),
            Operand::Number(number) => match cell.trim().parse::<f64>() {
                Ok(value) => Ok(self.op.holds(&value, number)),
                Err(_) => Err(PluginError::invalid_input(
                    "NonNumericValue",
                    format!(
                        "the filter on column {:?} compares numbers, but line {line} has {cell:?}",
                        self.column
                    ),
                )
                .with_details(json!({"column": self.column, "line": line, "value": cell}))),
            },
        }
    }
}

/// The kept part of a source: feature cells then the target cell, per selected row.
#[derive(Debug)]
pub struct Table {
    pub features: Vec<String>,
    pub target: String,
    pub rows: Vec<Vec<String>>,
    /// Data rows in the source, before filtering.
    pub source_rows: u64,
}

fn column_index(header: &[String], name: &str) -> Result<usize, PluginError> {
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

fn compile(header: &[String], filters: &[Filter]) -> Result<Vec<CompiledFilter>, PluginError> {
    filters
        .iter()
        .map(|f| {
            let operand = match &f.value {
                Value::Number(n) => n.as_f64().map(Operand::Number),
                Value::String(s) => Some(Operand::Text(s.clone())),
                _ => None,
            }
            .ok_or_else(|| {
                PluginError::invalid_input(
                    "InvalidFilter",
                    format!(
                        "the filter on column {:?} needs a number or a string value",
                        f.column
                    ),
                )
            })?;
            Ok(CompiledFilter {
                index: column_index(header, &f.column)?,
                column: f.column.clone(),
                op: f.op,
                operand,
            })
        })
        .collect()
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
    let mut keep = select(&header, target, columns)?;
    let features = keep.iter().map(|&i| header[i].clone()).collect();
    keep.push(column_index(&header, target)?);
    let filters = compile(&header, filters)?;

    let mut table = Table {
        features,
        target: target.to_owned(),
        rows: Vec::new(),
        source_rows: 0,
    };
    let mut record = csv::StringRecord::new();
    while reader
        .read_record(&mut record)
        .map_err(|e| csv_error(source, e))?
    {
        table.source_rows += 1;
        if table.source_rows.is_multiple_of(HEARTBEAT_EVERY_ROWS)
            && ctx.heartbeat(&json!({"rows_read": table.source_rows}))
        {
            return Err(PluginError::cancelled(format!(
                "cancelled after reading {} rows",
                table.source_rows
            )));
        }
        let line = record.position().map_or(0, |p| p.line());
        let mut kept = true;
        for filter in &filters {
            if !filter.matches(&record, line)? {
                kept = false;
                break;
            }
        }
        if kept {
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
