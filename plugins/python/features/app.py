"""`features` plugin: feature engineering on a CSV table for the trainer, in Python (standard
library only). The component's main module: componentize-py exports `Plugin` from here.
"""

from feature_engineering import DEFAULT_MISSING, engineer
from mlx_plugin import App, Context, schema

app = App(
    "features",
    "0.1.0",
    "Feature engineering on CSV tables: mean imputation, standardisation, one-hot encoding.",
)

_numeric_stats = schema.object(
    {"mean": schema.number(), "std": schema.number(minimum=0)}, required=["mean", "std"]
)
_categorical_stats = schema.object(
    {"categories": schema.array(schema.string())}, required=["categories"]
)
_stats = schema.object(
    {
        "numeric": {"type": "object", "additionalProperties": _numeric_stats},
        "categorical": {"type": "object", "additionalProperties": _categorical_stats},
    },
    description="Per column: mean and std of numeric columns, categories of categorical ones.",
)


@app.operation(
    "engineer_features",
    description=(
        "Reads a CSV file with a header row (from the workflow's /artifacts, e.g. the csv "
        "plugin's train.csv, or a granted directory such as /data), imputes missing numeric "
        "cells with the column mean, standardises numeric columns (mean 0, population std 1), "
        "one-hot encodes categorical columns (one 0/1 column per category, named "
        "column=category), keeps the target column unchanged and last, and writes the result "
        "as CSV to `output`. Returns the path, counts and the fitted statistics (`stats`); pass "
        "those as `stats` to transform another file (a test set) the same way."
    ),
    input_schema=schema.object(
        {
            "source": schema.string("Path of the CSV file inside the plugin."),
            "output": schema.string(
                "Where to write the result (inside /artifacts).",
                default="/artifacts/features/features.csv",
            ),
            "target": schema.string(
                "The label column: passed through unchanged, last. Default: none."
            ),
            "categorical": schema.array(
                schema.string(),
                "Columns to one-hot encode even though their values look numeric.",
                default=[],
            ),
            "missing": schema.array(
                schema.string(), "Cells that mean no value.", default=DEFAULT_MISSING
            ),
            "standardize": schema.boolean(default=True),
            "one_hot": schema.boolean(
                "False: categorical columns are kept as they are.", default=True
            ),
            "stats": dict(
                _stats,
                description="Statistics of an earlier call (its output's `stats`) to apply "
                "instead of fitting on this file.",
            ),
        },
        required=["source"],
    ),
    output_schema=schema.object(
        {
            "path": schema.string(),
            "rows": schema.integer(minimum=1),
            "columns": schema.array(schema.string(), "The output's header."),
            "target": {"type": ["string", "null"]},
            "stats": _stats,
            "imputed": {
                "type": "object",
                "additionalProperties": schema.integer(),
                "description": "Missing cells replaced by the mean, per numeric column.",
            },
            "missing_categorical": {"type": "object", "additionalProperties": schema.integer()},
            "unseen_categories": {
                "type": "object",
                "additionalProperties": schema.integer(),
                "description": "Cells whose category is not in `stats` (encoded as all zeros).",
            },
            "dropped": schema.array(schema.string(), "Columns with no statistics."),
            "fitted": schema.boolean("True if the statistics were fitted on this file."),
        },
        required=["path", "rows", "columns", "stats"],
        additionalProperties=True,
    ),
    errors={
        "invalid_input": [
            "SourceNotFound",
            "ColumnNotFound",
            "DuplicateColumn",
            "MalformedCsv",
            "NoRows",
            "NonNumericValue",
            "InvalidStats",
            "OutputNotWritable",
        ],
        "retryable": ["SourceReadFailed", "ArtifactWriteFailed", "Cancelled"],
    },
)
def engineer_features(input: dict, ctx: Context) -> dict:
    return engineer(input, ctx)


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator


@app.operation("raise_error", input_schema=schema.object({}), output_schema={})
def raise_error(input: dict) -> dict:
    """Fails with an exception the plugin does not handle (ZeroDivisionError: division by
    zero), to show how the worker reports a bug in a Python plugin: a Permanent
    UncaughtException whose details hold the traceback. For tests and demonstrations."""
    return {"ratio": _ratio(1, 0)}


# componentize-py exports the class named after the WIT interface `plugin`.
Plugin = app.export()
