"""Closing an action, shared by the REST API and the control room so both audit and count alike."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from storage.actions import (
    ClosingAudience,
    close_action,
    closing_audience,
    get_action,
    tipster_identity_ids,
)
from storage.models import ActionOutcome
from storage.participants import audit


def closing_audience_of(session: Session, *, action_id: int) -> ClosingAudience:
    """How many closing messages closing the action now would queue. Raises ActionNotFound."""
    action = get_action(session, action_id=action_id)
    return closing_audience(
        session, action=action, tipster_identities=tipster_identity_ids(session, action_id=action_id)
    )


def close(
    session: Session,
    *,
    action_id: int,
    outcome: ActionOutcome,
    closing_text: str,
    now: datetime,
    actor: str,
) -> int:
    """End the action, queue the closing messages and audit it; returns how many were queued.

    Raises ActionNotFound or ActionStateError; the caller owns the transaction and wakes the dispatcher.
    """
    action = get_action(session, action_id=action_id)
    queued = close_action(
        session,
        action=action,
        outcome=outcome,
        closing_text=closing_text,
        now=now,
        tipster_identities=tipster_identity_ids(session, action_id=action_id),
    )
    audit(
        session,
        now=now,
        actor=actor,
        event="action_closed",
        subject=f"action:{action_id}",
        detail={"outcome": outcome.value, "closing_messages": queued},
    )
    return queued
