# Stub for the compiled module; keep in step with chash_py.py, its twin.
from collections.abc import Iterable, Sequence

from lbproxy._fast.balance import _Base
from lbproxy.balance.base import Accept, PickContext

WEIGHT_UNIT: int
POINTS_PER_UNIT: int
MAX_POINTS: int

def key_hash(data: bytes) -> int: ...

class ConsistentHash(_Base):
    def __init__(
        self, weights: Iterable[int], names: Sequence[str], balance_factor: float = 0.0
    ) -> None: ...
    @property
    def balance_factor(self) -> float: ...
    def ring_points(self, index: int) -> int: ...
    def pick(self, ctx: PickContext | None, accept: Accept | None) -> int: ...
