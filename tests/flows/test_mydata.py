"""MIJN GEGEVENS: everything we keep, the number masked, and the request audited."""

from __future__ import annotations

from bot.texts import Catalogue
from storage.db import SessionFactory
from storage.models import AuditEvent
from tests.flows.conftest import SMS, TELEGRAM, Converse, last, register_steps, rows, texts


async def test_my_data_shows_everything_masked(converse: Converse, sessions: SessionFactory) -> None:
    add = ["ADRES", "TOEVOEGEN", "1012 AB 5", "JA", "ma-vr 09:00-17:00"]
    transcript = await converse(SMS, [*register_steps(SMS), *add, "MIJN GEGEVENS"])
    text = last(transcript).text
    assert text.splitlines() == [
        "Dit weten we van u:",
        "Naam: Jan",
        "Mobiel: +31 6 ****5678",
        "1. 7511 AB 12, Enschede (woonadres)",
        "2. 1012 AB 5, Amsterdam (ma-vr 09:00-17:00)",
        "Berichten via: SMS",
        "Kanalen: SMS",
        "Akkoord: versie 2026-1 op 20-11-2026",
        "Wijzigen: ADRES of START. Wissen: STOP.",
    ]
    assert "612345678" not in text
    assert "personal_data_shown" in [e.event for e in rows(sessions, AuditEvent)]


async def test_my_data_in_english_with_two_channels(converse: Converse) -> None:
    await converse(SMS, register_steps(SMS, name="-"))
    transcript = await converse(
        TELEGRAM, [*register_steps(TELEGRAM, name="-", channel="Telegram"), "ENGLISH", "my data"]
    )
    lines = last(transcript).text.splitlines()
    assert lines[1] == "Name: (none)"
    assert "Messages via: Telegram" in lines
    assert "Channels: SMS, Telegram" in lines


async def test_my_data_when_not_registered(converse: Converse, catalogue: Catalogue) -> None:
    transcript = await converse(TELEGRAM, ["/mijngegevens"])
    assert texts(transcript[0]) == [catalogue.render("nl", "mydata.none", channel="Telegram")]


async def test_free_text_asks_for_my_data(converse: Converse) -> None:
    transcript = await converse(SMS, [*register_steps(SMS), "wat weten jullie van mij?"])
    assert last(transcript).text.startswith("Dit weten we van u:")
