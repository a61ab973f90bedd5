"""Dutch tip times, resolved against the message time in Europe/Amsterdam: a table of phrases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlu.dutch_time import find_time, find_times, resolve_time

AMS = ZoneInfo("Europe/Amsterdam")
# Friday 20 November 2026, 15:30 in Amsterdam (CET, UTC+1).
FRIDAY = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
# Saturday 21 November 2026, 01:10 in Amsterdam: just after midnight.
NIGHT = datetime(2026, 11, 21, 0, 10, tzinfo=UTC)
# Sunday 29 March 2026, 10:00 in Amsterdam (CEST): the clocks went forward at 02:00 that night.
DST = datetime(2026, 3, 29, 8, 0, tzinfo=UTC)


def _local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=AMS)


CASES = [
    # relative to the message
    ("10 minuten geleden", FRIDAY, "2026-11-20 15:20"),
    ("10 min geleden", FRIDAY, "2026-11-20 15:20"),
    ("tien minuten geleden", FRIDAY, "2026-11-20 15:20"),
    ("5 minuutjes geleden", FRIDAY, "2026-11-20 15:25"),
    ("een kwartier geleden", FRIDAY, "2026-11-20 15:15"),
    ("kwartiertje geleden", FRIDAY, "2026-11-20 15:15"),
    ("een half uur geleden", FRIDAY, "2026-11-20 15:00"),
    ("half uur geleden", FRIDAY, "2026-11-20 15:00"),
    ("anderhalf uur geleden", FRIDAY, "2026-11-20 14:00"),
    ("2 uur geleden", FRIDAY, "2026-11-20 13:30"),
    ("een uur geleden", FRIDAY, "2026-11-20 14:30"),
    ("20 minuten terug", FRIDAY, "2026-11-20 15:10"),
    ("een minuut of 10 geleden", FRIDAY, "2026-11-20 15:20"),
    ("ruim 10 minuten geleden", FRIDAY, "2026-11-20 15:20"),
    ("een paar minuten geleden", FRIDAY, "2026-11-20 15:27"),
    ("zojuist", FRIDAY, "2026-11-20 15:30"),
    ("ik zag hem net", FRIDAY, "2026-11-20 15:30"),
    ("daarnet", FRIDAY, "2026-11-20 15:30"),
    ("3 dagen geleden", FRIDAY, "2026-11-17 15:30"),
    # parts of the day
    ("vanochtend", FRIDAY, "2026-11-20 09:00"),
    ("vanmorgen", FRIDAY, "2026-11-20 09:00"),
    ("vanmiddag", FRIDAY, "2026-11-20 14:00"),
    ("vannacht", FRIDAY, "2026-11-20 03:00"),
    ("gisteravond", FRIDAY, "2026-11-19 20:00"),
    ("gisterochtend", FRIDAY, "2026-11-19 09:00"),
    ("gistermiddag", FRIDAY, "2026-11-19 14:00"),
    ("gisteren", FRIDAY, "2026-11-19 15:30"),
    ("eergisteren", FRIDAY, "2026-11-18 15:30"),
    ("'s ochtends", FRIDAY, "2026-11-20 09:00"),
    ("zaterdagavond", FRIDAY, "2026-11-14 20:00"),
    # clock times (dateparser reads "om 9 uur" as nine hours ago)
    ("om 9 uur", FRIDAY, "2026-11-20 09:00"),
    ("om 3 uur", FRIDAY, "2026-11-20 15:00"),
    ("om negen uur", FRIDAY, "2026-11-20 09:00"),
    ("om 9", FRIDAY, "2026-11-20 09:00"),
    ("vandaag 9 uur", FRIDAY, "2026-11-20 09:00"),
    ("22.00 uur", FRIDAY, "2026-11-19 22:00"),
    ("om 21:15", FRIDAY, "2026-11-19 21:15"),
    ("rond 21u30", FRIDAY, "2026-11-19 21:30"),
    ("22u", FRIDAY, "2026-11-19 22:00"),
    ("09.15", FRIDAY, "2026-11-20 09:15"),
    ("om 12 uur", FRIDAY, "2026-11-20 12:00"),
    ("om kwart over negen", FRIDAY, "2026-11-20 09:15"),
    ("kwart voor 10", FRIDAY, "2026-11-20 09:45"),
    ("rond half 10", FRIDAY, "2026-11-20 09:30"),
    ("om half 4", FRIDAY, "2026-11-20 15:30"),
    ("tien over half negen", FRIDAY, "2026-11-20 08:40"),
    ("vijf voor half drie", FRIDAY, "2026-11-20 14:25"),
    ("10 over 9", FRIDAY, "2026-11-20 09:10"),
    ("een uur of 9", FRIDAY, "2026-11-20 09:00"),
    # day and clock together (dateparser: day before yesterday 17:30, or the time dropped)
    ("gisteren om 22.00 uur", FRIDAY, "2026-11-19 22:00"),
    ("gisteren 22.00", FRIDAY, "2026-11-19 22:00"),
    ("gisteren om 9 uur", FRIDAY, "2026-11-19 09:00"),
    ("gisteren om 3 uur", FRIDAY, "2026-11-19 15:00"),
    ("gisteravond om 10 uur", FRIDAY, "2026-11-19 22:00"),
    ("gisteravond rond half 11", FRIDAY, "2026-11-19 22:30"),
    ("vanochtend om kwart over 8", FRIDAY, "2026-11-20 08:15"),
    ("vanmiddag om 2 uur", FRIDAY, "2026-11-20 14:00"),
    ("vannacht om 2 uur", FRIDAY, "2026-11-20 02:00"),
    ("vannacht om 11 uur", FRIDAY, "2026-11-19 23:00"),
    ("'s avonds om 10 uur", FRIDAY, "2026-11-19 22:00"),
    ("maandag om 14:00", FRIDAY, "2026-11-16 14:00"),
    ("afgelopen maandag", FRIDAY, "2026-11-16 15:30"),
    ("vrijdag om 8 uur", FRIDAY, "2026-11-20 08:00"),
    ("afgelopen vrijdag", FRIDAY, "2026-11-13 15:30"),
    ("zaterdagavond rond 11 uur", FRIDAY, "2026-11-14 23:00"),
    # explicit dates go to dateparser
    ("3 maart om 14:00", FRIDAY, "2026-03-03 14:00"),
    ("12 november", FRIDAY, "2026-11-12 00:00"),
    # English
    ("10 minutes ago", FRIDAY, "2026-11-20 15:20"),
    ("half an hour ago", FRIDAY, "2026-11-20 15:00"),
    ("this morning", FRIDAY, "2026-11-20 09:00"),
    ("yesterday evening at 10", FRIDAY, "2026-11-19 22:00"),
    ("at 9pm", FRIDAY, "2026-11-19 21:00"),
    ("half past nine", FRIDAY, "2026-11-20 09:30"),
    ("quarter to 10", FRIDAY, "2026-11-20 09:45"),
    # just after midnight
    ("om 11 uur", NIGHT, "2026-11-20 23:00"),
    ("gisteravond", NIGHT, "2026-11-20 20:00"),
    ("vannacht", NIGHT, "2026-11-21 01:10"),
    ("10 minuten geleden", NIGHT, "2026-11-21 01:00"),
    ("vanavond", NIGHT, "2026-11-21 20:00"),
    # across the switch to summer time
    ("8 uur geleden", DST, "2026-03-29 01:00"),
    ("10 uur geleden", DST, "2026-03-28 23:00"),
    ("vannacht om 3 uur", DST, "2026-03-29 03:00"),
    ("gisteravond om 10 uur", DST, "2026-03-28 22:00"),
]


@pytest.mark.parametrize(("phrase", "received_at", "expected"), [pytest.param(*c, id=c[0]) for c in CASES])
def test_phrase_resolves_to_expected_time(phrase: str, received_at: datetime, expected: str) -> None:
    value = resolve_time(phrase, received_at)
    assert value is not None
    assert value.tzinfo is not None
    assert value == _local(expected)


def test_table_has_at_least_forty_phrases() -> None:
    assert len({c[0] for c in CASES}) >= 40


@pytest.mark.parametrize(
    "phrase",
    [
        "hij was 1.80 lang",
        "ik heb een vraag",
        "de man droeg een rode jas",
        "kenteken 12-BBJ-3",
        "net als vorige keer niks gezien",
        "2 mannen en 3 vrouwen",
        "",
    ],
)
def test_no_time_in_phrases_without_one(phrase: str) -> None:
    assert find_times(phrase, FRIDAY) == []


def test_values_are_in_amsterdam_time() -> None:
    value = resolve_time("om 9 uur", FRIDAY)
    assert value is not None
    assert value.utcoffset() == datetime(2026, 11, 20, tzinfo=AMS).utcoffset()
    assert value.astimezone(UTC) == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def test_span_covers_the_whole_phrase_inside_a_tip() -> None:
    text = "ik zag gisteravond om 10 uur een man bij de Jumbo"
    found = find_time(text, FRIDAY)
    assert found is not None
    assert text[found.start : found.end] == "gisteravond om 10 uur"


def test_approximate_phrases_are_marked() -> None:
    rond = find_time("rond half 10", FRIDAY)
    om = find_time("om half 10", FRIDAY)
    assert rond is not None and rond.approximate
    assert om is not None and not om.approximate


def test_first_of_several_times() -> None:
    found = find_times("vanochtend al gezien en 10 minuten geleden weer", FRIDAY)
    assert [m.text for m in found] == ["vanochtend", "10 minuten geleden"]


def test_naive_message_time_is_refused() -> None:
    with pytest.raises(ValueError):
        find_times("om 9 uur", datetime(2026, 11, 20, 15, 30))


# fmt: off
TOKENS = [
    "om", "rond", "half", "kwart", "over", "voor", "uur", "u", "geleden", "terug", "minuten", "min", "een",
    "gisteren", "gisteravond", "vannacht", "vanochtend", "vandaag", "maandag", "zondagavond", "afgelopen",
    "'s", "avonds", "at", "pm", "am", "ago", "hours", "past", "to", "quarter", "net", "zojuist", "tien",
    "twaalf", "dertien", "0", "00", "9", "12", "13", "23", "24", "25", "59", "60", "99", "999", ":", ".",
    "-", "/", "3 maart", "31-02", "29-02-2025", "12-13", "jan", "dagen", "weken", "kwartier", "anderhalf",
]
# fmt: on


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(TOKENS), max_size=12),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
)
def test_random_time_words_never_raise(words: list[str], received_at: datetime) -> None:
    text = " ".join(words)
    for mention in find_times(text, received_at):
        assert mention.value.tzinfo is not None
        assert text[mention.start : mention.end] == mention.text
        assert abs(mention.value - received_at) < timedelta(days=400)
