"""Migrations: upgrade from empty to head, downgrade one step, and back up again."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlmodel import SQLModel

import storage.models  # noqa: F401
from storage.db import alembic_config, downgrade, make_engine, migrate


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_from_empty_creates_every_model_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate(url)
    assert _tables(url) == set(SQLModel.metadata.tables)


def _columns(url: str) -> set[tuple[str, str]]:
    engine = make_engine(url)
    try:
        found = inspect(engine)
        return {
            (table, column["name"])
            for table in set(found.get_table_names()) - {"alembic_version"}
            for column in found.get_columns(table)
        }
    finally:
        engine.dispose()


def test_downgrade_one_step_and_up_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate(url)
    script = ScriptDirectory.from_config(alembic_config(url))
    head = script.get_revision(script.get_current_head())
    before = _columns(url)
    downgrade(url, "-1")
    after = _columns(url)
    # Compare columns, not only tables: a step may add columns to tables that were there or drop some.
    assert after != before or head.down_revision is None and after == set()
    migrate(url)
    assert _columns(url) == before


def test_migrations_form_one_line(tmp_path: Path) -> None:
    script = ScriptDirectory.from_config(alembic_config(f"sqlite:///{tmp_path / 'm.db'}"))
    assert len(script.get_heads()) == 1


def test_models_and_migrations_agree(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_reach_backfill_derives_the_rows_of_existing_participants(tmp_path: Path) -> None:
    from datetime import UTC, datetime, time

    import sqlalchemy as sa
    from sqlalchemy import insert, select

    from storage.models import Address, Participant
    from storage.reach import REACH, source_query

    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate(url, "0004")
    now = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
    people = [(1, "active", "sms"), (2, "active", "telegram"), (3, "expired", None)]
    identities = [(1, 1, "sms", False, "x"), (2, 1, "telegram", False, "y"), (3, 2, "telegram", True, "z")]
    identities += [(4, 2, "whatsapp", False, None), (5, 3, "sms", False, "w")]
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(Participant.__table__),  # type: ignore[attr-defined]
                [
                    {"id": i, "status": s, "preferred_channel": c, "language": "nl", "created_at": now}
                    for i, s, c in people
                ],
            )
            # Only the columns of revision 0004 (the model has more by now).
            old_identity = sa.table(
                "channel_identity",
                *(sa.column(n) for n in ("id", "participant_id", "channel", "address_hash", "address_enc")),
                *(sa.column(n) for n in ("opted_out", "language", "created_at", "last_inbound_at")),
            )
            conn.execute(
                insert(old_identity),
                [
                    {"id": i, "participant_id": p, "channel": c, "address_hash": f"h{i}", "address_enc": enc}
                    | {"opted_out": out, "language": "nl", "created_at": now, "last_inbound_at": now}
                    for i, p, c, out, enc in identities
                ],
            )
            base = {"postcode": "7511 AB", "house_number": 1, "municipality_code": "0153"}
            base |= {"municipality_name": "Enschede", "place": "Enschede", "lat": 52.22, "lon": 6.89}
            conn.execute(
                insert(Address.__table__),  # type: ignore[attr-defined]
                [
                    base | {"participant_id": 1, "slot": 1},
                    base
                    | {"participant_id": 1, "slot": 2, "window_days": "12345", "window_start": time(9)}
                    | {"window_end": time(17), "lon": 6.95},
                    base | {"participant_id": 2, "slot": 1},
                    base | {"participant_id": 3, "slot": 1},
                ],
            )
        migrate(url)
        with engine.connect() as conn:
            rows = set(conn.execute(select(REACH)).all())
            expected = set(conn.execute(source_query()).all())
    finally:
        engine.dispose()
    # Participant 1: two addresses x two identities; participant 2 has only an opted-out or erased one.
    assert len(rows) == 4
    assert {r.participant_id for r in rows} == {1}
    assert {tuple(r) for r in rows} == {tuple(r) for r in expected}


def test_a_phone_number_never_heard_from_is_unverified_after_the_upgrade(tmp_path: Path) -> None:
    """Numbers typed in a chat before codes existed lose their alerts until their owner writes.

    The columns are added in place: SQLite's table copy would drop the old table and cascade into every
    row that points at an identity (reach, conversations).
    """
    from datetime import UTC, datetime

    import sqlalchemy as sa
    from sqlalchemy import insert, select

    from storage.models import Address, ConversationState, Participant
    from storage.reach import REACH

    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate(url, "0004")
    now = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
    old_identity = sa.table(
        "channel_identity",
        *(sa.column(n) for n in ("id", "participant_id", "channel", "address_hash", "address_enc")),
        *(sa.column(n) for n in ("opted_out", "language", "created_at", "last_inbound_at")),
    )
    person = {"id": 1, "status": "active", "preferred_channel": "sms", "language": "nl", "created_at": now}
    place = {"postcode": "7511 AB", "house_number": 1, "municipality_code": "0153"}
    place |= {"municipality_name": "Enschede", "place": "Enschede", "lat": 52.22, "lon": 6.89}
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(Participant.__table__), [person])  # type: ignore[attr-defined]
            # 1: typed in a Telegram chat, never wrote to us; 2: that chat; 3: a number that wrote.
            conn.execute(
                insert(old_identity),
                [
                    {"id": i, "participant_id": 1, "channel": c, "address_hash": f"h{i}", "address_enc": "x"}
                    | {"opted_out": False, "language": "nl", "created_at": now, "last_inbound_at": seen}
                    for i, c, seen in [(1, "sms", None), (2, "telegram", now), (3, "whatsapp", now)]
                ],
            )
            conn.execute(insert(Address.__table__), [place | {"participant_id": 1, "slot": 1}])  # type: ignore[attr-defined]
            conn.execute(
                insert(ConversationState.__table__),  # type: ignore[attr-defined]
                [{"identity_id": 2, "flow": "address", "step": "choose", "data": {}, "updated_at": now}],
            )
        migrate(url)
        with engine.connect() as conn:
            verified = dict(conn.execute(sa.text("SELECT id, verified FROM channel_identity")).all())
            reach = {r.identity_id for r in conn.execute(select(REACH)).all()}
            states = conn.execute(sa.text("SELECT count(*) FROM conversation_state")).scalar_one()
    finally:
        engine.dispose()
    assert {k: bool(v) for k, v in verified.items()} == {1: False, 2: True, 3: True}
    assert reach == {2, 3}
    assert states == 1
