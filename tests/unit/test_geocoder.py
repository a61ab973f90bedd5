"""The geocoder: PDOK Locatieserver (against a loopback fake in its documented format) and the built-in
postcode table behind it when the remote one is slow, down or not configured."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from bot.geocoder import (
    FallbackGeocoder,
    Found,
    GeocoderUnavailable,
    LocatieserverGeocoder,
    Near,
    PostcodeGeocoder,
    area_near,
    make_geocoder,
    municipality_label,
    parse_point,
)
from bot.texts import Catalogue
from storage.geo import PostcodeBook, distance_m
from tests.fakes.locatieserver import FakeLocatieserver

ENSCHEDE = (52.2215, 6.8937)


@pytest.fixture
def fake() -> Iterator[FakeLocatieserver]:
    """The fake Locatieserver on a loopback port."""
    with FakeLocatieserver() as server:
        yield server


def near_km(found: Found, lat: float, lon: float, km: float) -> bool:
    """Whether an answer lies within `km` of a point."""
    return distance_m(found.lat, found.lon, lat, lon) <= km * 1000


@pytest.mark.parametrize(
    ("text", "first"),
    [
        pytest.param("Enschede", "Enschede", id="town"),
        pytest.param("enschede", "Enschede", id="lower-case"),
        pytest.param("7511 AB", "7511 AB Enschede", id="postcode-pc6"),
        pytest.param("7511", "7511 Enschede", id="postcode-pc4"),
        pytest.param("Ensch", "Enschede", id="prefix"),
    ],
)
async def test_the_builtin_geocoder_finds_towns_and_postcodes(
    book: PostcodeBook, text: str, first: str
) -> None:
    answers = await PostcodeGeocoder(book).suggest(text)
    assert answers, text
    assert answers[0].label == first
    assert near_km(answers[0], *ENSCHEDE, km=3)


async def test_the_builtin_geocoder_reads_a_town_inside_a_longer_text(book: PostcodeBook) -> None:
    answers = await PostcodeGeocoder(book).free("Oude Markt Enschede")
    assert [a.label for a in answers][:1] == ["Enschede"]
    assert await PostcodeGeocoder(book).free("Oude Markt") == []


async def test_the_builtin_geocoder_keeps_only_answers_near(book: PostcodeBook) -> None:
    geocoder = PostcodeGeocoder(book)
    assert await geocoder.free("Hengelo", near=Near(*ENSCHEDE, radius_m=3000)) == []
    inside = await geocoder.free("Hengelo", near=Near(*ENSCHEDE, radius_m=15000))
    assert inside and inside[0].label.startswith("Hengelo")


def test_a_point_is_read_as_lon_lat() -> None:
    assert parse_point("POINT(6.89569 52.22169)") == (52.22169, 6.89569)
    with pytest.raises(ValueError):
        parse_point("POINT(6.8)")


@pytest.mark.parametrize(
    ("text", "label"),
    [
        pytest.param("Enschede", "Enschede, Enschede, Overijssel", id="town"),
        pytest.param("Kalanderstraat Enschede", "Kalanderstraat, Enschede", id="street"),
        pytest.param("Oude Markt Enschede", "Oude Markt, Enschede", id="square"),
        pytest.param("Station Enschede", "Stationsplein, Enschede", id="station"),
        pytest.param("7511 AB", "Kalanderstraat, 7511AB Enschede", id="postcode"),
    ],
)
async def test_locatieserver_answers_are_read(fake: FakeLocatieserver, text: str, label: str) -> None:
    async with httpx.AsyncClient() as http:
        answers = await LocatieserverGeocoder(fake.base_url, http=http).free(text)
    assert answers[0].label == label
    assert near_km(answers[0], *ENSCHEDE, km=2)
    request = fake.requests[-1]
    assert request.endpoint == "free" and request.status == 200
    assert "centroide_ll" in request.params["fl"]


async def test_suggest_asks_the_suggest_endpoint(fake: FakeLocatieserver) -> None:
    async with httpx.AsyncClient() as http:
        answers = await LocatieserverGeocoder(fake.base_url, http=http).suggest("Kalander")
    assert [a.kind for a in answers] == ["weg", "postcode"]
    assert fake.requests[-1].endpoint == "suggest"


async def test_tips_are_looked_up_near_the_action(fake: FakeLocatieserver) -> None:
    near = Near(*ENSCHEDE, radius_m=2000)
    async with httpx.AsyncClient() as http:
        answers = await LocatieserverGeocoder(fake.base_url, http=http).free("Hengelo", near=near)
    assert answers == []
    assert fake.requests[-1].params["lat"] == "52.2215"


@pytest.mark.parametrize("mode", ["slow", "error", "garbage"])
async def test_a_failing_locatieserver_falls_back_to_the_postcode_table(
    fake: FakeLocatieserver, book: PostcodeBook, mode: str
) -> None:
    if mode == "slow":
        fake.delay_s = 0.5
    elif mode == "error":
        fake.fail_status = 503
    else:
        fake.fail_status = 200  # a 200 without Solr's envelope
    async with httpx.AsyncClient() as http:
        remote = LocatieserverGeocoder(fake.base_url, http=http, timeout_s=0.1)
        with pytest.raises(GeocoderUnavailable):
            await remote.suggest("Enschede")
        answers = await FallbackGeocoder(remote, PostcodeGeocoder(book)).suggest("Enschede")
    assert answers and answers[0].label == "Enschede"


def test_without_a_url_the_geocoder_is_the_postcode_table(book: PostcodeBook) -> None:
    assert isinstance(make_geocoder(book, url=None), PostcodeGeocoder)
    assert isinstance(make_geocoder(book, url="http://127.0.0.1:9/v3_1"), FallbackGeocoder)


def test_an_action_area_becomes_a_circle_to_search_in(book: PostcodeBook) -> None:
    circle = area_near({"circle": {"lat": 52.22, "lon": 6.89, "radius_m": 2000}}, book)
    assert circle == Near(52.22, 6.89, 3000.0)
    municipality = area_near({"municipalities": ["0153"]}, book)
    assert municipality is not None and municipality.holds(Found("x", *ENSCHEDE, "woonplaats"))
    assert not municipality.holds(Found("Amsterdam", 52.37, 4.89, "woonplaats"))
    assert area_near({"municipalities": []}, book) is None


async def test_the_builtin_geocoder_names_municipalities_as_the_catalogue_says(book: PostcodeBook) -> None:
    label = municipality_label(Catalogue.load())
    answers = await PostcodeGeocoder(book, municipality_label=label).suggest("Enschede")
    assert [a.label for a in answers] == ["Enschede", "Gemeente Enschede"]
    assert [a.kind for a in answers] == ["woonplaats", "gemeente"]
