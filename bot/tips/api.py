"""REST API for tips: list (since a time, per action), the live stream (server-sent events), operator replies.

Mounted under `/api/v1` with the bearer `API_TOKEN`. The stream's event ids are the forward rows' ids:
a client that reconnects with `Last-Event-ID` gets every tip version stored after it, read from storage,
so a restart or another worker process loses nothing. Tips never carry the tipster's phone number here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, status
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, Field, field_validator
from sse_starlette import EventSourceResponse

from bot import sse
from bot.api.actions import MAX_ID, ActionId
from bot.api.auth import api_token_guard
from bot.channels.media import is_image
from bot.config import Settings
from bot.controlroom.tipfeed import MediaFile, media_response
from bot.texts import Catalogue
from bot.tips.hub import TipHub
from bot.tips.questions import ask_tipster
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.models import Action
from storage.participants import audit
from storage.tip_media import MediaNotFound, stored_media
from storage.tip_outbox import forwards_after, last_forward_id
from storage.tips import TipHasNoChannel, TipNotFound, get_tip, list_tips, tip_json

MAX_QUESTION = 500
STREAM_BATCH = 500  # forward rows per read of the event stream
STREAM_GATHER_S = 0.01  # the shortest time between two reads of the event stream while tips flow in


class ReplyIn(BaseModel):
    """An operator's question to the tipster."""

    text: str = Field(max_length=MAX_QUESTION)

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text must not be empty")
        return value.strip()


class ReplyOut(BaseModel):
    """The queued question."""

    tip_id: int
    message_id: int
    state: str


def tips_router(
    *,
    sessions: SessionFactory,
    settings: Settings,
    clock: Callable[[], datetime],
    hub: TipHub,
    vault: DataVault,
    catalogue: Catalogue,
    on_queued: Callable[[], None] | None = None,
    poll_s: float = 1.0,
    answer_open_minutes: int = 60,
) -> APIRouter:
    """The `/api/v1/tips` routes; `on_queued` runs after a question was queued (wakes the dispatcher)."""
    router = APIRouter(prefix="/api/v1", tags=["tips"], dependencies=[Depends(api_token_guard(settings))])

    @router.get("/tips")
    def index(
        since: Annotated[AwareDatetime | None, Query()] = None,
        after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> list[dict[str, Any]]:
        """Tips changed since a moment (ISO 8601 with offset), oldest first."""
        with sessions() as session:
            found = list_tips(
                session, since=since.astimezone(UTC) if since else None, after=after, limit=limit
            )
            return [tip_json(tip, action_code=code) for tip, code in found]

    @router.get("/actions/{action_id}/tips")
    def of_action(
        action_id: ActionId,
        after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> list[dict[str, Any]]:
        """One action's tips, oldest first."""
        with sessions() as session:
            if session.get(Action, action_id) is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no action {action_id}")
            found = list_tips(session, action_id=action_id, after=after, limit=limit)
            return [tip_json(tip, action_code=code) for tip, code in found]

    @router.get("/tips/stream")
    async def stream(
        last_event_id: Annotated[str | None, Header()] = None,
        after: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    ) -> EventSourceResponse:
        """Server-sent events `tip` (data: the tip's JSON), from `Last-Event-ID` / `after`, else from now."""
        start = sse.resume_after(last_event_id, after)
        if start is None:
            start = await asyncio.to_thread(_newest, sessions)
        return sse.event_stream(_events(sessions=sessions, hub=hub, after=start, poll_s=poll_s))

    @router.get("/tips/{tip_id}/media/{position}", response_class=Response)
    def media(
        tip_id: Annotated[int, Path(ge=1, le=MAX_ID)], position: Annotated[int, Path(ge=1, le=MAX_ID)]
    ) -> Response:
        """A tip's photo or file (the URLs in a tip's `media`); 404 until it is fetched, or when refused."""
        with sessions() as session:
            try:
                stored = stored_media(session, tip_id=tip_id, position=position)
            except MediaNotFound as exc:
                raise HTTPException(
                    status.HTTP_404_NOT_FOUND, detail=f"no file {position} of tip {tip_id}"
                ) from exc
        return media_response(
            MediaFile(
                tip_id=tip_id,
                position=position,
                content_type=stored.content_type,
                data=vault.decrypt_bytes(stored.data_enc),
                image=is_image(stored.content_type),
            )
        )

    @router.post("/tips/{tip_id}/reply", status_code=status.HTTP_202_ACCEPTED)
    def reply(tip_id: Annotated[int, Path(ge=1, le=MAX_ID)], body: ReplyIn) -> ReplyOut:
        """Queue an operator's question to the tipster on their channel; the answer joins the tip."""
        now = clock()
        with transaction(sessions) as session:
            try:
                tip = get_tip(session, tip_id=tip_id)
                message = ask_tipster(
                    session,
                    tip=tip,
                    text=body.text,
                    actor="api",
                    now=now,
                    answer_open=timedelta(minutes=answer_open_minutes),
                    vault=vault,
                    catalogue=catalogue,
                    on_queued=on_queued,
                )
            except TipNotFound as exc:
                raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no tip {tip_id}") from exc
            except TipHasNoChannel as exc:
                raise HTTPException(status.HTTP_409_CONFLICT, detail="the tipster cannot be reached") from exc
            audit(session, now=now, actor="api", event="tip_replied", subject=f"tip:{tip_id}")
            # Just written with its outbound row: queued (the control room's thread shows how the send went).
            return ReplyOut(tip_id=tip_id, message_id=message.id or 0, state=message.state)

    return router


def _newest(sessions: SessionFactory) -> int:
    with sessions() as session:
        return last_forward_id(session)


def _read(sessions: SessionFactory, after: int) -> list[tuple[int, str, dict[str, Any]]]:
    with sessions() as session:
        return forwards_after(session, after=after, limit=STREAM_BATCH)


async def _events(sessions: SessionFactory, *, hub: TipHub, after: int, poll_s: float) -> AsyncIterator[str]:
    """Every stored tip version above `after`, then each new one as it is stored."""
    yield sse.opening()
    loop = asyncio.get_running_loop()
    while True:
        seen = hub.rings
        read_at = loop.time()
        rows = await asyncio.to_thread(_read, sessions, after)
        if rows:
            after = rows[-1][0]
            # One chunk per read: one write to the socket however many tips the read found.
            yield "".join(
                sse.event("tip", {**payload, "event": event}, event_id=event_id)
                for event_id, event, payload in rows
            )
        if len(rows) >= STREAM_BATCH:
            continue  # more are waiting
        # Read again only after a ring (one that came during the read counts): reading straight
        # after every batch doubled the stream's queries under a steady flow of tips.
        if await hub.wait(poll_s, seen=seen):
            # Under a flow of tips, at most one read per STREAM_GATHER_S: the tips stored meanwhile come
            # in that read (a read, its thread and its write cost more than the tip itself). A tip after
            # a quiet spell is read at once.
            pause = read_at + STREAM_GATHER_S - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
