"""Request routing: which target serves a request."""

from lbproxy.routing.router import Router

__all__ = ["Router"]
