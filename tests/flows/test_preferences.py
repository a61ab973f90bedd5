"""VOORKEUREN, GEEN/WEL <soort>, STIL <uren>/STIL UIT on every channel, Dutch and English, audited."""

from __future__ import annotations

from datetime import time

import pytest

from bot.flows.keywords import Keyword, keyword_of
from bot.flows.preferences import Change, preference_command
from bot.texts import Catalogue
from storage.db import SessionFactory
from storage.models import ActionType, AlertPreference, AuditEvent
from tests.flows.conftest import SMS, TELEGRAM, WHATSAPP, Converse, Person, register_steps, rows, texts

CHANNELS = [
    pytest.param(SMS, "SMS", id="sms"),
    pytest.param(WHATSAPP, "WhatsApp", id="whatsapp"),
    pytest.param(TELEGRAM, "Telegram", id="telegram"),
]


@pytest.mark.parametrize(("person", "channel"), CHANNELS)
async def test_preferences_in_dutch(
    converse: Converse, sessions: SessionFactory, person: Person, channel: str
) -> None:
    steps = [
        "VOORKEUREN",
        "Geen inbraak",
        "geen voertuig",
        "STIL 23-7",
        "voorkeuren",
        "WEL INBRAAK",
        "STIL UIT",
    ]
    transcript = await converse(person, [*register_steps(person, channel=channel), *steps])
    shown, no_burglary, no_vehicle, quiet, shown_again, burglary_back, quiet_off = (
        texts(turn) for turn in transcript[-7:]
    )
    assert shown[0].splitlines()[:3] == [
        "Uw voorkeuren:",
        "Geen berichten over: niets, u krijgt alle soorten",
        "Stille uren: geen",
    ]
    assert no_burglary == [
        "U krijgt geen berichten meer over inbraken. Andere acties blijven komen. "
        "Toch weer wel? Stuur WEL INBRAAK."
    ]
    assert no_vehicle[0].startswith("U krijgt geen berichten meer over gestolen voertuigen.")
    assert quiet[0].startswith(
        "Stille uren: elke dag 23:00-07:00. Dan krijgt u geen berichten die kunnen wachten;"
    )
    assert shown_again[0].splitlines()[1:3] == [
        "Geen berichten over: inbraken, gestolen voertuigen",
        "Stille uren: elke dag 23:00-07:00",
    ]
    assert burglary_back == ["U krijgt weer berichten over inbraken."]
    assert quiet_off == ["Geen stille uren meer: u krijgt berichten op elk moment."]
    [row] = rows(sessions, AlertPreference)
    assert (row.skipped_types, row.quiet_start) == (",stolen_vehicle,", None)
    changes = [e.detail["change"] for e in rows(sessions, AuditEvent) if e.event == "preferences_changed"]
    assert changes == ["skip", "skip", "quiet", "allow", "quiet_off"]


@pytest.mark.parametrize(("person", "channel"), CHANNELS)
async def test_preferences_in_english(
    converse: Converse, sessions: SessionFactory, person: Person, channel: str
) -> None:
    steps = ["ENGLISH", "preferences", "SKIP BURGLARY", "quiet mon-fri 22:30-6:30", "no missing"]
    transcript = await converse(person, [*register_steps(person, channel=channel), *steps])
    shown, skip, quiet, no_missing = (texts(turn) for turn in transcript[-4:])
    assert shown[0].splitlines()[-1].startswith("Change: SKIP BURGLARY or ALLOW BURGLARY")
    assert skip == [
        "You no longer get alerts about burglaries. Other alerts keep coming. "
        "Want them again? Send ALLOW BURGLARY."
    ]
    assert quiet[0].startswith("Quiet hours: Mon-Fri 22:30-06:30. Alerts that can wait are held back then;")
    # Missing persons are turned off only when asked for explicitly, and the answer says what that means.
    assert no_missing == [
        "You no longer get alerts about missing persons, not even when a child is missing. "
        "Want them again? Send ALLOW MISSING."
    ]
    [row] = rows(sessions, AlertPreference)
    assert (row.skipped_types, row.quiet_days, row.quiet_start, row.quiet_end) == (
        ",burglary,missing_person,",
        "12345",
        time(22, 30),
        time(6, 30),
    )


async def test_bad_quiet_hours_and_skipping_everything(
    converse: Converse, sessions: SessionFactory, catalogue: Catalogue
) -> None:
    everything = [
        f"GEEN {w}" for w in ("VERMISSING", "OVERVAL", "DOORRIJDEN", "INBRAAK", "VOERTUIG", "OVERIG")
    ]
    transcript = await converse(SMS, [*register_steps(SMS), "STIL 25-7", "stil 7-7", *everything])
    assert texts(transcript[-8]) == texts(transcript[-7]) == [catalogue.render("nl", "preferences.quiet_bad")]
    assert texts(transcript[-1]) == [catalogue.render("nl", "preferences.all_skipped")]
    [row] = rows(sessions, AlertPreference)
    assert len(row.skipped_types.strip(",").split(",")) == 5


async def test_only_for_the_registered(
    converse: Converse, catalogue: Catalogue, sessions: SessionFactory
) -> None:
    for person in (SMS, WHATSAPP, TELEGRAM):
        transcript = await converse(person, ["VOORKEUREN", "GEEN INBRAAK", "STIL 23-7"])
        assert [texts(t) for t in transcript] == [[catalogue.render("nl", "preferences.not_registered")]] * 3
    assert rows(sessions, AlertPreference) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("GEEN INBRAAK", (Change.SKIP, ActionType.BURGLARY, ""), id="geen-inbraak"),
        pytest.param("wel vermissingen!", (Change.ALLOW, ActionType.MISSING_PERSON, ""), id="wel-plural"),
        pytest.param("skip hit and run", (Change.SKIP, ActionType.HIT_AND_RUN, ""), id="skip-english"),
        pytest.param("Stille uren 23:00-07:00", (Change.QUIET, None, "23:00-07:00"), id="stille-uren"),
        pytest.param("QUIET OFF", (Change.QUIET_OFF, None, ""), id="quiet-off"),
        pytest.param("geen idee", None, id="geen-idee-is-free-text"),
        pytest.param("geen inbraak gezien maar wel een auto", None, id="a-sentence"),
        pytest.param("stil hier vandaag", None, id="stil-without-hours"),
        pytest.param("no", None, id="just-no"),
    ],
)
def test_what_counts_as_a_preference_command(
    text: str, expected: tuple[Change, ActionType | None, str] | None
) -> None:
    command = preference_command(text)
    found = None if command is None else (command.change, command.action_type, command.hours)
    assert found == expected
    assert (keyword_of(text) is Keyword.PREFERENCE_CHANGE) is (expected is not None)
