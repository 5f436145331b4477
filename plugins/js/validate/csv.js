// CSV text to a header and rows (RFC 4180: quoted fields, doubled quotes, CRLF or LF), for
// tables that fit in memory, which is what one activity should hold anyway.

/** Thrown for text that is not CSV; `line` is 1-based. */
export class CsvError extends Error {
  constructor(message, line) {
    super(message);
    this.line = line;
  }
}

/** `{header, rows, lines}`: `rows[i]` came from file line `lines[i]`; blank lines are skipped. */
export function parseCsv(text) {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const records = [];
  const lines = [];
  let field = "";
  let record = [];
  let line = 1;
  let start = 1;
  let quoted = false;
  let i = 0;
  const endRecord = () => {
    record.push(field);
    if (!(record.length === 1 && record[0] === "")) {
      records.push(record);
      lines.push(start);
    }
    record = [];
    field = "";
  };
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        const next = text[i + 1];
        if (next !== undefined && next !== "," && next !== "\n" && next !== "\r") {
          throw new CsvError(`line ${line}: text after a closing quote`, line);
        }
      } else {
        if (c === "\n") line++;
        field += c;
      }
      i++;
      continue;
    }
    if (c === '"' && field === "") {
      quoted = true;
    } else if (c === ",") {
      record.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      endRecord();
      if (c === "\r" && text[i + 1] === "\n") i++;
      line++;
      start = line;
    } else {
      field += c;
    }
    i++;
  }
  if (quoted) throw new CsvError(`line ${start}: a quoted field is not closed`, start);
  if (field !== "" || record.length > 0) endRecord();
  if (records.length === 0) return { header: null, rows: [], lines: [] };
  return { header: records[0], rows: records.slice(1), lines: lines.slice(1) };
}
