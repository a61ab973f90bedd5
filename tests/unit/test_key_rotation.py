"""DATA_KEY rotation: after `rotate_data_key` the newest key alone opens every value; hashes survive."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import select

from storage.crypto import DataKeyError, DataVault, new_data_key
from storage.db import SessionFactory, transaction
from storage.keys import rotate_data_key
from storage.models import ChannelIdentity, Participant, ParticipantStatus
from storage.vocabulary import ChannelKind

NOW = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
PEOPLE = [
    pytest.param("Wilhelmina", "+31613572468", id="name-and-phone"),
    pytest.param(None, "+31624681357", id="no-name"),
]


def seed(sessions: SessionFactory, vault: DataVault, count: int) -> list[tuple[str | None, str]]:
    """`count` participants, each with a name (every other one), phone and an SMS identity."""
    people = [(f"Naam{n}" if n % 2 else None, f"+3161{n:07d}") for n in range(count)]
    with transaction(sessions) as session:
        for name, phone in people:
            person = Participant(
                status=ParticipantStatus.ACTIVE,
                name_enc=vault.encrypt(name) if name else None,
                phone_enc=vault.encrypt(phone),
                phone_hash=vault.lookup_hash(phone),
                created_at=NOW,
            )
            session.add(person)
            session.flush()
            session.add(
                ChannelIdentity(
                    participant_id=person.id,
                    channel=ChannelKind.SMS,
                    address_hash=vault.lookup_hash(f"sms:{phone}"),
                    address_enc=vault.encrypt(phone),
                    created_at=NOW,
                )
            )
        # An erased person: nothing to rotate, and nothing may come back.
        session.add(Participant(status=ParticipantStatus.UNSUBSCRIBED, created_at=NOW))
    return people


def stored(sessions: SessionFactory, vault: DataVault) -> list[tuple[str | None, str | None, str | None]]:
    """(name, phone, identity address) of every participant, decrypted with `vault`."""

    def opened(token: str | None) -> str | None:
        return vault.decrypt(token) if token is not None else None

    with sessions() as session:
        people = list(session.exec(select(Participant).order_by(Participant.id)))  # type: ignore[arg-type]
        addresses = {i.participant_id: i.address_enc for i in session.exec(select(ChannelIdentity))}
        return [(opened(p.name_enc), opened(p.phone_enc), opened(addresses.get(p.id))) for p in people]


@pytest.mark.parametrize("batch_size", [pytest.param(1, id="batch-1"), pytest.param(7, id="batch-7"),
                                        pytest.param(500, id="batch-500")])  # fmt: skip
def test_rotation_re_encrypts_every_value_with_the_newest_key(
    sessions: SessionFactory, batch_size: int
) -> None:
    old_key, new_key = new_data_key(), new_data_key()
    old = DataVault(old_key)
    people = seed(sessions, old, 20)
    before = stored(sessions, old)
    rotating = DataVault(f"{new_key},{old_key}")

    report = rotate_data_key(sessions, vault=rotating, batch_size=batch_size)

    assert (report.rows, report.values, report.skipped) == (40, 20 + 10 + 20, 0)
    # The new key alone opens everything, and it is the same data.
    assert stored(sessions, DataVault(new_key)) == before
    assert before[-1] == (None, None, None)
    with pytest.raises(DataKeyError):
        stored(sessions, old)
    # Without LOOKUP_KEY the look-up hashes are keyed by the oldest key: still found after the rotation.
    assert all(rotating.lookup_hash(phone) == old.lookup_hash(phone) for _, phone in people)
    # Running it again is harmless.
    assert rotate_data_key(sessions, vault=rotating).values == 50
    assert stored(sessions, DataVault(new_key)) == before


def test_a_value_no_key_opens_is_named_not_silently_kept(sessions: SessionFactory) -> None:
    seed(sessions, DataVault(new_data_key()), 2)
    with pytest.raises(DataKeyError, match=r"participant\.phone_enc of row 1"):
        rotate_data_key(sessions, vault=DataVault(new_data_key()))


def test_every_encrypted_column_is_rotated() -> None:
    """A new `*_enc` column must join ENCRYPTED_COLUMNS, or rotation would leave it on the old key."""
    from sqlmodel import SQLModel

    from storage.keys import ENCRYPTED_COLUMNS

    rotated = {(table.name, name) for table, names in ENCRYPTED_COLUMNS for name in names}
    stored = {
        (table.name, column.name)
        for table in SQLModel.metadata.tables.values()
        for column in table.columns
        if column.name.endswith("_enc")
    }
    assert stored == rotated
