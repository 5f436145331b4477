"""Python SDK for MLX Plugin Worker plugins.

A plugin is a WebAssembly component built with componentize-py against the
`mlx:plugin@0.1.0` contract (`wit/plugin.wit`). With this package a plugin author declares
operations on an `App` and exports it; JSON, errors and the WIT bindings are handled here.

```python
from mlx_plugin import App, Context, InvalidInput, log, schema

app = App("hello", "0.1.0", "Greets people.")

@app.operation(
    input_schema=schema.object({"name": schema.string()}, required=["name"]),
    output_schema=schema.object({"greeting": schema.string()}),
    errors=["EmptyName"],
)
def greet(input: dict, ctx: Context) -> dict:
    \"\"\"Returns a greeting.\"\"\"
    if not input["name"]:
        raise InvalidInput("EmptyName", "name must not be empty")
    log.info("greeting", name=input["name"])
    return {"greeting": f"Hello, {input['name']}!"}

Plugin = app.export()   # componentize-py exports the class named `Plugin`
```

Every invocation runs in a fresh instance: nothing survives between calls except heartbeat
details (`Context.heartbeat`, read back by the next attempt as `Context.last_heartbeat`).
Files are reachable only under directories the operator grants in the plugin's manifest
(typically `/data` read-only) and the workflow's `/artifacts`. Test operations natively with
`mlx_plugin.testing`.
"""

# componentize-py bundles only the standard library modules the build imports, and the codec
# that socket.getaddrinfo, http.client and urllib encode host names with is looked up by name at
# run time: without this, a plugin's network call fails with "LookupError: unknown encoding:
# idna" before it reaches the worker, which would report its missing grant (CapabilityDenied).
import encodings.idna  # noqa: F401

from . import config, log, schema
from .app import App, Operation
from .context import Context
from .errors import (
    UNCAUGHT_EXCEPTION,
    Cancelled,
    InvalidInput,
    Permanent,
    PluginError,
    Retryable,
)

__all__ = [
    "App",
    "Operation",
    "Context",
    "PluginError",
    "InvalidInput",
    "Retryable",
    "Permanent",
    "Cancelled",
    "UNCAUGHT_EXCEPTION",
    "config",
    "log",
    "schema",
]
