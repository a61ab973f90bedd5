"""Serve an ASGI app with uvicorn on a free loopback port, lifespan included, for a test's duration."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from sqlmodel import col, select

from bot.app import create_app
from bot.clock import Clock
from bot.config import Settings
from bot.runtime import Runtime, build_runtime
from storage.db import SessionFactory
from storage.models import OutboundMessage
from storage.vocabulary import DeliveryStatus

# Starting (migrations done, fakes on loopback) takes well under a second; this long means it never will.
START_S = 30.0
# Uvicorn waits for every running request before it stops; an event stream the test left open never ends.
SHUTDOWN_S = 5.0


@asynccontextmanager
async def served(app: FastAPI, port: int = 0, *, timeout_s: float = 30.0) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the running app; the server (and the app's background work) stops afterwards.

    `port` 0 takes a free one; a test whose public base URL must point at the app picks it first.
    """
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=SHUTDOWN_S,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    await until_listening(server, serving)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=timeout_s) as http:
            yield http
    finally:
        server.should_exit = True
        await serving


async def until_listening(server: uvicorn.Server, serving: asyncio.Task[None]) -> None:
    """Until uvicorn listens; fails (with its error, if any) when `serve()` ended first or after START_S."""
    deadline = asyncio.get_running_loop().time() + START_S
    while not server.started:
        if serving.done():
            serving.result()
            # A lifespan that fails to start ends serve() quietly.
            raise AssertionError("the server did not start (its startup failed; see the log above)")
        assert asyncio.get_running_loop().time() < deadline, "the server did not start listening"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def served_runtime(
    settings: Settings, clock: Clock, *, port: int = 0, **build: Any
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    """The app as `serve` builds it (`build_runtime` + `create_app`, the test's database already
    migrated), served on loopback; `build` goes to `build_runtime` (fakes' options)."""
    runtime = build_runtime(settings, clock=clock, run_migrations=False, **build)
    async with served(create_app(runtime), port=port) as http:
        yield runtime, http


async def outbox_settled(sessions: SessionFactory, timeout_s: float = 10.0) -> None:
    """Wait until the running dispatcher has sent (or given up on) every message out."""
    waiting = (DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        with sessions() as session:
            pending = session.exec(
                select(OutboundMessage.id).where(col(OutboundMessage.status).in_(waiting))
            ).first()
        if pending is None:
            return
        assert asyncio.get_running_loop().time() < deadline, "the dispatcher did not send the messages out"
        await asyncio.sleep(0.02)
