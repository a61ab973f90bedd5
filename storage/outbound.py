"""The outbox of messages that are not alerts or codes: replies, questions, reconfirmations.

A row is written in the transaction of the state change that causes it, so a step that fails leaves no
message behind and a message is never lost after its step committed. The dispatcher claims rows lane by
lane (`LANES`: a person in a conversation first), sends them and records the result here. Recipient and
message are encrypted while the row waits and wiped once it is sent, failed or its person said STOP.
Rows answered in the webhook's own response (a call's TwiML, the simulator) are written as sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.engine import Connection
from sqlmodel import Session

from storage.crypto import DataVault
from storage.db import after_commit
from storage.models import OutboundKind, OutboundMessage
from storage.vocabulary import ChannelKind, DeliveryStatus

OUTBOUND: Table = OutboundMessage.__table__  # type: ignore[attr-defined]
# A person waiting in a conversation before bulk alerts (lane 1, the delivery table), those before the rest.
LANES: dict[OutboundKind, int] = {
    OutboundKind.REPLY: 0,
    OutboundKind.TIP_QUESTION: 0,
    OutboundKind.OPERATOR_CHAT: 0,
    OutboundKind.TIP_RESULT: 2,
    OutboundKind.RECONFIRM: 2,
}
IN_BAND = "in-band"
DONE = (DeliveryStatus.SENT.value, DeliveryStatus.FAILED.value)
# Told after the commit of a STOP or an erasure which identities' waiting messages were wiped, so that a
# worker holding such a message in memory (handed off or claimed, not yet sent) drops it.
FORGET_LISTENERS: list[Callable[[Sequence[int]], None]] = []
MARK_OUTBOUND_SENT = (
    update(OUTBOUND)
    .where(OUTBOUND.c.id == bindparam("b_id"))
    .values(
        status=DeliveryStatus.SENT.value,
        provider_id=bindparam("b_provider_id"),
        attempts=bindparam("b_attempts"),
        sent_at=bindparam("b_now"),
        error_code=None,
        claimed_by=None,
        claimed_at=None,
        recipient_enc=None,
        message_enc=None,
    )
)


@dataclass(frozen=True)
class ClaimedOutbound:
    """A claimed row, decrypted: who it goes to and what (`payload`: text and the channel's extras)."""

    id: int
    channel: ChannelKind
    identity_id: int | None
    lane: int
    attempts: int
    recipient: str | None
    payload: dict[str, Any] | None


def queue_message(
    session: Session,
    *,
    vault: DataVault,
    channel: ChannelKind,
    recipient: str,
    payload: dict[str, Any],
    kind: OutboundKind,
    identity_id: int | None,
    now: datetime,
    answered_in_band: str | None = None,
    claimed_by: str | None = None,
) -> OutboundMessage:
    """Add one message to the outbox in the caller's transaction.

    `answered_in_band` (a call's id, or the simulator's) records a message the webhook answers in its own
    response: it is written as sent, so it is counted like any other send and never sent again.
    `claimed_by` writes it claimed by that worker, which is handed the message after the commit.
    """
    row = OutboundMessage(
        channel=channel,
        identity_id=identity_id,
        kind=kind,
        lane=LANES[kind],
        next_attempt_at=now,
        created_at=now,
    )
    if answered_in_band is None:
        row.recipient_enc = vault.encrypt(recipient)
        row.message_enc = vault.encrypt(json.dumps(payload, separators=(",", ":")))
        if claimed_by is not None:
            row.status = DeliveryStatus.SENDING
            row.claimed_by = claimed_by
            row.claimed_at = now
    else:
        row.status = DeliveryStatus.SENT
        row.attempts = 1
        row.provider_id = f"{IN_BAND}:{answered_in_band}"[:255]
        row.claimed_by = IN_BAND
        row.sent_at = now
    session.add(row)
    return row


def claim_outbound(
    session: Session,
    *,
    vault: DataVault,
    channel: ChannelKind,
    now: datetime,
    worker: str,
    limit: int,
    skip_locked: bool,
) -> list[ClaimedOutbound]:
    """Mark up to `limit` due rows of a channel as the worker's, lane by lane, oldest first, and load them."""
    o = OUTBOUND.c
    due = (
        select(o.id)
        .where(o.status == DeliveryStatus.QUEUED.value, o.channel == channel.value, o.next_attempt_at <= now)
        .order_by(o.lane, o.id)
        .limit(limit)
    )
    if skip_locked:
        due = due.with_for_update(skip_locked=True)
    ids = list(session.scalars(due))
    if not ids:
        return []
    session.execute(
        update(OUTBOUND)
        .where(o.id.in_(ids), o.status == DeliveryStatus.QUEUED.value)
        .values(status=DeliveryStatus.SENDING.value, claimed_by=worker, claimed_at=now)
    )
    rows = session.execute(
        select(o.id, o.channel, o.identity_id, o.lane, o.attempts, o.recipient_enc, o.message_enc)
        .where(o.id.in_(ids), o.claimed_by == worker, o.status == DeliveryStatus.SENDING.value)
        .order_by(o.lane, o.id)
    ).all()
    return [
        ClaimedOutbound(
            id=r[0],
            channel=ChannelKind(r[1]),
            identity_id=r[2],
            lane=r[3],
            attempts=r[4],
            recipient=vault.decrypt(r[5]) if r[5] is not None else None,
            payload=json.loads(vault.decrypt(r[6])) if r[6] is not None else None,
        )
        for r in rows
    ]


def outbound_result(
    session: Session,
    *,
    outbound_id: int,
    attempts: int,
    provider_id: str | None,
    error: str | None,
    next_at: datetime | None,
    now: datetime,
) -> None:
    """Record one send: sent (the message wiped), queued again at `next_at`, or failed (wiped)."""
    o = OUTBOUND.c
    values: dict[str, Any] = {
        "attempts": attempts,
        "claimed_by": None,
        "claimed_at": None,
        "error_code": error,
    }
    if error is None:
        values |= {"status": DeliveryStatus.SENT.value, "provider_id": provider_id, "sent_at": now}
    elif next_at is not None:
        values |= {"status": DeliveryStatus.QUEUED.value, "next_attempt_at": next_at}
    else:
        values |= {"status": DeliveryStatus.FAILED.value}
    if error is None or next_at is None:
        values |= {"recipient_enc": None, "message_enc": None}
    session.execute(update(OUTBOUND).where(o.id == outbound_id).values(**values))


def outbound_sent(conn: Connection, *, sent: Sequence[tuple[int, int, str | None]], now: datetime) -> None:
    """Record a group of sends (id, attempts, provider id) as sent, their messages wiped; one statement."""
    conn.execute(
        MARK_OUTBOUND_SENT,
        [{"b_id": i, "b_attempts": a, "b_provider_id": p, "b_now": now} for i, a, p in sent],
    )


def release_outbound(session: Session, *, ids: Sequence[int], worker: str) -> None:
    """Put claimed rows that were not sent back in the queue."""
    o = OUTBOUND.c
    session.execute(
        update(OUTBOUND)
        .where(o.id.in_(list(ids)), o.status == DeliveryStatus.SENDING.value, o.claimed_by == worker)
        .values(status=DeliveryStatus.QUEUED.value, claimed_by=None, claimed_at=None)
    )


def requeue_stale_outbound(session: Session, *, cutoff: datetime | None, worker: str | None = None) -> int:
    """Put claims older than `cutoff` (every claim when None), or all of one worker's, back in the queue;
    returns how many."""
    o = OUTBOUND.c
    query = update(OUTBOUND).where(o.status == DeliveryStatus.SENDING.value)
    if worker is not None:
        query = query.where(o.claimed_by == worker)
    elif cutoff is not None:
        query = query.where(o.claimed_at < cutoff)
    result = session.execute(
        query.values(status=DeliveryStatus.QUEUED.value, claimed_by=None, claimed_at=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def forget_outbound(session: Session, *, identity_ids: Sequence[int]) -> None:
    """STOP or an erasure: the identities' waiting messages are wiped and never sent."""
    if not identity_ids:
        return
    o = OUTBOUND.c
    session.execute(
        update(OUTBOUND)
        .where(o.identity_id.in_(list(identity_ids)), o.status.not_in(DONE))
        .values(
            status=DeliveryStatus.FAILED.value,
            error_code="erased",
            recipient_enc=None,
            message_enc=None,
            claimed_by=None,
        )
    )
    if FORGET_LISTENERS:
        ids = tuple(identity_ids)
        after_commit(session, lambda: _tell_forgotten(ids))


def _tell_forgotten(identity_ids: Sequence[int]) -> None:
    for listener in list(FORGET_LISTENERS):
        listener(identity_ids)


def purge_outbound(session: Session, *, now: datetime, keep: timedelta) -> int:
    """Delete sent and failed rows older than `keep` (their message was wiped already); returns how many."""
    o = OUTBOUND.c
    result = session.execute(delete(OUTBOUND).where(o.status.in_(DONE), o.created_at < now - keep))
    return int(result.rowcount)  # type: ignore[attr-defined]
