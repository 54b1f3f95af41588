"""Server-side TLS: certificates chosen by SNI, secure defaults, hot reload.

Theory of operation
-------------------
A listener's connections start on a front context (lbproxy._fast.tlsconn): the
pure engine uses `CertificateStore.context`, the compiled one a twin of it from
`new_front()`. A front context is never replaced and holds no certificate of its
own: on every handshake an SNI callback (``sni_callback`` here, a C one in the
compiled engine; OpenSSL calls it with no name when the client sends no SNI) moves
the connection to the context of the certificate that answers the name
(`context_for`: exact name, then a one-label wildcard, else the default, the first
certificate). What the callback reads is one immutable `_Snapshot`; `reload()`
builds a complete new one and swaps the reference, so a handshake sees either the old
certificates or the new, never a mix, and connections already up are untouched.

The per-connection settings (protocol versions, ciphers, verify mode) are copied from
the front context when the connection is created, so every context is built by the
same `server_context()` and they agree. The session cache and ticket keys live in the
front context too (OpenSSL's session_ctx), so resumption survives a reload.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field

from cryptography import x509

from lbproxy.tls import ticketkeys
from lbproxy.tls.certfiles import (
    CertificatePair,
    FileStamp,
    read_ca_bundle,
    read_pair,
    stamp,
)
from lbproxy.tls.errors import TlsError
from lbproxy.tls.groups import restrict_groups
from lbproxy.tls.sni import NameTable

__all__ = [
    "TLS12_CIPHERS",
    "CertificateStore",
    "TlsError",
    "TlsSettings",
    "client_subject",
    "server_context",
]

log = logging.getLogger("lbproxy")

# TLS 1.2: ECDHE key exchange (forward secret) with AEAD ciphers only, ECDSA first
# (cheaper to sign), AES-GCM before ChaCha20 (AES-NI). TLS 1.3 suites are all AEAD and
# forward secret; OpenSSL's defaults are kept. SECLEVEL=2 refuses RSA keys under 2048
# bits and SHA-1 signatures.
TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "@SECLEVEL=2",
    )
)

# OP_NO_RENEGOTIATION needs OpenSSL 1.1.0h; no renegotiation is offered on older ones
# for TLS 1.3 anyway, and TLS 1.2 renegotiation then stays as OpenSSL has it.
_OPTIONS = (
    ssl.OP_NO_COMPRESSION
    | ssl.OP_CIPHER_SERVER_PREFERENCE
    | ssl.OP_SINGLE_DH_USE
    | ssl.OP_SINGLE_ECDH_USE
    | ssl.Options(getattr(ssl, "OP_NO_RENEGOTIATION", 0))
)

_MIN_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """What ``listeners[].tls`` asks for (paths as given, relative to the cwd)."""

    certificates: tuple[tuple[str, str], ...]  # (cert, key); the first is the default
    min_version: str = "1.2"  # "1.2" | "1.3"
    alpn: tuple[str, ...] = ("http/1.1",)
    client_ca: str | None = None  # require client certificates signed by it

    def check(self) -> None:
        if not self.certificates:
            raise TlsError("tls.certificates: at least one certificate is needed")
        if self.min_version not in _MIN_VERSIONS:
            raise TlsError(f'tls.min_version: must be "1.2" or "1.3", got {self.min_version!r}')

    def files(self) -> tuple[str, ...]:
        paths = [p for pair in self.certificates for p in pair]
        if self.client_ca is not None:
            paths.append(self.client_ca)
        return tuple(dict.fromkeys(paths))


class ServerContext(ssl.SSLContext):
    """The listener's context, whose ``wrap_bio`` (called once per connection
    by the pure TLS engine, lbproxy._fast.tlsconn_py) is cheaper in two ways:

    * It makes the ``ssl.SSLObject`` in one Python frame, where ssl.py takes
      three (``wrap_bio``, then the object class's ``_create`` twice over, all
      with keyword calls): about 4k instructions of a connection's set-up. The
      C object it wraps is made the same way, with the same arguments.
    * The engine calls ``read``, ``write`` and ``pending`` for every record;
      ``ssl.SSLObject`` defines each as a Python method that only forwards
      to the C object, one Python frame per call. Bound to the C methods as
      instance attributes, they are found first. Results are the same; the
      one difference is that ``read`` takes its size positionally and has no
      default, as the engine calls it. Methods called once per connection
      keep ssl.py's versions.
    """

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        obj = ssl.SSLObject.__new__(ssl.SSLObject)  # its __init__ refuses direct use
        if server_hostname is not None:  # a server side has none; encoded as ssl.py does
            server_hostname = self._encode_hostname(server_hostname)  # type: ignore[attr-defined]
        inner = self._wrap_bio(  # type: ignore[attr-defined]
            incoming,
            outgoing,
            server_side=server_side,
            server_hostname=server_hostname,
            owner=obj,
            session=session,
        )
        obj._sslobj = inner  # type: ignore[attr-defined]
        obj.read = inner.read  # type: ignore[method-assign]
        obj.write = inner.write  # type: ignore[method-assign]
        obj.pending = inner.pending  # type: ignore[method-assign]
        obj.do_handshake = inner.do_handshake  # type: ignore[method-assign]
        return obj


def server_context(settings: TlsSettings, ca_pem: str | None) -> ssl.SSLContext:
    """A server context with the secure defaults and no certificate loaded yet."""
    ctx = ServerContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _MIN_VERSIONS[settings.min_version]
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= _OPTIONS
    ctx.options &= ~ssl.OP_NO_TICKET  # tickets on: resumption without a shared cache
    restrict_groups(ctx)  # no X448 or P-521 (Mozilla intermediate)
    if settings.alpn:
        ctx.set_alpn_protocols(list(settings.alpn))
    if ca_pem is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=ca_pem)
    return ctx


def _load_chain(ctx: ssl.SSLContext, pair: CertificatePair) -> None:
    try:
        ctx.load_cert_chain(pair.cert, pair.key)
    except FileNotFoundError as exc:  # replaced between our check and OpenSSL's read
        raise TlsError(f"{exc.filename or pair.cert}: no such file") from None
    except ssl.SSLError as exc:
        raise TlsError(f"{pair.cert}: rejected by OpenSSL: {exc.reason or exc}") from None


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """Everything one generation of certificates serves; swapped whole on reload."""

    default: ssl.SSLContext
    table: NameTable[ssl.SSLContext]
    names: dict[str, str]  # name -> cert path
    ca_pem: str | None = None
    stamps: dict[str, FileStamp] = field(default_factory=dict)


def _load(settings: TlsSettings) -> _Snapshot:
    # Stamps first: a file rewritten while we read it then shows as changed next poll.
    stamps = {path: stamp(path) for path in settings.files()}
    ca_pem = read_ca_bundle(settings.client_ca) if settings.client_ca is not None else None
    entries: list[tuple[tuple[str, ...], ssl.SSLContext]] = []
    names: dict[str, str] = {}
    for cert_path, key_path in settings.certificates:
        pair = read_pair(cert_path, key_path)
        ctx = server_context(settings, ca_pem)
        _load_chain(ctx, pair)
        entries.append((pair.names, ctx))
        for name in pair.names:
            names.setdefault(name, pair.cert)
    return _Snapshot(entries[0][1], NameTable(entries), names, ca_pem, stamps)


class CertificateStore:
    """The certificates of one TLS listener, chosen by SNI and reloadable."""

    def __init__(self, settings: TlsSettings, ticket_key: bytes | None = None) -> None:
        """``ticket_key`` (lbproxy.tls.ticketkeys): session tickets encrypted
        with it, so that processes given the same key resume each other's
        sessions; None keeps OpenSSL's random keys, this process's own."""
        settings.check()
        self.settings = settings
        self._snapshot = _load(settings)
        self._seen = self._snapshot.stamps
        self.context = server_context(settings, self._snapshot.ca_pem)
        self.context.sni_callback = self._on_server_name
        # Tickets are sealed and opened with the keys of the context a
        # connection starts with (this one), whichever certificate SNI picks.
        self.shared_tickets = ticket_key is not None and ticketkeys.install(
            self.context, ticket_key
        )
        self._ticket_key = ticket_key
        self.handshakes: dict[str, int] = {}  # TLS version -> completed handshakes
        self.resumed = 0  # of those, how many resumed a session

    def _on_server_name(
        self, conn: ssl.SSLObject, server_name: str | None, _front: ssl.SSLContext
    ) -> None:
        snapshot = self._snapshot  # one read: this handshake sees one generation
        conn.context = snapshot.table.lookup(server_name) or snapshot.default

    def new_front(self) -> ssl.SSLContext:
        """Another front context like ``context`` (same settings, same ticket
        key when one was given) but without its Python SNI callback: for a
        TLS engine that installs its own on the SSL_CTX (lbproxy._fast.tlsconn),
        which must not meet the connections of ``context``."""
        ctx = server_context(self.settings, self._snapshot.ca_pem)
        if self._ticket_key is not None:
            ticketkeys.install(ctx, self._ticket_key)
        return ctx

    def generation(self) -> object:
        """What changes identity on every successful reload (and only then)."""
        return self._snapshot

    def names(self) -> dict[str, str]:
        """Server name (``*.example.com`` for wildcards) -> certificate file."""
        return dict(self._snapshot.names)

    def context_for(self, server_name: str | None) -> ssl.SSLContext:
        """The context a client sending this SNI gets (the default for None/unknown)."""
        snapshot = self._snapshot
        return snapshot.table.lookup(server_name) or snapshot.default

    def changed(self) -> bool:
        """Whether a file changed (mtime, size, inode) since the last load attempt."""
        return any(stamp(path) != seen for path, seen in self._seen.items())

    def reload(self) -> None:
        """Re-read every file; on TlsError the old certificates keep serving."""
        stamps = {path: stamp(path) for path in self.settings.files()}
        try:
            snapshot = _load(self.settings)
        except TlsError:
            self._seen = stamps  # retry when the files change again, not every poll
            raise
        self._snapshot = snapshot
        self._seen = snapshot.stamps

    def poll(self) -> bool | None:
        """Reload if a file changed, logging the outcome.

        True: reloaded; False: a reload failed (logged, old certificates kept);
        None: nothing changed.
        """
        if not self.changed():
            return None
        try:
            self.reload()
        except TlsError as exc:
            log.error("tls: certificate reload failed, keeping the old ones: %s", exc)
            return False
        log.info("tls: certificates reloaded (%s)", ", ".join(sorted(self.names())) or "-")
        return True

    async def watch(self, interval: float) -> None:
        """Poll the files every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            self.poll()

    def record_handshake(self, conn: ssl.SSLObject | ssl.SSLSocket | None) -> None:
        """Count a completed handshake; call it once the connection is up."""
        if conn is None:
            return
        version = conn.version() or "unknown"
        self.handshakes[version] = self.handshakes.get(version, 0) + 1
        if conn.session_reused:
            self.resumed += 1


def client_subject(conn: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
    """The client certificate's subject as RFC 4514 text (``CN=alice,O=Example``).

    Only with ``client_ca`` is the certificate requested and verified; otherwise
    there is none and this returns None.
    """
    if conn is None:
        return None
    der = conn.getpeercert(binary_form=True)
    if not der:
        return None
    try:
        return x509.load_der_x509_certificate(der).subject.rfc4514_string()
    except ValueError:
        return None
