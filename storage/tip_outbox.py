"""Store functions for the tip outbox: the forward rows (stream events; webhook and operators' chat
lanes, strictly in order, leased) and the operators' questions to tipsters.

Like the other store functions these take the caller's session and keyword-only arguments and never
commit: the forwarder commits a claim before it sends and the result after, one transaction each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, func, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from storage.models import Action, ChannelIdentity, Tip, TipForward, TipMessage
from storage.tips import DONE, FAILED, PENDING, QUEUED, SENT, TipHasNoChannel, utc
from storage.vocabulary import ChannelKind


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


WEBHOOK, CHAT = "webhook", "chat"
"""The lanes a forward row goes out on: the control-room webhook and the operators' Telegram chat."""


def _lane(lane: str, name: str) -> Any:
    return col(getattr(TipForward, f"{lane}_{name}"))


def claim_forward(session: Session, *, lane: str, now: datetime, lease: timedelta) -> TipForward | None:
    """The oldest forward not yet acknowledged on a lane, leased to the caller; None when the head is not due.

    Strictly in order: a forward waits until the ones before it were acknowledged, so the control room
    receives a tip's versions in the order they were written.
    """
    head = session.exec(
        select(TipForward).where(_lane(lane, "state") == PENDING).order_by(col(TipForward.id)).limit(1)
    ).first()
    if head is None:
        return None
    due = utc(getattr(head, f"{lane}_next_at"))
    leased = utc(getattr(head, f"{lane}_lease_until"))
    if (due is not None and due > now) or (leased is not None and leased > now):
        return None
    claimed = session.execute(
        update(TipForward)
        .where(col(TipForward.id) == head.id, _lane(lane, "state") == PENDING)
        .where(_lane(lane, "lease_until").is_(None) | (_lane(lane, "lease_until") <= now))
        .values({f"{lane}_lease_until": now + lease})
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        return None
    session.refresh(head)
    return head


def forward_done(session: Session, *, lane: str, forward_id: int, now: datetime) -> None:
    """The lane's receiver acknowledged the forward."""
    session.execute(
        update(TipForward)
        .where(col(TipForward.id) == forward_id)
        .values(
            {
                f"{lane}_state": DONE,
                f"{lane}_sent_at": now,
                f"{lane}_lease_until": None,
                f"{lane}_error": None,
                f"{lane}_attempts": _lane(lane, "attempts") + 1,
            }
        )
    )


def forward_failed(session: Session, *, lane: str, forward_id: int, error: str, next_at: datetime) -> None:
    """The forward was not acknowledged on the lane: try again at `next_at`."""
    session.execute(
        update(TipForward)
        .where(col(TipForward.id) == forward_id)
        .values(
            {
                f"{lane}_lease_until": None,
                f"{lane}_error": error[:200],
                f"{lane}_next_at": next_at,
                f"{lane}_attempts": _lane(lane, "attempts") + 1,
            }
        )
    )


def queue_question(
    session: Session, *, tip: Tip, text: str, actor: str, now: datetime, answer_open: timedelta
) -> TipMessage:
    """Queue an operator's question to the tipster; their next message answers it (joins the tip)."""
    identity = session.get(ChannelIdentity, tip.identity_id) if tip.identity_id else None
    if identity is None or identity.opted_out or identity.address_enc is None:
        raise TipHasNoChannel(tip.id)
    message = TipMessage(
        tip_id=tip.id or 0, direction="out", text=text, actor=actor, at=now, state=QUEUED, next_attempt_at=now
    )
    session.add(message)
    tip.answer_open_until = now + answer_open
    session.add(tip)
    session.flush()
    return message


@dataclass(frozen=True)
class Question:
    """A queued operator question with what is needed to send it."""

    id: int
    tip_id: int
    text: str
    attempts: int
    channel: ChannelKind
    address_enc: str | None
    language: str
    action_code: str


def claim_questions(session: Session, *, now: datetime, lease: timedelta, limit: int = 20) -> list[Question]:
    """Due operator questions, leased to the caller."""
    rows = session.exec(
        select(TipMessage, Tip, ChannelIdentity, Action.code)
        .join(Tip, col(Tip.id) == col(TipMessage.tip_id))
        .join(Action, col(Action.id) == col(Tip.action_id))
        .outerjoin(ChannelIdentity, col(ChannelIdentity.id) == col(Tip.identity_id))
        .where(
            col(TipMessage.state) == QUEUED,
            col(TipMessage.next_attempt_at) <= now,
            (col(TipMessage.lease_until).is_(None)) | (col(TipMessage.lease_until) <= now),
        )
        .order_by(col(TipMessage.id))
        .limit(limit)
    ).all()
    out = []
    for message, tip, identity, code in rows:
        claimed = session.execute(
            update(TipMessage)
            .where(col(TipMessage.id) == message.id, col(TipMessage.state) == QUEUED)
            .values(lease_until=now + lease)
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            continue
        out.append(
            Question(
                id=message.id or 0,
                tip_id=tip.id or 0,
                text=message.text,
                attempts=message.attempts,
                channel=tip.channel,
                address_enc=identity.address_enc if identity is not None and not identity.opted_out else None,
                language=identity.language if identity is not None else tip.language,
                action_code=code,
            )
        )
    return out


def question_result(
    session: Session, *, message_id: int, sent: bool, error: str | None, next_at: datetime | None
) -> None:
    """Record a send: sent, to retry at `next_at`, or failed for good (`next_at` None)."""
    values: dict[str, Any] = {"lease_until": None, "attempts": TipMessage.attempts + 1, "error": error}
    if sent:
        values["state"] = SENT
    elif next_at is None:
        values["state"] = FAILED
    else:
        values["next_attempt_at"] = next_at
    session.execute(update(TipMessage).where(col(TipMessage.id) == message_id).values(**values))
