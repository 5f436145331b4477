"""Native tests of plugin operations, without the worker or the component toolchain.

```python
from mlx_plugin.testing import FakeHost, invoke

host = FakeHost(config={"region": "eu"}, secrets={"token": "t"}, cancel_after=3)
result = invoke(app, "greet", {"name": "Ada"}, host=host, attempt=2,
                last_heartbeat={"row": 10})
assert result.output == {...}          # or result.error.kind / .type_name / .details
assert host.heartbeats == [...] and host.logs[0].message == "greeting"
```

`invoke` runs exactly what the component's `invoke` export runs (JSON text both ways, input
check, error mapping), with `host` standing in for the worker.
"""

import contextlib
import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from . import host as _host
from .app import App
from .context import Context
from .errors import PluginError


@dataclass
class LogLine:
    level: str
    message: str
    fields: Dict[str, str]


class FakeHost(_host.Host):
    """Records log lines (`logs`) and heartbeats (`heartbeats`, decoded); grants `config`
    values and `secrets`; reports cancellation once `cancel()` is called or `cancel_after`
    heartbeats have been recorded."""

    def __init__(
        self,
        config: Optional[Dict[str, str]] = None,
        secrets: Optional[Dict[str, str]] = None,
        cancel_after: Optional[int] = None,
    ):
        self.config_values = dict(config or {})
        self.secrets = dict(secrets or {})
        self.cancel_after = cancel_after
        self.logs: List[LogLine] = []
        self.heartbeats: List[Any] = []
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def log(self, level, message, fields):
        self.logs.append(LogLine(level, message, dict(fields)))

    def heartbeat(self, details):
        self.heartbeats.append(json.loads(details))
        if self.cancel_after is not None and len(self.heartbeats) >= self.cancel_after:
            self.cancelled = True
        return self.cancelled

    def is_cancelled(self):
        return self.cancelled

    def config(self, key):
        return self.config_values.get(key)

    def secret(self, name):
        return self.secrets.get(name)

    @contextlib.contextmanager
    def installed(self):
        """Makes this the current host for the `with` block."""
        previous = _host.install(self)
        try:
            yield self
        finally:
            _host.install(previous)

    def messages(self, level: Optional[str] = None) -> List[str]:
        return [line.message for line in self.logs if level in (None, line.level)]


@dataclass
class Result:
    """How an invocation ended: `output` (a JSON value) or `error` (a `PluginError`)."""

    output: Any = None
    error: Optional[PluginError] = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def unwrap(self) -> Any:
        if self.error is not None:
            raise AssertionError(f"the operation failed: {self.error!r}")
        return self.output


def invoke(
    app: App,
    operation: str,
    input: Any = None,
    *,
    host: Optional[FakeHost] = None,
    attempt: int = 1,
    last_heartbeat: Any = None,
    workflow_id: str = "test-workflow",
    activity_id: str = "test-activity",
) -> Result:
    """Runs `operation` as the worker would and returns how it ended. `last_heartbeat` is the
    previous attempt's checkpoint (a JSON value, or JSON text as a `str`)."""
    if last_heartbeat is not None and not isinstance(last_heartbeat, str):
        last_heartbeat = json.dumps(last_heartbeat)
    ctx = Context(workflow_id, activity_id, attempt, last_heartbeat)
    with (host or FakeHost()).installed():
        try:
            text = app.run(operation, json.dumps(input), ctx)
        except PluginError as error:
            return Result(error=error)
    return Result(output=json.loads(text))
