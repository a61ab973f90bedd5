"""MIJN GEGEVENS: everything we keep, the number masked, and the request audited."""

from __future__ import annotations

from bot.texts import Catalogue
from storage.db import SessionFactory
from storage.models import AuditEvent, Participant
from tests.flows.conftest import SMS, TELEGRAM, Converse, register_steps, rows, texts


async def test_my_data_shows_everything_masked(converse: Converse, sessions: SessionFactory) -> None:
    add = ["ADRES", "TOEVOEGEN", "1012 AB 5", "JA", "ma-vr 09:00-17:00"]
    transcript = await converse(SMS, [*register_steps(SMS), *add, "MIJN GEGEVENS"])
    text = transcript[-1][0].text
    assert text.splitlines() == [
        "Dit weten we van u:",
        "Naam: Jan",
        "Telefoon: +31 6 ****5678",
        "1. 7511 AB 12, Enschede (woonadres)",
        "2. 1012 AB 5, Amsterdam (ma-vr 09:00-17:00)",
        "Berichten via: SMS",
        "Kanalen: SMS",
        "Akkoord: versie 2026-1 op 20-11-2026",
        "Oefenberichten: uit (OEFENINGEN AAN om mee te doen)",
        "Wijzigen: ADRES of START. Wissen: STOP.",
    ]
    assert "612345678" not in text
    assert "personal_data_shown" in [e.event for e in rows(sessions, AuditEvent)]


async def test_my_data_in_english_with_two_channels(converse: Converse) -> None:
    await converse(SMS, register_steps(SMS, name="-"))
    transcript = await converse(
        TELEGRAM, [*register_steps(TELEGRAM, name="-", channel="Telegram"), "ENGLISH", "my data"]
    )
    lines = transcript[-1][0].text.splitlines()
    assert lines[1] == "Name: (none)"
    assert "Messages via: Telegram" in lines
    assert "Channels: SMS, Telegram" in lines


async def test_my_data_when_not_registered(converse: Converse, catalogue: Catalogue) -> None:
    transcript = await converse(TELEGRAM, ["/mijngegevens"])
    assert texts(transcript[0]) == [catalogue.render("nl", "mydata.none", channel="Telegram")]


async def test_free_text_asks_for_my_data(converse: Converse) -> None:
    transcript = await converse(SMS, [*register_steps(SMS), "wat weten jullie van mij?"])
    assert transcript[-1][0].text.startswith("Dit weten we van u:")


async def test_exercises_on_and_off_by_keyword_shown_in_my_data(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    transcript = await converse(SMS, [*register_steps(SMS), "Oefeningen aan!", "MIJN GEGEVENS"])
    assert texts(transcript[-2]) == [catalogue.render("nl", "exercises.turned_on")]
    assert "Oefenberichten: aan (OEFENINGEN UIT om te stoppen)" in transcript[-1][0].text.splitlines()
    assert [p.exercises for p in rows(sessions, Participant)] == [True]
    transcript = await converse(SMS, ["OEFENINGEN UIT"])
    assert texts(transcript[0]) == [catalogue.render("nl", "exercises.turned_off")]
    assert [p.exercises for p in rows(sessions, Participant)] == [False]
    events = [e.event for e in rows(sessions, AuditEvent)]
    assert events.count("exercises_on") == 1 and events.count("exercises_off") == 1


async def test_exercises_in_english_and_only_for_the_registered(
    converse: Converse, catalogue: Catalogue
) -> None:
    transcript = await converse(TELEGRAM, ["/oefeningen_aan"])
    assert texts(transcript[0]) == [catalogue.render("nl", "exercises.not_registered")]
    transcript = await converse(
        TELEGRAM, [*register_steps(TELEGRAM, channel="Telegram"), "ENGLISH", "exercises on"]
    )
    assert texts(transcript[-1]) == [catalogue.render("en", "exercises.turned_on")]
    assert texts(transcript[-1])[0].startswith("From now on you also receive exercise messages")
