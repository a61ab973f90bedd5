"""The actions REST API: bearer token, a clear 422 per invalid field, create → preview → launch → close."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bot.alerts import AlertTexts
from bot.api.actions import actions_router
from bot.dispatch import Dispatcher
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.geo import PostcodeBook
from storage.models import ActionType
from storage.preferences import Preferences, save_preferences
from storage.vocabulary import ChannelKind
from tests.actions.conftest import ENSCHEDE, FakeChannel, dispatch_settings, seed_person
from tests.conftest import FixedClock

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def woken() -> list[int]:
    """Counts the dispatcher wake-ups the API asked for."""
    return []


@pytest.fixture
def client(
    sessions: SessionFactory, clock: FixedClock, book: PostcodeBook, texts: AlertTexts, woken: list[int]
) -> Iterator[TestClient]:
    """The actions router on a bare app, with a fixed clock."""
    app = FastAPI()
    app.include_router(
        actions_router(
            sessions=sessions,
            settings=dispatch_settings(api_token=TOKEN),
            clock=clock,
            book=book,
            texts=texts,
            on_queued=lambda: woken.append(1),
        )
    )
    with TestClient(app) as test_client:
        yield test_client


def _body(clock: FixedClock, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "missing_person",
        "headline": "Vermist: jongen (8), blauwe jas",
        "description": "Tim is sinds 14:00 vermist rond het Volkspark. Hij heeft kort blond haar.",
        "instruction": "Ziet u hem? Bel 112.",
        "area": {"circle": {"lat": ENSCHEDE[0], "lon": ENSCHEDE[1], "radius_m": 5000}},
        "expires_at": (clock() + timedelta(hours=2)).isoformat(),
    }
    body.update(changes)
    return body


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["none", "wrong-token", "no-scheme", "basic"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("post", "/api/v1/actions"), ("get", "/api/v1/actions"), ("get", "/api/v1/actions/1")],
    ids=["create", "list", "show"],
)
def test_401_without_the_right_bearer_token(
    client: TestClient, clock: FixedClock, headers: dict[str, str], method: str, path: str
) -> None:
    response = client.request(method, path, headers=headers, json=_body(clock))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


CIRCLE = {"lat": ENSCHEDE[0], "lon": ENSCHEDE[1], "radius_m": 5000}


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"area": {"circle": {**CIRCLE, "radius_m": 0}}}, "radius_m", "more than 0"),
        ({"area": {"circle": {**CIRCLE, "radius_m": -5}}}, "radius_m", "more than 0"),
        ({"area": {"circle": {**CIRCLE, "radius_m": 50_001}}}, "radius_m", "50 km"),
        ({"area": {"circle": {**CIRCLE, "lat": 48.85, "lon": 2.35}}}, "circle", "outside the Netherlands"),
        ({"area": {}}, "area", "exactly one"),
        ({"area": {"municipalities": ["Atlantis"]}}, "municipalities", "unknown municipality"),
        ({"expires_at": "2026-11-20T13:00:00+00:00"}, "expires_at", "in the future"),
        ({"expires_at": "2026-11-20T18:00:00"}, "expires_at", "timezone"),
        ({"headline": "   "}, "headline", "must not be empty"),
        ({"description": ""}, "description", "must not be empty"),
        ({"headline": "x" * 161}, "headline", "at most 160"),
        ({"headline": "🚨" * 80}, "headline", "SMS"),
        ({"description": "woord " * 199, "instruction": "Bel 112. " * 33}, "description", "limit is 1600"),
        ({"type": "alien_invasion"}, "type", "Input should be"),
    ],
    ids=[
        "radius-zero",
        "radius-negative",
        "radius-over-50km",
        "point-in-paris",
        "no-area",
        "unknown-municipality",
        "expires-in-the-past",
        "expires-without-timezone",
        "blank-headline",
        "empty-description",
        "headline-too-long",
        "headline-over-two-sms",
        "description-over-whatsapp-limit",
        "unknown-type",
    ],
)
def test_422_names_the_field_and_says_why(
    client: TestClient, clock: FixedClock, changes: dict[str, Any], field: str, words: str
) -> None:
    response = client.post("/api/v1/actions", headers=AUTH, json=_body(clock, **changes))
    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    assert any(field in [str(part) for part in p["loc"]] and words in p["msg"] for p in problems), problems


def test_create_preview_launch_show_close(
    client: TestClient, sessions: SessionFactory, vault: DataVault, clock: FixedClock, woken: list[int]
) -> None:
    seed_person(sessions, vault, clock(), channels=(ChannelKind.TELEGRAM,))
    seed_person(sessions, vault, clock(), channels=(ChannelKind.SMS,))
    seed_person(
        sessions, vault, clock(), channels=(ChannelKind.SMS, ChannelKind.TELEGRAM), preferred=ChannelKind.SMS
    )
    seed_person(sessions, vault, clock(), channels=(ChannelKind.WHATSAPP,))
    seed_person(sessions, vault, clock(), channels=(ChannelKind.VOICE,))
    seed_person(sessions, vault, clock(), at=(53.2, 5.8))  # Leeuwarden: outside

    created = client.post("/api/v1/actions", headers=AUTH, json=_body(clock))
    assert created.status_code == 201, created.text
    action = created.json()
    assert action["status"] == "draft" and action["code"].startswith("BN-")

    preview = client.post(f"/api/v1/actions/{action['id']}/launch?dry_run=true", headers=AUTH).json()
    assert preview["recipients"] == 5
    assert preview["per_channel"] == {"telegram": 1, "sms": 2, "whatsapp": 1, "voice": 1}
    settings = dispatch_settings()
    assert preview["sms_segments"] == 2 * preview["sms_segments"] // 2 >= 2
    assert preview["cost_eur"]["sms"] == round(preview["sms_segments"] * settings.price_sms_segment_eur, 2)
    assert preview["cost_eur"]["whatsapp"] == settings.price_whatsapp_template_eur
    assert preview["total_eur"] > 0
    assert woken == []  # a preview queues nothing

    launched = client.post(f"/api/v1/actions/{action['id']}/launch", headers=AUTH)
    assert launched.status_code == 200, launched.text
    body = launched.json()
    assert body["status"] == "active"
    assert body["deliveries"]["alert"]["total"] == 5
    assert body["deliveries"]["alert"]["by_status"] == {"queued": 5}
    assert body["deliveries"]["alert"]["by_channel"]["sms"] == {"queued": 2}
    assert woken == [1]

    again = client.post(f"/api/v1/actions/{action['id']}/launch", headers=AUTH)
    assert again.status_code == 409

    listed = client.get("/api/v1/actions?status=active", headers=AUTH).json()
    assert [a["id"] for a in listed] == [action["id"]]
    assert client.get("/api/v1/actions/999", headers=AUTH).status_code == 404

    closed = client.post(
        f"/api/v1/actions/{action['id']}/close",
        headers=AUTH,
        json={"outcome": "found", "closing_text": "Tim is gevonden."},
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed" and closed.json()["outcome"] == "found"
    # Nothing was sent yet, so nobody is owed a closing message; the queued alerts are stopped.
    assert closed.json()["deliveries"]["alert"]["by_status"] == {"failed": 5}
    assert closed.json()["deliveries"]["closing"]["total"] == 0


async def test_launch_through_the_api_then_dispatch_and_close(
    client: TestClient,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    texts: AlertTexts,
) -> None:
    people = [seed_person(sessions, vault, clock(), channels=(ChannelKind.TELEGRAM,)) for _ in range(3)]
    action = client.post("/api/v1/actions", headers=AUTH, json=_body(clock)).json()
    client.post(f"/api/v1/actions/{action['id']}/launch", headers=AUTH)
    channel = FakeChannel(ChannelKind)
    dispatcher = Dispatcher(
        sessions,
        dict.fromkeys(ChannelKind, channel),
        clock,
        dispatch_settings(),
        "w",
        vault=vault,
        texts=texts,
    )
    await dispatcher.drain()
    shown = client.get(f"/api/v1/actions/{action['id']}", headers=AUTH).json()
    assert shown["deliveries"]["alert"]["by_status"] == {"sent": 3}
    clock.advance(minutes=45)
    closed = client.post(
        f"/api/v1/actions/{action['id']}/close",
        headers=AUTH,
        json={"outcome": "arrested", "closing_text": "Er is een verdachte aangehouden."},
    ).json()
    assert closed["deliveries"]["closing"]["by_status"] == {"queued": 3}
    channel.sent.clear()
    await dispatcher.drain()
    assert sorted(channel.recipients()) == sorted(p.addresses[ChannelKind.TELEGRAM] for p in people)
    assert all("aangehouden" in m.text for m in channel.sent)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"outcome": "found", "closing_text": ""}, "closing_text"),
        ({"outcome": "maybe", "closing_text": "x"}, "outcome"),
    ],
    ids=["empty-closing-text", "unknown-outcome"],
)
def test_close_validates(client: TestClient, clock: FixedClock, body: dict[str, str], field: str) -> None:
    action = client.post("/api/v1/actions", headers=AUTH, json=_body(clock)).json()
    response = client.post(f"/api/v1/actions/{action['id']}/close", headers=AUTH, json=body)
    assert response.status_code == 422
    assert any(field in p["loc"] for p in response.json()["detail"])


def test_municipalities_by_name_or_code(client: TestClient, clock: FixedClock) -> None:
    response = client.post(
        "/api/v1/actions", headers=AUTH, json=_body(clock, area={"municipalities": ["Enschede", "164"]})
    )
    assert response.status_code == 201, response.text
    assert response.json()["area"] == {"municipalities": ["0153", "0164"]}


def test_four_eyes_over_the_api_202_then_an_operator_approves_and_the_token_cannot_approve_itself(
    client: TestClient, sessions: SessionFactory, clock: FixedClock, vault: DataVault, woken: list[int]
) -> None:
    from storage.db import transaction
    from storage.regions import ANY_TYPE, EVERYWHERE, save_region, set_approval_rule

    seed_person(sessions, vault, clock())
    with transaction(sessions) as session:
        save_region(session, name=EVERYWHERE, municipalities=[], everywhere=True, now=clock())
        set_approval_rule(session, region_name=EVERYWHERE, action_type=ANY_TYPE, required=True)
    made = client.post("/api/v1/actions", json=_body(clock, exercise=False), headers=AUTH).json()
    asked = client.post(f"/api/v1/actions/{made['id']}/launch", headers=AUTH)
    assert asked.status_code == 202
    assert (asked.json()["status"], asked.json()["approval_requested_by"]) == ("awaiting_approval", "api")
    assert woken == []
    own = client.post(f"/api/v1/actions/{made['id']}/approve", headers=AUTH)
    assert own.status_code == 403 and "someone other than who asked" in own.json()["detail"]
    rejected = client.post(
        f"/api/v1/actions/{made['id']}/reject", json={"reason": "ingetrokken"}, headers=AUTH
    )
    assert (rejected.status_code, rejected.json()["status"]) == (200, "draft")
    again = client.post(f"/api/v1/actions/{made['id']}/reject", json={}, headers=AUTH)
    assert again.status_code == 409


def test_an_exercise_over_the_api(
    client: TestClient, sessions: SessionFactory, clock: FixedClock, vault: DataVault
) -> None:
    seed_person(sessions, vault, clock())
    made = client.post("/api/v1/actions", json=_body(clock, exercise=True), headers=AUTH)
    assert made.status_code == 201 and made.json()["exercise"] is True
    dry = client.post(f"/api/v1/actions/{made.json()['id']}/launch?dry_run=true", headers=AUTH).json()
    assert dry["recipients"] == 0 and dry["sms_text"].startswith("OEFENING: ")
    launched = client.post(f"/api/v1/actions/{made.json()['id']}/launch", headers=AUTH)
    assert (launched.status_code, launched.json()["status"]) == (200, "active")


def test_preview_says_how_many_their_preferences_left_out(
    client: TestClient, sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    people = [seed_person(sessions, vault, clock()) for _ in range(3)]
    with transaction(sessions) as session:
        save_preferences(
            session,
            participant_id=people[0].participant_id,
            preferences=Preferences(skipped=frozenset({ActionType.MISSING_PERSON})),
            now=clock(),
        )
    action = client.post("/api/v1/actions", headers=AUTH, json=_body(clock)).json()
    preview = client.post(f"/api/v1/actions/{action['id']}/launch?dry_run=true", headers=AUTH).json()
    assert (preview["recipients"], preview["left_out_by_preferences"]) == (2, 1)
