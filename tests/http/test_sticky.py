"""Cookie-inserted sticky sessions (``pools.*.sticky``), end to end."""

from __future__ import annotations

import asyncio
import base64
from collections import Counter

import aiohttp

from tests.support import BackendServer, named_backends, running_proxy


def _config(addresses: list[str], sticky: str, extra: str = "") -> str:
    lines = "\n".join(f'      - {{address: "{a}"}}' for a in addresses)
    return f"""
listeners:
  - name: t
    bind: "127.0.0.1:0"
    routes: [{{match: {{path_prefix: /}}, pool: web}}]
pools:
  web:
    sticky: {sticky}
{extra}
    backends:
{lines}
access_log: {{format: "off"}}
"""


async def _get(port: int, cookie: str | None = None) -> tuple[int, str, str | None]:
    """One request on a new connection: (status, backend name, Set-Cookie or None)."""
    headers = {"Cookie": f"srv={cookie}"} if cookie is not None else {}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        async with session.get(f"http://127.0.0.1:{port}/", headers=headers) as r:
            await r.read()
            return r.status, r.headers.get("X-Backend", ""), r.headers.get("Set-Cookie")


def _value(set_cookie: str | None) -> str:
    assert set_cookie is not None
    first = set_cookie.split(";")[0]
    name, _, value = first.partition("=")
    assert name == "srv"
    return value


STICKY = "{cookie: srv, ttl: 1h, secure: true}"


async def test_first_response_sets_a_signed_cookie_with_the_attributes() -> None:
    async with named_backends(3) as bs:
        async with running_proxy(_config([b.address for b in bs], STICKY)) as (_, port):
            status, _, set_cookie = await _get(port)
    assert status == 200 and set_cookie is not None
    attrs = [a.strip() for a in set_cookie.split(";")]
    assert attrs[0].startswith("srv=")
    assert set(attrs[1:]) == {"Path=/", "Max-Age=3600", "Secure", "HttpOnly", "SameSite=Lax"}
    # The value names no backend: neither as text nor base64-decoded.
    value = _value(set_cookie)
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    for b in bs:
        assert str(b.port).encode() not in raw and b"127.0.0.1" not in raw
        assert str(b.port) not in value


async def test_a_client_with_its_cookie_stays_on_one_backend_for_100_requests() -> None:
    async with named_backends(3) as bs:
        async with running_proxy(_config([b.address for b in bs], STICKY)) as (_, port):
            _, first, set_cookie = await _get(port)
            cookie = _value(set_cookie)
            seen = Counter()
            for _ in range(100):
                status, name, again = await _get(port, cookie)
                assert status == 200
                assert again is None  # a valid cookie is not set again
                seen[name] += 1
            # Without the cookie the pool round-robins as usual.
            spread = Counter([(await _get(port))[1] for _ in range(9)])
    assert seen == Counter({first: 100})
    assert set(spread) == {"b0", "b1", "b2"}


async def test_tampered_expired_and_foreign_cookies_are_ignored_not_errors() -> None:
    async with named_backends(2) as bs:
        config = _config([b.address for b in bs], "{cookie: srv, ttl: 1s, secure: false}")
        async with running_proxy(config) as (_, port):
            _, first, set_cookie = await _get(port)
            cookie = _value(set_cookie)
            # Flip one character of the signature: a new pick and a fresh cookie.
            last = cookie[-1]
            forged = cookie[:-1] + ("A" if last != "A" else "B")
            for bad in (forged, "garbage", "", cookie + cookie):
                status, _, again = await _get(port, bad)
                assert status == 200
                assert again is not None and _value(again) != bad
            status, name, again = await _get(port, cookie)
            assert (status, name, again) == (200, first, None)
            await asyncio.sleep(2.1)  # past ttl: the signed expiry ends it
            status, _, again = await _get(port, cookie)
            assert status == 200 and again is not None
        # The same cookie at another proxy (another random key) means nothing.
        async with running_proxy(config) as (_, port2):
            status, _, again = await _get(port2, _value(again))
            assert status == 200 and again is not None


async def test_a_dead_pinned_backend_fails_over_and_the_cookie_is_rewritten() -> None:
    async with named_backends(3) as bs:
        extra = "    retries: {attempts: 3}\n"
        async with running_proxy(_config([b.address for b in bs], STICKY, extra)) as (_, port):
            _, first, set_cookie = await _get(port)
            cookie = _value(set_cookie)
            dead: BackendServer = bs[int(first[1:])]
            await dead.stop()
            status, name, again = await _get(port, cookie)
            assert status == 200 and name != first
            new_cookie = _value(again)
            assert new_cookie != cookie
            # The rewritten cookie sticks to the new backend.
            for _ in range(10):
                assert (await _get(port, new_cookie))[:2] == (200, name)


async def test_strict_answers_503_instead_of_moving_the_session() -> None:
    async with named_backends(2) as bs:
        config = _config([b.address for b in bs], "{cookie: srv, secure: false, strict: true}")
        async with running_proxy(config) as (proxy, port):
            _, first, set_cookie = await _get(port)
            cookie = _value(set_cookie)
            address = bs[int(first[1:])].address
            proxy.disable("web", address)
            status, _, again = await _get(port, cookie)
            assert status == 503 and again is None
            # New clients are served by the other backend.
            status, name, _ = await _get(port)
            assert status == 200 and name != first
            proxy.enable("web", address)
            assert (await _get(port, cookie))[:2] == (200, first)


async def test_disabled_backend_moves_its_sessions_to_another() -> None:
    async with named_backends(2) as bs:
        async with running_proxy(_config([b.address for b in bs], STICKY)) as (proxy, port):
            _, first, set_cookie = await _get(port)
            cookie = _value(set_cookie)
            proxy.disable("web", bs[int(first[1:])].address)
            status, name, again = await _get(port, cookie)
            assert status == 200 and name != first and again is not None


async def test_drain_keeps_existing_sessions_but_takes_no_new_ones() -> None:
    async with named_backends(2) as bs:
        async with running_proxy(_config([b.address for b in bs], STICKY)) as (proxy, port):
            _, first, set_cookie = await _get(port)
            cookie = _value(set_cookie)
            address = bs[int(first[1:])].address
            proxy.drain("web", address, timeout=1.5)
            # The pinned session keeps going to the draining backend...
            for _ in range(10):
                assert (await _get(port, cookie))[:2] == (200, first)
            # ...which reports draining while sessions may still come...
            states = {b["address"]: b["state"] for b in proxy.status()["pools"]["web"]["backends"]}
            assert states[address] == "draining"
            # ...while new clients all go to the other one.
            names = {(await _get(port))[1] for _ in range(6)}
            assert names == {"b0", "b1"} - {first}
            # Past the drain deadline the session moves, and the backend is done.
            await asyncio.sleep(1.6)
            states = {b["address"]: b["state"] for b in proxy.status()["pools"]["web"]["backends"]}
            assert states[address] == "disabled"
            status, name, again = await _get(port, cookie)
            assert status == 200 and name != first and again is not None


async def test_a_second_drain_sets_a_new_deadline_and_pool_changes_keep_it() -> None:
    async with named_backends(3) as bs:
        addresses = [b.address for b in bs[:2]]
        async with running_proxy(_config(addresses, STICKY)) as (proxy, port):
            _, first, set_cookie = await _get(port)
            cookie = _value(set_cookie)
            address = bs[int(first[1:])].address
            proxy.drain("web", address, timeout=600)
            # Adding a backend rebuilds the pool: the drain and its deadline stay.
            proxy.add_backend("web", bs[2].address)
            assert (await _get(port, cookie))[:2] == (200, first)
            # Draining again with timeout 0: the sessions move at once.
            proxy.drain("web", address, timeout=0)
            status, name, again = await _get(port, cookie)
            assert status == 200 and name != first and again is not None


async def test_a_remembered_cookie_does_not_vouch_for_its_neighbours() -> None:
    # The proxy remembers cookie values it has verified; values that differ
    # from one in a character, or extend it, are still checked and refused.
    async with named_backends(2) as bs:
        async with running_proxy(_config([b.address for b in bs], STICKY)) as (_, port):
            _, first, set_cookie = await _get(port)
            cookie = _value(set_cookie)
            for _ in range(3):
                assert await _get(port, cookie) == (200, first, None)
                for bad in (cookie[:-1] + ("A" if cookie[-1] != "A" else "B"), cookie + "A"):
                    status, _, again = await _get(port, bad)
                    assert status == 200 and again is not None and _value(again) != bad
