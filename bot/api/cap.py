"""CAP 1.2 in the REST API: an action as a CAP alert, an Atom feed of the running ones, and CAP in.

`GET /api/v1/actions/{id}/cap` answers `application/cap+xml`; `GET /api/v1/cap/feed` lists the active
actions' CAP links as Atom (the form alert aggregators poll); `POST /api/v1/cap` takes a CAP 1.2 alert
and stores a draft action from it (nothing is sent until an operator launches it); an Update or Cancel
whose `references` name one of our messages becomes a draft update or a cancel that waits for an
operator's confirmation on the action's live page (`bot/services/cap_changes.py`).
Like every `/api/v1` route these need the bearer `API_TOKEN`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ValidationError

from bot.alerts import AlertTexts
from bot.api.actions import ActionIn, ActionOut, action_out
from bot.api.auth import api_token_guard
from bot.cap.document import (
    MEDIA_TYPE,
    CapChangeMessage,
    CapError,
    CapReference,
    alert_xml,
    cap_time,
    describe_area,
    identifier_of,
    read_cap,
)
from bot.clock import Clock
from bot.config import Settings
from bot.services.actions import ActionService, InvalidAction
from bot.services.cap_changes import CapChanges, UnknownReference
from bot.texts import Catalogue
from storage.actions import (
    ActionDraft,
    ActionNotFound,
    ActionStateError,
    DeliveryCounts,
    get_action,
    list_actions,
    updates_of,
)
from storage.cap_changes import CapAlertSeen, CapMessageSeen
from storage.db import SessionFactory
from storage.geo import PostcodeBook
from storage.models import Action, ActionStatus, ActionUpdate, CapChangeKind, CapChangeStatus
from storage.targeting import parse_area

UNPROCESSABLE = 422
MAX_ID = 2**31 - 1
# A CAP alert without `expires` runs this long (our actions always end).
DEFAULT_RUN = timedelta(hours=2)
ATOM = "application/atom+xml"


def cap_sender(settings: Settings) -> str:
    """Our CAP `sender`: a name at the host of PUBLIC_BASE_URL (no spaces or commas, as CAP asks)."""
    return f"burgernet@{urlsplit(settings.public_base_url).hostname or 'localhost'}"


def public_page(settings: Settings, action: Action) -> str:
    """The action's public page."""
    return f"{settings.public_base_url.rstrip('/')}/a/{action.code}"


def cap_router(
    *,
    sessions: SessionFactory,
    settings: Settings,
    clock: Clock,
    book: PostcodeBook,
    texts: AlertTexts,
    catalogue: Catalogue,
) -> APIRouter:
    """The CAP routes under `/api/v1`."""
    router = APIRouter(prefix="/api/v1", tags=["cap"], dependencies=[Depends(api_token_guard(settings))])
    service = ActionService(sessions=sessions, clock=clock, book=book, texts=texts, settings=settings)
    sender = cap_sender(settings)

    def area_desc(action: Action) -> str:
        figures = describe_area(parse_area(action.area))
        kind = figures.pop("kind")
        if kind == "municipalities":
            names = book.municipalities()
            figures = {"names": ", ".join(names.get(c, c) for c in figures["codes"])}
        return catalogue.render("nl", f"cap.area.{kind}", **figures)

    def document(action: Action, updates: Sequence[ActionUpdate] = ()) -> bytes:
        return alert_xml(
            action,
            sender=sender,
            web=public_page(settings, action),
            event=catalogue.render("nl", f"action.type.{action.type.value}"),
            area_desc=area_desc(action),
            exercise=action.exercise,
            updates=updates,
        )

    @router.get(
        "/actions/{action_id}/cap",
        response_class=Response,
        responses={200: {"content": {MEDIA_TYPE: {}}, "description": "A CAP 1.2 alert"}},
    )
    def cap_out(action_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> Response:
        """The action as a CAP 1.2 alert: Alert while it runs, Update once closed, Cancel once cancelled."""
        with sessions() as session:
            try:
                action = get_action(session, action_id=action_id)
            except ActionNotFound as exc:
                raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no action {action_id}") from exc
            updates = updates_of(session, action_id=action_id)
            return Response(document(action, updates), media_type=MEDIA_TYPE)

    @router.get(
        "/cap/feed", response_class=Response, responses={200: {"content": {ATOM: {}}, "description": "Atom"}}
    )
    def feed(request: Request) -> Response:
        """An Atom feed of the active actions, each entry linking to its CAP alert."""
        with sessions() as session:
            active = list_actions(session, status=ActionStatus.ACTIVE, limit=500)
        base = settings.public_base_url.rstrip("/")
        updated = max((a.launched_at or a.created_at for a in active), default=clock())
        entries = []
        for action in active:
            link = f"{base}/api/v1/actions/{action.id}/cap"
            entries.append(
                "<entry>"
                f"<id>urn:burgernet:{escape(identifier_of(action))}</id>"
                f"<title>{escape(action.headline)}</title>"
                f"<updated>{cap_time(action.launched_at or action.created_at)}</updated>"
                f"<summary>{escape(action.description)}</summary>"
                f'<link rel="alternate" type="{MEDIA_TYPE}" href="{escape(link)}"/>'
                f'<link rel="related" type="text/html" href="{escape(public_page(settings, action))}"/>'
                "</entry>"
            )
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<feed xmlns="http://www.w3.org/2005/Atom">'
            f"<id>urn:burgernet:cap-feed:{escape(sender)}</id>"
            f"<title>{escape(catalogue.render('nl', 'cap.feed_title'))}</title>"
            f"<updated>{cap_time(updated)}</updated>"
            f"<author><name>{escape(sender)}</name></author>"
            f'<link rel="self" href="{escape(base + request.url.path)}"/>' + "".join(entries) + "</feed>"
        )
        return Response(body.encode(), media_type=ATOM)

    changes = CapChanges(actions=service, sender=sender)

    @router.post(
        "/cap",
        status_code=status.HTTP_201_CREATED,
        response_model=ActionOut | CapChangeOut,
        openapi_extra={"requestBody": {"content": {MEDIA_TYPE: {"schema": {"type": "string"}}}}},
    )
    async def cap_in(request: Request) -> ActionOut | CapChangeOut:
        """Store a CAP 1.2 Alert as a draft action; an Update or Cancel that references one of our
        actions as a draft update or a cancel for an operator to confirm in the control room."""
        body = await request.body()
        try:
            message = read_cap(body)
        except CapError as exc:
            raise HTTPException(UNPROCESSABLE, detail=[_problem(["body"], str(exc))]) from exc
        if isinstance(message, CapChangeMessage):
            return await run_in_threadpool(_change, message)
        alert = message
        try:
            # The same checks as an action posted as JSON: lengths, blanks, the area inside the country.
            fields = ActionIn.model_validate(
                {
                    "type": alert.type,
                    "headline": alert.headline,
                    "description": alert.description,
                    "instruction": alert.instruction,
                    "area": alert.area,
                    "expires_at": alert.expires_at or clock() + DEFAULT_RUN,
                    "urgency": alert.urgency,
                    "severity": alert.severity,
                    "certainty": alert.certainty,
                }
            )
        except ValidationError as exc:
            detail = [_problem(["body", *e["loc"]], e["msg"]) for e in exc.errors(include_url=False)]
            raise HTTPException(UNPROCESSABLE, detail=detail) from exc
        draft = ActionDraft(
            type=fields.type,
            headline=fields.headline,
            description=fields.description,
            instruction=fields.instruction,
            area=fields.area.stored(),
            expires_at=fields.expires_at,
            urgency=fields.urgency,
            severity=fields.severity,
            certainty=fields.certainty,
        )
        source = CapReference(sender=alert.sender, identifier=alert.identifier, sent=alert.sent)
        action = await run_in_threadpool(_create, draft, source)
        return action_out(action, DeliveryCounts({}))

    def _create(draft: ActionDraft, source: CapReference) -> Action:
        try:
            return service.create(
                draft, actor=f"cap:{source.sender}"[:120], created_by="cap", cap_alert=source
            )
        except InvalidAction as exc:
            raise HTTPException(
                UNPROCESSABLE, detail=[_problem(["body", *p.loc], p.message) for p in exc.problems]
            ) from exc
        except CapAlertSeen as exc:
            with sessions() as session:
                action = get_action(session, action_id=exc.action_id)
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                detail=f"{exc}: it is action {action.code} (/api/v1/actions/{action.id})",
            ) from exc

    def _change(message: CapChangeMessage) -> CapChangeOut:
        try:
            change = changes.receive(message)
        except UnknownReference as exc:
            raise HTTPException(UNPROCESSABLE, detail=[_problem(["body", "references"], str(exc))]) from exc
        except ActionStateError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
        except CapMessageSeen as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from exc
        except InvalidAction as exc:
            raise HTTPException(
                UNPROCESSABLE, detail=[_problem(["body", *p.loc], p.message) for p in exc.problems]
            ) from exc
        with sessions() as session:
            action = get_action(session, action_id=change.action_id)
        return CapChangeOut(
            id=change.id or 0,
            kind=change.kind,
            status=change.status,
            action_id=action.id or 0,
            action_code=action.code,
            text=change.text,
            instruction=change.instruction,
            cap_sender=change.cap_sender,
            cap_identifier=change.cap_identifier,
            received_at=change.received_at,
            confirm_at=f"/controlroom/actions/{action.id}",
        )

    return router


class CapChangeOut(BaseModel):
    """A CAP Update or Cancel of one of our actions, waiting for an operator: `kind` update (a draft
    update with its text and instruction) or cancel (`text`: what the message said about it); nothing
    is sent until an operator confirms it on the action's live page (`confirm_at`)."""

    id: int
    kind: CapChangeKind
    status: CapChangeStatus
    action_id: int
    action_code: str
    text: str
    instruction: str
    cap_sender: str
    cap_identifier: str
    received_at: datetime
    confirm_at: str


def _problem(loc: list[Any], message: str) -> dict[str, Any]:
    return {"loc": loc, "msg": message, "type": "value_error"}
