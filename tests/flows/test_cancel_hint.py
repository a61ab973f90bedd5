"""Every question that a cancel word can end says how: "(of: laat maar)", and that word does end it."""

from __future__ import annotations

import pytest

from bot.flows.keywords import Keyword, keyword_of
from storage.db import SessionFactory
from storage.models import ConversationState
from tests.flows.conftest import SMS, TELEGRAM, Contact, Converse, register_steps, rows

HINTS = {"nl": ("(of: laat maar)", "laat maar"), "en": ("(or: never mind)", "never mind")}
# Questions whose NEE is already the way out (nothing changes) need no second one: unsubscribing, and
# the consent question (NEE stores nothing; it must fit one SMS part with the privacy link).
NO_IS_THE_WAY_OUT = (
    "Wilt u zich afmelden?",
    "Do you want to unsubscribe?",
    "Burgernet bewaart uw nummer",
    "Burgernet keeps your number",
    "U bent al aangemeld; zo werkt u",
    "You are registered; this updates",
)

CONVERSATIONS = {
    "registration-sms-with-mistakes": (SMS, "nl", [
        "aanmelden", "misschien", "jep", "J@n!", "jan", "7511", "75 11 AB 12", "nee", "7511 ab 12", "jawel",
        "hmm", "klopt", "duif", "sms",
    ]),
    "registration-telegram": (TELEGRAM, "nl", [
        "/start", "ja", "overslaan", "7511 AB 12", "ja", "0101234567", Contact("+31612345678"), "telegram",
    ]),
    "registration-in-english": (SMS, "en", [
        "ENGLISH", "START", "yes", "skip", "7511 AB 12", "yep", "yes", "sms",
    ]),
    "address-change-add-remove": (SMS, "nl", [
        *register_steps(SMS), "adres", "iets", "toevoegen", "1012 AB 5", "ja", "soms", "weekend", "adres",
        "verwijderen", "nee hoor",
    ]),
}  # fmt: skip


@pytest.mark.parametrize("name", CONVERSATIONS)
async def test_every_open_question_says_how_to_cancel(
    converse: Converse, sessions: SessionFactory, name: str
) -> None:
    person, lang, messages = CONVERSATIONS[name]
    hint, word = HINTS[lang]
    assert keyword_of(word) is Keyword.CANCEL
    asked, step = 0, None
    for message in messages:
        [replies] = await converse(person, [message])
        states = rows(sessions, ConversationState)
        now_at = (states[0].flow, states[0].step) if states else None
        # A new question (not a correction of the answer to the same one).
        if now_at is not None and now_at != step and not replies[-1].text.startswith(NO_IS_THE_WAY_OUT):
            asked += 1
            assert hint in replies[-1].text, (message, replies[-1].text)
        step = now_at
    assert asked >= 5
