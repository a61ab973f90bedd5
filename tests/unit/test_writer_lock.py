"""SQLite transactions of one process take turns on a lock (storage/db.py); PostgreSQL's do not."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from storage.db import SessionFactory, make_engine, migrate, session_factory, transaction
from storage.events import record_first_time
from storage.models import ProcessedEvent

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
WAIT_S = 10.0  # only ever waited in full when the code under test is broken


@pytest.fixture
def sqlite_sessions(tmp_path: Path) -> SessionFactory:
    url = f"sqlite:///{tmp_path / 'lock.db'}"
    migrate(url)
    return session_factory(make_engine(url))


def test_a_second_writer_starts_only_when_the_first_is_done(sqlite_sessions: SessionFactory) -> None:
    first_in, first_may_end, second_in = threading.Event(), threading.Event(), threading.Event()
    order: list[str] = []

    def first() -> None:
        with transaction(sqlite_sessions) as session:
            record_first_time(session, key="sms:A", at=AT)
            first_in.set()
            assert first_may_end.wait(WAIT_S)
            order.append("first ends")

    def second() -> None:
        assert first_in.wait(WAIT_S)
        with transaction(sqlite_sessions) as session:
            second_in.set()
            order.append("second begins")
            record_first_time(session, key="sms:B", at=AT)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    assert first_in.wait(WAIT_S)
    # While the first holds its transaction, the second waits on the lock (not inside SQLite).
    assert not second_in.wait(0.3)
    first_may_end.set()
    for thread in threads:
        thread.join(WAIT_S)
    assert order == ["first ends", "second begins"]
    with sqlite_sessions() as session:
        keys = sorted(e.key for e in session.exec(ProcessedEvent.__table__.select()))  # type: ignore[attr-defined]
    assert keys == ["sms:A", "sms:B"]


def test_a_transaction_inside_another_on_the_same_thread_does_not_wait_for_itself(
    sqlite_sessions: SessionFactory,
) -> None:
    with transaction(sqlite_sessions) as outer:
        record_first_time(outer, key="sms:outer", at=AT)
        with transaction(sqlite_sessions) as inner:
            assert inner.get(ProcessedEvent, "sms:outer") is None  # not committed yet: another connection
    with sqlite_sessions() as session:
        assert session.get(ProcessedEvent, "sms:outer") is not None


def test_a_writer_that_waits_too_long_gets_the_locked_error(tmp_path: Path) -> None:
    """The router takes OperationalError for a locked database: it retries, then the webhook answers 503."""
    url = f"sqlite:///{tmp_path / 'lock.db'}"
    migrate(url)
    sqlite_sessions = session_factory(make_engine(url, lock_wait_s=0.2))
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with transaction(sqlite_sessions):
            holding.set()
            assert release.wait(WAIT_S)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(WAIT_S)
        with pytest.raises(OperationalError, match="database is locked"), transaction(sqlite_sessions):
            pytest.fail("entered a transaction while another thread held the lock")
    finally:
        release.set()
        holder.join(WAIT_S)
    with transaction(sqlite_sessions) as session:  # free again afterwards
        assert record_first_time(session, key="sms:after", at=AT)


def test_postgresql_transactions_take_no_lock_of_ours(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        sessions = session_factory(engine)
        both_in = threading.Barrier(2, timeout=WAIT_S)

        def writer(key: str) -> None:
            with transaction(sessions) as session:
                record_first_time(session, key=key, at=AT)
                both_in.wait()  # both inside their transactions at once: PostgreSQL locks rows, not files

        threads = [threading.Thread(target=writer, args=(f"sms:{n}",)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT_S)
        assert not both_in.broken
    finally:
        engine.dispose()
