"""The data path: client and upstream HTTP/1.1 protocols and what joins them.

``client.py``, ``exchange.py``, ``upstream.py``, ``pool.py``, ``accesslog.py``
and ``listener.py`` are plain Python, and ``setup.py`` also compiles them with Cython into
extension modules of the same names: the ``.pxd`` beside each declares its
classes as extension types with typed attributes and C-level calls between
them, which is where the per-request time goes (attribute access and method
calls, not arithmetic). The ``.py`` files are thus their own pure-Python twins.

Python's import system would always prefer the extension, so this package
decides instead, once, for all of them together (a compiled exchange expects a
compiled client, upstream, pool and listener, so they cannot be mixed):

- ``LBPROXY_NO_EXTENSIONS=1`` forces the sources;
- an extension older than its source (the ``.py`` was edited since the last
  build, as happens in an editable install) is stale and not trusted: the
  sources are used, with a warning, so an edit is never silently ignored;
- an extension that fails to import (built for another interpreter, say)
  falls back to the sources with a warning, as ``lbproxy._fast`` does.

``IMPLEMENTATION`` says which was chosen; the startup log shows it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

from lbproxy import _fast

__all__ = ["DATAPATH_MODULES", "IMPLEMENTATION"]

# Import order matters when compiled: each module's init first imports the
# extension types it cimports, which forms a cycle. Starting from client, each
# module body runs only after the modules it imports names from (upstream,
# then exchange) have finished.
DATAPATH_MODULES = ("client", "exchange", "upstream", "pool", "accesslog", "listener", "primitives")

_HERE = Path(__file__).resolve().parent
_MTIME_SLACK = 2.0  # seconds


class _DatapathFinder(importlib.abc.MetaPathFinder):
    """Resolves the data path modules to the implementation chosen below."""

    def __init__(self) -> None:
        self.compiled = False

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != __name__ or name not in DATAPATH_MODULES:
            return None
        if self.compiled:
            ext = _extension_path(name)
            if ext is not None:
                loader = importlib.machinery.ExtensionFileLoader(fullname, str(ext))
                return importlib.util.spec_from_file_location(fullname, ext, loader=loader)
        return importlib.util.spec_from_file_location(fullname, _HERE / f"{name}.py")


def _extension_path(name: str) -> Path | None:
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = _HERE / f"{name}{suffix}"
        if candidate.exists():
            return candidate
    return None


def _stale_reason() -> str | None:
    """Why the compiled modules cannot be used, or None if they can."""
    for name in DATAPATH_MODULES:
        ext = _extension_path(name)
        if ext is None:
            return "not built"
        source = _HERE / f"{name}.py"
        # The slack absorbs installers that write a package's files in any
        # order within the same moment; an edit after a build comes later.
        if source.exists() and source.stat().st_mtime > ext.stat().st_mtime + _MTIME_SLACK:
            return f"{ext.name} is older than {source.name} (rebuild with `pip install -e .`)"
    return None


def _choose() -> _fast.Implementation:
    finder = _DatapathFinder()
    sys.meta_path.insert(0, finder)
    if _fast.NO_EXTENSIONS:
        return "pure"
    reason = _stale_reason()
    if reason is None:
        finder.compiled = True
        try:
            for name in DATAPATH_MODULES:
                importlib.import_module(f"{__name__}.{name}")
            return "compiled"
        except ImportError as exc:
            reason = f"import failed: {exc}"
            finder.compiled = False
            for name in DATAPATH_MODULES:
                sys.modules.pop(f"{__name__}.{name}", None)
    if reason != "not built":
        warnings.warn(
            f"lbproxy: compiled data path not used ({reason}); using the pure-Python twins",
            _fast.ExtensionImportWarning,
            stacklevel=2,
        )
    return "pure"


IMPLEMENTATION: _fast.Implementation = _choose()
_fast.record("datapath", IMPLEMENTATION)
