"""Entities in real-looking Dutch (and some English) tips: a table of tips and what must come out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nlu.entities import (
    ACTION_CODE,
    DESCRIPTION,
    DIRECTION,
    PLACE,
    POSTCODE,
    TIME_SEEN,
    VEHICLE_PLATE,
    extract_tip_entities,
    find_action_codes,
    find_postcodes,
)

# Friday 20 November 2026, 15:30 in Amsterdam.
RECEIVED = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
T, P, D, V, DS, PC, AC = TIME_SEEN, PLACE, DIRECTION, VEHICLE_PLATE, DESCRIPTION, POSTCODE, ACTION_CODE

TIPS = [
    pytest.param(
        "Ik zag 10 minuten geleden een man in een rode jas richting het station fietsen",
        [(T, "2026-11-20T15:20:00+01:00"), (DS, "rode jas"), (D, "station")],
        id="minutes-ago-jacket-direction",
    ),
    pytest.param(
        "BN-4821 meisje met roze jas gezien bij de Jumbo aan de Kerkstraat, liep richting centrum",
        [(AC, "BN-4821"), (DS, "roze jas"), (P, "Jumbo"), (P, "Kerkstraat"), (D, "centrum")],
        id="code-landmark-street",
    ),
    pytest.param(
        "gisteravond om 22.00 uur een zwarte BMW met kenteken 12-BBJ-3 hard weggereden de A12 op",
        [(T, "2026-11-19T22:00:00+01:00"), (DS, "zwarte bmw"), (V, "12-BBJ-3"), (D, "A12")],
        id="yesterday-evening-plate-motorway",
    ),
    pytest.param(
        "zonet 2 jongens op een scooter bij het winkelcentrum, ze reden naar het noorden",
        [(T, "2026-11-20T15:30:00+01:00"), (DS, "scooter"), (P, "winkelcentrum"), (D, "noorden")],
        id="just-now-compass",
    ),
    pytest.param(
        "bn4821 ik denk dat ik haar zag in 7511 AB bij de speeltuin rond half 10",
        [(AC, "BN-4821"), (PC, "7511 AB"), (P, "speeltuin"), (T, "2026-11-20T09:30:00+01:00")],
        id="lowercase-code-postcode-half",
    ),
    pytest.param(
        "Witte bestelbus GB-12-HJ stond een kwartier geleden op de Burgemeester van Roijensingel",
        [
            (DS, "witte bestelbus"),
            (V, "GB-12-HJ"),
            (T, "2026-11-20T15:15:00+01:00"),
            (P, "Burgemeester van Roijensingel"),
        ],
        id="van-plate-long-street",
    ),
    pytest.param(
        "man met blond haar en een baard, donkerblauwe spijkerbroek, liep naar de Albert Heijn",
        [(DS, "blond haar"), (DS, "baard"), (DS, "donkerblauwe spijkerbroek"), (D, "Albert Heijn")],
        id="looks-and-walked-to",
    ),
    pytest.param(
        "vanochtend om kwart over negen in Enschede een grijze Golf gezien",
        [(T, "2026-11-20T09:15:00+01:00"), (P, "Enschede"), (DS, "grijze golf")],
        id="this-morning-quarter-past-town",
    ),
    pytest.param(
        "ik was onderweg naar huis en zag op de hoek van de Molenweg een verdacht figuur",
        [(P, "Molenweg")],
        id="onderweg-is-no-street",
    ),
    pytest.param(
        "reactie op BN 3310: oude man met rollator loopt verward over de Hengelosestraat richting Boekelo",
        [(AC, "BN-3310"), (DS, "oude man"), (DS, "rollator"), (P, "Hengelosestraat"), (D, "Boekelo")],
        id="missing-elderly-man",
    ),
    pytest.param(
        "Kenteken xn542f, donkergrijze Volkswagen Golf, vannacht om 3 uur bij het tankstation gezien",
        [
            (V, "XN-542-F"),
            (DS, "donkergrijze volkswagen golf"),
            (T, "2026-11-20T03:00:00+01:00"),
            (P, "tankstation"),
        ],
        id="compact-plate-brand-model-night",
    ),
    pytest.param(
        "ze zat om 9 uur in de bus naar Zwolle met een gele rugzak",
        [(T, "2026-11-20T09:00:00+01:00"), (DS, "bus"), (D, "Zwolle"), (DS, "gele rugzak")],
        id="om-9-uur-bus-to",
    ),
    pytest.param(
        "gisteren rond 17.30 uur reed een motor met 2 personen met hoge snelheid in noordelijke richting",
        [(T, "2026-11-19T17:30:00+01:00"), (DS, "motor"), (D, "noordelijke")],
        id="yesterday-clock-northbound",
    ),
    pytest.param(
        "Hij rende weg naar het park, had een capuchon op en een zwarte trainingsbroek",
        [(D, "park"), (DS, "capuchon"), (DS, "zwarte trainingsbroek")],
        id="ran-to-park",
    ),
    pytest.param(
        "net een jongen van een jaar of 12 gezien bij de McDonalds op het Stationsplein",
        [(T, "2026-11-20T15:30:00+01:00"), (P, "McDonalds"), (P, "Stationsplein")],
        id="age-is-no-time",
    ),
    pytest.param(
        "ik woon op de Lindelaan 14 en zag daar een half uur geleden een witte Tesla met kenteken G-123-BB",
        [(P, "Lindelaan 14"), (T, "2026-11-20T15:00:00+01:00"), (DS, "witte tesla"), (V, "G-123-BB")],
        id="house-number-half-hour",
    ),
    pytest.param(
        "at the bus stop on Oldenzaalsestraat I saw the girl at 9pm with a pink backpack",
        [(P, "bus stop"), (P, "Oldenzaalsestraat"), (T, "2026-11-19T21:00:00+01:00"), (DS, "pink backpack")],
        id="english",
    ),
    pytest.param(
        "volgens mij stond die auto vorige week ook al in de Parkstraat",
        [(DS, "auto"), (T, "2026-11-13T15:30:00+01:00"), (P, "Parkstraat")],
        id="last-week-by-dateparser",
    ),
    pytest.param(
        "om half 4 zag ik 2 mannen in het zwart gekleed bij de achteringang van de Lidl",
        [(T, "2026-11-20T15:30:00+01:00"), (DS, "zwart gekleed"), (P, "Lidl")],
        id="dressed-in-black",
    ),
    pytest.param("BN-7710 ja ik heb hem gezien", [(AC, "BN-7710")], id="code-only"),
    pytest.param(
        "rood busje reed door 7522NB richting Hengelo, kenteken VL-90-RG",
        [(DS, "rood busje"), (PC, "7522 NB"), (D, "Hengelo"), (V, "VL-90-RG")],
        id="compact-postcode-is-no-plate",
    ),
    pytest.param(
        "Vrouw van ongeveer 1.70 lang, grijze jas, loopt nu over het fietspad langs de Dinkel",
        [(DS, "grijze jas"), (P, "fietspad")],
        id="height-is-no-time",
    ),
    pytest.param(
        "2 jongens op fatbikes reden gisteravond rond 23u door de Bothoven richting Lonneker",
        [(T, "2026-11-19T23:00:00+01:00"), (P, "Bothoven"), (D, "Lonneker")],
        id="fatbikes-23u",
    ),
]


@pytest.mark.parametrize(("tip", "expected"), TIPS)
def test_tip_entities(tip: str, expected: list[tuple[str, str]]) -> None:
    entities = extract_tip_entities(tip, RECEIVED)
    assert [(e.entity, e.value) for e in entities] == expected
    for e in entities:
        assert 0 <= e.start < e.end <= len(tip)
    starts = [e.start for e in entities]
    assert starts == sorted(starts)
    for a, b in zip(entities, entities[1:], strict=False):
        assert a.end <= b.start, "entities must not overlap"


def test_table_has_at_least_twenty_tips() -> None:
    assert len(TIPS) >= 20


def test_time_seen_is_an_iso_datetime_in_amsterdam() -> None:
    (entity,) = [e for e in extract_tip_entities("om 9 uur gezien", RECEIVED) if e.entity == TIME_SEEN]
    value = datetime.fromisoformat(entity.value)
    assert value == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    assert value.utcoffset() is not None and value.utcoffset().total_seconds() == 3600  # type: ignore[union-attr]


def test_only_the_first_time_is_kept() -> None:
    entities = extract_tip_entities("vanochtend gezien en 10 minuten geleden weer", RECEIVED)
    assert [e.value for e in entities if e.entity == TIME_SEEN] == ["2026-11-20T09:00:00+01:00"]


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("BN-4821", ["BN-4821"]),
        ("bn 4821", ["BN-4821"]),
        ("Bn4821 gezien", ["BN-4821"]),
        ("BN-48210", []),
        ("ABN-4821", []),
    ],
)
def test_action_codes(text: str, codes: list[str]) -> None:
    assert [s.value for s in find_action_codes(text)] == codes


@pytest.mark.parametrize(
    ("text", "postcodes"),
    [
        ("7511 AB", ["7511 AB"]),
        ("7511ab", ["7511 AB"]),
        ("0511 AB", []),
        ("7511 SS", []),
        ("om 1234 en", []),
    ],
)
def test_postcodes(text: str, postcodes: list[str]) -> None:
    assert [s.value for s in find_postcodes(text)] == postcodes


def test_no_entities_in_small_talk() -> None:
    assert extract_tip_entities("hallo, hoe gaat het met jou?", RECEIVED) == ()
