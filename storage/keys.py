"""DATA_KEY rotation: re-encrypt every encrypted column with the newest key, in resumable batches.

The procedure (docs/production.md): put a new key first in DATA_KEY and restart, so that new values are
written with it while every older key still decrypts; then run this once (`run_bot.py rotate-data-key`);
then keys between the first and the last may be dropped. The last key stays: it is the root of the
look-up hashes (phone numbers, chat ids, opt-outs), which cannot be recomputed without the numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Column, ColumnElement, Table, and_, or_, select, update

from storage.crypto import DataKeyError, DataVault
from storage.db import SessionFactory, transaction
from storage.models import ChannelIdentity, Participant, PhoneVerification, Tip

log = logging.getLogger(__name__)

# Every column that holds a DataVault token; a table with encrypted columns adds them here.
ENCRYPTED_COLUMNS: tuple[tuple[Table, tuple[str, ...]], ...] = (
    (Participant.__table__, ("name_enc", "phone_enc")),  # type: ignore[attr-defined]
    (ChannelIdentity.__table__, ("address_enc",)),  # type: ignore[attr-defined]
    (Tip.__table__, ("phone_enc",)),  # type: ignore[attr-defined]
    (PhoneVerification.__table__, ("message_enc", "phone_enc")),  # type: ignore[attr-defined]
)


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
        key: Column[int] = table.c.id
        cols = [table.c[name] for name in names]
        after = 0
        while True:
            with transaction(sessions) as session:
                batch = session.execute(
                    select(key, *cols)
                    .where(key > after, or_(*(c.is_not(None) for c in cols)))
                    .order_by(key)
                    .limit(batch_size)
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
            if len(batch) < batch_size:
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
