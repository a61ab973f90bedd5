"""Admin: regions (named sets of municipalities operators may launch in), who belongs to which, and the
four-eyes rules (a launch of a type in a region needs a second operator). Shown on the accounts page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from bot.controlroom.auth import AdminPoster
from bot.controlroom.deps import PREFIX, Visitor, room, translator
from bot.controlroom.notices import sealed
from storage.db import transaction
from storage.models import ActionType, Operator
from storage.participants import audit
from storage.regions import (
    ANY_TYPE,
    InvalidRegion,
    UnknownRegion,
    delete_region,
    save_region,
    set_approval_rule,
    set_operator_regions,
)

router = APIRouter()


def _back(request: Request, visitor: Visitor, key: str, **params: object) -> Response:
    cr = room(request)
    message = translator(cr.catalogue, visitor.language)(f"regions.{key}", **params)
    field = "flash" if key.startswith("done") else "error"
    return RedirectResponse(f"{PREFIX}/operators?{sealed(cr, **{field: message})}#regions", status_code=303)


@router.post("/regions")
async def save(
    request: Request,
    visitor: AdminPoster,
    name: Annotated[str, Form(max_length=64)],
    municipalities: Annotated[str, Form(max_length=2000)] = "",
    everywhere: Annotated[str, Form(max_length=3)] = "",
) -> Response:
    """Create a region or replace its municipalities (names or CBS codes, comma-separated)."""
    cr = room(request)
    try:
        codes = cr.book.municipality_codes(municipalities.replace(";", ",").split(","))
    except LookupError as unknown:
        return _back(request, visitor, "unknown_municipality", name=str(unknown.args[0]).strip()[:60])
    now = cr.clock()
    try:
        with transaction(cr.sessions) as session:
            region = save_region(
                session, name=name, municipalities=codes, everywhere=everywhere == "yes", now=now
            )
            audit(
                session,
                now=now,
                actor=visitor.actor,
                event="controlroom.region_saved",
                subject=f"region:{region.name}",
                detail={"municipalities": region.municipalities, "everywhere": region.everywhere},
            )
    except InvalidRegion:
        return _back(request, visitor, "invalid")
    return _back(request, visitor, "done_saved", name=name.strip())


@router.post("/regions/delete")
async def remove(
    request: Request, visitor: AdminPoster, name: Annotated[str, Form(max_length=64)]
) -> Response:
    """Remove a region: its members may no longer launch there, its four-eyes rules go with it."""
    cr = room(request)
    now = cr.clock()
    try:
        with transaction(cr.sessions) as session:
            delete_region(session, name=name)
            audit(
                session,
                now=now,
                actor=visitor.actor,
                event="controlroom.region_deleted",
                subject=f"region:{name}",
            )
    except UnknownRegion:
        raise HTTPException(status_code=404) from None
    return _back(request, visitor, "done_deleted", name=name)


@router.post("/operators/{operator_id}/regions")
async def member_of(request: Request, visitor: AdminPoster, operator_id: int) -> Response:
    """Set the regions an account may launch in (the ticked boxes; none: nowhere)."""
    cr = room(request)
    names = [str(v) for v in (await request.form()).getlist("region")]
    now = cr.clock()
    with transaction(cr.sessions) as session:
        operator = session.get(Operator, operator_id)
        if operator is None:
            raise HTTPException(status_code=404)
        try:
            regions = set_operator_regions(session, operator=operator, names=names)
        except UnknownRegion:
            raise HTTPException(status_code=422) from None
        audit(
            session,
            now=now,
            actor=visitor.actor,
            event="controlroom.operator_regions_set",
            subject=f"operator:{operator.username}",
            detail={"regions": [r.name for r in regions]},
        )
        username = operator.username
    return _back(request, visitor, "done_members", username=username)


@router.post("/four-eyes")
async def four_eyes(
    request: Request,
    visitor: AdminPoster,
    region: Annotated[str, Form(max_length=64)],
    action_type: Annotated[str, Form(max_length=24)],
    required: Annotated[str, Form(max_length=3)],
) -> Response:
    """Require (or stop requiring) a second operator's approval for a type (or every type) in a region."""
    cr = room(request)
    if action_type != ANY_TYPE and action_type not in {t.value for t in ActionType}:
        raise HTTPException(status_code=422)
    on = required == "yes"
    now = cr.clock()
    try:
        with transaction(cr.sessions) as session:
            set_approval_rule(session, region_name=region, action_type=action_type, required=on)
            audit(
                session,
                now=now,
                actor=visitor.actor,
                event="controlroom.four_eyes_set",
                subject=f"region:{region}",
                detail={"type": action_type, "required": on},
            )
    except UnknownRegion:
        raise HTTPException(status_code=404) from None
    return _back(request, visitor, "done_four_eyes", name=region)
