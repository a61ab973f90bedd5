"""The alert outbox as a queue: claim due deliveries, record sends, put them back, take back stale claims.

The dispatcher (bot/dispatch.py) drives it; `storage/outbound.py` is the same queue for the other
messages out. Sends are recorded with Core statements, one executemany per group, because the
dispatcher records thousands of results a second during a fan-out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.engine import Connection
from sqlmodel import Session

from storage.models import ChannelIdentity, Delivery, DeliveryKind
from storage.vocabulary import ChannelKind, DeliveryStatus

DELIVERY: Table = Delivery.__table__  # type: ignore[attr-defined]
IDENTITY: Table = ChannelIdentity.__table__  # type: ignore[attr-defined]
_D = DELIVERY.c
MARK_SENT = (
    update(DELIVERY)
    .where(_D.id == bindparam("b_id"))
    .values(
        status=DeliveryStatus.SENT.value,
        provider_id=bindparam("b_provider_id"),
        segments=bindparam("b_segments"),
        attempts=bindparam("b_attempts"),
        sent_at=bindparam("b_now"),
        updated_at=bindparam("b_now"),
        error_code=None,
        claimed_by=None,
    )
)
MARK_RETRY = (
    update(DELIVERY)
    .where(_D.id == bindparam("b_id"))
    .values(
        status=DeliveryStatus.QUEUED.value,
        attempts=bindparam("b_attempts"),
        next_attempt_at=bindparam("b_next"),
        error_code=bindparam("b_error"),
        claimed_by=None,
        claimed_at=None,
        updated_at=bindparam("b_now"),
    )
)


@dataclass(frozen=True)
class ClaimedDelivery:
    """A claimed delivery with what is needed to send it."""

    id: int
    action_id: int
    participant_id: int | None
    identity_id: int | None
    kind: DeliveryKind
    channel: ChannelKind
    language: str
    attempts: int
    tried: str
    address_enc: str | None
    last_inbound_at: datetime | None
    update_no: int = 0
    """Which update of the action an update delivery carries (0 for every other kind)."""


@dataclass(frozen=True)
class DeliverySent:
    """One send to record: the delivery, its try number, the provider's id and the SMS parts."""

    id: int
    attempts: int
    provider_id: str | None
    segments: int | None


@dataclass(frozen=True)
class DeliveryRetry:
    """One send to try again: the delivery, its try number, when, and why the last try failed."""

    id: int
    attempts: int
    next_at: datetime
    error_code: str


def claim_deliveries(
    session: Session, *, channel: ChannelKind, limit: int, worker: str, now: datetime, skip_locked: bool
) -> list[ClaimedDelivery]:
    """Mark up to `limit` due deliveries of a channel as the worker's, nearest first, and load them.

    `skip_locked` (PostgreSQL): rows another worker is claiming at this moment are passed over.
    """
    due = (
        select(_D.id)
        .where(
            _D.status == DeliveryStatus.QUEUED.value, _D.channel == channel.value, _D.next_attempt_at <= now
        )
        .order_by(_D.rank, _D.id)
        .limit(limit)
    )
    if skip_locked:
        due = due.with_for_update(skip_locked=True)
    ids = list(session.scalars(due))
    if not ids:
        return []
    session.execute(
        update(DELIVERY)
        .where(_D.id.in_(ids), _D.status == DeliveryStatus.QUEUED.value)
        .values(status=DeliveryStatus.SENDING.value, claimed_by=worker, claimed_at=now, updated_at=now)
    )
    i = IDENTITY.c
    rows = session.execute(
        select(
            _D.id,
            _D.action_id,
            _D.participant_id,
            _D.identity_id,
            _D.kind,
            _D.channel,
            _D.language,
            _D.attempts,
            _D.tried,
            i.address_enc,
            i.last_inbound_at,
            _D.update_no,
        )
        .select_from(DELIVERY.outerjoin(IDENTITY, i.id == _D.identity_id))
        .where(_D.id.in_(ids), _D.claimed_by == worker)
        .order_by(_D.rank, _D.id)
    ).all()
    return [
        ClaimedDelivery(
            id=r[0],
            action_id=r[1],
            participant_id=r[2],
            identity_id=r[3],
            kind=DeliveryKind(r[4]),
            channel=ChannelKind(r[5]),
            language=r[6],
            attempts=r[7],
            tried=r[8],
            address_enc=r[9],
            last_inbound_at=r[10],
            update_no=r[11],
        )
        for r in rows
    ]


def release_deliveries(session: Session, *, ids: Sequence[int], worker: str) -> None:
    """Put the worker's claimed deliveries that were not sent back in the queue."""
    session.execute(
        update(DELIVERY)
        .where(_D.id.in_(list(ids)), _D.status == DeliveryStatus.SENDING.value, _D.claimed_by == worker)
        .values(status=DeliveryStatus.QUEUED.value, claimed_by=None, claimed_at=None)
    )


def requeue_stale_deliveries(
    session: Session, *, cutoff: datetime | None, now: datetime, worker: str | None = None
) -> int:
    """Put claims made before `cutoff` (None: every claim), or all of one worker's, that never reached the
    provider back in the queue; how many."""
    query = update(DELIVERY).where(_D.status == DeliveryStatus.SENDING.value, _D.provider_id.is_(None))
    if worker is not None:
        query = query.where(_D.claimed_by == worker)
    elif cutoff is not None:
        query = query.where(_D.claimed_at < cutoff)
    result = session.execute(
        query.values(status=DeliveryStatus.QUEUED.value, claimed_by=None, claimed_at=None, updated_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def deliveries_sent(conn: Connection, *, sent: Sequence[DeliverySent], now: datetime) -> None:
    """Record a group of sends as sent; one statement."""
    conn.execute(
        MARK_SENT,
        [
            {"b_id": s.id, "b_provider_id": s.provider_id, "b_segments": s.segments, "b_attempts": s.attempts,
             "b_now": now}
            for s in sent
        ],
    )  # fmt: skip


def deliveries_retried(conn: Connection, *, retries: Sequence[DeliveryRetry], now: datetime) -> None:
    """Put a group of failed sends back in the queue for a later try; one statement."""
    conn.execute(
        MARK_RETRY,
        [
            {
                "b_id": r.id,
                "b_attempts": r.attempts,
                "b_next": r.next_at,
                "b_error": r.error_code,
                "b_now": now,
            }
            for r in retries
        ],
    )  # fmt: skip


def delivery_given_up(session: Session, *, delivery_id: int, attempts: int) -> None:
    """Count the last try of a delivery that failed for good (its status was set by the fallback)."""
    session.execute(update(DELIVERY).where(_D.id == delivery_id).values(attempts=attempts))
