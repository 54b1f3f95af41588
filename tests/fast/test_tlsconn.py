"""lbproxy._fast.tlsconn, compiled and pure: the TLS layer of a listener,
between real TCP connections on 127.0.0.1 and a protocol that records what
reaches it. Clients are Python's ``ssl`` over raw sockets (memory BIOs), so
that close_notify, the TCP FIN and what is sent when are all visible."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import trustme

from lbproxy.tls import CertificateStore, TlsSettings

TIMEOUT = 5.0
READ_CHUNK = 65536  # the most decrypted bytes one data_received gets


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def store(tmp_path: Path, ca: trustme.CA) -> CertificateStore:
    leaf = ca.issue_cert("site.test")
    cert, key = tmp_path / "site.pem", tmp_path / "site.key"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    return CertificateStore(TlsSettings(certificates=((str(cert), str(key)),)))


@pytest.fixture
def client_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(ctx)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


@pytest.fixture
def impl(fast_impl: Callable[[str], Any]) -> Any:
    return fast_impl("tlsconn")


class App(asyncio.Protocol):
    """The protocol served over TLS: records its events; ``on_made`` and
    ``on_data`` act on the transport."""

    def __init__(
        self,
        on_made: Callable[[App], None] | None = None,
        on_data: Callable[[App, bytes], None] | None = None,
        keep_on_eof: bool = False,
    ) -> None:
        self.on_made = on_made
        self.on_data = on_data
        self.keep_on_eof = keep_on_eof
        self.events: list[str] = []
        self.chunks: list[int] = []
        self.data = bytearray()
        self.transport: Any = None
        self.info: Any = "no PROXY header"
        self.made = asyncio.Event()
        self.lost = asyncio.Event()
        self.grew = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.events.append("made")
        self.made.set()
        if self.on_made is not None:
            self.on_made(self)

    def proxied(self, info: Any) -> None:
        self.info = info

    def data_received(self, data: bytes) -> None:
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.chunks.append(len(data))
        self.data += data
        self.grew.set()
        if self.on_data is not None:
            self.on_data(self, data)

    def eof_received(self) -> bool:
        self.events.append("eof")
        return self.keep_on_eof

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append("lost")
        self.lost.set()

    async def wait_for(self, size: int) -> None:
        while len(self.data) < size:
            self.grew.clear()
            await asyncio.wait_for(self.grew.wait(), TIMEOUT)


@asynccontextmanager
async def tls_server(
    impl: Any,
    store: CertificateStore,
    make_app: Callable[[], App],
    timeout: float = TIMEOUT,
    proxy_protocol: bool = False,
) -> AsyncIterator[tuple[int, list[App]]]:
    loop = asyncio.get_running_loop()
    front = impl.Front(store, "test")
    apps: list[App] = []

    def factory() -> asyncio.Protocol:
        app = make_app()
        apps.append(app)
        conn: asyncio.Protocol = impl.TlsServer(front, app, loop, timeout, proxy_protocol)
        return conn

    server = await loop.create_server(factory, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], apps
    finally:
        server.close()
        for app in apps:
            if app.transport is not None:
                app.transport.abort()


class Client:
    """A TLS client on a blocking socket, driven record by record."""

    def __init__(self, port: int, ctx: ssl.SSLContext, before: bytes = b"") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        if before:
            self.sock.sendall(before)
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="site.test")

    def _send_out(self) -> None:
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            self.inc.write_eof()
            return False
        self.inc.write(chunk)
        return True

    def handshake(self) -> None:
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._send_out()
                if not self._fill():
                    raise ConnectionError("closed during the handshake") from None
        self._send_out()

    def send(self, data: bytes) -> None:
        self.obj.write(data)
        self._send_out()

    def send_close_notify(self) -> None:
        with suppress(ssl.SSLWantReadError):
            self.obj.unwrap()
        self._send_out()

    def read(self, size: int) -> bytes:
        got = bytearray()
        while len(got) < size:
            try:
                chunk = self.obj.read(size - len(got))
            except ssl.SSLWantReadError:
                if not self._fill():
                    break
                continue
            if not chunk:
                break
            got += chunk
        return bytes(got)

    def read_to_end(self) -> tuple[bytes, bool, bool]:
        """Everything until the server closes: (data, close_notify seen, TCP FIN seen)."""
        got = bytearray()
        while True:
            try:
                chunk = self.obj.read(65536)
            except ssl.SSLWantReadError:
                if not self._fill():
                    return bytes(got), False, True
                continue
            except ssl.SSLEOFError:  # FIN without close_notify
                return bytes(got), False, True
            except ssl.SSLZeroReturnError:  # close_notify, after the client's own
                chunk = b""
            if not chunk:  # close_notify
                return bytes(got), True, self.sock.recv(1) == b""
            got += chunk

    def close(self) -> None:
        self.sock.close()


def in_thread(fn: Callable[[], Any]) -> asyncio.Future[Any]:
    return asyncio.ensure_future(asyncio.to_thread(fn))


async def test_close_sends_close_notify_and_does_not_wait_for_the_clients(
    impl: Any, store: CertificateStore, client_ctx: ssl.SSLContext
) -> None:
    def answer(app: App) -> None:
        app.transport.write(b"bye")
        app.transport.close()

    async with tls_server(impl, store, lambda: App(on_made=answer)) as (port, apps):
        client = Client(port, client_ctx)
        try:
            await in_thread(client.handshake)
            # The client sends nothing more, not even its close_notify, and
            # still the server's side is closed.
            assert await in_thread(client.read_to_end) == (b"bye", True, True)
            await asyncio.wait_for(apps[0].lost.wait(), TIMEOUT)
        finally:
            client.close()
    assert apps[0].events == ["made", "lost"]


async def test_the_protocol_learns_the_connection_after_the_handshake(
    impl: Any, store: CertificateStore, client_ctx: ssl.SSLContext
) -> None:
    async with tls_server(impl, store, App) as (port, apps):
        client = Client(port, client_ctx)
        try:
            await in_thread(client.handshake)
            app = apps[0]
            await asyncio.wait_for(app.made.wait(), TIMEOUT)
            t = app.transport
            conn = t.get_extra_info("ssl_object")
            assert conn.version() == "TLSv1.3"
            assert conn.selected_alpn_protocol() == "http/1.1"
            assert conn.session_reused is False
            assert conn.getpeercert(binary_form=True) is None  # none was asked for
            assert t.get_extra_info("sslcontext") is store.context_for("site.test")
            assert t.get_extra_info("peername") == client.sock.getsockname()
            assert t.get_extra_info("no such thing", 7) == 7
            assert t.get_protocol() is app
            assert t.can_write_eof() and not t.is_closing() and t.is_reading()
            client.sock.shutdown(socket.SHUT_WR)
            await asyncio.wait_for(app.lost.wait(), TIMEOUT)
        finally:
            client.close()
    # A FIN without close_notify is an end of input all the same.
    assert app.events == ["made", "eof", "lost"]


async def test_a_mebibyte_each_way(
    impl: Any, store: CertificateStore, client_ctx: ssl.SSLContext
) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB

    def echo(app: App, data: bytes) -> None:
        app.transport.write(data)
        if len(app.data) == len(payload):
            app.transport.close()

    async with tls_server(impl, store, lambda: App(on_data=echo)) as (port, apps):
        client = Client(port, client_ctx)

        def exchange() -> tuple[bytes, bool, bool]:
            client.handshake()
            client.send(payload)
            return client.read_to_end()

        try:
            assert await in_thread(exchange) == (payload, True, True)
        finally:
            client.close()
    app = apps[0]
    assert bytes(app.data) == payload
    # Records are handed over in batches, never more than READ_CHUNK at once.
    assert max(app.chunks) <= READ_CHUNK and len(app.chunks) < len(payload) // 16384


async def test_paused_reading_holds_decrypted_input_until_resumed(
    impl: Any, store: CertificateStore, client_ctx: ssl.SSLContext
) -> None:
    size = 300_000

    def pause(app: App, data: bytes) -> None:
        app.transport.pause_reading()

    async with tls_server(impl, store, lambda: App(on_data=pause)) as (port, apps):
        client = Client(port, client_ctx)
        try:
            await in_thread(client.handshake)
            await in_thread(lambda: client.send(b"x" * size))
            app = apps[0]
            await app.wait_for(1)
            await asyncio.sleep(0.3)
            held = len(app.data)
            assert 0 < held < size and len(app.chunks) == 1
            assert not app.transport.is_reading()
            # What was read but not handed over resumes without the client
            # sending another byte.
            app.on_data = None
            app.transport.resume_reading()
            await app.wait_for(size)
            assert bytes(app.data) == b"x" * size
        finally:
            client.close()


async def test_write_eof_sends_close_notify_and_fin_and_goes_on_reading(
    impl: Any, store: CertificateStore, client_ctx: ssl.SSLContext
) -> None:
    def answer_and_linger(app: App, data: bytes) -> None:
        if app.transport.can_write_eof() and not app.transport.is_closing():
            app.transport.write(b"response")
            app.transport.write_eof()
            app.transport.write(b"dropped: written after the end")

    async with tls_server(impl, store, lambda: App(on_data=answer_and_linger)) as (port, apps):
        client = Client(port, client_ctx)
        try:
            await in_thread(client.handshake)
            await in_thread(lambda: client.send(b"request"))
            assert await in_thread(client.read_to_end) == (b"response", True, True)
            await asyncio.sleep(0.2)
            app = apps[0]
            assert not app.lost.is_set()  # lingering: still reading
        finally:
            client.close()
        await asyncio.wait_for(app.lost.wait(), TIMEOUT)
    assert app.events == ["made", "data", "eof", "lost"]


async def test_the_clients_close_notify_is_an_end_of_input(
    impl: Any, store: CertificateStore, client_ctx: ssl.SSLContext
) -> None:
    async with tls_server(impl, store, App) as (port, apps):
        client = Client(port, client_ctx)
        try:
            await in_thread(client.handshake)
            await in_thread(lambda: client.send(b"last words"))
            await in_thread(client.send_close_notify)  # the TCP connection stays open
            # eof_received said not to keep the connection: the server closes.
            assert await in_thread(client.read_to_end) == (b"", True, True)
        finally:
            client.close()
        app = apps[0]
        await asyncio.wait_for(app.lost.wait(), TIMEOUT)
    assert app.events == ["made", "data", "eof", "lost"] and app.data == b"last words"


async def test_a_stalled_handshake_is_aborted_at_the_timeout(
    impl: Any, store: CertificateStore
) -> None:
    async with tls_server(impl, store, App, timeout=0.3) as (port, apps):
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        try:
            sock.sendall(b"\x16\x03\x01")  # the start of a record, never finished
            started = asyncio.get_running_loop().time()
            try:
                reply = await in_thread(lambda: sock.recv(100))
            except ConnectionResetError:
                reply = b""
            assert reply == b""  # closed, not answered
            assert asyncio.get_running_loop().time() - started < 3
        finally:
            sock.close()
    assert apps[0].events == []


async def test_a_failed_handshake_closes_and_never_connects_the_protocol(
    impl: Any, store: CertificateStore, client_ctx: ssl.SSLContext
) -> None:
    async with tls_server(impl, store, App) as (port, apps):
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        try:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: site.test\r\n\r\n")  # not TLS
            reply = await in_thread(lambda: sock.recv(100))
            assert reply[:1] in (b"", b"\x15")  # nothing, or a TLS alert record
        finally:
            sock.close()
        # The listener is unharmed: the next client is served.
        client = Client(port, client_ctx)
        try:
            await in_thread(client.handshake)
            await asyncio.wait_for(apps[1].made.wait(), TIMEOUT)
        finally:
            client.close()
    assert apps[0].events == []


async def test_a_proxy_header_in_the_clear_comes_first(
    impl: Any, store: CertificateStore, client_ctx: ssl.SSLContext
) -> None:
    async with tls_server(impl, store, App, proxy_protocol=True) as (port, apps):
        # Split over two writes, with the ClientHello after it.
        client = Client(port, client_ctx, before=b"PROXY TCP4 198.51.100.7 ")

        def rest() -> None:
            client.sock.sendall(b"203.0.113.1 5555 443\r\n")
            client.handshake()

        try:
            await in_thread(rest)
            await asyncio.wait_for(apps[0].made.wait(), TIMEOUT)
            assert apps[0].info.src_ip == b"198.51.100.7"
        finally:
            client.close()
        # LOCAL / UNKNOWN: the connection's own address stands (None).
        local = Client(port, client_ctx, before=b"PROXY UNKNOWN\r\n")
        try:
            await in_thread(local.handshake)
            await asyncio.wait_for(apps[1].made.wait(), TIMEOUT)
            assert apps[1].info is None
        finally:
            local.close()
        # No header: the TLS bytes are not one; closed before any handshake.
        with pytest.raises((ConnectionError, OSError)):
            bad = Client(port, client_ctx)
            try:
                await in_thread(bad.handshake)
            finally:
                bad.close()
    assert apps[2].events == []
