"""The supervisor <-> worker control channel: pickled messages over a socketpair.

Each message is a 4-byte big-endian length and a pickle of a tuple whose first
item names the message. Pickle is safe here: both ends are lbproxy processes
of the same installation, and the socketpair is reachable by no one else.
A request carries an id, and its reply the same id, so the supervisor can
have several questions out to one worker at once (a scrape and a status call).

The channel doubles as the supervisor's death notice for a worker: when the
worker exits, for any reason, its end closes and ``recv`` raises EOFError.
"""

from __future__ import annotations

import asyncio
import itertools
import pickle
import socket
import struct
from typing import Any

__all__ = ["MAX_MESSAGE", "Channel"]

MAX_MESSAGE = 256 * 1024 * 1024  # a snapshot of a huge config still fits
_LEN = struct.Struct(">I")


class Channel:
    """One end of a control socketpair, on the running event loop."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}

    @classmethod
    async def open(cls, sock: socket.socket) -> Channel:
        reader, writer = await asyncio.open_connection(sock=sock, limit=MAX_MESSAGE)
        return cls(reader, writer)

    def send(self, *message: Any) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        if len(data) > MAX_MESSAGE:
            raise ValueError(f"control message too large: {len(data)} bytes")
        self._writer.write(_LEN.pack(len(data)) + data)

    async def drain(self) -> None:
        await self._writer.drain()

    async def recv(self) -> tuple[Any, ...]:
        """The next message; EOFError when the other end has gone."""
        try:
            head = await self._reader.readexactly(_LEN.size)
            (size,) = _LEN.unpack(head)
            if size > MAX_MESSAGE:
                raise EOFError(f"control message too large: {size} bytes")
            data = await self._reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise EOFError("control channel closed") from exc
        message = pickle.loads(data)
        if not isinstance(message, tuple) or not message:
            raise EOFError(f"malformed control message: {message!r}")
        return message

    # -- requests with replies ----------------------------------------------------
    def request(self, kind: str, *args: Any) -> asyncio.Future[Any]:
        """Send ``(kind, id, *args)``; the future gets the reply's payload once
        ``resolve`` sees ``("reply", id, payload)`` (the reader loop calls it)."""
        rid = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = fut
        fut.add_done_callback(lambda _: self._waiting.pop(rid, None))
        self.send(kind, rid, *args)
        return fut

    def resolve(self, rid: int, payload: Any, error: str | None = None) -> None:
        fut = self._waiting.pop(rid, None)
        if fut is None or fut.done():
            return
        if error is not None:
            fut.set_exception(RuntimeError(error))
        else:
            fut.set_result(payload)

    def fail_all(self, exc: BaseException) -> None:
        """The other end is gone: every question out to it fails."""
        waiting, self._waiting = self._waiting, {}
        for fut in waiting.values():
            if not fut.done():
                fut.set_exception(exc)

    def close(self) -> None:
        self._writer.close()
