//! CSV in and out. The `csv` crate reads records as text (with line numbers for errors) and
//! [`crate::infer`] types each column; arrow's CSV reader would give us text cells too, as its
//! own inference (dates, booleans) is not the rule this crate documents.

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use mlx_plugin_sdk::PluginError;

use crate::error::{self, duplicate_column, malformed_csv};
use crate::infer::infer;
use crate::limits;
use crate::table::{Column, ColumnData, Table, format_number};

fn csv_error(path: &Path, e: csv::Error) -> PluginError {
    let hint = match e.kind() {
        csv::ErrorKind::Io(io) => return error::read_failed(path, io),
        csv::ErrorKind::Utf8 { .. } => "; save the file as UTF-8",
        csv::ErrorKind::UnequalLengths { .. } => {
            "; every row must have as many cells as the header (quote cells that contain commas)"
        }
        _ => "",
    };
    malformed_csv(path, format!("{e}{hint}"))
}

/// A column's cells as read, packed in one string: a `String` per cell would triple the
/// memory a numeric column takes before it is typed.
#[derive(Default)]
struct TextColumn {
    text: String,
    ends: Vec<usize>,
}

impl TextColumn {
    fn push(&mut self, cell: &str) {
        self.text.push_str(cell);
        self.ends.push(self.text.len());
    }

    fn cells(&self) -> impl Iterator<Item = &str> + Clone {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, &end)| self.text.get(start..end).unwrap_or_default())
    }
}

/// Reads CSV text with a header row; `path` names the source in errors only.
///
/// Every row must have as many cells as the header, the text must be UTF-8 (a leading BOM is
/// skipped), header names must be distinct, and there must be at least one data row.
pub fn read_csv(input: impl Read, path: &Path) -> Result<Table, PluginError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(input);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| csv_error(path, e))?
        .iter()
        .map(str::to_owned)
        .collect();
    if header.iter().all(String::is_empty) {
        return Err(malformed_csv(
            path,
            "it is empty or its first line is blank; the first line must name the columns",
        ));
    }
    limits::check_columns(path, header.len())?;
    let mut seen = HashSet::with_capacity(header.len());
    if let Some(name) = header.iter().find(|name| !seen.insert(name.as_str())) {
        return Err(duplicate_column(path, name));
    }

    let mut cells: Vec<TextColumn> = (0..header.len()).map(|_| TextColumn::default()).collect();
    let mut record = csv::StringRecord::new();
    let mut rows = 0usize;
    while reader
        .read_record(&mut record)
        .map_err(|e| csv_error(path, e))?
    {
        rows += 1;
        limits::check_cells(path, rows, header.len())?;
        for (column, cell) in cells.iter_mut().zip(record.iter()) {
            column.push(cell);
        }
    }
    if rows == 0 {
        return Err(error::no_rows(path));
    }
    Ok(Table {
        columns: header
            .into_iter()
            .zip(cells)
            .map(|(name, cells)| Column {
                name,
                data: infer(cells.cells()),
            })
            .collect(),
    })
}

/// The table as CSV text: a header, numbers in their shortest round-tripping form, missing
/// cells empty (so they read back as missing).
pub fn encode_csv(table: &Table) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(table.columns.iter().map(|c| c.name.as_bytes()))?;
    let mut row: Vec<String> = Vec::with_capacity(table.columns.len());
    for i in 0..table.rows() {
        row.clear();
        row.extend(table.columns.iter().map(|c| match &c.data {
            ColumnData::Numeric(v) => v[i].map(format_number).unwrap_or_default(),
            ColumnData::Categorical(v) => v[i].clone().unwrap_or_default(),
        }));
        writer.write_record(&row)?;
    }
    writer.into_inner().map_err(|e| e.into_error().into())
}
