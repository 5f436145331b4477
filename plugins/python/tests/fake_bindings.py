"""Stand-ins for the modules componentize-py generates for `plugin-world` (names and shapes
as `componentize-py -d wit -w plugin-world bindings` writes them), recording every call to
the worker's imports, so the SDK's glue runs natively."""

import sys
import types as pytypes
from dataclasses import dataclass
from enum import Enum
from typing import Generic, List, Optional, TypeVar

E = TypeVar("E")


@dataclass(frozen=True)
class Err(Generic[E], Exception):
    value: E


@dataclass
class OperationInfo:
    name: str
    description: str
    input_schema: str
    output_schema: str


@dataclass
class PluginInfo:
    name: str
    version: str
    description: str
    operations: List[OperationInfo]


@dataclass
class InvocationContext:
    workflow_id: str
    activity_id: str
    attempt: int
    last_heartbeat_details: Optional[str]


@dataclass
class ErrorInfo:
    type_name: str
    message: str
    details: Optional[str]


@dataclass
class PluginError_InvalidInput:
    value: ErrorInfo


@dataclass
class PluginError_Retryable:
    value: ErrorInfo


@dataclass
class PluginError_Permanent:
    value: ErrorInfo


class Level(Enum):
    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4


@dataclass
class Field:
    key: str
    value: str


class Worker:
    """What the fake imports saw, and what they answer."""

    def __init__(self):
        self.logs = []
        self.heartbeats = []
        self.cancelled = False
        self.config = {}
        self.secrets = {}


worker = Worker()


def install() -> Worker:
    """Puts the fake bindings in `sys.modules`; returns the recorder (reset)."""
    global worker
    worker = Worker()

    def module(name, **attrs):
        m = pytypes.ModuleType(name)
        m.__dict__.update(attrs)
        sys.modules[name] = m
        return m

    module("componentize_py_types", Err=Err)
    types = module(
        "wit_world.imports.types",
        OperationInfo=OperationInfo,
        PluginInfo=PluginInfo,
        InvocationContext=InvocationContext,
        ErrorInfo=ErrorInfo,
        PluginError_InvalidInput=PluginError_InvalidInput,
        PluginError_Retryable=PluginError_Retryable,
        PluginError_Permanent=PluginError_Permanent,
    )
    log = module(
        "wit_world.imports.log",
        Level=Level,
        Field=Field,
        log=lambda level, message, fields: worker.logs.append((level, message, fields)),
    )

    def heartbeat(details):
        worker.heartbeats.append(details)
        return worker.cancelled

    activity = module(
        "wit_world.imports.activity",
        heartbeat=heartbeat,
        is_cancelled=lambda: worker.cancelled,
    )
    config = module(
        "wit_world.imports.config",
        get=lambda key: worker.config.get(key),
        get_secret=lambda name: worker.secrets.get(name),
    )
    imports = module(
        "wit_world.imports", types=types, log=log, activity=activity, config=config
    )

    class Plugin:  # the Protocol the export implements
        pass

    exports = module("wit_world.exports", Plugin=Plugin)
    module("wit_world", imports=imports, exports=exports)
    return worker


def uninstall() -> None:
    for name in list(sys.modules):
        generated = name.split(".")[0] in ("wit_world", "componentize_py_types")
        if generated or name == "mlx_plugin._wit":
            del sys.modules[name]
