"""CPU cost of lbproxy's data path per request, without the kernel.

Drives a real ``ClientConnection`` and ``UpstreamConnection`` with in-memory
transports: each cycle feeds one request into the client side, which picks a
backend and writes upstream through a pooled keep-alive connection, then feeds
the backend's response into the upstream side, which writes it to the client.
What is timed is exactly the Python (and compiled) work lbproxy does per
request: parsing, routing, picking, header rewriting, relaying. Syscalls and
the event loop are not included, so this is repeatable on a noisy machine and
shows what an optimisation of the Python side buys.

    python bench/bench_datapath.py            # compiled hot paths
    LBPROXY_NO_EXTENSIONS=1 python bench/bench_datapath.py
    python bench/bench_datapath.py --metrics --access-log json   # what they add

``--metrics`` counts every request for /metrics, as an ``admin`` section does;
``--access-log json|combined`` formats every line and writes it to a file in a
temporary directory (flushes included).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

import lbproxy
from lbproxy import _fast
from lbproxy.http.accesslog import AccessLogger
from lbproxy.http.client import ClientConnection
from lbproxy.http.listener import ListenerRuntime
from lbproxy.http.pool import PoolRuntime
from lbproxy.http.upstream import UpstreamConnection

CONFIG = """
listeners:
  - name: bench
    bind: "127.0.0.1:0"
    routes:
      - match: {path_prefix: /}
        pool: web
pools:
  web:
    backends:
      - {address: "127.0.0.1:9"}
access_log: {format: "off"}
"""

REQUEST = (
    b"GET /index.html?q=1 HTTP/1.1\r\nHost: www.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) bench\r\n"
    b"Accept: text/html,application/xhtml+xml\r\nAccept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sat, 28 Nov 2026 22:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\n"
    b"hello world\n"
)


class _Transport:
    """Just enough of asyncio.Transport for the protocols."""

    def __init__(self, peer: tuple[str, int]) -> None:
        self.peer = peer
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


def run(n: int, metrics: bool, log_format: str, workdir: Path) -> float:
    loop = uvloop.new_event_loop()  # as in production: its time() is C
    config = lbproxy.parse_config(CONFIG)
    log_cfg = dataclasses.replace(
        config.access_log, format=log_format, path=str(workdir / "access.log")
    )
    pools = {name: PoolRuntime(p) for name, p in config.pools.items()}
    access_log = AccessLogger(log_cfg)
    lr = ListenerRuntime(config.listeners[0], pools, access_log, loop)
    lr.metrics = metrics
    backend = pools["web"].backends[0]
    up = UpstreamConnection(backend)
    up_t = _Transport(("127.0.0.1", 9))
    up.connection_made(up_t)  # type: ignore[arg-type]
    backend.idle.put(up, 0.0)
    client = ClientConnection(lr)
    cl_t = _Transport(("127.0.0.1", 40000))
    client.connection_made(cl_t)  # type: ignore[arg-type]
    feed_client = client.data_received
    feed_up = up.data_received
    request, response = REQUEST, RESPONSE
    for _ in range(1000):  # warm up
        feed_client(request)
        feed_up(response)
    start = time.perf_counter()
    for _ in range(n):
        feed_client(request)
        feed_up(response)
    access_log.flush()
    elapsed = time.perf_counter() - start
    assert cl_t.written > 0 and up_t.written > 0 and backend.idle.conns
    access_log.close()
    loop.close()
    return elapsed / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=100_000, help="requests per repeat")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--metrics", action="store_true", help="count requests for /metrics")
    ap.add_argument("--access-log", default="off", choices=["off", "json", "combined"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        best = min(run(args.n, args.metrics, args.access_log, Path(d)) for _ in range(args.repeat))
    print(f"hot paths: {_fast.describe()}")
    extras = f"metrics {'on' if args.metrics else 'off'}, access log {args.access_log}"
    print(f"data path, one request/response cycle ({extras}): {best:.2f} us", end="")
    print(f" (best of {args.repeat})")


if __name__ == "__main__":
    main()
