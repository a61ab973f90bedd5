"""Provider events handled once: the key of each (Twilio MessageSid, Telegram update_id) recorded."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from storage.models import ProcessedEvent

_EVENTS: Table = ProcessedEvent.__table__  # type: ignore[attr-defined]


def record_first_time(session: Session, *, key: str, at: datetime) -> bool:
    """Record an event's key in the session's transaction; False when it was recorded before.

    One INSERT … ON CONFLICT DO NOTHING instead of a look-up and an insert: on PostgreSQL a concurrent
    transaction that inserted the same key first makes this one wait for its outcome, so a provider's
    retry handled by two workers at once is still handled by one.
    """
    dialect = session.connection().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(_EVENTS)
        .values(key=key, at=at)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(_EVENTS.c.key)  # the driver's rowcount of an INSERT is not reliable (psycopg: -1)
    )
    return session.connection().execute(statement).first() is not None
