"""REST API for actions: create, preview and launch, close, read with delivery counts, list.

Mounted by the app under `/api/v1`; every route needs the bearer `API_TOKEN`. Invalid input answers
422 in FastAPI's shape (`{"detail": [{"loc": [...], "msg": ..., "type": ...}]}`), one entry per field.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, HTTPException, Path, Query, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field, field_validator, model_validator

from bot.alerts import AlertTexts
from bot.api.auth import api_token_guard
from bot.clock import Clock
from bot.config import Settings
from bot.services.action_photos import ActionPhotos, PhotoRefused
from bot.services.actions import SYSTEM, ActionService, InvalidAction, LaunchRefused
from storage.action_photos import NewPhoto, PhotoInfo, PhotoNotFound, photo_info
from storage.actions import (
    ActionDraft,
    ActionNotFound,
    ActionStateError,
    DeliveryCounts,
    delivery_counts,
    get_action,
    list_actions,
    update_delivery_counts,
    updates_of,
)
from storage.crypto import DataVault
from storage.db import SessionFactory
from storage.geo import PostcodeBook, in_netherlands
from storage.models import (
    Action,
    ActionOutcome,
    ActionStatus,
    ActionType,
    Certainty,
    DeliveryKind,
    Severity,
    Urgency,
)
from storage.relays import relay_figures
from storage.targeting import InvalidArea, parse_polygon

MAX_HEADLINE = 160
UNPROCESSABLE = 422
MAX_DESCRIPTION = 1200
MAX_INSTRUCTION = 300
MAX_CLOSING = 600
# Ids are 32-bit INTEGER columns on PostgreSQL: a larger id would fail in the driver (500), not be a 404.
MAX_ID = 2**31 - 1
ActionId = Annotated[int, Path(ge=1, le=MAX_ID)]


class CircleIn(BaseModel):
    """A point (WGS84) and a radius in metres."""

    lat: float
    lon: float
    radius_m: float

    @field_validator("radius_m")
    @classmethod
    def _radius(cls, value: float) -> float:
        if not 0 < value <= 50_000:
            raise ValueError("radius_m must be more than 0 and at most 50 km (50000 m)")
        return value

    @model_validator(mode="after")
    def _inside(self) -> CircleIn:
        if not in_netherlands(self.lat, self.lon):
            raise ValueError(f"the point {self.lat}, {self.lon} lies outside the Netherlands")
        return self


class PointIn(BaseModel):
    """A point (WGS84) in the Netherlands."""

    lat: float
    lon: float

    @model_validator(mode="after")
    def _inside(self) -> PointIn:
        if not in_netherlands(self.lat, self.lon):
            raise ValueError(f"the point {self.lat}, {self.lon} lies outside the Netherlands")
        return self


class AreaIn(BaseModel):
    """One of: a circle; a polygon (CAP order, `[[lat, lon], ...]`, closed: the last point repeats the
    first); a GeoJSON Polygon or MultiPolygon (`[lon, lat]`, holes allowed); a list of municipalities
    (CBS codes such as `0153` or names). A polygon ranks recipients from `centre` when given, else from
    its centroid."""

    circle: CircleIn | None = None
    polygon: list[list[float]] | None = None
    geojson: dict[str, Any] | None = None
    centre: PointIn | None = None
    municipalities: list[str] | None = None

    @model_validator(mode="after")
    def _one(self) -> AreaIn:
        given = [self.circle, self.polygon, self.geojson, self.municipalities]
        if sum(1 for g in given if g is not None) != 1:
            raise ValueError("give exactly one of 'circle', 'polygon', 'geojson' or 'municipalities'")
        if self.municipalities is not None and not [m for m in self.municipalities if m.strip()]:
            raise ValueError("municipalities must name at least one municipality")
        if self.centre is not None and self.polygon is None and self.geojson is None:
            raise ValueError("'centre' goes with a 'polygon' or 'geojson' area")
        if self.polygon is not None or self.geojson is not None:
            try:
                shape = parse_polygon(self.stored())
            except InvalidArea as exc:
                raise ValueError(str(exc)) from exc
            if not in_netherlands(*shape.centre):
                raise ValueError(
                    f"the polygon's centre {shape.centre[0]}, {shape.centre[1]} lies outside the Netherlands"
                )
        return self

    def stored(self) -> dict[str, Any]:
        """The area as the action stores it."""
        if self.circle is not None:
            return {"circle": self.circle.model_dump()}
        if self.municipalities is not None:
            return {"municipalities": self.municipalities}
        area: dict[str, Any] = (
            {"polygon": self.polygon} if self.polygon is not None else {"geojson": self.geojson}
        )
        if self.centre is not None:
            area["centre"] = self.centre.model_dump()
        return area


def _cap_spelling(value: Any) -> Any:
    """CAP spells its values capitalised (`Immediate`, `Severe`, `Observed`): accept those too."""
    return value.lower() if isinstance(value, str) else value


UrgencyIn = Annotated[Urgency, BeforeValidator(_cap_spelling)]
SeverityIn = Annotated[Severity, BeforeValidator(_cap_spelling)]
CertaintyIn = Annotated[Certainty, BeforeValidator(_cap_spelling)]


def _not_blank(value: str, name: str) -> str:
    if not value.strip():
        raise ValueError(f"{name} must not be empty")
    return value.strip()


class RingsIn(BaseModel):
    """Automatic widening of a circle: ring k (from 1) is due k × `every_minutes` after the launch."""

    radii_m: list[float] = Field(min_length=1, max_length=10)
    every_minutes: int = Field(ge=1, le=24 * 60)

    @field_validator("radii_m")
    @classmethod
    def _radii(cls, value: list[float]) -> list[float]:
        if any(not 0 < r <= 50_000 for r in value):
            raise ValueError("every ring's radius must be more than 0 and at most 50 km (50000 m)")
        return value


class ActionIn(BaseModel):
    """A new action, as the control room describes it."""

    type: ActionType
    headline: str = Field(max_length=MAX_HEADLINE)
    description: str = Field(max_length=MAX_DESCRIPTION)
    instruction: str = Field(default="", max_length=MAX_INSTRUCTION)
    area: AreaIn
    expires_at: AwareDatetime
    urgency: UrgencyIn = Urgency.IMMEDIATE
    severity: SeverityIn = Severity.SEVERE
    certainty: CertaintyIn = Certainty.OBSERVED
    photo: str | None = Field(
        default=None,
        description="A JPEG or PNG photo, base64 (a `data:image/...;base64,` URL too); stored without EXIF. "
        "`PUT /api/v1/actions/{id}/photo` takes it as a multipart file instead.",
    )
    exercise: bool = False
    """An exercise: only participants who opted in to exercises (and test participants) get it, every
    message starts with OEFENING/EXERCISE, it never counts in the figures."""
    rings: RingsIn | None = None
    """Widen the circle by itself while the action runs: only the newly inside get the alert.
    `POST /api/v1/actions/{id}/rings/stop` stops it."""

    @field_validator("headline")
    @classmethod
    def _headline(cls, value: str) -> str:
        return _not_blank(value, "headline")

    @field_validator("description")
    @classmethod
    def _description(cls, value: str) -> str:
        return _not_blank(value, "description")


class CloseIn(BaseModel):
    """How an action ended and the closing text the recipients get."""

    outcome: ActionOutcome
    closing_text: str = Field(max_length=MAX_CLOSING)

    @field_validator("closing_text")
    @classmethod
    def _text(cls, value: str) -> str:
        return _not_blank(value, "closing_text")


class UpdateIn(BaseModel):
    """An update of an active action: what is new, and optionally a changed instruction (without one,
    the action's own instruction is repeated)."""

    text: str = Field(max_length=MAX_DESCRIPTION)
    instruction: str = Field(default="", max_length=MAX_INSTRUCTION)
    photo: str | None = Field(
        default=None,
        description="A new photo, as at creation: JPEG or PNG, base64 (a `data:image/...;base64,` URL "
        "too), stored without EXIF. It replaces the action's photo on its public page; Telegram and "
        "WhatsApp send it with the update, an SMS links to the page, a call leaves it out.",
    )

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        return _not_blank(value, "text")


class CancelIn(BaseModel):
    """Why an action is cancelled as sent in error (kept in the audit log only; the recipients get a
    fixed correction and the public page no reason)."""

    reason: str = Field(max_length=MAX_CLOSING)

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        return _not_blank(value, "reason")


class WidenIn(BaseModel):
    """The larger area: it must contain the action's current one."""

    area: AreaIn


class UpdateOut(BaseModel):
    """One update of an action with its messages per kind (`update`, `relay_update`) and status."""

    number: int
    text: str
    instruction: str
    created_at: datetime
    created_by: str
    counts: dict[str, dict[str, int]]


class PhotoOut(BaseModel):
    """An action's photo as stored (re-encoded, no metadata); `url` serves it with the API token."""

    url: str
    content_type: str
    width: int
    height: int
    size: int


class RejectIn(BaseModel):
    """Why a waiting launch is refused (kept in the audit log)."""

    reason: str = Field(default="", max_length=200)


class DeliveryCountsOut(BaseModel):
    """Deliveries of one kind: total, per status, per channel and status."""

    total: int
    by_status: dict[str, int]
    by_channel: dict[str, dict[str, int]]


class RelaysOut(BaseModel):
    """What neighbourhood groups did for an action: groups and estimated members reached, tips."""

    relays: int
    estimated_members: int
    by_status: dict[str, int]
    closings: int
    tips: int


class ActionOut(BaseModel):
    """An action as the API shows it (CAP 1.2-like fields), with its delivery counts when asked."""

    id: int
    code: str
    type: ActionType
    headline: str
    description: str
    instruction: str
    area: dict[str, Any]
    urgency: Urgency
    severity: Severity
    certainty: Certainty
    status: ActionStatus
    outcome: ActionOutcome | None
    closing_text: str | None
    created_at: datetime
    launched_at: datetime | None
    expires_at: datetime
    closed_at: datetime | None
    photo: PhotoOut | None = None
    exercise: bool = False
    approval_requested_by: str | None = None
    approved_by: str | None = None
    rings: dict[str, Any] | None = None
    deliveries: dict[str, DeliveryCountsOut] | None = None
    relays: RelaysOut | None = None
    updates: list[UpdateOut] | None = None


class PreviewOut(BaseModel):
    """Who a launch would reach, per channel, and what it would cost (EUR)."""

    action_id: int
    recipients: int
    per_channel: dict[str, int]
    sms_segments: int
    voice_minutes: int
    whatsapp_templates: int
    whatsapp_sessions: int
    cost_eur: dict[str, float]
    total_eur: float
    sms_text: str
    left_out_by_preferences: int = 0
    """People in the area who would not get it: they skip this kind of action, or it is their quiet hours."""


def _invalid(loc: list[str | int], message: str) -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": message, "type": "value_error"}


@contextmanager
def answered(action_id: int | None = None) -> Iterator[None]:
    """The service's domain errors as every route answers them: no such action 404, a state that does
    not allow it 409, fields that make no valid action 422 (one entry per problem)."""
    try:
        yield
    except ActionNotFound as exc:
        detail = f"no action {action_id}" if action_id is not None else str(exc)
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=detail) from exc
    except ActionStateError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
    except InvalidAction as exc:
        raise HTTPException(
            UNPROCESSABLE, detail=[_invalid(list(p.loc), p.message) for p in exc.problems]
        ) from exc


PHOTO_PROBLEMS = {
    "too_large": "the photo is larger than {max_bytes} bytes",
    "type": "the photo must be a JPEG or PNG image (its content counts, not its name)",
    "broken": "the photo cannot be read as an image",
    "base64": "photo must be base64, or a data: URL with base64",
}


def photo_bytes(text: str, *, max_bytes: int) -> bytes:
    """The bytes of a base64 photo (a data: URL too). Raises PhotoRefused (`base64`, `too_large`)."""
    _, comma, tail = text.partition(",")
    if comma and text.startswith("data:"):
        text = tail
    text = "".join(text.split())
    if len(text) > (max_bytes // 3 + 1) * 4:
        raise PhotoRefused("too_large")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise PhotoRefused("base64") from None


def _photo_out(info: PhotoInfo) -> PhotoOut:
    return PhotoOut(
        url=f"/api/v1/actions/{info.action_id}/photo",
        content_type=info.content_type,
        width=info.width,
        height=info.height,
        size=info.size,
    )


def _out(action: Action, counts: DeliveryCounts | None = None, photo: PhotoInfo | None = None) -> ActionOut:
    deliveries = None
    if counts is not None:
        deliveries = {
            kind.value: DeliveryCountsOut(
                total=counts.total(kind),
                by_status=counts.by_status(kind),
                by_channel=counts.by_kind.get(kind.value, {}),
            )
            for kind in DeliveryKind
        }
    return ActionOut(
        id=action.id or 0,
        code=action.code,
        type=action.type,
        headline=action.headline,
        description=action.description,
        instruction=action.instruction,
        area=action.area,
        urgency=action.urgency,
        severity=action.severity,
        certainty=action.certainty,
        status=action.status,
        outcome=action.outcome,
        closing_text=action.closing_text,
        created_at=action.created_at,
        launched_at=action.launched_at,
        expires_at=action.expires_at,
        closed_at=action.closed_at,
        photo=_photo_out(photo) if photo is not None else None,
        exercise=action.exercise,
        approval_requested_by=action.approval_requested_by,
        approved_by=action.approved_by,
        rings=action.rings,
        deliveries=deliveries,
    )


def action_out(action: Action, counts: DeliveryCounts | None = None) -> ActionOut:
    """An action as the API shows it, with its delivery counts when given."""
    return _out(action, counts)


def actions_router(
    *,
    sessions: SessionFactory,
    settings: Settings,
    clock: Clock,
    book: PostcodeBook,
    texts: AlertTexts,
    on_queued: Callable[[], None] | None = None,
    vault: DataVault | None = None,
) -> APIRouter:
    """The `/api/v1/actions` routes; `on_queued` runs after deliveries were queued (wakes the dispatcher).

    Without a `vault` (DATA_KEY) photos cannot be stored: a photo is then refused with 503."""
    router = APIRouter(prefix="/api/v1", tags=["actions"], dependencies=[Depends(api_token_guard(settings))])
    service = ActionService(
        sessions=sessions, clock=clock, book=book, texts=texts, settings=settings, wake=on_queued
    )
    max_bytes = settings.action_photo_max_bytes
    photos = (
        ActionPhotos(sessions=sessions, clock=clock, vault=vault, texts=texts, max_bytes=max_bytes)
        if vault is not None
        else None
    )

    def wired() -> ActionPhotos:
        if photos is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="photos are not wired")
        return photos

    def refused(exc: PhotoRefused, loc: list[str | int]) -> HTTPException:
        message = PHOTO_PROBLEMS.get(exc.reason, PHOTO_PROBLEMS["type"]).format(max_bytes=max_bytes)
        return HTTPException(UNPROCESSABLE, detail=[_invalid(loc, message)])

    def prepared(data: bytes, loc: list[str | int]) -> NewPhoto:
        try:
            return wired().prepare(data)
        except PhotoRefused as exc:
            raise refused(exc, loc) from exc

    def from_body(photo: str | None) -> NewPhoto | None:
        """A body's base64 photo, checked and prepared (422 at `photo` when refused); None without one."""
        if photo is None:
            return None
        try:
            data = photo_bytes(photo, max_bytes=max_bytes)
        except PhotoRefused as exc:
            raise refused(exc, ["photo"]) from exc
        return prepared(data, ["photo"])

    def info_of(action: Action) -> PhotoInfo | None:
        if not action.has_photo:
            return None
        with sessions() as session:
            try:
                return photo_info(session, action_id=action.id or 0)
            except PhotoNotFound:
                return None

    @router.post("/actions", status_code=status.HTTP_201_CREATED)
    def create(body: ActionIn) -> ActionOut:
        """Create a draft action; nothing is sent until it is launched."""
        area = body.area.stored()
        draft = ActionDraft(
            type=body.type,
            headline=body.headline,
            description=body.description,
            instruction=body.instruction,
            area=area,
            expires_at=body.expires_at,
            urgency=body.urgency,
            severity=body.severity,
            certainty=body.certainty,
            exercise=body.exercise,
            rings=body.rings.model_dump() if body.rings is not None else None,
        )
        with answered():
            action = service.create(draft, actor="api", created_by="api", photo=from_body(body.photo))
        return _out(action, DeliveryCounts({}), info_of(action))

    @router.get("/actions")
    def index(
        status_: Annotated[ActionStatus | None, Query(alias="status")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[ActionOut]:
        """Actions, newest first."""
        with sessions() as session:
            found = list_actions(session, status=status_, limit=limit)
        return [_out(a, photo=info_of(a)) for a in found]

    @router.get("/actions/{action_id}")
    def show(action_id: ActionId) -> ActionOut:
        """One action with its deliveries counted per kind, status and channel."""
        with sessions() as session:
            with answered(action_id):
                action = get_action(session, action_id=action_id)
            out = _out(action, delivery_counts(session, action_id=action_id), info_of(action))
            out.relays = RelaysOut(**relay_figures(session, action_id=action_id).as_json())
            counts = update_delivery_counts(session, action_id=action_id)
            out.updates = [
                UpdateOut(
                    number=u.number,
                    text=u.text,
                    instruction=u.instruction,
                    created_at=u.created_at,
                    created_by=u.created_by,
                    counts=counts.get(u.number, {}),
                )
                for u in updates_of(session, action_id=action_id)
            ]
            return out

    @router.post("/actions/{action_id}/launch", response_model=None)
    def launch(action_id: ActionId, response: Response, dry_run: bool = False) -> ActionOut | PreviewOut:
        """Send the alert to everyone in the area (nearest first); `dry_run=true` only counts and prices.

        Where four eyes are configured for the action's type and region the answer is 202 with status
        `awaiting_approval`: an operator approves it in the control room.
        """
        with answered(action_id):
            if dry_run:
                preview = service.preview(action_id)
                estimate = preview.estimate
                return PreviewOut(
                    action_id=action_id,
                    recipients=estimate.recipients,
                    per_channel=estimate.per_channel,
                    sms_segments=estimate.sms_segments,
                    voice_minutes=estimate.voice_minutes,
                    whatsapp_templates=estimate.whatsapp_templates,
                    whatsapp_sessions=estimate.whatsapp_sessions,
                    cost_eur=estimate.cost_eur,
                    total_eur=estimate.total_eur,
                    sms_text=preview.sms_text,
                    left_out_by_preferences=preview.left_out_by_preferences,
                )
            result = service.request_launch(action_id, by=SYSTEM, runs_from_launch=False)
        if result.status is ActionStatus.AWAITING_APPROVAL:
            response.status_code = status.HTTP_202_ACCEPTED
        return show(action_id)

    @router.post("/actions/{action_id}/approve")
    def approve(action_id: ActionId) -> ActionOut:
        """Approve a launch an operator asked for (four eyes); the token cannot approve its own request."""
        try:
            with answered(action_id):
                service.approve(action_id, by=SYSTEM)
        except LaunchRefused as exc:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail="a launch needs the approval of someone other than who asked",
            ) from exc
        return show(action_id)

    @router.post("/actions/{action_id}/reject")
    def reject(action_id: ActionId, body: RejectIn) -> ActionOut:
        """Refuse a waiting launch (or withdraw the token's own request): the action is a draft again."""
        with answered(action_id):
            service.reject(action_id, by=SYSTEM, reason=body.reason)
        return show(action_id)

    @router.post("/actions/{action_id}/close")
    def close(action_id: ActionId, body: CloseIn) -> ActionOut:
        """End the action; everyone who got the alert gets the closing text, tipsters the result."""
        with answered(action_id):
            service.close(action_id, outcome=body.outcome, closing_text=body.closing_text, actor="api")
        return show(action_id)

    @router.post("/actions/{action_id}/updates", status_code=status.HTTP_201_CREATED)
    def post_update(action_id: ActionId, body: UpdateIn) -> ActionOut:
        """Send an update of an active action to everyone its alert reached, on the channel that reached
        them, and to the relays that got it (same code, marked as an update); with a `photo`, that photo
        replaces the action's and goes with the update."""
        photo = from_body(body.photo)
        with answered(action_id):
            service.add_update(
                action_id, text=body.text, instruction=body.instruction, actor="api", photo=photo
            )
        return show(action_id)

    @router.post("/actions/{action_id}/cancel")
    def cancel(action_id: ActionId, body: CancelIn) -> ActionOut:
        """Cancel an action sent in error: who got the alert gets a correction (a draft is cancelled
        silently); its public page goes dark and its photo is deleted."""
        with answered(action_id):
            service.cancel(action_id, reason=body.reason, actor="api")
        return show(action_id)

    @router.post("/actions/{action_id}/widen")
    def widen(action_id: ActionId, body: WidenIn) -> ActionOut:
        """Give an active action a larger area containing the old one; only the newly inside are alerted."""
        with answered(action_id):
            service.widen(action_id, body.area.stored(), by=SYSTEM)
        return show(action_id)

    @router.post("/actions/{action_id}/rings/stop")
    def stop_rings(action_id: ActionId) -> ActionOut:
        """Stop the automatic widening of an active action: no further ring is alerted. The rings stay
        in `rings`, with `stopped_at`; 409 when it has no rings to stop (none, or stopped already)."""
        with answered(action_id):
            service.stop_rings(action_id, actor="api")
        return show(action_id)

    @router.put("/actions/{action_id}/photo")
    @router.post("/actions/{action_id}/photo", include_in_schema=False)
    async def put_photo(
        action_id: ActionId,
        photo: Annotated[UploadFile, File(description="A JPEG or PNG photo; the file's name does not count")],
    ) -> ActionOut:
        """Give a draft its photo (multipart field `photo`), replacing one it had; stored without EXIF."""
        # One byte more than allowed is enough to know it is too large, without reading it all.
        data = await photo.read(max_bytes + 1)
        new = await run_in_threadpool(prepared, data, ["photo"])
        with answered(action_id):
            await run_in_threadpool(wired().attach, action_id, new, actor="api")
        return await run_in_threadpool(show, action_id)

    @router.delete("/actions/{action_id}/photo", status_code=status.HTTP_204_NO_CONTENT)
    def delete_photo(action_id: ActionId) -> Response:
        """Take a draft's photo away; 204 also when it had none."""
        with answered(action_id):
            wired().remove(action_id, actor="api")
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.get(
        "/actions/{action_id}/photo",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}},
    )
    def get_photo(action_id: ActionId) -> Response:
        """The action's photo as stored; 404 without one (also after the action ended: it is deleted)."""
        try:
            file = wired().file(action_id)
        except PhotoNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"action {action_id} has no photo") from exc
        return Response(
            file.data,
            media_type=file.content_type,
            headers={"Cache-Control": "no-store", "Content-Security-Policy": "default-src 'none'; sandbox"},
        )

    return router
