"""Server-side TLS connections: the TLS layer of a listener, between the TCP
connection and the HTTP protocol (pure-Python twin of tlsconn.pyx).

A TLS listener serves plain TCP, and each accepted connection's protocol is a
``TlsServer``: it runs the handshake over two memory BIOs, then connects the
HTTP protocol (``ClientConnection``) with itself as that protocol's transport,
encrypting what it writes and decrypting what it reads. The event loop's own
TLS transport does the same job; this one exists to be cheaper (the compiled
twin calls OpenSSL straight from C) and to close as nginx does:

* ``close()`` sends close_notify and closes the TCP connection at once; the
  client's own close_notify is not waited for (RFC 8446 section 6.1 lets
  either side close without it). The event loop's transport waits a turn
  for it on every connection.
* ``write_eof()`` sends close_notify and a TCP FIN and goes on reading: the
  lingering close ClientConnection does after a response it must not lose.
* With ``proxy_protocol`` the PROXY header is read in the clear first (an L4
  balancer writes it before relaying the client's TLS bytes), and the
  client's address from it is given to the protocol once it is connected.
* The PROXY header and the handshake together must finish within
  ``timeout`` (the listener's header timeout), or the connection is aborted.
* A failed handshake sends OpenSSL's alert and closes; it is logged at debug
  level only: scanners and broken clients are not the operator's problem.

Certificates are chosen by SNI: the front context (``Front.context``) has
none, and a callback moves each connection to its certificate's context
(lbproxy.tls.CertificateStore). Here that is the store's Python
``sni_callback``; the compiled twin installs a C one on a front context of
its own (``CertificateStore.new_front``).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from lbproxy._fast import load as _load_fast

__all__ = ["NAMES_CACHED", "Front", "TlsFailed", "TlsServer", "available"]

log = logging.getLogger("lbproxy")
_proxyproto = _load_fast("proxyproto")

# SNI names whose certificate is remembered (compiled twin); past that the
# memory is cleared, as a client may send any name it likes.
NAMES_CACHED = 1024

READ_CHUNK = 65536  # decrypted bytes handed to the protocol per call, at most

S_PROXY = 0  # reading the PROXY header, in the clear
S_HANDSHAKE = 1
S_OPEN = 2  # handshake done, the protocol connected
S_SHUT = 3  # close_notify sent (write_eof); still reading
S_CLOSED = 4


class TlsFailed(Exception):
    """This TLS engine cannot run here (the compiled one: OpenSSL unreachable)."""


def available() -> bool:
    """Whether this engine can run in this process (the twin always can)."""
    return True


class Front:
    """What a listener's connections share: the front context they start
    with and the certificate store (lbproxy.tls.CertificateStore)."""

    def __init__(self, store: Any, name: str = "tls") -> None:
        self.store = store
        self.name = name  # the listener's, for the log
        self.context: ssl.SSLContext = store.context


class TlsServer:
    """The protocol of one accepted TCP connection of a TLS listener, and the
    transport of the HTTP protocol (``app``) it serves once the handshake is
    done.

    ``get_extra_info("ssl_object")`` gives what ``ssl.SSLObject`` tells of the
    connection (``version()``, ``session_reused``,
    ``getpeercert(binary_form=True)``, ``selected_alpn_protocol()``).
    """

    def __init__(
        self,
        front: Front,
        app: Any,
        loop: asyncio.AbstractEventLoop,
        timeout: float,
        proxy_protocol: bool = False,
    ) -> None:
        self.front = front
        self.app = app
        self.loop = loop
        self.timeout = timeout
        self.proxy_protocol = proxy_protocol  # a PROXY header comes first
        self.state = S_PROXY if proxy_protocol else S_HANDSHAKE
        self.connected = False  # the protocol's connection_made was called
        self.paused = False
        self.resume_scheduled = False
        self.early = b""  # PROXY header bytes read so far
        self.proxy_info: Any = None  # what it said (None: LOCAL / UNKNOWN)
        self.tcp: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.sslobj: ssl.SSLObject | None = None
        self.rbio = ssl.MemoryBIO()
        self.wbio = ssl.MemoryBIO()

    @property
    def ctx(self) -> ssl.SSLContext:
        """The context serving this connection (its certificate's, after SNI)."""
        return self.sslobj.context if self.sslobj is not None else self.front.context

    # -- the TCP connection's protocol --------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.tcp = transport  # type: ignore[assignment]
        self.sslobj = self.front.context.wrap_bio(self.rbio, self.wbio, server_side=True)
        self.timer = self.loop.call_later(self.timeout, self._expired)

    def data_received(self, data: bytes) -> None:
        if self.state == S_CLOSED:
            return
        if self.state == S_PROXY:
            data = self._proxy_header(data)
            if not data:
                return
        self.rbio.write(data)
        if self.state == S_HANDSHAKE and not self._handshake():
            return
        if not self.paused:
            self._pump()

    def eof_received(self) -> bool | None:
        if self.connected and self.state != S_CLOSED and self.app.eof_received():
            return True
        self.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = S_CLOSED
        self._cancel_timer()
        if self.connected:
            self.connected = False
            self.app.connection_lost(exc)
        self.proxy_info = None
        self.app = None
        self.tcp = None

    def pause_writing(self) -> None:
        if self.connected:
            self.app.pause_writing()

    def resume_writing(self) -> None:
        if self.connected:
            self.app.resume_writing()

    # -- the HTTP protocol's transport --------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.state != S_OPEN or not data:
            return  # closed or closing: as with a closing socket, dropped
        assert self.sslobj is not None
        try:
            self.sslobj.write(data)
        except ssl.SSLError as exc:
            self._fail("writing", exc)
            return
        self._flush()

    def writelines(self, list_of_data: list[bytes]) -> None:
        self.write(b"".join(list_of_data))

    def close(self) -> None:
        state = self.state
        if state == S_CLOSED:
            return
        self.state = S_CLOSED
        self._cancel_timer()
        if state == S_OPEN:
            # close_notify, then the TCP close: the client's own close_notify
            # is not waited for.
            self._shutdown()
        if self.tcp is not None:
            self.tcp.close()

    def abort(self) -> None:
        self.state = S_CLOSED
        self._cancel_timer()
        if self.tcp is not None:
            self.tcp.abort()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        """close_notify and a TCP FIN; reading goes on (a lingering close)."""
        if self.state != S_OPEN or self.tcp is None:
            return
        self.state = S_SHUT
        self._shutdown()
        self.tcp.write_eof()

    def is_closing(self) -> bool:
        return self.state == S_CLOSED or self.tcp is None or self.tcp.is_closing()

    def pause_reading(self) -> None:
        if self.tcp is None or self.paused:
            return
        self.paused = True
        self.tcp.pause_reading()

    def resume_reading(self) -> None:
        if self.tcp is None or not self.paused:
            return
        self.paused = False
        self.tcp.resume_reading()
        # Records already read (or decrypted) wait in OpenSSL: nothing more
        # may come from the socket to wake them up.
        sslobj = self.sslobj
        if (
            sslobj is not None
            and not self.resume_scheduled
            and (sslobj.pending() > 0 or self.rbio.pending > 0)
        ):
            self.resume_scheduled = True
            self.loop.call_soon(self._resume)

    def is_reading(self) -> bool:
        return self.tcp is not None and not self.paused and self.tcp.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if self.tcp is not None:
            self.tcp.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self.tcp.get_write_buffer_size() if self.tcp is not None else 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.tcp.get_write_buffer_limits() if self.tcp is not None else (0, 0)

    def get_protocol(self) -> Any:
        return self.app

    def set_protocol(self, protocol: Any) -> None:
        self.app = protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self.sslobj if self.sslobj is not None else default
        if name == "sslcontext":
            return self.ctx
        if self.tcp is None:
            return default
        return self.tcp.get_extra_info(name, default)

    # -- inside -------------------------------------------------------------
    def _proxy_header(self, data: bytes) -> bytes:
        if self.early:
            data = self.early + data
            self.early = b""
        try:
            used, info = _proxyproto.parse(data)
        except _proxyproto.ProxyProtocolError as err:
            log.warning("%s: closing a connection: %s", self.front.name, err)
            self.abort()
            return b""
        if not used:
            self.early = data
            return b""
        self.proxy_info = info
        self.state = S_HANDSHAKE
        return data[used:]

    def _handshake(self) -> bool:
        assert self.sslobj is not None and self.tcp is not None
        try:
            self.sslobj.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return False
        except (ssl.SSLError, ValueError) as exc:
            # A failed handshake: its alert goes out, then the connection closes.
            log.debug("tls: handshake failed: %s", exc)
            self._flush()
            self.state = S_CLOSED
            self._cancel_timer()
            self.tcp.close()
            return False
        self._flush()  # its last flight, and TLS 1.3's session tickets
        self._cancel_timer()
        self.state = S_OPEN
        info, self.proxy_info = self.proxy_info, None
        self.connected = True
        self.app.connection_made(self)
        if self.proxy_protocol and self.state != S_CLOSED:
            self.app.proxied(info)
        return self.state == S_OPEN

    def _pump(self) -> None:
        """Decrypt what has been read and hand it to the protocol, in one
        call per batch (up to READ_CHUNK bytes), until OpenSSL runs dry or
        the protocol pauses reading."""
        sslobj = self.sslobj
        assert sslobj is not None
        while self.state == S_OPEN or self.state == S_SHUT:
            chunks: list[bytes] = []
            got = 0
            ended = dry = False
            try:
                while got < READ_CHUNK:
                    chunk = sslobj.read(READ_CHUNK - got)
                    if not chunk:  # the client's close_notify
                        ended = True
                        break
                    chunks.append(chunk)
                    got += len(chunk)
            except ssl.SSLWantReadError:
                dry = True
            except ssl.SSLError as exc:
                if chunks:
                    self.app.data_received(b"".join(chunks))
                self._fail("reading", exc)
                return
            if chunks:
                self.app.data_received(chunks[0] if len(chunks) == 1 else b"".join(chunks))
            if ended:
                if self.state != S_CLOSED and not self.app.eof_received():
                    self.close()
                break
            if dry or self.paused:
                break
        # Reading can also write: a TLS 1.3 KeyUpdate is answered.
        if self.wbio.pending:
            self._flush()

    def _shutdown(self) -> None:
        assert self.sslobj is not None
        try:
            self.sslobj.unwrap()
        except ssl.SSLWantReadError:
            pass  # close_notify written; the client's is not waited for
        except ssl.SSLError:
            return
        self._flush()

    def _flush(self) -> None:
        if self.wbio.pending and self.tcp is not None:
            self.tcp.write(self.wbio.read())

    def _fail(self, doing: str, exc: Exception) -> None:
        log.debug("tls: %s failed, aborting the connection: %s", doing, exc)
        self.abort()

    def _resume(self) -> None:
        self.resume_scheduled = False
        if not self.paused and (self.state == S_OPEN or self.state == S_SHUT):
            self._pump()

    def _expired(self) -> None:
        self.timer = None
        if self.state == S_PROXY or self.state == S_HANDSHAKE:
            log.debug("tls: no handshake within %.3gs, closing", self.timeout)
            self.abort()

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
