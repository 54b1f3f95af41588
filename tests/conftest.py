from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import ModuleType

import pytest

from lbproxy import _fast

# --- fast_impl: run a test against both twins of an lbproxy._fast module ---

FastImpl = Callable[[str], ModuleType]

_DISABLED = "LBPROXY_NO_EXTENSIONS=1: compiled modules disabled"
_NOT_BUILT = (
    "compiled lbproxy._fast.{name} is not importable ({exc}); build it with "
    "`python setup.py build_ext --inplace`, or set LBPROXY_NO_EXTENSIONS=1 "
    "to test the pure twins only"
)


def _load_compiled_or_fail(name: str) -> ModuleType:
    """The compiled module; a missing build fails the test instead of skipping it."""
    try:
        return _fast.load_compiled(name)
    except ImportError as exc:
        pytest.fail(_NOT_BUILT.format(name=name, exc=exc))


@pytest.fixture(
    params=[
        pytest.param("compiled", marks=pytest.mark.skipif(_fast.NO_EXTENSIONS, reason=_DISABLED)),
        "pure",
    ]
)
def fast_impl(request: pytest.FixtureRequest) -> FastImpl:
    """``fast_impl("balance")`` is the compiled module or its pure twin, per param."""
    if request.param == "compiled":
        return _load_compiled_or_fail
    return _fast.load_pure


@pytest.fixture(scope="session")
def compiled_impl() -> FastImpl:
    """The compiled getter alone, for tests that compare it with ``_fast.load_pure``."""
    if _fast.NO_EXTENSIONS:
        pytest.skip(_DISABLED)
    return _load_compiled_or_fail


# --- every async test runs on uvloop, the loop lbproxy runs on in production ---


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    import uvloop

    return {"uvloop": uvloop.new_event_loop}
