# Stub for the compiled module; keep in step with ewma_py.py, its twin.
from collections.abc import Callable, Iterable

from lbproxy._fast.balance import _Base
from lbproxy.balance.base import Accept, PickContext

class PeakEwma(_Base):
    def __init__(
        self,
        weights: Iterable[int],
        seed: int | None = None,
        half_life: float = 5.0,
        clock: Callable[[], float] | None = None,
    ) -> None: ...
    def pick(self, ctx: PickContext | None, accept: Accept | None) -> int: ...
    def observe(self, index: int, seconds: float) -> None: ...
    def ewma(self, index: int) -> float: ...
