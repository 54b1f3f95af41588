"""Listening sockets for worker processes, opened once by the supervisor.

With SO_REUSEPORT (Linux, the BSDs) each worker slot gets its own socket on
the shared address, and the kernel spreads new connections evenly over them:
one shared socket would let whichever worker wakes first take a crowd of
connections. The supervisor keeps every socket open for its whole life and
each worker inherits its slot's: a worker that exits (crash, reload, stop)
closes only its copy, so connections queued on that socket wait for the
slot's next worker instead of being reset, which is what makes a reload lose
nothing. Without SO_REUSEPORT all workers share one socket per listener.
"""

from __future__ import annotations

import socket

from lbproxy.config.model import Address, Listener

__all__ = ["BACKLOG", "REUSEPORT", "ListenSockets", "open_socket"]

BACKLOG = 4096  # the kernel caps it at net.core.somaxconn
REUSEPORT = hasattr(socket, "SO_REUSEPORT")


def open_socket(address: Address, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address.host, address.port))
        sock.listen(BACKLOG)
        sock.set_inheritable(True)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class ListenSockets:
    """Per listener, one socket per worker slot (or one shared socket)."""

    def __init__(self, slots: int, reuse_port: bool = REUSEPORT) -> None:
        self.slots = slots
        self.reuse_port = reuse_port
        # listener name -> (its address as bound, the sockets)
        self.by_listener: dict[str, tuple[Address, list[socket.socket]]] = {}

    def open(self, listeners: tuple[Listener, ...]) -> None:
        """Open what ``listeners`` need that is not open yet; keep the rest.

        A listener whose address is unchanged keeps its sockets (and their
        queued connections); all-or-nothing: an OSError closes what this call
        opened and leaves the others as they were.
        """
        opened: dict[str, tuple[Address, list[socket.socket]]] = {}
        try:
            for lc in listeners:
                held = self.by_listener.get(lc.name)
                if held is not None and held[0] == lc.bind:
                    continue
                same = next(
                    (v for v in self.by_listener.values() if v[0] == lc.bind and lc.bind.port),
                    None,
                )
                if same is not None:  # renamed: same address, same sockets
                    opened[lc.name] = same
                    continue
                opened[lc.name] = self._open_one(lc.bind)
        except BaseException:
            for name, (_, socks) in opened.items():
                if name not in self.by_listener and not self._shared(socks):
                    for s in socks:
                        s.close()
            raise
        self.by_listener.update(opened)

    def _shared(self, socks: list[socket.socket]) -> bool:
        return any(socks is held for _, held in self.by_listener.values())

    def _open_one(self, address: Address) -> tuple[Address, list[socket.socket]]:
        count = self.slots if self.reuse_port else 1
        first = open_socket(address, self.reuse_port)
        socks = [first]
        try:
            bound = Address(address.host, first.getsockname()[1])
            for _ in range(count - 1):
                # Port 0: every slot binds the port the first one was given.
                socks.append(open_socket(bound, self.reuse_port))
        except BaseException:
            for s in socks:
                s.close()
            raise
        return address, socks

    def for_slot(self, slot: int, names: list[str]) -> dict[str, socket.socket]:
        """The socket each named listener gives worker ``slot``."""
        out = {}
        for name in names:
            _, socks = self.by_listener[name]
            out[name] = socks[slot % len(socks)]
        return out

    def port(self, name: str) -> int:
        _, socks = self.by_listener[name]
        port: int = socks[0].getsockname()[1]
        return port

    def close_unused(self, keep: set[str]) -> None:
        """Close the sockets of listeners no longer configured."""
        for name in list(self.by_listener):
            if name in keep:
                continue
            _, socks = self.by_listener.pop(name)
            if not self._shared(socks):
                for s in socks:
                    s.close()

    def close(self) -> None:
        closed: set[int] = set()
        for _, socks in self.by_listener.values():
            for s in socks:
                if id(s) not in closed:
                    closed.add(id(s))
                    s.close()
        self.by_listener.clear()
