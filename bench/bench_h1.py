"""Head parse cost: compiled ``lbproxy._fast.h1`` against its pure twin and httptools.

    cythonize -i -3 lbproxy/_fast/h1.pyx   (or python setup.py build_ext --inplace)
    python bench/bench_h1.py [--calls 200000] [--repeat 5]

Times parsing a typical browser request head (6 fields) and a typical response
head (5 fields), each ``--calls`` times from a plain Python loop, best of
``--repeat``, and prints µs per head.

httptools (llhttp) is timed the way the proxy used it: a parser fed the bytes,
with a protocol object whose ``on_url``/``on_status``/``on_header`` callbacks
collect the start line and the ``(name, value)`` list, ``on_headers_complete``
asks the parser for the method, version or status code, and
``on_body``/``on_message_complete`` are there too. The request parser is kept
across heads, as on a keep-alive connection (a GET without a body is complete
at the end of its head). The response head announces a body, so each response
gets a new parser, as the proxy made one after each HEAD response; what
creating one alone costs is printed too. The "loop" figure is the same loop
calling a no-op with the same arguments: the floor no implementation can go
below.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import httptools

from lbproxy import _fast

REQUEST = (
    b"GET /articles/2025/12/http-parsing?ref=home HTTP/1.1\r\n"
    b"Host: www.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Cookie: session=3f2a9c1e7b; theme=dark; _ga=GA1.2.123456789.1700000000\r\n"
    b"\r\n"
)

RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Date: Tue, 02 Dec 2025 10:15:00 GMT\r\n"
    b"Server: nginx/1.27.0\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"Content-Length: 18734\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n"
)

Call = Callable[[], object]
Fields = list[tuple[bytes, bytes]]


class Collector:
    """An httptools protocol that gathers what ``h1`` returns."""

    def __init__(self) -> None:
        self.parser: Any = None
        self.url = b""
        self.reason = b""
        self.fields: Fields = []
        self.heads: list[tuple[Any, ...]] = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        if isinstance(parser, httptools.HttpRequestParser):
            head: tuple[Any, ...] = (
                parser.get_method(),
                self.url,
                parser.get_http_version(),
                self.fields,
            )
        else:
            head = (parser.get_status_code(), self.reason, parser.get_http_version(), self.fields)
        self.url = b""
        self.reason = b""
        self.fields = []
        self.heads.append(head)

    def on_body(self, body: bytes) -> None:
        pass

    def on_message_complete(self) -> None:
        pass


def _httptools_request() -> tuple[Call, Collector]:
    proto = Collector()
    proto.parser = parser = httptools.HttpRequestParser(proto)
    feed = parser.feed_data
    heads = proto.heads

    def call() -> object:
        feed(REQUEST)
        return heads.pop()

    return call, proto


def _httptools_response() -> tuple[Call, Collector]:
    proto = Collector()
    heads = proto.heads
    new = httptools.HttpResponseParser

    def call() -> object:
        proto.parser = parser = new(proto)
        parser.feed_data(RESPONSE)
        return heads.pop()

    return call, proto


def _time(call: Call, calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        call()
    return (time.perf_counter_ns() - start) / calls / 1000


def _best(call: Call, calls: int, repeat: int) -> float:
    return min(_time(call, calls) for _ in range(repeat))


def _noop(*args: object) -> None:
    return None


def _check(h1: ModuleType, label: str) -> None:
    """Every contender must see the same head, or timing them means nothing."""
    end, method, target, minor, fields = h1.parse_request_head(REQUEST, 0)
    got_request = _httptools_request()[0]()
    if end != len(REQUEST) or got_request != (method, target, f"1.{minor}", fields):
        raise SystemExit(f"{label} and httptools disagree on the request")
    end, status, reason, minor, fields = h1.parse_response_head(RESPONSE, 0)
    got_response = _httptools_response()[0]()
    if end != len(RESPONSE) or got_response != (status, reason, f"1.{minor}", fields):
        raise SystemExit(f"{label} and httptools disagree on the response")


def _cases(h1: ModuleType) -> list[Call]:
    parse_request = h1.parse_request_head
    parse_response = h1.parse_response_head
    return [lambda: parse_request(REQUEST, 0), lambda: parse_response(RESPONSE, 0)]


def _us(t: float | None) -> str:
    return f"{'-':>10}" if t is None else f"{t:8.3f}µs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    pure = _fast.load_pure("h1")
    compiled: ModuleType | None = None
    try:
        compiled = _fast.load_compiled("h1")
    except ImportError as exc:
        print(f"compiled module not built ({exc}); timing the pure twin and httptools only")
    _check(pure, "h1_py")
    if compiled is not None:
        _check(compiled, "h1")

    labels = [
        f"request head, 6 fields, {len(REQUEST)} B",
        f"response head, 5 fields, {len(RESPONSE)} B",
    ]
    pure_cases = _cases(pure)
    compiled_cases = _cases(compiled) if compiled is not None else None
    httptools_cases = [_httptools_request()[0], _httptools_response()[0]]

    loop = _best(lambda: _noop(REQUEST, 0), args.calls, args.repeat)
    print(f"{args.calls} heads, best of {args.repeat}; loop floor {loop:.3f} µs/head")
    print(
        f"{'case':34} {'compiled':>10} {'pure':>10} {'httptools':>10}"
        f" {'pure/comp':>10} {'httptools/comp':>15}"
    )
    for i, label in enumerate(labels):
        t_pure = _best(pure_cases[i], args.calls, args.repeat)
        t_http = _best(httptools_cases[i], args.calls, args.repeat)
        if compiled_cases is None:
            print(f"{label:34} {_us(None)} {_us(t_pure)} {_us(t_http)}")
            continue
        t_comp = _best(compiled_cases[i], args.calls, args.repeat)
        print(
            f"{label:34} {_us(t_comp)} {_us(t_pure)} {_us(t_http)}"
            f" {t_pure / t_comp:9.1f}x {t_http / t_comp:14.1f}x"
        )
    proto = Collector()
    new_parser = _best(lambda: httptools.HttpResponseParser(proto), args.calls, args.repeat)
    print(f"(httptools response: a new parser per head, of which creating it: {new_parser:.3f} µs)")


if __name__ == "__main__":
    main()
