"""The one exception a config load raises, carrying every problem found."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["ConfigError"]


class ConfigError(Exception):
    """A config file that cannot be used, with every error in it.

    Each entry of ``errors`` reads ``key.path[i]: reason, got "value" (line N)``;
    ``str()`` is one error per line, which is what ``lbproxy --check`` prints.
    """

    def __init__(self, errors: Iterable[str]) -> None:
        self.errors: list[str] = list(errors)
        # args is the list itself so that pickling (a worker reporting a failed
        # reload to its supervisor) rebuilds an equal error.
        super().__init__(self.errors)

    def __str__(self) -> str:
        return "\n".join(self.errors)
