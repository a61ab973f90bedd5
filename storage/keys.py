"""Key rotation: re-encrypt every encrypted column with DATA_KEY's newest key, and re-hash every look-up
hash with LOOKUP_KEY's newest key, both in resumable batches.

The procedures (docs/production.md): put a new key first in DATA_KEY (or LOOKUP_KEY) and restart, so
that new values are written with it while the older keys still decrypt (or are still recognised); then
run `run_bot.py rotate-data-key` (or `rehash-lookups`, which the scheduler also runs every night while
LOOKUP_KEY lists more than one key); then drop the older keys. A hash is recomputed from the value it
hashes, so only what is stored encrypted can be re-hashed: an opt-out kept as a hash alone stays under
the key it was made with (see `rehash_lookups`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, ColumnElement, Table, and_, delete, func, or_, select, update

from storage.crypto import DataKeyError, DataVault
from storage.db import SessionFactory, transaction
from storage.models import (
    ActionPhoto,
    ChannelIdentity,
    OptOut,
    OutboundMessage,
    Participant,
    PhoneVerification,
    Tip,
    TipMedia,
    WebSignup,
)
from storage.participants import canonical_address

log = logging.getLogger(__name__)

# Every column that holds a DataVault token; a table with encrypted columns adds them here.
ENCRYPTED_COLUMNS: tuple[tuple[Table, tuple[str, ...]], ...] = (
    (Participant.__table__, ("name_enc", "phone_enc")),  # type: ignore[attr-defined]
    (ChannelIdentity.__table__, ("address_enc",)),  # type: ignore[attr-defined]
    (Tip.__table__, ("phone_enc",)),  # type: ignore[attr-defined]
    (TipMedia.__table__, ("data_enc",)),  # type: ignore[attr-defined]
    (PhoneVerification.__table__, ("message_enc", "phone_enc")),  # type: ignore[attr-defined]
    (ActionPhoto.__table__, ("data_enc",)),  # type: ignore[attr-defined]
    (OutboundMessage.__table__, ("message_enc", "recipient_enc")),  # type: ignore[attr-defined]
    (WebSignup.__table__, ("data_enc",)),  # type: ignore[attr-defined]
)
# Rows per batch where a value can be megabytes (a tip's photo): a batch is held in memory at once.
LARGE_VALUE_BATCH = {"tip_media": 10, "action_photo": 10}


@dataclass(frozen=True)
class RotationReport:
    """What a rotation did: rows read, values re-encrypted, values left alone because they changed."""

    rows: int = 0
    values: int = 0
    skipped: int = 0


def rotate_data_key(
    sessions: SessionFactory,
    *,
    vault: DataVault,
    batch_size: int = 500,
    columns: Sequence[tuple[Table, tuple[str, ...]]] = ENCRYPTED_COLUMNS,
) -> RotationReport:
    """Re-encrypt every encrypted value with the vault's newest key; one transaction per batch.

    Safe while the system runs: a row is only written if its tokens are still the ones read, so a value
    changed or erased meanwhile is never overwritten (it was written with the newest key anyway).
    Running it again is harmless. Raises DataKeyError naming the table, column and row of a value that
    no key in DATA_KEY opens.
    """
    rows = values = skipped = 0
    for table, names in columns:
        # The one-column primary key: `id`, or `action_id` for an action's photo.
        key: Column[int] = next(iter(table.primary_key.columns))
        cols = [table.c[name] for name in names]
        after = 0
        size = min(batch_size, LARGE_VALUE_BATCH.get(table.name, batch_size))
        while True:
            with transaction(sessions) as session:
                batch = session.execute(
                    select(key, *cols)
                    .where(key > after, or_(*(c.is_not(None) for c in cols)))
                    .order_by(key)
                    .limit(size)
                ).all()
                for row in batch:
                    old = dict(zip(names, row[1:], strict=True))
                    new = {
                        name: _rotated(vault, token, table.name, name, row[0]) for name, token in old.items()
                    }
                    unchanged = and_(key == row[0], *(_same(table.c[n], t) for n, t in old.items()))
                    result = session.execute(update(table).where(unchanged).values(**new))
                    if result.rowcount == 1:  # type: ignore[attr-defined]
                        values += sum(1 for t in old.values() if t is not None)
                    else:
                        skipped += 1
                rows += len(batch)
            if len(batch) < size:
                break
            after = batch[-1][0]
        log.info("data key rotation: %s done", table.name)
    return RotationReport(rows=rows, values=values, skipped=skipped)


def _same(column: Column[str], token: str | None) -> ColumnElement[bool]:
    return column.is_(None) if token is None else column == token


def _rotated(vault: DataVault, token: str | None, table: str, column: str, row_id: int) -> str | None:
    if token is None:
        return None
    try:
        return vault.rotate(token)
    except Exception as exc:  # cryptography's InvalidToken: no key in DATA_KEY opens it
        raise DataKeyError(f"{table}.{column} of row {row_id} cannot be decrypted with DATA_KEY") from exc


@dataclass(frozen=True)
class RehashReport:
    """What a re-hash did: hashes moved to the newest lookup key, and hashes it cannot recompute."""

    identities: int = 0
    participants: int = 0
    opt_outs: int = 0
    tips: int = 0
    hash_only: int = 0


def rehash_lookups(sessions: SessionFactory, *, vault: DataVault, batch_size: int = 500) -> RehashReport:
    """Recompute every stored look-up hash under the vault's newest lookup key; one transaction per batch.

    An identity's hash follows from its encrypted address, a participant's from the encrypted number;
    an opt-out record and a tip's sender hash follow the identity or participant that had the same
    hash. What is kept as a hash alone (an opted-out identity, an opt-out of an erased person) has no
    value to hash again: it is counted as `hash_only` and stays recognised while its key is listed.
    Safe while the system runs (a row changed meanwhile is left alone) and harmless to run again.
    """
    identities = participants = opt_outs = tips = 0
    table: Table = ChannelIdentity.__table__  # type: ignore[attr-defined]
    after = 0
    while True:
        with transaction(sessions) as session:
            batch = session.execute(
                select(table.c.id, table.c.channel, table.c.address_hash, table.c.address_enc)
                .where(table.c.id > after, table.c.address_enc.is_not(None))
                .order_by(table.c.id)
                .limit(batch_size)
            ).all()
            for row_id, channel, old, token in batch:
                new = vault.lookup_hash(
                    canonical_address(channel, _decrypted(vault, token, "channel_identity", row_id))
                )
                if new == old:
                    continue
                taken = select(table.c.id).where(table.c.channel == channel, table.c.address_hash == new)
                moved = session.execute(
                    update(table)
                    .where(table.c.id == row_id, table.c.address_hash == old, ~taken.exists())
                    .values(address_hash=new)
                )
                if moved.rowcount != 1:  # type: ignore[attr-defined]
                    continue
                identities += 1
                tips += _follow(session, Tip.__table__.c.sender_hash, f"{channel}:{old}", f"{channel}:{new}")  # type: ignore[attr-defined]
                opt_outs += _follow(session, OptOut.__table__.c.phone_hash, old, new)  # type: ignore[attr-defined]
        if len(batch) < batch_size:
            break
        after = batch[-1][0]
    people: Table = Participant.__table__  # type: ignore[attr-defined]
    after = 0
    while True:
        with transaction(sessions) as session:
            batch = session.execute(
                select(people.c.id, people.c.phone_hash, people.c.phone_enc)
                .where(people.c.id > after, people.c.phone_enc.is_not(None))
                .order_by(people.c.id)
                .limit(batch_size)
            ).all()
            for row_id, old, token in batch:
                new = vault.lookup_hash(_decrypted(vault, token, "participant", row_id))
                if new == old:
                    continue
                moved = session.execute(
                    update(people)
                    .where(people.c.id == row_id, _same(people.c.phone_hash, old))
                    .values(phone_hash=new)
                )
                if moved.rowcount == 1:  # type: ignore[attr-defined]
                    participants += 1
                    if old is not None:
                        opt_outs += _follow(session, OptOut.__table__.c.phone_hash, old, new)  # type: ignore[attr-defined]
        if len(batch) < batch_size:
            break
        after = batch[-1][0]
    with transaction(sessions) as session:
        hash_only = session.execute(
            select(func.count()).select_from(table).where(table.c.address_enc.is_(None))
        ).scalar_one()
    log.info("lookup re-hash: %s identities, %s participants moved", identities, participants)
    return RehashReport(
        identities=identities, participants=participants, opt_outs=opt_outs, tips=tips, hash_only=hash_only
    )


def _follow(session: Any, column: Column[str], old: str, new: str) -> int:
    """Move rows that carry an old hash to the new one, unless a row with the new one exists."""
    table = column.table
    if column.primary_key and session.execute(select(column).where(column == new)).first() is not None:
        gone = session.execute(delete(table).where(column == old))
        return int(gone.rowcount or 0)
    moved = session.execute(update(table).where(column == old).values({column.name: new}))
    return int(moved.rowcount or 0)


def _decrypted(vault: DataVault, token: str, table: str, row_id: int) -> str:
    try:
        return vault.decrypt(token)
    except DataKeyError as exc:
        raise DataKeyError(f"{table} row {row_id} cannot be decrypted with DATA_KEY") from exc
