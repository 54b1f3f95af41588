"""A naive aiohttp reverse proxy: the way most Python users would write one.

One aiohttp web handler for every path; one shared ``ClientSession`` forwards
method, path, query, headers and body to the backend and streams the response
back. No tuning beyond what the obvious version needs to be correct
(hop-by-hop headers are dropped, the connection pool is not capped at 100).

    python bench/peers/naive_aiohttp.py --listen 127.0.0.1:8080 --backend 127.0.0.1:8000
"""

from __future__ import annotations

import argparse

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
    )
)


def make_app(backend: str) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    base = f"http://{backend}"

    async def start_session(app: web.Application) -> None:
        app["session"] = ClientSession(
            connector=TCPConnector(limit=0),
            timeout=ClientTimeout(total=None, sock_connect=5),
            auto_decompress=False,
        )

    async def close_session(app: web.Application) -> None:
        await app["session"].close()

    async def handler(request: web.Request) -> web.StreamResponse:
        session: ClientSession = request.app["session"]
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read() if request.body_exists else None
        async with session.request(
            request.method,
            base + request.rel_url.raw_path_qs,
            headers=headers,
            data=body,
            allow_redirects=False,
        ) as upstream:
            resp = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for k, v in upstream.headers.items():
                if k.lower() not in HOP_BY_HOP:
                    resp.headers.add(k, v)
            if upstream.content_length is not None:
                resp.content_length = upstream.content_length
            await resp.prepare(request)
            async for chunk in upstream.content.iter_chunked(64 * 1024):
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    app.on_startup.append(start_session)
    app.on_cleanup.append(close_session)
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT to listen on")
    p.add_argument("--backend", required=True, help="HOST:PORT of the backend")
    args = p.parse_args()
    host, port = args.listen.rsplit(":", 1)
    web.run_app(make_app(args.backend), host=host, port=int(port), access_log=None, print=None)


if __name__ == "__main__":
    main()
