"""Store functions for reconfirmation: who is due, who was asked, who answered.

A participant last confirmed more than `reconfirm_after_days` ago is asked once, reminded on set days,
and expires `expire_after_days` after the question. Only an explicit JA answers the question; the
open question is a `ReconfirmRequest` row, gone once answered or expired. Functions never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from storage.models import Participant, ParticipantStatus, ReconfirmRequest
from storage.participants import audit


def aware(moment: datetime) -> datetime:
    """A datetime as timezone-aware UTC (SQLite hands back naive values)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def last_confirmed(participant: Participant) -> datetime:
    """When the participant last said they want to take part (confirmation, else consent, else sign-up)."""
    return aware(participant.confirmed_at or participant.consent_at or participant.created_at)


def due_for_question(session: Session, *, now: datetime, after_days: int, limit: int) -> list[Participant]:
    """Active participants confirmed longer ago than `after_days` and not asked yet, oldest first."""
    cutoff = now - timedelta(days=after_days)
    confirmed = func.coalesce(
        col(Participant.confirmed_at), col(Participant.consent_at), col(Participant.created_at)
    )
    asked = select(ReconfirmRequest.participant_id)
    return list(
        session.exec(
            select(Participant)
            .where(
                Participant.status == ParticipantStatus.ACTIVE,
                confirmed <= cutoff,
                col(Participant.id).not_in(asked),
            )
            .order_by(confirmed, col(Participant.id))
            .limit(limit)
        )
    )


def due_for_reminder(
    session: Session, *, now: datetime, reminder_days: Sequence[int], limit: int
) -> list[ReconfirmRequest]:
    """Open questions whose next reminder day has come, oldest question first."""
    days = sorted(reminder_days)
    if not days:
        return []
    candidates = session.exec(
        select(ReconfirmRequest)
        .where(
            col(ReconfirmRequest.reminders) < len(days),
            col(ReconfirmRequest.expires_at) > now,
            col(ReconfirmRequest.asked_at) <= now - timedelta(days=days[0]),
        )
        .order_by(col(ReconfirmRequest.asked_at))
    )
    due: list[ReconfirmRequest] = []
    for request in candidates:
        if aware(request.asked_at) + timedelta(days=days[request.reminders]) <= now:
            due.append(request)
            if len(due) >= limit:
                break
    return due


def due_for_expiry(session: Session, *, now: datetime, limit: int) -> list[ReconfirmRequest]:
    """Open questions nobody answered in time."""
    return list(
        session.exec(
            select(ReconfirmRequest)
            .where(col(ReconfirmRequest.expires_at) <= now)
            .order_by(col(ReconfirmRequest.expires_at))
            .limit(limit)
        )
    )


def sent_since(session: Session, *, since: datetime) -> int:
    """How many questions and reminders went out since a moment (for the per-minute cap)."""
    return int(
        session.exec(
            select(func.count())
            .select_from(ReconfirmRequest)
            .where(col(ReconfirmRequest.last_sent_at) >= since)
        ).one()
    )


def open_request(session: Session, *, participant_id: int) -> ReconfirmRequest | None:
    """The participant's unanswered question, if any."""
    return session.get(ReconfirmRequest, participant_id)


def record_question(
    session: Session, *, participant: Participant, now: datetime, expire_after_days: int, sent: bool
) -> ReconfirmRequest:
    """Note that the question was asked (`sent` False: due, but there is no way to reach them)."""
    assert participant.id is not None
    request = ReconfirmRequest(
        participant_id=participant.id,
        asked_at=now,
        expires_at=now + timedelta(days=expire_after_days),
        last_sent_at=now if sent else None,
    )
    session.add(request)
    session.flush()
    audit(
        session,
        now=now,
        actor="scheduler",
        event="reconfirm_asked",
        subject=f"participant:{participant.id}",
        detail={"sent": sent},
    )
    return request


def record_reminder(session: Session, *, request: ReconfirmRequest, now: datetime, sent: bool) -> None:
    """Note that a reminder went out (or was due with nobody to send it to)."""
    request.reminders += 1
    if sent:
        request.last_sent_at = now
    session.add(request)
    session.flush()


def confirm(session: Session, *, participant: Participant, now: datetime) -> bool:
    """The participant said JA: they stay for another period. False when no question was open."""
    assert participant.id is not None
    removed = session.execute(
        delete(ReconfirmRequest).where(col(ReconfirmRequest.participant_id) == participant.id)
    )
    if not getattr(removed, "rowcount", 0):
        return False
    participant.confirmed_at = now
    session.add(participant)
    session.flush()
    audit(session, now=now, actor="participant", event="reconfirmed", subject=f"participant:{participant.id}")
    return True


def close_request(session: Session, *, participant_id: int) -> None:
    """Forget a question (the participant left or expired)."""
    session.execute(delete(ReconfirmRequest).where(col(ReconfirmRequest.participant_id) == participant_id))
