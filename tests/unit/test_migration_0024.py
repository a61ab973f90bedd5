"""Revision 0024 (waiting CAP changes) down and up again, on the test's database (SQLite or PostgreSQL):
the table goes with its waiting rows and comes back empty, and a migrated database takes a change again."""

from __future__ import annotations

from datetime import timedelta

from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlmodel import select

from storage.db import SessionFactory, alembic_config, downgrade, make_engine, migrate, transaction
from storage.models import CapChange, CapChangeKind
from tests.actions.conftest import draft_over_enschede, launch_over_enschede
from tests.conftest import FixedClock


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _waiting(sessions: SessionFactory, clock: FixedClock, action_id: int, identifier: str) -> None:
    with transaction(sessions) as session:
        session.add(
            CapChange(
                action_id=action_id,
                kind=CapChangeKind.UPDATE,
                text="Rode pet.",
                cap_sender="meldkamer@politie.example",
                cap_identifier=identifier,
                cap_sent=clock() - timedelta(minutes=1),
                received_at=clock(),
            )
        )


def test_0024_down_and_up_again_with_a_waiting_change(
    database_url: str, sessions: SessionFactory, clock: FixedClock
) -> None:
    action_id = draft_over_enschede(sessions, clock)
    launch_over_enschede(sessions, clock, action_id)
    _waiting(sessions, clock, action_id, "MK-1")
    downgrade(database_url, "0023")
    assert "cap_change" not in _tables(database_url)
    assert "action" in _tables(database_url)
    migrate(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM cap_change")).scalar_one() == 0
            head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head
    finally:
        engine.dispose()
    _waiting(sessions, clock, action_id, "MK-1")
    with sessions() as session:
        [change] = session.exec(select(CapChange)).all()
    assert change.cap_identifier == "MK-1"
