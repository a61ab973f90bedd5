"""LOOKUP_KEY: look-up hashes keyed apart from DATA_KEY, recognised under older keys, moved by the re-hash."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from bot.config import load_settings
from bot.runtime import lookup_key, make_vault
from storage.crypto import DataKeyError, DataVault, new_data_key
from storage.db import SessionFactory, transaction
from storage.keys import rehash_lookups
from storage.models import Action, ActionType, ChannelIdentity, OptOut, Participant, ParticipantStatus, Tip
from storage.participants import find_identity, find_participant_by_phone, touch_sender
from storage.vocabulary import ChannelKind

NOW = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
PHONE = "+31613572468"
STOPPED = "+31624681357"


def test_the_lookup_key_is_independent_of_the_data_key() -> None:
    data_old, data_new, lookup = new_data_key(), new_data_key(), new_data_key()
    before = DataVault(data_old, lookup_keys=lookup)
    after = DataVault(data_new, lookup_keys=lookup)
    assert before.lookup_hash(PHONE) == after.lookup_hash(PHONE)
    assert DataVault(data_old).lookup_hash(PHONE) != before.lookup_hash(PHONE)


def test_lookup_key_set_to_the_oldest_data_key_keeps_the_hashes_stored_before_it() -> None:
    oldest, newer = new_data_key(), new_data_key()
    assert DataVault(f"{newer},{oldest}").lookup_hash(PHONE) == DataVault(
        newer, lookup_keys=oldest
    ).lookup_hash(PHONE)


def test_older_lookup_keys_are_recognised_not_used() -> None:
    old, new = new_data_key(), new_data_key()
    rotating = DataVault(new_data_key(), lookup_keys=f"{new},{old}")
    assert rotating.rehashing and not DataVault(new_data_key(), lookup_keys=new).rehashing
    assert rotating.lookup_hash(PHONE) == DataVault(new_data_key(), lookup_keys=new).lookup_hash(PHONE)
    assert rotating.lookup_hashes(PHONE)[1:] == (
        DataVault(new_data_key(), lookup_keys=old).lookup_hash(PHONE),
    )


@pytest.mark.parametrize("bad", ["", " , ", "short", "not-base64-at-all-but-long-enough-for-sure!!"])
def test_a_malformed_lookup_key_is_refused(bad: str) -> None:
    with pytest.raises(DataKeyError, match="LOOKUP_KEY"):
        DataVault(new_data_key(), lookup_keys=bad)


def test_development_keys_come_from_files_and_outlive_a_data_key_rotation(tmp_path: Path) -> None:
    settings = load_settings(data_key_file=tmp_path / "data.key", lookup_key_file=tmp_path / "lookup.key")
    first = make_vault(settings).lookup_hash(PHONE)
    # The development database made before LOOKUP_KEY keeps its hashes: the file starts as the data key.
    assert (tmp_path / "lookup.key").read_text().strip() == (tmp_path / "data.key").read_text().strip()
    (tmp_path / "data.key").write_text(new_data_key() + "," + (tmp_path / "data.key").read_text())
    assert make_vault(settings).lookup_hash(PHONE) == first
    assert (tmp_path / "lookup.key").stat().st_mode & 0o777 == 0o600


def test_development_with_data_key_set_hashes_as_before() -> None:
    oldest = new_data_key()
    assert lookup_key(load_settings(data_key=f"{new_data_key()},{oldest}")) == oldest


def test_production_without_lookup_key_does_not_start() -> None:
    settings = load_settings(
        environment="production",
        data_key=new_data_key(),
        api_token="k3Jv9QpX2mZr7TbW4nLs8YdA1cHf6GeU",
        public_base_url="https://bot.example.nl",
        simulator=False,
    )
    with pytest.raises(RuntimeError, match="LOOKUP_KEY"):
        lookup_key(settings)


def test_rehash_moves_every_hash_it_can_recompute(sessions: SessionFactory) -> None:
    old_lookup, new_lookup, data = new_data_key(), new_data_key(), new_data_key()
    old = DataVault(data, lookup_keys=old_lookup)
    with transaction(sessions) as session:
        me = touch_sender(session, vault=old, channel=ChannelKind.SMS, address=PHONE, now=NOW).identity
        person = Participant(
            status=ParticipantStatus.ACTIVE,
            phone_enc=old.encrypt(PHONE),
            phone_hash=old.lookup_hash(PHONE),
            created_at=NOW,
        )
        session.add(person)
        session.flush()
        me.participant_id = person.id
        session.add(me)
        stopped = touch_sender(session, vault=old, channel=ChannelKind.SMS, address=STOPPED, now=NOW).identity
        stopped.opted_out, stopped.address_enc = True, None
        session.add(stopped)
        session.add(OptOut(phone_hash=old.lookup_hash(STOPPED), at=NOW))
        action = Action(code="BN-1001", type=ActionType.MISSING_PERSON, headline="Vermist", created_at=NOW,
                        expires_at=NOW)  # fmt: skip
        session.add(action)
        session.flush()
        session.add(
            Tip(
                action_id=action.id or 0,
                identity_id=me.id,
                channel=ChannelKind.SMS,
                received_at=NOW,
                updated_at=NOW,
                text="rode jas",
                reporter="T-1",
                sender_hash=f"sms:{old.lookup_hash(PHONE)}",
            )  # fmt: skip
        )

    rotating = DataVault(data, lookup_keys=f"{new_lookup},{old_lookup}")
    # During the rotation, before the re-hash, both people are found.
    with transaction(sessions) as session:
        assert find_participant_by_phone(session, vault=rotating, phone=PHONE) is not None
        found = find_identity(session, vault=rotating, channel=ChannelKind.SMS, address=STOPPED)
        assert found is not None and found.opted_out

    report = rehash_lookups(sessions, vault=rotating, batch_size=1)
    assert (report.identities, report.participants, report.tips, report.hash_only) == (1, 1, 1, 1)
    assert rehash_lookups(sessions, vault=rotating).identities == 0, "a second run has nothing to do"

    new = DataVault(data, lookup_keys=new_lookup)
    with transaction(sessions) as session:
        assert find_participant_by_phone(session, vault=new, phone=PHONE) is not None
        assert find_identity(session, vault=new, channel=ChannelKind.SMS, address=PHONE) is not None
        [tip] = session.exec(select(Tip))
        assert tip.sender_hash == f"sms:{new.lookup_hash(PHONE)}"
        # Kept as a hash alone: recognised while the older key is listed, as docs/production.md says.
        found = find_identity(session, vault=rotating, channel=ChannelKind.SMS, address=STOPPED)
        assert found is not None and found.opted_out
        assert session.get(OptOut, old.lookup_hash(STOPPED)) is not None


def test_a_sender_under_an_older_key_moves_to_the_newest_at_once(sessions: SessionFactory) -> None:
    old_lookup, new_lookup, data = new_data_key(), new_data_key(), new_data_key()
    with transaction(sessions) as session:
        made = touch_sender(
            session, vault=DataVault(data, old_lookup), channel=ChannelKind.SMS, address=PHONE, now=NOW
        ).identity
    rotating = DataVault(data, lookup_keys=f"{new_lookup},{old_lookup}")
    with transaction(sessions) as session:
        again = touch_sender(
            session, vault=rotating, channel=ChannelKind.SMS, address=PHONE, now=NOW
        ).identity
    with sessions() as session:
        [row] = session.exec(select(ChannelIdentity))
    assert again.id == made.id == row.id
    assert row.address_hash == rotating.lookup_hash(PHONE)
