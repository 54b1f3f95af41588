"""Request ids and W3C traceparent (``tracing:``), checked at a real backend,
at the client, and in the access log."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from aiohttp import web

from tests.support import (
    aiohttp_backend,
    client_connection,
    echo_request,
    read_response,
    running_proxy,
    simple_config,
)

TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def _config(backend: str, tracing: str, log: Path | None = None) -> str:
    text = simple_config(backend) + f"tracing: {tracing}\n"
    if log is not None:
        text = text.replace(
            'access_log: {format: "off"}', f'access_log: {{format: json, path: "{log}"}}'
        )
    return text


async def _ask(port: int, extra: str = "", path: str = "/") -> tuple[int, dict[str, str], bytes]:
    async with client_connection(port) as (reader, writer):
        writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode())
        return await asyncio.wait_for(read_response(reader), 5)


def _seen(body: bytes, name: str) -> list[str]:
    """The values of header ``name`` the echo backend received."""
    return [v for n, v in json.loads(body)["headers"] if n.lower() == name.lower()]


async def test_request_id_created_sent_upstream_and_back() -> None:
    async with aiohttp_backend(echo_request) as b:
        async with running_proxy(_config(b.address, "{request_id: true}")) as (_, port):
            ids = []
            for _ in range(3):
                status, headers, body = await _ask(port)
                assert status == 200
                upstream = _seen(body, "X-Request-ID")
                assert len(upstream) == 1 and re.fullmatch(r"[0-9a-f]{32}", upstream[0])
                assert headers["x-request-id"] == upstream[0]
                ids.append(upstream[0])
            assert len(set(ids)) == 3  # a new one per request


async def test_client_request_id_kept() -> None:
    async with aiohttp_backend(echo_request) as b:
        async with running_proxy(_config(b.address, "{request_id: true}")) as (_, port):
            status, headers, body = await _ask(port, "x-request-id: abc-123.XYZ\r\n")
            assert status == 200
            assert _seen(body, "X-Request-ID") == ["abc-123.XYZ"]
            assert headers["x-request-id"] == "abc-123.XYZ"


async def test_unusable_client_request_id_replaced() -> None:
    async with aiohttp_backend(echo_request) as b:
        async with running_proxy(_config(b.address, "{request_id: true}")) as (_, port):
            for bad in ("a b c", "x" * 129):
                status, headers, body = await _ask(port, f"X-Request-ID: {bad}\r\n")
                assert status == 200
                upstream = _seen(body, "X-Request-ID")
                assert len(upstream) == 1 and re.fullmatch(r"[0-9a-f]{32}", upstream[0])
                assert headers["x-request-id"] == upstream[0]


async def test_backend_echoed_request_id_not_doubled() -> None:
    async def echoing(request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok", headers={"X-Request-ID": request.headers["X-Request-ID"]})

    async with aiohttp_backend(echoing) as b:
        async with running_proxy(_config(b.address, "{request_id: true}")) as (_, port):
            async with client_connection(port) as (reader, writer):
                writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nX-Request-ID: r1\r\n\r\n")
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.lower().count(b"x-request-id:") == 1
            assert b"X-Request-ID: r1\r\n" in head


async def test_custom_request_id_header_and_local_answers() -> None:
    # A 502 (nothing listens at the backend address) still carries the id.
    cfg = simple_config("127.0.0.1:1") + "tracing: {request_id: true, request_id_header: X-Trace}\n"
    async with running_proxy(cfg) as (_, port):
        status, headers, _ = await _ask(port, "X-Trace: t-1\r\n")
        assert status == 502 and headers["x-trace"] == "t-1"
        status, headers, _ = await _ask(port)
        assert status == 502 and re.fullmatch(r"[0-9a-f]{32}", headers["x-trace"])


async def test_traceparent_continued_with_new_span() -> None:
    incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    async with aiohttp_backend(echo_request) as b:
        async with running_proxy(_config(b.address, "{traceparent: true}")) as (_, port):
            status, headers, body = await _ask(
                port, f"traceparent: {incoming}\r\ntracestate: k=v\r\n"
            )
            assert status == 200
            (sent,) = _seen(body, "traceparent")
            m = TRACEPARENT.fullmatch(sent)
            assert m is not None
            assert m[1] == "4bf92f3577b34da6a3ce929d0e0e4736"  # same trace
            assert m[2] != "00f067aa0ba902b7" and m[2] != "0" * 16  # this hop's span
            assert m[3] == "01"
            assert _seen(body, "tracestate") == ["k=v"]
            assert "x-request-id" not in headers  # request_id is off


async def test_traceparent_created_when_missing_or_invalid() -> None:
    invalid = (
        "",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # 00 has 4 fields
    )
    async with aiohttp_backend(echo_request) as b:
        async with running_proxy(_config(b.address, "{traceparent: true}")) as (_, port):
            traces = set()
            for value in invalid:
                extra = f"traceparent: {value}\r\n" if value else ""
                status, _, body = await _ask(port, extra)
                assert status == 200
                (sent,) = _seen(body, "traceparent")
                m = TRACEPARENT.fullmatch(sent)
                assert m is not None and m[3] == "01", (value, sent)
                assert m[1] != "4bf92f3577b34da6a3ce929d0e0e4736" and m[1] != "0" * 32
                traces.add(m[1])
            assert len(traces) == len(invalid)
            # A later version is read by its first four fields; the flags survive.
            later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more"
            status, _, body = await _ask(port, f"traceparent: {later}\r\n")
            (sent,) = _seen(body, "traceparent")
            m = TRACEPARENT.fullmatch(sent)
            assert m is not None and m[1] == "4bf92f3577b34da6a3ce929d0e0e4736" and m[3] == "00"
            # Two traceparent headers are invalid: a new trace, one header sent.
            status, _, body = await _ask(
                port, f"traceparent: {later}\r\ntraceparent: {later}\r\n"
            )
            (sent,) = _seen(body, "traceparent")
            assert "4bf92f3577b34da6a3ce929d0e0e4736" not in sent


async def test_tracing_off_forwards_headers_untouched() -> None:
    async with aiohttp_backend(echo_request) as b:
        async with running_proxy(simple_config(b.address)) as (_, port):
            status, headers, body = await _ask(port, "traceparent: junk\r\n")
            assert status == 200 and "x-request-id" not in headers
            assert _seen(body, "traceparent") == ["junk"]
            assert _seen(body, "X-Request-ID") == []


async def test_access_log_records_request_id_and_traceparent(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    cfg = _config("{b}", "{request_id: true, traceparent: true}", log)
    async with aiohttp_backend(echo_request) as b:
        async with running_proxy(cfg.replace("{b}", b.address)) as (_, port):
            _, _, body = await _ask(port, "X-Request-ID: logged-1\r\n")
            sent = _seen(body, "traceparent")[0]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while not (log.exists() and log.read_text()) and loop.time() < deadline:
                await asyncio.sleep(0.05)
    line = json.loads(log.read_text().splitlines()[0])
    assert line["request_id"] == "logged-1"
    assert line["traceparent"] == sent


async def test_access_log_without_tracing_records_client_request_id(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    cfg = simple_config("{b}").replace(
        'access_log: {format: "off"}', f'access_log: {{format: json, path: "{log}"}}'
    )
    async with aiohttp_backend(echo_request) as b:
        async with running_proxy(cfg.replace("{b}", b.address)) as (_, port):
            await _ask(port, "X-Request-ID: from-client\r\n")
            await _ask(port)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while len(log.read_text().splitlines() if log.exists() else []) < 2:
                assert loop.time() < deadline
                await asyncio.sleep(0.05)
    first, second = (json.loads(x) for x in log.read_text().splitlines())
    assert first["request_id"] == "from-client"
    assert "request_id" not in second and "traceparent" not in second
