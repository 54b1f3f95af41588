"""The shipped example configs: each one loads, and routing.yaml routes as its comments say.

Every ``configs/*.yaml`` is loaded with ``lbproxy.load_config`` (a new file is
covered without touching this test). ``routing.yaml`` carries a table of
requests and the pool each one reaches; the table is read from the file's own
comments and checked twice: against ``lbproxy.routing.Router`` built from the
listener's routes, and end to end through a real ``lbproxy.Proxy`` in front of
aiohttp backends on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import lbproxy
from lbproxy.balance import make_balancer
from lbproxy.config.model import Config
from lbproxy.routing import Router
from lbproxy.routing.router import normalise_host
from tests.support import client_connection, named_backends, read_response

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
EXAMPLES = sorted(CONFIGS.glob("*.yaml"))
ROUTING = CONFIGS / "routing.yaml"
WEIGHTED = CONFIGS / "weighted.yaml"


def test_the_examples_the_readme_lists_exist() -> None:
    names = {path.name for path in EXAMPLES}
    expected = {"demo.yaml", "basic.yaml", "routing.yaml", "weighted.yaml", "limits.yaml"}
    assert expected <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_config_loads(path: Path) -> None:
    config = lbproxy.load_config(path)
    assert config.listeners
    for listener in config.listeners:
        assert listener.routes
        for route in listener.routes:
            assert route.pool in config.pools


# -- routing.yaml: the table in its comments --------------------------------------


@dataclass(frozen=True)
class Case:
    method: str
    host: str
    target: str
    header: tuple[str, str] | None
    pool: str

    def __str__(self) -> str:
        extra = f" {self.header[0]}: {self.header[1]}" if self.header else ""
        return f"{self.method} {self.host} {self.target}{extra} -> {self.pool}"


# "#   GET   api.example.com   /users/7   x-canary: 1   -> canary  (why)"
_ROW = re.compile(
    r"#\s+(?P<method>[A-Z]+)\s+(?P<host>\S+)\s+(?P<target>/\S*)\s+"
    r"(?:(?P<name>[A-Za-z][A-Za-z0-9-]*):\s*(?P<value>\S+)\s+)?"
    r"->\s+(?P<pool>[A-Za-z0-9_.-]+)(?:\s+\(.*\))?\s*"
)


def routing_cases() -> list[Case]:
    cases = []
    for line in ROUTING.read_text(encoding="utf-8").splitlines():
        row = _ROW.fullmatch(line)
        if row is None:
            continue
        name, value = row["name"], row["value"]
        header = (name, value) if name is not None and value is not None else None
        cases.append(Case(row["method"], row["host"], row["target"], header, row["pool"]))
    return cases


CASES = routing_cases()


def test_routing_table_is_in_the_comments() -> None:
    # Guards the parser above: a reworded table must not silently check nothing.
    assert len(CASES) >= 12
    assert {case.pool for case in CASES} == set(lbproxy.load_config(ROUTING).pools)


def _router(config: Config) -> Router[str]:
    (listener,) = config.listeners
    return Router([(route, route.pool) for route in listener.routes])


@pytest.mark.parametrize("case", CASES, ids=str)
def test_routing_example_resolves_as_commented(case: Case) -> None:
    router = _router(lbproxy.load_config(ROUTING))
    headers = [(b"Host", case.host.encode())]
    if case.header is not None:
        headers.append((case.header[0].encode(), case.header[1].encode()))
    # Normalising first is what the client side does (and is idempotent, so it is
    # harmless where Router.match normalises the host itself).
    found = router.match(
        normalise_host(case.host.encode()), case.target.encode(), case.method.encode(), headers
    )
    assert found is not None, f"no route for {case}"
    assert found[1] == case.pool


def _runnable(text: str, backends: dict[str, str]) -> str:
    """The example's text with real backend addresses and an OS-chosen listener port."""
    for fixed, real in backends.items():
        text = text.replace(f'"{fixed}"', f'"{real}"')
    text = re.sub(r'bind: "[^"]+"', 'bind: "127.0.0.1:0"', text)
    return re.sub(r"access_log: .*", 'access_log: {format: "off"}', text)


async def test_routing_example_routes_real_requests() -> None:
    text = ROUTING.read_text(encoding="utf-8")
    fixed = sorted(set(re.findall(r'address: "(127\.0\.0\.1:\d+)"', text)))
    assert fixed
    async with named_backends(len(fixed)) as servers:
        runnable = _runnable(text, {f: s.address for f, s in zip(fixed, servers, strict=True)})
        config = lbproxy.parse_config(runnable)
        async with lbproxy.Proxy(config) as proxy:
            (port,) = (port for _, port in proxy.addresses().values())

            def served() -> dict[str, int]:
                pools = proxy.status()["pools"]
                return {
                    name: sum(b["requests_total"] for b in pool["backends"])
                    for name, pool in pools.items()
                }

            async with client_connection(port) as (reader, writer):
                for case in CASES:
                    before = served()
                    extra = f"{case.header[0]}: {case.header[1]}\r\n" if case.header else ""
                    writer.write(
                        f"{case.method} {case.target} HTTP/1.1\r\n"
                        f"Host: {case.host}\r\n{extra}\r\n".encode()
                    )
                    if case.method == "HEAD":
                        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                        status = int(head.split(b" ", 2)[1])
                    else:
                        status, _, _ = await asyncio.wait_for(read_response(reader), 5)
                    assert status == 200, case
                    after = served()
                    moved = {name for name in after if after[name] != before[name]}
                    assert moved == {case.pool}, case


# -- weighted.yaml: the order its comment shows ---------------------------------


def test_weighted_example_order_matches_its_comment() -> None:
    config = lbproxy.load_config(WEIGHTED)
    pool = config.pools["app"]
    primaries = [b for b in pool.backends if not b.backup]
    assert [b for b in pool.backends if b.backup], "the example shows a backup backend"
    balancer = make_balancer(pool.balance, [b.weight for b in primaries])
    order = [str(primaries[balancer.pick(None, None)].address.port) for _ in range(9)]
    text = WEIGHTED.read_text(encoding="utf-8")
    assert "#   " + " ".join(order) + "\n" in text, order
