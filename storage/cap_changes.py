"""Store functions for CAP changes: a CAP Update or Cancel of one of our actions, waiting for an operator.

Like the other store functions these take the caller's session and keyword-only arguments and never
commit. Deciding claims the row (waiting → sent or discarded) in the caller's transaction, so two
operators confirming at once send it once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlmodel import Session, col

from storage.models import Action, ActionStatus, CapAlertIn, CapChange, CapChangeKind, CapChangeStatus


class CapChangeNotFound(LookupError):
    """No CAP change with that id (on that action)."""


class CapChangeDecided(Exception):
    """The CAP change no longer waits: `status` says whether it was sent, thrown away, or lapsed."""

    def __init__(self, change_id: int | None, status: CapChangeStatus) -> None:
        super().__init__(f"CAP change {change_id} is {status.value}")
        self.status = status


class CapMessageSeen(Exception):
    """This CAP message (sender and identifier) was received already; `change` is what it became."""

    def __init__(self, change: CapChange) -> None:
        super().__init__(f"CAP message {change.cap_identifier} of {change.cap_sender} was received already")
        self.change = change


class CapAlertSeen(Exception):
    """This CAP Alert (sender and identifier) was received already; `action_id` is the action it became."""

    def __init__(self, alert: CapAlertIn) -> None:
        super().__init__(f"CAP alert {alert.cap_identifier} of {alert.cap_sender} was received already")
        self.action_id = alert.action_id


def add_cap_alert(
    session: Session, *, action: Action, sender: str, identifier: str, sent: datetime, now: datetime
) -> CapAlertIn:
    """Remember which action a dispatch system's CAP Alert became. Raises CapAlertSeen for an Alert
    received before (the same Alert stored at the same moment: an IntegrityError at commit)."""
    seen = cap_alert_of(session, sender=sender, identifier=identifier)
    if seen is not None:
        raise CapAlertSeen(seen)
    alert = CapAlertIn(
        action_id=action.id or 0, cap_sender=sender, cap_identifier=identifier, cap_sent=sent, received_at=now
    )
    session.add(alert)
    session.flush()
    return alert


def cap_alert_of(session: Session, *, sender: str, identifier: str) -> CapAlertIn | None:
    """The record of a CAP Alert received here (its sender and identifier), or None."""
    query = select(CapAlertIn).where(
        col(CapAlertIn.cap_sender) == sender, col(CapAlertIn.cap_identifier) == identifier
    )
    return session.scalars(query).first()


def add_cap_change(
    session: Session,
    *,
    action: Action,
    kind: CapChangeKind,
    text: str,
    instruction: str,
    sender: str,
    identifier: str,
    sent: datetime,
    now: datetime,
) -> CapChange:
    """Store a waiting change of the action. Raises CapMessageSeen for a message received before (the
    unique constraint catches the same message stored at the same moment: an IntegrityError at commit)."""
    seen = change_of_message(session, sender=sender, identifier=identifier)
    if seen is not None:
        raise CapMessageSeen(seen)
    change = CapChange(
        action_id=action.id or 0,
        kind=kind,
        text=text.strip(),
        instruction=instruction.strip(),
        cap_sender=sender,
        cap_identifier=identifier,
        cap_sent=sent,
        received_at=now,
    )
    session.add(change)
    session.flush()
    return change


def change_of_message(session: Session, *, sender: str, identifier: str) -> CapChange | None:
    """The change a CAP message (its sender and identifier) became, or None."""
    query = select(CapChange).where(
        col(CapChange.cap_sender) == sender, col(CapChange.cap_identifier) == identifier
    )
    return session.scalars(query).first()


def get_cap_change(session: Session, *, action_id: int, change_id: int) -> CapChange:
    """The CAP change with this id on this action. Raises CapChangeNotFound."""
    change = session.get(CapChange, change_id)
    if change is None or change.action_id != action_id:
        raise CapChangeNotFound(change_id)
    return change


def waiting_changes(session: Session, *, action_id: int) -> list[CapChange]:
    """The action's CAP changes still waiting for an operator, oldest first."""
    query = (
        select(CapChange)
        .where(
            col(CapChange.action_id) == action_id,
            col(CapChange.status) == CapChangeStatus.WAITING.value,
        )
        .order_by(col(CapChange.received_at), col(CapChange.id))
    )
    return list(session.scalars(query))


def actions_with_waiting_changes(session: Session) -> list[Action]:
    """Running actions with a CAP change waiting for an operator, the longest waiting first."""
    query = (
        select(Action, func.min(col(CapChange.received_at)))
        .join(CapChange, col(CapChange.action_id) == col(Action.id))
        .where(
            col(CapChange.status) == CapChangeStatus.WAITING.value,
            col(Action.status) == ActionStatus.ACTIVE.value,
        )
        .group_by(col(Action.id))
        .order_by(func.min(col(CapChange.received_at)), col(Action.id))
    )
    return [action for action, _ in session.execute(query)]


def decide_cap_change(
    session: Session,
    *,
    change: CapChange,
    status: CapChangeStatus,
    actor: str,
    now: datetime,
) -> None:
    """Mark a waiting change sent or discarded by this operator. Raises CapChangeDecided."""
    claimed = session.execute(
        update(CapChange)
        .where(col(CapChange.id) == change.id, col(CapChange.status) == CapChangeStatus.WAITING.value)
        .values(status=status.value, decided_by=actor, decided_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        now_status = session.scalar(select(col(CapChange.status)).where(col(CapChange.id) == change.id))
        raise CapChangeDecided(change.id, now_status or CapChangeStatus.DISCARDED)
    change.status, change.decided_by, change.decided_at = status, actor, now


def lapse_waiting_changes(session: Session, *, action_id: int, now: datetime) -> int:
    """The action ended: its changes still waiting can no longer be sent. Returns how many lapsed."""
    lapsed = session.execute(
        update(CapChange)
        .where(col(CapChange.action_id) == action_id, col(CapChange.status) == CapChangeStatus.WAITING.value)
        .values(status=CapChangeStatus.LAPSED.value, decided_at=now)
    )
    return int(lapsed.rowcount)  # type: ignore[attr-defined]
