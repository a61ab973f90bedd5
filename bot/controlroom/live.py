"""The live view of an action: delivery progress per channel, recipients grouped by area, the SSE stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session

from bot import sse
from bot.controlroom.deps import ControlRoom
from bot.controlroom.tipfeed import TipView
from storage.actions import delivery_counts
from storage.cap_changes import waiting_changes
from storage.geo import PostcodeBook
from storage.models import Action, Address, Delivery, DeliveryKind
from storage.operators import SessionInvalid, find_session
from storage.vocabulary import DeliveryStatus

# What the bar shows: the provider's statuses folded into four stages.
STAGES: dict[str, tuple[DeliveryStatus, ...]] = {
    "queued": (DeliveryStatus.QUEUED, DeliveryStatus.SENDING),
    "sent": (DeliveryStatus.SENT,),
    "delivered": (DeliveryStatus.DELIVERED, DeliveryStatus.READ),
    "failed": (DeliveryStatus.FAILED, DeliveryStatus.UNDELIVERED),
}
# A group on the map shows only when it holds at least this many people: never a single participant.
MIN_GROUP = 5
UPDATE_LOOKBACK = timedelta(seconds=10)


@dataclass(frozen=True)
class ChannelProgress:
    """One channel's alert deliveries, by stage."""

    channel: str
    total: int
    stages: dict[str, int]

    def percent(self, stage: str) -> float:
        """The share of a stage, for the bar's width."""
        return round(100.0 * self.stages.get(stage, 0) / self.total, 2) if self.total else 0.0

    def offset(self, stage: str) -> float:
        """Where a stage's part of the bar starts."""
        before = list(STAGES)[: list(STAGES).index(stage)]
        return round(sum(self.percent(s) for s in before), 2)


def progress_of(session: Session, *, action_id: int) -> list[ChannelProgress]:
    """The alert's deliveries per channel and stage."""
    counts = delivery_counts(session, action_id=action_id).by_kind.get(DeliveryKind.ALERT.value, {})
    out = []
    for channel in sorted(counts):
        statuses = counts[channel]
        stages = {stage: sum(statuses.get(s.value, 0) for s in members) for stage, members in STAGES.items()}
        out.append(ChannelProgress(channel, sum(statuses.values()), stages))
    return out


def progress_json(progress: list[ChannelProgress]) -> dict[str, Any]:
    """The progress event's data."""
    return {p.channel: {"total": p.total, **p.stages} for p in progress}


@dataclass(frozen=True)
class RecipientGroup:
    """Recipients of an action in one four-digit postcode area."""

    pc4: str
    lat: float
    lon: float
    count: int


def recipient_groups(
    session: Session, book: PostcodeBook, *, action_id: int, minimum: int = MIN_GROUP
) -> list[RecipientGroup]:
    """Where the alert's recipients live, counted per PC4 area; small groups are left out (privacy)."""
    pc4 = func.substr(Address.postcode, 1, 4)
    rows = session.execute(
        select(pc4, func.count(func.distinct(Delivery.participant_id)))
        .join(Address, Address.participant_id == Delivery.participant_id)  # type: ignore[arg-type]
        .where(
            Delivery.action_id == action_id,  # type: ignore[arg-type]
            Delivery.kind == DeliveryKind.ALERT.value,  # type: ignore[arg-type]
            Address.slot == 1,  # type: ignore[arg-type]
        )
        .group_by(pc4)
    ).all()
    groups = []
    for code, count in rows:
        if count < minimum:
            continue
        try:
            place = book.lookup(str(code))
        except (LookupError, ValueError):
            continue
        groups.append(RecipientGroup(str(code), place.lat, place.lon, int(count)))
    return groups


def _session_alive(cr: ControlRoom, token: str) -> bool:
    with cr.sessions() as session:
        try:
            find_session(session, token=token, now=cr.clock())
        except SessionInvalid:
            return False
    return True


def _poll(
    cr: ControlRoom, action_id: int, after: int, since: datetime
) -> tuple[dict[str, Any], str, list[int], list[TipView], list[TipView]]:
    with cr.sessions() as session:
        progress = progress_json(progress_of(session, action_id=action_id))
        action = session.get(Action, action_id)
        status = action.status.value if action is not None else "gone"
        waiting = (
            [c.id or 0 for c in waiting_changes(session, action_id=action_id)] if status == "active" else []
        )
    new = cr.tips.tips(action_id=action_id, after=after)
    changed = cr.tips.changed(action_id=action_id, since=since, upto=after) if after else []
    return progress, status, waiting, new, changed


async def action_events(
    cr: ControlRoom,
    *,
    action_id: int,
    after: int,
    disconnected: Callable[[], Awaitable[bool]] | None = None,
    session_token: str | None = None,
    max_polls: int | None = None,
) -> AsyncIterator[str]:
    """Progress whenever it changes and every tip after `after`, each tip with its id as the event id;
    a tip already sent that changes (a second message, an answer to an operator) comes as `tip_updated`;
    the ids of the CAP changes waiting for an operator as `cap_changes` when they change.

    The store is polled, so tips stored by another worker process show up too, and a browser that
    reconnects with `Last-Event-ID` gets exactly the tips it missed. With `session_token` the stream
    ends (event `logout`) as soon as that session is gone: logged out, expired, ended by an admin or the
    account deactivated. The response (`bot.sse.event_stream`) keeps it alive and ends it when the client
    goes; `disconnected` is a further way to end it.
    """
    yield sse.opening()
    last_progress: dict[str, Any] | None = None
    last_status: str | None = None
    last_waiting: list[int] | None = None
    polls = 0
    # Tips shown with the page may change before this stream's first poll: look a little back.
    since = cr.clock() - UPDATE_LOOKBACK
    while True:
        if disconnected is not None and await disconnected():
            return
        # In a worker thread: many open pages poll at once and the event loop must stay free.
        if session_token is not None and not await asyncio.to_thread(_session_alive, cr, session_token):
            yield sse.event("logout", {})
            return
        progress, status, waiting, tips, changed = await asyncio.to_thread(_poll, cr, action_id, after, since)
        if progress != last_progress:
            last_progress = progress
            yield sse.event("progress", progress)
        # The page compares these with the CAP changes it shows and offers a reload when they differ.
        if waiting != last_waiting and (last_waiting is not None or waiting):
            yield sse.event("cap_changes", {"waiting": waiting})
        last_waiting = waiting
        if status != last_status:
            if last_status is not None:
                yield sse.event("status", {"status": status})
            last_status = status
        for tip in changed:
            since = max(since, tip.updated_at or since)
            yield sse.event("tip_updated", tip.to_json())
        for tip in tips:
            after = max(after, tip.id)
            since = max(since, tip.updated_at or since)
            yield sse.event("tip", tip.to_json(), event_id=tip.id)
        polls += 1
        if max_polls is not None and polls >= max_polls:
            return
        # Rung when an admin ends sessions here: the stream checks its own at once instead of next poll.
        await cr.recheck.wait(cr.stream_poll_s)
