"""The garbage collector and a running proxy.

Everything built before the first request (modules, the config, route and
address tables, certificates) lives as long as the process, or the config.
Left where it is, it is walked again by every full collection of the cyclic
garbage collector: 16 ms on bench/slowloris.py's plain config, a pause of the
event loop in which no request moves. ``settle()`` collects what start-up
left over, then moves everything alive into the collector's permanent
generation (``gc.freeze``), which no collection walks; objects made later are
collected as before. Only the processes the command line starts call it: a
program that embeds the proxy decides about its own heap.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Freeze what is alive now; call once serving has started, and after a
    reload. The previous freeze is undone first: a reload's old config may
    have become garbage, and frozen garbage in a cycle would never be freed."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
