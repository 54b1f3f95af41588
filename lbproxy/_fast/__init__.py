"""Hot paths compiled with Cython, each with a pure-Python twin.

``lbproxy._fast.<name>`` is the compiled module (built from ``<name>.pyx``) and
``lbproxy._fast.<name>_py`` its twin with the same behaviour. Code elsewhere
never imports either directly; it asks ``load(name)``, which returns the
compiled module unless extensions are disabled or were not built. The choice
is made once per module and process, so every caller sees the same one.

``LBPROXY_NO_EXTENSIONS=1`` (or ``true``/``yes``), read when this package is
first imported, forces the twins; the same variable at build time skips
compiling (see ``setup.py``).
"""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType
from typing import Literal

__all__ = [
    "NO_EXTENSIONS",
    "ExtensionImportWarning",
    "describe",
    "implementation",
    "load",
    "load_compiled",
    "load_pure",
    "record",
]

NO_EXTENSIONS: bool = os.environ.get("LBPROXY_NO_EXTENSIONS", "").strip().lower() in {
    "1",
    "true",
    "yes",
}

Implementation = Literal["compiled", "pure"]

_chosen: dict[str, tuple[ModuleType, Implementation]] = {}
_recorded: dict[str, Implementation] = {}


class ExtensionImportWarning(RuntimeWarning):
    """A compiled module exists but failed to import; its twin is used instead."""


def _qualified(name: str) -> str:
    # Only plain module names: "balance", never "balance_py" or a dotted path.
    if not name.isidentifier() or name.endswith("_py"):
        raise ValueError(f"not a _fast module name: {name!r}")
    return f"{__name__}.{name}"


def load_compiled(name: str) -> ModuleType:
    """The compiled module, ignoring NO_EXTENSIONS; ImportError if not built."""
    return importlib.import_module(_qualified(name))


def load_pure(name: str) -> ModuleType:
    """The pure-Python twin."""
    return importlib.import_module(_qualified(name) + "_py")


def _choose(name: str) -> tuple[ModuleType, Implementation]:
    if not NO_EXTENSIONS:
        try:
            return load_compiled(name), "compiled"
        except ModuleNotFoundError as exc:
            # Not built is normal (no compiler, LBPROXY_NO_EXTENSIONS at build
            # time); a module the extension itself imports being absent is not.
            if exc.name != _qualified(name):
                _warn(name, exc)
        except ImportError as exc:
            # Built for another Python, missing symbol, stale .so: say so, but
            # a proxy that runs slower beats one that does not start.
            _warn(name, exc)
    return load_pure(name), "pure"


def _warn(name: str, exc: ImportError) -> None:
    warnings.warn(
        f"lbproxy: compiled {_qualified(name)} failed to import ({exc}); "
        "using the pure-Python twin",
        ExtensionImportWarning,
        stacklevel=4,
    )


def load(name: str) -> ModuleType:
    """The implementation of ``lbproxy._fast.<name>`` this process uses."""
    chosen = _chosen.get(name)
    if chosen is None:
        chosen = _chosen[name] = _choose(name)
    return chosen[0]


def implementation(name: str) -> Implementation:
    """Which implementation ``load(name)`` returns: "compiled" or "pure"."""
    load(name)
    return _chosen[name][1]


def record(name: str, impl: Implementation) -> None:
    """Note a hot path compiled outside this package (the data path, see
    ``lbproxy.http``) so that ``describe`` reports it too."""
    _recorded[name] = impl


def describe() -> str:
    """One line for the startup log: which modules run compiled, which as twins."""
    impls = {name: impl for name, (_, impl) in _chosen.items()} | _recorded
    parts = [f"{name} {impl}" for name, impl in sorted(impls.items())]
    if NO_EXTENSIONS:
        return "pure-Python twins forced by LBPROXY_NO_EXTENSIONS; " + ", ".join(parts)
    return ", ".join(parts) if parts else "none loaded"
