"""Header scan cost: compiled ``lbproxy._fast.headers`` against its pure twin.

    python setup.py build_ext --inplace
    python bench/bench_headers.py [--calls 200000] [--repeat 5]

Times ``scan_request`` on a typical 10-header browser request (from an
untrusted client and from a trusted proxy that sent X-Forwarded-For) and
``scan_response`` on a typical 8-header response, each ``--calls`` times from
a plain Python loop, best of ``--repeat``. Prints ns per call for both
implementations and pure/compiled. The "loop" figure is the same loop calling
a no-op with the same arguments: the floor no implementation can go below.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from types import ModuleType

from lbproxy import _fast

Headers = list[tuple[bytes, bytes]]

BROWSER_REQUEST: Headers = [
    (b"Host", b"www.example.com"),
    (b"User-Agent", b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    (b"Accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    (b"Accept-Language", b"en-US,en;q=0.5"),
    (b"Accept-Encoding", b"gzip, deflate, br, zstd"),
    (b"Connection", b"keep-alive"),
    (b"Cookie", b"session=3f2a9c1e7b; theme=dark; _ga=GA1.2.123456789.1700000000"),
    (b"Upgrade-Insecure-Requests", b"1"),
    (b"Sec-Fetch-Dest", b"document"),
    (b"Priority", b"u=0, i"),
]

# The same request as a trusted proxy in front of lbproxy would send it.
PROXIED_REQUEST: Headers = [
    *BROWSER_REQUEST[:5],
    (b"X-Forwarded-For", b"198.51.100.23"),
    (b"X-Forwarded-Proto", b"https"),
    *BROWSER_REQUEST[6:9],
]

RESPONSE: Headers = [
    (b"Date", b"Tue, 02 Dec 2025 10:15:00 GMT"),
    (b"Server", b"nginx/1.27.0"),
    (b"Content-Type", b"text/html; charset=utf-8"),
    (b"Content-Length", b"18734"),
    (b"Connection", b"keep-alive"),
    (b"Cache-Control", b"private, max-age=0"),
    (b"Set-Cookie", b"session=3f2a9c1e7b; Path=/; HttpOnly; Secure; SameSite=Lax"),
    (b"Vary", b"Accept-Encoding"),
]

Call = Callable[[], object]


def _time(call: Call, calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        call()
    return (time.perf_counter_ns() - start) / calls


def _best(call: Call, calls: int, repeat: int) -> float:
    return min(_time(call, calls) for _ in range(repeat))


def _cases(m: ModuleType) -> list[tuple[str, Call]]:
    scan_request = m.scan_request
    scan_response = m.scan_response
    return [
        (
            "request, 10 headers",
            lambda: scan_request(BROWSER_REQUEST, b"203.0.113.7", False, b"https", b"1.1 lb"),
        ),
        (
            "request via trusted proxy",
            lambda: scan_request(PROXIED_REQUEST, b"10.0.0.2", True, b"http", b"1.1 lb"),
        ),
        ("response, 8 headers", lambda: scan_response(RESPONSE)),
    ]


def _noop(*args: object) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    pure = _fast.load_pure("headers")
    compiled: ModuleType | None = None
    try:
        compiled = _fast.load_compiled("headers")
    except ImportError as exc:
        print(f"compiled module not built ({exc}); timing the pure twin only")
    if compiled is not None:
        # Timing a module that answers differently would be meaningless.
        for (label, c_call), (_, p_call) in zip(_cases(compiled), _cases(pure), strict=True):
            if c_call() != p_call():
                raise SystemExit(f"compiled and pure disagree on: {label}")

    loop = _best(lambda: _noop(BROWSER_REQUEST, b"", False, b"", b""), args.calls, args.repeat)
    print(f"{args.calls} calls, best of {args.repeat}; loop floor {loop:.1f} ns/call")
    print(f"{'case':28} {'compiled':>10} {'pure':>10} {'pure/compiled':>14}")
    c_cases = _cases(compiled) if compiled is not None else None
    for i, (label, p_call) in enumerate(_cases(pure)):
        t_pure = _best(p_call, args.calls, args.repeat)
        if c_cases is None:
            print(f"{label:28} {'-':>10} {t_pure:9.1f}n {'-':>14}")
            continue
        t_comp = _best(c_cases[i][1], args.calls, args.repeat)
        print(f"{label:28} {t_comp:9.1f}n {t_pure:9.1f}n {t_pure / t_comp:13.1f}x")


if __name__ == "__main__":
    main()
