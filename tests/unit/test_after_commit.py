"""`storage.db.after_commit`: a call runs once after its transaction commits, never after a rollback."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from storage.db import SessionFactory, after_commit, transaction
from storage.events import record_first_time

AT = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def test_a_call_runs_once_after_the_commit(sessions: SessionFactory) -> None:
    calls: list[str] = []

    def rung() -> None:
        calls.append("rung")

    with transaction(sessions) as session:
        record_first_time(session, key="sms:after-commit", at=AT)
        after_commit(session, rung)
        after_commit(session, rung)  # asked twice in one transaction: still once
        assert calls == []
    assert calls == ["rung"]
    with transaction(sessions) as session:
        record_first_time(session, key="sms:after-commit-2", at=AT)
    assert calls == ["rung"], "a later transaction of another session does not run it again"


def test_a_rolled_back_transaction_runs_nothing_and_forgets_the_call(sessions: SessionFactory) -> None:
    calls: list[str] = []
    session = sessions()
    try:
        record_first_time(session, key="sms:rolled-back", at=AT)
        after_commit(session, lambda: calls.append("rung"))
        session.rollback()
        record_first_time(session, key="sms:then-committed", at=AT)
        session.commit()
    finally:
        session.close()
    assert calls == []


def test_a_failing_block_runs_nothing(sessions: SessionFactory) -> None:
    calls: list[str] = []
    with pytest.raises(RuntimeError), transaction(sessions) as session:
        record_first_time(session, key="sms:failing", at=AT)
        after_commit(session, lambda: calls.append("rung"))
        raise RuntimeError("the step failed")
    assert calls == []
