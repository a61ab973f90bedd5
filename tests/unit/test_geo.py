"""Postcode validation and the PC4 table."""

from __future__ import annotations

import pytest

from storage.geo import (
    SHIPPED_POSTCODE_DATA,
    InvalidHouseNumber,
    InvalidPostcode,
    PostcodeBook,
    UnknownPostcode,
    distance_m,
    in_netherlands,
    normalise_postcode,
    parse_address,
)


@pytest.fixture(scope="module")
def book() -> PostcodeBook:
    return PostcodeBook.load(SHIPPED_POSTCODE_DATA)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7511AB", "7511 AB"),
        ("7511 ab", "7511 AB"),
        ("  7511 Ab ", "7511 AB"),
        ("1012", "1012"),
    ],
)
def test_normalise_postcode(text: str, expected: str) -> None:
    assert normalise_postcode(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "0123 AB",
        "123 AB",
        "12345 AB",
        "7511 SA",
        "7511 sd",
        "7511SS",
        "7511 A1",
        "",
        "AB 7511",
        "<b>7511</b>",
    ],
)
def test_invalid_postcodes(text: str) -> None:
    with pytest.raises(InvalidPostcode):
        normalise_postcode(text)


@pytest.mark.parametrize(
    ("text", "postcode", "number", "addition"),
    [
        ("7511 AB 12", "7511 AB", 12, None),
        ("7511AB 12-a", "7511 AB", 12, "A"),
        ("7511 ab, 12 bis", "7511 AB", 12, "BIS"),
        ("7511AB12", "7511 AB", 12, None),
        ("3011 BC 1 H", "3011 BC", 1, "H"),
        ("1012 AB 99999", "1012 AB", 99999, None),
    ],
    ids=["space", "dash-addition", "comma-bis", "no-space", "letter", "max"],
)
def test_parse_address(text: str, postcode: str, number: int, addition: str | None) -> None:
    parsed = parse_address(text)
    assert (parsed.postcode, parsed.house_number, parsed.addition) == (postcode, number, addition)


@pytest.mark.parametrize(
    "text", ["7511 AB 0", "7511 AB 100000", "7511 AB 12 !!", "7511 AB", "7511 AB 12 <script>"]
)
def test_bad_house_numbers(text: str) -> None:
    with pytest.raises(InvalidHouseNumber):
        parse_address(text)


@pytest.mark.parametrize("text", ["hallo", "1234", "'; DROP TABLE participant; --", "7511 SA 12"])
def test_bad_postcodes_in_addresses(text: str) -> None:
    with pytest.raises(InvalidPostcode):
        parse_address(text)


def test_lookup_finds_place_and_municipality(book: PostcodeBook) -> None:
    place = book.lookup("7511 ab")
    assert (place.postcode, place.place, place.municipality_name, place.municipality_code) == (
        "7511 AB",
        "Enschede",
        "Enschede",
        "0153",
    )
    assert in_netherlands(place.lat, place.lon)


def test_unknown_postcode_is_named(book: PostcodeBook) -> None:
    with pytest.raises(UnknownPostcode) as caught:
        book.lookup("1000 ZZ")
    assert caught.value.postcode == "1000 ZZ"


def test_implausible_centres_are_moved_into_their_municipality(book: PostcodeBook) -> None:
    # GeoNames puts 9999 (Kantens, Het Hogeland) in Gelderland by averaging places from elsewhere.
    place = book.lookup("9999")
    hogeland = book.lookup("9981")
    assert distance_m(place.lat, place.lon, hogeland.lat, hogeland.lon) < 30_000


def test_table_is_complete(book: PostcodeBook) -> None:
    assert len(book) == 4086
    assert len(book.municipalities()) == 342


def test_municipality_by_name_or_code(book: PostcodeBook) -> None:
    assert book.municipality_code("enschede") == "0153"
    assert book.municipality_code("153") == "0153"
    with pytest.raises(LookupError):
        book.municipality_code("Atlantis")


def test_within_is_nearest_first(book: PostcodeBook) -> None:
    centre = book.lookup("7511")
    hits = book.within(centre.lat, centre.lon, 3000)
    assert hits[0].pc4 == "7511"
    distances = [distance_m(centre.lat, centre.lon, p.lat, p.lon) for p in hits]
    assert distances == sorted(distances)
    assert all(d <= 3000 for d in distances)
    assert {p.municipality_name for p in hits} == {"Enschede"}


def test_distance_amsterdam_enschede() -> None:
    # Dam square to Enschede station is about 140 km as the crow flies.
    assert 135_000 < distance_m(52.3731, 4.8926, 52.2225, 6.8899) < 145_000
