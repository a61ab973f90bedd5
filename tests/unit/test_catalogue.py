"""The catalogues: Dutch and English have the same keys and placeholders; chat texts fit an SMS budget."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.channels.segments import count_segments, is_gsm7
from bot.texts import Catalogue

# The areas whose texts are replies in a conversation, and so may go out as SMS.
CONVERSATION_AREAS = (
    "common", "channels", "router", "registration", "address", "unsubscribe", "mydata", "help", "greet",
    "fallback", "language", "preferences", "follow",
)  # fmt: skip
# Long but realistic values for every placeholder (the longest PC4 place and municipality names).
SAMPLE = {
    "version": "2026-12",
    "place": "Sint Michielsgestel-Noord",
    "municipality": "Alphen-Chaam-Baarle-Nassau",
    "address": "7511 AB 12345-ABCD",
    "postcode": "7511 AB",
    "phone": "+31 6 ****5678",
    "channel": "WhatsApp",
    "options": "Telegram, WhatsApp, SMS, Telefoon",
    "max": 60,
    "minutes": 10,
    "code": "123456",
    "digits": "1, 2, 3, 4, 5, 6",
    "slot": 3,
    "window": "ma, wo, vr 08:30-17:30",
    "name": "Johanna Wilhelmina",
    "preferred": "WhatsApp",
    "channels": "SMS, Telegram, WhatsApp",
    "consent_date": "20-11-2026",
    "pc4": "7511",
    "areas": "7511 Sint Michielsgestel-Noord, 5271 Sint Michielsgestel-Noord",
    "identity": "uw WhatsApp-nummer +31 6 ****5678 (versleuteld bewaard; zonder kunnen we u niet antwoorden)",
    # PUBLIC_BASE_URL/privacy (the English page's, the longer): a production host of ordinary length.
    "url": "https://burgernet.example.nl/privacy/en",
    # mydata.summary's exercise line (missing here, so the walk over the catalogue raised KeyError).
    "exercises": "uit (OEFENINGEN AAN om mee te doen)",
    # Preferences and the history of MIJN GEGEVENS.
    "skipped": "vermissingen, overvallen, doorrijden na een ongeval, inbraken, gestolen voertuigen",
    "quiet": "ma, wo, vr 22:30-06:30",
    "kind": "doorrijden na een ongeval",
    "word": "HIT AND RUN",
    "alerts": 365,
    "tips": 120,
    "count": 120,
    "hours": 24,
    "date": "20-11-2026",
    "type": "Doorrijden na ongeval",
    "text": "Ik zag twee mannen met een koevoet bij nummer 14, ze liepen richting het station.",
    "alert_lines": "\n".join("- 20-11-2026 BN-4K7P: Doorrijden na ongeval" for _ in range(10)),
    "tip_lines": "\n".join(f"- 20-11-2026 bij BN-4K7P: {'x' * 120}" for _ in range(10)),
}
# The export link: a production host and the token as MIJN GEGEVENS EXPORT makes it (22 characters).
EXPORT_URL = "https://burgernet.example.nl/mijn-gegevens/" + "A" * 22
THREE_ADDRESSES = "\n".join(f"{n}. 7511 AB 12-A, Sint Michielsgestel (ma-vr 09:00-17:00)" for n in (1, 2, 3))
# My data lists up to three addresses (a follower's: up to five areas), preferences up to five kinds: three
# parts; the chat history (never sent by SMS) lists up to ten alerts and ten tips.
LONGER = {"mydata.summary": 3, "mydata.follower": 3, "preferences.summary": 3, "mydata.history_chat": 20}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load()


def conversation_keys(catalogue: Catalogue) -> list[str]:
    return sorted(k for k in catalogue.keys("nl") if k.split(".", 1)[0] in CONVERSATION_AREAS)


def test_same_keys_in_both_languages(catalogue: Catalogue) -> None:
    assert catalogue.keys("nl") == catalogue.keys("en")


def test_same_placeholders_in_both_languages(catalogue: Catalogue) -> None:
    different = {
        key: (catalogue.placeholders("nl", key), catalogue.placeholders("en", key))
        for key in catalogue.keys("nl")
        if catalogue.placeholders("nl", key) != catalogue.placeholders("en", key)
    }
    assert different == {}


def test_no_empty_conversation_texts(catalogue: Catalogue) -> None:
    for lang in ("nl", "en"):
        assert [
            k for k in conversation_keys(catalogue) if not catalogue.render(lang, k, **SAMPLE, addresses="-")
        ] == []


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_conversation_texts_fit_their_sms_budget(catalogue: Catalogue, lang: str) -> None:
    too_long = {}
    for key in conversation_keys(catalogue):
        text = catalogue.render(lang, key, **SAMPLE, addresses=THREE_ADDRESSES)
        count = count_segments(text)
        if count.segments > LONGER.get(key, 2):
            too_long[key] = (count.segments, len(text))
    assert too_long == {}


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_conversation_texts_are_plain_gsm7(catalogue: Catalogue, lang: str) -> None:
    # One character outside GSM-7 would make an SMS UCS-2: 70 characters a part instead of 160.
    assert [
        k
        for k in conversation_keys(catalogue)
        if not is_gsm7(catalogue.render(lang, k, **SAMPLE, addresses=""))
    ] == []


def test_conversation_areas_exist(catalogue: Catalogue) -> None:
    areas = {k.split(".", 1)[0] for k in catalogue.keys("nl")}
    assert set(CONVERSATION_AREAS) <= areas


# Keys built at run time from a variable part, and the values that part takes.
DYNAMIC_KEYS = {
    "registration.phone_{}": ("not_a_number", "not_mobile", "not_eu"),
    "registration.sender_{}": ("not_a_number", "not_mobile", "not_eu"),
    "channels.{}": ("sms", "whatsapp", "telegram", "voice"),
    "address.button_{}": ("change", "add", "remove"),
    "follow.consent_{}": ("telegram", "whatsapp"),
    "follow.identity_{}": ("telegram", "whatsapp"),
}
_LITERAL_KEY = re.compile(
    r"""(?:\.say|\.t|\.ask_yes_no|render)\(\s*(?:\w+,\s*)?["']([a-z_]+\.[a-z_.]+)["']"""
)
_CONDITIONAL_KEY = re.compile(
    r"""["']((?:registration|address|unsubscribe|help|greet|fallback|mydata|router|follow)\.[a-z_]+)["']"""
)


def test_every_key_the_flows_use_exists(catalogue: Catalogue) -> None:
    root = Path(__file__).resolve().parents[2]
    sources = [*(root / "bot" / "flows").glob("*.py"), root / "bot" / "conversations.py"]
    used = set()
    for source in sources:
        text = source.read_text(encoding="utf-8")
        used |= set(_LITERAL_KEY.findall(text)) | set(_CONDITIONAL_KEY.findall(text))
    for pattern, values in DYNAMIC_KEYS.items():
        used |= {pattern.format(v) for v in values}
    assert len(used) > 40
    assert sorted(k for k in used if not catalogue.has(k, "nl") or not catalogue.has(k, "en")) == []


# The flows' questions, and the placeholders they take beyond SAMPLE.
QUESTION_AREAS = (
    "common",
    "registration",
    "address",
    "unsubscribe",
    "reconfirm",
    "tip",
    "relay",
    "preferences",
    "follow",
)
# A question, or a re-ask after an answer we could not use ("Stuur uw voornaam, of OVERSLAAN.").
QUESTION_KEY = re.compile(
    r"\.(ask_|confirm|consent|question|reminder|followup_|which_|bad_|missing_|unknown_|phone_|area_)"
    r"|_retry$|rules$|_empty$|\.empty$|_invalid$|_too_long$|_bad$"
)
QUESTION_SAMPLE = {
    **SAMPLE,
    "expires": "20-12-2026",
    "code": "BN-4K7P",
    "count": 3,
    "min": "0,5",
    "max": 25,
    "place": "Sint Michielsgestel-Noord",
    "postcodes": "7511, 7512",
    "platform": "WhatsApp",
    "area": "1,5 km rond Sint Michielsgestel-Noord",
    "members": 120,
    "n": 2,
    "km": "1,5",
    "question": "Welke kant liep hij op?",
    "outcome": "Gevonden",
    "bot": "BurgernetBot",
    **dict.fromkeys(("id", "relays", "tips"), 12),
    **dict.fromkeys(("reporter", "text", "label", "value", "groups"), "-"),
    "headline": "Overval op juwelier aan de Markt",
    "addresses": THREE_ADDRESSES,
    "options": "1. BN-4K7P: Vermist: jongen (8), blauwe jas\n2. BN-7QX2: Overval op juwelier aan de Markt",
}
# Questions allowed more than one part, and why.
LONGER_QUESTIONS = {
    "address.choose": "lists up to three addresses",
    "address.ask_remove": "lists up to three addresses",
    "tip.which_action": "lists the running alerts the sender got",
    "follow.which_area": "lists up to five followed areas",
    "registration.consent_chat": "Telegram and WhatsApp only (offers following an area), never sent as SMS",
    "relay.group_rules": "posted in a Telegram group by the bot, never sent as SMS",
    "reconfirm.question_call": "spoken in a call to someone who signed up by phone, never sent as SMS",
}


def _asks(text: str) -> bool:
    return text.endswith(("?", "(JA/NEE)"))


def question_keys(catalogue: Catalogue) -> list[str]:
    return sorted(
        k
        for k in catalogue.keys("nl")
        if k.split(".", 1)[0] in QUESTION_AREAS
        and (QUESTION_KEY.search(k) or _asks(catalogue.render("nl", k, **QUESTION_SAMPLE)))
    )


def test_the_question_walk_finds_every_flow() -> None:
    keys = set(question_keys(Catalogue.load()))
    expected = {
        "registration.consent", "registration.ask_name", "address.ask_home", "address.confirm_place",
        "unsubscribe.confirm", "reconfirm.question", "tip.followup_both", "relay.rules", "relay.ask_members",
        "common.yes_no_retry", "registration.consent_chat", "follow.ask_area", "follow.consent_whatsapp",
    }  # fmt: skip
    assert expected <= keys


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_every_question_of_a_flow_is_one_sms_part(catalogue: Catalogue, lang: str) -> None:
    too_long = {}
    for key in question_keys(catalogue):
        text = catalogue.render(lang, key, **QUESTION_SAMPLE)
        count = count_segments(text)
        if count.segments > 1 and key not in LONGER_QUESTIONS:
            too_long[key] = (count.segments, len(text), text)
    assert too_long == {}


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_consent_links_the_privacy_statement_in_one_sms_part(catalogue: Catalogue, lang: str) -> None:
    for key in ("registration.consent", "registration.consent_update"):
        text = catalogue.render(lang, key, **SAMPLE)
        assert SAMPLE["url"] in text
        assert count_segments(text).segments == 1, text


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_the_export_link_and_the_sms_history_fit_one_sms_part(catalogue: Catalogue, lang: str) -> None:
    link = catalogue.render(lang, "mydata.export_link", url=EXPORT_URL, hours=24)
    history = catalogue.render(lang, "mydata.history_sms", **SAMPLE)
    assert [count_segments(link).segments, count_segments(history).segments] == [1, 1], (link, history)
