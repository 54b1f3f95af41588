"""The compiled data path: declarations in step with the sources, and the
choice between compiled modules and their pure twins (lbproxy/http/__init__.py)."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lbproxy.http
from lbproxy import _fast

HTTP = Path(lbproxy.http.__file__).resolve().parent
PACKAGE = HTTP.parent

needs_compiled = pytest.mark.skipif(
    _fast.NO_EXTENSIONS, reason="LBPROXY_NO_EXTENSIONS=1: compiled modules disabled"
)


def _slots(module: str) -> dict[str, set[str]]:
    tree = ast.parse((HTTP / f"{module}.py").read_text())
    found: dict[str, set[str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for stmt in node.body:
            if (
                isinstance(stmt, ast.Assign)
                and isinstance(stmt.targets[0], ast.Name)
                and stmt.targets[0].id == "__slots__"
            ):
                found[node.name] = set(ast.literal_eval(stmt.value))
    return found


def _pxd_attributes(module: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    current: set[str] | None = None
    for line in (HTTP / f"{module}.pxd").read_text().splitlines():
        m = re.match(r"cdef class (\w+)", line)
        if m:
            current = found.setdefault(m.group(1), set())
            continue
        m = re.match(r"\s+cdef public \w+ (\w+)$", line)
        if m and current is not None:
            current.add(m.group(1))
    return found


@pytest.mark.parametrize("module", lbproxy.http.DATAPATH_MODULES)
def test_pxd_declares_exactly_the_slots(module: str) -> None:
    # A slot missing from the .pxd is an AttributeError only when compiled; an
    # extra one is memory the pure twin does not have.
    assert _pxd_attributes(module) == _slots(module)


@needs_compiled
def test_suite_runs_the_compiled_data_path() -> None:
    assert lbproxy.http.IMPLEMENTATION == "compiled"
    for name in lbproxy.http.DATAPATH_MODULES:
        module = sys.modules[f"lbproxy.http.{name}"]
        assert module.__file__ is not None and not module.__file__.endswith(".py")
    assert "datapath compiled" in _fast.describe()


def _implementation(root: Path, env: dict[str, str] | None = None) -> tuple[str, str]:
    code = (
        "import lbproxy.http as h, lbproxy.http.client as c; "
        "print(h.IMPLEMENTATION, c.__file__.rsplit('.', 1)[-1])"
    )
    proc = subprocess.run(
        [sys.executable, "-W", "always", "-c", code],
        cwd=root,
        env=dict(env or os.environ, PYTHONPATH=str(root)),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout.strip(), proc.stderr


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """A copy of the installed package, compiled modules included, mtimes kept."""
    shutil.copytree(PACKAGE, tmp_path / "lbproxy", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


@needs_compiled
def test_copy_uses_compiled_modules(package_copy: Path) -> None:
    out, err = _implementation(package_copy)
    assert out == "compiled so", err


@needs_compiled
def test_edited_source_is_not_shadowed_by_a_stale_build(package_copy: Path) -> None:
    source = package_copy / "lbproxy" / "http" / "exchange.py"
    later = time.time() + 60
    os.utime(source, (later, later))
    out, err = _implementation(package_copy)
    assert out == "pure py"
    assert "compiled data path not used" in err and "older than exchange.py" in err


def test_no_extensions_forces_the_sources(package_copy: Path) -> None:
    out, err = _implementation(package_copy, dict(os.environ, LBPROXY_NO_EXTENSIONS="1"))
    assert out == "pure py"
    assert "compiled data path not used" not in err  # asked for, not a fallback
