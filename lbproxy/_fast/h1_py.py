"""HTTP/1.x message heads and chunked bodies, parsed strictly (pure-Python twin).

Theory of operation. The data path hands over what it has read, and a head
comes back whole, in one call: start line fields and the list of
``(name, value)`` fields, or ``None`` while the blank line that ends it has not
arrived. Parsing a head at once (rather than one callback per field, as llhttp
does) is what keeps the per-request cost low: a typical request is parsed in
one pass and never touches Python per header. ``parse_*_lines`` check the
same and return where the field lines start instead of the list: the data
path then reads them in place (``headers.scan_*_lines``) and makes the list
(``field_list``) only for what looks a header up. Framing (Content-Length,
Transfer-Encoding, Connection) is judged afterwards by ``headers.scan_*``, over
the same fields; this module only makes sure that every line is well formed,
so that no two HTTP implementations could read the head differently:

* lines end with CRLF; a bare LF or CR anywhere is an error (never a line end);
* a field name is a token followed at once by ``:`` (whitespace before the
  colon is an error: RFC 9112 5.1), a value is visible ASCII, SP, HTAB and
  obs-text, trimmed of surrounding whitespace; other control bytes, NUL and DEL
  are errors; a line starting with whitespace (obs-fold) is an error;
* a request line is ``token SP target SP HTTP/1.d``, the target visible ASCII
  only; empty lines before it are skipped (RFC 9112 2.2);
* a status line is ``HTTP/1.d SP 3DIGIT [SP reason]``;
* ``HTTP/1.d`` with d > 1 is read as 1.1 (RFC 9110 2.5); any other major
  version is refused with 505, anything else malformed with 400.

``ChunkedDecoder`` undoes chunked transfer coding incrementally across reads:
strict hexadecimal sizes (at most 15 digits), extensions checked and dropped,
CRLF required after each chunk's data, trailer fields parsed like header
fields and bounded in size.

The compiled twin ``h1.pyx`` behaves identically; the tests run both.
"""

from __future__ import annotations

import re

__all__ = [
    "ChunkedDecoder",
    "ParseError",
    "field_list",
    "parse_request_head",
    "parse_request_lines",
    "parse_response_head",
    "parse_response_lines",
]

# Longest run of empty lines skipped before a request line.
MAX_LEADING_EMPTY_LINES = 8
# Longest chunk-size line (size + extensions) accepted.
MAX_CHUNK_LINE = 4096
# 15 hex digits: every size fits an int64 with room to add to it.
MAX_CHUNK_SIZE_DIGITS = 15

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_VALUE_BAD = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_TARGET = re.compile(rb"[\x21-\x7e]+\Z")
_VERSION = re.compile(rb"HTTP/(\d)\.(\d)\Z")
_HEX = re.compile(rb"[0-9A-Fa-f]+\Z")
# Whole valid heads, matched at once: the common case costs one regex call.
# Anything they do not match goes through the line-by-line checks below, which
# find the first fault (or that the head is incomplete) and say what it is.
_FIELD_LINES = rb"((?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r\n)*)\r\n"
_REQUEST_HEAD = re.compile(
    rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP/1\.([0-9])\r\n" + _FIELD_LINES
)
_RESPONSE_HEAD = re.compile(
    rb"HTTP/1\.([0-9]) ([1-9][0-9][0-9])(?: ([\t\x20-\x7e\x80-\xff]*))?\r\n" + _FIELD_LINES
)
_EXT_BAD = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class ParseError(ValueError):
    """A malformed message: ``status`` is what a client should be answered
    (400, or 505 for an unsupported HTTP version); the connection closes."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _check_line_ends(data: bytes, start: int, end: int) -> None:
    # Every LF in data[start:end] must follow a CR, and every CR precede an LF.
    i = data.find(b"\n", start, end)
    while i != -1:
        if i == start or data[i - 1] != 13:
            raise ParseError("bare LF in the message head")
        i = data.find(b"\n", i + 1, end)
    i = data.find(b"\r", start, end)
    while i != -1:
        if i + 1 < end and data[i + 1] != 10:
            raise ParseError("bare CR in the message head")
        i = data.find(b"\r", i + 1, end)


def _version(text: bytes) -> int:
    m = _VERSION.match(text)
    if m is None:
        raise ParseError("invalid HTTP version")
    if m.group(1) != b"1":
        raise ParseError("HTTP version not supported", 505)
    return 0 if m.group(2) == b"0" else 1


def _fields(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    for line in lines:
        if line[:1] == b" " or line[:1] == b"\t":
            raise ParseError("obsolete line folding in the message head")
        name, colon, value = line.partition(b":")
        if not colon:
            raise ParseError("header line without a colon")
        if _TOKEN.match(name) is None:
            raise ParseError("invalid header name")
        value = value.strip(b" \t")
        if _VALUE_BAD.search(value) is not None:
            raise ParseError("invalid character in a header value")
        out.append((name, value))
    return out


def _split_fields(block: bytes) -> list[tuple[bytes, bytes]]:
    # ``block``: field lines already known to be valid, each ending CRLF.
    pairs = [line.partition(b":") for line in block.split(b"\r\n")[:-1]]
    return [(name, value.strip(b" \t")) for name, _, value in pairs]


def _head_lines(data: bytes, pos: int) -> tuple[int, list[bytes]] | None:
    """``(end, lines)`` of the head at data[pos:] (start line first, CRLFs
    removed, ``end`` just past the blank line), or None while incomplete."""
    found = data.find(b"\r\n\r\n", pos)
    if found == -1:
        _check_line_ends(data, pos, len(data))
        return None
    _check_line_ends(data, pos, found + 2)
    return found + 4, data[pos:found].split(b"\r\n")


def parse_request_head(
    data: bytes, pos: int
) -> tuple[int, bytes, bytes, int, list[tuple[bytes, bytes]]] | None:
    """Parse the request head at ``data[pos:]``.

    Returns ``(end, method, target, minor, fields)`` with ``end`` the index
    just past the head, or ``None`` if the head is not complete yet (more
    data needed; what was seen so far is valid). Raises ``ParseError``.
    """
    skipped = 0
    while data.startswith(b"\r\n", pos):
        skipped += 1
        if skipped > MAX_LEADING_EMPTY_LINES:
            raise ParseError("too many empty lines before the request line")
        pos += 2
    m = _REQUEST_HEAD.match(data, pos)
    if m is not None:
        method, target, digit, block = m.groups()
        return m.end(), method, target, 0 if digit == b"0" else 1, _split_fields(block)
    head = _head_lines(data, pos)
    if head is None:
        return None
    end, lines = head
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise ParseError("invalid request line")
    method, target, version = parts
    if _TOKEN.match(method) is None:
        raise ParseError("invalid method")
    if _TARGET.match(target) is None:
        raise ParseError("invalid request target")
    minor = _version(version)
    return end, method, target, minor, _fields(lines[1:])


def parse_response_head(
    data: bytes, pos: int
) -> tuple[int, int, bytes, int, list[tuple[bytes, bytes]]] | None:
    """Parse the response head at ``data[pos:]``.

    Returns ``(end, status, reason, minor, fields)``, or ``None`` if the
    head is not complete yet. Raises ``ParseError``.
    """
    m = _RESPONSE_HEAD.match(data, pos)
    if m is not None:
        digit, code, reason, block = m.groups()
        minor = 0 if digit == b"0" else 1
        return m.end(), int(code), reason or b"", minor, _split_fields(block)
    head = _head_lines(data, pos)
    if head is None:
        return None
    end, lines = head
    version, sp, rest = lines[0].partition(b" ")
    if not sp:
        raise ParseError("invalid status line")
    minor = _version(version)
    code, sp, reason = rest.partition(b" ")
    if len(code) != 3 or not code.isdigit() or code[:1] == b"0":
        raise ParseError("invalid status code")
    if _VALUE_BAD.search(reason) is not None:
        raise ParseError("invalid character in the reason phrase")
    return end, int(code), reason, minor, _fields(lines[1:])


def parse_request_lines(data: bytes, pos: int) -> tuple[int, bytes, bytes, int, int, int] | None:
    """``parse_request_head`` without the field list, for a caller that reads
    the field lines in place: returns ``(end, method, target, minor,
    fields_at, count)``, where the ``count`` field lines are
    ``data[fields_at:end - 2]``, or ``None`` if the head is not complete yet.
    Raises ``ParseError``: it checks everything ``parse_request_head`` does.
    """
    start = pos
    skipped = 0
    while data.startswith(b"\r\n", start) and skipped <= MAX_LEADING_EMPTY_LINES:
        start += 2
        skipped += 1
    m = _REQUEST_HEAD.match(data, start) if skipped <= MAX_LEADING_EMPTY_LINES else None
    if m is not None:
        method, target, digit, block = m.groups()
        minor = 0 if digit == b"0" else 1
        return m.end(), method, target, minor, m.start(4), block.count(b"\r\n")
    parsed = parse_request_head(data, pos)  # None, or the error (the slow checks)
    if parsed is None:
        return None
    end, method, target, minor, fields = parsed
    # A valid head: after the empty lines, its request line is the first line.
    return end, method, target, minor, data.index(b"\r\n", start) + 2, len(fields)


def parse_response_lines(data: bytes, pos: int) -> tuple[int, int, bytes, int, int] | None:
    """``parse_response_head`` without the field list, for a caller that
    reads the field lines in place: returns ``(end, status, reason, minor,
    fields_at)``, where the field lines are ``data[fields_at:end - 2]``, or
    ``None`` if the head is not complete yet. Raises ``ParseError``: it
    checks everything ``parse_response_head`` does.
    """
    m = _RESPONSE_HEAD.match(data, pos)
    if m is not None:
        digit, code, reason, _ = m.groups()
        return m.end(), int(code), reason or b"", 0 if digit == b"0" else 1, m.start(4)
    parsed = parse_response_head(data, pos)
    if parsed is None:
        return None
    end, status, reason, minor, _ = parsed
    # A valid head: its status line is the first line.
    return end, status, reason, minor, data.index(b"\r\n", pos) + 2


def field_list(data: bytes, start: int, stop: int) -> list[tuple[bytes, bytes]]:
    """The ``(name, value)`` list of the field lines at ``data[start:stop]``:
    a region that ``parse_request_lines`` or ``parse_response_lines`` found
    valid."""
    return _split_fields(data[start:stop])


# ChunkedDecoder states.
_SIZE = 0  # reading a chunk-size line
_DATA = 1  # reading chunk data
_DATA_CR = 2  # expecting the CR after chunk data
_DATA_LF = 3  # expecting the LF after chunk data
_TRAILER = 4  # reading trailer lines after the last chunk
_DONE = 5


class ChunkedDecoder:
    """Incremental decoder of one chunked body."""

    __slots__ = ("_line", "_remaining", "_state", "_trailer_bytes", "max_trailer_bytes", "trailers")

    def __init__(self, max_trailer_bytes: int) -> None:
        self.max_trailer_bytes = max_trailer_bytes
        self._state = _SIZE
        self._remaining = 0
        self._line = b""  # a size or trailer line split across reads
        self._trailer_bytes = 0
        self.trailers: list[tuple[bytes, bytes]] = []

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def feed(self, data: bytes, pos: int) -> tuple[int, bytes, bool]:
        """Decode what ``data[pos:]`` holds of the body.

        Returns ``(pos, payload, done)``: where decoding stopped (the end of
        the data, or just past the body once it is complete), the chunk data
        found, and whether the body (trailers included) is complete; the
        trailer fields are then in ``trailers``. Raises ``ParseError``.
        """
        out: list[bytes] = []
        n = len(data)
        state = self._state
        while pos < n and state != _DONE:
            if state == _DATA:
                take = min(self._remaining, n - pos)
                out.append(data[pos : pos + take])
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    state = _DATA_CR
            elif state == _DATA_CR:
                if data[pos] != 13:
                    raise ParseError("chunk data not followed by CRLF")
                pos += 1
                state = _DATA_LF
            elif state == _DATA_LF:
                if data[pos] != 10:
                    raise ParseError("chunk data not followed by CRLF")
                pos += 1
                state = _SIZE
            else:
                line, pos = self._take_line(data, pos, state)
                if line is None:
                    break
                if state == _SIZE:
                    size = self._chunk_size(line)
                    if size:
                        self._remaining = size
                        state = _DATA
                    else:
                        state = _TRAILER
                elif line:
                    self.trailers.extend(_fields([line]))
                else:
                    state = _DONE
        self._state = state
        if not out:
            return pos, b"", state == _DONE
        return pos, out[0] if len(out) == 1 else b"".join(out), state == _DONE

    def _take_line(self, data: bytes, pos: int, state: int) -> tuple[bytes | None, int]:
        """The next CRLF-terminated line without its CRLF (joined with the
        part held from earlier reads), or None and the end of the data while
        it is incomplete."""
        held = self._line
        limit = MAX_CHUNK_LINE if state == _SIZE else self.max_trailer_bytes - self._trailer_bytes
        if held:
            # The whole read is looked at: a CRLF beyond the limit still ends
            # the line, which is then refused as too long (as when whole).
            joined = held + data[pos:]
            end = joined.find(b"\r\n")
            if end != -1:
                line = joined[:end]
                pos += end + 2 - len(held)
                self._line = b""
                return self._accept(line, state, limit), pos
            part = data[pos:]
            self._line = held + part
        else:
            end = data.find(b"\r\n", pos)
            if end != -1:
                return self._accept(data[pos:end], state, limit), end + 2
            part = self._line = data[pos:]
        # Incomplete: a CR may only be the last byte (its LF comes next).
        if b"\n" in part or b"\r" in self._line[:-1]:
            raise ParseError("bare LF or CR in chunked framing")
        if len(self._line) > limit + 1:
            self._too_long(state)
        return None, len(data)

    def _accept(self, line: bytes, state: int, limit: int) -> bytes:
        if b"\n" in line or b"\r" in line:
            raise ParseError("bare LF or CR in chunked framing")
        if len(line) > limit:
            self._too_long(state)
        if state == _TRAILER:
            self._trailer_bytes += len(line) + 2
        return line

    @staticmethod
    def _too_long(state: int) -> None:
        if state == _SIZE:
            raise ParseError("chunk size line too long")
        raise ParseError("trailer section too large", 431)

    @staticmethod
    def _chunk_size(line: bytes) -> int:
        size, semi, ext = line.partition(b";")
        if _HEX.match(size) is None or len(size) > MAX_CHUNK_SIZE_DIGITS:
            raise ParseError("invalid chunk size")
        if semi and (not ext or _EXT_BAD.search(ext) is not None):
            raise ParseError("invalid chunk extension")
        return int(size, 16)
