"""The ASGI app: health, webhooks, simulator, REST API and control room, on one server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy import text
from sqlalchemy.exc import DataError

from bot.api.actions import actions_router
from bot.api.cap import cap_router
from bot.channels.simulator import simulator_router
from bot.controlroom.router import controlroom_router
from bot.http_guards import GuardHeadersMiddleware, ProxyHeadersMiddleware, guard_headers, trusted_proxies
from bot.public.action_page import action_page_router
from bot.public.my_data_export import my_data_export_router
from bot.public.privacy import privacy_router
from bot.public.signup import signup_router
from bot.runtime import Runtime

log = logging.getLogger(__name__)


def create_app(runtime: Runtime) -> FastAPI:
    """The FastAPI app for a wired runtime; starting it starts the runtime's background work."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    docs = runtime.settings.serves_api_docs
    app = FastAPI(
        title="burgernet-bot",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.runtime = runtime
    # Added last, runs first: the client address is settled before anything (a rate limit) reads it.
    app.add_middleware(GuardHeadersMiddleware)
    proxies = trusted_proxies(runtime.settings.trusted_proxies)
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        """A 500 leaves outside the middleware, so it carries the guard headers itself (Starlette logs it)."""
        return JSONResponse({"detail": "internal error"}, status_code=500, headers=guard_headers())

    @app.exception_handler(DataError)
    async def unstorable(request: Request, exc: DataError) -> JSONResponse:
        """A value the database cannot hold (PostgreSQL: a NUL byte in text, an integer out of range)."""
        # The request's fault, not ours: 422 instead of a 500. The value itself is not logged.
        log.warning("%s %s refused: a value cannot be stored", request.method, request.url.path)
        return JSONResponse({"detail": "a value in the request cannot be stored"}, status_code=422)

    def storage_answers() -> None:
        with runtime.sessions() as session:
            session.execute(text("SELECT 1"))

    @app.get("/healthz", tags=["health"])
    async def healthz() -> JSONResponse:
        """200 `{"status":"ok"}` once storage answers and the scheduler runs (or is switched off)."""
        try:
            await asyncio.to_thread(storage_answers)
        except Exception:
            return JSONResponse({"status": "unavailable", "storage": "down"}, status_code=503)
        if runtime.settings.scheduler.enabled and not runtime.scheduler.is_running:
            return JSONResponse({"status": "starting", "scheduler": "down"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        """The simulator when it is on, else the control room."""
        return RedirectResponse("/simulator" if runtime.simulator_on else "/controlroom", 303)

    for router in runtime.routers:
        app.include_router(router)
    app.include_router(
        actions_router(
            sessions=runtime.sessions,
            settings=runtime.settings,
            clock=runtime.clock,
            book=runtime.book,
            texts=runtime.texts,
            on_queued=runtime.wake_dispatcher,
            vault=runtime.vault,
        )
    )
    app.include_router(
        cap_router(
            sessions=runtime.sessions,
            settings=runtime.settings,
            clock=runtime.clock,
            book=runtime.book,
            texts=runtime.texts,
            catalogue=runtime.catalogue,
        )
    )
    app.include_router(privacy_router(runtime.settings))
    app.include_router(
        action_page_router(
            sessions=runtime.sessions,
            vault=runtime.vault,
            settings=runtime.settings,
            catalogue=runtime.catalogue,
            texts=runtime.texts,
        )
    )
    app.include_router(
        my_data_export_router(
            sessions=runtime.sessions, vault=runtime.vault, catalogue=runtime.catalogue, clock=runtime.clock
        )
    )
    app.include_router(
        signup_router(
            sessions=runtime.sessions,
            vault=runtime.vault,
            settings=runtime.settings,
            catalogue=runtime.catalogue,
            book=runtime.book,
            clock=runtime.clock,
            on_code_queued=runtime.wake_dispatcher,
        )
    )
    app.include_router(
        controlroom_router(
            runtime, tips=runtime.tip_feed, on_queued=runtime.wake_dispatcher, geocoder=runtime.geocoder
        )
    )
    if runtime.simulator_on:
        app.include_router(
            simulator_router(inbox=runtime.inbox, simulator=runtime.simulator, clock=runtime.clock)
        )
    return app
