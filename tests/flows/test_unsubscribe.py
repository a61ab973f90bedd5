"""Leaving: STOP erases at once, a free-text wish asks first, START comes back; nothing personal stays."""

from __future__ import annotations

import pytest

from bot.texts import Catalogue
from storage.crypto import DataVault
from storage.db import SessionFactory
from storage.models import Address, AuditEvent, ChannelIdentity, ConversationState, OptOut, Participant
from storage.models import ParticipantStatus as Status
from storage.participants import is_opted_out
from storage.vocabulary import ChannelKind
from tests.flows.conftest import (
    SMS,
    SMS_PHONE,
    TELEGRAM,
    Converse,
    Person,
    last,
    register_steps,
    rows,
    texts,
)


def assert_erased(sessions: SessionFactory, vault: DataVault) -> None:
    """No name, number, address, chat address or conversation left; the opt-out hash kept."""
    [participant] = rows(sessions, Participant)
    assert participant.status is Status.UNSUBSCRIBED
    assert participant.ended_at is not None
    assert (participant.name_enc, participant.phone_enc, participant.phone_hash) == (None, None, None)
    assert participant.preferred_channel is None
    assert rows(sessions, Address) == []
    assert rows(sessions, ConversationState) == []
    for identity in rows(sessions, ChannelIdentity):
        assert identity.address_enc is None
        assert identity.participant_id is None
        assert identity.opted_out is True
    assert [o.phone_hash for o in rows(sessions, OptOut)] == [vault.lookup_hash(SMS_PHONE)]
    with sessions() as session:
        assert is_opted_out(session, phone_hash=vault.lookup_hash(SMS_PHONE))
    events = [e.event for e in rows(sessions, AuditEvent)]
    assert "participant_erased" in events and "opted_out" in events


@pytest.mark.parametrize("person", [SMS, TELEGRAM], ids=["sms", "telegram"])
async def test_stop_erases_a_participant_at_once(
    converse: Converse, sessions: SessionFactory, vault: DataVault, catalogue: Catalogue, person: Person
) -> None:
    transcript = await converse(person, [*register_steps(person), "STOP"])
    assert texts(transcript[-1]) == [catalogue.render("nl", "unsubscribe.stopped")]
    assert "START" in last(transcript).text
    assert_erased(sessions, vault)


async def test_stop_from_one_channel_erases_every_channel(
    converse: Converse, sessions: SessionFactory, vault: DataVault
) -> None:
    await converse(SMS, register_steps(SMS))
    await converse(TELEGRAM, register_steps(TELEGRAM))
    await converse(TELEGRAM, ["/stop"])
    assert_erased(sessions, vault)
    assert len(rows(sessions, ChannelIdentity)) == 2


async def test_free_text_unsubscribe_asks_then_erases(
    converse: Converse, sessions: SessionFactory, vault: DataVault, catalogue: Catalogue
) -> None:
    transcript = await converse(SMS, [*register_steps(SMS), "ik wil me afmelden", "JA"])
    assert texts(transcript[-2]) == [catalogue.render("nl", "unsubscribe.confirm")]
    assert transcript[-2][0].buttons == ("JA", "NEE")
    assert texts(transcript[-1]) == [catalogue.render("nl", "unsubscribe.done")]
    assert_erased(sessions, vault)


async def test_nee_keeps_the_registration(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    transcript = await converse(SMS, [*register_steps(SMS), "please unsubscribe me", "NEE"])
    assert texts(transcript[-1]) == [catalogue.render("nl", "unsubscribe.kept")]
    [participant] = rows(sessions, Participant)
    assert participant.status is Status.ACTIVE and participant.phone_enc is not None
    assert rows(sessions, OptOut) == []


@pytest.mark.parametrize(
    "answer", ["", "🙂", "x" * 5000, "misschien"], ids=["empty", "emoji", "5000", "maybe"]
)
async def test_unclear_answer_to_the_confirmation_asks_again(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue, answer: str
) -> None:
    transcript = await converse(SMS, [*register_steps(SMS), "ik wil me afmelden", answer])
    assert texts(transcript[-1]) == [catalogue.render("nl", "common.yes_no_retry")]
    assert transcript[-1][0].buttons == ("JA", "NEE")
    [participant] = rows(sessions, Participant)
    assert participant.status is Status.ACTIVE


async def test_unregistered_free_text_unsubscribe(converse: Converse, catalogue: Catalogue) -> None:
    transcript = await converse(TELEGRAM, ["ik wil me afmelden"])
    assert texts(transcript[0]) == [catalogue.render("nl", "unsubscribe.not_registered")]


async def test_unregistered_sms_stop_keeps_only_the_hash(
    converse: Converse, sessions: SessionFactory, vault: DataVault, catalogue: Catalogue
) -> None:
    transcript = await converse(SMS, ["STOP"])
    assert texts(transcript[0]) == [catalogue.render("nl", "unsubscribe.stopped_unregistered")]
    assert [o.phone_hash for o in rows(sessions, OptOut)] == [vault.lookup_hash(SMS_PHONE)]
    [identity] = rows(sessions, ChannelIdentity)
    assert identity.address_enc is None and identity.opted_out


async def test_start_after_stop_opts_back_in(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    transcript = await converse(SMS, ["STOP", "START"])
    assert texts(transcript[1]) == [
        catalogue.render("nl", "router.opted_in"),
        catalogue.render("nl", "registration.consent", version="2026-1", url="http://127.0.0.1:8080/privacy"),
    ]
    assert rows(sessions, OptOut) == []
    [identity] = rows(sessions, ChannelIdentity)
    assert identity.opted_out is False and identity.address_enc is not None


async def test_stop_in_english(converse: Converse, catalogue: Catalogue) -> None:
    transcript = await converse(Person(ChannelKind.SMS, "+31611112222"), ["ENGLISH", "UNSUBSCRIBE"])
    assert texts(transcript[-1]) == [catalogue.render("en", "unsubscribe.stopped_unregistered")]


async def test_stop_from_the_registered_phone_erases_a_telegram_registration(
    converse: Converse, sessions: SessionFactory, vault: DataVault, catalogue: Catalogue
) -> None:
    await converse(TELEGRAM, register_steps(TELEGRAM, channel="Telegram"))
    transcript = await converse(SMS, ["MIJN GEGEVENS", "STOP"])
    assert transcript[0][0].text.startswith("Dit weten we van u:")
    assert texts(transcript[1]) == [catalogue.render("nl", "unsubscribe.stopped")]
    assert_erased(sessions, vault)
