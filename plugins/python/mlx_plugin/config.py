"""What the operator granted this plugin in its manifest: `[config]` values and secrets.

```python
from mlx_plugin import config

region = config.get("region", "eu-west-1")
token = config.secret("api_token")
```

Nothing else of the worker's configuration or environment is visible. Off the worker nothing
is granted (both return the default), unless a test installs `mlx_plugin.testing.FakeHost`.
"""

from typing import Optional

from . import host as _host


def get(key: str, default: Optional[str] = None) -> Optional[str]:
    """The manifest's `[config]` value for `key`, or `default` when there is none."""
    value = _host.current().config(key)
    return default if value is None else value


def secret(name: str) -> Optional[str]:
    """The secret the manifest grants under `name` (`[secrets]`), read by the worker at the
    time of the call; None when none is granted. Keep it out of logs, errors and outputs: the
    worker never reveals it, neither should the plugin."""
    return _host.current().secret(name)
