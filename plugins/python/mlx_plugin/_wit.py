"""The glue between `App` and the bindings componentize-py generates for `plugin-world`.
Imported only inside a component build (or by tests that fake the bindings)."""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types

from .context import Context
from .errors import INVALID_INPUT, RETRYABLE, PluginError, uncaught

_VARIANTS = {
    INVALID_INPUT: types.PluginError_InvalidInput,
    RETRYABLE: types.PluginError_Retryable,
}


def to_wit(error: PluginError):
    """The WIT `plugin-error` case for `error`."""
    info = types.ErrorInfo(error.type_name, error.message, error.details_json())
    return _VARIANTS.get(error.kind, types.PluginError_Permanent)(info)


def export(app) -> type:
    class Plugin(exports.Plugin):
        def describe(self) -> types.PluginInfo:
            return types.PluginInfo(
                app.name,
                app.version,
                app.description,
                [
                    types.OperationInfo(
                        op.name,
                        op.description,
                        json.dumps(op.input_schema),
                        json.dumps(op.output_schema),
                    )
                    for op in app.operations.values()
                ],
            )

        def invoke(self, operation: str, input: str, context: types.InvocationContext) -> str:
            ctx = Context(
                context.workflow_id,
                context.activity_id,
                context.attempt,
                context.last_heartbeat_details,
            )
            try:
                return app.run(operation, input, ctx)
            except PluginError as error:
                raise Err(to_wit(error)) from None
            except MemoryError:
                raise  # a trap: the worker classifies it as its memory limit
            except Exception as error:  # the SDK's own failure, still not a trap
                raise Err(to_wit(uncaught(error, operation))) from None

    return Plugin
