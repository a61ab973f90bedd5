"""The relay flow's texts: the same keys in both languages, plain GSM-7, at most two SMS parts."""

from __future__ import annotations

import pytest

from bot.channels.segments import count_segments, is_gsm7
from bot.texts import Catalogue

# Long but realistic values for every placeholder of the relay texts.
SAMPLE = {
    "max": 100000,
    "min": "0,5",
    "postcodes": "7511, 7512, 7513",
    "place": "Sint Michielsgestel-Noord",
    "km": "2,5",
    "name": "B" * 64,
    "platform": "WhatsApp",
    "area": "7511, 7512, 7513, 7514, 7515, 7516, 7517, 7518, 7521, 7522",
    "members": 100000,
    "bot": "BurgernetAlertBot",
    "relays": 12,
    "tips": 3,
    "groups": "- Buurtpreventie Roombeek-Noord (WhatsApp, 7511, 7512, 7513, ongeveer 250 leden)",
}

GROUP_QUESTIONS = {
    "relay.group_rules",
    "relay.ask_name",
    "relay.ask_area",
    "relay.ask_address",
    "relay.ask_radius",
    "relay.ask_members",
}


def relay_keys(catalogue: Catalogue, lang: str) -> list[str]:
    return sorted(k for k in catalogue.keys(lang) if k.startswith("relay."))


def test_both_languages_have_the_relay_texts(catalogue: Catalogue) -> None:
    assert relay_keys(catalogue, "nl") == relay_keys(catalogue, "en")
    assert len(relay_keys(catalogue, "nl")) > 25


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_relay_texts_fit_two_plain_sms_parts(catalogue: Catalogue, lang: str) -> None:
    # The group dialogue adds its reply hint to its questions; with it they must fit too.
    hint = "\n" + catalogue.render(lang, "relay.group_reply_hint")
    too_long = {}
    for key in relay_keys(catalogue, lang):
        text = catalogue.render(lang, key, **SAMPLE) + (hint if key in GROUP_QUESTIONS else "")
        count = count_segments(text)
        if count.segments > 2 or not is_gsm7(text):
            too_long[key] = (count.segments, len(text))
    assert too_long == {}
