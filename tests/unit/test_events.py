"""Provider events recorded once, in the caller's transaction (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from storage.db import SessionFactory, make_engine, session_factory, transaction
from storage.events import record_first_time
from storage.models import ProcessedEvent

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _check(sessions: SessionFactory) -> None:
    with transaction(sessions) as session:
        assert record_first_time(session, key="sms:SM1", at=AT)
        assert not record_first_time(session, key="sms:SM1", at=AT)  # the same step, again
    with transaction(sessions) as session:
        assert not record_first_time(session, key="sms:SM1", at=AT)  # a provider's retry
    with pytest.raises(RuntimeError), transaction(sessions) as session:
        assert record_first_time(session, key="sms:SM2", at=AT)
        raise RuntimeError("the step failed")
    with transaction(sessions) as session:
        assert record_first_time(session, key="sms:SM2", at=AT)  # rolled back: the retry is handled
    with sessions() as session:
        assert sorted(e.key for e in session.exec(ProcessedEvent.__table__.select())) == [
            "sms:SM1",
            "sms:SM2",
        ]  # type: ignore[attr-defined]


def test_an_event_is_recorded_once_on_sqlite(sessions: SessionFactory) -> None:
    _check(sessions)


def test_an_event_is_recorded_once_on_postgresql(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        _check(session_factory(engine))
    finally:
        engine.dispose()
