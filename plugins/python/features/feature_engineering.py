"""Feature engineering on a CSV table, standard library only: numeric columns are imputed
(mean) and standardised (mean 0, population standard deviation 1, as scikit-learn's
StandardScaler), categorical columns one-hot encoded; the target column is passed through.

Statistics are fitted on the file itself, or taken from an earlier call (`stats`) so that a
test set is transformed exactly as its training set was.
"""

import csv
import errno
import math
import os
from typing import Dict, List, Optional

from mlx_plugin import Cancelled, Context, InvalidInput, Retryable, log

#: Cells that mean "no value", unless the input lists its own.
DEFAULT_MISSING = ["", "NA", "N/A", "NaN", "nan", "null", "None", "?"]

#: Rows between two heartbeats while writing.
HEARTBEAT_ROWS = 5000


class Table:
    def __init__(self, header: List[str], rows: List[List[str]]):
        self.header = header
        self.rows = rows

    def column(self, index: int) -> List[str]:
        return [row[index] for row in self.rows]


def read_table(path: str) -> Table:
    try:
        with open(path, newline="", encoding="utf-8") as file:
            reader = csv.reader(file)
            try:
                header = next(reader)
            except StopIteration:
                raise InvalidInput("NoRows", f"{path} is empty: no header row") from None
            rows = []
            for row in reader:
                if not row:
                    continue  # a blank line, e.g. at the end
                if len(row) != len(header):
                    raise InvalidInput(
                        "MalformedCsv",
                        f"{path} line {reader.line_num}: {len(row)} fields, the header has "
                        f"{len(header)}",
                        details={"path": path, "line": reader.line_num},
                    )
                rows.append(row)
    except (FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError) as e:
        raise InvalidInput(
            "SourceNotFound",
            f"cannot open {path}: {e.strerror or e}. The file must be in the workflow's "
            "/artifacts or a directory granted to the plugin in its manifest (e.g. /data)",
            details={"path": path},
        ) from None
    except UnicodeDecodeError as e:
        raise InvalidInput("MalformedCsv", f"{path} is not UTF-8 text: {e}") from None
    except csv.Error as e:
        raise InvalidInput("MalformedCsv", f"{path}: {e}") from None
    except OSError as e:
        raise Retryable("SourceReadFailed", f"cannot read {path}: {e}") from None
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise InvalidInput(
            "DuplicateColumn", f"{path}: columns named more than once: {duplicates}"
        )
    if not rows:
        raise InvalidInput("NoRows", f"{path} has a header but no rows")
    return Table(header, rows)


def parse_number(cell: str) -> Optional[float]:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def fit_numeric(cells: List[str], missing: set) -> Dict[str, float]:
    values = [float(c) for c in cells if c not in missing]
    mean = math.fsum(values) / len(values)
    variance = math.fsum((v - mean) ** 2 for v in values) / len(values)
    return {"mean": mean, "std": math.sqrt(variance)}


def fit(table: Table, target: Optional[str], categorical: List[str], missing: set) -> dict:
    """Statistics of every column but the target: numeric when each present cell is a finite
    number (and the column is not listed in `categorical`), categorical otherwise."""
    stats = {"numeric": {}, "categorical": {}}
    dropped = []
    for index, name in enumerate(table.header):
        if name == target:
            continue
        cells = table.column(index)
        present = [c for c in cells if c not in missing]
        if not present:
            dropped.append(name)
            continue
        numeric = name not in categorical and all(parse_number(c) is not None for c in present)
        if numeric:
            stats["numeric"][name] = fit_numeric(cells, missing)
        else:
            stats["categorical"][name] = {"categories": sorted(set(present))}
    return {"stats": stats, "dropped": dropped}


def check_stats(stats: dict, table: Table, target: Optional[str]) -> None:
    known = set(stats.get("numeric", {})) | set(stats.get("categorical", {}))
    absent = sorted(known - set(table.header))
    if absent:
        raise InvalidInput(
            "ColumnNotFound",
            f"columns in stats but not in the file: {absent}",
            details={"columns": absent},
        )
    for name, s in stats.get("numeric", {}).items():
        if not isinstance(s, dict) or not all(
            isinstance(s.get(k), (int, float)) and math.isfinite(s[k]) for k in ("mean", "std")
        ):
            raise InvalidInput(
                "InvalidStats", f"stats.numeric[{name!r}] needs finite numbers mean and std"
            )
    for name, s in stats.get("categorical", {}).items():
        if not isinstance(s, dict) or not isinstance(s.get("categories"), list):
            raise InvalidInput(
                "InvalidStats", f"stats.categorical[{name!r}] needs a list of categories"
            )


def write_error(path: str, e: OSError) -> Exception:
    message = (
        f"writing {path}: {e.strerror or e}. output must be inside a directory granted "
        "read-write (usually /artifacts)"
    )
    # Failing the same way on every attempt: a path outside the writable grants, or taken.
    same_every_time = (
        FileNotFoundError,
        PermissionError,
        FileExistsError,
        IsADirectoryError,
        NotADirectoryError,
    )
    if isinstance(e, same_every_time) or e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return InvalidInput("OutputNotWritable", message, details={"path": path})
    return Retryable("ArtifactWriteFailed", message, details={"path": path})


def engineer(input: dict, ctx: Context) -> dict:
    source, output, target = input["source"], input["output"], input.get("target")
    missing = set(input["missing"])
    if ctx.last_heartbeat is not None:
        # Each attempt starts over: the work is short and its output is rewritten whole.
        log.info("retrying", attempt=ctx.attempt, last_heartbeat=ctx.last_heartbeat)
    table = read_table(source)
    if target is not None and target not in table.header:
        raise InvalidInput(
            "ColumnNotFound",
            f"no column {target!r} in {source}; its columns: {table.header}",
            details={"column": target},
        )
    unknown = sorted(set(input["categorical"]) - set(table.header))
    if unknown:
        raise InvalidInput(
            "ColumnNotFound", f"categorical names columns not in {source}: {unknown}"
        )
    if ctx.heartbeat({"phase": "read", "rows": len(table.rows)}):
        raise Cancelled("cancelled after reading the source")

    given = input.get("stats")
    if given is not None:
        check_stats(given, table, target)
        stats = {
            "numeric": {k: dict(v) for k, v in given.get("numeric", {}).items()},
            "categorical": {
                k: {"categories": [str(c) for c in v["categories"]]}
                for k, v in given.get("categorical", {}).items()
            },
        }
        covered = set(stats["numeric"]) | set(stats["categorical"]) | {target}
        dropped = [name for name in table.header if name not in covered]
    else:
        fitted = fit(table, target, input["categorical"], missing)
        stats, dropped = fitted["stats"], fitted["dropped"]
    for name in dropped:
        log.warn("column dropped", column=name, reason="no statistics (every value missing?)")

    # Output layout: numeric columns and one-hot columns in the source's order, target last.
    plan = []  # (source index, kind, extra)
    columns: List[str] = []
    for index, name in enumerate(table.header):
        if name in stats["numeric"]:
            fitted = stats["numeric"][name]
            scale = {"mean": fitted["mean"], "std": fitted["std"], "impute": fitted["mean"]}
            if not input["standardize"]:
                scale.update(mean=0.0, std=1.0)
            plan.append((index, "numeric", scale))
            columns.append(name)
        elif name in stats["categorical"]:
            categories = stats["categorical"][name]["categories"]
            if input["one_hot"]:
                plan.append((index, "one_hot", {c: i for i, c in enumerate(categories)}))
                columns += [f"{name}={c}" for c in categories]
            else:
                plan.append((index, "raw", None))
                columns.append(name)
    if target is not None:
        plan.append((table.header.index(target), "raw", None))
        columns.append(target)

    imputed = {name: 0 for name in stats["numeric"]}
    unseen = {name: 0 for name in stats["categorical"]}
    missing_categorical = {name: 0 for name in stats["categorical"]}
    out_rows = []
    for row_number, row in enumerate(table.rows, start=1):
        out = []
        for index, kind, extra in plan:
            cell = row[index]
            name = table.header[index]
            if kind == "numeric":
                value = None if cell in missing else parse_number(cell)
                if value is None:
                    if cell not in missing:
                        raise InvalidInput(
                            "NonNumericValue",
                            f"{source} row {row_number}, column {name!r}: {cell!r} is not a "
                            "number (the column is numeric in stats)",
                            details={"row": row_number, "column": name, "value": cell},
                        )
                    imputed[name] += 1
                    value = extra["impute"]
                std = extra["std"]
                out.append(repr((value - extra["mean"]) / std if std > 0 else 0.0))
            elif kind == "one_hot":
                hot = [0] * len(extra)
                if cell in missing:
                    missing_categorical[name] += 1
                elif cell in extra:
                    hot[extra[cell]] = 1
                else:
                    unseen[name] += 1
                out += [str(h) for h in hot]
            else:
                out.append(cell)
        out_rows.append(out)
        if row_number % HEARTBEAT_ROWS == 0 and ctx.heartbeat(
            {"phase": "transform", "rows": row_number}
        ):
            raise Cancelled(f"cancelled at row {row_number}")

    directory = os.path.dirname(output)
    try:
        if directory:
            os.makedirs(directory, exist_ok=True)
        with open(output, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows(out_rows)
    except OSError as e:
        raise write_error(output, e) from None

    log.info(
        "features written",
        path=output,
        rows=len(out_rows),
        columns=len(columns),
        imputed=sum(imputed.values()),
    )
    return {
        "path": output,
        "rows": len(out_rows),
        "columns": columns,
        "target": target,
        "stats": stats,
        "imputed": imputed,
        "missing_categorical": missing_categorical,
        "unseen_categories": unseen,
        "dropped": dropped,
        "fitted": given is None,
    }
