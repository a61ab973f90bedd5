"""Following an area without an address: VOLG, VOLG NIET, a shared location, STOP, MIJN GEGEVENS."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import MetaData, select

from bot.texts import Catalogue
from storage.db import SessionFactory
from storage.models import AuditEvent, ChannelIdentity, FollowedArea, Participant, ParticipantStatus
from storage.vocabulary import GeoPoint
from tests.conftest import FixedClock
from tests.flows.conftest import (
    SMS,
    TELEGRAM,
    WHATSAPP,
    Converse,
    Person,
    incoming,
    last,
    register_steps,
    rows,
    texts,
)

CHATS = [TELEGRAM, WHATSAPP]
PRIVACY_URL = "http://127.0.0.1:8080/privacy"
# Near the centre of PC4 7511 (Enschede), as a phone would share it: more digits than anyone needs.
NEAR_7511 = GeoPoint(52.2203417, 6.9012583)


def consent(catalogue: Catalogue, person: Person, pc4: str, lang: str = "nl") -> str:
    url = PRIVACY_URL if lang == "nl" else f"{PRIVACY_URL}/en"
    return catalogue.render(lang, f"follow.consent_{person.channel.value}", pc4=pc4, url=url)


def followers(sessions: SessionFactory) -> list[tuple[str, int]]:
    return sorted((a.pc4, a.participant_id) for a in rows(sessions, FollowedArea))


def raw_database(sessions: SessionFactory) -> str:
    """Every value in every table, as text: what someone with the database file would read."""
    with sessions() as session:
        connection = session.connection()
        meta = MetaData()
        meta.reflect(bind=connection)
        values = []
        for table in meta.sorted_tables:
            for row in connection.execute(select(table)):
                values.extend(str(v) for v in row)
        return "\n".join(values)


@pytest.mark.parametrize("person", CHATS, ids=lambda p: p.channel.value)
async def test_follow_by_postcode(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue, person: Person
) -> None:
    transcript = await converse(person, ["VOLG 7511", "JA"])
    assert texts(transcript[0]) == [consent(catalogue, person, "7511")]
    assert transcript[0][0].buttons == ("JA", "NEE")
    assert last(transcript).text == catalogue.render("nl", "follow.followed", pc4="7511", place="Enschede")
    [participant] = rows(sessions, Participant)
    assert participant.status is ParticipantStatus.ACTIVE
    assert (participant.name_enc, participant.phone_enc, participant.phone_hash) == (None, None, None)
    assert participant.preferred_channel is person.channel
    assert participant.consent_version == "2026-1"
    assert followers(sessions) == [("7511", participant.id)]


@pytest.mark.parametrize("person", CHATS, ids=lambda p: p.channel.value)
async def test_follow_by_shared_location(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue, clock: FixedClock, person: Person
) -> None:
    shared = incoming(person, "", clock, location=NEAR_7511)
    transcript = await converse(person, ["VOLGEN", shared, "ja"])
    assert texts(transcript[0]) == [catalogue.render("nl", "follow.ask_area")]
    assert transcript[0][0].request_location
    assert texts(transcript[1]) == [consent(catalogue, person, "7511")]
    assert last(transcript).text.startswith("U volgt nu 7511 (Enschede)")
    assert [a.pc4 for a in rows(sessions, FollowedArea)] == ["7511"]


async def test_shared_location_is_never_stored_nor_logged(
    converse: Converse, sessions: SessionFactory, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    shared = incoming(TELEGRAM, "", clock, location=NEAR_7511)
    await converse(TELEGRAM, ["/volg", shared, "JA", "MIJN GEGEVENS"])
    assert [a.pc4 for a in rows(sessions, FollowedArea)] == ["7511"]
    stored = raw_database(sessions)
    assert "7511" in stored  # the dump does read the followed areas
    logged = caplog.text
    for digits in ("52.22034", "6.90125", "52.2203", "6.9012"):
        assert digits not in stored
        assert digits not in logged


async def test_a_location_far_from_any_postcode_is_explained(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue, clock: FixedClock
) -> None:
    north_sea = incoming(TELEGRAM, "", clock, location=GeoPoint(53.4, 3.6))
    abroad = incoming(TELEGRAM, "", clock, location=GeoPoint(48.8566, 2.3522))
    transcript = await converse(TELEGRAM, ["VOLG", north_sea, abroad, "7511"])
    not_found = catalogue.render("nl", "follow.location_not_found")
    assert texts(transcript[1]) == [not_found]
    assert texts(transcript[2]) == [not_found]
    assert transcript[1][0].request_location
    assert texts(transcript[3]) == [consent(catalogue, TELEGRAM, "7511")]
    assert rows(sessions, Participant) == []


async def test_a_postcode_we_cannot_use_is_asked_again(converse: Converse, catalogue: Catalogue) -> None:
    transcript = await converse(TELEGRAM, ["VOLG 1000", "bij de kerk", "7511 AB"])
    assert texts(transcript[0]) == [
        catalogue.render("nl", "follow.unknown_area", pc4="1000"),
        catalogue.render("nl", "follow.ask_area"),
    ]
    assert texts(transcript[1]) == [catalogue.render("nl", "follow.bad_area")]
    assert transcript[1][0].request_location
    assert texts(transcript[2]) == [consent(catalogue, TELEGRAM, "7511")]


async def test_saying_no_keeps_nothing(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    transcript = await converse(WHATSAPP, ["VOLG 7511", "NEE"])
    assert last(transcript).text == catalogue.render("nl", "follow.no_consent")
    assert rows(sessions, Participant) == []
    assert rows(sessions, FollowedArea) == []


async def test_sms_is_refused_politely(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    transcript = await converse(SMS, ["VOLG 7511", "ONTVOLG"])
    assert texts(transcript[0]) == [catalogue.render("nl", "follow.chat_only")]
    assert texts(transcript[1]) == [catalogue.render("nl", "follow.none_followed")]
    assert rows(sessions, Participant) == []


async def test_help_tells_a_newcomer_on_a_chat_of_following_and_not_on_sms(
    converse: Converse, catalogue: Catalogue
) -> None:
    [on_telegram] = await converse(TELEGRAM, ["HULP"])
    [by_sms] = await converse(SMS, ["HULP"])
    assert texts(on_telegram) == [catalogue.render("nl", "help.unregistered_chat")]
    assert "VOLG 7511" in on_telegram[0].text
    assert texts(by_sms) == [catalogue.render("nl", "help.unregistered")]
    assert "VOLG" not in by_sms[0].text


async def test_help_tells_a_follower_the_areas_and_how_to_stop(
    converse: Converse, catalogue: Catalogue
) -> None:
    transcript = await converse(TELEGRAM, ["VOLG 7511", "JA", "VOLG 1012", "HELP", "ENGLISH", "HELP"])
    assert texts(transcript[3]) == [
        catalogue.render("nl", "help.follower", areas="1012 Amsterdam, 7511 Enschede")
    ]
    assert "VOLG NIET" in transcript[3][0].text and "VOORKEUREN" in transcript[3][0].text
    assert texts(transcript[5]) == [
        catalogue.render("en", "help.follower", areas="1012 Amsterdam, 7511 Enschede")
    ]


async def test_follow_in_english(converse: Converse, catalogue: Catalogue) -> None:
    transcript = await converse(
        TELEGRAM, ["ENGLISH", "FOLLOW 7511 AB", "yes", "follow 1012", "unfollow 7511"]
    )
    assert texts(transcript[1]) == [consent(catalogue, TELEGRAM, "7511", "en")]
    assert last(transcript[:3]).text == catalogue.render(
        "en", "follow.followed", pc4="7511", place="Enschede"
    )
    # Following a second area needs no second consent.
    assert texts(transcript[3]) == [catalogue.render("en", "follow.followed", pc4="1012", place="Amsterdam")]
    assert texts(transcript[4]) == [
        catalogue.render("en", "follow.unfollowed", pc4="7511", areas="1012 Amsterdam")
    ]


async def test_unfollow_one_then_the_last_erases(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    transcript = await converse(
        TELEGRAM,
        [
            "VOLG 7511",
            "JA",
            "VOLG 1012",
            "VOLG 1012",
            "ONTVOLG",
            "VOLG NIET 7522",
            "VOLG NIET 7511",
            "ONTVOLG",
        ],
    )
    assert texts(transcript[3]) == [catalogue.render("nl", "follow.already", pc4="1012", place="Amsterdam")]
    assert texts(transcript[4]) == [
        catalogue.render("nl", "follow.which_area", areas="1012 Amsterdam, 7511 Enschede")
    ]
    assert texts(transcript[5]) == [
        catalogue.render("nl", "follow.not_followed", pc4="7522", areas="1012 Amsterdam, 7511 Enschede")
    ]
    assert texts(transcript[6]) == [
        catalogue.render("nl", "follow.unfollowed", pc4="7511", areas="1012 Amsterdam")
    ]
    assert texts(transcript[7]) == [catalogue.render("nl", "follow.unfollowed_last", pc4="1012")]
    [participant] = rows(sessions, Participant)
    assert participant.status is ParticipantStatus.UNSUBSCRIBED
    assert rows(sessions, FollowedArea) == []
    [identity] = rows(sessions, ChannelIdentity)
    assert identity.participant_id is None
    # Not an opt-out: they may follow again, and are asked for consent again.
    again = await converse(TELEGRAM, ["VOLG 7511"])
    assert texts(again[0]) == [consent(catalogue, TELEGRAM, "7511")]


@pytest.mark.parametrize("person", CHATS, ids=lambda p: p.channel.value)
async def test_stop_erases_a_follower(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue, person: Person
) -> None:
    transcript = await converse(person, ["VOLG 7511", "JA", "VOLG 1012", "STOP", "MIJN GEGEVENS"])
    assert texts(transcript[3]) == [catalogue.render("nl", "unsubscribe.stopped")]
    assert rows(sessions, FollowedArea) == []
    [participant] = rows(sessions, Participant)
    assert participant.status is ParticipantStatus.UNSUBSCRIBED
    assert participant.consent_at is not None  # the anonymous count keeps its dates, as for anyone
    [identity] = rows(sessions, ChannelIdentity)
    assert (identity.participant_id, identity.address_enc, identity.opted_out) == (None, None, True)


async def test_my_data_on_telegram_shows_the_chat_and_the_areas(converse: Converse) -> None:
    transcript = await converse(TELEGRAM, ["VOLG 7511", "JA", "VOLG 1012", "MIJN GEGEVENS"])
    assert transcript[-1][0].text.splitlines() == [
        "Dit weten we van u:",
        "U volgt: 1012 Amsterdam, 7511 Enschede",
        "Bereikbaar via: deze Telegram-chat (versleuteld bewaard)",
        "Geen naam, adres of ander nummer.",
        "Akkoord: versie 2026-1 op 20-11-2026",
        "Gebied stoppen: VOLG NIET en de postcode. Alles wissen: STOP.",
    ]


async def test_my_data_on_whatsapp_says_the_number_is_kept(
    converse: Converse, sessions: SessionFactory
) -> None:
    transcript = await converse(WHATSAPP, ["VOLG 7511", "JA", "ENGLISH", "MY DATA"])
    lines = transcript[-1][0].text.splitlines()
    assert lines[1] == "You follow: 7511 Enschede"
    assert lines[2] == (
        "Reached via: your WhatsApp number +31 6 ****4321"
        " (stored encrypted; without it we cannot reply to you)"
    )
    assert all("687654321" not in r.text for r in transcript[-1])
    assert "personal_data_shown" in [e.event for e in rows(sessions, AuditEvent)]


async def test_a_registered_person_follows_an_extra_area_on_the_same_registration(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    await converse(WHATSAPP, register_steps(WHATSAPP, channel="WhatsApp"))
    transcript = await converse(WHATSAPP, ["VOLG 1012", "MIJN GEGEVENS"])
    # Registered: consent was given, so no second privacy statement.
    assert texts(transcript[0]) == [catalogue.render("nl", "follow.followed", pc4="1012", place="Amsterdam")]
    [participant] = rows(sessions, Participant)
    assert followers(sessions) == [("1012", participant.id)]
    shown = texts(transcript[1])
    assert shown[0].startswith("Dit weten we van u:\nNaam: Jan")
    assert catalogue.render("nl", "mydata.followed_areas", areas="1012 Amsterdam") in shown
    # STOP erases the followed area with the rest.
    await converse(WHATSAPP, ["STOP"])
    assert rows(sessions, FollowedArea) == []


async def test_registration_on_a_chat_offers_an_area_only(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue, clock: FixedClock
) -> None:
    transcript = await converse(TELEGRAM, ["START", "GEBIED", "7511", "JA"])
    assert transcript[0][0].buttons == ("JA", "NEE", "GEBIED")
    assert texts(transcript[1]) == [catalogue.render("nl", "follow.ask_area")]
    assert texts(transcript[2]) == [consent(catalogue, TELEGRAM, "7511")]
    assert last(transcript).text.startswith("U volgt nu 7511 (Enschede)")
    [participant] = rows(sessions, Participant)
    assert participant.phone_hash is None


async def test_registration_on_whatsapp_with_a_shared_location_at_the_first_question(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue, clock: FixedClock
) -> None:
    shared = incoming(WHATSAPP, "", clock, location=NEAR_7511)
    transcript = await converse(WHATSAPP, ["aanmelden", shared, "ja"])
    assert texts(transcript[1]) == [consent(catalogue, WHATSAPP, "7511")]
    assert last(transcript).text.startswith("U volgt nu 7511 (Enschede)")


async def test_a_location_at_the_address_question_names_the_postcode_area(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue, clock: FixedClock
) -> None:
    shared = incoming(TELEGRAM, "", clock, location=NEAR_7511)
    transcript = await converse(TELEGRAM, ["START", "JA", "Jan", shared, "7511 AB 12"])
    assert texts(transcript[3]) == [
        catalogue.render("nl", "address.location_found", pc4="7511", place="Enschede")
    ]
    assert last(transcript).text.startswith("7511 AB 12: is dit Enschede")
    assert "52.2203" not in raw_database(sessions)


async def test_sms_registration_offers_no_area(converse: Converse, catalogue: Catalogue) -> None:
    transcript = await converse(SMS, ["START", "GEBIED"])
    assert transcript[0][0].buttons == ("JA", "NEE")
    assert texts(transcript[1]) == [catalogue.render("nl", "registration.consent_retry")]
