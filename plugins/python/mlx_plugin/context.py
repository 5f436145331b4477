"""Where an invocation comes from, and its channel back to Temporal."""

import json
from typing import Any, Optional

from . import config as _config
from . import host as _host
from . import log as _log
from .errors import Cancelled


class Context:
    """Passed to every operation. A fresh instance serves every invocation, so nothing
    survives between calls except what goes through `heartbeat`: the next attempt reads it
    as `last_heartbeat`.

    ```python
    start = (ctx.last_heartbeat or {}).get("row", 0)    # resume where the last attempt was
    for row in range(start, total):
        ...
        if row % 1000 == 0 and ctx.heartbeat({"row": row}):
            raise Cancelled(f"cancelled at row {row}")
    ```
    """

    def __init__(
        self,
        workflow_id: str = "detached-workflow",
        activity_id: str = "detached-activity",
        attempt: int = 1,
        last_heartbeat_details: Optional[str] = None,
    ):
        self.workflow_id = workflow_id
        self.activity_id = activity_id
        #: 1 for the first attempt, incremented on every retry.
        self.attempt = attempt
        #: The previous attempt's last heartbeat details, as the JSON text it recorded.
        self.last_heartbeat_raw = last_heartbeat_details

    @property
    def last_heartbeat(self) -> Any:
        """The previous attempt's last heartbeat details decoded from JSON: a checkpoint to
        resume from. None if there is none or it is not JSON; then start over."""
        if self.last_heartbeat_raw is None:
            return None
        try:
            return json.loads(self.last_heartbeat_raw)
        except ValueError:
            return None

    def heartbeat(self, details: Any = None) -> bool:
        """Records a Temporal heartbeat whose details (progress and checkpoint) are `details`
        as JSON. Returns True once cancellation has been requested: stop soon (the worker
        interrupts the plugin after a grace period), typically by raising `Cancelled`.

        Details that are not JSON-serialisable are not recorded (a warning is logged); the
        cancellation state is still returned."""
        try:
            text = json.dumps(details, allow_nan=False)
        except (TypeError, ValueError) as e:
            _log.warn("heartbeat details not serializable", error=str(e))
            return self.is_cancelled()
        return _host.current().heartbeat(text)

    def is_cancelled(self) -> bool:
        """True once cancellation of this activity has been requested."""
        return _host.current().is_cancelled()

    def raise_if_cancelled(self, message: str = "cancellation requested") -> None:
        """Raises `Cancelled` once cancellation has been requested."""
        if self.is_cancelled():
            raise Cancelled(message)

    # Shortcuts to the module-level functions, so an operation needs only its context.
    def config(self, key: str, default: Optional[str] = None) -> Optional[str]:
        """The manifest's `[config]` value for `key` (see `mlx_plugin.config.get`)."""
        return _config.get(key, default)

    def secret(self, name: str) -> Optional[str]:
        """The secret granted under `name` (see `mlx_plugin.config.secret`)."""
        return _config.secret(name)

    log = _log

    def __repr__(self) -> str:
        return (
            f"Context(workflow_id={self.workflow_id!r}, activity_id={self.activity_id!r}, "
            f"attempt={self.attempt})"
        )
