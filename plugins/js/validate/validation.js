// Data validation of a CSV table: per column its type (declared in rules or inferred), missing
// cells, range, allowed values, and the rows breaking each rule. The report is a file; the
// operation returns a summary, not the data.

import { Cancelled, InvalidInput, Retryable, files, log } from "../mlx_plugin/index.js";
import { CsvError, parseCsv } from "./csv.js";

/** Cells that mean "no value", unless the input lists its own (as the features plugin). */
export const DEFAULT_MISSING = ["", "NA", "N/A", "NaN", "nan", "null", "None", "?"];

export const TYPES = ["number", "integer", "string", "category"];

/** A column whose values are not numbers is a category when it has at most this many
 * distinct values (and at most half as many as present cells); a string otherwise. */
export const MAX_CATEGORIES = 20;

/** Rows between two heartbeats while checking. */
export const HEARTBEAT_ROWS = 5000;

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** The finite number `cell` spells, or null. */
export function parseNumber(cell) {
  const text = cell.trim();
  return NUMBER.test(text) ? Number(text) : null;
}

export function readTable(path) {
  let text;
  try {
    text = files.readText(path);
  } catch (e) {
    if (e instanceof TypeError) {
      throw new InvalidInput("MalformedCsv", `${path} is not UTF-8 text`, { path });
    }
    if (["ENOENT", "EACCES", "EPERM", "ENOTDIR", "EISDIR", "EINVAL"].includes(e.code)) {
      throw new InvalidInput(
        "SourceNotFound",
        `${e.message}. The file must be in the workflow's /artifacts or a directory granted to the plugin in its manifest (e.g. /data)`,
        { path, code: e.code },
      );
    }
    throw new Retryable("SourceReadFailed", e.message, { path, code: e.code ?? null });
  }
  let table;
  try {
    table = parseCsv(text);
  } catch (e) {
    if (!(e instanceof CsvError)) throw e;
    throw new InvalidInput("MalformedCsv", `${path} ${e.message}`, { path, line: e.line });
  }
  if (table.header === null) throw new InvalidInput("NoRows", `${path} is empty: no header row`, { path });
  const seen = new Set();
  const duplicates = [...new Set(table.header.filter((name) => seen.size === seen.add(name).size))].sort();
  if (duplicates.length > 0) {
    throw new InvalidInput("DuplicateColumn", `${path}: columns named more than once: ${duplicates.join(", ")}`, {
      columns: duplicates,
    });
  }
  table.rows.forEach((row, i) => {
    if (row.length !== table.header.length) {
      throw new InvalidInput(
        "MalformedCsv",
        `${path} line ${table.lines[i]}: ${row.length} fields, the header has ${table.header.length}`,
        { path, line: table.lines[i] },
      );
    }
  });
  if (table.rows.length === 0) throw new InvalidInput("NoRows", `${path} has a header but no rows`, { path });
  return table;
}

/** The type a column's present cells suggest. */
export function inferType(present) {
  if (present.length === 0) return "string";
  const numbers = present.map(parseNumber);
  if (numbers.every((n) => n !== null)) return numbers.every(Number.isInteger) ? "integer" : "number";
  const distinct = new Set(present).size;
  return distinct <= MAX_CATEGORIES && distinct * 2 <= present.length ? "category" : "string";
}

/** One rule broken by some rows: the rule, its limit, how many rows, the first few (data row
 * numbers, 1 = the row after the header) and their cells. */
class Violations {
  constructor(rule, limit, keep) {
    this.rule = rule;
    this.limit = limit;
    this.keep = keep;
    this.count = 0;
    this.rows = [];
    this.values = [];
  }

  add(row, cell) {
    this.count++;
    if (this.rows.length < this.keep) {
      this.rows.push(row);
      this.values.push(cell);
    }
  }

  toJSON() {
    const out = { rule: this.rule, count: this.count, rows: this.rows, values: this.values };
    if (this.limit !== undefined) out.limit = this.limit;
    return out;
  }
}

function checkColumn(cells, rule, missing, keep, progress) {
  const present = [];
  const missingRows = new Violations("missing", undefined, keep);
  cells.forEach((cell, i) => (missing.has(cell) ? missingRows.add(i + 1, cell) : present.push(cell)));
  const type = rule.type ?? inferType(present);
  const found = [];
  const typeErrors = new Violations("type", type, keep);
  const below = new Violations("min", rule.min, keep);
  const above = new Violations("max", rule.max, keep);
  const allowed = rule.allowed ? new Set(rule.allowed.map(String)) : null;
  const notAllowed = new Violations("allowed", rule.allowed, keep);
  let min = null;
  let max = null;
  const distinct = new Map();
  cells.forEach((cell, i) => {
    progress();
    if (missing.has(cell)) return;
    const row = i + 1;
    if (allowed !== null && !allowed.has(cell)) notAllowed.add(row, cell);
    if (type === "number" || type === "integer") {
      const value = parseNumber(cell);
      if (value === null || (type === "integer" && !Number.isInteger(value))) {
        typeErrors.add(row, cell);
        return;
      }
      min = min === null ? value : Math.min(min, value);
      max = max === null ? value : Math.max(max, value);
      if (rule.min !== undefined && value < rule.min) below.add(row, cell);
      if (rule.max !== undefined && value > rule.max) above.add(row, cell);
    } else {
      distinct.set(cell, (distinct.get(cell) ?? 0) + 1);
    }
  });
  for (const v of [typeErrors, below, above, notAllowed]) if (v.count > 0) found.push(v);
  const missingFraction = cells.length === 0 ? 0 : missingRows.count / cells.length;
  const maxMissing = rule.max_missing;
  if (maxMissing !== undefined && missingFraction > maxMissing) {
    const v = new Violations("max_missing", maxMissing, keep);
    Object.assign(v, { count: missingRows.count, rows: missingRows.rows, values: missingRows.values });
    found.push(v);
  }
  const report = {
    type,
    inferred: rule.type === undefined,
    present: present.length,
    missing: missingRows.count,
    missing_fraction: missingFraction,
    missing_rows: missingRows.rows,
  };
  if (type === "number" || type === "integer") {
    Object.assign(report, { min, max });
  } else {
    report.distinct = distinct.size;
    if (type === "category") report.categories = [...distinct.keys()].sort();
  }
  report.violations = found.map((v) => v.toJSON());
  report.valid = found.length === 0;
  return report;
}

/** Validates `input.source` against `input.rules`, writes the report to `input.report` and
 * returns a summary. */
export function validateTable(input, ctx) {
  const { source, report: reportPath } = input;
  const rules = input.rules ?? {};
  const missing = new Set(input.missing);
  if (ctx.lastHeartbeat() !== null) {
    // Each attempt starts over: reading and checking are quick, the report is rewritten whole.
    log.info("retrying", { attempt: ctx.attempt, last_heartbeat: ctx.lastHeartbeat() });
  }
  const table = readTable(source);
  if (ctx.heartbeat({ phase: "read", rows: table.rows.length })) throw new Cancelled("cancelled after reading the source");

  let checked = 0;
  const progress = () => {
    checked++;
    if (checked % HEARTBEAT_ROWS === 0 && ctx.heartbeat({ phase: "check", cells: checked })) {
      throw new Cancelled(`cancelled after checking ${checked} cells`);
    }
  };
  const columns = {};
  table.header.forEach((name, index) => {
    const cells = table.rows.map((row) => row[index]);
    columns[name] = checkColumn(cells, rules[name] ?? {}, missing, input.max_rows_listed, progress);
  });
  const absent = Object.keys(rules).filter((name) => !table.header.includes(name));
  const invalid = Object.keys(columns).filter((name) => !columns[name].valid);
  const valid = invalid.length === 0 && absent.length === 0;
  const violations = Object.values(columns).reduce((n, c) => n + c.violations.reduce((m, v) => m + v.count, 0), 0);
  const missingCells = Object.values(columns).reduce((n, c) => n + c.missing, 0);
  const report = {
    source,
    valid,
    rows: table.rows.length,
    columns: table.header.length,
    missing_columns: absent,
    invalid_columns: invalid,
    rules,
    column_reports: columns,
  };

  try {
    files.makeDirs(files.dirname(reportPath));
    files.writeJson(reportPath, report);
  } catch (e) {
    const message = `${e.message}. report must be inside a directory granted read-write (usually /artifacts)`;
    // Failing the same way on every attempt: a path outside the writable grants, or taken.
    if (["ENOENT", "EACCES", "EPERM", "EROFS", "EEXIST", "EISDIR", "ENOTDIR", "EINVAL"].includes(e.code)) {
      throw new InvalidInput("ReportNotWritable", message, { path: reportPath, code: e.code });
    }
    throw new Retryable("ArtifactWriteFailed", message, { path: reportPath, code: e.code ?? null });
  }
  log.info("validation report written", {
    source,
    report: reportPath,
    rows: table.rows.length,
    columns: table.header.length,
    valid,
    violations,
  });
  return {
    valid,
    report: reportPath,
    rows: table.rows.length,
    columns: table.header.length,
    invalid_columns: invalid,
    missing_columns: absent,
    violations,
    missing_cells: missingCells,
    types: Object.fromEntries(Object.entries(columns).map(([name, c]) => [name, c.type])),
  };
}
