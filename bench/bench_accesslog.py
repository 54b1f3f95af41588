"""Microseconds per JSON access-log line, the logger alone (no event loop).

    python bench/bench_accesslog.py [--lines 200000]

Formats ``--lines`` lines for a typical small GET into a file in a temporary
directory (flushes included) and prints the cost per line; bench/observability.py
measures the same cost inside the running proxy.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from lbproxy.accesslog import AccessLogger
from lbproxy.config.model import AccessLog


class Fake:
    """Attribute bag that, like the proxy's objects, hashes by identity."""

    def __init__(self, **attrs: object) -> None:
        self.__dict__.update(attrs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--format", default="json", choices=["json", "combined"])
    args = ap.parse_args()
    route = Fake(match=Fake(host=None, path_prefix="/"))
    ex = Fake(
        resp_status=200,
        method=b"GET",
        host=b"127.0.0.1:8080",
        target=b"/index.html?page=2",
        resp_bytes=13,
        started_at=time.monotonic(),
        route=route,
        pool=Fake(name="web"),
        backend=Fake(label="127.0.0.1:9001"),
        user_agent=b"wrk",
        referer=b"",
        attempts=1,
        body_in=0,
        connect_s=0.0,
        sent_at=1.0,
        head_at=1.002,
        reason="",
        request_id=b"",
        traceparent=b"",
    )
    client = Fake(client_ip=b"127.0.0.1")
    with tempfile.TemporaryDirectory() as d:
        log = AccessLogger(AccessLog(format=args.format, path=str(Path(d) / "access.log")))
        start = time.perf_counter()
        for _ in range(args.lines):
            log.record("web", client, ex, time.monotonic())  # type: ignore[arg-type]
        log.close()
        took = time.perf_counter() - start
    print(f"{args.format}: {took / args.lines * 1e6:.2f} us per line ({args.lines} lines)")


if __name__ == "__main__":
    main()
