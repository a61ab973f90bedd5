"""`controlroom_router(runtime)`: every control-room page under /controlroom, on one APIRouter."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from argon2 import PasswordHasher
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from bot.controlroom.auth import AnyVisitor
from bot.controlroom.deps import PREFIX, ControlRoom, RuntimeLike
from bot.controlroom.tipfeed import NoTipFeed, TipFeed
from bot.geocoder import Geocoder
from storage.models import OperatorRole

STATIC = Path(__file__).parent / "static"
STATIC_FILES = {
    "controlroom.css": "text/css",
    "controlroom.js": "text/javascript",
    "map.js": "text/javascript",
}
# Leaflet, vendored from its npm package (no CDN): the script, its stylesheet and the images that names.
LEAFLET = STATIC / "vendor" / "leaflet"
LEAFLET_FILES = {
    "leaflet.js": "text/javascript",
    "leaflet.css": "text/css",
    **{f"images/{p.name}": "image/png" for p in (LEAFLET / "images").glob("*.png")},
}


def controlroom_router(
    runtime: RuntimeLike,
    *,
    hasher: PasswordHasher | None = None,
    tips: TipFeed | None = None,
    on_queued: Callable[[], None] | None = None,
    stream_poll_s: float = 0.5,
    geocoder: Geocoder | None = None,
) -> APIRouter:
    """The control room for a wired runtime; include it in the app as it is (its prefix is /controlroom).

    `tips` is the tip handling; `on_queued` wakes the dispatcher after a launch or a close.
    """
    return routes_for(
        make_controlroom(
            runtime,
            hasher=hasher,
            tips=tips,
            on_queued=on_queued,
            stream_poll_s=stream_poll_s,
            geocoder=geocoder,
        )
    )


def make_controlroom(
    runtime: RuntimeLike,
    *,
    hasher: PasswordHasher | None = None,
    tips: TipFeed | None = None,
    on_queued: Callable[[], None] | None = None,
    stream_poll_s: float = 0.5,
    geocoder: Geocoder | None = None,
) -> ControlRoom:
    """The control room's shared objects, taken from the runtime."""
    return ControlRoom(
        settings=runtime.settings,
        clock=runtime.clock,
        sessions=runtime.sessions,
        vault=runtime.vault,
        book=runtime.book,
        catalogue=runtime.catalogue,
        hasher=hasher or PasswordHasher(),
        tips=tips or NoTipFeed(),
        on_queued=on_queued,
        stream_poll_s=stream_poll_s,
        geocoder=geocoder,
    )


def routes_for(cr: ControlRoom) -> APIRouter:
    """Every control-room route, sharing one `ControlRoom`."""
    from bot.controlroom import (
        pages_actions,
        pages_admin,
        pages_auth,
        pages_figures,
        pages_map,
        pages_regions,
        pages_texts,
    )

    def attach(request: Request) -> None:
        request.scope["controlroom"] = cr

    router = APIRouter(prefix=PREFIX, dependencies=[Depends(attach)], include_in_schema=False)

    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        """The stylesheet and the script (no build step)."""
        if name not in STATIC_FILES:
            raise HTTPException(status_code=404)
        return FileResponse(
            STATIC / name,
            media_type=STATIC_FILES[name],
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    @router.get("/static/vendor/leaflet/{name:path}")
    async def leaflet(name: str) -> Response:
        """Leaflet's files, served from the copy in the repository (versioned, so cached for a day)."""
        if name not in LEAFLET_FILES:
            raise HTTPException(status_code=404)
        return FileResponse(
            LEAFLET / name,
            media_type=LEAFLET_FILES[name],
            headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
        )

    @router.get("/")
    async def home(visitor: AnyVisitor) -> Response:
        """Operators start at the actions, coordinators at their figures."""
        target = "figures" if visitor.role == OperatorRole.COORDINATOR else "actions"
        return RedirectResponse(f"{PREFIX}/{target}", status_code=303)

    router.include_router(pages_auth.router)
    router.include_router(pages_actions.router)
    router.include_router(pages_texts.router)
    router.include_router(pages_map.router)
    router.include_router(pages_figures.router)
    router.include_router(pages_admin.router)
    router.include_router(pages_regions.router)
    return router
