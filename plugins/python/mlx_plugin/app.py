"""`App`: a plugin's operations, declared in one place, and the dispatch the component's
`invoke` export runs."""

import inspect
import json
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Union

from . import schema as _schema
from .context import Context
from .errors import InvalidInput, Permanent, PluginError, uncaught, unknown_operation


@dataclass
class Operation:
    """One operation: what `describe` publishes, and the function behind it."""

    name: str
    description: str
    input_schema: dict
    output_schema: dict
    handler: Callable[..., Any]
    #: Type names of the errors it raises on purpose (published in its description).
    errors: List[str] = field(default_factory=list)
    #: Whether the SDK checks the input against `input_schema` (and fills in defaults).
    validate_input: bool = True
    takes_context: bool = True


_KIND_NAMES = {"invalid_input": "InvalidInput", "retryable": "Retryable", "permanent": "Permanent"}


def _paragraphs(doc: str) -> str:
    """A docstring as a description: each paragraph on one line, paragraphs apart."""
    paragraphs = textwrap.dedent(doc).strip().split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def _describe_errors(errors) -> str:
    if isinstance(errors, dict):
        return "; ".join(
            f"{_KIND_NAMES.get(kind, kind)} {', '.join(names)}" for kind, names in errors.items()
        )
    return ", ".join(errors)


def _error_names(errors) -> List[str]:
    if isinstance(errors, dict):
        return [name for names in errors.values() for name in names]
    return list(errors or [])


class App:
    """A plugin: its name, version, description and operations.

    ```python
    from mlx_plugin import App, Context, InvalidInput, schema

    app = App("hello", "0.1.0", "Greets people.")

    @app.operation(
        input_schema=schema.object({"name": schema.string()}, required=["name"]),
        output_schema=schema.object({"greeting": schema.string()}),
    )
    def greet(input: dict, ctx: Context) -> dict:
        \"\"\"Returns a greeting.\"\"\"
        return {"greeting": f"Hello, {input['name']}!"}

    # componentize-py exports the class named after the WIT interface: `Plugin`.
    Plugin = app.export()
    ```
    """

    def __init__(self, name: str, version: str, description: str = ""):
        self.name = name
        self.version = version
        self.description = description
        self.operations: Dict[str, Operation] = {}

    def operation(
        self,
        name: Optional[str] = None,
        *,
        description: Optional[str] = None,
        input_schema: Optional[dict] = None,
        output_schema: Optional[dict] = None,
        errors: Union[List[str], Dict[str, List[str]], None] = None,
        validate_input: bool = True,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Declares the decorated function as an operation. `name` defaults to the function's
        name and `description` to its docstring. The function takes `(input, ctx)` (or just
        `input`) and returns anything JSON-serialisable; it raises `InvalidInput`,
        `Retryable` or `Permanent` for errors it means. `errors` lists the type names of
        those, or maps each kind (`invalid_input`, `retryable`, `permanent`) to its names."""

        def register(function: Callable[..., Any]) -> Callable[..., Any]:
            op_name = name or function.__name__
            if op_name in self.operations:
                raise ValueError(f"operation {op_name!r} is declared twice")
            text = description
            if text is None:
                text = _paragraphs(function.__doc__ or "")
            if errors:
                text = f"{text} Errors: {_describe_errors(errors)}.".strip()
            parameters = [
                p
                for p in inspect.signature(function).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
            for what, value in (("input_schema", input_schema), ("output_schema", output_schema)):
                if value is not None:
                    # Fails at build time, not in the worker, if a schema is not JSON.
                    json.dumps(value, allow_nan=False)
            self.operations[op_name] = Operation(
                name=op_name,
                description=text,
                input_schema=input_schema if input_schema is not None else {},
                output_schema=output_schema if output_schema is not None else {},
                handler=function,
                errors=_error_names(errors),
                validate_input=validate_input,
                takes_context=len(parameters) >= 2,
            )
            return function

        return register

    def info(self) -> dict:
        """The self-description `describe` returns, schemas as JSON values."""
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "operations": [
                {
                    "name": op.name,
                    "description": op.description,
                    "input_schema": op.input_schema,
                    "output_schema": op.output_schema,
                }
                for op in self.operations.values()
            ],
        }

    def call(self, operation: str, input: Any, ctx: Context) -> Any:
        """Runs `operation` on `input` (a JSON value) and returns its output value. Errors
        the plugin means propagate as `PluginError`; anything else it raises becomes a
        `Permanent` `UncaughtException` with the traceback in its details. `MemoryError` is
        re-raised: the worker reports a memory limit itself, better than the plugin can."""
        op = self.operations.get(operation)
        if op is None:
            raise unknown_operation(operation, list(self.operations))
        if input is None:
            input = {}
        if op.validate_input:
            problems = _schema.validate(input, op.input_schema)
            if problems:
                raise InvalidInput(
                    "InvalidInput",
                    f"invalid input: {'; '.join(problems)}",
                    details={"problems": problems},
                )
        try:
            if op.takes_context:
                return op.handler(input, ctx)
            return op.handler(input)
        except PluginError:
            raise
        except MemoryError:
            raise
        except BaseException as error:  # SystemExit, KeyboardInterrupt too: never a trap
            raise uncaught(error, operation) from None

    def run(self, operation: str, input_text: str, ctx: Context) -> str:
        """What the component's `invoke` export does: JSON text in, JSON text out; raises
        `PluginError` for every failure."""
        try:
            input = json.loads(input_text)
        except ValueError as e:
            raise InvalidInput("InvalidJson", f"input is not valid JSON: {e}") from None
        output = self.call(operation, input, ctx)
        try:
            return json.dumps(output, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise Permanent(
                "InvalidOutput",
                f"operation {operation!r} returned a value that is not JSON: {e}",
                details={"type": type(output).__name__},
            ) from None

    def export(self) -> Optional[type]:
        """The class componentize-py exports as `mlx:plugin/plugin`: bind it to the name
        `Plugin` in the component's main module (`Plugin = app.export()`). None outside a
        component build (no bindings to export through), so the module imports natively."""
        try:
            from ._wit import export
        except ImportError:
            if sys.platform == "wasi":
                raise
            return None
        return export(self)
