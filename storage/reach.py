"""The reach table: who can be alerted where, derived from participants, identities and addresses.

One row per address and reachable identity (not opted out, not erased) of an active participant, with
what selection needs (point, window, channel, preferred channel, language, last inbound message), so
that `storage.targeting` reads one covering index instead of three tables.

How it stays in step with its sources:
* sessions from `storage.db.session_factory` refresh, after every flush, the rows of each person whose
  participant, identity or address that flush wrote (registration, address changes, erasure, STOP and
  START, linking, language: every ORM write, including those the flows make directly);
* the few writes that bypass the ORM call the functions here (`touch_reach` for the last inbound
  message, `forget_identity_reach` for an opt-out the dispatcher learns from a provider);
* deleting an address, identity or participant cascades in the database.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    Integer,
    Table,
    and_,
    bindparam,
    cast,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import UOWTransaction, sessionmaker
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import Delete, Insert, Update
from sqlalchemy.sql.elements import BindParameter

from storage.models import Address, ChannelIdentity, Participant, ParticipantStatus, ReachPoint

CELLS_PER_DEGREE = 100
REACH: Table = ReachPoint.__table__  # type: ignore[attr-defined]
_ADDRESS: Table = Address.__table__  # type: ignore[attr-defined]
_PARTICIPANT: Table = Participant.__table__  # type: ignore[attr-defined]
_IDENTITY: Table = ChannelIdentity.__table__  # type: ignore[attr-defined]
_COLUMNS = (
    "address_id",
    "identity_id",
    "participant_id",
    "lon_cell",
    "lat",
    "lon",
    "municipality_code",
    "window_days",
    "window_start",
    "window_end",
    "channel",
    "preferred_channel",
    "language",
    "last_inbound_at",
)


def lon_cells(lon_min: float, lon_max: float) -> list[int]:
    """The longitude strips that hold every point between two longitudes.

    The database computes a row's strip with a CAST, which truncates on SQLite and rounds on PostgreSQL:
    one strip of margin on each side covers both.
    """
    return list(range(math.floor(lon_min * CELLS_PER_DEGREE) - 1, math.floor(lon_max * CELLS_PER_DEGREE) + 2))


def source_query(participant_ids: Collection[int] | None = None) -> Select[Any]:
    """The reach rows as they follow from the source tables (all of them, or those of some people)."""
    a, p, i = _ADDRESS.c, _PARTICIPANT.c, _IDENTITY.c
    query = (
        select(
            a.id,
            i.id,
            p.id,
            cast(a.lon * CELLS_PER_DEGREE, Integer),
            a.lat,
            a.lon,
            a.municipality_code,
            a.window_days,
            a.window_start,
            a.window_end,
            i.channel,
            p.preferred_channel,
            p.language,
            i.last_inbound_at,
        )
        .select_from(_ADDRESS)
        .join(_PARTICIPANT, and_(p.id == a.participant_id, p.status == ParticipantStatus.ACTIVE.value))
        .join(
            _IDENTITY,
            and_(
                i.participant_id == a.participant_id,
                i.opted_out.is_(False),
                i.address_enc.is_not(None),
                i.verified.is_(True),
            ),
        )
    )
    if participant_ids is not None:
        query = query.where(a.participant_id.in_(sorted(participant_ids)))
    return query


def refresh_reach(connection: Connection, *, participant_ids: Collection[int]) -> None:
    """Rebuild the reach rows of some people from the source tables."""
    if not participant_ids:
        return
    params = {"b_ids": sorted(participant_ids)}
    forget, derive = _refresh_statements()
    connection.execute(forget, params)
    connection.execute(derive, params)


@cache
def _refresh_statements() -> tuple[Delete, Insert]:
    # Built on first use and kept (a refresh follows every flush that writes a person): building the
    # INSERT … SELECT cost more than running it.
    ids: BindParameter[list[int]] = bindparam("b_ids", expanding=True)
    forget = delete(REACH).where(REACH.c.participant_id.in_(ids))
    derive = insert(REACH).from_select(_COLUMNS, source_query().where(_ADDRESS.c.participant_id.in_(ids)))
    return forget, derive


def rebuild_reach(connection: Connection) -> int:
    """Rebuild the whole table from the source tables (after a bulk load); returns the rows written."""
    connection.execute(delete(REACH))
    connection.execute(insert(REACH).from_select(_COLUMNS, source_query()))
    return int(connection.scalar(select(func.count()).select_from(REACH)) or 0)


def touch_reach(connection: Connection, *, identity_id: int, at: datetime) -> None:
    """Carry an identity's last inbound message over to its reach rows (WhatsApp's 24-hour window)."""
    connection.execute(_touch_statement(), {"b_identity_id": identity_id, "b_at": at})


@cache
def _touch_statement() -> Update:
    # Once per message: built on first use and kept.
    return (
        update(REACH)
        .where(REACH.c.identity_id == bindparam("b_identity_id"))
        .values(last_inbound_at=bindparam("b_at"))
    )


def forget_identity_reach(connection: Connection, *, identity_id: int) -> None:
    """Drop an identity's reach rows (it opted out, written without the ORM)."""
    connection.execute(delete(REACH).where(REACH.c.identity_id == identity_id))


def keep_reach(factory: sessionmaker[Any]) -> None:
    """Make every session of a factory refresh the reach rows of the people each flush wrote."""
    event.listen(factory, "after_flush", _after_flush)


def _touched_people(objects: Iterable[object]) -> set[int]:
    ids: set[int] = set()
    for obj in objects:
        if isinstance(obj, Participant):
            if obj.id is not None:
                ids.add(obj.id)
        elif isinstance(obj, ChannelIdentity | Address):
            if obj.participant_id is not None:
                ids.add(obj.participant_id)
            # An identity moved to another person (or unlinked) leaves its old person's rows stale too.
            history = inspect(obj).attrs.participant_id.history
            ids.update(pid for pid in history.deleted or () if pid is not None)
    return ids


def _after_flush(session: OrmSession, _context: UOWTransaction) -> None:
    # The new/dirty/deleted sets and attribute histories still describe what this flush wrote.
    dirty = (obj for obj in session.dirty if session.is_modified(obj, include_collections=False))
    people = _touched_people([*session.new, *dirty, *session.deleted])
    if people:
        # The connection, not session.execute: a statement on the session would try to flush again.
        refresh_reach(session.connection(), participant_ids=people)
