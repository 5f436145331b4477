"""Structured logging into the worker's log. Each line is tagged by the worker with the
invocation's workflow id, activity id, attempt, plugin, operation, version and digest.

```python
from mlx_plugin import log

log.info("features written", rows=150, columns=7)
log.warn("column dropped", column="notes", reason="every value missing")
```

Keyword arguments are the line's fields: strings as they are, numbers and other scalars with
`str`, lists and dicts as JSON. Python's standard `logging` can be routed here too:
`logging.getLogger().addHandler(mlx_plugin.log.Handler())`.

Off the worker (native tests) lines go to stderr, or to `mlx_plugin.testing.FakeHost.logs`.
"""

import json
import logging

from . import host as _host


def _text(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list, tuple, bool)) or value is None:
        try:
            return json.dumps(value, default=str)
        except ValueError:
            return repr(value)
    return str(value)


def log(level: str, message: str, /, **fields) -> None:
    """Logs `message` at `level` (trace, debug, info, warn or error) with `fields`. Positional
    only, so that any name can be a field (`message=`, `level=` too)."""
    if level == "warning":
        level = "warn"
    if level not in _host.LEVELS:
        raise ValueError(f"log level must be one of {', '.join(_host.LEVELS)}, not {level!r}")
    _host.current().log(
        level, str(message), [(str(k), _text(v)) for k, v in fields.items()]
    )


def trace(message: str, /, **fields) -> None:
    log("trace", message, **fields)


def debug(message: str, /, **fields) -> None:
    log("debug", message, **fields)


def info(message: str, /, **fields) -> None:
    log("info", message, **fields)


def warn(message: str, /, **fields) -> None:
    log("warn", message, **fields)


warning = warn


def error(message: str, /, **fields) -> None:
    log("error", message, **fields)


_LEVEL_OF = (
    (logging.ERROR, "error"),
    (logging.WARNING, "warn"),
    (logging.INFO, "info"),
    (logging.DEBUG, "debug"),
)


class Handler(logging.Handler):
    """A `logging` handler writing records into the worker's log, with the logger's name as
    the field `logger` (and the exception, if any, as the field `exception`)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = next((name for at, name in _LEVEL_OF if record.levelno >= at), "trace")
            fields = {"logger": record.name}
            if record.exc_info:
                fields["exception"] = self.formatException(record.exc_info)
            log(level, record.getMessage(), **fields)
        except Exception:  # a log line must never fail the operation
            self.handleError(record)
