"""A coordinator registers a neighbourhood group as a relay: transcripts, bad answers, cancelling."""

from __future__ import annotations

import pytest
from sqlmodel import select

from bot.flows.relay import read_count, read_km
from bot.texts import Catalogue
from storage.db import SessionFactory
from storage.models import ChannelIdentity, ConversationState, Relay, RelayPlatform
from storage.relays import RELAY_RULES_VERSION
from storage.vocabulary import ChannelKind
from tests.flows.conftest import WHATSAPP_PHONE
from tests.relays.conftest import Chat, texts_of

WA = ChannelKind.WHATSAPP
REGISTER_7511 = ["BUURTAPP", "JA", "Buurtpreventie Roombeek", "WhatsApp", "7511", "ongeveer 80", "JA"]


def relays(sessions: SessionFactory) -> list[Relay]:
    with sessions() as session:
        return list(session.exec(select(Relay)))


def nl(catalogue: Catalogue, key: str, **params: object) -> str:
    return catalogue.render("nl", key, **params)


async def test_a_coordinator_registers_a_whatsapp_group_for_7511(
    chat: Chat, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    turns = await chat.say(WA, WHATSAPP_PHONE, REGISTER_7511)

    assert [texts_of(t) for t in turns] == [
        [nl(catalogue, "relay.rules")],
        [nl(catalogue, "relay.ask_name")],
        [nl(catalogue, "relay.ask_platform")],
        [nl(catalogue, "relay.ask_area")],
        [nl(catalogue, "relay.ask_members")],
        [
            nl(
                catalogue,
                "relay.confirm",
                name="Buurtpreventie Roombeek",
                platform="WhatsApp",
                area="7511",
                members=80,
            )
        ],
        [nl(catalogue, "relay.done", name="Buurtpreventie Roombeek")],
    ]
    assert turns[0][0].buttons == ("JA", "NEE")
    assert turns[2][0].buttons == ("WhatsApp", "Telegram", "Anders")
    [relay] = relays(sessions)
    assert (relay.group_name, relay.platform, relay.estimated_members) == (
        "Buurtpreventie Roombeek",
        RelayPlatform.WHATSAPP,
        80,
    )
    assert [p["pc4"] for p in relay.area["postcodes"]] == ["7511"]
    assert relay.municipalities == ["0153"]
    assert relay.rules_version == RELAY_RULES_VERSION and relay.active
    assert relay.group_identity_id is None
    with sessions() as session:
        coordinator = session.get(ChannelIdentity, relay.coordinator_identity_id)
        assert coordinator is not None and coordinator.channel is WA
        assert session.exec(select(ConversationState)).all() == []


async def test_a_circle_around_the_address_keeps_only_the_postcode_centre(
    chat: Chat, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    turns = await chat.say(
        ChannelKind.SMS,
        "+31612345678",
        [
            "buurtapp",
            "ja",
            "Whatsapp Lasondersingel",
            "anders",
            "ROND MIJN ADRES",
            "7511 AB 12",
            "1,5",
            "120",
            "ja",
        ],
    )

    assert texts_of(turns[5]) == [nl(catalogue, "relay.ask_radius", place="Enschede", min="0,5", max="5")]
    assert "1,5 km rond Enschede" in turns[7][0].text
    [relay] = relays(sessions)
    assert relay.platform is RelayPlatform.OTHER
    assert set(relay.area) == {"circle"} and relay.area["circle"]["radius_m"] == 1500
    assert set(relay.area["circle"]) == {"lat", "lon", "radius_m"}
    assert "0153" in relay.municipalities


@pytest.mark.parametrize(
    "word", ["BUURTAPP", "/buurtapp", "Buurtapp!", "groep aanmelden", "/buurtapp@BurgernetTestBot"]
)
async def test_the_start_words(chat: Chat, catalogue: Catalogue, word: str) -> None:
    [turn] = await chat.say(WA, WHATSAPP_PHONE, [word])
    assert texts_of(turn) == [nl(catalogue, "relay.rules")]


async def test_buurtapp_in_the_middle_of_a_registration_starts_the_relay(
    chat: Chat, catalogue: Catalogue
) -> None:
    turns = await chat.say(WA, WHATSAPP_PHONE, ["START", "BUURTAPP", "JA"])
    assert texts_of(turns[2]) == [nl(catalogue, "relay.ask_name")]


# (answers before the bad one, the bad answer, the reply key and its parameters)
BAD_ANSWERS = {
    "rules-unclear": ([], "misschien", "relay.rules_retry", {}),
    "name-with-link": (["JA"], "https://example.nl", "relay.name_invalid", {}),
    "name-only-marks": (["JA"], "!!!", "relay.name_invalid", {}),
    "name-too-long": (["JA"], "B" * 65, "relay.name_too_long", {"max": 64}),
    "platform-unknown": (["JA", "Groep"], "postduif", "relay.platform_retry", {}),
    "area-words": (["JA", "Groep", "WhatsApp"], "de hele wijk", "relay.area_bad", {}),
    "area-short-code": (["JA", "Groep", "WhatsApp"], "751", "relay.area_bad", {}),
    "area-pc6-mixed": (["JA", "Groep", "WhatsApp"], "7511 AB", "relay.area_bad", {}),
    "area-unknown": (["JA", "Groep", "WhatsApp"], "7511 1000", "relay.area_unknown", {"postcodes": "1000"}),
    "area-too-many": (
        ["JA", "Groep", "WhatsApp"],
        " ".join(str(7511 + n) for n in range(11)),
        "relay.area_too_many",
        {"max": 10},
    ),
    "address-missing-number": (
        ["JA", "Groep", "WhatsApp", "ROND MIJN ADRES"],
        "7511 AB",
        "address.missing_number",
        {"postcode": "7511 AB"},
    ),
    "radius-too-far": (
        ["JA", "Groep", "WhatsApp", "ROND MIJN ADRES", "7511 AB 12"],
        "12",
        "relay.radius_bad",
        {"min": "0,5", "max": "5"},
    ),
    "radius-words": (
        ["JA", "Groep", "WhatsApp", "ROND MIJN ADRES", "7511 AB 12"],
        "dichtbij",
        "relay.radius_bad",
        {"min": "0,5", "max": "5"},
    ),
    "members-words": (
        ["JA", "Groep", "WhatsApp", "7511"],
        "veel",
        "relay.members_bad",
        {"min": 2, "max": 100000},
    ),
    "members-one": (["JA", "Groep", "WhatsApp", "7511"], "1", "relay.members_bad", {"min": 2, "max": 100000}),
    "members-fraction": (
        ["JA", "Groep", "WhatsApp", "7511"],
        "2,5",
        "relay.members_bad",
        {"min": 2, "max": 100000},
    ),
    "confirm-unclear": (["JA", "Groep", "WhatsApp", "7511", "80"], "hmm", "common.yes_no_retry", {}),
}


@pytest.mark.parametrize(("before", "bad", "key", "params"), BAD_ANSWERS.values(), ids=BAD_ANSWERS.keys())
async def test_bad_answers_are_explained_and_the_question_stays(
    chat: Chat,
    sessions: SessionFactory,
    catalogue: Catalogue,
    before: list[str],
    bad: str,
    key: str,
    params: dict[str, object],
) -> None:
    turns = await chat.say(WA, WHATSAPP_PHONE, ["BUURTAPP", *before, bad])
    asked = turns[-2][-1]
    [answer] = turns[-1]
    assert answer.text == nl(catalogue, key, **params)
    assert answer.buttons == asked.buttons
    assert relays(sessions) == []


# (answers, the last reply's key)
ENDINGS = {
    "no-to-the-rules": (["BUURTAPP", "NEE"], "relay.no_consent"),
    "no-at-the-end": (REGISTER_7511[:-1] + ["NEE"], "relay.not_saved"),
    "cancelled": (["BUURTAPP", "JA", "Groep", "ANNULEER"], "router.cancelled"),
}


@pytest.mark.parametrize(("answers", "key"), ENDINGS.values(), ids=ENDINGS.keys())
async def test_ending_early_stores_nothing(
    chat: Chat, sessions: SessionFactory, catalogue: Catalogue, answers: list[str], key: str
) -> None:
    turns = await chat.say(WA, WHATSAPP_PHONE, answers)
    assert texts_of(turns[-1]) == [nl(catalogue, key)]
    assert relays(sessions) == []
    with sessions() as session:
        assert session.exec(select(ConversationState)).all() == []


async def test_in_english(chat: Chat, sessions: SessionFactory, catalogue: Catalogue) -> None:
    turns = await chat.say(
        WA, WHATSAPP_PHONE, ["ENGLISH", "BUURTAPP", "yes", "Roombeek Watch", "whatsapp", "7511", "80", "yes"]
    )
    assert texts_of(turns[1]) == [catalogue.render("en", "relay.rules")]
    assert turns[1][0].buttons == ("YES", "NO")
    assert texts_of(turns[-1]) == [catalogue.render("en", "relay.done", name="Roombeek Watch")]
    [relay] = relays(sessions)
    assert relay.language == "en"


async def test_my_data_shows_the_groups_a_coordinator_registered(chat: Chat, catalogue: Catalogue) -> None:
    await chat.say(WA, WHATSAPP_PHONE, REGISTER_7511)
    await chat.say(
        WA,
        WHATSAPP_PHONE,
        ["BUURTAPP", "JA", "Buurtapp Lasonder", "Anders", "ROND MIJN ADRES", "7511 AB 12", "2", "30", "JA"],
    )
    [turn] = await chat.say(WA, WHATSAPP_PHONE, ["MIJN GEGEVENS"])
    assert texts_of(turn) == [
        nl(
            catalogue,
            "relay.mydata",
            groups="- Buurtpreventie Roombeek (WhatsApp, 7511, ongeveer 80 leden)\n"
            "- Buurtapp Lasonder (Anders, 2 km rond uw postcode, ongeveer 30 leden)",
        )
    ]


async def test_my_data_of_a_registered_coordinator_adds_the_groups(chat: Chat, catalogue: Catalogue) -> None:
    from tests.flows.conftest import WHATSAPP, register_steps

    await chat.say(
        WA, WHATSAPP_PHONE, [s for s in register_steps(WHATSAPP, channel="WhatsApp") if isinstance(s, str)]
    )
    await chat.say(WA, WHATSAPP_PHONE, REGISTER_7511)
    [turn] = await chat.say(WA, WHATSAPP_PHONE, ["MIJN GEGEVENS"])
    # What we keep, the groups, then the alerts and tips of the last year.
    assert len(turn) == 3 and turn[0].text.startswith("Dit weten we van u:")
    assert "Buurtpreventie Roombeek" in turn[1].text


async def test_a_telegram_group_coordinator_hears_the_bot_can_post_itself(
    chat: Chat, catalogue: Catalogue
) -> None:
    turns = await chat.say(
        ChannelKind.TELEGRAM,
        "424242",
        ["/buurtapp", "ja", "Buurtapp Lasonder", "Telegram", "7511", "30", "ja"],
    )
    assert texts_of(turns[-1]) == [
        nl(catalogue, "relay.done", name="Buurtapp Lasonder"),
        nl(catalogue, "relay.telegram_hint", bot="BurgernetTestBot"),
    ]


# (the answer) → what is read from it
DISTANCES = {
    "comma": ("1,5", 1.5),
    "point-and-km": ("1.5 km", 1.5),
    "metres": ("500 m", 0.5),
    "words": ("ongeveer 2 kilometer", 2.0),
    "none": ("dichtbij", None),
}


@pytest.mark.parametrize(("text", "km"), DISTANCES.values(), ids=DISTANCES.keys())
def test_reading_a_distance(text: str, km: float | None) -> None:
    assert read_km(text) == km


COUNTS = {
    "plain": ("80", 80),
    "about": ("ongeveer 80 leden", 80),
    "tilde": ("~120", 120),
    "dutch-thousands": ("1.200", 1200),
    "range-takes-the-first": ("80-100", 80),
    "fraction": ("2,5", None),
    "words": ("veel", None),
}


@pytest.mark.parametrize(("text", "count"), COUNTS.values(), ids=COUNTS.keys())
def test_reading_a_member_count(text: str, count: int | None) -> None:
    assert read_count(text) == count
