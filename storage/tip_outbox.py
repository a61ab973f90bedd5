"""Store functions for the tip outbox: the forward rows (stream events; the control-room webhook's queue,
strictly in order, leased) and the operators' questions to tipsters (each sent by its outbound row).

Like the other store functions these take the caller's session and keyword-only arguments and never
commit: the forwarder commits a claim before it sends and the result after, one transaction each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, func, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from storage.models import Action, ChannelIdentity, OutboundMessage, Tip, TipForward, TipMessage
from storage.tips import DONE, FAILED, PENDING, QUEUED, SENT, TipHasNoChannel, utc
from storage.vocabulary import DeliveryStatus


def forwards_after(session: Session, *, after: int, limit: int) -> list[tuple[int, str, dict[str, Any]]]:
    """Stream events above `after`, in order: (forward row id, event, the tip's JSON)."""
    # Core, built once: the stream reads whenever tips are stored, and the ORM's objects cost more than
    # the statement (the stream needs three columns, not the webhook lane's bookkeeping).
    rows = session.connection().execute(_events_after(), {"b_after": after, "b_limit": limit})
    return [(row.id, row.event, row.payload) for row in rows]


@cache
def _events_after() -> Select[Any]:
    table = TipForward.__table__  # type: ignore[attr-defined]
    return (
        sa_select(table.c.id, table.c.event, table.c.payload)
        .where(table.c.id > bindparam("b_after"))
        .order_by(table.c.id)
        .limit(bindparam("b_limit"))
    )


def last_forward_id(session: Session) -> int:
    """The newest forward row's id (0 when there is none)."""
    return int(session.scalar(select(func.max(TipForward.id))) or 0)


def claim_forward(session: Session, *, now: datetime, lease: timedelta) -> TipForward | None:
    """The oldest forward the control-room webhook has not acknowledged, leased to the caller; None when the
    head is not due.

    Strictly in order: a forward waits until the ones before it were acknowledged, so the control room
    receives a tip's versions in the order they were written.
    """
    head = session.exec(
        select(TipForward)
        .where(col(TipForward.webhook_state) == PENDING)
        .order_by(col(TipForward.id))
        .limit(1)
    ).first()
    if head is None:
        return None
    due, leased = utc(head.webhook_next_at), utc(head.webhook_lease_until)
    if (due is not None and due > now) or (leased is not None and leased > now):
        return None
    free = col(TipForward.webhook_lease_until).is_(None) | (col(TipForward.webhook_lease_until) <= now)
    claimed = session.execute(
        update(TipForward)
        .where(col(TipForward.id) == head.id, col(TipForward.webhook_state) == PENDING, free)
        .values(webhook_lease_until=now + lease)
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        return None
    session.refresh(head)
    return head


def forward_done(session: Session, *, forward_id: int, now: datetime) -> None:
    """The webhook acknowledged the forward."""
    session.execute(
        update(TipForward)
        .where(col(TipForward.id) == forward_id)
        .values(
            webhook_state=DONE,
            webhook_sent_at=now,
            webhook_lease_until=None,
            webhook_error=None,
            webhook_attempts=col(TipForward.webhook_attempts) + 1,
        )
    )


def forward_failed(session: Session, *, forward_id: int, error: str, next_at: datetime) -> None:
    """The webhook did not acknowledge the forward: try again at `next_at`."""
    session.execute(
        update(TipForward)
        .where(col(TipForward.id) == forward_id)
        .values(
            webhook_lease_until=None,
            webhook_error=error[:200],
            webhook_next_at=next_at,
            webhook_attempts=col(TipForward.webhook_attempts) + 1,
        )
    )


@dataclass(frozen=True)
class QueuedQuestion:
    """An operator's question just written, with what its message to the tipster needs."""

    message: TipMessage
    identity: ChannelIdentity
    action_code: str


def queue_question(
    session: Session, *, tip: Tip, text: str, actor: str, now: datetime, answer_open: timedelta
) -> QueuedQuestion:
    """Write an operator's question to the tipster; their next message answers it (joins the tip).

    The caller writes the outbound row that sends it in the same transaction and sets `outbound_id`.
    """
    identity = session.get(ChannelIdentity, tip.identity_id) if tip.identity_id else None
    if identity is None or identity.opted_out or identity.address_enc is None:
        raise TipHasNoChannel(tip.id)
    action = session.get(Action, tip.action_id)
    message = TipMessage(tip_id=tip.id or 0, direction="out", text=text, actor=actor, at=now, state=QUEUED)
    session.add(message)
    tip.answer_open_until = now + answer_open
    session.add(tip)
    session.flush()
    return QueuedQuestion(message, identity, action.code if action is not None else "")


def question_states(session: Session, *, outbound_ids: Sequence[int]) -> dict[int, str]:
    """The sending state of questions by their outbound row: `queued` (also while sending), `sent`, `failed`.

    A row the scheduler purged is missing here: its question was sent or failed, which the row no longer says.
    """
    if not outbound_ids:
        return {}
    rows = session.execute(
        sa_select(col(OutboundMessage.id), col(OutboundMessage.status)).where(
            col(OutboundMessage.id).in_(list(outbound_ids))
        )
    ).all()
    return {row_id: _STATE.get(DeliveryStatus(status), QUEUED) for row_id, status in rows}


_STATE = {DeliveryStatus.SENT: SENT, DeliveryStatus.FAILED: FAILED}


def settle_questions(session: Session, *, created_before: datetime) -> int:
    """Keep the final state of questions whose outbound rows are about to be purged; returns how many.

    A question not sent by then never will be (its row goes): it counts as failed.
    """
    rows = session.execute(
        sa_select(col(TipMessage.id), col(OutboundMessage.status))
        .join(OutboundMessage, col(OutboundMessage.id) == col(TipMessage.outbound_id))
        .where(col(OutboundMessage.created_at) <= created_before)
    ).all()
    for message_id, status in rows:
        state = SENT if DeliveryStatus(status) is DeliveryStatus.SENT else FAILED
        session.execute(
            update(TipMessage).where(col(TipMessage.id) == message_id).values(state=state, outbound_id=None)
        )
    return len(rows)
