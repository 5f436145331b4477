// The validate plugin natively on the bundled datasets (data/), through the SDK's fake host:
// /data is the repository's data/ and /artifacts a temporary directory, as in the worker.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";

import { FakeHost, invoke } from "../mlx_plugin/testing.js";
import { parseCsv } from "../validate/csv.js";
import { plugin } from "../validate/plugin.js";
import { inferType, parseNumber } from "../validate/validation.js";

const DATA = fileURLToPath(new URL("../../../data", import.meta.url));
const artifacts = mkdtempSync(join(tmpdir(), "validate-test-"));
after(() => rmSync(artifacts, { recursive: true, force: true }));

const host = () => new FakeHost({ dirs: { "/data": { path: DATA, readOnly: true }, "/artifacts": artifacts } });
const report = (path) => JSON.parse(readFileSync(join(artifacts, path.replace(/^\/artifacts\//, "")), "utf8"));

const IRIS_RULES = {
  "sepal length (cm)": { type: "number", min: 4, max: 8, max_missing: 0 },
  "sepal width (cm)": { type: "number", min: 2, max: 4.5 },
  "petal length (cm)": { type: "number", min: 1, max: 7 },
  "petal width (cm)": { type: "number", min: 0, max: 2.5 },
  target: { type: "category", allowed: ["setosa", "versicolor", "virginica"], max_missing: 0 },
};

describe("validate_table", () => {
  it("infers the types of iris and finds it valid", async () => {
    const h = host();
    const out = (await invoke(plugin, "validate_table", { source: "/data/iris.csv" }, { host: h })).unwrap();
    assert.deepEqual(out, {
      valid: true,
      report: "/artifacts/validation/report.json",
      rows: 150,
      columns: 5,
      invalid_columns: [],
      missing_columns: [],
      violations: 0,
      missing_cells: 0,
      types: {
        "sepal length (cm)": "number",
        "sepal width (cm)": "number",
        "petal length (cm)": "number",
        "petal width (cm)": "number",
        target: "category",
      },
    });
    const written = report(out.report);
    assert.equal(written.valid, true);
    const sepal = written.column_reports["sepal length (cm)"];
    assert.deepEqual([sepal.min, sepal.max, sepal.present, sepal.missing, sepal.inferred], [4.3, 7.9, 150, 0, true]);
    assert.deepEqual(written.column_reports.target.categories, ["setosa", "versicolor", "virginica"]);
    assert.deepEqual(h.heartbeats, [{ phase: "read", rows: 150 }]);
    assert.deepEqual(h.messages("info"), ["validation report written"]);
    assert.equal(h.logs[0].fields.valid, "true");
  });

  it("holds iris to its rules", async () => {
    const out = (
      await invoke(plugin, "validate_table", { source: "/data/iris.csv", rules: IRIS_RULES, report: "/artifacts/iris.json" }, { host: host() })
    ).unwrap();
    assert.equal(out.valid, true);
    assert.equal(report("/artifacts/iris.json").column_reports.target.inferred, false);
  });

  it("catches planted missing and out-of-range values, naming the rows", async () => {
    // Iris with three cells broken: row 2 loses its sepal length, row 4 gets a sepal width of
    // 45 (a misplaced decimal point), row 7 an unknown species; row 9 a petal length "abc".
    const lines = readFileSync(join(DATA, "iris.csv"), "utf8").trimEnd().split("\n");
    const cells = lines.map((l) => l.split(","));
    cells[2][0] = "";
    cells[4][1] = "45";
    cells[7][4] = "setossa";
    cells[9][2] = "abc";
    writeFileSync(join(artifacts, "broken.csv"), `${cells.map((c) => c.join(",")).join("\n")}\n`);
    const h = host();
    const out = (
      await invoke(
        plugin,
        "validate_table",
        { source: "/artifacts/broken.csv", rules: { ...IRIS_RULES, weight: { type: "number" } }, report: "/artifacts/broken.json" },
        { host: h },
      )
    ).unwrap();
    assert.equal(out.valid, false);
    assert.deepEqual(out.invalid_columns, ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "target"]);
    assert.deepEqual(out.missing_columns, ["weight"]);
    assert.equal(out.missing_cells, 1);
    const columns = report(out.report).column_reports;
    assert.deepEqual(columns["sepal length (cm)"].violations, [
      { rule: "max_missing", limit: 0, count: 1, rows: [2], values: [""] },
    ]);
    assert.deepEqual(columns["sepal length (cm)"].missing_rows, [2]);
    assert.deepEqual(columns["sepal width (cm)"].violations, [{ rule: "max", limit: 4.5, count: 1, rows: [4], values: ["45"] }]);
    assert.equal(columns["sepal width (cm)"].max, 45);
    assert.deepEqual(columns["petal length (cm)"].violations, [
      { rule: "type", limit: "number", count: 1, rows: [9], values: ["abc"] },
    ]);
    assert.deepEqual(columns.target.violations, [
      { rule: "allowed", limit: ["setosa", "versicolor", "virginica"], count: 1, rows: [7], values: ["setossa"] },
    ]);
    assert.equal(columns["petal width (cm)"].valid, true);
    assert.equal(out.violations, 4);
  });

  it("lists only the first rows of a rule broken often, and counts them all", async () => {
    const out = (
      await invoke(
        plugin,
        "validate_table",
        {
          source: "/data/breast_cancer.csv",
          rules: { "mean radius": { max: 15 }, target: { allowed: ["benign", "malignant"] } },
          max_rows_listed: 3,
          report: "/artifacts/bc.json",
        },
        { host: host() },
      )
    ).unwrap();
    assert.deepEqual([out.rows, out.columns, out.valid, out.invalid_columns], [569, 31, false, ["mean radius"]]);
    const radius = report("/artifacts/bc.json").column_reports["mean radius"];
    assert.equal(radius.type, "number");
    assert.equal(radius.violations[0].rows.length, 3);
    assert.equal(radius.violations[0].count, out.violations);
    assert.ok(out.violations > 100, `${out.violations}`);
  });

  it("says which errors the caller must fix", async () => {
    const cases = [
      [{ source: "/data/nope.csv" }, "SourceNotFound", "invalid_input"],
      [{ source: "/etc/passwd" }, "SourceNotFound", "invalid_input"],
      [{ source: "/data/iris.csv", report: "/data/report.json" }, "ReportNotWritable", "invalid_input"],
      [{ source: "/data/iris.csv", rules: { target: { type: "date" } } }, "InvalidInput", "invalid_input"],
      [{ source: "/data/iris.csv", rules: { target: { max_missing: 2 } } }, "InvalidInput", "invalid_input"],
    ];
    for (const [input, type, kind] of cases) {
      const { error } = await invoke(plugin, "validate_table", input, { host: host() });
      assert.deepEqual([error?.typeName, error?.kind], [type, kind], `${JSON.stringify(input)}: ${error}`);
    }
    writeFileSync(join(artifacts, "ragged.csv"), "a,b\n1,2\n3\n");
    const { error } = await invoke(plugin, "validate_table", { source: "/artifacts/ragged.csv" }, { host: host() });
    assert.equal(error.typeName, "MalformedCsv");
    assert.equal(error.details.line, 3);
  });

  it("stops when cancelled", async () => {
    const h = host();
    h.cancel();
    const { error } = await invoke(plugin, "validate_table", { source: "/data/iris.csv" }, { host: h });
    assert.deepEqual([error.kind, error.typeName], ["retryable", "Cancelled"]);
  });

  it("reports its own bug as an uncaught exception", async () => {
    const { error } = await invoke(plugin, "raise_error", {});
    assert.deepEqual([error.kind, error.typeName], ["permanent", "UncaughtException"]);
    assert.match(error.message, /^TypeError: /);
    assert.equal(error.details.where.function, "columnsOf");
  });
});

describe("csv and types", () => {
  it("parses quotes, doubled quotes, CRLF and a missing last newline", () => {
    const table = parseCsv('\ufeffname,note\r\n"Smith, J","said ""hi"""\r\n\r\nx,"two\nlines"');
    assert.deepEqual(table.header, ["name", "note"]);
    assert.deepEqual(table.rows, [["Smith, J", 'said "hi"'], ["x", "two\nlines"]]);
    assert.deepEqual(table.lines, [2, 4]);
    assert.throws(() => parseCsv('a\n"open'), /not closed/);
  });

  it("infers types from the present cells", () => {
    assert.equal(inferType(["1", "2", "-3"]), "integer");
    assert.equal(inferType(["1", "2.5", "1e3"]), "number");
    assert.equal(inferType(["a", "b", "a", "b"]), "category");
    assert.equal(inferType(["a", "b", "c"]), "string");
    assert.deepEqual(["1", " 2 ", "", "0x10", "Infinity", "1e"].map(parseNumber), [1, 2, null, null, null, null]);
  });
});
