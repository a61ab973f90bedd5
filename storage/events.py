"""Provider events handled once: the key of each (Twilio MessageSid, Telegram update_id) recorded."""

from __future__ import annotations

from datetime import datetime
from functools import cache

from sqlalchemy import Table, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert
from sqlmodel import Session

from storage.models import ProcessedEvent

_EVENTS: Table = ProcessedEvent.__table__  # type: ignore[attr-defined]


def record_first_time(session: Session, *, key: str, at: datetime) -> bool:
    """Record an event's key in the session's transaction; False when it was recorded before.

    One INSERT … ON CONFLICT DO NOTHING instead of a look-up and an insert: on PostgreSQL a concurrent
    transaction that inserted the same key first makes this one wait for its outcome, so a provider's
    retry handled by two workers at once is still handled by one.
    """
    connection = session.connection()
    statement = _record_statement(connection.dialect.name)
    return connection.execute(statement, {"b_key": key, "b_at": at}).first() is not None


@cache
def _record_statement(dialect: str) -> Insert:
    # Built once per dialect: building it cost a third of running it.
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(_EVENTS)
        .values(key=bindparam("b_key"), at=bindparam("b_at"))
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(_EVENTS.c.key)  # the driver's rowcount of an INSERT is not reliable (psycopg: -1)
    )
