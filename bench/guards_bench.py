"""What the HTTP guards cost per request: a small JSON route with and without them, in the same run.

The guards (bot/http_guards.py) wrap every request: uvicorn's proxy-header middleware, which believes
X-Forwarded-* only from TRUSTED_PROXIES, and the middleware that adds the security headers and makes
self-pointing redirects relative. The app is called in-process through ASGI (no sockets), so the figure is
the guards' own cost, not the network's; the baseline is the same route on the same FastAPI without them.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from fastapi import FastAPI

from bot.http_guards import GuardHeadersMiddleware, ProxyHeadersMiddleware, trusted_proxies


def _app(guarded: bool) -> FastAPI:
    app = FastAPI()
    if guarded:
        app.add_middleware(GuardHeadersMiddleware)
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=trusted_proxies("127.0.0.1"))

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"status": "ok"}

    return app


async def _per_request_us(app: FastAPI, requests: int, headers: list[tuple[bytes, bytes]]) -> float:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/ping",
        "raw_path": b"/ping",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bot.example.nl"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: dict[str, Any]) -> None:
        return None

    for _ in range(200):  # warm up: routes compiled, middleware stack built
        await app(dict(scope), receive, send)
    start = time.perf_counter()
    for _ in range(requests):
        await app(dict(scope), receive, send)
    return (time.perf_counter() - start) / requests * 1e6


def main(argv: list[str]) -> int:
    """Print the per-request time with and without the guards, and their ratio."""
    parser = argparse.ArgumentParser(prog="python -m bench guards")
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args(argv)
    forwarded = [(b"x-forwarded-for", b"198.51.100.7"), (b"x-forwarded-proto", b"https")]
    bare = asyncio.run(_per_request_us(_app(False), args.requests, []))
    guarded = asyncio.run(_per_request_us(_app(True), args.requests, []))
    proxied = asyncio.run(_per_request_us(_app(True), args.requests, forwarded))
    print(f"guards: {args.requests:,} in-process requests of a small JSON route")
    print(f"  without the guards (baseline): {bare:7.1f} µs per request")
    print(f"  with the guards:               {guarded:7.1f} µs per request ({guarded / bare:.2f}x)")
    print(f"  with the guards, via a proxy:  {proxied:7.1f} µs per request ({proxied / bare:.2f}x)")
    return 0
