"""A worker process: ``python -m lbproxy.workers.child --control-fd N``.

Started by the supervisor (lbproxy/workers/supervisor.py) with its control
socket and its slot's listening sockets inherited. The first message brings
the config and which inherited descriptor serves which listener; the worker
serves them with a ``Proxy`` in the ``worker`` role (no health checks, no
admin API: the supervisor has those) and reports ``ready``. Then it obeys the
supervisor: health flips, admin changes, snapshot requests for /metrics and
/api/status, and ``retire``/``stop``.

It ignores SIGINT and SIGHUP (a terminal's Ctrl-C reaches the whole process
group; the supervisor decides) and treats SIGTERM as ``stop``. When the
control channel closes (the supervisor died) it drains and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import mmap
import os
import signal
import socket
import sys
from typing import Any

from lbproxy import __version__, _fast
from lbproxy._fast import load as _load_fast
from lbproxy.metrics import snapshot
from lbproxy.proxy import Proxy, SharedCounts
from lbproxy.workers.channel import Channel

log = logging.getLogger("lbproxy")

# Admin changes a worker applies as the supervisor did (Proxy methods).
_ADMIN_CALLS = frozenset(
    {"drain", "enable", "disable", "set_weight", "add_backend", "remove_backend", "set_split"}
)


async def _serve(control: socket.socket) -> int:
    loop = asyncio.get_running_loop()
    channel = await Channel.open(control)
    kind, start = await channel.recv()
    if kind != "start":
        log.error("worker: expected a start message, got %r", kind)
        return 1
    slot: int = start["slot"]
    socks = {name: socket.socket(fileno=fd) for name, fd in start["sockets"].items()}
    shared = None
    if start["shared"] is not None:
        spec = start["shared"]
        table = mmap.mmap(spec["fd"], (spec["rows"] + 1) * spec["cols"] * 8)
        counters = _load_fast("shared").Counters(table, spec["rows"], spec["cols"], spec["fd"])
        shared = SharedCounts(counters, spec["row"], dict(spec["columns"]))
    proxy = Proxy(
        start["config"],
        role="worker",
        sockets=socks,
        shared=shared,
        cookie_key=start["cookie_key"],
        settle_heap=True,
        ticket_key=start["ticket_key"],
    )
    try:
        await proxy.start()
    except Exception as exc:
        log.exception("worker %d: cannot start", slot)
        channel.send("failed", f"{type(exc).__name__}: {exc}")
        await channel.drain()
        return 1
    for pool, states in start["health"].items():
        for address, healthy in states.items():
            _quietly(proxy.set_health, pool, address, healthy)
    for method, args in start["admin"]:
        _quietly(getattr(proxy, method), *args)
    if start.get("passive"):
        # What the worker this one replaces learned: open breakers, ejections.
        _quietly(proxy.adopt_passive, start["passive"])
    channel.send("ready", os.getpid())
    log.info("worker %d (pid %d) serving", slot, os.getpid())

    stopping: list[asyncio.Task[None]] = []

    def stop(timeout: float | None, close_idle: bool) -> None:
        if not stopping:
            stopping.append(loop.create_task(proxy.stop(timeout, close_idle)))

    loop.add_signal_handler(signal.SIGTERM, stop, None, True)
    reader = loop.create_task(_obey(channel, proxy, stop))
    await proxy.wait_stopped()
    reader.cancel()
    # Its last numbers, so the supervisor's totals do not drop when it goes.
    try:
        channel.send("final", snapshot(proxy))
        await asyncio.wait_for(channel.drain(), 2.0)
    except (ConnectionError, TimeoutError):
        pass  # the supervisor is gone
    channel.close()
    return 0


async def _obey(channel: Channel, proxy: Proxy, stop: Any) -> None:
    while True:
        try:
            message = await channel.recv()
        except EOFError:
            log.warning("worker: supervisor gone; draining")
            stop(None, True)
            return
        kind = message[0]
        if kind == "health":
            _quietly(proxy.set_health, *message[1:])
        elif kind == "columns":
            proxy.add_columns(message[1])
        elif kind == "admin":
            method, args = message[1], message[2]
            if method in _ADMIN_CALLS:
                _quietly(getattr(proxy, method), *args)
        elif kind == "snapshot":
            rid = message[1]
            try:
                payload = {"status": proxy.status(), "metrics": snapshot(proxy)}
                channel.send("reply", rid, payload, None)
            except Exception as exc:  # never let a bad snapshot kill the worker
                log.exception("worker: snapshot failed")
                channel.send("reply", rid, None, f"{type(exc).__name__}: {exc}")
        elif kind == "passive":
            try:
                channel.send("reply", message[1], proxy.passive_state(), None)
            except Exception as exc:
                log.exception("worker: passive state failed")
                channel.send("reply", message[1], None, f"{type(exc).__name__}: {exc}")
        elif kind == "retire":
            stop(message[1], False)
        elif kind == "stop":
            stop(message[1], True)


def _quietly(call: Any, *args: Any) -> None:
    # The supervisor validated the change on its own copy; a worker that
    # cannot apply it (a backend removed meanwhile) logs and goes on.
    try:
        call(*args)
    except Exception as exc:
        log.warning("worker: %s%r not applied: %s", getattr(call, "__name__", call), args, exc)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lbproxy-worker")
    p.add_argument("--control-fd", type=int, required=True)
    p.add_argument("--slot", type=int, required=True)
    args = p.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s lbproxy[worker {args.slot}] %(levelname)s %(message)s",
    )
    log.debug("lbproxy %s worker, hot paths: %s", __version__, _fast.describe())
    control = socket.socket(fileno=args.control_fd)
    import uvloop

    return uvloop.run(_serve(control))


if __name__ == "__main__":
    raise SystemExit(main())
