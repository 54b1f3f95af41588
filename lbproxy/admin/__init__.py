"""The admin API server (``admin:`` in the config); see docs/admin.md."""

from lbproxy.admin.api import AdminServer

__all__ = ["AdminServer"]
