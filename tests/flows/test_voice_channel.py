"""Voice as a channel in chat registration ("SPRAAK", "bellen", "phone"); a Dutch landline gets calls only."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from bot.channels.base import SendReceipt
from bot.messages import OutgoingMessage
from bot.texts import Catalogue
from storage.crypto import DataVault
from storage.db import SessionFactory
from storage.models import ChannelIdentity, Participant, PhoneVerification
from storage.vocabulary import ChannelKind
from tests.channels.keyed import drain
from tests.conftest import FixedClock
from tests.flows.conftest import SMS, SMS_PHONE, Contact, Converse, Person, TypedCode, rows, texts

LANDLINE = "+31534800000"
LANDLINE_MASKED = "+31 5 ****0000"
TO_CHANNEL = ["/start", "ja", "-", "7511 AB 12", "ja"]
EN_TO_CHANNEL = ["ENGLISH", "START", "yes", "-", "7511 AB 12", "yes"]


def voice_identity(sessions: SessionFactory, vault: DataVault, phone: str) -> ChannelIdentity | None:
    with sessions() as session:
        return session.exec(
            select(ChannelIdentity).where(
                ChannelIdentity.channel == ChannelKind.VOICE,
                ChannelIdentity.address_hash == vault.lookup_hash(phone),
            )
        ).first()


async def test_a_landline_on_telegram_chooses_voice_and_its_code_comes_by_call(
    converse: Converse, sessions: SessionFactory, vault: DataVault, catalogue: Catalogue
) -> None:
    person = Person(ChannelKind.TELEGRAM, "5001")
    transcript = await converse(person, [*TO_CHANNEL, "053 480 0000"])
    asked = transcript[-1][0]
    assert asked.text == catalogue.render("nl", "registration.ask_channel", options="Telegram, Telefoon")
    assert asked.buttons == ("Telegram", "Telefoon")

    transcript = await converse(person, ["SPRAAK"])
    assert texts(transcript[-1]) == [
        catalogue.render("nl", "registration.ask_code_call", phone=LANDLINE_MASKED, minutes=10)
    ]
    [row] = rows(sessions, PhoneVerification)
    assert (row.channel, row.state) == (ChannelKind.VOICE, "queued")
    assert row.message_enc is not None
    spoken = vault.decrypt(row.message_enc)
    # Digit by digit, twice, so it can be typed while it is heard.
    digits = re.findall(r"\d(?:, \d){5}", spoken)
    assert len(digits) == 2 and digits[0] == digits[1]
    assert spoken == catalogue.render("nl", "registration.code_call", digits=digits[0])
    assert rows(sessions, Participant) == []

    transcript = await converse(person, [TypedCode()])
    assert texts(transcript[-1]) == [
        catalogue.render("nl", "registration.welcome_voice", phone=LANDLINE_MASKED, place="Enschede")
    ]
    [participant] = rows(sessions, Participant)
    assert participant.preferred_channel is ChannelKind.VOICE
    assert participant.phone_enc is not None and vault.decrypt(participant.phone_enc) == LANDLINE
    identity = voice_identity(sessions, vault, LANDLINE)
    assert identity is not None and identity.participant_id == participant.id


async def test_a_landline_in_english(
    converse: Converse, sessions: SessionFactory, vault: DataVault, catalogue: Catalogue
) -> None:
    person = Person(ChannelKind.TELEGRAM, "5002")
    transcript = await converse(person, [*EN_TO_CHANNEL, "053 480 0000", "WhatsApp", "call"])
    assert texts(transcript[-3]) == [
        catalogue.render("en", "registration.ask_channel", options="Telegram, Phone")
    ]
    assert texts(transcript[-2]) == [
        catalogue.render(
            "en", "registration.landline_voice_only", channel="WhatsApp", options="Telegram, Phone"
        )
    ]
    assert texts(transcript[-1]) == [
        catalogue.render("en", "registration.ask_code_call", phone=LANDLINE_MASKED, minutes=10)
    ]
    [row] = rows(sessions, PhoneVerification)
    assert row.message_enc is not None
    assert vault.decrypt(row.message_enc).startswith("This is Burgernet. Your code is: ")

    transcript = await converse(person, [TypedCode()])
    assert texts(transcript[-1]) == [
        catalogue.render("en", "registration.welcome_voice", phone=LANDLINE_MASKED, place="Enschede")
    ]
    [participant] = rows(sessions, Participant)
    assert (participant.preferred_channel, participant.language) == (ChannelKind.VOICE, "en")


async def test_a_landline_may_keep_telegram_and_still_proves_the_number_by_call(
    converse: Converse, sessions: SessionFactory, vault: DataVault
) -> None:
    person = Person(ChannelKind.TELEGRAM, "5003")
    await converse(person, [*TO_CHANNEL, "053 480 0000", "Telegram", TypedCode()])
    [row] = rows(sessions, PhoneVerification)
    assert row.channel is ChannelKind.VOICE
    [participant] = rows(sessions, Participant)
    assert participant.preferred_channel is ChannelKind.TELEGRAM
    # No call channel was asked for, so none is linked.
    assert voice_identity(sessions, vault, LANDLINE) is None


@pytest.mark.parametrize(
    "answer",
    ["SPRAAK", "spraak", "Bellen", "bel me", "telefoon", "Telefoon", "phone", "voice", "call", "4"],
)
async def test_words_for_voice_on_a_mobile(
    converse: Converse, sessions: SessionFactory, vault: DataVault, answer: str
) -> None:
    # A shared contact proves the mobile: no code; "4" is the fourth option, after Telegram, WhatsApp, SMS.
    person = Person(ChannelKind.TELEGRAM, "5004")
    await converse(person, [*TO_CHANNEL, Contact(SMS_PHONE), answer])
    [participant] = rows(sessions, Participant)
    assert participant.preferred_channel is ChannelKind.VOICE
    assert rows(sessions, PhoneVerification) == []
    assert voice_identity(sessions, vault, SMS_PHONE) is not None


async def test_an_sms_sender_may_choose_to_be_called(
    converse: Converse, sessions: SessionFactory, vault: DataVault, catalogue: Catalogue
) -> None:
    transcript = await converse(SMS, ["START", "JA", "Jan", "7511 AB 12", "JA", "JA", "bellen"])
    assert texts(transcript[-2]) == [
        catalogue.render("nl", "registration.ask_channel", options="SMS, WhatsApp, Telefoon")
    ]
    assert texts(transcript[-1]) == [
        catalogue.render("nl", "registration.welcome_voice", phone="+31 6 ****5678", place="Enschede")
    ]
    [participant] = rows(sessions, Participant)
    assert participant.preferred_channel is ChannelKind.VOICE
    assert voice_identity(sessions, vault, SMS_PHONE) is not None


async def test_a_landline_outside_the_netherlands_is_refused(
    converse: Converse, catalogue: Catalogue
) -> None:
    transcript = await converse(Person(ChannelKind.TELEGRAM, "5005"), [*TO_CHANNEL, "+32 2 555 12 34"])
    assert texts(transcript[-1]) == [catalogue.render("nl", "registration.phone_not_mobile")]


class Recording:
    """A sender that keeps what the dispatcher hands it."""

    kinds = frozenset({ChannelKind.VOICE})

    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        self.sent.append(message)
        return SendReceipt(provider_id=f"CA{len(self.sent):032x}", segments=1)


@pytest.mark.parametrize(("start", "lang"), [(TO_CHANNEL, "nl"), (EN_TO_CHANNEL, "en")], ids=["nl", "en"])
async def test_the_code_call_is_spoken_in_the_language_of_whoever_asked(
    converse: Converse,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    catalogue: Catalogue,
    start: list[str],
    lang: str,
) -> None:
    await converse(Person(ChannelKind.TELEGRAM, "5006"), [*start, "053 480 0000", "bellen"])
    phone = Recording()
    await drain(sessions, {ChannelKind.VOICE: phone}, clock, vault)
    [call] = phone.sent
    assert (call.channel, call.recipient, call.language, call.call_menu) == (
        ChannelKind.VOICE,
        LANDLINE,
        lang,
        False,
    )
    assert call.text.startswith(catalogue.render(lang, "registration.code_call", digits="0").split("0")[0])
    [row] = rows(sessions, PhoneVerification)
    assert (row.state, row.message_enc, row.phone_enc) == ("sent", None, None)
