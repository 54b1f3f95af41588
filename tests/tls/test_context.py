"""lbproxy.tls: real TLS handshakes over 127.0.0.1 against a CertificateStore.

Certificates come from trustme; clients are Python's ``ssl`` through asyncio streams
(blocking sockets in a thread where a ``session=`` is needed for resumption).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import socket
import ssl
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from lbproxy.tls import (
    TLS12_CIPHERS,
    CertificateStore,
    TlsError,
    TlsSettings,
    client_subject,
    ticketkeys,
)
from lbproxy.tls.certfiles import certificate_names

TIMEOUT = 5.0
FAILED = (ssl.SSLError, ConnectionError)

# --- certificates and files ---


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def leaves(ca: trustme.CA) -> dict[str, trustme.LeafCert]:
    rsa_key, ecdsa_key = trustme.KeyType.RSA, trustme.KeyType.ECDSA
    return {
        "a": ca.issue_cert("a.test", key_type=rsa_key),
        "b": ca.issue_cert("b.test", key_type=ecdsa_key),
        "c": ca.issue_cert("c.test", "alias-c.test", key_type=rsa_key),
        "wild": ca.issue_cert("*.wild.test", key_type=ecdsa_key),
        "a2": ca.issue_cert("a.test", "new.test", key_type=ecdsa_key),
    }


def write_pair(directory: Path, stem: str, leaf: trustme.LeafCert) -> tuple[str, str]:
    cert, key = directory / f"{stem}.pem", directory / f"{stem}.key"
    write_cert(cert, leaf)
    write_key(key, leaf)
    return str(cert), str(key)


def write_cert(path: str | Path, leaf: trustme.LeafCert) -> None:
    Path(path).write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))


def write_key(path: str | Path, leaf: trustme.LeafCert) -> None:
    Path(path).write_bytes(leaf.private_key_pem.bytes())


def serial(leaf: trustme.LeafCert) -> int:
    return x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).serial_number


# --- a server and clients ---


@dataclass
class Seen:
    """What the server saw on one established connection."""

    version: str | None
    alpn: str | None
    subject: str | None
    reused: bool


@dataclass
class TlsServer:
    store: CertificateStore
    port: int = 0
    seen: list[Seen] = field(default_factory=list)


class _Answer(asyncio.Protocol):
    """Connected by the TLS engine once the handshake is done: records what
    the server saw, answers one line and closes."""

    def __init__(self, srv: TlsServer) -> None:
        self.srv = srv

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        conn = transport.get_extra_info("ssl_object")
        srv = self.srv
        srv.store.record_handshake(conn)
        srv.seen.append(
            Seen(
                conn.version(),
                conn.selected_alpn_protocol(),
                client_subject(conn),
                conn.session_reused,
            )
        )
        transport.write(b"ok\n")  # type: ignore[attr-defined]
        transport.close()


# The server side runs on each of lbproxy's TLS engines (lbproxy._fast.tlsconn
# and its twin: fast_impl's two params), the way a TLS listener runs it.
_engine: list[Any] = []


@pytest.fixture(autouse=True)
def _engine_of_the_test(fast_impl: Callable[[str], Any]) -> Iterator[None]:
    _engine.append(fast_impl("tlsconn"))
    yield
    _engine.pop()


@asynccontextmanager
async def serving(store: CertificateStore) -> AsyncIterator[TlsServer]:
    srv = TlsServer(store)
    impl = _engine[-1]
    front = impl.Front(store, "test")
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: impl.TlsServer(front, _Answer(srv), loop, TIMEOUT), "127.0.0.1", 0
    )
    srv.port = server.sockets[0].getsockname()[1]
    async with server:
        yield srv


@dataclass
class Peer:
    """What the client saw: the served certificate and the negotiated parameters."""

    names: set[str]
    serial: int
    public_key: object
    version: str | None
    alpn: str | None


def client_context(
    ca: trustme.CA, *, check_hostname: bool = True, max_version: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(ctx)
    ctx.check_hostname = check_hostname
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


def peer_of(conn: ssl.SSLObject) -> Peer:
    der = conn.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    return Peer(
        names=set(certificate_names(cert)),
        serial=cert.serial_number,
        public_key=cert.public_key(),
        version=conn.version(),
        alpn=conn.selected_alpn_protocol(),
    )


async def fetch(port: int, ctx: ssl.SSLContext, server_hostname: str | None) -> Peer:
    """Handshake, read the server's line, close. ``None``: send no SNI (an IP literal)."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(
            "127.0.0.1",
            port,
            ssl=ctx,
            server_hostname=server_hostname or "127.0.0.1",
            ssl_handshake_timeout=TIMEOUT,
        ),
        TIMEOUT,
    )
    try:
        peer = peer_of(writer.get_extra_info("ssl_object"))
        assert await asyncio.wait_for(reader.readline(), TIMEOUT) == b"ok\n"
        return peer
    finally:
        writer.close()
        with suppress(*FAILED):
            await writer.wait_closed()


async def refused(port: int, ctx: ssl.SSLContext, server_hostname: str) -> BaseException:
    """The error of a connection the server must refuse, at handshake or first read.

    With TLS 1.3 the client finishes its side of the handshake before the server has
    checked the client certificate, so a refusal can first show on the read.
    """
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1",
                port,
                ssl=ctx,
                server_hostname=server_hostname,
                ssl_handshake_timeout=TIMEOUT,
            ),
            TIMEOUT,
        )
    except FAILED as exc:
        return exc
    try:
        data = await asyncio.wait_for(reader.read(), TIMEOUT)  # until EOF or error
    except FAILED as exc:
        return exc
    finally:
        writer.close()
        with suppress(*FAILED):
            await writer.wait_closed()
    assert b"ok" not in data
    return EOFError("closed without data")


def store_of(
    tmp_path: Path,
    leaves: dict[str, trustme.LeafCert],
    *stems: str,
    ticket_key: bytes | None = None,
    **options: object,
) -> CertificateStore:
    pairs = tuple(write_pair(tmp_path, stem, leaves[stem]) for stem in stems)
    settings = TlsSettings(certificates=pairs, **options)  # type: ignore[arg-type]
    return CertificateStore(settings, ticket_key)


# --- SNI ---


async def test_sni_picks_the_certificate_by_name(
    tmp_path: Path, ca: trustme.CA, leaves: dict[str, trustme.LeafCert]
) -> None:
    store = store_of(tmp_path, leaves, "a", "b", "c", "wild")
    exact = client_context(ca)
    loose = client_context(ca, check_hostname=False)  # the default's name won't match
    expect = {
        "a.test": {"a.test"},
        "b.test": {"b.test"},
        "c.test": {"c.test", "alias-c.test"},
        "alias-c.test": {"c.test", "alias-c.test"},
        "x.wild.test": {"*.wild.test"},
        "Other.WILD.test": {"*.wild.test"},  # names compare case-insensitively
    }
    defaults = ["unknown.test", "wild.test", "a.b.wild.test", None]  # None: no SNI
    async with serving(store) as srv:
        for name, names in expect.items():
            assert (await fetch(srv.port, exact, name)).names == names, name
        for name in defaults:
            assert (await fetch(srv.port, loose, name)).names == {"a.test"}, name
    assert store.context_for("x.wild.test") is store.context_for("y.Wild.test")
    assert store.context_for(None) is store.context_for("unknown.test")
    assert store.context_for(None) is not store.context_for("b.test")
    assert store.names() == {
        "a.test": str(tmp_path / "a.pem"),
        "b.test": str(tmp_path / "b.pem"),
        "c.test": str(tmp_path / "c.pem"),
        "alias-c.test": str(tmp_path / "c.pem"),
        "*.wild.test": str(tmp_path / "wild.pem"),
    }


def _pump(a: ssl.MemoryBIO, b: ssl.MemoryBIO) -> None:
    data = a.read()
    if data:
        b.write(data)


def _connect(
    server_ctx: ssl.SSLContext,
    client_ctx: ssl.SSLContext,
    sni: str,
    session: ssl.SSLSession | None = None,
) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    """A handshake between ``server_ctx.wrap_bio`` (as the event loop calls
    it) and a client, through memory; (server, client) once both are done."""
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=sni, session=session)
    done = {"client": False, "server": False}
    for _ in range(10):
        for side, obj in (("client", client), ("server", server)):
            if not done[side]:
                try:
                    obj.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        _pump(c_out, s_in)
        _pump(s_out, c_in)
        if all(done.values()):
            break
    assert all(done.values())
    # Data both ways (this also delivers TLS 1.3's tickets to the client).
    client.write(b"ping")
    _pump(c_out, s_in)
    assert server.read(100) == b"ping"
    server.write(b"pong")
    _pump(s_out, c_in)
    assert client.read(100) == b"pong"
    return server, client


def test_wrap_bio_makes_connections_the_event_loop_can_drive(
    tmp_path: Path, ca: trustme.CA, leaves: dict[str, trustme.LeafCert]
) -> None:
    """The listener context's own wrap_bio (what the event loop calls once per
    connection): an SSLObject whose per-record methods are the C ones, which
    handshakes with SNI still choosing the certificate, carries data both
    ways, and resumes a client's session."""
    store = store_of(tmp_path, leaves, "a", "b")
    client_ctx = client_context(ca)
    session = None
    for attempt in range(2):
        server, client = _connect(store.context, client_ctx, "b.test", session)
        assert isinstance(server, ssl.SSLObject) and server.server_side
        for name in ("read", "write", "pending", "do_handshake"):
            assert type(getattr(server, name)).__name__ == "builtin_function_or_method", name
        assert peer_of(client).names == {"b.test"}  # chosen by SNI, as before
        assert client.session_reused == (attempt == 1)
        session = client.session


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_stores_given_one_ticket_key_resume_each_others_sessions(
    tmp_path: Path, ca: trustme.CA, leaves: dict[str, trustme.LeafCert], version: ssl.TLSVersion
) -> None:
    """What workers do: each builds its own store; with the supervisor's
    ticket key a session from one resumes on another, without it it does
    not (each process's OpenSSL draws its own keys)."""
    key = ticketkeys.new_key()
    first = store_of(tmp_path, leaves, "a", "b", ticket_key=key)
    same = store_of(tmp_path, leaves, "a", "b", ticket_key=key)
    other = store_of(tmp_path, leaves, "a", "b")
    assert first.shared_tickets and same.shared_tickets and not other.shared_tickets
    client_ctx = client_context(ca, max_version=version)
    _, client = _connect(first.context, client_ctx, "b.test")
    session = client.session
    assert session is not None and session.has_ticket
    _, resumed = _connect(same.context, client_ctx, "b.test", session)
    assert resumed.session_reused and resumed.version() == version.name.replace("v1_", "v1.")
    _, full = _connect(other.context, client_ctx, "b.test", session)
    assert not full.session_reused
    with pytest.raises(ValueError, match="80 bytes"):
        ticketkeys.install(first.context, b"short")


async def test_rsa_and_ecdsa_certificates_are_served(
    tmp_path: Path, ca: trustme.CA, leaves: dict[str, trustme.LeafCert]
) -> None:
    store = store_of(tmp_path, leaves, "a", "b")
    ctx = client_context(ca, max_version=ssl.TLSVersion.TLSv1_2)  # also TLS 1.2 suites
    async with serving(store) as srv:
        a = await fetch(srv.port, ctx, "a.test")
        b = await fetch(srv.port, ctx, "b.test")
    assert isinstance(a.public_key, rsa.RSAPublicKey)
    assert isinstance(b.public_key, ec.EllipticCurvePublicKey)
    assert a.version == b.version == "TLSv1.2"


def test_name_from_common_name_only_without_san(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CN-Only.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    assert certificate_names(cert) == ("cn-only.test",)


# --- protocol versions, ciphers, ALPN ---


def _permissive_server(leaf: trustme.LeafCert, tmp_path: Path) -> ssl.SSLContext:
    """A server that takes anything: proves the refused clients really can connect."""
    cert, key = write_pair(tmp_path, "permissive", leaf)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.load_cert_chain(cert, key)
    return ctx


def _legacy_client(ca: trustme.CA, *, max_version: ssl.TLSVersion, ciphers: str) -> ssl.SSLContext:
    ctx = client_context(ca)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = max_version
    ctx.set_ciphers(ciphers)
    return ctx


async def _accepted_by_permissive(port_ctx: ssl.SSLContext, client: ssl.SSLContext) -> str | None:
    async def handle(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ok\n")
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=port_ctx)
    async with server:
        peer = await fetch(server.sockets[0].getsockname()[1], client, "a.test")
    return peer.version


@pytest.mark.parametrize(
    ("max_version", "ciphers"),
    [
        pytest.param(ssl.TLSVersion.TLSv1_1, "DEFAULT:@SECLEVEL=0", id="tls1.1"),
        pytest.param(ssl.TLSVersion.TLSv1_2, "AES128-SHA:@SECLEVEL=0", id="rsa-kx-cbc"),
        pytest.param(ssl.TLSVersion.TLSv1_2, "AES128-GCM-SHA256", id="rsa-kx-aead"),
        pytest.param(ssl.TLSVersion.TLSv1_2, "ECDHE-RSA-AES128-SHA256", id="ecdhe-cbc"),
    ],
)
async def test_old_protocols_and_weak_ciphers_are_refused(
    tmp_path: Path,
    ca: trustme.CA,
    leaves: dict[str, trustme.LeafCert],
    max_version: ssl.TLSVersion,
    ciphers: str,
) -> None:
    client = _legacy_client(ca, max_version=max_version, ciphers=ciphers)
    # The same client gets through to a server that allows it: the refusal is ours.
    assert await _accepted_by_permissive(_permissive_server(leaves["a"], tmp_path), client)
    store = store_of(tmp_path, leaves, "a")
    async with serving(store) as srv:
        exc = await refused(srv.port, client, "a.test")
        assert srv.seen == []
    # The server said no (an alert, or a reset after it), the client did not give up.
    assert isinstance(exc, FAILED)
    if isinstance(exc, ssl.SSLError):
        assert "ALERT" in (exc.reason or ""), exc


async def test_minimum_tls13_refuses_a_tls12_client(
    tmp_path: Path, ca: trustme.CA, leaves: dict[str, trustme.LeafCert]
) -> None:
    store = store_of(tmp_path, leaves, "a", min_version="1.3")
    async with serving(store) as srv:
        exc = await refused(
            srv.port, client_context(ca, max_version=ssl.TLSVersion.TLSv1_2), "a.test"
        )
        assert isinstance(exc, FAILED)  # uvloop may reset rather than flush the alert
        if isinstance(exc, ssl.SSLError):
            assert exc.reason == "TLSV1_ALERT_PROTOCOL_VERSION"
        assert srv.seen == []
        assert (await fetch(srv.port, client_context(ca), "a.test")).version == "TLSv1.3"


async def test_tls12_negotiates_a_forward_secret_aead_suite(
    tmp_path: Path, ca: trustme.CA, leaves: dict[str, trustme.LeafCert]
) -> None:
    store = store_of(tmp_path, leaves, "a")
    ciphers = {c["name"] for c in store.context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert ciphers and all(c.startswith("ECDHE-") for c in ciphers)
    assert all(c["aead"] for c in store.context.get_ciphers())
    assert "@SECLEVEL=2" in TLS12_CIPHERS
    options = store.context.options
    assert ssl.OP_NO_COMPRESSION in options and ssl.OP_NO_RENEGOTIATION in options
    assert ssl.OP_CIPHER_SERVER_PREFERENCE in options and ssl.OP_NO_TICKET not in options


async def test_alpn_negotiates_http11(
    tmp_path: Path, ca: trustme.CA, leaves: dict[str, trustme.LeafCert]
) -> None:
    store = store_of(tmp_path, leaves, "a", "b")
    ctx = client_context(ca)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    async with serving(store) as srv:
        for name in ("a.test", "b.test"):  # also on a context switched to by SNI
            assert (await fetch(srv.port, ctx, name)).alpn == "http/1.1"
        assert [s.alpn for s in srv.seen] == ["http/1.1", "http/1.1"]
    assert store.handshakes == {"TLSv1.3": 2}


# --- client certificates ---


@pytest.fixture
def mtls_store(
    tmp_path: Path, ca: trustme.CA, leaves: dict[str, trustme.LeafCert]
) -> CertificateStore:
    ca_path = tmp_path / "clients.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    return store_of(tmp_path, leaves, "a", "b", client_ca=str(ca_path))


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_mtls_accepts_a_client_certificate_from_the_ca(
    mtls_store: CertificateStore, ca: trustme.CA, version: ssl.TLSVersion
) -> None:
    client_cert = ca.issue_cert(
        "client.test", common_name="alice", organization_name="Example Corp"
    )
    ctx = client_context(ca, max_version=version)
    client_cert.configure_cert(ctx)
    expected = x509.load_pem_x509_certificate(client_cert.cert_chain_pems[0].bytes())
    async with serving(mtls_store) as srv:
        await fetch(srv.port, ctx, "b.test")  # SNI-switched context verifies too
        await fetch(srv.port, ctx, "a.test")
    subjects = [s.subject for s in srv.seen]
    assert subjects == [expected.subject.rfc4514_string()] * 2
    assert subjects[0] is not None and "CN=alice" in subjects[0]


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_mtls_refuses_clients_without_a_valid_certificate(
    mtls_store: CertificateStore, ca: trustme.CA, version: ssl.TLSVersion
) -> None:
    stranger = trustme.CA().issue_cert("client.test")  # signed by another CA
    anonymous = client_context(ca, max_version=version)
    foreign = client_context(ca, max_version=version)
    stranger.configure_cert(foreign)
    async with serving(mtls_store) as srv:
        for ctx in (anonymous, foreign):
            exc = await refused(srv.port, ctx, "a.test")
            assert isinstance(exc, (*FAILED, EOFError))
        assert srv.seen == []


async def test_no_client_subject_without_client_ca(
    tmp_path: Path, ca: trustme.CA, leaves: dict[str, trustme.LeafCert]
) -> None:
    store = store_of(tmp_path, leaves, "a")
    ctx = client_context(ca)
    ca.issue_cert("client.test").configure_cert(ctx)  # offered, never asked for
    async with serving(store) as srv:
        await fetch(srv.port, ctx, "a.test")
    assert [s.subject for s in srv.seen] == [None]
    assert client_subject(None) is None


# --- reload ---


async def test_reload_serves_the_new_certificate_to_new_connections(
    tmp_path: Path, ca: trustme.CA, leaves: dict[str, trustme.LeafCert]
) -> None:
    store = store_of(tmp_path, leaves, "a", "b")
    cert, key = str(tmp_path / "a.pem"), str(tmp_path / "a.key")
    loose = client_context(ca, check_hostname=False)
    async with serving(store) as srv:
        assert (await fetch(srv.port, loose, "a.test")).serial == serial(leaves["a"])
        assert not store.changed()
        write_cert(cert, leaves["a2"])
        write_key(key, leaves["a2"])
        assert store.changed()
        store.reload()
        assert not store.changed()
        for name in ("a.test", "new.test", None):  # by name, and as the default
            assert (await fetch(srv.port, loose, name)).serial == serial(leaves["a2"])
        assert (await fetch(srv.port, loose, "b.test")).serial == serial(leaves["b"])
    assert store.names()["new.test"] == cert


@pytest.mark.parametrize("broken", ["garbage-cert", "foreign-key", "missing-key"])
async def test_a_broken_reload_keeps_the_old_certificate(
    tmp_path: Path, ca: trustme.CA, leaves: dict[str, trustme.LeafCert], broken: str
) -> None:
    store = store_of(tmp_path, leaves, "a")
    cert, key = str(tmp_path / "a.pem"), str(tmp_path / "a.key")
    if broken == "garbage-cert":
        Path(cert).write_bytes(b"this is not a certificate\n")
        message = f"{cert}: not a PEM certificate"
    elif broken == "foreign-key":
        write_cert(cert, leaves["a2"])  # the new cert is there, its key not yet
        message = f"{key}: does not match {cert}"
    else:
        os.unlink(key)
        message = f"{key}: no such file"
    ctx = client_context(ca)
    async with serving(store) as srv:
        with pytest.raises(TlsError) as info:
            store.reload()
        assert str(info.value) == message
        assert (await fetch(srv.port, ctx, "a.test")).serial == serial(leaves["a"])
    assert not store.changed()  # the failed attempt is remembered: no retry each poll


async def test_reload_while_clients_keep_connecting(
    tmp_path: Path, ca: trustme.CA, leaves: dict[str, trustme.LeafCert]
) -> None:
    store = store_of(tmp_path, leaves, "a")
    cert, key = str(tmp_path / "a.pem"), str(tmp_path / "a.key")
    ctx = client_context(ca)
    serials = {serial(leaves["a"]), serial(leaves["a2"])}

    async def client(srv: TlsServer) -> list[int]:
        return [(await fetch(srv.port, ctx, "a.test")).serial for _ in range(15)]

    async with serving(store) as srv:
        clients = [asyncio.create_task(client(srv)) for _ in range(4)]
        for i in range(12):
            leaf = leaves["a2" if i % 2 == 0 else "a"]
            write_cert(cert, leaf)
            write_key(key, leaf)
            store.reload()
            await asyncio.sleep(0)  # let handshakes run between reloads
        seen = await asyncio.wait_for(asyncio.gather(*clients), 4 * TIMEOUT)
    assert {s for run in seen for s in run} <= serials
    assert sum(store.handshakes.values()) == 60


async def test_poll_and_watch_reload_on_change_and_log(
    tmp_path: Path,
    ca: trustme.CA,
    leaves: dict[str, trustme.LeafCert],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="lbproxy")
    store = store_of(tmp_path, leaves, "a")
    cert, key = str(tmp_path / "a.pem"), str(tmp_path / "a.key")
    assert store.poll() is None
    write_cert(cert, leaves["a2"])
    assert store.poll() is False
    assert f"{key}: does not match {cert}" in caplog.text
    assert store.poll() is None  # nothing new since the failed attempt
    write_key(key, leaves["a2"])
    assert store.poll() is True
    assert "new.test" in store.names()

    watcher = asyncio.create_task(store.watch(0.01))
    try:
        write_cert(cert, leaves["a"])
        write_key(key, leaves["a"])
        for _ in range(500):
            if "new.test" not in store.names():
                break
            await asyncio.sleep(0.01)
        assert "new.test" not in store.names()
    finally:
        watcher.cancel()
        with suppress(asyncio.CancelledError):
            await watcher
    assert caplog.text.count("certificates reloaded") == 2


# --- startup errors ---


def test_startup_errors_name_the_file(
    tmp_path: Path, ca: trustme.CA, leaves: dict[str, trustme.LeafCert]
) -> None:
    cert, key = write_pair(tmp_path, "a", leaves["a"])
    _, other_key = write_pair(tmp_path, "b", leaves["b"])
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(
        b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"
    )
    missing = str(tmp_path / "missing.pem")
    cases = {
        (missing, key): f"{missing}: no such file",
        (cert, missing): f"{missing}: no such file",
        (cert, other_key): f"{other_key}: does not match {cert}",
        (str(garbage), key): f"{garbage}: not a PEM certificate",
        (cert, cert): f"{cert}: not a PEM private key",
    }
    for pair, message in cases.items():
        with pytest.raises(TlsError) as info:
            CertificateStore(TlsSettings(certificates=(pair,)))
        assert str(info.value) == message
    with pytest.raises(TlsError, match=f"{missing}: no such file"):
        CertificateStore(TlsSettings(certificates=((cert, key),), client_ca=missing))
    with pytest.raises(TlsError, match="min_version"):
        CertificateStore(TlsSettings(certificates=((cert, key),), min_version="1.1"))
    with pytest.raises(TlsError, match="at least one"):
        CertificateStore(TlsSettings(certificates=()))


# --- session resumption ---


def _blocking_fetch(
    port: int, ctx: ssl.SSLContext, name: str, session: ssl.SSLSession | None
) -> tuple[ssl.SSLSession | None, bool]:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname=name, session=session) as tls:
            data = b""
            while chunk := tls.recv(64):  # TLS 1.3 tickets arrive with the data
                data += chunk
            assert data == b"ok\n"
            return tls.session, tls.session_reused


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
@pytest.mark.parametrize("name", ["a.test", "b.test"])  # the default, and one picked by SNI
async def test_session_resumption(
    tmp_path: Path,
    ca: trustme.CA,
    leaves: dict[str, trustme.LeafCert],
    version: ssl.TLSVersion,
    name: str,
) -> None:
    store = store_of(tmp_path, leaves, "a", "b")
    ctx = client_context(ca, max_version=version)
    async with serving(store) as srv:
        session, reused = await asyncio.to_thread(_blocking_fetch, srv.port, ctx, name, None)
        assert session is not None and not reused
        _, reused = await asyncio.to_thread(_blocking_fetch, srv.port, ctx, name, session)
        assert reused
    assert [s.reused for s in srv.seen] == [False, True]
    assert store.resumed == 1


@pytest.mark.parametrize(
    ("group", "accepted"),
    [("X25519", True), ("P-256", True), ("P-384", True), ("X448", False), ("P-521", False)],
)
async def test_key_exchange_groups_are_those_of_mozilla_intermediate(
    tmp_path: Path,
    leaves: dict[str, trustme.LeafCert],
    group: str,
    accepted: bool,
) -> None:
    # openssl s_client offers exactly one group; OpenSSL's defaults would take all five.
    store = store_of(tmp_path, leaves, "b")
    async with serving(store) as srv:
        proc = await asyncio.create_subprocess_exec(
            "openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}",
            "-servername", "b.test", "-groups", group, "-tls1_3",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    text = out.decode(errors="replace")
    assert ("Cipher is TLS_" in text) == accepted, text
