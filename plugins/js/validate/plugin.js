// `validate` plugin: data validation of a CSV table (types, missing cells, ranges, allowed
// values) with a JSON report, in JavaScript. The component's main module: mk/js.mk exports
// `plugin` from here.

import { definePlugin, schema } from "../mlx_plugin/index.js";
import { DEFAULT_MISSING, MAX_CATEGORIES, TYPES, validateTable } from "./validation.js";

const rule = schema.object({
  type: schema.oneOf(TYPES, "Expected type; inferred from the values when absent."),
  min: schema.number("Smallest allowed value (number and integer columns)."),
  max: schema.number("Largest allowed value (number and integer columns)."),
  allowed: schema.array(schema.string(), "The only values allowed (compared as the file's text).", { minItems: 1 }),
  max_missing: schema.number("Largest allowed fraction of missing cells, 0 to 1.", { minimum: 0, maximum: 1 }),
});

const violation = schema.object(
  {
    rule: schema.oneOf(["type", "min", "max", "allowed", "max_missing"]),
    limit: schema.any("The rule's limit (type name, bound, allowed values or fraction)."),
    count: schema.integer({ minimum: 1 }),
    rows: schema.array(schema.integer({ minimum: 1 }), "The first rows breaking it (1 = the row after the header)."),
    values: schema.array(schema.string(), "Their cells."),
  },
  ["rule", "count", "rows", "values"],
);

/** Exported for the report's readers; the operation's output is the summary. */
export const columnReport = schema.object(
  {
    type: schema.oneOf(TYPES),
    inferred: schema.boolean(),
    present: schema.integer({ minimum: 0 }),
    missing: schema.integer({ minimum: 0 }),
    missing_fraction: schema.number({ minimum: 0, maximum: 1 }),
    missing_rows: schema.array(schema.integer()),
    min: schema.nullable(schema.number()),
    max: schema.nullable(schema.number()),
    distinct: schema.integer({ minimum: 0 }),
    categories: schema.array(schema.string()),
    violations: schema.array(violation),
    valid: schema.boolean(),
  },
  ["type", "inferred", "present", "missing", "violations", "valid"],
);

const inferredTypes =
  `Without a rule a column's type is inferred: integer or number when every present cell is one, ` +
  `category when it has at most ${MAX_CATEGORIES} distinct values (and at most half as many as cells), string otherwise.`;

export const plugin = definePlugin({
  name: "validate",
  version: "0.1.0",
  description: "Data validation of CSV tables: types, missing cells, ranges and allowed values, with a JSON report.",
  operations: {
    validate_table: {
      description:
        "Reads a CSV file with a header row (a granted directory such as /data, or the workflow's /artifacts) " +
        "and checks each column against its rule in `rules` (type, min/max, allowed values, largest missing " +
        `fraction). ${inferredTypes} Writes the full report (per column: type, missing cells, min/max or ` +
        "categories, and each broken rule with its first rows) as JSON to `report` and returns a summary: " +
        "`valid`, counts, and the columns that failed.",
      input: schema.object(
        {
          source: schema.string("Path of the CSV file inside the plugin, e.g. /data/iris.csv."),
          rules: schema.mapOf(rule, "Per column name, what its cells must satisfy. Default: none (types inferred)."),
          report: schema.string("Where to write the report (inside /artifacts).", {
            default: "/artifacts/validation/report.json",
          }),
          missing: schema.array(schema.string(), "Cells that mean no value.", { default: DEFAULT_MISSING }),
          max_rows_listed: schema.integer("Rows listed per broken rule (all are counted).", {
            minimum: 0,
            maximum: 1000,
            default: 5,
          }),
        },
        ["source"],
      ),
      output: schema.object(
        {
          valid: schema.boolean("True when every rule holds and every ruled column exists."),
          report: schema.string("Path of the report written."),
          rows: schema.integer({ minimum: 1 }),
          columns: schema.integer({ minimum: 1 }),
          invalid_columns: schema.array(schema.string(), "Columns breaking a rule."),
          missing_columns: schema.array(schema.string(), "Columns with a rule but not in the file."),
          violations: schema.integer("Cells breaking a rule, over all columns.", { minimum: 0 }),
          missing_cells: schema.integer({ minimum: 0 }),
          types: schema.mapOf(schema.oneOf(TYPES), "Each column's type, declared or inferred."),
        },
        ["valid", "report", "rows", "columns", "invalid_columns", "missing_columns", "violations", "missing_cells", "types"],
      ),
      errors: {
        invalid_input: ["SourceNotFound", "MalformedCsv", "NoRows", "DuplicateColumn", "ReportNotWritable"],
        retryable: ["SourceReadFailed", "ArtifactWriteFailed", "Cancelled"],
      },
      handler: validateTable,
    },

    raise_error: {
      description:
        "Fails with an exception the plugin does not handle (a TypeError), to show how the worker reports a bug in a " +
        "JavaScript plugin: a Permanent UncaughtException whose details hold the stack. For tests and demonstrations.",
      input: schema.object({}),
      output: {},
      handler(input) {
        return { columns: columnsOf(input.table) };
      },
    },
  },
});

function columnsOf(table) {
  return table.header.length;
}
