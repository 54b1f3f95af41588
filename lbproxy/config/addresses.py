"""``host:port`` strings for listener binds and backends, and host-name syntax.

Kept apart from the loader because the admin API parses backend addresses the
same way when one is added at run time.
"""

from __future__ import annotations

import ipaddress
import re

from lbproxy.config.model import Address

__all__ = ["AddressError", "is_host_name", "parse_address"]


class AddressError(ValueError):
    def __init__(self, reason: str, value: str) -> None:
        self.reason = reason
        self.value = value
        super().__init__(f"{reason}, got {value!r}")


# Underscores are not legal in DNS host names but do occur in internal service names
# (Docker Compose, Consul), and refusing them would only push users to worse workarounds.
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_DOTTED_NUMBERS = re.compile(r"[0-9.]+")


def is_host_name(text: str) -> bool:
    """True for a syntactically valid, already lower-cased DNS name (no port)."""
    return len(text) <= 253 and _HOST_NAME.fullmatch(text) is not None


def parse_address(text: str, *, any_port: bool = False) -> Address:
    """``host:port`` or ``[ipv6]:port`` into an ``Address``.

    IP hosts are stored in canonical form and names in lower case, so two spellings
    of one backend compare equal (duplicate detection relies on it). ``any_port``
    admits port 0, which only a listener can use: the OS picks a free port (tests
    and embedders read it back from the bound socket).
    """
    if text.startswith("["):
        host_part, sep, port_part = text[1:].partition("]:")
        if not sep:
            raise AddressError("not host:port", text)
        host = _ipv6(host_part, text)
    else:
        host_part, sep, port_part = text.rpartition(":")
        if not sep or not host_part:
            raise AddressError("not host:port", text)
        if ":" in host_part:
            raise AddressError(
                "not host:port (write IPv6 addresses in brackets, like [::1]:8080)", text
            )
        host = _host(host_part, text)
    return Address(host, _port(port_part, text, 0 if any_port else 1))


def _ipv6(host: str, text: str) -> str:
    try:
        return ipaddress.IPv6Address(host).compressed
    except ValueError:
        raise AddressError("not a valid IPv6 address", text) from None


def _host(host: str, text: str) -> str:
    if _DOTTED_NUMBERS.fullmatch(host):
        try:
            return ipaddress.IPv4Address(host).compressed
        except ValueError:
            raise AddressError("not a valid IPv4 address", text) from None
    lowered = host.lower()
    if not is_host_name(lowered):
        raise AddressError("not a valid host name", text)
    return lowered


def _port(port: str, text: str, lowest: int) -> int:
    if not port.isascii() or not port.isdigit():
        raise AddressError("not host:port", text)
    number = int(port)
    if not lowest <= number <= 65535:
        raise AddressError(f"port must be from {lowest} to 65535", text)
    return number
