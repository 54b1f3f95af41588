"""The supervisor of ``workers: N``: worker processes, their sockets and the
control plane they share.

The supervisor opens every listening socket (see sockets.py), runs the
control plane (a ``Proxy`` in the ``control`` role: health checks once per
backend for all workers, the pools' admin state, sample backends) and the
admin API, and starts N workers (child.py), one per slot. Each worker serves
its slot's sockets with its own event loop.

- Requests in flight: every worker counts its own in its row of a table in
  shared memory (lbproxy/_fast/shared_py.py), one column per pool and per
  backend, so ``limits.max_connections`` and least-connections hold across
  workers. A worker that exits has its row cleared before the row is reused.
- Health: the control proxy's checks decide; every flip is sent to every
  worker at once, and a worker starting gets the current state first.
- Admin changes: applied to the control proxy (which validates them), then
  sent to every worker; they are also remembered and replayed to a worker
  that restarts, until a reload from the file resets them.
- A worker that exits unexpectedly is restarted on the same slot, after a
  back-off that doubles with each crash in a row (0.5 s .. 30 s); a worker
  that served 30 s resets the count.
- Reload (SIGHUP, or the admin API): the new file is validated, the control
  proxy takes it, a new generation of workers starts with it on the same
  sockets; only when all of them are ready are the old ones retired: they
  stop accepting, answer each connection's next request with
  ``Connection: close``, close idle connections at their idle timeout, and
  exit when done or at ``shutdown_timeout``. If the new workers cannot start,
  they are stopped, the control proxy goes back to the old config, and the
  old workers never noticed.
- SIGTERM/SIGINT: every worker drains (``shutdown_timeout``), then the
  supervisor exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mmap
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from lbproxy._fast import load as _load_fast
from lbproxy.config import ConfigError, load_config
from lbproxy.config.model import Config
from lbproxy.http.pool import BackendState, PoolRuntime, shared_key
from lbproxy.metrics import MetricsSnapshot, counters_only, merge
from lbproxy.proxy import BindError, Proxy
from lbproxy.tls import ticketkeys
from lbproxy.workers.channel import Channel
from lbproxy.workers.sockets import ListenSockets

__all__ = ["Supervisor", "WorkerStartError", "worker_count"]

log = logging.getLogger("lbproxy")

READY_TIMEOUT = 30.0  # a worker that is not serving by then failed to start
SNAPSHOT_TIMEOUT = 2.0
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
STABLE_AFTER = 30.0  # seconds served that forgive earlier crashes
# The shared table of requests in flight: a row per worker process (two
# generations side by side during a reload, and restarts), a column per pool
# and per backend. Backends past MAX_COLUMNS are counted per worker only.
SPARE_ROWS = 2
MAX_COLUMNS = 8192


class WorkerStartError(RuntimeError):
    """Workers could not start; the message says which and why."""


def worker_count(config_value: int | None) -> int:
    """``workers: auto`` (None) is one per CPU this process may run on."""
    if config_value is not None:
        return config_value
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class Worker:
    """One worker process, from spawn to exit."""

    def __init__(self, slot: int, generation: int) -> None:
        self.slot = slot
        self.generation = generation
        self.proc: subprocess.Popen[bytes] | None = None
        self.channel: Channel | None = None
        self.ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.started_at = time.monotonic()
        self.retiring = False
        self.row = -1  # its row of the shared table; -1: none was free

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    @property
    def serving(self) -> bool:
        return self.ready.done() and not self.ready.exception() and not self.exited.done()

    def send(self, *message: Any) -> None:
        if self.channel is not None and not self.exited.done():
            # A worker exiting: its reader sees EOF and reports it.
            with contextlib.suppress(ConnectionError, RuntimeError):
                self.channel.send(*message)


class Supervisor:
    def __init__(self, config: Config, count: int) -> None:
        self.config = config
        self.count = count
        self.sockets = ListenSockets(count)
        self.control = Proxy(config, role="control", settle_heap=True)
        self.ticket_key = ticketkeys.new_key()
        self.control.on_health = self._relay_health
        self.workers: dict[int, Worker] = {}  # slot -> the current generation's worker
        self.retiring: set[Worker] = set()
        self.generation = 0
        self.admin_log: list[tuple[str, tuple[Any, ...]]] = []  # replayed to restarts
        self.admin: Any = None  # lbproxy.admin.AdminServer, when configured
        self.reloads: dict[str, int] = {"success": 0, "failure": 0}
        # What workers that exited had counted (their gauges zeroed): added
        # to the live workers' numbers so totals never go down on a reload.
        self.retired_numbers: MetricsSnapshot | None = None
        self._crashes: dict[int, int] = {}
        self._stopping = False
        self._stopped = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        rows = 2 * count + SPARE_ROWS
        # Row 0 holds the totals; rows 1..rows are the workers'.
        self._shm_fd, self._shm = _shared_memory((rows + 1) * MAX_COLUMNS * 8)
        self.table = _load_fast("shared").Counters(self._shm, rows, MAX_COLUMNS, self._shm_fd)
        self.columns: dict[str, int] = {}
        self._free_rows = list(range(rows, 0, -1))
        self._columns_full = False

    # -- start and stop -------------------------------------------------------------
    async def start(self) -> None:
        """Open the sockets, start the control plane and every worker; raises
        BindError or WorkerStartError (with everything started stopped)."""
        try:
            self.sockets.open(self.config.listeners)
        except OSError as err:
            self.sockets.close()
            raise BindError(f"cannot bind a listener: {err.strerror or err}") from err
        try:
            await self.control.start()
            self._assign_columns()
            self.generation = 1
            await self._start_generation(self.config, self.generation)
            if self.config.admin is not None:
                from lbproxy.admin import AdminServer
                from lbproxy.workers.cluster import Cluster

                cluster = Cluster(self)
                admin = AdminServer(cluster, self.config.admin)
                try:
                    await admin.start()
                except OSError as err:
                    raise BindError(
                        f"cannot bind {self.config.admin.bind} (admin API): {err.strerror or err}"
                    ) from err
                self.admin = admin
                self._track(asyncio.get_running_loop().create_task(cluster.keep_fresh()))
        except BaseException:
            await self._abort()
            raise

    async def _abort(self) -> None:
        for w in [*self.workers.values(), *self.retiring]:
            self._kill(w)
        await self.control.stop(timeout=0)
        self.sockets.close()

    def addresses(self) -> dict[str, tuple[str, int]]:
        return {
            name: (addr.host, self.sockets.port(name))
            for name, (addr, _) in self.sockets.by_listener.items()
        }

    async def stop(self) -> None:
        """Drain every worker (up to ``shutdown_timeout``), then stop."""
        if self._stopping:
            return
        self._stopping = True
        timeout = self.config.shutdown_timeout
        everyone = [*self.workers.values(), *self.retiring]
        for w in everyone:
            w.send("stop", timeout)
        waits = [w.exited for w in everyone if not w.exited.done()]
        if waits:
            # The workers enforce the deadline themselves; past it (and a
            # grace second) the supervisor does.
            await asyncio.wait(waits, timeout=timeout + 2.0)
        for w in everyone:
            if not w.exited.done():
                log.error("worker %d (pid %d) did not stop in time; killing it", w.slot, w.pid)
                self._kill(w)
        if waits:
            await asyncio.wait(waits, timeout=5.0)
        if self.admin is not None:
            await self.admin.stop()
        await self.control.stop(timeout=0)
        for task in list(self._tasks):
            task.cancel()
        self.sockets.close()
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    # -- workers ----------------------------------------------------------------------
    async def _start_generation(
        self,
        config: Config,
        generation: int,
        passive: dict[int, dict[str, Any]] | None = None,
    ) -> dict[int, Worker]:
        """Start one worker per slot with ``config`` (and the breakers and
        ejections the slot's previous worker learned); when all are serving
        they become the current workers. On failure every one is stopped."""
        started: dict[int, Worker] = {}
        try:
            for slot in range(self.count):
                started[slot] = await self._spawn(
                    slot, generation, config, (passive or {}).get(slot)
                )
            await asyncio.wait_for(
                asyncio.gather(*(w.ready for w in started.values())), READY_TIMEOUT
            )
        except BaseException as exc:
            for w in started.values():
                self._kill(w)
            if isinstance(exc, TimeoutError):
                raise WorkerStartError(
                    f"workers not serving within {READY_TIMEOUT:g}s"
                ) from None
            raise
        old = dict(self.workers)
        self.workers.update(started)
        for w in old.values():
            w.retiring = True
            self.retiring.add(w)
        return old

    async def _spawn(
        self,
        slot: int,
        generation: int,
        config: Config,
        passive: dict[str, Any] | None = None,
    ) -> Worker:
        w = Worker(slot, generation)
        names = [lc.name for lc in config.listeners]
        listen = self.sockets.for_slot(slot, names)
        if self._free_rows:
            w.row = self._free_rows.pop()
        parent, child = socket.socketpair()
        try:
            w.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "lbproxy.workers.child",
                    "--control-fd",
                    str(child.fileno()),
                    "--slot",
                    str(slot),
                ],
                pass_fds=[
                    child.fileno(),
                    self._shm_fd,
                    *(s.fileno() for s in listen.values()),
                ],
                stdin=subprocess.DEVNULL,
            )
        except OSError:
            parent.close()
            self._free_row(w)
            raise
        finally:
            child.close()
        w.channel = await Channel.open(parent)
        w.channel.send(
            "start",
            {
                "slot": slot,
                "config": config,
                "sockets": {name: s.fileno() for name, s in listen.items()},
                "health": self.control.health(),
                "admin": list(self.admin_log),
                # One key signs every worker's cookies (sticky sessions).
                "cookie_key": self.control.cookie_key,
                # One key seals every worker's TLS session tickets: a client
                # resumes whichever worker its next connection reaches.
                "ticket_key": self.ticket_key,
                "passive": passive,
                "shared": None
                if w.row < 0
                else {
                    "fd": self._shm_fd,
                    "rows": self.table.rows,
                    "cols": self.table.cols,
                    "row": w.row,
                    "columns": dict(self.columns),
                },
            },
        )
        self._track(asyncio.get_running_loop().create_task(self._read(w)))
        return w

    async def _read(self, w: Worker) -> None:
        assert w.channel is not None
        channel = w.channel
        try:
            while True:
                message = await channel.recv()
                kind = message[0]
                if kind == "ready":
                    if not w.ready.done():
                        w.ready.set_result(message[1])
                elif kind == "reply":
                    channel.resolve(message[1], message[2], message[3])
                elif kind == "final":
                    self._retire_numbers(message[1])
                elif kind == "failed" and not w.ready.done():
                    w.ready.set_exception(
                        WorkerStartError(f"worker {w.slot} failed to start: {message[1]}")
                    )
        except EOFError:
            pass
        finally:
            channel.fail_all(ConnectionError(f"worker {w.slot} exited"))
            channel.close()
        code = await asyncio.get_running_loop().run_in_executor(None, _wait, w)
        if not w.ready.done():
            w.ready.set_exception(
                WorkerStartError(f"worker {w.slot} exited before serving ({_describe(code)})")
            )
        self._free_row(w)
        w.exited.set_result(code)
        self._exited(w, code)

    def _exited(self, w: Worker, code: int) -> None:
        self.retiring.discard(w)
        if self._stopping or w.retiring or self.workers.get(w.slot) is not w:
            log.info("worker %d (pid %d) exited (%s)", w.slot, w.pid, _describe(code))
            return
        if not w.ready.done() or w.ready.exception() is not None:
            return  # a start that failed: whoever started it reports it
        served = time.monotonic() - w.started_at
        crashes = 0 if served >= STABLE_AFTER else self._crashes.get(w.slot, 0)
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2**crashes)
        self._crashes[w.slot] = crashes + 1
        log.error(
            "worker %d (pid %d) died (%s) after %.1fs; restarting in %gs",
            w.slot,
            w.pid,
            _describe(code),
            served,
            delay,
        )
        self._track(asyncio.get_running_loop().create_task(self._restart(w.slot, delay)))

    async def _restart(self, slot: int, delay: float) -> None:
        await asyncio.sleep(delay)
        while not self._stopping:
            generation = self.generation
            try:
                w = await self._spawn(slot, generation, self.config)
                await asyncio.wait_for(asyncio.shield(w.ready), READY_TIMEOUT)
            except Exception as exc:
                log.error(
                    "worker %d: restart failed: %s; trying again in %gs", slot, exc, BACKOFF_MAX
                )
                await asyncio.sleep(BACKOFF_MAX)
                continue
            if self._stopping or generation != self.generation:
                w.send("stop", 0.0)  # a reload or stop overtook this restart
                return
            self.workers[slot] = w
            log.info("worker %d restarted (pid %d)", slot, w.pid)
            return

    def _free_row(self, w: Worker) -> None:
        # Whatever it held in flight when it went is not in flight any more.
        if w.row >= 0:
            self.table.clear_row(w.row)
            self._free_rows.append(w.row)
            w.row = -1

    def _assign_columns(self) -> dict[str, int]:
        """Columns for the control proxy's pools and backends that have none;
        returns the new ones."""
        new: dict[str, int] = {}
        for name, pool in self.control.pools.items():
            keys = [shared_key(name, None), *(shared_key(name, b.label) for b in pool.backends)]
            for key in keys:
                if key in self.columns:
                    continue
                if len(self.columns) >= MAX_COLUMNS:
                    if not self._columns_full:
                        self._columns_full = True
                        log.warning(
                            "more than %d pools and backends: the rest count requests in"
                            " flight per worker only",
                            MAX_COLUMNS,
                        )
                    return new
                self.columns[key] = new[key] = len(self.columns)
        return new

    def _kill(self, w: Worker) -> None:
        if w.proc is not None and w.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                w.proc.kill()

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def serving(self) -> list[Worker]:
        return [w for w in self.workers.values() if w.serving]

    def _retire_numbers(self, final: MetricsSnapshot) -> None:
        parts = [counters_only(final)]
        if self.retired_numbers is not None:
            parts.append(self.retired_numbers)
        self.retired_numbers = merge(parts)

    # -- what workers are told ------------------------------------------------------
    def _relay_health(self, pool: PoolRuntime, b: BackendState) -> None:
        if b.health is None:
            return
        healthy = b.health.healthy
        for w in [*self.workers.values(), *self.retiring]:
            w.send("health", pool.name, b.label, healthy)

    def admin_change(self, method: str, *args: Any) -> None:
        """Apply an admin change to the control proxy (which raises for a bad
        one), then to every worker; restarts replay it."""
        getattr(self.control, method)(*args)
        self.admin_log.append((method, args))
        columns = self._assign_columns()  # a backend added
        for w in self.workers.values():
            if columns:
                w.send("columns", columns)
            w.send("admin", method, args)

    async def _ask(self, workers: list[Worker], kind: str) -> dict[Worker, Any]:
        """Send ``kind`` to each serving worker; the answers that came within
        SNAPSHOT_TIMEOUT (a worker that does not answer is left out)."""
        asks: dict[Worker, asyncio.Future[Any]] = {}
        for w in workers:
            if w.serving and w.channel is not None:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    asks[w] = w.channel.request(kind)
        if not asks:
            return {}
        await asyncio.wait(asks.values(), timeout=SNAPSHOT_TIMEOUT)
        answers = {}
        for w, fut in asks.items():
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                answers[w] = fut.result()
            else:
                fut.cancel()
        return answers

    async def snapshots(self) -> list[dict[str, Any]]:
        """Every serving worker's status and metrics, retiring ones included."""
        answers = await self._ask([*self.workers.values(), *self.retiring], "snapshot")
        return list(answers.values())

    async def _passive_states(self) -> dict[int, dict[str, Any]]:
        """Per slot, the breakers and ejections its current worker learned."""
        answers = await self._ask(list(self.workers.values()), "passive")
        return {w.slot: state for w, state in answers.items()}

    # -- reload -----------------------------------------------------------------------
    async def reload(self, config: Config | None = None) -> None:
        try:
            async with self._reload_lock:
                await self._reload(config)
        except BaseException:
            self.reloads["failure"] += 1
            raise
        self.reloads["success"] += 1

    async def _reload(self, config: Config | None) -> None:
        if config is None:
            if self.config.source is None:
                raise ConfigError(["reload: this proxy was not started from a file"])
            config = load_config(self.config.source)
        if worker_count(config.workers) != self.count:
            log.warning(
                "reload: keeping %d workers (a new worker count needs a restart)", self.count
            )
        try:
            self.sockets.open(config.listeners)
        except OSError as err:
            raise ConfigError([f"listeners: cannot bind: {err}"]) from err
        old_config = self.config
        await self.control.reload(config)
        self._assign_columns()
        self.generation += 1
        admin_log, self.admin_log = self.admin_log, []  # the file decides again
        passive = await self._passive_states()
        try:
            old = await self._start_generation(config, self.generation, passive)
        except BaseException as exc:
            self.generation -= 1
            self.admin_log = admin_log
            await self.control.reload(old_config)
            self.sockets.close_unused({lc.name for lc in old_config.listeners})
            raise ConfigError([f"reload: new workers did not start: {exc}"]) from exc
        self.config = config
        for w in old.values():
            w.send("retire", config.shutdown_timeout)
        self.sockets.close_unused({lc.name for lc in config.listeners})
        log.info(
            "config reloaded from %s: %d new workers serving, %d old ones draining",
            config.source,
            len(self.workers),
            len(old),
        )


def _shared_memory(size: int) -> tuple[int, mmap.mmap]:
    """A zeroed shared mapping of ``size`` bytes and the descriptor workers
    inherit to map it too: a memfd on Linux, an unlinked temp file elsewhere."""
    try:
        fd = os.memfd_create("lbproxy-in-flight")
    except (AttributeError, OSError):
        handle, path = tempfile.mkstemp(prefix="lbproxy-in-flight-")
        os.unlink(path)
        fd = handle
    os.ftruncate(fd, size)
    return fd, mmap.mmap(fd, size)


def _wait(w: Worker) -> int:
    assert w.proc is not None
    return w.proc.wait()


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"
