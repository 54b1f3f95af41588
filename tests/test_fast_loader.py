from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from lbproxy import _fast

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import warnings
warnings.simplefilter("error")
from lbproxy import _fast
import lbproxy.balance
print(_fast.NO_EXTENSIONS, _fast.implementation("balance"), _fast.load("balance").__name__,
      type(lbproxy.balance.make_balancer("round_robin", [1])).__module__)
"""


def probe(no_extensions: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "LBPROXY_NO_EXTENSIONS"}
    if no_extensions is not None:
        env["LBPROXY_NO_EXTENSIONS"] = no_extensions
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        check=False,
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.parametrize("value", ["1", "true", "YES", " yes "])
def test_no_extensions_env_forces_the_twin(value: str) -> None:
    assert probe(value) == [
        "True",
        "pure",
        "lbproxy._fast.balance_py",
        "lbproxy._fast.balance_py",
    ]


@pytest.mark.skipif(_fast.NO_EXTENSIONS, reason="LBPROXY_NO_EXTENSIONS=1: may not be built")
@pytest.mark.parametrize("value", [None, "", "0", "no"])
def test_without_the_env_the_compiled_module_is_used(value: str | None) -> None:
    try:
        _fast.load_compiled("balance")
    except ImportError as exc:
        pytest.fail(f"compiled lbproxy._fast.balance not built: {exc}")
    assert probe(value) == [
        "False",
        "compiled",
        "lbproxy._fast.balance",
        "lbproxy._fast.balance",
    ]


def test_missing_compiled_module_falls_back_silently(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_fast, "NO_EXTENSIONS", False)
    monkeypatch.setattr(_fast, "_chosen", {})
    monkeypatch.setattr(_fast, "load_pure", lambda name: _fast)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _fast.load("no_such_module") is _fast
    assert _fast.implementation("no_such_module") == "pure"


def test_broken_compiled_module_warns_and_falls_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A compiled module that exists but cannot import (here: it raises
    # ImportError itself, as a stale .so with a missing symbol would).
    (tmp_path / "broken.py").write_text("raise ImportError('undefined symbol: PyFoo')\n")
    monkeypatch.setattr(_fast, "__path__", [*_fast.__path__, str(tmp_path)])
    monkeypatch.setattr(_fast, "NO_EXTENSIONS", False)
    monkeypatch.setattr(_fast, "_chosen", {})
    monkeypatch.setattr(_fast, "load_pure", lambda name: _fast)
    with pytest.warns(_fast.ExtensionImportWarning, match="undefined symbol: PyFoo"):
        assert _fast.load("broken") is _fast
    assert _fast.implementation("broken") == "pure"


def test_compiled_module_missing_a_dependency_warns(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "needy.py").write_text("import lbproxy_no_such_dependency\n")
    monkeypatch.setattr(_fast, "__path__", [*_fast.__path__, str(tmp_path)])
    monkeypatch.setattr(_fast, "NO_EXTENSIONS", False)
    monkeypatch.setattr(_fast, "_chosen", {})
    monkeypatch.setattr(_fast, "load_pure", lambda name: _fast)
    with pytest.warns(_fast.ExtensionImportWarning, match="lbproxy_no_such_dependency"):
        _fast.load("needy")


@pytest.mark.parametrize("name", ["balance_py", "a.b", ""])
def test_load_rejects_names_that_are_not_fast_modules(name: str) -> None:
    with pytest.raises(ValueError, match="not a _fast module name"):
        _fast.load(name)
