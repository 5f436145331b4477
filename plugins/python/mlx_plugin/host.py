"""The host behind the SDK: the worker's `mlx:plugin/*` imports inside a component, or a
stand-in natively (unit tests, a REPL).

Plugin code does not use this module directly: `Context`, `mlx_plugin.log` and
`mlx_plugin.config` go through the current host. Tests swap it with
`mlx_plugin.testing.FakeHost`.
"""

import sys
from typing import List, Optional, Tuple

LEVELS = ("trace", "debug", "info", "warn", "error")

Fields = List[Tuple[str, str]]


class Host:
    """What the SDK needs from the worker. Methods mirror `wit/plugin.wit`."""

    def log(self, level: str, message: str, fields: Fields) -> None:
        raise NotImplementedError

    def heartbeat(self, details: str) -> bool:
        raise NotImplementedError

    def is_cancelled(self) -> bool:
        raise NotImplementedError

    def config(self, key: str) -> Optional[str]:
        raise NotImplementedError

    def secret(self, name: str) -> Optional[str]:
        raise NotImplementedError


class WitHost(Host):
    """The worker, through the component's imports (bindings componentize-py generates)."""

    def __init__(self):
        from wit_world.imports import activity, config, log

        self._activity, self._config, self._log = activity, config, log
        self._levels = {
            "trace": log.Level.TRACE,
            "debug": log.Level.DEBUG,
            "info": log.Level.INFO,
            "warn": log.Level.WARN,
            "error": log.Level.ERROR,
        }

    def log(self, level, message, fields):
        field = self._log.Field
        self._log.log(self._levels[level], message, [field(k, v) for k, v in fields])

    def heartbeat(self, details):
        return self._activity.heartbeat(details)

    def is_cancelled(self):
        return self._activity.is_cancelled()

    def config(self, key):
        return self._config.get(key)

    def secret(self, name):
        return self._config.get_secret(name)


class StderrHost(Host):
    """Off the worker: log lines go to stderr, heartbeats are dropped, nothing is granted."""

    def log(self, level, message, fields):
        rendered = "".join(f" {k}={v}" for k, v in fields)
        print(f"[{level}] {message}{rendered}", file=sys.stderr)

    def heartbeat(self, details):
        return False

    def is_cancelled(self):
        return False

    def config(self, key):
        return None

    def secret(self, name):
        return None


def _default() -> Host:
    # componentize-py's CPython reports the platform as "wasi"; there the bindings exist.
    if sys.platform == "wasi":
        return WitHost()
    return StderrHost()


_current: Host = _default()


def current() -> Host:
    """The host the SDK talks to now."""
    return _current


def install(host: Host) -> Host:
    """Makes `host` the current host; returns the previous one (to restore)."""
    global _current
    previous, _current = _current, host
    return previous
