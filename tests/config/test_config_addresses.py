from __future__ import annotations

import pytest

from lbproxy.config import Address, AddressError, parse_address


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1:8080", "127.0.0.1", 8080),
        ("0.0.0.0:65535", "0.0.0.0", 65535),
        ("localhost:1", "localhost", 1),
        ("LocalHost:80", "localhost", 80),
        ("backend_1.internal:9000", "backend_1.internal", 9000),
        ("api.example.com:443", "api.example.com", 443),
        ("[::]:8080", "::", 8080),
        ("[::1]:8080", "::1", 8080),
        ("[0:0::1]:80", "::1", 80),
        ("[2001:DB8::1]:80", "2001:db8::1", 80),
        ("web:08080", "web", 8080),
    ],
)
def test_parse_address(text: str, host: str, port: int) -> None:
    assert parse_address(text) == Address(host, port)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("localhost", "not host:port"),
        (":8080", "not host:port"),
        ("localhost:", "not host:port"),
        ("localhost:http", "not host:port"),
        ("localhost:-1", "not host:port"),
        ("localhost:٣", "not host:port"),
        ("[::1]", "not host:port"),
        ("[::1]:", "not host:port"),
        ("localhost:0", "port must be from 1 to 65535"),
        ("localhost:65536", "port must be from 1 to 65535"),
        ("::1:8080", "not host:port (write IPv6 addresses in brackets, like [::1]:8080)"),
        ("[zz::1]:80", "not a valid IPv6 address"),
        ("300.1.1.1:80", "not a valid IPv4 address"),
        ("10.0.0:80", "not a valid IPv4 address"),
        ("bad host:80", "not a valid host name"),
        ("-bad:80", "not a valid host name"),
        ("a..b:80", "not a valid host name"),
        (f"{'a' * 64}:80", "not a valid host name"),
    ],
)
def test_parse_address_refuses(text: str, reason: str) -> None:
    with pytest.raises(AddressError) as info:
        parse_address(text)
    assert info.value.reason == reason
    assert isinstance(info.value, ValueError)


def test_port_zero_only_when_asked_for() -> None:
    assert parse_address("127.0.0.1:0", any_port=True) == Address("127.0.0.1", 0)
    with pytest.raises(AddressError) as info:
        parse_address("127.0.0.1:65536", any_port=True)
    assert info.value.reason == "port must be from 0 to 65535"


@pytest.mark.parametrize("text", ["127.0.0.1:8080", "[::1]:8080", "[::]:80", "web:9000"])
def test_address_str_round_trips(text: str) -> None:
    assert str(parse_address(text)) == text
