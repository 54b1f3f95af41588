"""Longest-prefix match of client addresses (pure-Python twin of ``cidr.pyx``).

Geo routing maps a client address to a region through a table of networks
(``geo.networks`` in the config). ``CidrTable(entries)`` takes ``(network,
value)`` pairs, ``lookup(ip)`` returns the value of the longest network that
holds ``ip``, or -1 when none does or ``ip`` is not an address.

Networks are ``ipaddress.ip_network`` text, strict: ``"10.1.0.0/16"``,
``"2001:db8::/32"``, a bare address for a /32 or /128; host bits set are an
error (``ValueError``), as in the config loader. Values are ints 0..MAX_VALUE
(a region's index, in lbproxy). When the same network is listed twice, the
later value wins, as in a dict.

Addresses are the text the data path holds, as ``bytes`` (or ``str``), read
by ``ipaddress.ip_address``'s rules: a strict dotted quad (no leading zeros),
RFC 4291 IPv6 text with an optional dotted-quad tail and an optional
``%zone`` (ignored: Python's socket module writes link-local peers so).
Anything else (non-ASCII text, spaces, brackets, a port, a prefix) is not an
address: -1, never an exception. ``bytes`` and ``str`` are the only types
taken (``TypeError`` otherwise: a caller's bug, not a client's).

IPv4-mapped IPv6 addresses (``::ffff:10.1.2.3``, as a dual-stack socket
reports an IPv4 client) are IPv4 addresses: they match IPv4 networks and
nothing else. For the same reason an IPv6 network inside ``::ffff:0:0/96`` is
stored as the IPv4 network it maps (``::ffff:10.0.0.0/104`` is
``10.0.0.0/8``), and shorter IPv6 networks (``::/0``) hold only IPv6
clients: an IPv4 client is not placed by an IPv6 rule because of the socket
it happened to arrive on.

``canonical(ip)`` is the address as text other libraries read alike (the
MaxMind reader resolves text with getaddrinfo, which takes ``010.0.0.1`` as
octal): a dotted quad for IPv4 and mapped addresses, RFC 5952 text without
the zone for IPv6, None when ``lookup`` would not read it.

How the table is kept: the networks of each family are flattened into
disjoint ranges (``ranges``), ``starts`` ascending from 0 and ``values[i]``
holding from ``starts[i]`` up to the next start (-1 where no network does),
so a lookup is one binary search whatever the number of networks or of
distinct prefix lengths. Networks nest or are disjoint, never overlap
partially, so one sweep with a stack of the open networks finds the ranges.
The compiled twin builds the same ranges with ``split_networks`` and
``ranges`` from here, copied into C arrays, and parses addresses itself.

``CidrTable.from_ranges(v4, v6)`` takes such ranges ready made, as
``(starts, values)`` per family (``check_ranges`` says what is accepted):
for callers that have them without networks in text, such as a whole
MaxMind DB flattened at once (``lbproxy.routing.geo``), where parsing and
sorting hundreds of thousands of network texts would cost seconds. Its
``len`` is the number of ranges that hold a value.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence

from lbproxy._fast.h1_py import field_list as _field_list

__all__ = [
    "MAX_VALUE",
    "CidrTable",
    "canonical",
    "check_ranges",
    "forwarded_client",
    "locate",
    "put_range",
    "ranges",
    "split_networks",
]

MAX_VALUE = 2**31 - 1  # values are C int32 in the compiled twin; -1 is "no match"

Networks = dict[tuple[int, int], int]  # (network as int, prefix length) -> value

_MAPPED = 0xFFFF  # bits 32..47 of an IPv4-mapped address; the bits above are zero
# The valid octet texts are exactly str(0)..str(255): one dict lookup checks
# digits, length, leading zeros and range as ipaddress._parse_octet does.
_OCTETS = {str(i).encode(): i for i in range(256)}


def split_networks(entries: Iterable[tuple[str, int]]) -> tuple[Networks, Networks]:
    """``(ipv4, ipv6)`` networks of ``entries``, mapped IPv6 ones moved to IPv4."""
    v4: Networks = {}
    v6: Networks = {}
    for network, value in entries:
        if not isinstance(network, str):
            raise TypeError(f"a network is text, got {type(network).__name__}")
        if type(value) is not int:
            raise TypeError(f"value for {network} must be an int, got {type(value).__name__}")
        if not 0 <= value <= MAX_VALUE:
            raise ValueError(f"value for {network} must be 0..{MAX_VALUE}, got {value}")
        try:
            net = ipaddress.ip_network(network)
        except ValueError as err:
            raise ValueError(f"not a network: {network!r} ({err})") from None
        start, plen = int(net.network_address), net.prefixlen
        if net.version == 4:
            v4[start, plen] = value
        elif plen >= 96 and start >> 32 == _MAPPED:
            v4[start & 0xFFFFFFFF, plen - 96] = value
        else:
            v6[start, plen] = value
    return v4, v6


def ranges(networks: Mapping[tuple[int, int], int], bits: int) -> tuple[list[int], list[int]]:
    """Disjoint ranges covering ``0 .. 2**bits - 1``: ``(starts, values)``,
    ``values[i]`` the longest match from ``starts[i]`` to the next start."""
    top = 1 << bits
    starts: list[int] = [0]
    values: list[int] = [-1]

    def mark(at: int, value: int) -> None:
        # Marks come in ascending order; a later mark at the same place wins.
        if at < top:
            put_range(starts, values, at, value)

    open_: list[tuple[int, int]] = []  # (end, value) of networks holding the sweep, inner last
    # Sorted by start, then by length: a network comes after those holding it.
    for (start, plen), value in sorted(networks.items()):
        while open_ and open_[-1][0] <= start:
            end = open_.pop()[0]
            mark(end, open_[-1][1] if open_ else -1)
        mark(start, value)
        open_.append((start + (1 << (bits - plen)), value))
    while open_:
        end = open_.pop()[0]
        mark(end, open_[-1][1] if open_ else -1)
    return starts, values


def put_range(starts: list[int], values: list[int], at: int, value: int) -> None:
    """Append a range starting at ``at`` (not below the last start) to
    ``(starts, values)``: one starting at the same place is replaced, and one
    with the value of the range before it merges into that one."""
    if starts[-1] == at:
        values[-1] = value
        if len(values) > 1 and values[-2] == value:
            del starts[-1], values[-1]
    elif values[-1] != value:
        starts.append(at)
        values.append(value)


def check_ranges(starts: Sequence[int], values: Sequence[int], bits: int) -> int:
    """Check ranges for ``from_ranges``: as many starts as values, the first
    start 0, starts strictly ascending and below ``2**bits``, values -1 (no
    match) or 0..MAX_VALUE, all ints. Raises ``ValueError`` (``TypeError``
    for a value that is not an int); returns the number of ranges that hold
    a value."""
    if len(starts) != len(values):
        raise ValueError(f"{len(starts)} starts but {len(values)} values")
    if not starts or starts[0] != 0:
        raise ValueError("the first range must start at 0")
    top = 1 << bits
    held = 0
    previous = -1
    for start, value in zip(starts, values, strict=True):
        if type(start) is not int or type(value) is not int:
            raise TypeError("range starts and values must be ints")
        if not previous < start < top:
            raise ValueError(f"range start {start} is not ascending within {bits} bits")
        if not -1 <= value <= MAX_VALUE:
            raise ValueError(f"range value must be -1..{MAX_VALUE}, got {value}")
        previous = start
        held += value >= 0
    return held


def _ipv4(data: bytes) -> int:
    parts = data.split(b".")
    if len(parts) != 4:
        return -1
    o = _OCTETS
    try:
        return o[parts[0]] << 24 | o[parts[1]] << 16 | o[parts[2]] << 8 | o[parts[3]]
    except KeyError:
        return -1


def _parse(ip: bytes | str) -> tuple[int, int]:
    """``(4, address)``, ``(6, address)``, or ``(0, 0)`` for no address."""
    if isinstance(ip, str):
        if not ip.isascii():
            return 0, 0
        data = ip.encode()
    elif isinstance(ip, bytes):
        data = ip
    else:
        raise TypeError(f"an address is bytes or str, got {type(ip).__name__}")
    if b":" not in data:  # IPv6 text has two at least
        n = _ipv4(data)
        return (4, n) if n >= 0 else (0, 0)
    if data[:7].lower() == b"::ffff:":  # how a dual-stack socket writes IPv4 clients
        n = _ipv4(data[7:])
        if n >= 0:
            return 4, n
    try:
        n = int(ipaddress.IPv6Address(data.decode("ascii")))
    except ValueError:  # UnicodeDecodeError is one
        return 0, 0
    if n >> 32 == _MAPPED:
        return 4, n & 0xFFFFFFFF
    return 6, n


def canonical(ip: bytes | str) -> str | None:
    """``ip`` as a dotted quad (IPv4, mapped IPv6) or RFC 5952 text; None
    when it is not an address. See the module docstring."""
    version, n = _parse(ip)
    if version == 4:
        return f"{n >> 24}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
    if version == 6:
        return str(ipaddress.IPv6Address(n))
    return None


class CidrTable:
    """Longest-prefix match over IPv4 and IPv6 networks; see the module docstring."""

    __slots__ = ("_size", "_v4_starts", "_v4_values", "_v6_starts", "_v6_values")

    def __init__(self, entries: Iterable[tuple[str, int]]) -> None:
        v4, v6 = split_networks(entries)
        self._size = len(v4) + len(v6)
        self._v4_starts, self._v4_values = ranges(v4, 32)
        self._v6_starts, self._v6_values = ranges(v6, 128)

    @classmethod
    def from_ranges(
        cls,
        v4: tuple[Sequence[int], Sequence[int]],
        v6: tuple[Sequence[int], Sequence[int]],
    ) -> CidrTable:
        """A table of ready-made ranges, ``(starts, values)`` per family; see
        ``check_ranges``. Mapped IPv6 addresses are looked up in ``v4``."""
        size = check_ranges(v4[0], v4[1], 32) + check_ranges(v6[0], v6[1], 128)
        table = cls.__new__(cls)
        table._size = size
        table._v4_starts, table._v4_values = list(v4[0]), list(v4[1])
        table._v6_starts, table._v6_values = list(v6[0]), list(v6[1])
        return table

    def __len__(self) -> int:
        """The number of distinct networks (``from_ranges``: of ranges that
        hold a value)."""
        return self._size

    def lookup(self, ip: bytes | str) -> int:
        """The value of the longest network holding ``ip``; -1 for none, or
        when ``ip`` is not an address."""
        version, n = _parse(ip)
        if version == 4:
            return self._v4_values[bisect_right(self._v4_starts, n) - 1]
        if version == 6:
            return self._v6_values[bisect_right(self._v6_starts, n) - 1]
        return -1


_OWS = b" \t"


def forwarded_client(
    peer: bytes, headers: Sequence[tuple[bytes, bytes]], trusted: CidrTable | None
) -> bytes:
    """The address a request comes from when its peer ``peer`` is a trusted
    proxy: the nearest X-Forwarded-For hop, read from the right, that is not
    itself in ``trusted`` (nginx's realip with recursion; an entry left of an
    untrusted one may have been forged by the client). Hops are the
    comma-separated entries of every X-Forwarded-For field in order; empty
    ones are skipped, and one that is not an address ends the walk (the last
    good hop stands). ``peer`` when there is no usable hop."""
    chain: list[bytes] = []
    for name, value in headers:
        if len(name) == 15 and name.lower() == b"x-forwarded-for":
            chain.extend(value.split(b","))
    found = peer
    for raw in reversed(chain):
        entry = raw.strip(_OWS)
        if not entry:
            continue
        if _parse(entry)[0] == 0:
            break
        found = entry
        if trusted is None or trusted.lookup(entry) < 0:
            break
    return found


def locate(
    peer: bytes,
    trusted: bool,
    headers: Sequence[tuple[bytes, bytes]],
    trusted_table: CidrTable | None,
    first: CidrTable | None,
    second: CidrTable | None,
) -> int:
    """The value of the client's address in ``first``, else in ``second``
    (either may be None); -1 for none, or when the address is not one. The
    client's address is ``peer``, or when the peer is ``trusted`` (one of
    ``trusted_table``) what ``forwarded_client`` finds. One call for what a
    geo route asks per request: the compiled twin parses the address once,
    where it lies in the header."""
    address = forwarded_client(peer, headers, trusted_table) if trusted else peer
    for table in (first, second):
        if table is not None:
            found = table.lookup(address)
            if found >= 0:
                return found
    return -1


def locate_lines(
    peer: bytes,
    trusted: bool,
    data: bytes,
    start: int,
    stop: int,
    trusted_table: CidrTable | None,
    first: CidrTable | None,
    second: CidrTable | None,
) -> int:
    """``locate`` with the request's fields as the lines at ``data[start:stop]``
    (a region that ``h1.parse_request_lines`` found valid). The compiled twin
    reads the X-Forwarded-For lines in place, without a (name, value) list;
    only a ``trusted`` peer's lines are read at all."""
    headers = _field_list(data, start, stop) if trusted else []
    return locate(peer, trusted, headers, trusted_table, first, second)
