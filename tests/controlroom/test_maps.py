"""The control room's maps over HTTP: the form's point (never "nan"), the place search through the geocoder,
the offline outline, Leaflet served from the repository, and a CSP that lets in the tile server only."""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlmodel import select

from bot.controlroom.deps import ControlRoom
from bot.geocoder import FallbackGeocoder, LocatieserverGeocoder, PostcodeGeocoder
from storage.geo import distance_m
from storage.models import Action
from tests.controlroom.conftest import csrf_of, login, page_csrf
from tests.fakes.locatieserver import FakeLocatieserver

ENSCHEDE = (52.2215, 6.8937)
PDOK_TILES = "https://service.pdok.nl/brt/achtergrondkaart/wmts/v2_0/standaard/EPSG:3857/{z}/{x}/{y}.png"


async def _post(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    form = await client.get("/controlroom/actions/new")
    data = {
        "csrf_token": csrf_of(form.text),
        "type": "missing_person",
        "headline": "Vermist: jongen (8) in rode jas",
        "description": "Tim, 1.30 m, blond, rode jas, blauwe fiets.",
        "area_kind": "circle",
        "postcode": "",
        "lat": "",
        "lon": "",
        "radius_m": "2000",
        "expires_minutes": "120",
        **fields,
    }
    return await client.post("/controlroom/actions", data=data)


@pytest.fixture
async def remote(cr: ControlRoom) -> AsyncIterator[FakeLocatieserver]:
    """The control room's geocoder pointed at a Locatieserver fake (with the postcode table behind it)."""
    with FakeLocatieserver() as fake:
        async with httpx.AsyncClient() as http:
            cr.geocoder = FallbackGeocoder(
                LocatieserverGeocoder(fake.base_url, http=http, timeout_s=0.5), PostcodeGeocoder(cr.book)
            )
            yield fake


@pytest.mark.parametrize("lang", ["nl", "en"])
async def test_a_form_without_a_point_says_so_in_words(
    client: httpx.AsyncClient, cr: ControlRoom, lang: str
) -> None:
    await login(client, "olga")
    if lang == "en":
        page = await client.get("/controlroom/actions/new")
        await client.post(
            "/controlroom/language",
            data={"lang": "en", "back": "/controlroom/actions", "csrf_token": csrf_of(page.text)},
        )
    response = await _post(client)
    assert response.status_code == 422
    shown = html.unescape(response.text)
    assert cr.catalogue.render(lang, "controlroom.form.no_point") in shown
    words = re.findall(r"[\w.]+", re.sub(r"<[^>]+>", " ", shown).casefold())
    assert "nan" not in words and not any(w.startswith("nan") or w.endswith(".nan") for w in words)


@pytest.mark.parametrize(
    ("typed", "near"),
    [
        pytest.param("Enschede", ENSCHEDE, id="town"),
        pytest.param("7511 AB", (52.22, 6.9001), id="postcode"),
    ],
)
async def test_a_typed_place_not_picked_from_the_list_is_looked_up(
    client: httpx.AsyncClient, cr: ControlRoom, typed: str, near: tuple[float, float]
) -> None:
    await login(client, "olga")
    response = await _post(client, postcode=typed)
    assert response.status_code == 303, response.text
    with cr.sessions() as session:
        (action,) = session.exec(select(Action))
    circle = action.area["circle"]
    assert distance_m(circle["lat"], circle["lon"], *near) < 3000


async def test_an_unknown_place_is_named_in_the_error(client: httpx.AsyncClient, cr: ControlRoom) -> None:
    await login(client, "olga")
    response = await _post(client, postcode="Atlantis")
    assert response.status_code == 422
    assert cr.catalogue.render("nl", "controlroom.form.unknown_place", place="Atlantis") in html.unescape(
        response.text
    )


async def search(client: httpx.AsyncClient, text: str) -> httpx.Response:
    """The form's place search, as its script asks: a POST with the form's CSRF token."""
    csrf = await page_csrf(client, "/controlroom/actions/new")
    return await client.post("/controlroom/places", data={"q": text, "csrf_token": csrf})


async def test_the_place_search_answers_offline_from_the_postcode_table(client: httpx.AsyncClient) -> None:
    await login(client, "olga")
    assert (await client.get("/controlroom/places", params={"q": "Ensch"})).status_code == 405
    found = (await search(client, "Ensch")).json()["places"]
    assert found[0]["label"] == "Enschede"
    assert distance_m(found[0]["lat"], found[0]["lon"], *ENSCHEDE) < 3000
    assert (await search(client, "E")).json() == {"places": []}


async def test_the_place_search_asks_locatieserver_when_set(
    client: httpx.AsyncClient, remote: FakeLocatieserver
) -> None:
    await login(client, "olga")
    found = (await search(client, "Oude Markt Enschede")).json()["places"]
    assert found[0] == {"label": "Oude Markt, Enschede", "lat": 52.2196, "lon": 6.8964, "kind": "weg"}
    assert [r.endpoint for r in remote.requests] == ["suggest"]
    remote.fail_status = 500
    found = (await search(client, "Enschede")).json()["places"]
    assert found[0]["label"] == "Enschede"  # the postcode table stood in


async def test_the_offline_outline_draws_the_country(client: httpx.AsyncClient) -> None:
    await login(client, "olga")
    base = (await client.get("/controlroom/map/base.json")).json()
    assert len(base["points"]) > 4000
    assert all(
        50.7 <= lat <= 53.6 and 3.3 <= lon <= 7.3 and radius >= 1000 for lat, lon, radius in base["points"]
    )
    names = [p["name"] for p in base["places"]]
    assert {"Amsterdam", "Rotterdam", "Enschede"} <= set(names)


async def test_the_maps_get_their_settings_and_leaflet_from_the_repository(
    client: httpx.AsyncClient, cr: ControlRoom
) -> None:
    await login(client, "olga")
    page = await client.get("/controlroom/actions/new")
    config = json.loads(html.unescape(re.search(r"data-map='([^']*)'", page.text).group(1)))  # type: ignore[union-attr]
    assert config["tiles"] is None and config["pick"] is True and config["attribution"] == ""
    leaflet = "/controlroom/static/vendor/leaflet"
    for asset in (f"{leaflet}/leaflet.js", f"{leaflet}/leaflet.css", "/controlroom/static/map.js"):
        assert f'"{asset}"' in page.text
        assert (await client.get(asset)).status_code == 200
    css = (await client.get("/controlroom/static/vendor/leaflet/leaflet.css")).text
    for image in set(re.findall(r"url\((images/[\w-]+\.png)\)", css)):
        served = await client.get(f"/controlroom/static/vendor/leaflet/{image}")
        assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert (
        await client.get("/controlroom/static/vendor/leaflet/..%2F..%2Fcontrolroom.js")
    ).status_code == 404
    assert (await client.get("/controlroom/static/vendor/leaflet/LICENSE")).status_code == 404


async def test_with_tiles_the_csp_lets_in_the_tile_server_and_nothing_else(
    client: httpx.AsyncClient, cr: ControlRoom
) -> None:
    await login(client, "olga")
    before = (await client.get("/controlroom/actions/new")).headers["content-security-policy"]
    cr.settings = cr.settings.model_copy(update={"controlroom_tile_url": PDOK_TILES})
    page = await client.get("/controlroom/actions/new")
    after = page.headers["content-security-policy"]
    assert "img-src 'self' data: https://service.pdok.nl;" in after
    assert after.replace(" https://service.pdok.nl", "") == before
    config = json.loads(html.unescape(re.search(r"data-map='([^']*)'", page.text).group(1)))  # type: ignore[union-attr]
    assert config["tiles"] == PDOK_TILES
    assert config["attribution"] == "Kaartgegevens © Kadaster"


async def test_a_municipality_action_shows_its_postcode_areas(
    client: httpx.AsyncClient, cr: ControlRoom
) -> None:
    await login(client, "olga")
    created = await _post(client, area_kind="municipalities", municipalities="Enschede")
    assert created.status_code == 303, created.text
    preview = await client.get(created.headers["location"])
    config = json.loads(html.unescape(re.search(r"data-map='([^']*)'", preview.text).group(1)))  # type: ignore[union-attr]
    assert config["circle"] is None and config["pick"] is False
    enschede = [p for p in cr.book if p.municipality_code == "0153"]
    assert len(config["area_points"]) == len(enschede) > 5
    assert distance_m(*config["centre"], *ENSCHEDE) < 5000
