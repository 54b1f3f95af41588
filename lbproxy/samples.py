"""Built-in sample backends for trying lbproxy out (``sample_backends: N``).

Each answers every request with its own name, so successive requests through
a round-robin pool visibly go to each in turn. aiohttp serves them: they are
test furniture beside the data path, never part of it.
"""

from __future__ import annotations

from aiohttp import web

SAMPLE_BASE_PORT = 9101


def sample_name(i: int) -> str:
    return f"sample-{i + 1}"


def _app(name: str) -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        body = await request.read()
        text = f"Hello from {name}: {request.method} {request.path_qs}"
        if body:
            text += f" ({len(body)} body bytes)"
        return web.Response(text=text + "\n", headers={"X-Sample-Backend": name})

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_route("GET", "/healthz", health)
    app.router.add_route("*", "/{tail:.*}", hello)
    return app


class SampleBackends:
    def __init__(self, count: int, host: str = "127.0.0.1", base_port: int = SAMPLE_BASE_PORT):
        self.count = count
        self.host = host
        self.base_port = base_port
        self._runners: list[web.AppRunner] = []

    def addresses(self) -> list[str]:
        return [f"{self.host}:{self.base_port + i}" for i in range(self.count)]

    async def start(self) -> None:
        for i in range(self.count):
            runner = web.AppRunner(_app(sample_name(i)), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, self.host, self.base_port + i, reuse_address=True)
            self._runners.append(runner)
            await site.start()

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
