"""Errors a plugin raises on purpose, each mapped to a case of the WIT `plugin-error` variant.

```python
from mlx_plugin import InvalidInput, Retryable, Permanent

raise InvalidInput("ColumnNotFound", f"no column {name!r}", details={"column": name})
```

`type_name` is stable and machine-readable (it becomes the Temporal application failure type,
so retry policies and workflows can match on it); `message` tells a person what went wrong and
what to fix; `details` is anything JSON-serialisable.

Any other exception escaping an operation is a bug in the plugin: the SDK turns it into a
`Permanent` error of type `UncaughtException` (see `uncaught`), never a trap, so it is not
retried as if it could succeed.
"""

import json
import traceback
from typing import Any, Optional

INVALID_INPUT = "invalid_input"
RETRYABLE = "retryable"
PERMANENT = "permanent"

#: The type name of an exception the plugin did not handle.
UNCAUGHT_EXCEPTION = "UncaughtException"


class PluginError(Exception):
    """An error the plugin returns to the host. Use a subclass: `InvalidInput`, `Retryable`
    or `Permanent`."""

    kind = PERMANENT

    def __init__(self, type_name: str, message: str, details: Any = None):
        if not isinstance(type_name, str) or not type_name:
            raise TypeError("type_name must be a non-empty string, e.g. 'ColumnNotFound'")
        super().__init__(message)
        self.type_name = type_name
        self.message = str(message)
        self.details = details

    def details_json(self) -> Optional[str]:
        """`details` as JSON text (what the WIT `error-info` carries); a value that is not
        JSON-serialisable is sent as its `repr` rather than lost."""
        if self.details is None:
            return None
        try:
            return json.dumps(self.details, allow_nan=False, default=repr)
        except ValueError:
            return json.dumps({"repr": repr(self.details)})

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.type_name!r}, {self.message!r}, "
            f"details={self.details!r})"
        )


class InvalidInput(PluginError):
    """The input does not satisfy the operation's contract. Never retried: the caller must
    change the request."""

    kind = INVALID_INPUT


class Retryable(PluginError):
    """A transient failure: the same request may succeed later. Retried according to the
    activity's retry policy."""

    kind = RETRYABLE


class Permanent(PluginError):
    """A failure that retrying cannot fix. Never retried."""

    kind = PERMANENT


class Cancelled(Retryable):
    """The plugin stopped because cancellation was requested (`Context.heartbeat` returned
    true, or `Context.is_cancelled()`). Retryable, so that if the workflow retries after all,
    the next attempt can resume from the last heartbeat."""

    def __init__(self, message: str = "cancellation requested", details: Any = None):
        super().__init__("Cancelled", message, details)


def unknown_operation(operation: str, known: list) -> InvalidInput:
    return InvalidInput(
        "UnknownOperation",
        f"this plugin has no operation {operation!r}; its operations: {', '.join(known)}",
    )


def uncaught(error: BaseException, operation: str) -> Permanent:
    """The `Permanent` error for an exception the operation did not handle: the message is
    the exception's type and text, the details hold the traceback (and where it was raised)."""
    kind = type(error)
    name = kind.__qualname__
    if kind.__module__ not in ("builtins", "__main__"):
        name = f"{kind.__module__}.{name}"
    text = str(error)
    frames = traceback.extract_tb(error.__traceback__)
    where = None
    if frames:
        last = frames[-1]
        where = {"file": last.filename, "line": last.lineno, "function": last.name}
    return Permanent(
        UNCAUGHT_EXCEPTION,
        f"{name}: {text}" if text else name,
        details={
            "exception": name,
            "message": text,
            "operation": operation,
            "where": where,
            "traceback": "".join(
                traceback.format_exception(kind, error, error.__traceback__)
            ),
        },
    )
