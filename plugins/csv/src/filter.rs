//! Row filters: `{"column", "op", "value"}` compiled against a header, evaluated on text cells.

use std::fmt;

use mlx_plugin_sdk::schemars::{Schema, SchemaGenerator, json_schema};
use mlx_plugin_sdk::{JsonSchema, PluginError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::table::column_index;

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

/// Where a record is, for messages: a CSV line, or a Parquet data row (counted from 1).
#[derive(Debug, Clone, Copy)]
pub enum Position {
    Line(u64),
    Row(u64),
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Line(n) => write!(f, "line {n}"),
            Position::Row(n) => write!(f, "data row {n}"),
        }
    }
}

impl Position {
    fn details(self) -> (&'static str, u64) {
        match self {
            Position::Line(n) => ("line", n),
            Position::Row(n) => ("row", n),
        }
    }
}

pub struct CompiledFilter {
    index: usize,
    column: String,
    op: Op,
    operand: Operand,
}

impl CompiledFilter {
    pub fn matches(&self, record: &csv::StringRecord, at: Position) -> Result<bool, PluginError> {
        let cell = record.get(self.index).unwrap_or_default();
        match &self.operand {
            Operand::Text(text) => Ok(self.op.holds(cell, text.as_str())),
            Operand::Number(number) => match cell.trim().parse::<f64>() {
                Ok(value) => Ok(self.op.holds(&value, number)),
                Err(_) => {
                    let (key, number) = at.details();
                    Err(PluginError::invalid_input(
                        "NonNumericValue",
                        format!(
                            "the filter on column {:?} compares numbers, but {at} has {cell:?}",
                            self.column
                        ),
                    )
                    .with_details(json!({"column": self.column, key: number, "value": cell})))
                }
            },
        }
    }
}

pub fn compile(header: &[String], filters: &[Filter]) -> Result<Vec<CompiledFilter>, PluginError> {
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
