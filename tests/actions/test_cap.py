"""CAP 1.2 out and in, and polygon areas through the API: every message type valid against the OASIS
schema, our CAP posted back in gives the same fields, invalid CAP answers 422 (never 500)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from lxml import etree

from bot.alerts import AlertTexts
from bot.api.actions import actions_router
from bot.api.cap import cap_router
from bot.cap.document import NS, validation_errors
from bot.texts import Catalogue
from storage.crypto import DataVault
from storage.db import SessionFactory
from storage.geo import PostcodeBook
from tests.actions.conftest import ENSCHEDE, dispatch_settings, seed_person
from tests.conftest import FixedClock

TOKEN = "test-token-cap"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CAP = {**AUTH, "Content-Type": "application/cap+xml"}
LAT, LON = ENSCHEDE
D = 0.01
SQUARE = [[LAT - D, LON - D], [LAT - D, LON + D], [LAT + D, LON + D], [LAT + D, LON - D], [LAT - D, LON - D]]
HOLE = [[LAT - D / 4, LON - D / 4], [LAT + D / 4, LON - D / 4], [LAT + D / 4, LON + D / 4],
        [LAT - D / 4, LON + D / 4], [LAT - D / 4, LON - D / 4]]  # fmt: skip
GEO_RINGS = [[[b, a] for a, b in ring] for ring in (SQUARE, HOLE)]
AREAS: dict[str, dict[str, Any]] = {
    "circle": {"circle": {"lat": LAT, "lon": LON, "radius_m": 2500.0}},
    "polygon": {"polygon": SQUARE},
    "polygon-centre": {"polygon": SQUARE, "centre": {"lat": LAT - D, "lon": LON}},
    "geojson-hole": {"geojson": {"type": "Polygon", "coordinates": GEO_RINGS}},
    "municipalities": {"municipalities": ["0153", "0164"]},
}


@pytest.fixture
def client(
    sessions: SessionFactory, clock: FixedClock, book: PostcodeBook, texts: AlertTexts
) -> Iterator[TestClient]:
    """The actions and CAP routers on a bare app, with a fixed clock."""
    settings = dispatch_settings(api_token=TOKEN, public_base_url="https://burgernet.example")
    app = FastAPI()
    app.include_router(
        actions_router(sessions=sessions, settings=settings, clock=clock, book=book, texts=texts)
    )
    app.include_router(
        cap_router(
            sessions=sessions,
            settings=settings,
            clock=clock,
            book=book,
            texts=texts,
            catalogue=Catalogue.load(),
        )
    )
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _body(clock: FixedClock, area: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "missing_person",
        "headline": "Vermist: jongen (8), blauwe jas",
        "description": "Tim is sinds 14:00 vermist rond het Volkspark & de vijver <noord>.",
        "instruction": "Ziet u hem? Bel 112.",
        "area": area,
        "expires_at": (clock() + timedelta(hours=2)).isoformat(),
    }
    body.update(changes)
    return body


def _create(client: TestClient, clock: FixedClock, area: dict[str, Any], **changes: Any) -> dict[str, Any]:
    response = client.post("/api/v1/actions", headers=AUTH, json=_body(clock, area, **changes))
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _cap(client: TestClient, action_id: int) -> bytes:
    response = client.get(f"/api/v1/actions/{action_id}/cap", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/cap+xml")
    assert validation_errors(response.content) == []
    return response.content


def _find(document: bytes, path: str) -> list[str]:
    root = etree.fromstring(document)
    return [e.text or "" for e in root.iterfind(path, {"c": NS})]


def test_polygon_action_previews_and_launches_nearest_first(
    client: TestClient, sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    inside = seed_person(sessions, vault, clock(), at=(LAT + 0.5 * D, LON))
    seed_person(sessions, vault, clock(), at=(LAT + 2 * D, LON))
    centre = seed_person(sessions, vault, clock(), at=(LAT, LON))
    action = _create(client, clock, AREAS["polygon"])
    preview = client.post(f"/api/v1/actions/{action['id']}/launch?dry_run=true", headers=AUTH).json()
    assert preview["recipients"] == 2
    launched = client.post(f"/api/v1/actions/{action['id']}/launch", headers=AUTH)
    assert launched.status_code == 200
    assert launched.json()["deliveries"]["alert"]["total"] == 2
    assert {inside.participant_id, centre.participant_id}


@pytest.mark.parametrize(
    ("area", "words"),
    [
        ({"polygon": SQUARE[:-1]}, "not closed"),
        ({"polygon": SQUARE[:3]}, "at least 4 points"),
        ({"polygon": [[LAT, LON], [LAT, 200], [LAT + D, LON], [LAT, LON]]}, "out of range"),
        ({"polygon": [[51, 4], [51, 7], [53, 7], [51, 4]]}, "too large"),
        ({"polygon": [[40, 4], [40, 4.1], [40.1, 4.1], [40, 4]]}, "outside the Netherlands"),
        ({"geojson": {"type": "LineString", "coordinates": []}}, "Polygon or MultiPolygon"),
        ({"polygon": SQUARE, "circle": AREAS["circle"]["circle"]}, "exactly one"),
        ({"circle": AREAS["circle"]["circle"], "centre": {"lat": LAT, "lon": LON}}, "'centre' goes with"),
    ],
    ids=["open", "short", "range", "large", "abroad", "linestring", "two-kinds", "centre-circle"],
)
def test_bad_polygon_is_a_clear_422(
    client: TestClient, clock: FixedClock, area: dict[str, Any], words: str
) -> None:
    response = client.post("/api/v1/actions", headers=AUTH, json=_body(clock, area))
    assert response.status_code == 422
    assert words in response.text


def test_enum_values_in_caps_spelling(client: TestClient, clock: FixedClock) -> None:
    action = _create(
        client, clock, AREAS["circle"], urgency="Expected", severity="Moderate", certainty="Likely"
    )
    assert (action["urgency"], action["severity"], action["certainty"]) == ("expected", "moderate", "likely")


@pytest.mark.parametrize("area", list(AREAS.values()), ids=list(AREAS))
def test_every_message_type_is_valid_cap(client: TestClient, clock: FixedClock, area: dict[str, Any]) -> None:
    draft = _create(client, clock, area)
    assert _find(_cap(client, draft["id"]), "c:status") == ["Draft"]
    running = _create(client, clock, area)
    client.post(f"/api/v1/actions/{running['id']}/launch", headers=AUTH)
    alert = _cap(client, running["id"])
    assert _find(alert, "c:status") == ["Actual"]
    assert _find(alert, "c:msgType") == ["Alert"]
    assert _find(alert, "c:info/c:web") == [f"https://burgernet.example/a/{running['code']}"]
    assert _find(alert, "c:info/c:language") == ["nl-NL"]
    closed = client.post(
        f"/api/v1/actions/{running['id']}/close",
        headers=AUTH,
        json={"outcome": "found", "closing_text": "Tim is gevonden. Dank voor het uitkijken."},
    )
    assert closed.status_code == 200
    update = _cap(client, running["id"])
    assert _find(update, "c:msgType") == ["Update"]
    assert _find(update, "c:info/c:description") == ["Tim is gevonden. Dank voor het uitkijken."]
    sender, identifier, sent = _find(update, "c:references")[0].split(",")
    assert (sender, identifier) == (_find(alert, "c:sender")[0], _find(alert, "c:identifier")[0])
    assert sent == _find(alert, "c:sent")[0]
    gone = _create(client, clock, area)
    client.post(f"/api/v1/actions/{gone['id']}/launch", headers=AUTH)
    client.post(
        f"/api/v1/actions/{gone['id']}/close",
        headers=AUTH,
        json={"outcome": "cancelled", "closing_text": "Deze actie is ingetrokken."},
    )
    cancel = _cap(client, gone["id"])
    assert _find(cancel, "c:msgType") == ["Cancel"]
    assert _find(cancel, "c:references") != []


ROUND_TRIP_FIELDS = ("type", "headline", "description", "instruction", "urgency", "severity", "certainty")


@pytest.mark.parametrize("name", ["circle", "polygon", "polygon-centre", "municipalities"])
def test_round_trip_gives_the_same_fields(client: TestClient, clock: FixedClock, name: str) -> None:
    original = _create(
        client,
        clock,
        AREAS[name],
        type="stolen_vehicle",
        urgency="expected",
        severity="minor",
        certainty="possible",
    )
    client.post(f"/api/v1/actions/{original['id']}/launch", headers=AUTH)
    document = _cap(client, original["id"])
    response = client.post("/api/v1/cap", headers=CAP, content=document)
    assert response.status_code == 201, response.text
    copy = response.json()
    assert copy["status"] == "draft"
    assert copy["id"] != original["id"]
    for field in ROUND_TRIP_FIELDS:
        assert copy[field] == original[field], field
    assert copy["area"] == original["area"]
    shown = client.get(f"/api/v1/actions/{original['id']}", headers=AUTH).json()
    assert datetime.fromisoformat(copy["expires_at"]) == datetime.fromisoformat(shown["expires_at"]).replace(
        microsecond=0
    )


def test_geojson_holes_do_not_travel_in_cap(client: TestClient, clock: FixedClock) -> None:
    original = _create(client, clock, AREAS["geojson-hole"])
    document = _cap(client, original["id"])
    assert len(_find(document, "c:info/c:area/c:polygon")) == 1
    copy = client.post("/api/v1/cap", headers=CAP, content=document).json()
    assert copy["area"] == {"polygon": SQUARE}


def _alert(msg_type: str = "Alert", extra: str = "", area: str = "", info_extra: str = "") -> bytes:
    area = area or f"<circle>{LAT},{LON} 2</circle>"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="{NS}">
  <identifier>MK-OOST-2026-0042</identifier>
  <sender>meldkamer-oost@politie.example</sender>
  <sent>2026-11-20T15:25:00+01:00</sent>
  <status>Actual</status>
  <msgType>{msg_type}</msgType>
  <scope>Public</scope>{extra}
  <info>
    <language>en-US</language>
    <category>Rescue</category>
    <event>Missing person</event>
    <urgency>Immediate</urgency>
    <severity>Severe</severity>
    <certainty>Observed</certainty>
    <headline>Missing: boy (8)</headline>
    <area><areaDesc>Enschede</areaDesc>{area}</area>
  </info>
  <info>
    <language>nl-NL</language>
    <category>Rescue</category>
    <event>Vermissing</event>
    <urgency>Immediate</urgency>
    <severity>Severe</severity>
    <certainty>Observed</certainty>
    <expires>2026-11-20T17:30:00+01:00</expires>
    <headline>Vermist: jongen (8)</headline>
    <description>Blauwe jas, kort blond haar.</description>{info_extra}
    <area><areaDesc>Enschede</areaDesc>{area}</area>
  </info>
</alert>""".encode()


def test_a_dispatch_systems_alert_becomes_a_draft(client: TestClient, clock: FixedClock) -> None:
    response = client.post("/api/v1/cap", headers=CAP, content=_alert())
    assert response.status_code == 201, response.text
    action = response.json()
    assert action["status"] == "draft"
    assert action["type"] == "missing_person"  # from the category: no eventCode of ours
    assert action["headline"] == "Vermist: jongen (8)"  # the Dutch info, not the first
    assert action["area"] == {"circle": {"lat": LAT, "lon": LON, "radius_m": 2000.0}}
    assert (action["urgency"], action["severity"], action["certainty"]) == ("immediate", "severe", "observed")
    assert datetime.fromisoformat(action["expires_at"]) == clock() + timedelta(hours=2)
    assert client.get(f"/api/v1/actions/{action['id']}", headers=AUTH).json()["status"] == "draft"


def _event_code(value: str) -> str:
    return f"<eventCode><valueName>burgernet:type</valueName><value>{value}</value></eventCode>"


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (b"", "not well-formed"),
        (b"<alert>", "not well-formed"),
        (_alert().replace(b"<status>Actual", b"<status>Bogus"), "status"),
        (_alert().replace(b"<scope>Public</scope>", b""), "scope"),
        (_alert().replace(b"+01:00</sent>", b"Z</sent>"), "sent"),
        (_alert().replace(NS.encode(), b"urn:oasis:names:tc:emergency:cap:1.1"), "alert"),
        (
            b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            + _alert().split(b"?>", 1)[1].replace(b"Blauwe jas", b"&x;"),
            "DOCTYPE",
        ),
        (_alert(area="<circle>x,y 2</circle>"), "lat,lon"),
        (_alert(area="<polygon>52.2,6.8 52.3,6.8 52.3,6.9 52.2,6.9</polygon>"), "not closed"),
        (_alert(area="<geocode><valueName>FIPS</valueName><value>1</value></geocode>"), "no area"),
        (
            _alert(area=f"<circle>{LAT},{LON} 2</circle><circle>{LAT},{LON} 3</circle>"),
            "more than one circle",
        ),
        (_alert(info_extra=_event_code("x")), "not expected"),
        (
            _alert().replace(
                b"</certainty>\n    <expires>", b"</certainty>" + _event_code("x").encode() + b"<expires>"
            ),
            "not an action",
        ),
        (_alert(area="<circle>52.2,6.8 1e999</circle>"), "radius_m"),
        (_alert(area="<circle>40.0,6.8 2</circle>"), "outside the Netherlands"),
        (_alert().replace(b"<headline>Vermist: jongen (8)", b"<headline>" + b"x" * 200), "160"),
    ],
    ids=[
        "empty",
        "broken",
        "status",
        "no-scope",
        "utc-z",
        "cap-1.1",
        "entity",
        "circle",
        "open",
        "fips",
        "two",
        "order",
        "type",
        "radius",
        "abroad",
        "long",
    ],
)
def test_invalid_cap_is_a_422_with_the_reason(client: TestClient, document: bytes, words: str) -> None:
    response = client.post("/api/v1/cap", headers=CAP, content=document)
    assert response.status_code == 422, response.text
    assert words in response.json()["detail"][0]["msg"]
    assert b"root:" not in response.content


def test_atom_feed_lists_the_running_actions(client: TestClient, clock: FixedClock) -> None:
    running = _create(client, clock, AREAS["polygon"])
    client.post(f"/api/v1/actions/{running['id']}/launch", headers=AUTH)
    _create(client, clock, AREAS["circle"])  # a draft: not in the feed
    response = client.get("/api/v1/cap/feed", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = etree.fromstring(response.content)
    atom = {"a": "http://www.w3.org/2005/Atom"}
    links = feed.xpath("a:entry/a:link[@type='application/cap+xml']/@href", namespaces=atom)
    assert links == [f"https://burgernet.example/api/v1/actions/{running['id']}/cap"]
    assert feed.xpath("a:entry/a:title/text()", namespaces=atom) == [running["headline"]]
    assert client.get("/api/v1/cap/feed").status_code == 401


def test_several_cap_polygons_become_one_multipolygon(client: TestClient) -> None:
    ring = " ".join(f"{a},{b}" for a, b in SQUARE)
    east = " ".join(f"{a},{b + 0.1}" for a, b in SQUARE)
    response = client.post(
        "/api/v1/cap", headers=CAP, content=_alert(area=f"<polygon>{ring}</polygon><polygon>{east}</polygon>")
    )
    assert response.status_code == 201, response.text
    area = response.json()["area"]["geojson"]
    assert area["type"] == "MultiPolygon"
    assert area["coordinates"][1][0][0] == [SQUARE[0][1] + 0.1, SQUARE[0][0]]
