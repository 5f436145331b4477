"""`contract-python`: the operations of plugins/CONTRACT.md, written with the Python SDK the way
a plugin author would. `tests/tests/e2e/contract.rs` runs the same table of cases against this
plugin and its Rust and JavaScript twins, so every SDK keeps the same behaviour. The
component's main module: componentize-py exports `Plugin` from here.
"""

import socket
import time

from mlx_plugin import App, Cancelled, Context, InvalidInput, Permanent, Retryable, log, schema

app = App(
    "contract-python",
    "0.1.0",
    "The contract operations (plugins/CONTRACT.md) in Python: one behaviour in every language.",
)

_ERRORS = {"invalid_input": InvalidInput, "retryable": Retryable, "permanent": Permanent}


@app.operation(
    input_schema=schema.object(
        {"value": {}, "times": schema.integer(minimum=1, maximum=10, default=1)},
        required=["value"],
    ),
    output_schema=schema.object(
        {"value": {}, "times": schema.integer(), "attempt": schema.integer(minimum=1)},
        required=["value", "times", "attempt"],
    ),
)
def echo(input: dict, ctx: Context) -> dict:
    """Returns its input and the attempt number; does nothing else (the trivial call the
    benchmarks time)."""
    return {"value": input["value"], "times": input["times"], "attempt": ctx.attempt}


@app.operation(
    input_schema=schema.object(
        {
            "kind": schema.string(enum=sorted(_ERRORS)),
            "type": schema.string(minLength=1),
            "message": schema.string(),
            "details": {"type": "object"},
        },
        required=["kind", "type", "message"],
    ),
    output_schema={},
)
def fail(input: dict) -> dict:
    """Fails with the SDK's typed error of `kind`, with the given `type`, `message` and
    `details`."""
    raise _ERRORS[input["kind"]](input["type"], input["message"], details=input.get("details"))


@app.operation(
    "throw",
    input_schema=schema.object({"message": schema.string()}, required=["message"]),
    output_schema={},
)
def throw(input: dict) -> dict:
    """Raises ValueError(message) without handling it: the SDK reports a permanent
    UncaughtException with the traceback in its details."""
    raise ValueError(input["message"])


@app.operation(
    input_schema=schema.object(
        {
            "steps": schema.integer(minimum=1, maximum=1000),
            "fail_at": schema.integer("On the first attempt, fail after this step's heartbeat."),
        },
        required=["steps"],
    ),
    output_schema=schema.object(
        {
            "resumed_from": schema.integer(minimum=0),
            "done": schema.integer(),
            "attempt": schema.integer(minimum=1),
        },
        required=["resumed_from", "done", "attempt"],
    ),
    errors={"retryable": ["Interrupted"]},
)
def checkpoint(input: dict, ctx: Context) -> dict:
    """Heartbeats {"done": i} for each step after the last attempt's checkpoint; on the first
    attempt, fails (retryably) right after step `fail_at`, so a retry resumes there."""
    last = ctx.last_heartbeat
    resumed_from = last.get("done", 0) if isinstance(last, dict) else 0
    for i in range(resumed_from + 1, input["steps"] + 1):
        ctx.heartbeat({"done": i})
        if input.get("fail_at") == i and ctx.attempt == 1:
            raise Retryable("Interrupted", f"interrupted after step {i}", details={"done": i})
    return {"resumed_from": resumed_from, "done": input["steps"], "attempt": ctx.attempt}


@app.operation(
    input_schema=schema.object(
        {"max_heartbeats": schema.integer(minimum=1, default=100000)},
    ),
    output_schema={},
    errors={"retryable": ["Cancelled"], "permanent": ["NotCancelled"]},
)
def wait_for_cancel(input: dict, ctx: Context) -> dict:
    """Heartbeats {"waiting": i} about every 10 ms until cancellation is requested, then fails
    with Cancelled; NotCancelled after `max_heartbeats`."""
    for i in range(1, input["max_heartbeats"] + 1):
        if ctx.heartbeat({"waiting": i}):
            raise Cancelled(f"cancelled after {i} heartbeats", details={"heartbeats": i})
        time.sleep(0.01)
    raise Permanent(
        "NotCancelled",
        f"no cancellation after {input['max_heartbeats']} heartbeats",
        details={"heartbeats": input["max_heartbeats"]},
    )


@app.operation(
    input_schema=schema.object({"key": schema.string()}, required=["key"]),
    output_schema=schema.object({"value": {"type": ["string", "null"]}}, required=["value"]),
)
def config(input: dict, ctx: Context) -> dict:
    """The manifest's [config] value for `key` (null if not granted)."""
    return {"value": ctx.config(input["key"])}


@app.operation(
    input_schema=schema.object({"name": schema.string()}, required=["name"]),
    output_schema=schema.object(
        {"present": schema.boolean(), "length": {"type": ["integer", "null"]}},
        required=["present", "length"],
    ),
)
def secret(input: dict, ctx: Context) -> dict:
    """Whether the secret `name` is granted, and its length; never its value."""
    value = ctx.secret(input["name"])
    return {"present": value is not None, "length": None if value is None else len(value)}


@app.operation(
    "log",
    input_schema=schema.object(
        {
            "message": schema.string(),
            "fields": {"type": "object", "additionalProperties": schema.string(), "default": {}},
        },
        required=["message"],
    ),
    output_schema=schema.object({"logged": schema.boolean()}, required=["logged"]),
)
def log_message(input: dict) -> dict:
    """Logs `message` at info with `fields`."""
    log.info(input["message"], **input["fields"])
    return {"logged": True}


@app.operation(
    input_schema=schema.object(
        {
            "host": schema.string(default="127.0.0.1"),
            "port": schema.integer(minimum=1, maximum=65535),
        },
        required=["port"],
    ),
    output_schema=schema.object({"connected": schema.boolean()}, required=["connected"]),
)
def connect(input: dict) -> dict:
    """Opens a TCP connection to host:port. Without a grant the worker refuses it
    (CapabilityDenied); the failure escapes as Python's own exception, as it would in a plugin
    that did not expect it."""
    with socket.create_connection((input["host"], input["port"]), timeout=5):
        return {"connected": True}


@app.operation(
    input_schema=schema.object({"path": schema.string()}, required=["path"]),
    output_schema=schema.object({"bytes": schema.integer(minimum=0)}, required=["bytes"]),
    errors={"permanent": ["ReadFailed"]},
)
def read_file(input: dict) -> dict:
    """Reads the whole file at `path` and returns its size; ReadFailed names the OS error."""
    path = input["path"]
    try:
        with open(path, "rb") as file:
            return {"bytes": len(file.read())}
    except OSError as e:
        reason = e.strerror or str(e)
        raise Permanent(
            "ReadFailed",
            f"cannot read {path}: {reason}",
            details={"path": path, "errno": e.errno, "error": reason},
        ) from None


# componentize-py exports the class named after the WIT interface `plugin`.
Plugin = app.export()
