"""``lbproxy`` command line: run, check, version. Exit codes per CONFIG.md:
0 ok, 1 invalid config, 2 usage error, 3 a port could not be bound."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from lbproxy import __version__, _fast
from lbproxy.config import ConfigError, load_config
from lbproxy.config.model import Config
from lbproxy.proxy import BindError, Proxy
from lbproxy.workers.supervisor import Supervisor, WorkerStartError, worker_count

EXIT_OK = 0
EXIT_CONFIG = 1
EXIT_USAGE = 2
EXIT_BIND = 3

log = logging.getLogger("lbproxy")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lbproxy", description="HTTP load balancer and reverse proxy")
    p.add_argument("--config", "-c", metavar="FILE", help="YAML configuration file")
    p.add_argument("--check", action="store_true", help="validate the config and exit")
    p.add_argument("--workers", metavar="N|auto", help="worker processes (overrides config)")
    p.add_argument("--version", action="version", version=f"lbproxy {__version__}")
    return p


def _workers_arg(value: str) -> int | None:
    if value == "auto":
        return None
    n = int(value)
    if n < 1:
        raise ValueError(value)
    return n


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.config:
        parser.print_usage(sys.stderr)
        print("lbproxy: error: --config FILE is required", file=sys.stderr)
        return EXIT_USAGE
    workers: int | None = 1
    if args.workers is not None:
        try:
            workers = _workers_arg(args.workers)
        except ValueError:
            print(
                "lbproxy: error: --workers must be a positive integer or 'auto', "
                f"got {args.workers!r}",
                file=sys.stderr,
            )
            return EXIT_USAGE
    try:
        config = load_config(args.config)
    except ConfigError as err:
        print(f"lbproxy: invalid config {args.config}:", file=sys.stderr)
        for line in err.errors:
            print(f"  {line}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check:
        print(f"lbproxy: {args.config} is valid", file=sys.stderr)
        return EXIT_OK
    if args.workers is None:
        workers = config.workers
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s lbproxy %(levelname)s %(message)s",
    )
    count = worker_count(workers)
    if count == 1:
        return run(config)
    return run_workers(config, count)


def run(config: Config) -> int:
    """Run until SIGTERM/SIGINT; returns the process exit code."""
    try:
        import uvloop

        return uvloop.run(_serve(config))
    except BindError as err:
        print(f"lbproxy: {err}", file=sys.stderr)
        return EXIT_BIND


def _scheme(config: Config, listener: str) -> str:
    """The URL scheme a listener answers: https where it terminates TLS."""
    for lc in config.listeners:
        if lc.name == listener and lc.tls is not None:
            return "https"
    return "http"


def run_workers(config: Config, count: int) -> int:
    """Run a supervisor and ``count`` worker processes until SIGTERM/SIGINT."""
    import uvloop

    try:
        return uvloop.run(_supervise(config, count))
    except BindError as err:
        print(f"lbproxy: {err}", file=sys.stderr)
        return EXIT_BIND
    except WorkerStartError as err:
        print(f"lbproxy: {err}", file=sys.stderr)
        return EXIT_CONFIG


async def _supervise(config: Config, count: int) -> int:
    loop = asyncio.get_running_loop()
    log.info("lbproxy %s, %d workers, hot paths: %s", __version__, count, _fast.describe())
    sup = Supervisor(config, count)
    await sup.start()
    if sup.control.samples is not None:
        log.info("sample backends on %s", ", ".join(sup.control.samples.addresses()))
    for name, (host, port) in sup.addresses().items():
        shown = f"[{host}]" if ":" in host else host
        url = f"{_scheme(config, name)}://{shown}:{port}"
        log.info("listening on %s (listener %s, %d workers)", url, name, count)
    _handle_signals(loop, sup.stop, sup.reload, config.shutdown_timeout)
    await sup.wait_stopped()
    log.info("stopped")
    return EXIT_OK


def _handle_signals(
    loop: asyncio.AbstractEventLoop,
    stop: Callable[[], Coroutine[Any, Any, None]],
    reload: Callable[[], Coroutine[Any, Any, None]],
    shutdown_timeout: float,
) -> None:
    """SIGTERM/SIGINT drain and stop; SIGHUP reloads the config file."""
    stopping: list[asyncio.Task[None]] = []
    reloads: set[asyncio.Task[None]] = set()  # keeps running reloads referenced

    def _stop(signame: str) -> None:
        if not stopping:
            log.info("%s: draining in-flight requests (up to %gs)", signame, shutdown_timeout)
            stopping.append(loop.create_task(stop()))

    def _reload() -> None:
        async def go() -> None:
            try:
                await reload()
            except ConfigError as err:
                log.error("reload failed, keeping the old config:\n  %s", "\n  ".join(err.errors))

        reloads.add(task := loop.create_task(go()))
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGTERM, _stop, "SIGTERM")
    loop.add_signal_handler(signal.SIGINT, _stop, "SIGINT")
    loop.add_signal_handler(signal.SIGHUP, _reload)


async def _serve(config: Config) -> int:
    loop = asyncio.get_running_loop()
    log.info("lbproxy %s, hot paths: %s", __version__, _fast.describe())
    proxy = Proxy(config, settle_heap=True)
    await proxy.start()
    if proxy.samples is not None:
        log.info("sample backends on %s", ", ".join(proxy.samples.addresses()))
    for name, (host, port) in proxy.addresses().items():
        shown = f"[{host}]" if ":" in host else host
        log.info("listening on %s://%s:%d (listener %s)", _scheme(config, name), shown, port, name)
    _handle_signals(loop, proxy.stop, proxy.reload, config.shutdown_timeout)
    await proxy.wait_stopped()
    log.info("stopped")
    return EXIT_OK
