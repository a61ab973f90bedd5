"""Actions: list, new-action form, preview with recipients and cost, launch, the live page (with an update,
a wider area, a cancel of an action sent in error, and the CAP Update or Cancel waiting to be confirmed),
close."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session
from sse_starlette import EventSourceResponse
from starlette.datastructures import UploadFile

from bot import sse
from bot.api.actions import MAX_CLOSING, MAX_DESCRIPTION, MAX_INSTRUCTION, ActionIn, AreaIn
from bot.api.cap import cap_sender
from bot.controlroom.auth import ActionPoster, ActionVisitor
from bot.controlroom.deps import PREFIX, ControlRoom, Visitor, render, room, translator
from bot.controlroom.live import action_events, progress_of, recipient_groups
from bot.controlroom.maps import map_config
from bot.controlroom.notices import sealed, unsealed
from bot.controlroom.svgmap import NL_CENTRE, NL_ZOOM, MapView, outline_path, view_for
from bot.controlroom.tipfeed import TipNotFound, TipsUnavailable, media_response
from bot.services.action_photos import ActionPhotos, PhotoRefused
from bot.services.actions import (
    ActionService,
    InvalidAction,
    Launcher,
    LaunchRefused,
    closing_audience_of,
    draft_duration,
)
from bot.services.cap_changes import CapChanges
from storage.action_photos import NewPhoto, PhotoNotFound
from storage.actions import (
    ActionDraft,
    ActionNotFound,
    ActionStateError,
    delete_draft,
    get_action,
    list_actions,
    next_ring,
    ring_schedule,
    rings_stopped,
    update_delivery_counts,
    update_draft,
    updates_of,
)
from storage.cap_changes import CapChangeDecided, CapChangeNotFound, waiting_changes
from storage.db import transaction
from storage.geo import InvalidPostcode, UnknownPostcode
from storage.models import Action, ActionOutcome, ActionStatus, ActionType, CapChangeStatus
from storage.participants import audit
from storage.relays import relay_figures
from storage.targeting import Area, Circle, InvalidArea, Municipalities, Polygon, parse_area

router = APIRouter()
FORM_FIELDS = (
    *("type", "headline", "description", "instruction", "area_kind", "lat", "lon", "radius_m"),
    *("postcode", "municipalities", "polygon", "expires_minutes", "exercise", "ring_radii", "ring_minutes"),
)
MAX_RINGS = 10


def _load(session: Session, action_id: int) -> Action:
    try:
        return get_action(session, action_id=action_id)
    except ActionNotFound:
        raise HTTPException(status_code=404, detail="no such action") from None


def _wants_json(request: Request) -> bool:
    return request.headers.get("x-requested-with") == "fetch"


@router.get("/actions", response_class=HTMLResponse)
async def actions(request: Request, visitor: ActionVisitor) -> HTMLResponse:
    """Every action, the active ones first."""
    cr = room(request)
    with cr.sessions() as session:
        every = list_actions(session, limit=300)
    active = [a for a in every if a.status == ActionStatus.ACTIVE]
    waiting = [a for a in every if a.status == ActionStatus.AWAITING_APPROVAL]
    others = [a for a in every if a.status not in (ActionStatus.ACTIVE, ActionStatus.AWAITING_APPROVAL)]
    return render(
        request,
        "actions.html",
        lang=visitor.language,
        visitor=visitor,
        section="actions",
        active=active,
        waiting=waiting,
        others=others,
        flash=unsealed(cr, request, "flash"),
    )


def _form_map(cr: ControlRoom) -> MapView:
    view = view_for(centre=NL_CENTRE, zoom=NL_ZOOM, width=520, height=500, tile_url=cr.tile_url)
    view.outline = outline_path(view, ((p.lat, p.lon) for p in cr.book))
    return view


def _form_page(
    request: Request,
    visitor: Visitor,
    values: dict[str, str],
    error: str | None = None,
    status_code: int = 200,
    draft: Action | None = None,
) -> HTMLResponse:
    cr = room(request)
    return render(
        request,
        "action_new.html",
        lang=visitor.language,
        visitor=visitor,
        section="actions",
        values=values,
        error=error,
        types=list(ActionType),
        map=_form_map(cr),
        map_config=map_config(cr, lang=visitor.language, pick=True),
        draft=draft,
        status_code=status_code,
    )


@router.get("/actions/new", response_class=HTMLResponse)
async def new_action(request: Request, visitor: ActionVisitor) -> HTMLResponse:
    """The new-action form."""
    defaults = {"type": "missing_person", "area_kind": "circle", "radius_m": "2000", "expires_minutes": "120"}
    return _form_page(request, visitor, defaults)


@router.post("/postcode")
async def postcode(
    request: Request, visitor: ActionPoster, pc: Annotated[str, Form(max_length=20)] = ""
) -> JSONResponse:
    """The centre of a postcode area, for the form's lookup button (a POST: no address in a URL)."""
    cr = room(request)
    try:
        place = cr.book.lookup(pc)
    except (InvalidPostcode, UnknownPostcode):
        message = cr.catalogue.render(visitor.language, "controlroom.form.unknown_postcode", postcode=pc[:10])
        return JSONResponse({"error": message}, status_code=404)
    return JSONResponse(
        {"lat": place.lat, "lon": place.lon, "place": place.place, "municipality": place.municipality_name}
    )


class FormProblem(ValueError):
    """The action form does not hold a valid action; the message says why, in the page's language."""


async def _area(cr: ControlRoom, values: dict[str, str], lang: str) -> dict[str, Any]:
    t = translator(cr.catalogue, lang)
    if values.get("area_kind") == "municipalities":
        return {"municipalities": values.get("municipalities", "").replace(";", ",").split(",")}
    if values.get("area_kind") == "polygon":
        return _polygon_area(values, t)
    lat, lon = values.get("lat", "").strip(), values.get("lon", "").strip()
    searched = values.get("postcode", "").strip()
    if (not lat or not lon) and searched:
        # Typed a place but did not pick one: take the geocoder's best answer, as the search would.
        found = await cr.places.free(searched, limit=1)
        if not found:
            raise FormProblem(t("form.unknown_place", place=searched[:60]))
        lat, lon = f"{found[0].lat:.6f}", f"{found[0].lon:.6f}"
        values["lat"], values["lon"] = lat, lon
    if not lat or not lon:
        raise FormProblem(t("form.no_point"))
    return {"circle": {"lat": lat, "lon": lon, "radius_m": values.get("radius_m", "")}}


def _polygon_area(values: dict[str, str], t: Any) -> dict[str, Any]:
    """The form's polygon (CAP text: "lat,lon lat,lon ...", closed) and, when given, the point recipients
    are ranked from. Raises FormProblem in the page's language."""
    ring: list[list[float]] = []
    for pair in values.get("polygon", "").split():
        try:
            lat, lon = (float(x) for x in pair.split(","))
        except ValueError:
            raise FormProblem(t("form.problem.polygon_numbers")) from None
        ring.append([lat, lon])
    area: dict[str, Any] = {"polygon": ring}
    lat_text, lon_text = values.get("lat", "").strip(), values.get("lon", "").strip()
    if lat_text and lon_text:
        area["centre"] = {"lat": lat_text, "lon": lon_text}
    try:
        parse_area({"polygon": ring})
    except InvalidArea as exc:
        raise FormProblem(t(f"form.problem.polygon_{exc.reason}")) from None
    return area


def _rings(values: dict[str, str], t: Any) -> dict[str, Any] | None:
    """The form's rings (radii in metres, comma-separated, and the minutes between them), checked here
    so that each mistake gets its own Dutch sentence; None when no radii were given. Raises FormProblem."""
    radii_text = values.get("ring_radii", "").strip()
    if not radii_text:
        return None
    if values.get("area_kind", "circle") != "circle":
        raise FormProblem(t("form.problem.rings_circle"))
    try:
        radii = [float(part) for part in re.split(r"[,;\s]+", radii_text) if part]
    except ValueError:
        raise FormProblem(t("form.problem.rings_numbers")) from None
    if not radii or len(radii) > MAX_RINGS or any(not 0 < r <= 50_000 for r in radii):
        raise FormProblem(t("form.problem.rings_range"))
    try:
        minutes = int(values.get("ring_minutes", "").strip())
    except ValueError:
        raise FormProblem(t("form.problem.rings_minutes")) from None
    if not 1 <= minutes <= 24 * 60:
        raise FormProblem(t("form.problem.rings_minutes"))
    try:
        radius = float(values.get("radius_m", "").replace(",", "."))
    except ValueError:
        return {"radii_m": radii, "every_minutes": minutes}  # the circle's own check says what is wrong
    if any(b <= a for a, b in zip([radius, *radii], radii, strict=False)):
        raise FormProblem(t("form.problem.rings_order", radius=f"{radius:g}"))
    return {"radii_m": radii, "every_minutes": minutes}


def _problem_text(exc: ValidationError, values: dict[str, str], t: Any) -> str:
    """Pydantic's English errors as one sentence per field the operator can fix, in the page's language."""
    parts: list[str] = []
    for err in exc.errors():
        where = [str(x) for x in err["loc"]]
        if where[:1] == ["area"]:
            if values.get("area_kind") == "polygon":
                key = "point" if where[-1:] == ["centre"] else "polygon_outside"
            elif where[-1:] == ["radius_m"]:
                key = "radius"
            elif where[-1:] in (["lat"], ["lon"]):
                key = "coordinates"
            elif where[-1:] == ["circle"]:
                key = "point"
            else:
                key = "municipalities"
        elif where[:1] in (["type"], ["headline"], ["description"], ["instruction"]):
            key = where[0]
        else:
            key = "other"
        text = t(f"form.problem.{key}", lat=values.get("lat", ""), lon=values.get("lon", ""), field=where[0])
        if text not in parts:
            parts.append(text)
    return " ".join(parts)


async def _draft_from_form(
    cr: ControlRoom, values: dict[str, str], lang: str, *, with_photo: bool = False
) -> ActionDraft:
    """The form's fields as a valid draft (`with_photo`: its SMS will link to the page). Raises FormProblem
    with a message for the operator."""
    t = translator(cr.catalogue, lang)
    now = cr.clock()
    try:
        minutes = int(values["expires_minutes"] or "0")
    except ValueError:
        raise FormProblem(t("form.problem.expires")) from None
    if minutes <= 0:
        raise FormProblem(t("form.problem.expires"))
    try:
        body = ActionIn.model_validate(
            {
                "type": values["type"],
                "headline": values["headline"],
                "description": values["description"],
                "instruction": values["instruction"],
                "area": await _area(cr, values, lang),
                "expires_at": now + timedelta(minutes=minutes),
                "rings": _rings(values, t),
            }
        )
    except ValidationError as exc:
        raise FormProblem(_problem_text(exc, values, t)) from None
    area = body.area.stored()
    draft = ActionDraft(
        type=body.type,
        headline=body.headline,
        description=body.description,
        instruction=body.instruction,
        area=area,
        expires_at=body.expires_at,
        exercise=values.get("exercise") == "yes",
        rings=body.rings.model_dump() if body.rings is not None else None,
    )
    try:
        return _service(cr).validate(draft, with_photo=with_photo)
    except InvalidAction as exc:
        raise FormProblem(_refusal(exc, t)) from None


def _refusal(exc: InvalidAction, t: Any) -> str:
    """The service's reasons as the operator reads them: the first unknown municipality, else each field."""
    for problem in exc.problems:
        if problem.kind == "municipality":
            return str(t("form.problem.municipality", name=problem.name))
    keys = {
        "headline": "headline_sms",
        "instruction": "instruction_sms",
        "description": "description_long",
        "expires_at": "expires",
    }
    found = {
        t(f"form.problem.{keys.get(p.name or p.kind, 'other')}", field=p.name or p.kind) for p in exc.problems
    }
    return " ".join(sorted(found))


def _service(cr: ControlRoom) -> ActionService:
    return ActionService(
        sessions=cr.sessions, clock=cr.clock, book=cr.book, texts=cr.texts, settings=cr.settings, wake=cr.wake
    )


def _form_values(form: Any) -> dict[str, str]:
    return {name: str(form.get(name, "")) for name in FORM_FIELDS}


def _photos(cr: ControlRoom) -> ActionPhotos:
    return ActionPhotos(
        sessions=cr.sessions,
        clock=cr.clock,
        vault=cr.vault,
        texts=cr.texts,
        max_bytes=cr.settings.action_photo_max_bytes,
    )


async def _photo_from_form(cr: ControlRoom, form: Any, lang: str) -> NewPhoto | None:
    """The form's photo, checked, cleaned and encrypted; None when none was chosen. Raises FormProblem."""
    upload = form.get("photo")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None
    limit = cr.settings.action_photo_max_bytes
    # One byte more than allowed tells that it is too large, without reading all of it.
    data = await upload.read(limit + 1)
    if not data:
        return None
    try:
        # Decoding and encoding an image of megabytes is work for a thread, not for the event loop.
        return await asyncio.to_thread(_photos(cr).prepare, data)
    except PhotoRefused as exc:
        t = translator(cr.catalogue, lang)
        reason = exc.reason if exc.reason in ("too_large", "broken") else "type"
        raise FormProblem(t(f"form.problem.photo_{reason}", mb=f"{limit / 1_000_000:g}")) from None


@router.post("/actions")
async def create(request: Request, visitor: ActionPoster) -> Response:
    """Store the form as a draft action and show its preview; nothing is sent yet."""
    cr = room(request)
    form = await request.form()
    values = _form_values(form)
    try:
        photo = await _photo_from_form(cr, form, visitor.language)
        draft = await _draft_from_form(cr, values, visitor.language, with_photo=photo is not None)
    except FormProblem as exc:
        message = cr.catalogue.render(visitor.language, "controlroom.form.invalid", problem=str(exc))
        return _form_page(request, visitor, values, error=message, status_code=422)
    action = _service(cr).create(draft, actor=visitor.actor, created_by=visitor.actor, photo=photo)
    return RedirectResponse(f"{PREFIX}/actions/{action.id}", status_code=303)


def _draft_values(action: Action) -> dict[str, str]:
    """A stored draft as the form's fields, for editing."""
    values = {
        "type": action.type.value,
        "headline": action.headline,
        "description": action.description,
        "instruction": action.instruction,
        "area_kind": "circle",
        "radius_m": "2000",
    }
    circle = action.area.get("circle")
    area = parse_area(action.area)
    if isinstance(area, Polygon):
        # The form edits one ring: a GeoJSON draft (from the API) shows its first outline.
        ring = area.parts[0][0]
        values |= {"area_kind": "polygon", "polygon": " ".join(f"{lat:.6f},{lon:.6f}" for lat, lon in ring)}
        centre = action.area.get("centre")
        if centre is not None:
            values |= {"lat": f"{float(centre['lat']):.5f}", "lon": f"{float(centre['lon']):.5f}"}
    elif circle is not None:
        values |= {
            "lat": f"{circle['lat']:.5f}",
            "lon": f"{circle['lon']:.5f}",
            "radius_m": f"{circle['radius_m']:g}",
        }
    else:
        values |= {"area_kind": "municipalities", "municipalities": ", ".join(action.area["municipalities"])}
    values["expires_minutes"] = str(max(1, round(draft_duration(action).total_seconds() / 60)))
    values["exercise"] = "yes" if action.exercise else ""
    if action.rings:
        values["ring_radii"] = ", ".join(f"{float(r):g}" for r in action.rings.get("radii_m", []))
        values["ring_minutes"] = str(action.rings.get("every_minutes", ""))
    return values


def _draft_or_none(session: Session, action_id: int) -> Action | None:
    action = _load(session, action_id)
    return action if action.status is ActionStatus.DRAFT else None


def _not_a_draft(cr: ControlRoom, action_id: int, lang: str) -> RedirectResponse:
    """Back to the action's page, which says it was launched (or ended) meanwhile."""
    return _flashed(cr, action_id, translator(cr.catalogue, lang)("draft.not_draft"))


@router.get("/actions/{action_id}/edit", response_class=HTMLResponse)
async def edit_draft(request: Request, visitor: ActionVisitor, action_id: int) -> Response:
    """The form again, filled in from the draft; a launched action cannot be edited here."""
    cr = room(request)
    with cr.sessions() as session:
        action = _draft_or_none(session, action_id)
    if action is None:
        return _not_a_draft(cr, action_id, visitor.language)
    return _form_page(request, visitor, _draft_values(action), draft=action)


@router.post("/actions/{action_id}/edit")
async def save_draft(request: Request, visitor: ActionPoster, action_id: int) -> Response:
    """Store the changed draft and show its preview again; nothing is sent."""
    cr = room(request)
    form = await request.form()
    values = _form_values(form)
    remove_photo = form.get("remove_photo") == "yes"
    with cr.sessions() as session:
        action = _draft_or_none(session, action_id)
    if action is None:
        return _not_a_draft(cr, action_id, visitor.language)
    try:
        photo = await _photo_from_form(cr, form, visitor.language)
        with_photo = photo is not None or (action.has_photo and not remove_photo)
        draft = await _draft_from_form(cr, values, visitor.language, with_photo=with_photo)
    except FormProblem as exc:
        message = cr.catalogue.render(visitor.language, "controlroom.form.invalid", problem=str(exc))
        return _form_page(request, visitor, values, error=message, status_code=422, draft=action)
    now = cr.clock()
    with transaction(cr.sessions) as session:
        stored = _load(session, action_id)
        # The duration counts from the launch: keep it measured from the draft's start, as the form made it.
        created = stored.created_at if stored.created_at.tzinfo else stored.created_at.replace(tzinfo=UTC)
        draft = replace(draft, expires_at=created + (draft.expires_at - now))
        try:
            update_draft(session, action=stored, draft=draft)
        except ActionStateError:
            return _not_a_draft(cr, action_id, visitor.language)
        audit(session, now=now, actor=visitor.actor, event="action_edited", subject=f"action:{action_id}")
    try:
        if photo is not None:
            await asyncio.to_thread(_photos(cr).attach, action_id, photo, actor=visitor.actor)
        elif remove_photo:
            await asyncio.to_thread(_photos(cr).remove, action_id, actor=visitor.actor)
    except ActionStateError:
        return _not_a_draft(cr, action_id, visitor.language)
    return RedirectResponse(f"{PREFIX}/actions/{action_id}", status_code=303)


@router.get("/actions/{action_id}/photo")
async def action_photo(request: Request, visitor: ActionVisitor, action_id: int) -> Response:
    """The action's photo for the preview and the edit form; 404 once the action ended (it is deleted)."""
    cr = room(request)
    try:
        file = await asyncio.to_thread(_photos(cr).file, action_id)
    except PhotoNotFound:
        raise HTTPException(status_code=404) from None
    return Response(
        file.data,
        media_type=file.content_type,
        headers={"Cache-Control": "no-store", "Content-Security-Policy": "default-src 'none'; sandbox"},
    )


@router.post("/actions/{action_id}/delete")
async def remove_draft(request: Request, visitor: ActionPoster, action_id: int) -> Response:
    """Delete a draft after the explicit confirmation; a launched action is never deleted."""
    cr = room(request)
    form = await request.form()
    if form.get("confirm") != "yes":
        return RedirectResponse(f"{PREFIX}/actions/{action_id}?error=delete", status_code=303)
    t = translator(cr.catalogue, visitor.language)
    now = cr.clock()
    with transaction(cr.sessions) as session:
        action = _draft_or_none(session, action_id)
        if action is None:
            return _not_a_draft(cr, action_id, visitor.language)
        code = action.code
        try:
            delete_draft(session, action=action)
        except ActionStateError:
            return _not_a_draft(cr, action_id, visitor.language)
        audit(
            session,
            now=now,
            actor=visitor.actor,
            event="action_deleted",
            subject=f"action:{action_id}",
            detail={"code": code},
        )
    flash = sealed(cr, flash=t("draft.deleted", code=code))
    return RedirectResponse(f"{PREFIX}/actions?{flash}", status_code=303)


def _action_map(cr: ControlRoom, session: Session, action: Action) -> MapView:
    area = parse_area(action.area)
    if isinstance(area, Circle):
        view = view_for(centre=(area.lat, area.lon), radius_m=area.radius_m, tile_url=cr.tile_url)
    elif isinstance(area, Polygon):
        far = max(_approx_m(*area.centre, lat, lon) for rings in area.parts for lat, lon in rings[0])
        view = view_for(centre=area.centre, radius_m=far, tile_url=cr.tile_url)
        view.circle = None
    else:
        places = [p for p in cr.book if p.municipality_code in set(area.codes)]
        if places:
            lat = sum(p.lat for p in places) / len(places)
            lon = sum(p.lon for p in places) / len(places)
            far = max(_approx_m(lat, lon, p.lat, p.lon) for p in places)
            view = view_for(centre=(lat, lon), radius_m=far + 1000, tile_url=cr.tile_url)
            view.circle = None
        else:
            view = view_for(centre=NL_CENTRE, zoom=NL_ZOOM, tile_url=cr.tile_url)
    view.outline = outline_path(view, ((p.lat, p.lon) for p in cr.book))
    if action.status != ActionStatus.DRAFT:
        for group in recipient_groups(session, cr.book, action_id=action.id or 0):
            view.add_dot(
                group.lat, group.lon, label=str(group.count), kind="recipients", r=4 + group.count**0.5
            )
    return view


def _parsed_area(action: Action) -> Area:
    return parse_area(action.area)


def _approx_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    from storage.geo import distance_m

    return distance_m(lat1, lon1, lat2, lon2)


@router.get("/actions/{action_id}", response_class=HTMLResponse)
async def show(request: Request, visitor: ActionVisitor, action_id: int) -> HTMLResponse:
    """A draft shows its preview (recipients per channel, cost, launch); a launched action its live page."""
    cr = room(request)
    with cr.sessions() as session:
        action = _load(session, action_id)
        before_launch = action.status in (ActionStatus.DRAFT, ActionStatus.AWAITING_APPROVAL)
        view = _action_map(cr, session, action) if before_launch else None
    if view is not None:
        try:
            preview = _service(cr).preview(action_id)
            missing = _service(cr).may_launch(action_id, by=launcher(visitor))
        except ActionNotFound:  # deleted by a colleague meanwhile
            raise HTTPException(status_code=404, detail="no such action") from None
        return render(
            request,
            "action_preview.html",
            lang=visitor.language,
            visitor=visitor,
            section="actions",
            action=preview.action,
            estimate=preview.estimate,
            sms_text=preview.sms_text,
            sms_segments=cr.texts.sms_segments(preview.sms_text),
            left_out=preview.left_out_by_preferences,
            map=view,
            map_config=map_config(cr, lang=visitor.language, area=_parsed_area(action)),
            error=request.query_params.get("error"),
            missing=_municipality_names(cr, missing),
            flash=unsealed(cr, request, "flash"),
            own_request=preview.action.approval_requested_by == visitor.actor,
        )
    return _live_page(request, visitor, action_id)


def launcher(visitor: Visitor) -> Launcher:
    """The logged-in operator as the one who launches or approves (their regions apply)."""
    return Launcher(visitor.actor, visitor.operator.id)


def _municipality_names(cr: ControlRoom, codes: list[str]) -> str:
    names = cr.book.municipalities()
    return ", ".join(sorted(names.get(code, code) for code in codes))


def _refused(cr: ControlRoom, visitor: Visitor, refused: LaunchRefused) -> HTTPException:
    """A launch or approval this operator may not do, as a 403 they can read."""
    t = translator(cr.catalogue, visitor.language)
    if refused.reason == "region":
        message = t("approval.region_refused", names=_municipality_names(cr, refused.missing))
    else:
        message = t("approval.self_refused")
    return HTTPException(status_code=403, detail=message)


def _live_page(
    request: Request,
    visitor: Visitor,
    action_id: int,
    *,
    close_error: str | None = None,
    close_values: dict[str, str] | None = None,
    evolve_error: tuple[str, str] | None = None,
    evolve_values: dict[str, str] | None = None,
    cap_error: tuple[int, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    cr = room(request)
    with cr.sessions() as session:
        action = _load(session, action_id)
        # Only a running action can still take them; once it ended they wait for nothing.
        waiting = (
            waiting_changes(session, action_id=action_id) if action.status is ActionStatus.ACTIVE else []
        )
        view = _action_map(cr, session, action)
        groups = recipient_groups(session, cr.book, action_id=action_id)
        progress = progress_of(session, action_id=action_id)
        relays = relay_figures(session, action_id=action_id)  # neighbourhood groups reached
        counts = update_delivery_counts(session, action_id=action_id)
        schedule = ring_schedule(action)
        upcoming = next_ring(action)
        updates = [
            (u, sum(sum(statuses.values()) for statuses in counts.get(u.number, {}).values()))
            for u in updates_of(session, action_id=action_id)
        ]
    tips = cr.tips.tips(action_id=action_id)
    for tip in tips:
        if tip.lat is not None and tip.lon is not None:
            view.add_dot(tip.lat, tip.lon, label=f"#{tip.id}", kind="tip")
    return render(
        request,
        "action_live.html",
        lang=visitor.language,
        visitor=visitor,
        section="actions",
        action=action,
        progress=progress,
        relays=relays,
        tips=list(reversed(tips)),
        tips_available=cr.tips.available,
        last_tip=max((t.id for t in tips), default=0),
        map=view,
        map_config=map_config(
            cr,
            lang=visitor.language,
            area=_parsed_area(action),
            groups=groups,
            tips=tips,
            rings=[r.radius_m for r in schedule if not r.done] if upcoming is not None else [],
        ),
        outcomes=list(ActionOutcome),
        close_error=close_error,
        close_values=close_values or {},
        updates=updates,
        evolve_error=evolve_error,
        evolve_values=evolve_values or {},
        rings=schedule,
        next_ring=upcoming,
        rings_stopped_at=_stopped_at(action),
        cap_changes=waiting,
        cap_error=cap_error,
        max_update=MAX_DESCRIPTION,
        max_instruction=MAX_INSTRUCTION,
        flash=unsealed(cr, request, "flash"),
        status_code=status_code,
    )


def _stopped_at(action: Action) -> datetime | None:
    """When an operator stopped the action's rings, if they did."""
    if not rings_stopped(action) or action.rings is None:
        return None
    return datetime.fromisoformat(str(action.rings["stopped_at"]))


@router.post("/actions/{action_id}/launch")
async def launch(request: Request, visitor: ActionPoster, action_id: int) -> Response:
    """Launch after the explicit confirmation: the alert is queued for everyone in the area, nearest first."""
    cr = room(request)
    form = await request.form()
    if form.get("confirm") != "yes":
        return RedirectResponse(f"{PREFIX}/actions/{action_id}?error=confirm", status_code=303)
    try:
        # The form asked how long the action runs: that time counts from now, not from the draft.
        result = _service(cr).request_launch(action_id, by=launcher(visitor), runs_from_launch=True)
    except ActionNotFound:
        raise HTTPException(status_code=404, detail="no such action") from None
    except ActionStateError:
        # A colleague (or the dispatch system's CAP Cancel) got there first: say so on the action's page.
        return _flashed(cr, action_id, translator(cr.catalogue, visitor.language)("preview.already"))
    except LaunchRefused as refused:
        raise _refused(cr, visitor, refused) from None
    if result.status is ActionStatus.AWAITING_APPROVAL:
        flash = translator(cr.catalogue, visitor.language)("approval.requested")
        return RedirectResponse(f"{PREFIX}/actions/{action_id}?{sealed(cr, flash=flash)}", status_code=303)
    return RedirectResponse(f"{PREFIX}/actions/{action_id}", status_code=303)


@router.post("/actions/{action_id}/approve")
async def approve(request: Request, visitor: ActionPoster, action_id: int) -> Response:
    """A second operator approves a waiting launch: the alert goes out now."""
    cr = room(request)
    try:
        _service(cr).approve(action_id, by=launcher(visitor))
    except ActionNotFound:
        raise HTTPException(status_code=404, detail="no such action") from None
    except ActionStateError:
        return _flashed(cr, action_id, translator(cr.catalogue, visitor.language)("approval.not_waiting"))
    except LaunchRefused as refused:
        raise _refused(cr, visitor, refused) from None
    return RedirectResponse(f"{PREFIX}/actions/{action_id}", status_code=303)


@router.post("/actions/{action_id}/reject")
async def reject(request: Request, visitor: ActionPoster, action_id: int) -> Response:
    """Refuse a waiting launch (or withdraw one's own request): the action is a draft again."""
    cr = room(request)
    form = await request.form()
    try:
        _service(cr).reject(action_id, by=launcher(visitor), reason=str(form.get("reason", "")))
    except ActionNotFound:
        raise HTTPException(status_code=404, detail="no such action") from None
    except ActionStateError:
        return _flashed(cr, action_id, translator(cr.catalogue, visitor.language)("approval.not_waiting"))
    except LaunchRefused as refused:
        raise _refused(cr, visitor, refused) from None
    return RedirectResponse(f"{PREFIX}/actions/{action_id}", status_code=303)


@router.post("/actions/{action_id}/close")
async def close(request: Request, visitor: ActionPoster, action_id: int) -> Response:
    """Close in two steps: the outcome, then a confirmation that says how many get the closing message."""
    cr = room(request)
    form = await request.form()
    values = {name: str(form.get(name, "")).strip() for name in ("outcome", "closing_text")}
    t = translator(cr.catalogue, visitor.language)
    try:
        outcome = ActionOutcome(values["outcome"])
    except ValueError:
        return _live_page(
            request,
            visitor,
            action_id,
            close_error=t("close.no_outcome"),
            close_values=values,
            status_code=422,
        )
    if len(values["closing_text"]) > MAX_CLOSING:
        return _live_page(
            request,
            visitor,
            action_id,
            close_error=t("close.too_long", limit=MAX_CLOSING),
            close_values=values,
            status_code=422,
        )
    if form.get("confirm") != "yes":
        with cr.sessions() as session:
            action = _load(session, action_id)
            audience = closing_audience_of(session, action_id=action_id)
        return render(
            request,
            "action_close.html",
            lang=visitor.language,
            visitor=visitor,
            section="actions",
            action=action,
            outcome=outcome,
            closing_text=values["closing_text"],
            audience=audience,
        )
    try:
        _service(cr).close(
            action_id, outcome=outcome, closing_text=values["closing_text"], actor=visitor.actor
        )
    except ActionNotFound:
        raise HTTPException(status_code=404, detail="no such action") from None
    except ActionStateError:
        # A second click, or a colleague who closed it first: show the action as it now stands.
        flash = sealed(cr, flash=t("close.already"))
        return RedirectResponse(f"{PREFIX}/actions/{action_id}?{flash}", status_code=303)
    return RedirectResponse(f"{PREFIX}/actions/{action_id}", status_code=303)


def _flashed(cr: ControlRoom, action_id: int, message: str) -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/actions/{action_id}?{sealed(cr, flash=message)}", status_code=303)


def _update_problem(text: str | None, instruction: str) -> str | None:
    """The catalogue key of what is wrong with an update's text and instruction as typed, or None."""
    if text is not None and not text:
        return "evolve.blank_text"
    if len(text or "") > MAX_DESCRIPTION or len(instruction) > MAX_INSTRUCTION:
        return "evolve.too_long"
    return None


def _again(
    request: Request, visitor: Visitor, action_id: int, form: str, values: dict[str, str], message: str
) -> HTMLResponse:
    """The live page once more with one of its forms (`update`, `widen`, `cancel`) refused: the
    operator's input kept and the reason above the form."""
    return _live_page(
        request, visitor, action_id, evolve_error=(form, message), evolve_values=values, status_code=422
    )


@router.post("/actions/{action_id}/updates")
async def send_update(request: Request, visitor: ActionPoster, action_id: int) -> Response:
    """Send an update of the running action to everyone its alert reached (the API's use case), with a
    new photo when one was chosen."""
    cr = room(request)
    form = await request.form()
    values = {name: str(form.get(name, "")).strip() for name in ("text", "instruction")}
    t = translator(cr.catalogue, visitor.language)

    def again(key: str) -> HTMLResponse:
        return _again(request, visitor, action_id, "update", values, t(key))

    problem = _update_problem(values["text"], values["instruction"])
    if problem is not None:
        return again(problem)
    try:
        photo = await _photo_from_form(cr, form, visitor.language)
    except FormProblem as exc:
        return _again(request, visitor, action_id, "update", values, str(exc))
    try:
        row, queued = _service(cr).add_update(
            action_id,
            text=values["text"],
            instruction=values["instruction"],
            actor=visitor.actor,
            photo=photo,
        )
    except ActionNotFound:
        raise HTTPException(status_code=404, detail="no such action") from None
    except ActionStateError:
        return _flashed(cr, action_id, t("evolve.not_active"))
    except InvalidAction:
        return again("evolve.too_long")
    return _flashed(cr, action_id, t("evolve.update_sent", number=row.number, count=queued))


@router.post("/actions/{action_id}/cancel")
async def cancel(request: Request, visitor: ActionPoster, action_id: int) -> Response:
    """Cancel an action sent in error after an explicit tick: a correction to whom it reached."""
    cr = room(request)
    form = await request.form()
    values = {"reason": str(form.get("reason", "")).strip()}
    t = translator(cr.catalogue, visitor.language)
    if not values["reason"] or form.get("confirm") != "yes" or len(values["reason"]) > MAX_CLOSING:
        return _again(request, visitor, action_id, "cancel", values, t("evolve.blank_reason"))
    try:
        queued = _service(cr).cancel(action_id, reason=values["reason"], actor=visitor.actor)
    except ActionNotFound:
        raise HTTPException(status_code=404, detail="no such action") from None
    except ActionStateError:
        return _flashed(cr, action_id, t("evolve.not_active"))
    return _flashed(cr, action_id, t("evolve.cancelled", count=queued))


def _cap_changes(cr: ControlRoom) -> CapChanges:
    return CapChanges(actions=_service(cr), sender=cap_sender(cr.settings))


@router.post("/actions/{action_id}/cap-changes/{change_id}/confirm")
async def confirm_cap_change(
    request: Request, visitor: ActionPoster, action_id: int, change_id: int
) -> Response:
    """Send a CAP Update (with the text as the operator left it) or confirm a CAP Cancel, by the same use
    cases as the forms below it; audited with who confirmed."""
    cr = room(request)
    form = await request.form()
    t = translator(cr.catalogue, visitor.language)
    edited = {name: str(form[name]).strip() for name in ("text", "instruction") if name in form}

    def again(key: str) -> HTMLResponse:
        return _live_page(request, visitor, action_id, cap_error=(change_id, t(key)), status_code=422)

    # A cancel's form has no text: only what the operator sent is checked.
    problem = _update_problem(edited.get("text"), edited.get("instruction", ""))
    if problem is not None:
        return again(problem)
    try:
        change, queued = _cap_changes(cr).confirm(
            action_id,
            change_id,
            actor=visitor.actor,
            text=edited.get("text"),
            instruction=edited.get("instruction"),
        )
    except (ActionNotFound, CapChangeNotFound):
        raise HTTPException(status_code=404, detail="no such CAP change") from None
    except CapChangeDecided as decided:
        return _flashed(cr, action_id, t(_DECIDED.get(decided.status, "cap_change.decided")))
    except ActionStateError:
        return _flashed(cr, action_id, t("evolve.not_active"))
    except InvalidAction:
        return again("evolve.too_long")
    if change.update_no is not None:
        return _flashed(cr, action_id, t("cap_change.sent", number=change.update_no, count=queued))
    return _flashed(cr, action_id, t("cap_change.cancelled", count=queued))


# Why a CAP change could not be confirmed or thrown away: it no longer waits (sent or discarded otherwise).
_DECIDED = {CapChangeStatus.LAPSED: "cap_change.lapsed"}


@router.post("/actions/{action_id}/cap-changes/{change_id}/discard")
async def discard_cap_change(
    request: Request, visitor: ActionPoster, action_id: int, change_id: int
) -> Response:
    """Throw a waiting CAP Update or Cancel away: nothing is sent; audited."""
    cr = room(request)
    t = translator(cr.catalogue, visitor.language)
    try:
        _cap_changes(cr).discard(action_id, change_id, actor=visitor.actor)
    except (ActionNotFound, CapChangeNotFound):
        raise HTTPException(status_code=404, detail="no such CAP change") from None
    except CapChangeDecided as decided:
        return _flashed(cr, action_id, t(_DECIDED.get(decided.status, "cap_change.decided")))
    return _flashed(cr, action_id, t("cap_change.discarded"))


WIDEN_FIELDS = ("area_kind", "radius_m", "polygon", "municipalities")


def _widened_area(action: Action, values: dict[str, str], t: Any) -> dict[str, Any]:
    """The form's larger area: the listed municipalities; a polygon drawn around the old area (recipients
    ranked from the old centre); or a circle with a new radius around the old centre. Raises FormProblem
    in the page's language."""
    old = parse_area(action.area)
    if isinstance(old, Municipalities):
        return {"municipalities": [m.strip() for m in values["municipalities"].split(",") if m.strip()]}
    centre = (old.lat, old.lon) if isinstance(old, Circle) else old.centre
    if values["area_kind"] == "polygon":
        area = _polygon_area({"polygon": values["polygon"]}, t)
        # The old area lies inside the new one, so its centre does: the search still spreads from there.
        area["centre"] = {"lat": centre[0], "lon": centre[1]}
    else:
        try:
            radius = float(values["radius_m"].replace(",", "."))
        except ValueError:
            raise FormProblem(t("evolve.widen_problem.radius")) from None
        if not 0 < radius <= 50_000:
            raise FormProblem(t("evolve.widen_problem.radius"))
        area = {"circle": {"lat": centre[0], "lon": centre[1], "radius_m": radius}}
    try:
        return AreaIn.model_validate(area).stored()
    except ValidationError:
        raise FormProblem(t("form.problem.polygon_outside")) from None


@router.post("/actions/{action_id}/widen")
async def widen(request: Request, visitor: ActionPoster, action_id: int) -> Response:
    """Give the running action a larger area; only the newly inside are alerted (the API's use case)."""
    cr = room(request)
    form = await request.form()
    values = {name: str(form.get(name, "")).strip() for name in WIDEN_FIELDS}
    t = translator(cr.catalogue, visitor.language)

    def again(message: str) -> HTMLResponse:
        return _again(request, visitor, action_id, "widen", values, message)

    with cr.sessions() as session:
        action = _load(session, action_id)
    try:
        area = _widened_area(action, values, t)
    except FormProblem as exc:
        return again(str(exc))
    try:
        queued = _service(cr).widen(action_id, area, by=launcher(visitor))
    except ActionNotFound:
        raise HTTPException(status_code=404, detail="no such action") from None
    except ActionStateError:
        return _flashed(cr, action_id, t("evolve.not_active"))
    except LaunchRefused as refused:
        raise _refused(cr, visitor, refused) from None
    except InvalidAction as exc:
        problem = exc.problems[0]
        if problem.kind == "municipality":
            return again(t("evolve.widen_problem.municipality", name=problem.name))
        return again(t(f"evolve.widen_problem.{problem.name if problem.kind == 'widen' else 'shape'}"))
    return _flashed(cr, action_id, t("evolve.widened", count=queued))


@router.post("/actions/{action_id}/rings/stop")
async def stop_rings(request: Request, visitor: ActionPoster, action_id: int) -> Response:
    """Stop the action's rings: the area no longer grows by itself (the API's use case)."""
    cr = room(request)
    t = translator(cr.catalogue, visitor.language)
    try:
        _service(cr).stop_rings(action_id, actor=visitor.actor)
    except ActionNotFound:
        raise HTTPException(status_code=404, detail="no such action") from None
    except ActionStateError:
        return _flashed(cr, action_id, t("evolve.rings_nothing"))
    return _flashed(cr, action_id, t("evolve.rings_stopped"))


@router.get("/actions/{action_id}/stream")
async def stream(
    request: Request, visitor: ActionVisitor, action_id: int, after: int = 0
) -> EventSourceResponse:
    """Server-sent events: delivery progress and new tips; resumes after `Last-Event-ID` (the last tip id)."""
    cr = room(request)
    with cr.sessions() as session:
        _load(session, action_id)
    start = sse.resume_after(request.headers.get("last-event-id"), max(after, 0)) or 0
    return sse.event_stream(
        action_events(cr, action_id=action_id, after=start, session_token=visitor.token),
        keepalive_s=cr.stream_heartbeat_s,
    )


@router.post("/actions/{action_id}/tips/{tip_id}/mark")
async def mark_tip(request: Request, visitor: ActionPoster, action_id: int, tip_id: int) -> Response:
    """Mark a tip useful or not useful."""
    cr = room(request)
    form = await request.form()
    useful = form.get("useful") == "yes"
    try:
        tip = cr.tips.mark(action_id=action_id, tip_id=tip_id, useful=useful, actor=visitor.actor)
    except TipNotFound:
        raise HTTPException(status_code=404) from None
    except TipsUnavailable:
        raise HTTPException(status_code=503, detail="tips are not wired") from None
    with transaction(cr.sessions) as session:
        audit(
            session,
            now=cr.clock(),
            actor=visitor.actor,
            event="tip_marked",
            subject=f"tip:{tip_id}",
            detail={"action_id": action_id, "verdict": tip.verdict},
        )
    if _wants_json(request):
        return JSONResponse(tip.to_json())
    return RedirectResponse(f"{PREFIX}/actions/{action_id}#tip-{tip_id}", status_code=303)


@router.post("/actions/{action_id}/tips/{tip_id}/reply")
async def reply_tip(
    request: Request,
    visitor: ActionPoster,
    action_id: int,
    tip_id: int,
    text: Annotated[str, Form(min_length=1, max_length=600)],
) -> Response:
    """Send a question to the tipster, on their channel."""
    cr = room(request)
    try:
        await cr.tips.reply(action_id=action_id, tip_id=tip_id, text=text.strip(), actor=visitor.actor)
    except TipNotFound:
        raise HTTPException(status_code=404) from None
    except TipsUnavailable:
        raise HTTPException(status_code=503, detail="tips are not wired") from None
    with transaction(cr.sessions) as session:
        audit(
            session,
            now=cr.clock(),
            actor=visitor.actor,
            event="tip_replied",
            subject=f"tip:{tip_id}",
            detail={"action_id": action_id},
        )
    message = cr.catalogue.render(visitor.language, "controlroom.tip.replied")
    if _wants_json(request):
        return JSONResponse({"ok": True, "message": message})
    return RedirectResponse(f"{PREFIX}/actions/{action_id}?flash={message}#tip-{tip_id}", status_code=303)


@router.post("/actions/{action_id}/tips/{tip_id}/phone")
async def tip_phone(request: Request, visitor: ActionPoster, action_id: int, tip_id: int) -> Response:
    """The tipster's phone number; the view itself goes into the audit log."""
    cr = room(request)
    try:
        phone = cr.tips.phone(action_id=action_id, tip_id=tip_id, actor=visitor.actor)
    except TipNotFound:
        raise HTTPException(status_code=404) from None
    except TipsUnavailable:
        raise HTTPException(status_code=503, detail="tips are not wired") from None
    with transaction(cr.sessions) as session:
        audit(
            session,
            now=cr.clock(),
            actor=visitor.actor,
            event="tip_phone_viewed",
            subject=f"tip:{tip_id}",
            detail={"action_id": action_id},
        )
    return JSONResponse({"phone": phone}, headers={"Cache-Control": "no-store"})


@router.get("/tips/{tip_id}/media/{position}")
async def tip_media(request: Request, visitor: ActionVisitor, tip_id: int, position: int) -> Response:
    """A tip's photo or file, from our own origin (the CSP's img-src 'self'), for operators only."""
    cr = room(request)
    try:
        # Decrypting a file of megabytes is work for a thread, not for the event loop.
        file = await asyncio.to_thread(cr.tips.media, tip_id=tip_id, position=position)
    except TipNotFound:
        raise HTTPException(status_code=404) from None
    except TipsUnavailable:
        raise HTTPException(status_code=503, detail="tips are not wired") from None
    return media_response(file)
