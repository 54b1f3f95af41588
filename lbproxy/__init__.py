"""lbproxy: an HTTP/1.1 load balancer and reverse proxy on asyncio + uvloop.

Embedding::

    import lbproxy
    config = lbproxy.load_config("lb.yaml")
    async with lbproxy.Proxy(config) as proxy:
        ...
    lbproxy.run(config)   # blocking, like the CLI
"""

from __future__ import annotations

__version__ = "0.1.0"

from lbproxy.config import ConfigError, load_config, parse_config
from lbproxy.config.model import Config
from lbproxy.proxy import BindError, Proxy


def run(config: Config) -> int:
    """Serve ``config`` until SIGTERM/SIGINT, like ``lbproxy --config``; returns an exit code."""
    from lbproxy.cli import run as _run

    return _run(config)


__all__ = [
    "BindError",
    "Config",
    "ConfigError",
    "Proxy",
    "__version__",
    "load_config",
    "parse_config",
    "run",
]
