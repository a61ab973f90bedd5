"""The values a tip's time and places resolve to, as the control room and the geocoder get them."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from nlu.dutch_time import find_times, seen_time
from nlu.entities import read_tip
from nlu.places import DETAIL, LANDMARK, STREET, TOWN, Towns, kind_of, order_places

AMS = ZoneInfo("Europe/Amsterdam")
FRIDAY = datetime(2026, 11, 20, 14, 55, tzinfo=AMS)
TOWNS = Towns(["Enschede", "Hengelo", "Den Helder", "Bergen", "Bergen op Zoom", "Best", "Echt", "Een", "Hem"])


def _seen(text: str, received: datetime) -> tuple[str, str | None] | None:
    seen = seen_time(find_times(text, received), received)
    if seen is None:
        return None
    return seen.phrase, seen.value.strftime("%d %H:%M") if seen.value else None


@pytest.mark.parametrize(
    ("text", "received", "phrase", "value"),
    [
        pytest.param(
            "nu net 5 minuten geleden", (14, 55), "nu net 5 minuten geleden", "20 14:50", id="nu-net-ago"
        ),
        pytest.param(
            "net, 5 minuten geleden", (14, 55), "net, 5 minuten geleden", "20 14:50", id="net-comma-ago"
        ),
        pytest.param("zag hem net om 14.40", (14, 55), "net om 14.40", "20 14:40", id="net-clock"),
        pytest.param(
            "om kwart over 3", (0, 55), "om kwart over 3", "19 15:15", id="quarter-past-after-midnight"
        ),
        pytest.param(
            "gisteravond rond half 11", (8, 0), "gisteravond rond half 11", "19 22:30", id="last-night"
        ),
        pytest.param("een kwartier geleden", (14, 55), "een kwartier geleden", "20 14:40", id="kwartier"),
        pytest.param("zojuist", (14, 55), "zojuist", "20 14:55", id="zojuist"),
        pytest.param("om 9 uur", (22, 0), "om 9 uur", "20 21:00", id="nine-evening"),
        pytest.param(
            "gisteren om 22.00 uur", (8, 0), "gisteren om 22.00 uur", "19 22:00", id="yesterday-clock"
        ),
        pytest.param("rond 3 uur vannacht", (8, 0), "rond 3 uur vannacht", "20 03:00", id="night"),
        pytest.param("10 min geleden", (14, 55), "10 min geleden", "20 14:45", id="min"),
        pytest.param("net", (14, 55), "net", "20 14:55", id="net"),
        pytest.param("20 min. geleden", (14, 55), "20 min. geleden", "20 14:35", id="abbreviation-with-stop"),
        pytest.param("eerder vandaag", (14, 55), "vandaag", None, id="earlier-today"),
        pytest.param("ik zag hem gisteren ook", (14, 55), "gisteren", None, id="day-alone"),
        pytest.param("vanavond", (14, 0), "vanavond", None, id="evening-still-to-come"),
        pytest.param(
            "gisteren zag ik hem bij de hema, om 22.00",
            (9, 0),
            "gisteren … om 22.00",
            "19 22:00",
            id="day-clock-apart",
        ),
        pytest.param(
            "net gezien. was om 13.50 bij de jumbo", (14, 0), "om 13.50", "20 13:50", id="clock-beats-net"
        ),
    ],
)
def test_seen_time_gives_the_phrase_and_the_moment(
    text: str, received: tuple[int, int], phrase: str, value: str | None
) -> None:
    assert _seen(text, datetime(2026, 11, 20, *received, tzinfo=AMS)) == (phrase, value)


def test_no_time_phrase_gives_no_seen_time() -> None:
    assert _seen("een man in een rode jas", FRIDAY) is None


def test_a_day_alone_is_marked_vague() -> None:
    [mention] = find_times("gisteren", FRIDAY)
    assert mention.vague
    [clock] = find_times("gisteren om 10 uur", FRIDAY)
    assert not clock.vague


@pytest.mark.parametrize(
    ("text", "location", "places"),
    [
        pytest.param(
            "op het bankje bij de Oude Markt",
            "Oude Markt, bankje",
            ("Oude Markt",),
            id="furniture-is-a-detail",
        ),
        pytest.param(
            "bij de Hema in de Kalanderstraat",
            "Hema, Kalanderstraat",
            ("Kalanderstraat", "Hema"),
            id="landmark-and-street",
        ),
        pytest.param(
            "bij het station Enschede", "station, Enschede", ("station Enschede", "Enschede"), id="town-kept"
        ),
        pytest.param(
            "om kwart over 3 bij het bushokje op de Hengelosestraat in enschede",
            "Hengelosestraat, bushokje, Enschede",
            ("Hengelosestraat Enschede", "Enschede"),
            id="lower-case-town",
        ),
        pytest.param(
            "bij de jumbo in Den Helder",
            "jumbo, Den Helder",
            ("jumbo Den Helder", "Den Helder"),
            id="two-word-town",
        ),
        pytest.param("Best raar, het was echt een man", None, (), id="town-words-in-a-sentence"),
        pytest.param("ik stond bij hem, bij een bankje", "bankje", (), id="villages-that-are-common-words"),
        pytest.param(
            "in Bergen op Zoom bij de kerk",
            "kerk, Bergen op Zoom",
            ("kerk Bergen op Zoom", "Bergen op Zoom"),
            id="longest-town",
        ),
    ],
)
def test_every_place_is_kept_in_order_with_the_town(
    text: str, location: str | None, places: tuple[str, ...]
) -> None:
    reading = read_tip(text, FRIDAY, towns=TOWNS)
    assert reading.places.text == location
    assert reading.places.places == places


def test_a_road_after_aan_is_a_place() -> None:
    reading = read_tip("bij het tankstation aan de N18", FRIDAY)
    assert reading.places.text == "tankstation, N18"


def test_places_without_towns_keep_every_place() -> None:
    reading = read_tip("bij de Hema in de Kalanderstraat, op een bankje", FRIDAY)
    assert reading.places.text == "Hema, Kalanderstraat, bankje"


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("bankje", DETAIL),
        ("Kalanderstraat", STREET),
        ("Hema", LANDMARK),
        ("Enschede", TOWN),
        ("lantaarnpaal", DETAIL),
    ],
)
def test_kind_of_a_place(value: str, kind: str) -> None:
    assert kind_of(value, TOWNS) == kind


def test_order_places_drops_repeats_and_puts_an_address_first() -> None:
    ordered = order_places([(0, "Jumbo"), (10, "Kerkstraat 12"), (30, "jumbo")], None)
    assert ordered.text == "Jumbo, Kerkstraat 12"
    assert ordered.places == ("Kerkstraat 12", "Jumbo")


@pytest.mark.parametrize(
    ("text", "direction", "phrase", "value"),
    [
        pytest.param(
            "zag net 2 gasten op scooter bij de hema in de kalanderstraat richting station"
            " nu net 5 min geleden",
            "station", "nu net 5 min geleden", "20 14:50", id="direction-then-nu-net",
        ),
        pytest.param(
            "hij liep richting station 5 min geleden", "station", "5 min geleden", "20 14:50",
            id="direction-then-ago",
        ),
        pytest.param(
            "liep naar de Albert Heijn\ngisteravond rond half 11", "Albert Heijn", "gisteravond rond half 11",
            "19 22:30", id="direction-then-evening",
        ),
    ],
)  # fmt: skip
def test_a_time_after_a_direction_stays_a_time(text: str, direction: str, phrase: str, value: str) -> None:
    reading = read_tip(text, FRIDAY, towns=TOWNS)
    assert [s.value for s in reading.spans if s.entity == "direction"] == [direction]
    assert reading.seen is not None and reading.seen.value is not None
    assert (reading.seen.phrase, reading.seen.value.strftime("%d %H:%M")) == (phrase, value)
