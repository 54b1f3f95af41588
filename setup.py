# Older setuptools ship no type information; newer ones do, hence codes, not
# "type: ignore" comments that would turn unused.
# mypy: disable-error-code="import-untyped, misc, no-untyped-call"
"""Builds the optional Cython extensions; all metadata lives in pyproject.toml.

Every ``lbproxy/_fast/<name>.pyx`` becomes the extension ``lbproxy._fast.<name>``,
and the data path modules ``lbproxy/http/{client,exchange,upstream,pool,accesslog,listener}.py`` are
compiled as they are, typed by the ``.pxd`` beside each (see
``lbproxy/http/__init__.py``). Each has a pure-Python twin, so a build that
cannot compile (no Cython, no C compiler, a compile error) warns and installs
the pure package instead of failing.

Environment, read at build time:
  LBPROXY_NO_EXTENSIONS=1       do not compile; install the pure package.
  LBPROXY_REQUIRE_EXTENSIONS=1  fail the build rather than fall back (for CI and
                                wheel builders, where a silent fallback would
                                ship a slow package).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

HERE = Path(__file__).resolve().parent
FAST = Path("lbproxy", "_fast")
HTTP = Path("lbproxy", "http")
DATAPATH = ("client", "exchange", "upstream", "pool", "accesslog", "listener", "primitives")  # lbproxy.http.DATAPATH_MODULES
BUILD_ERRORS = (CCompilerError, ExecError, PlatformError, ImportError)

# boundscheck/wraparound are switched off in each .pyx's header instead, only
# where that module checks its indices itself. Annotations in the compiled .py
# modules are for mypy; their C types come from the .pxd files alone.
COMPILER_DIRECTIVES = {"language_level": 3, "embedsignature": True, "annotation_typing": False}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes"}


def _extensions() -> list[Extension]:
    # Relative paths: setuptools rejects absolute source paths in sdists.
    fast = [
        Extension(f"lbproxy._fast.{pyx.stem}", [str(FAST / pyx.name)])
        for pyx in sorted((HERE / FAST).glob("*.pyx"))
    ]
    datapath = [Extension(f"lbproxy.http.{name}", [str(HTTP / f"{name}.py")]) for name in DATAPATH]
    return fast + datapath


def _warn(reason: object) -> None:
    print(
        f"\nWARNING lbproxy: C extensions not built ({reason}); using pure-Python twins\n",
        file=sys.stderr,
    )


class OptionalBuildExt(build_ext):
    """build_ext that cythonizes lazily and treats compile failures as optional."""

    def finalize_options(self) -> None:
        # Cythonize before setuptools finalizes: it prepares the Extension
        # objects it is handed, and cythonize returns new ones. One module at
        # a time, so that one failing to translate costs only itself.
        try:
            from Cython.Build import cythonize
        except ImportError as exc:
            self._fallback(exc)
            self.distribution.ext_modules = []
            super().finalize_options()
            return
        built = []
        for ext in self.distribution.ext_modules or []:
            try:
                built += cythonize([ext], compiler_directives=COMPILER_DIRECTIVES, quiet=True)
            except Exception as exc:
                # Cython's CompileError is not one of the distutils errors.
                if not type(exc).__module__.startswith("Cython"):
                    raise
                self._fallback(f"{ext.name}: {exc}")
        self.distribution.ext_modules = built
        super().finalize_options()

    def run(self) -> None:
        try:
            super().run()
        except BUILD_ERRORS as exc:
            self._fallback(exc)

    def build_extensions(self) -> None:
        flag = "/O2" if self.compiler.compiler_type == "msvc" else "-O2"
        for ext in self.extensions:
            ext.extra_compile_args = [*ext.extra_compile_args, flag]
        super().build_extensions()

    def build_extension(self, ext: Any) -> None:
        # One module failing must not cost the others: each is optional alone.
        try:
            super().build_extension(ext)
        except BUILD_ERRORS as exc:
            self._fallback(f"{ext.name}: {exc}")

    def _fallback(self, reason: object) -> None:
        if _env_flag("LBPROXY_REQUIRE_EXTENSIONS"):
            raise SystemExit(f"lbproxy: C extensions required but not built: {reason}")
        _warn(reason)


if _env_flag("LBPROXY_NO_EXTENSIONS"):
    _warn("LBPROXY_NO_EXTENSIONS is set")
    setup()
else:
    setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
