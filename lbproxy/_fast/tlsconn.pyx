# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Server-side TLS connections driven straight on OpenSSL (twin: tlsconn_py.py).

See tlsconn_py.py for what a ``TlsServer`` is and does; this is the same
protocol with OpenSSL's SSL object and memory BIOs called from C. The event
loop's own TLS transport goes through ``ssl.SSLObject``: a Python call per
record, an ``SSLWantReadError`` raised and caught (with OpenSSL's error queue
read into it) every time the input runs dry, and a Python-level SNI callback.
Here each of those is a C call or an int compared.

OpenSSL is not linked at build time: the functions are taken from the libssl
that Python's ``ssl`` module already mapped (lbproxy.tls.libssl), so the
SSL_CTX of an ``ssl.SSLContext`` (whose certificates, versions, ciphers,
ALPN and verification Python set up) can be used here. ``bind()`` fails, and
lbproxy uses the twin, where that library or any function is not there.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uintptr_t

import logging

from lbproxy._fast import load as _load_fast
from lbproxy._fast.tlsconn_py import NAMES_CACHED, TlsFailed

log = logging.getLogger("lbproxy")
_proxyproto = _load_fast("proxyproto")
_parse_proxy = _proxyproto.parse
ProxyProtocolError = _proxyproto.ProxyProtocolError

# OpenSSL's types, opaque here.
ctypedef void SSL
ctypedef void SSL_CTX
ctypedef void BIO
ctypedef void BIO_METHOD
ctypedef void X509
ctypedef int (*servername_cb)(SSL*, int*, void*) noexcept
ctypedef void (*generic_cb)() noexcept

ctypedef SSL* (*f_SSL_new)(SSL_CTX*) noexcept nogil
ctypedef void (*f_SSL_free)(SSL*) noexcept nogil
ctypedef void (*f_SSL_set_bio)(SSL*, BIO*, BIO*) noexcept nogil
ctypedef void (*f_SSL_set_accept_state)(SSL*) noexcept nogil
ctypedef long (*f_SSL_ctrl)(SSL*, int, long, void*) noexcept nogil
ctypedef int (*f_SSL_set_ex_data)(SSL*, int, void*) noexcept nogil
ctypedef void* (*f_SSL_get_ex_data)(const SSL*, int) noexcept nogil
ctypedef int (*f_SSL_io0)(SSL*) noexcept nogil
ctypedef int (*f_SSL_read)(SSL*, void*, int) noexcept nogil
ctypedef int (*f_SSL_write)(SSL*, const void*, int) noexcept nogil
ctypedef int (*f_SSL_get_error)(const SSL*, int) noexcept nogil
ctypedef const char* (*f_SSL_get_servername)(const SSL*, int) noexcept nogil
ctypedef SSL_CTX* (*f_SSL_set_SSL_CTX)(SSL*, SSL_CTX*) noexcept nogil
ctypedef const char* (*f_SSL_get_version)(const SSL*) noexcept nogil
ctypedef int (*f_SSL_const0)(const SSL*) noexcept nogil
ctypedef void (*f_SSL_get0_alpn_selected)(const SSL*, const unsigned char**, unsigned int*) noexcept nogil
ctypedef X509* (*f_SSL_get1_peer_certificate)(const SSL*) noexcept nogil
ctypedef long (*f_SSL_CTX_callback_ctrl)(SSL_CTX*, int, generic_cb) noexcept nogil
ctypedef long (*f_SSL_CTX_ctrl)(SSL_CTX*, int, long, void*) noexcept nogil
ctypedef const BIO_METHOD* (*f_BIO_s_mem)() noexcept nogil
ctypedef BIO* (*f_BIO_new)(const BIO_METHOD*) noexcept nogil
ctypedef int (*f_BIO_write)(BIO*, const void*, int) noexcept nogil
ctypedef int (*f_BIO_read)(BIO*, void*, int) noexcept nogil
ctypedef long (*f_BIO_ctrl)(BIO*, int, long, void*) noexcept nogil
ctypedef void (*f_ERR_clear_error)() noexcept nogil
ctypedef unsigned long (*f_ERR_get_error)() noexcept nogil
ctypedef void (*f_ERR_error_string_n)(unsigned long, char*, size_t) noexcept nogil
ctypedef int (*f_i2d_X509)(X509*, unsigned char**) noexcept nogil
ctypedef void (*f_X509_free)(X509*) noexcept nogil

cdef f_SSL_new SSL_new
cdef f_SSL_free SSL_free
cdef f_SSL_set_bio SSL_set_bio
cdef f_SSL_set_accept_state SSL_set_accept_state
cdef f_SSL_ctrl SSL_ctrl
cdef f_SSL_set_ex_data SSL_set_ex_data
cdef f_SSL_get_ex_data SSL_get_ex_data
cdef f_SSL_io0 SSL_do_handshake
cdef f_SSL_io0 SSL_shutdown
cdef f_SSL_read SSL_read
cdef f_SSL_write SSL_write
cdef f_SSL_get_error SSL_get_error
cdef f_SSL_get_servername SSL_get_servername
cdef f_SSL_set_SSL_CTX SSL_set_SSL_CTX
cdef f_SSL_get_version SSL_get_version
cdef f_SSL_const0 SSL_session_reused
cdef f_SSL_const0 SSL_pending
cdef f_SSL_get0_alpn_selected SSL_get0_alpn_selected
cdef f_SSL_get1_peer_certificate SSL_get1_peer_certificate
cdef f_SSL_CTX_callback_ctrl SSL_CTX_callback_ctrl
cdef f_SSL_CTX_ctrl SSL_CTX_ctrl
cdef f_BIO_s_mem BIO_s_mem
cdef f_BIO_new BIO_new
cdef f_BIO_write BIO_write
cdef f_BIO_read BIO_read
cdef f_BIO_ctrl BIO_ctrl
cdef f_ERR_clear_error ERR_clear_error
cdef f_ERR_get_error ERR_get_error
cdef f_ERR_error_string_n ERR_error_string_n
cdef f_i2d_X509 i2d_X509
cdef f_X509_free X509_free

# The functions bind() needs, as lbproxy.tls.libssl.addresses takes them.
FUNCTIONS = (
    "SSL_new", "SSL_free", "SSL_set_bio", "SSL_set_accept_state", "SSL_ctrl",
    "SSL_set_ex_data", "SSL_get_ex_data", "SSL_do_handshake", "SSL_shutdown",
    "SSL_read", "SSL_write", "SSL_get_error", "SSL_get_servername", "SSL_set_SSL_CTX",
    "SSL_get_version", "SSL_session_reused", "SSL_pending", "SSL_get0_alpn_selected",
    "SSL_get1_peer_certificate|SSL_get_peer_certificate", "SSL_CTX_callback_ctrl",
    "SSL_CTX_ctrl", "BIO_s_mem", "BIO_new", "BIO_write", "BIO_read", "BIO_ctrl",
    "ERR_clear_error", "ERR_get_error", "ERR_error_string_n", "i2d_X509", "X509_free",
)

# openssl/ssl.h and bio.h
DEF SSL_ERROR_SSL = 1
DEF SSL_ERROR_WANT_READ = 2
DEF SSL_ERROR_WANT_WRITE = 3
DEF SSL_ERROR_ZERO_RETURN = 6
DEF SSL_CTRL_MODE = 33
DEF SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER = 2
DEF SSL_MODE_AUTO_RETRY = 4
DEF SSL_MODE_RELEASE_BUFFERS = 16
DEF SSL_CTRL_SET_TLSEXT_SERVERNAME_CB = 53
DEF SSL_CTRL_SET_TLSEXT_SERVERNAME_ARG = 54
DEF SSL_TLSEXT_ERR_OK = 0
DEF SSL_TLSEXT_ERR_ALERT_FATAL = 2
DEF SSL_AD_INTERNAL_ERROR = 80
DEF TLSEXT_NAMETYPE_host_name = 0
DEF BIO_CTRL_PENDING = 10
DEF BIO_C_SET_BUF_MEM_EOF_RETURN = 130

# States of a TlsServer.
DEF S_PROXY = 0  # reading the PROXY header, in the clear
DEF S_HANDSHAKE = 1
DEF S_OPEN = 2  # handshake done, the protocol connected
DEF S_SHUT = 3  # close_notify sent (write_eof); still reading
DEF S_CLOSED = 4

DEF READ_CHUNK = 65536

# Decrypted input is read here, then copied into one bytes object of the
# size read: a connection never holds a 64 KiB buffer of its own. One for
# the module: the event loop's thread holds the GIL throughout.
cdef char _rbuf[READ_CHUNK]

cdef bint _bound = False


def bind(dict addrs):
    """Take the OpenSSL functions at these addresses (FUNCTIONS' keys)."""
    global SSL_new, SSL_free, SSL_set_bio, SSL_set_accept_state, SSL_ctrl
    global SSL_set_ex_data, SSL_get_ex_data, SSL_do_handshake, SSL_shutdown
    global SSL_read, SSL_write, SSL_get_error, SSL_get_servername, SSL_set_SSL_CTX
    global SSL_get_version, SSL_session_reused, SSL_pending, SSL_get0_alpn_selected
    global SSL_get1_peer_certificate, SSL_CTX_callback_ctrl, SSL_CTX_ctrl
    global BIO_s_mem, BIO_new, BIO_write, BIO_read, BIO_ctrl
    global ERR_clear_error, ERR_get_error, ERR_error_string_n, i2d_X509, X509_free
    global _bound
    cdef dict a = {name: <uintptr_t>addrs[name] for name in FUNCTIONS}
    SSL_new = <f_SSL_new><uintptr_t>a["SSL_new"]
    SSL_free = <f_SSL_free><uintptr_t>a["SSL_free"]
    SSL_set_bio = <f_SSL_set_bio><uintptr_t>a["SSL_set_bio"]
    SSL_set_accept_state = <f_SSL_set_accept_state><uintptr_t>a["SSL_set_accept_state"]
    SSL_ctrl = <f_SSL_ctrl><uintptr_t>a["SSL_ctrl"]
    SSL_set_ex_data = <f_SSL_set_ex_data><uintptr_t>a["SSL_set_ex_data"]
    SSL_get_ex_data = <f_SSL_get_ex_data><uintptr_t>a["SSL_get_ex_data"]
    SSL_do_handshake = <f_SSL_io0><uintptr_t>a["SSL_do_handshake"]
    SSL_shutdown = <f_SSL_io0><uintptr_t>a["SSL_shutdown"]
    SSL_read = <f_SSL_read><uintptr_t>a["SSL_read"]
    SSL_write = <f_SSL_write><uintptr_t>a["SSL_write"]
    SSL_get_error = <f_SSL_get_error><uintptr_t>a["SSL_get_error"]
    SSL_get_servername = <f_SSL_get_servername><uintptr_t>a["SSL_get_servername"]
    SSL_set_SSL_CTX = <f_SSL_set_SSL_CTX><uintptr_t>a["SSL_set_SSL_CTX"]
    SSL_get_version = <f_SSL_get_version><uintptr_t>a["SSL_get_version"]
    SSL_session_reused = <f_SSL_const0><uintptr_t>a["SSL_session_reused"]
    SSL_pending = <f_SSL_const0><uintptr_t>a["SSL_pending"]
    SSL_get0_alpn_selected = <f_SSL_get0_alpn_selected><uintptr_t>a["SSL_get0_alpn_selected"]
    SSL_get1_peer_certificate = <f_SSL_get1_peer_certificate><uintptr_t>a[
        "SSL_get1_peer_certificate|SSL_get_peer_certificate"
    ]
    SSL_CTX_callback_ctrl = <f_SSL_CTX_callback_ctrl><uintptr_t>a["SSL_CTX_callback_ctrl"]
    SSL_CTX_ctrl = <f_SSL_CTX_ctrl><uintptr_t>a["SSL_CTX_ctrl"]
    BIO_s_mem = <f_BIO_s_mem><uintptr_t>a["BIO_s_mem"]
    BIO_new = <f_BIO_new><uintptr_t>a["BIO_new"]
    BIO_write = <f_BIO_write><uintptr_t>a["BIO_write"]
    BIO_read = <f_BIO_read><uintptr_t>a["BIO_read"]
    BIO_ctrl = <f_BIO_ctrl><uintptr_t>a["BIO_ctrl"]
    ERR_clear_error = <f_ERR_clear_error><uintptr_t>a["ERR_clear_error"]
    ERR_get_error = <f_ERR_get_error><uintptr_t>a["ERR_get_error"]
    ERR_error_string_n = <f_ERR_error_string_n><uintptr_t>a["ERR_error_string_n"]
    i2d_X509 = <f_i2d_X509><uintptr_t>a["i2d_X509"]
    X509_free = <f_X509_free><uintptr_t>a["X509_free"]
    _bound = True


def available():
    """Whether ``bind`` succeeded: this engine can run in this process."""
    if not _bound:
        from lbproxy.tls import libssl

        addrs = libssl.addresses(FUNCTIONS)
        if addrs is not None:
            bind(addrs)
    return _bound


cdef str _error_text():
    """OpenSSL's first queued error as text, the queue emptied."""
    cdef unsigned long code = ERR_get_error()
    cdef char buf[256]
    if code == 0:
        return "unexpected end of the TLS stream"
    ERR_error_string_n(code, buf, sizeof(buf))
    ERR_clear_error()
    return buf.decode("ascii", "replace")


cdef int _on_server_name(SSL* s, int* alert, void* arg) noexcept with gil:
    # OpenSSL calls this on every ClientHello (with no name when the client
    # sends none): move the connection to its certificate's SSL_CTX.
    cdef void* owner = SSL_get_ex_data(s, 0)
    cdef const char* name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name)
    if owner == NULL:  # not one of ours: nothing to choose with
        alert[0] = SSL_AD_INTERNAL_ERROR
        return SSL_TLSEXT_ERR_ALERT_FATAL
    cdef TlsServer conn = <TlsServer>owner
    try:
        key = None
        if name != NULL:
            key = <bytes>name
        ctx, ptr = conn.front.pick(key)
        SSL_set_SSL_CTX(s, <SSL_CTX*><uintptr_t>ptr)
        conn.ctx = ctx  # keeps it (and the ALPN list its callback reads) alive
        return SSL_TLSEXT_ERR_OK
    except BaseException:
        log.exception("tls: choosing a certificate failed")
        alert[0] = SSL_AD_INTERNAL_ERROR
        return SSL_TLSEXT_ERR_ALERT_FATAL


cdef class Front:
    """What a listener's connections share: the front context they start
    with (no certificate of its own; the SNI callback moves each connection
    to its certificate's context) and the certificate store."""

    cdef public object store
    cdef public object context
    cdef public str name  # the listener's, for the log
    cdef SSL_CTX* ctx
    cdef object _snapshot
    cdef dict _picked  # SNI name (bytes or None) -> (SSLContext, SSL_CTX pointer)

    def __init__(self, store, str name="tls"):
        if not available():
            raise TlsFailed("OpenSSL's functions are not reachable from this process")
        from lbproxy.tls import libssl

        self.store = store
        self.name = name
        self.context = store.new_front()
        ptr = libssl.ctx_pointer(self.context)
        if ptr is None:
            raise TlsFailed("the SSL_CTX of the listener's context is not reachable")
        self.ctx = <SSL_CTX*><uintptr_t>ptr
        SSL_CTX_callback_ctrl(
            self.ctx, SSL_CTRL_SET_TLSEXT_SERVERNAME_CB, <generic_cb>_on_server_name
        )
        SSL_CTX_ctrl(self.ctx, SSL_CTRL_SET_TLSEXT_SERVERNAME_ARG, 0, NULL)
        self._snapshot = None
        self._picked = {}

    cpdef tuple pick(self, object name):
        """The context (and its SSL_CTX) for an SNI name as sent (bytes, or None)."""
        snapshot = self.store.generation()
        if snapshot is not self._snapshot:  # a reload: choose afresh
            self._snapshot = snapshot
            self._picked = {}
        found = self._picked.get(name)
        if found is not None:
            return <tuple>found
        text = None if name is None else (<bytes>name).decode("latin-1")
        ctx = self.store.context_for(text)
        from lbproxy.tls import libssl

        ptr = libssl.ctx_pointer(ctx)
        if ptr is None:
            raise TlsFailed("a certificate's SSL_CTX is not reachable")
        if len(self._picked) >= NAMES_CACHED:  # names are the client's to invent
            self._picked = {}
        found = self._picked[name] = (ctx, ptr)
        return <tuple>found


cdef class TlsServer:
    """The protocol of one accepted TCP connection of a TLS listener, and the
    transport of the HTTP protocol it serves (see tlsconn_py.TlsServer)."""

    cdef readonly Front front
    cdef public object ctx
    cdef object app
    cdef object tcp
    cdef object _twrite
    cdef object loop
    cdef object timer
    cdef double timeout
    cdef SSL* ssl
    cdef BIO* rbio
    cdef BIO* wbio
    cdef int state
    cdef bint connected  # the protocol's connection_made was called
    cdef bint paused
    cdef bint resume_scheduled
    cdef bint proxy_protocol  # a PROXY header comes first
    cdef bytes early  # PROXY header bytes read so far
    cdef object proxy_info  # what it said (None: LOCAL / UNKNOWN)

    def __cinit__(self):
        self.ssl = NULL

    def __init__(self, Front front, app, loop, double timeout, bint proxy_protocol=False):
        self.front = front
        self.ctx = front.context
        self.app = app
        self.loop = loop
        self.timeout = timeout
        self.proxy_protocol = proxy_protocol
        self.state = S_PROXY if proxy_protocol else S_HANDSHAKE
        self.early = b""

    def __dealloc__(self):
        if self.ssl != NULL:
            SSL_free(self.ssl)  # frees the BIOs too
            self.ssl = NULL

    # -- the TCP connection's protocol --------------------------------------
    def connection_made(self, transport):
        self.tcp = transport
        self._twrite = transport.write
        cdef SSL* s = SSL_new(self.front.ctx)
        if s == NULL:
            ERR_clear_error()
            log.warning("tls: OpenSSL could not make a connection object")
            self.state = S_CLOSED
            transport.abort()
            return
        self.ssl = s
        self.rbio = BIO_new(BIO_s_mem())
        self.wbio = BIO_new(BIO_s_mem())
        if self.rbio == NULL or self.wbio == NULL:
            ERR_clear_error()
            self.state = S_CLOSED
            transport.abort()
            return
        # An empty BIO reads as "retry", not end of stream.
        BIO_ctrl(self.rbio, BIO_C_SET_BUF_MEM_EOF_RETURN, -1, NULL)
        BIO_ctrl(self.wbio, BIO_C_SET_BUF_MEM_EOF_RETURN, -1, NULL)
        SSL_set_bio(s, self.rbio, self.wbio)
        SSL_set_accept_state(s)
        # Idle connections hand their record buffers back (about 34 KiB
        # each), as nginx has OpenSSL do.
        SSL_ctrl(
            s,
            SSL_CTRL_MODE,
            SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_AUTO_RETRY | SSL_MODE_RELEASE_BUFFERS,
            NULL,
        )
        SSL_set_ex_data(s, 0, <void*>self)  # borrowed: freed with self
        self.timer = self.loop.call_later(self.timeout, self._expired)

    def data_received(self, bytes data):
        cdef int state = self.state
        if state == S_CLOSED:
            return
        if state == S_PROXY:
            data = self._proxy_header(data)
            if not data:
                return
        BIO_write(self.rbio, PyBytes_AS_STRING(data), <int>PyBytes_GET_SIZE(data))
        if self.state == S_HANDSHAKE:
            if not self._handshake():
                return
        if not self.paused:
            self._pump()

    def eof_received(self):
        if self.connected and self.state != S_CLOSED:
            if self.app.eof_received():
                return True
        self.close()
        return None

    def connection_lost(self, exc):
        self.state = S_CLOSED
        self._cancel_timer()
        if self.connected:
            self.connected = False
            self.app.connection_lost(exc)
        self.proxy_info = None
        self.app = None
        self.tcp = None
        self._twrite = None
        if self.ssl != NULL:
            SSL_free(self.ssl)  # and its BIOs
            self.ssl = NULL
            self.rbio = self.wbio = NULL

    def pause_writing(self):
        if self.connected:
            self.app.pause_writing()

    def resume_writing(self):
        if self.connected:
            self.app.resume_writing()

    # -- the HTTP protocol's transport --------------------------------------
    cpdef write(self, data):
        cdef int n
        if self.state != S_OPEN:
            return  # closed or closing: as with a closing socket, dropped
        if type(data) is not bytes:
            data = bytes(data)
        n = <int>PyBytes_GET_SIZE(data)
        if n == 0:
            return
        ERR_clear_error()
        if SSL_write(self.ssl, PyBytes_AS_STRING(data), n) <= 0:
            self._fail("writing")
            return
        self._flush()

    def writelines(self, list_of_data):
        self.write(b"".join(list_of_data))

    def close(self):
        cdef int state = self.state
        if state == S_CLOSED:
            return
        self.state = S_CLOSED
        self._cancel_timer()
        if state == S_OPEN:
            # close_notify, then the TCP close: the client's own close_notify
            # is not waited for (RFC 8446 6.1 allows it; nginx does the same).
            ERR_clear_error()
            SSL_shutdown(self.ssl)
            ERR_clear_error()
            self._flush()
        if self.tcp is not None:
            self.tcp.close()

    def abort(self):
        self.state = S_CLOSED
        self._cancel_timer()
        if self.tcp is not None:
            self.tcp.abort()

    def can_write_eof(self):
        return True

    def write_eof(self):
        """close_notify and a TCP FIN; reading goes on (a lingering close)."""
        if self.state != S_OPEN:
            return
        self.state = S_SHUT
        ERR_clear_error()
        SSL_shutdown(self.ssl)
        ERR_clear_error()
        self._flush()
        self.tcp.write_eof()

    def is_closing(self):
        return self.state == S_CLOSED or self.tcp is None or self.tcp.is_closing()

    def pause_reading(self):
        if self.tcp is None or self.paused:
            return
        self.paused = True
        self.tcp.pause_reading()

    def resume_reading(self):
        if self.tcp is None or not self.paused:
            return
        self.paused = False
        self.tcp.resume_reading()
        # Records already read (or decrypted) wait in OpenSSL: nothing more
        # may come from the socket to wake them up.
        if self.ssl != NULL and not self.resume_scheduled and (
            SSL_pending(self.ssl) > 0 or BIO_ctrl(self.rbio, BIO_CTRL_PENDING, 0, NULL) > 0
        ):
            self.resume_scheduled = True
            self.loop.call_soon(self._resume)

    def is_reading(self):
        return self.tcp is not None and not self.paused and self.tcp.is_reading()

    def set_write_buffer_limits(self, high=None, low=None):
        self.tcp.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self):
        return self.tcp.get_write_buffer_size() if self.tcp is not None else 0

    def get_write_buffer_limits(self):
        return self.tcp.get_write_buffer_limits()

    def get_protocol(self):
        return self.app

    def set_protocol(self, protocol):
        self.app = protocol

    def get_extra_info(self, name, default=None):
        if name == "ssl_object":
            return self if self.ssl != NULL else default
        if name == "sslcontext":
            return self.ctx
        if self.tcp is None:
            return default
        return self.tcp.get_extra_info(name, default)

    # -- what ssl.SSLObject tells, for get_extra_info("ssl_object") ---------
    @property
    def server_side(self):
        return True

    @property
    def context(self):
        return self.ctx

    @property
    def session_reused(self):
        return self.ssl != NULL and SSL_session_reused(self.ssl) == 1

    def version(self):
        if self.ssl == NULL or self.state < S_OPEN:
            return None
        return SSL_get_version(self.ssl).decode("ascii")

    def selected_alpn_protocol(self):
        cdef const unsigned char* proto = NULL
        cdef unsigned int n = 0
        if self.ssl == NULL:
            return None
        SSL_get0_alpn_selected(self.ssl, &proto, &n)
        if proto == NULL or n == 0:
            return None
        return (<const char*>proto)[:n].decode("ascii", "replace")

    def getpeercert(self, binary_form=False):
        """The client certificate, DER-encoded (``binary_form`` only)."""
        cdef X509* cert
        cdef unsigned char* p
        cdef int n
        if not binary_form:
            raise ValueError("only the DER form (binary_form=True) is kept")
        if self.ssl == NULL:
            return None
        cert = SSL_get1_peer_certificate(self.ssl)
        if cert == NULL:
            return None
        try:
            n = i2d_X509(cert, NULL)
            if n <= 0:
                return None
            der = PyBytes_FromStringAndSize(NULL, n)
            p = <unsigned char*>PyBytes_AS_STRING(der)
            i2d_X509(cert, &p)
            return der
        finally:
            X509_free(cert)

    # -- inside -------------------------------------------------------------
    cdef bytes _proxy_header(self, bytes data):
        if self.early:
            data = self.early + data
            self.early = b""
        try:
            used, info = _parse_proxy(data)
        except ProxyProtocolError as err:
            log.warning("%s: closing a connection: %s", self.front.name, err)
            self.abort()
            return b""
        if not used:
            self.early = data
            return b""
        self.proxy_info = info
        self.state = S_HANDSHAKE
        return data[used:]

    cdef bint _handshake(self) except -1:
        cdef int r, err
        ERR_clear_error()
        r = SSL_do_handshake(self.ssl)
        if r == 1:
            self._flush()  # its last flight, and TLS 1.3's session tickets
            self._cancel_timer()
            self.state = S_OPEN
            info = self.proxy_info
            self.proxy_info = None
            self.connected = True
            self.app.connection_made(self)
            if self.proxy_protocol and self.state != S_CLOSED:
                self.app.proxied(info)
            return self.state == S_OPEN
        err = SSL_get_error(self.ssl, r)
        if err == SSL_ERROR_WANT_READ:
            self._flush()
            return False
        # A failed handshake: its alert goes out, then the connection closes.
        reason = _error_text()
        log.debug("tls: handshake failed: %s", reason)
        self._flush()
        self.state = S_CLOSED
        self._cancel_timer()
        self.tcp.close()
        return False

    cdef void _pump(self):
        """Decrypt what has been read and hand it to the protocol, in one
        call per batch (up to READ_CHUNK bytes), until OpenSSL runs dry or
        the protocol pauses reading."""
        cdef int n, got, err
        while (self.state == S_OPEN or self.state == S_SHUT) and self.ssl != NULL:
            got = 0
            err = 0
            ERR_clear_error()
            while got < READ_CHUNK:
                n = SSL_read(self.ssl, _rbuf + got, READ_CHUNK - got)
                if n <= 0:
                    err = SSL_get_error(self.ssl, n)
                    break
                got += n
            if got:
                self.app.data_received(PyBytes_FromStringAndSize(_rbuf, got))
            if err == 0:
                if self.paused:
                    break
                continue
            if err == SSL_ERROR_WANT_READ:
                break
            if err == SSL_ERROR_ZERO_RETURN:  # the client's close_notify
                if self.state != S_CLOSED and not self.app.eof_received():
                    self.close()
                break
            self._fail("reading")
            return
        # Reading can also write: a TLS 1.3 KeyUpdate is answered.
        if self.wbio != NULL and BIO_ctrl(self.wbio, BIO_CTRL_PENDING, 0, NULL) > 0:
            self._flush()

    cdef void _flush(self):
        cdef long pending
        if self.wbio == NULL or self.tcp is None:
            return
        pending = BIO_ctrl(self.wbio, BIO_CTRL_PENDING, 0, NULL)
        if pending <= 0:
            return
        out = PyBytes_FromStringAndSize(NULL, pending)
        BIO_read(self.wbio, PyBytes_AS_STRING(out), <int>pending)
        self._twrite(out)

    cdef void _fail(self, str doing):
        reason = _error_text()
        log.debug("tls: %s failed, aborting the connection: %s", doing, reason)
        self.abort()

    def _resume(self):
        self.resume_scheduled = False
        if not self.paused and (self.state == S_OPEN or self.state == S_SHUT):
            self._pump()

    def _expired(self):
        self.timer = None
        if self.state == S_PROXY or self.state == S_HANDSHAKE:
            log.debug("tls: no handshake within %.3gs, closing", self.timeout)
            self.abort()

    cdef void _cancel_timer(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
