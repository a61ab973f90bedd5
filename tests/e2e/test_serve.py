"""The system as `make run` serves it: one app, simulator channels, outbox worker and scheduler running.

A citizen registers in the simulator, the control room launches an action through the REST API, the
running dispatcher delivers the alert to the simulator's mailbox, the citizen's answer becomes a tip on
the action, and closing the action sends the closing message; `/healthz` answers once storage and
scheduler are up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from bot.app import create_app
from bot.clock import utcnow
from bot.config import Settings, load_settings
from bot.runtime import build_runtime
from storage.crypto import new_data_key
from tests.e2e.serving import served

TOKEN = "serve-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PHONE = "+31612345678"
REGISTRATION = ["AANMELDEN", "JA", "Sanne", "7511 AB 12", "JA", "JA", "SMS"]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return load_settings(
        database_url=database_url,
        data_key=new_data_key(),
        api_token=TOKEN,
        dispatch_rate_limits=False,
        dispatch_poll_interval_s=0.05,
        scheduler_leader_poll_seconds=0.05,
    )


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    runtime = build_runtime(settings, run_migrations=False)
    async with served(create_app(runtime)) as client:
        yield client


async def say(http: httpx.AsyncClient, text: str) -> list[dict[str, Any]]:
    response = await http.post("/simulator/messages", json={"channel": "sms", "sender": PHONE, "text": text})
    assert response.status_code == 200, response.text
    replies: list[dict[str, Any]] = response.json()
    return replies


async def mailbox_until(http: httpx.AsyncClient, after: int, count: int) -> list[dict[str, Any]]:
    """The messages the bot sent on its own, waiting (bounded) until `count` arrived."""
    for _ in range(200):
        person = {"channel": "sms", "sender": PHONE, "after": after}
        got = [m for m in (await http.post("/simulator/history", json=person)).json() if not m["from_person"]]
        if len(got) >= count:
            return list(got)
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {len(got)} of {count} messages arrived")


async def test_register_then_alert_and_closing_reach_the_simulator(http: httpx.AsyncClient) -> None:
    for _ in range(100):
        health = await http.get("/healthz")
        if health.status_code == 200:
            break
        await asyncio.sleep(0.05)
    assert health.json() == {"status": "ok"}

    replies: list[dict[str, Any]] = []
    for text in REGISTRATION:
        replies = await say(http, text)
    assert "Enschede" in replies[-1]["text"]
    last_id = replies[-1]["id"]

    now = utcnow()
    action = (
        await http.post(
            "/api/v1/actions",
            headers=AUTH,
            json={
                "type": "missing_person",
                "headline": "Vermist: jongen (8), blauwe jas",
                "description": "Tim is sinds 14:00 vermist rond het Volkspark.",
                "instruction": "Ziet u hem? Bel 112.",
                "area": {"circle": {"lat": 52.2215, "lon": 6.8937, "radius_m": 5000}},
                "expires_at": (now + timedelta(hours=2)).isoformat(),
            },
        )
    ).json()
    launched = await http.post(f"/api/v1/actions/{action['id']}/launch", headers=AUTH)
    assert launched.status_code == 200, launched.text

    [alert] = await mailbox_until(http, last_id, 1)
    assert action["code"] in alert["text"]

    # The citizen answers the alert: a tip on the action, thanked, listed for the control room.
    [thanks] = await say(http, "Ik zag een jongen met blauwe jas bij het station, 5 minuten geleden")
    assert action["code"] in thanks["text"] and "112" in thanks["text"]
    [tip] = (await http.get(f"/api/v1/actions/{action['id']}/tips", headers=AUTH)).json()
    assert tip["action_code"] == action["code"] and tip["channel"] == "sms"
    assert tip["location"]["text"] and tip["seen_at"]
    last_id = thanks["id"]

    closed = await http.post(
        f"/api/v1/actions/{action['id']}/close",
        headers=AUTH,
        json={"outcome": "found", "closing_text": "Tim is gevonden. Dank voor het uitkijken."},
    )
    assert closed.status_code == 200, closed.text
    [closing] = await mailbox_until(http, last_id, 1)
    assert "Tim is gevonden" in closing["text"]

    shown = (await http.get(f"/api/v1/actions/{action['id']}", headers=AUTH)).json()
    assert shown["deliveries"]["alert"]["by_status"] == {"sent": 1}
    assert shown["deliveries"]["closing"]["by_status"] == {"sent": 1}


async def test_control_room_and_docs_are_served(http: httpx.AsyncClient) -> None:
    login = await http.get("/controlroom/login")
    assert login.status_code == 200
    assert "<form" in login.text
    assert (await http.get("/openapi.json")).json()["paths"].keys() >= {"/api/v1/actions", "/healthz"}
    assert (await http.get("/", follow_redirects=False)).headers["location"] == "/simulator"
