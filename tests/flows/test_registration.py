"""Registration transcripts: the happy path on each channel, updates, and every bad answer at every step."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.messages import IncomingMessage
from bot.texts import Catalogue
from storage.crypto import DataVault
from storage.db import SessionFactory
from storage.models import Address, AuditEvent, ChannelIdentity, ConversationState, OptOut, Participant
from storage.models import ParticipantStatus as Status
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock
from tests.flows.conftest import (
    SMS,
    SMS_PHONE,
    TELEGRAM,
    TELEGRAM_CHAT,
    WHATSAPP,
    Contact,
    Converse,
    Person,
    TypedCode,
    last,
    register_steps,
    rows,
    texts,
)

CONSENT_AT = datetime(2026, 11, 20, 14, 30, 20, tzinfo=UTC)
PRIVACY_URL = "http://127.0.0.1:8080/privacy"


async def test_sms_registration_happy_path(
    converse: Converse, catalogue: Catalogue, sessions: SessionFactory, vault: DataVault
) -> None:
    t = converse
    transcript = await t(SMS, ["START", "JA", "Jan", "7511 AB 12", "JA", "JA", "SMS"])
    nl = lambda key, **p: catalogue.render("nl", key, **p)  # noqa: E731
    assert texts(transcript[0]) == [nl("registration.consent", version="2026-1", url=PRIVACY_URL)]
    assert transcript[0][0].buttons == ("JA", "NEE")
    assert texts(transcript[1]) == [nl("registration.ask_name")]
    assert texts(transcript[2]) == [nl("address.ask_home")]
    assert texts(transcript[3]) == [
        "7511 AB 12: is dit Enschede, gemeente Enschede? (JA/NEE) (of: laat maar)"
    ]
    assert texts(transcript[4]) == [nl("registration.confirm_phone", phone="+31 6 ****5678")]
    assert texts(transcript[5]) == [nl("registration.ask_channel", options="SMS, WhatsApp, Telefoon")]
    assert transcript[5][0].buttons == ("SMS", "WhatsApp", "Telefoon")
    assert texts(transcript[6]) == [nl("registration.welcome", channel="SMS", place="Enschede")]
    assert "STOP" in transcript[6][0].text

    [participant] = rows(sessions, Participant)
    assert participant.status is Status.ACTIVE
    assert participant.name_enc and vault.decrypt(participant.name_enc) == "Jan"
    assert participant.phone_enc and vault.decrypt(participant.phone_enc) == SMS_PHONE
    assert participant.phone_hash == vault.lookup_hash(SMS_PHONE)
    assert participant.preferred_channel is ChannelKind.SMS
    assert participant.consent_version == "2026-1"
    assert participant.consent_at == CONSENT_AT
    [address] = rows(sessions, Address)
    assert (address.slot, address.postcode, address.house_number, address.addition) == (
        1,
        "7511 AB",
        12,
        None,
    )
    assert (address.place, address.municipality_name, address.municipality_code) == (
        "Enschede",
        "Enschede",
        "0153",
    )
    [identity] = rows(sessions, ChannelIdentity)
    assert identity.participant_id == participant.id and identity.channel is ChannelKind.SMS
    assert rows(sessions, ConversationState) == []
    assert "participant_registered" in [e.event for e in rows(sessions, AuditEvent)]
    raw = str([(p.name_enc, p.phone_enc) for p in rows(sessions, Participant)])
    assert "Jan" not in raw and "612345678" not in raw


async def test_telegram_registration_with_shared_contact(
    converse: Converse, sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    contact = IncomingMessage(
        channel=ChannelKind.TELEGRAM,
        sender=TELEGRAM_CHAT,
        text="",
        received_at=clock(),
        contact_phone="31612345678",
    )
    transcript = await converse(
        TELEGRAM, ["/start", "ja", "overslaan", "7511ab 12-a", "ja", contact, "Telegram"]
    )
    assert transcript[4][0].request_contact is True
    assert transcript[5][0].buttons == ("Telegram", "WhatsApp", "SMS", "Telefoon")
    assert "Telegram" in last(transcript).text
    [participant] = rows(sessions, Participant)
    assert participant.name_enc is None
    assert participant.phone_enc and vault.decrypt(participant.phone_enc) == SMS_PHONE
    assert participant.preferred_channel is ChannelKind.TELEGRAM
    [address] = rows(sessions, Address)
    assert (address.house_number, address.addition) == (12, "A")


async def test_telegram_typed_number_and_whatsapp_preference_links_a_whatsapp_identity(
    converse: Converse, sessions: SessionFactory, vault: DataVault
) -> None:
    await converse(TELEGRAM, register_steps(TELEGRAM, channel="WhatsApp"))
    [participant] = rows(sessions, Participant)
    assert participant.preferred_channel is ChannelKind.WHATSAPP
    identities = {i.channel: i for i in rows(sessions, ChannelIdentity)}
    assert set(identities) == {ChannelKind.TELEGRAM, ChannelKind.WHATSAPP}
    assert {i.participant_id for i in identities.values()} == {participant.id}
    whatsapp = identities[ChannelKind.WHATSAPP]
    assert whatsapp.address_enc and vault.decrypt(whatsapp.address_enc) == SMS_PHONE


async def test_whatsapp_registration_in_english(converse: Converse, catalogue: Catalogue) -> None:
    transcript = await converse(
        WHATSAPP, ["ENGLISH", "START", "yes", "Anna", "1012 ab 5", "yes", "yes", "whatsapp"]
    )
    # On a chat the consent question also offers following an area only.
    assert transcript[1][0].buttons == ("YES", "NO", "AREA")
    assert last(transcript).text == catalogue.render(
        "en", "registration.welcome", channel="WhatsApp", place="Amsterdam"
    )


async def test_registering_twice_updates_the_same_participant(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    await converse(SMS, register_steps(SMS))
    transcript = await converse(SMS, register_steps(SMS, name="Jan B", address="1012 AB 5"))
    assert transcript[0][0].text == catalogue.render(
        "nl", "registration.consent_update", version="2026-1", url=PRIVACY_URL
    )
    assert last(transcript).text == catalogue.render(
        "nl", "registration.updated", channel="SMS", place="Amsterdam"
    )
    assert len(rows(sessions, Participant)) == 1
    [address] = rows(sessions, Address)
    assert address.postcode == "1012 AB"
    assert len(rows(sessions, ChannelIdentity)) == 1


async def test_second_channel_links_to_the_same_participant(
    converse: Converse, sessions: SessionFactory, clock: FixedClock
) -> None:
    await converse(SMS, register_steps(SMS))
    contact = IncomingMessage(
        channel=ChannelKind.TELEGRAM,
        sender=TELEGRAM_CHAT,
        text="",
        received_at=clock(),
        contact_phone=SMS_PHONE,
    )
    await converse(TELEGRAM, ["/start", "ja", "Jan", "7511 AB 12", "ja", contact, "Telegram"])
    [participant] = rows(sessions, Participant)
    assert participant.preferred_channel is ChannelKind.TELEGRAM
    linked = {i.channel for i in rows(sessions, ChannelIdentity) if i.participant_id == participant.id}
    assert linked == {ChannelKind.SMS, ChannelKind.TELEGRAM}


async def test_opted_out_number_that_registers_again_is_opted_back_in(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    await converse(SMS, [*register_steps(SMS), "STOP"])
    assert len(rows(sessions, OptOut)) == 1
    transcript = await converse(SMS, register_steps(SMS))
    assert transcript[0][0].text == catalogue.render("nl", "router.opted_in")
    assert rows(sessions, OptOut) == []
    [identity] = rows(sessions, ChannelIdentity)
    assert identity.opted_out is False
    live = [p for p in rows(sessions, Participant) if p.status is Status.ACTIVE]
    assert len(live) == 1


async def test_no_consent_stores_nothing(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    transcript = await converse(SMS, ["START", "NEE"])
    assert last(transcript).text == catalogue.render("nl", "registration.no_consent")
    assert rows(sessions, Participant) == [] and rows(sessions, ConversationState) == []


async def test_nee_at_the_place_asks_for_the_address_again(converse: Converse, catalogue: Catalogue) -> None:
    transcript = await converse(SMS, ["START", "JA", "Jan", "7511 AB 12", "NEE", "7512 AB 3", "JA"])
    assert texts(transcript[4]) == [catalogue.render("nl", "address.ask_again")]
    assert transcript[5][0].text.startswith("7512 AB 3: is dit Enschede")
    assert transcript[6][0].text.startswith("We sturen berichten naar")


async def test_nee_at_the_senders_number_stops_without_storing(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    transcript = await converse(SMS, ["START", "JA", "Jan", "7511 AB 12", "JA", "NEE"])
    assert last(transcript).text == catalogue.render("nl", "registration.phone_denied")
    assert rows(sessions, Participant) == [] and rows(sessions, ConversationState) == []


@pytest.mark.parametrize(
    ("sender", "key"),
    [
        ("+31534800000", "registration.sender_not_mobile"),
        ("+3225551234", "registration.sender_not_mobile"),
        ("+12025550123", "registration.sender_not_eu"),
    ],
    ids=["dutch-landline", "belgian-landline", "us-number"],
)
@pytest.mark.parametrize("channel", [ChannelKind.SMS, ChannelKind.WHATSAPP], ids=["sms", "whatsapp"])
@pytest.mark.parametrize("first", ["START", "ik wil me aanmelden 7511 AB 12"], ids=["start", "free-text"])
async def test_a_number_we_cannot_alert_hears_so_before_anything_is_asked(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue, sender: str, key: str,
    channel: ChannelKind, first: str,
) -> None:  # fmt: skip
    person = Person(channel, sender)
    transcript = await converse(person, [first])
    # At once: before consent, name and postcode are asked for nothing.
    assert texts(transcript[0]) == [catalogue.render("nl", key)]
    assert rows(sessions, Participant) == [] and rows(sessions, ConversationState) == []


# Bad answers at each step: the step is repeated with an explanation, nothing is stored, nothing crashes.
LONG = "x" * 5000
CONSENT = ["START"]
NAME = ["START", "JA"]
ADDRESS = ["START", "JA", "-"]
PLACE = ["START", "JA", "-", "7511 AB 12"]
PHONE = ["START", "JA", "-", "7511 AB 12", "JA"]
CHANNEL = ["START", "JA", "-", "7511 AB 12", "JA", "06 12345678"]
LANDLINE_CHANNEL = ["START", "JA", "-", "7511 AB 12", "JA", "053 480 0000"]
# The channels offered, in the language of the test.
OPTIONS = {"nl": "Telegram, WhatsApp, SMS, Telefoon", "en": "Telegram, WhatsApp, SMS, Phone"}
LANDLINE_OPTIONS = {"nl": "Telegram, Telefoon", "en": "Telegram, Phone"}


@pytest.mark.parametrize(
    ("before", "answer", "key", "params"),
    [
        (CONSENT, "", "registration.consent_retry", {}),
        (CONSENT, "🙂🙂", "registration.consent_retry", {}),
        (CONSENT, LONG, "registration.consent_retry", {}),
        (CONSENT, "نعم", "registration.consent_retry", {}),
        (CONSENT, "'; DROP TABLE participant; --", "registration.consent_retry", {}),
        (NAME, "", "registration.name_empty", {}),
        (NAME, "🙂", "registration.name_invalid", {}),
        (NAME, LONG, "registration.name_too_long", {"max": 60}),
        (NAME, "<script>alert(1)</script>", "registration.name_invalid", {}),
        (NAME, "Robert'); DROP TABLE participant;--", "registration.name_invalid", {}),
        (ADDRESS, "", "address.empty", {}),
        (ADDRESS, "🏠", "address.bad_format", {}),
        (ADDRESS, LONG, "address.bad_format", {}),
        (ADDRESS, "北京市", "address.bad_format", {}),
        (ADDRESS, "<b>7511 AB 12</b>", "address.bad_format", {}),
        (ADDRESS, "75111 AB 12", "address.bad_format", {}),
        (ADDRESS, "7511 12", "address.missing_letters", {}),
        (ADDRESS, "7511 SA 12", "address.bad_format", {}),
        (ADDRESS, "7511 AB", "address.missing_number", {"postcode": "7511 AB"}),
        (ADDRESS, "1000 AA 1", "address.unknown_postcode", {"postcode": "1000 AA"}),
        (ADDRESS, "7511 AB 0", "address.bad_number", {}),
        (ADDRESS, "7511 AB 100000", "address.bad_number", {}),
        (ADDRESS, "7511 AB 12 %$#", "address.bad_number", {}),
        (PLACE, "misschien", "common.yes_no_retry", {}),
        (PLACE, "", "common.yes_no_retry", {}),
        (PHONE, "", "registration.phone_empty", {}),
        (PHONE, "bel me maar", "registration.phone_not_a_number", {}),
        (PHONE, "0612", "registration.phone_not_a_number", {}),
        (PHONE, LONG, "registration.phone_not_a_number", {}),
        (PHONE, "+32 2 555 12 34", "registration.phone_not_mobile", {}),
        (PHONE, "+1 202 555 0123", "registration.phone_not_eu", {}),
        (PHONE, "+49 30 1234567", "registration.phone_not_mobile", {}),
        (CHANNEL, "postduif", "registration.channel_retry", {"options": OPTIONS}),
        (CHANNEL, "", "registration.channel_retry", {"options": OPTIONS}),
        (CHANNEL, "9", "registration.channel_retry", {"options": OPTIONS}),
        (CHANNEL, "5", "registration.channel_retry", {"options": OPTIONS}),
        (
            LANDLINE_CHANNEL,
            "SMS",
            "registration.landline_voice_only",
            {"channel": "SMS", "options": LANDLINE_OPTIONS},
        ),
        (
            LANDLINE_CHANNEL,
            "whatsapp",
            "registration.landline_voice_only",
            {"channel": "WhatsApp", "options": LANDLINE_OPTIONS},
        ),
        (LANDLINE_CHANNEL, "3", "registration.channel_retry", {"options": LANDLINE_OPTIONS}),
    ],
    ids=lambda v: v[:20] if isinstance(v, str) else None,
)
@pytest.mark.parametrize("lang", ["nl", "en"])
async def test_bad_answers_are_explained_and_the_step_repeats(
    converse: Converse,
    sessions: SessionFactory,
    catalogue: Catalogue,
    before: list[str],
    answer: str,
    key: str,
    params: dict[str, object],
    lang: str,
) -> None:
    language = ["ENGLISH"] if lang == "en" else []
    transcript = await converse(TELEGRAM, [*language, *before, answer])
    question = transcript[-2][-1]
    [reply] = transcript[-1]
    in_lang = {k: v[lang] if isinstance(v, dict) else v for k, v in params.items()}
    assert reply.text == catalogue.render(lang, key, **in_lang)
    assert reply.buttons == question.buttons
    assert reply.request_contact == question.request_contact
    [state] = rows(sessions, ConversationState)
    assert state.flow == "registration"
    assert rows(sessions, Participant) == []


async def test_house_number_99999_is_a_valid_number(converse: Converse) -> None:
    transcript = await converse(TELEGRAM, [*ADDRESS, "7511 AB 99999"])
    assert last(transcript).text.startswith("7511 AB 99999: is dit Enschede")


async def test_the_flow_goes_on_after_a_bad_answer(converse: Converse, sessions: SessionFactory) -> None:
    await converse(TELEGRAM, [*ADDRESS, "9999", "7511 AB 12", "JA", "12345", "06 12345678", "1", TypedCode()])
    assert len(rows(sessions, Participant)) == 1


async def test_a_bad_answer_in_english_is_explained_in_english(
    converse: Converse, catalogue: Catalogue
) -> None:
    transcript = await converse(TELEGRAM, ["ENGLISH", "START", "yes", "-", "1000 AA 1"])
    assert last(transcript).text == catalogue.render("en", "address.unknown_postcode", postcode="1000 AA")


async def test_a_typed_number_cannot_take_over_someone_elses_registration(
    converse: Converse, sessions: SessionFactory, vault: DataVault, catalogue: Catalogue, clock: FixedClock
) -> None:
    await converse(SMS, register_steps(SMS))
    stranger = Person(ChannelKind.TELEGRAM, "999")
    transcript = await converse(stranger, ["/start", "ja", "-", "1012 AB 5", "ja", "06 12345678", "Telegram"])
    # A code goes to the number; without it nothing of the stranger is stored.
    assert texts(transcript[-1]) == [
        catalogue.render("nl", "registration.ask_code", phone="+31 6 ****5678", channel="SMS", minutes=10)
    ]
    [participant] = rows(sessions, Participant)
    [address] = rows(sessions, Address)
    assert address.postcode == "7511 AB"
    # The owner, sharing the contact from their own Telegram account, may link it.
    await converse(stranger, ["/start", "ja", "-", "1012 AB 5", "ja", Contact(SMS_PHONE), "Telegram"])
    assert len(rows(sessions, Participant)) == 1
    assert {i.participant_id for i in rows(sessions, ChannelIdentity)} == {participant.id}


@pytest.mark.parametrize("answer", ["¹", "٣", "²³", "0", "-1", "1.0"])
async def test_odd_digits_at_the_channel_choice_are_explained(
    converse: Converse, catalogue: Catalogue, answer: str
) -> None:
    transcript = await converse(TELEGRAM, [*CHANNEL, answer])
    assert texts(transcript[-1]) == [
        catalogue.render("nl", "registration.channel_retry", options=OPTIONS["nl"])
    ]


SIGN_UP_REQUEST = (
    "mijn buurvrouw zei dat ik me moest aanmelden … mijn postcode is 7511 AB en ik woon op nummer 12"
)


@pytest.mark.parametrize("person", [SMS, WHATSAPP, TELEGRAM], ids=["sms", "whatsapp", "telegram"])
async def test_a_sign_up_request_with_an_address_confirms_it_instead_of_asking(
    converse: Converse, catalogue: Catalogue, sessions: SessionFactory, person: Person
) -> None:
    phone_step = ["jep"] if person is not TELEGRAM else [Contact(SMS_PHONE)]
    transcript = await converse(person, [SIGN_UP_REQUEST, "ja", "jan", "klopt", *phone_step, "sms"])
    nl = lambda key, **p: catalogue.render("nl", key, **p)  # noqa: E731
    assert texts(transcript[0]) == [nl("registration.consent", version="2026-1", url=PRIVACY_URL)]
    assert texts(transcript[2]) == [
        nl(
            "registration.confirm_given_address",
            address="7511 AB 12",
            place="Enschede",
            municipality="Enschede",
        )
    ]
    assert last(transcript).text == nl("registration.welcome", channel="SMS", place="Enschede")
    [address] = rows(sessions, Address)
    assert (address.postcode, address.house_number) == ("7511 AB", 12)


async def test_a_given_address_that_is_wrong_is_asked_for(
    converse: Converse, catalogue: Catalogue, sessions: SessionFactory
) -> None:
    transcript = await converse(SMS, [SIGN_UP_REQUEST, "ja", "overslaan", "nee hoor", "7522 nb 1", "ja"])
    assert texts(transcript[3]) == [catalogue.render("nl", "address.ask_again")]
    assert transcript[5][0].text == catalogue.render(
        "nl", "registration.confirm_phone", phone="+31 6 ****5678"
    )


@pytest.mark.parametrize(
    ("text", "address"),
    [
        pytest.param(SIGN_UP_REQUEST, "7511 AB 12", id="issue-example"),
        pytest.param("kan ik me inschrijven? 7511ab 12", "7511 AB 12", id="postcode-then-number"),
        pytest.param(
            "hoi ik wil graag meedoen mijn adres is 7522 nb 4a", "7522 NB 4-A", id="meedoen-addition"
        ),
        pytest.param("wil me aanmelde 7511 AB huisnummer 3", "7511 AB 3", id="typo-huisnummer"),
        pytest.param("hoe kan ik deelnemen aan burgernet", None, id="deelnemen-no-address"),
        pytest.param("registreren graag, ik woon in 7511", None, id="pc4-only"),
        pytest.param("doe mee! 7511 AB of 7522 NB 4", None, id="two-postcodes-ask"),
        pytest.param("I want to sign up 7511 AB 12", "7511 AB 12", id="english"),
    ],
)
async def test_sign_up_requests_start_registration_with_what_they_hold(
    converse: Converse, catalogue: Catalogue, text: str, address: str | None
) -> None:
    transcript = await converse(SMS, [text, "ja", "jan"])
    assert texts(transcript[0]) == [
        catalogue.render("nl", "registration.consent", version="2026-1", url=PRIVACY_URL)
    ]
    if address is None:
        assert texts(transcript[2]) == [catalogue.render("nl", "address.ask_home")]
    else:
        assert transcript[2][0].text.startswith(f"Is uw adres {address} in ")


@pytest.mark.parametrize(
    "text",
    [
        "ik zag een man bij 7511 AB 12 weglopen",
        "wat is burgernet eigenlijk",
        "mijn buurvrouw is haar kat kwijt",
        "ik heb me afgemeld",
    ],
)
async def test_other_messages_from_strangers_are_no_sign_up(
    converse: Converse, sessions: SessionFactory, text: str
) -> None:
    await converse(SMS, [text])
    assert [s.flow for s in rows(sessions, ConversationState)] != ["registration"]
