//! The `predict` operation: an ONNX model over a CSV or Parquet file, batch by batch, into a
//! predictions file with one row per input row.

use std::collections::BTreeSet;
use std::io;
use std::path::Path;

use mlx_plugin_sdk::{Context, ErrorDecl, JsonSchema, Operation, PluginError, log};
use mlx_tabular::{Column, ColumnData, Format, Table, read_table, write_table};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tract_onnx::prelude::*;

use crate::model::{self, ModelInfo, Outputs};

pub struct Predict;

impl Operation for Predict {
    const NAME: &str = "predict";
    const DOC: &str = "Scores a CSV or Parquet file with an ONNX model (tract, inside the \
                       sandbox), batch_rows rows at a time, and writes one row per input row: \
                       `prediction` (the label of a classifier, the value of a regressor) and \
                       `probability_<class>` per class when the model outputs probabilities. \
                       The output's extension (.csv or .parquet) picks its format. Returns the \
                       path, counts, columns and the model's signature and SHA-256, not data.";
    const ERRORS: &[ErrorDecl] = &[
        ErrorDecl::invalid_input("ModelNotFound", "model is missing or outside every grant"),
        ErrorDecl::invalid_input("ModelTooLarge", "the model file is over the size cap"),
        ErrorDecl::invalid_input(
            "MalformedModel",
            "model is not an ONNX protobuf, or is corrupt",
        ),
        ErrorDecl::invalid_input(
            "UnsupportedModel",
            "an operator tract does not implement, ZipMap outputs, or inputs other than one \
             float tensor [rows, features]",
        ),
        ErrorDecl::invalid_input(
            "FeatureCountMismatch",
            "the model's input width differs from the number of feature columns",
        ),
        ErrorDecl::invalid_input("ArtifactNotFound", "data is missing or outside every grant"),
        ErrorDecl::invalid_input("MalformedCsv", "data is not valid CSV"),
        ErrorDecl::invalid_input("MalformedParquet", "data is not valid Parquet"),
        ErrorDecl::invalid_input(
            "UnsupportedColumnType",
            "a Parquet column is neither numeric, text nor boolean",
        ),
        ErrorDecl::invalid_input(
            "TableTooLarge",
            "data has more columns or cells than mlx-tabular reads",
        ),
        ErrorDecl::invalid_input("NoRows", "data has no data rows"),
        ErrorDecl::invalid_input("ColumnNotFound", "a named column is not in the data"),
        ErrorDecl::invalid_input("DuplicateColumn", "a feature column is named twice"),
        ErrorDecl::invalid_input("NonNumericValue", "a feature column holds text"),
        ErrorDecl::invalid_input("MissingValues", "a feature value is missing"),
        ErrorDecl::invalid_input(
            "NonFiniteValue",
            "a feature value is infinite or out of the model's float range",
        ),
        ErrorDecl::invalid_input(
            "InvalidParameter",
            "output is not .csv or .parquet, or columns and exclude leave no features",
        ),
        ErrorDecl::invalid_input("OutputNotWritable", "output is not granted read-write"),
        ErrorDecl::permanent(
            "InferenceFailed",
            "tract failed running the model on a batch",
        ),
        ErrorDecl::retryable("ModelReadFailed", "an I/O error reading the model"),
        ErrorDecl::retryable("ArtifactReadFailed", "an I/O error reading the data"),
        ErrorDecl::retryable("ArtifactWriteFailed", "an I/O error writing the output"),
        ErrorDecl::CANCELLED,
    ];
    type Input = PredictInput;
    type Output = PredictOutput;

    fn run(input: PredictInput, ctx: &Context) -> Result<PredictOutput, PluginError> {
        predict(input, ctx)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictInput {
    /// Path of the .onnx file inside the plugin, e.g. /models/iris.onnx.
    pub model: String,
    /// Path of the CSV (header row) or Parquet file to score.
    pub data: String,
    /// Feature columns in the order of the model's input. Default: every column but `exclude`.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub columns: Option<Vec<String>>,
    /// Columns that are not features, e.g. the target.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Path of the predictions file; its extension (.csv or .parquet) picks the format.
    #[serde(default = "default_output")]
    pub output: String,
    /// Rows per inference call: bounds the memory of the model's tensors.
    #[serde(default = "default_batch_rows")]
    #[schemars(range(min = 1, max = 65536))]
    pub batch_rows: u32,
}

fn default_output() -> String {
    "/artifacts/predictions.csv".into()
}

fn default_batch_rows() -> u32 {
    1024
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct PredictOutput {
    pub path: String,
    /// `csv` or `parquet`.
    pub format: String,
    pub rows: u64,
    pub bytes: u64,
    /// The predictions file's columns.
    pub columns: Vec<String>,
    /// The data columns fed to the model, in its input order.
    pub features: Vec<String>,
    /// `classifier` (a label output) or `regressor`.
    pub kind: String,
    /// Class names in the order of the probability columns (classifiers).
    pub classes: Vec<String>,
    pub batches: u64,
    pub model: ModelInfo,
}

fn invalid_parameter(message: impl Into<String>) -> PluginError {
    PluginError::invalid_input("InvalidParameter", message)
}

fn output_format(path: &str) -> Result<Format, PluginError> {
    match Path::new(path).extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("csv") => Ok(Format::Csv),
        Some(e) if e.eq_ignore_ascii_case("parquet") => Ok(Format::Parquet),
        _ => Err(invalid_parameter(format!(
            "output {path} must end in .csv or .parquet: its extension picks the format"
        ))),
    }
}

fn column_not_found(name: &str, table: &Table) -> PluginError {
    let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    PluginError::invalid_input(
        "ColumnNotFound",
        format!(
            "no column {name:?} in the data; it has {}",
            names.join(", ")
        ),
    )
    .with_details(json!({"column": name, "columns": names}))
}

/// The feature columns, in the model's input order.
fn select<'t>(
    table: &'t Table,
    columns: Option<&[String]>,
    exclude: &[String],
) -> Result<Vec<&'t Column>, PluginError> {
    let find = |name: &str| {
        table
            .columns
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| column_not_found(name, table))
    };
    for name in exclude {
        find(name)?;
    }
    let selected: Vec<&Column> = match columns {
        Some(names) => {
            let mut seen = BTreeSet::new();
            for name in names {
                if !seen.insert(name.as_str()) {
                    return Err(PluginError::invalid_input(
                        "DuplicateColumn",
                        format!("column {name:?} is listed twice in columns"),
                    ));
                }
                if exclude.contains(name) {
                    return Err(invalid_parameter(format!(
                        "column {name:?} is both in columns and in exclude"
                    )));
                }
            }
            names.iter().map(|n| find(n)).collect::<Result<_, _>>()?
        }
        None => table
            .columns
            .iter()
            .filter(|c| !exclude.contains(&c.name))
            .collect(),
    };
    if selected.is_empty() {
        return Err(invalid_parameter(
            "columns and exclude leave no feature column",
        ));
    }
    Ok(selected)
}

/// Each feature column's numbers, or the error naming the first text cell.
fn numeric<'t>(columns: &[&'t Column]) -> Result<Vec<&'t [Option<f64>]>, PluginError> {
    columns
        .iter()
        .map(|c| match &c.data {
            ColumnData::Numeric(values) => Ok(values.as_slice()),
            ColumnData::Categorical(cells) => {
                let (row, text) = cells
                    .iter()
                    .enumerate()
                    .find_map(|(i, c)| {
                        c.as_deref()
                            .filter(|t| t.trim().parse::<f64>().is_err())
                            .map(|t| (i, t))
                    })
                    .unwrap_or((0, ""));
                Err(PluginError::invalid_input(
                    "NonNumericValue",
                    format!(
                        "feature column {:?} holds text, e.g. {text:?} in data row {}; the \
                         model takes numbers (encode it before scoring, or exclude it)",
                        c.name,
                        row + 1
                    ),
                )
                .with_details(json!({"column": c.name, "row": row + 1, "value": text})))
            }
        })
        .collect()
}

/// Rows `start..end` of `columns` as a row-major input tensor of the model's float type.
fn batch_tensor(
    names: &[String],
    columns: &[&[Option<f64>]],
    start: usize,
    end: usize,
    double: bool,
) -> Result<Tensor, PluginError> {
    let width = columns.len();
    let mut values = Vec::with_capacity((end - start) * width);
    for row in start..end {
        for (column, name) in columns.iter().zip(names) {
            let value = column[row].ok_or_else(|| {
                PluginError::invalid_input(
                    "MissingValues",
                    format!(
                        "feature {name:?} is missing in data row {}: the scorer does not impute \
                         (impute before scoring)",
                        row + 1
                    ),
                )
                .with_details(json!({"column": name, "row": row + 1}))
            })?;
            let representable = value.is_finite() && (double || (value as f32).is_finite());
            if !representable {
                return Err(PluginError::invalid_input(
                    "NonFiniteValue",
                    format!(
                        "feature {name:?} is {value} in data row {}, which the model's {} input \
                         cannot hold",
                        row + 1,
                        if double { "double" } else { "float" }
                    ),
                )
                .with_details(json!({"column": name, "row": row + 1})));
            }
            values.push(value);
        }
    }
    let shape = [end - start, width];
    let tensor = if double {
        Tensor::from_shape(&shape, &values)
    } else {
        let floats: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        Tensor::from_shape(&shape, &floats)
    };
    tensor.map_err(|e| inference_failed(&e))
}

fn inference_failed(e: &TractError) -> PluginError {
    let causes: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    PluginError::permanent(
        "InferenceFailed",
        format!("tract failed on a batch: {}", causes.join(": ")),
    )
}

/// The prediction columns being filled, batch by batch.
enum Sink {
    Classifier {
        /// Indices of the label and score outputs.
        label: usize,
        score: Option<usize>,
        /// What the label values are indices of, when they are.
        names: Option<Vec<String>>,
        labels: Vec<Option<String>>,
        scores: Vec<Vec<Option<f64>>>,
    },
    Regressor {
        /// Index of the values output.
        index: usize,
        values: Vec<Vec<Option<f64>>>,
    },
}

/// The `[rows, k]` (or `[rows]`) float output at `index` as f32 rows.
fn float_rows(outputs: &[TValue], index: usize, rows: usize) -> Result<Vec<Vec<f32>>, PluginError> {
    let tensor = outputs[index]
        .cast_to::<f32>()
        .map_err(|e| inference_failed(&e))?;
    let view = tensor
        .to_plain_array_view::<f32>()
        .map_err(|e| inference_failed(&e))?;
    let shape = view.shape().to_vec();
    if shape.first() != Some(&rows) || shape.len() > 2 {
        return Err(PluginError::permanent(
            "InferenceFailed",
            format!("output {index} has shape {shape:?} for a batch of {rows} rows"),
        ));
    }
    let width = shape.get(1).copied().unwrap_or(1);
    let flat: Vec<f32> = view.iter().copied().collect();
    Ok(flat.chunks(width.max(1)).map(<[f32]>::to_vec).collect())
}

fn labels(
    outputs: &[TValue],
    index: usize,
    rows: usize,
    names: Option<&[String]>,
) -> Result<Vec<String>, PluginError> {
    let tensor = &outputs[index];
    let labels: Vec<String> = if tensor.datum_type() == DatumType::String {
        tensor
            .to_plain_array_view::<String>()
            .map_err(|e| inference_failed(&e))?
            .iter()
            .cloned()
            .collect()
    } else {
        tensor
            .cast_to::<i64>()
            .map_err(|e| inference_failed(&e))?
            .to_plain_array_view::<i64>()
            .map_err(|e| inference_failed(&e))?
            .iter()
            .map(|&i| match names {
                None => Ok(i.to_string()),
                Some(names) => usize::try_from(i)
                    .ok()
                    .and_then(|i| names.get(i))
                    .cloned()
                    .ok_or_else(|| {
                        PluginError::permanent(
                            "InferenceFailed",
                            format!("the model predicted class index {i} of {}", names.len()),
                        )
                    }),
            })
            .collect::<Result<_, _>>()?
    };
    if labels.len() != rows {
        return Err(PluginError::permanent(
            "InferenceFailed",
            format!(
                "the label output has {} values for a batch of {rows} rows",
                labels.len()
            ),
        ));
    }
    Ok(labels)
}

pub fn predict(input: PredictInput, ctx: &Context) -> Result<PredictOutput, PluginError> {
    let format = output_format(&input.output)?;
    if input.batch_rows == 0 {
        return Err(invalid_parameter("batch_rows must be at least 1"));
    }
    let model = model::load(&input.model)?;
    let table = read_table(Path::new(&input.data))?;
    let selected = select(&table, input.columns.as_deref(), &input.exclude)?;
    let features: Vec<String> = selected.iter().map(|c| c.name.clone()).collect();
    if features.len() != model.features {
        return Err(PluginError::invalid_input(
            "FeatureCountMismatch",
            format!(
                "the model takes {} features but {} feature columns were selected from {} ({}); \
                 name them with `columns` (in the model's order) or drop the others with \
                 `exclude`",
                model.features,
                features.len(),
                input.data,
                features.join(", ")
            ),
        )
        .with_details(json!({
            "model_features": model.features,
            "data_features": features.len(),
            "columns": features,
        })));
    }
    let columns = numeric(&selected)?;
    let rows = table.rows();

    let (mut sink, classes) = match &model.outputs {
        Outputs::Classifier {
            label,
            scores,
            classes,
            label_names,
        } => (
            Sink::Classifier {
                label: *label,
                score: *scores,
                names: label_names.clone(),
                labels: Vec::with_capacity(rows),
                scores: Vec::new(),
            },
            classes.clone(),
        ),
        Outputs::Regressor { values } => (
            Sink::Regressor {
                index: *values,
                values: Vec::new(),
            },
            Vec::new(),
        ),
    };
    let batch_rows = input.batch_rows as usize;
    let mut batches = 0u64;
    let mut start = 0;
    while start < rows {
        let end = (start + batch_rows).min(rows);
        let tensor = batch_tensor(&features, &columns, start, end, model.double_input)?;
        let outputs = model
            .plan
            .run(tvec!(tensor.into()))
            .map_err(|e| inference_failed(&e))?;
        let n = end - start;
        match &mut sink {
            Sink::Classifier {
                label,
                score,
                names,
                labels: out,
                scores,
            } => {
                out.extend(
                    labels(&outputs, *label, n, names.as_deref())?
                        .into_iter()
                        .map(Some),
                );
                if let Some(index) = score {
                    for (i, row) in float_rows(&outputs, *index, n)?.into_iter().enumerate() {
                        if scores.is_empty() {
                            *scores = vec![Vec::with_capacity(rows); row.len()];
                        }
                        if row.len() != scores.len() {
                            return Err(PluginError::permanent(
                                "InferenceFailed",
                                format!(
                                    "data row {} has {} scores, not {}",
                                    start + i + 1,
                                    row.len(),
                                    scores.len()
                                ),
                            ));
                        }
                        for (column, p) in scores.iter_mut().zip(row) {
                            column.push(Some(f64::from(p)));
                        }
                    }
                }
            }
            Sink::Regressor { index, values } => {
                for row in float_rows(&outputs, *index, n)? {
                    if values.is_empty() {
                        *values = vec![Vec::with_capacity(rows); row.len()];
                    }
                    for (column, v) in values.iter_mut().zip(row) {
                        column.push(Some(f64::from(v)));
                    }
                }
            }
        }
        batches += 1;
        start = end;
        if ctx.heartbeat(&json!({"rows_scored": start, "rows": rows})) {
            return Err(PluginError::cancelled(format!(
                "cancelled after scoring {start} of {rows} rows"
            )));
        }
    }

    let (kind, table) = match sink {
        Sink::Classifier { labels, scores, .. } => {
            let mut columns = vec![Column {
                name: "prediction".into(),
                data: ColumnData::Categorical(labels),
            }];
            let named = classes.len() == scores.len();
            for (i, values) in scores.into_iter().enumerate() {
                let class = if named {
                    classes[i].clone()
                } else {
                    i.to_string()
                };
                columns.push(Column {
                    name: format!("probability_{class}"),
                    data: ColumnData::Numeric(values),
                });
            }
            ("classifier", Table { columns })
        }
        Sink::Regressor { values, .. } => {
            let single = values.len() <= 1;
            let mut columns: Vec<Column> = values
                .into_iter()
                .enumerate()
                .map(|(i, values)| Column {
                    name: if single {
                        "prediction".into()
                    } else {
                        format!("prediction_{i}")
                    },
                    data: ColumnData::Numeric(values),
                })
                .collect();
            if columns.is_empty() {
                columns.push(Column {
                    name: "prediction".into(),
                    data: ColumnData::Numeric(Vec::new()),
                });
            }
            ("regressor", Table { columns })
        }
    };
    let output = Path::new(&input.output);
    // A directory that is already there is left alone: a read-only grant's root cannot even
    // be "created" again, and the write below says what is wrong with it.
    if let Some(parent) = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty() && !p.is_dir())
    {
        std::fs::create_dir_all(parent).map_err(|e| {
            let message = format!(
                "cannot write {}: creating {}: {e}. The output must be inside a directory \
                 granted read-write (usually /artifacts)",
                input.output,
                parent.display()
            );
            match e.kind() {
                io::ErrorKind::NotFound
                | io::ErrorKind::PermissionDenied
                | io::ErrorKind::ReadOnlyFilesystem => {
                    PluginError::invalid_input("OutputNotWritable", message)
                }
                _ => PluginError::retryable("ArtifactWriteFailed", message),
            }
        })?;
    }
    let bytes = write_table(&table, output, format)?;
    let out_columns: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    log::info(
        "scored",
        &[
            ("rows", &rows),
            ("batches", &batches),
            ("model_sha256", &model.info.sha256),
            ("output", &input.output),
        ],
    );
    Ok(PredictOutput {
        path: input.output,
        format: format.extension().into(),
        rows: rows as u64,
        bytes,
        columns: out_columns,
        features,
        kind: kind.into(),
        classes,
        batches,
        model: model.info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table {
            columns: vec![
                Column {
                    name: "a".into(),
                    data: ColumnData::Numeric(vec![Some(1.0), Some(2.0)]),
                },
                Column {
                    name: "b".into(),
                    data: ColumnData::Numeric(vec![Some(3.0), None]),
                },
                Column {
                    name: "kind".into(),
                    data: ColumnData::Categorical(vec![Some("x".into()), Some("y".into())]),
                },
            ],
        }
    }

    fn names(columns: &[&Column]) -> Vec<String> {
        columns.iter().map(|c| c.name.clone()).collect()
    }

    #[test]
    fn the_extension_picks_the_format() {
        assert_eq!(output_format("/artifacts/p.csv").unwrap(), Format::Csv);
        assert_eq!(
            output_format("/artifacts/p.PARQUET").unwrap(),
            Format::Parquet
        );
        for bad in ["/artifacts/p.txt", "/artifacts/p"] {
            assert_eq!(
                output_format(bad).unwrap_err().type_name,
                "InvalidParameter"
            );
        }
    }

    #[test]
    fn features_are_named_or_all_but_the_excluded() {
        let t = table();
        assert_eq!(
            names(&select(&t, None, &["kind".into()]).unwrap()),
            ["a", "b"]
        );
        let named = ["b".to_string(), "a".to_string()];
        assert_eq!(names(&select(&t, Some(&named), &[]).unwrap()), ["b", "a"]);
        let err = |columns: Option<&[String]>, exclude: &[String]| {
            select(&t, columns, exclude).unwrap_err().type_name
        };
        assert_eq!(err(None, &["target".into()]), "ColumnNotFound");
        assert_eq!(err(Some(&["a".into(), "a".into()]), &[]), "DuplicateColumn");
        assert_eq!(err(Some(&["a".into()]), &["a".into()]), "InvalidParameter");
        let all: Vec<String> = ["a", "b", "kind"].map(String::from).to_vec();
        assert_eq!(err(None, &all), "InvalidParameter");
    }

    #[test]
    fn text_missing_and_unrepresentable_values_are_refused() {
        let t = table();
        let all = select(&t, None, &[]).unwrap();
        let err = numeric(&all).unwrap_err();
        assert_eq!(err.type_name, "NonNumericValue");
        assert!(
            err.message.contains("\"kind\"") && err.message.contains("\"x\""),
            "{err:?}"
        );

        let features = select(&t, None, &["kind".into()]).unwrap();
        let columns = numeric(&features).unwrap();
        let names = ["a".to_string(), "b".to_string()];
        let first = batch_tensor(&names, &columns, 0, 1, false).unwrap();
        assert_eq!(first.shape(), [1, 2]);
        assert_eq!(first.datum_type(), f32::datum_type());
        let err = batch_tensor(&names, &columns, 0, 2, false).unwrap_err();
        assert_eq!(err.type_name, "MissingValues");
        assert!(err.message.contains("data row 2"), "{err:?}");

        // 1e300 is a double but no float.
        let huge = [Some(1e300)];
        let huge: Vec<&[Option<f64>]> = vec![&huge];
        let name = ["h".to_string()];
        assert!(batch_tensor(&name, &huge, 0, 1, true).is_ok());
        let err = batch_tensor(&name, &huge, 0, 1, false).unwrap_err();
        assert_eq!(err.type_name, "NonFiniteValue");
    }
}
