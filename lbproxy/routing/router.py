"""First-match routing by host, path prefix, method and header values: the
``router`` hot path of ``lbproxy._fast`` (compiled, or its pure twin
``lbproxy/_fast/router_py.py``, which documents it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lbproxy._fast import load

if TYPE_CHECKING:
    # Type-check against the twin; at run time use whichever load() picks.
    from lbproxy._fast.router_py import Router, normalise_host
else:
    _impl = load("router")
    Router = _impl.Router
    normalise_host = _impl.normalise_host

__all__ = ["Router", "normalise_host"]
