"""The maps' data: the place search of the action form and the offline outline of the country."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse

from bot.controlroom.auth import ActionPoster, AnyVisitor
from bot.controlroom.deps import room
from bot.controlroom.maps import base_layer

router = APIRouter()


@router.post("/places")
async def places(
    request: Request, visitor: ActionPoster, q: Annotated[str, Form(max_length=200)] = ""
) -> JSONResponse:
    """Places for the form's search box while the operator types (the geocoder, or the postcode table).

    A POST: what is typed may be someone's address, and the server logs every URL."""
    cr = room(request)
    text = q.strip()[:100]
    found = await cr.places.suggest(text) if len(text) >= 2 else []
    return JSONResponse({"places": [f.to_json() for f in found]}, headers={"Cache-Control": "no-store"})


@router.get("/map/base.json")
async def base(request: Request, visitor: AnyVisitor) -> JSONResponse:
    """The outline the maps draw when no tile server is set: postcode-area centres and town names."""
    # Built once per process, and not cheaply: in a thread, so the first caller does not stall the others.
    layer = await asyncio.to_thread(base_layer, room(request).book)
    return JSONResponse(layer, headers={"Cache-Control": "private, max-age=3600"})
