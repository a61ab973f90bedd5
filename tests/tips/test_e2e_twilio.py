"""End to end: signed Twilio webhooks (WhatsApp location and photo) into the app on loopback, the tip on
`GET /api/v1/tips/stream`, with the app the benchmark serves (the runtime's wiring, tips attached)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

from bench.tip_bench import ACCOUNT_SID, API_TOKEN, AUTH_TOKEN, OUR_NUMBER, bench_settings, build_app
from bot.config import Settings
from storage.crypto import DataVault, new_data_key
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock
from tests.e2e.serving import served
from tests.tips.conftest import launch, person
from tests.tips.loopback import free_port
from tests.tips.payloads import TESTDATA

PHONE = "+31687650001"


@pytest.fixture
def port() -> int:
    """Where the app listens."""
    return free_port()


@pytest.fixture
def data_key() -> str:
    return new_data_key()


@pytest.fixture
def vault(data_key: str) -> DataVault:
    return DataVault(data_key)


@pytest.fixture
def settings(database_url: str, port: int, data_key: str) -> Settings:
    return bench_settings(database_url, port, data_key)


@pytest.fixture
async def http(settings: Settings, clock: FixedClock) -> AsyncIterator[httpx.AsyncClient]:
    app, _ = build_app(settings, clock=clock)
    async with served(app, port=int(settings.public_base_url.rsplit(":", 1)[1]), timeout_s=10) as client:
        yield client


async def post_signed(http: httpx.AsyncClient, settings: Settings, path: str, form: dict[str, str]) -> int:
    signature = RequestValidator(AUTH_TOKEN).compute_signature(settings.public_base_url + path, form)
    response = await http.post(
        path,
        content=urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )
    return response.status_code


def whatsapp_form(name: str, sid: str) -> dict[str, str]:
    form: dict[str, str] = json.loads((TESTDATA / "twilio" / name).read_text(encoding="utf-8"))
    form.update(
        From="whatsapp:" + PHONE, WaId=PHONE.lstrip("+"), To="whatsapp:" + OUR_NUMBER, AccountSid=ACCOUNT_SID,
        MessageSid=sid, SmsMessageSid=sid, SmsSid=sid,
    )  # fmt: skip
    form.pop("OriginalRepliedMessageSid", None)
    form.pop("OriginalRepliedMessageSender", None)
    return form


async def events(response: httpx.Response, count: int) -> list[dict[str, Any]]:
    found = []
    lines = response.aiter_lines()
    while len(found) < count:
        line = await asyncio.wait_for(anext(lines), 10)
        if line.startswith("data:"):
            found.append(json.loads(line[5:]))
    return found


async def test_whatsapp_location_and_photo_reach_the_stream(
    http: httpx.AsyncClient, settings: Settings, sessions: Any, vault: DataVault, clock: FixedClock
) -> None:
    sanne = person(sessions, vault, clock(), ChannelKind.WHATSAPP)  # a participant who got the alert
    action = launch(sessions, clock(), sanne)
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    async with http.stream("GET", "/api/v1/tips/stream", headers=auth) as stream:
        location = whatsapp_form("whatsapp_location.json", "SM" + "1" * 32)
        location.update(From="whatsapp:" + sanne.sender, WaId=sanne.sender.lstrip("+"))
        assert await post_signed(http, settings, "/webhooks/twilio/whatsapp", location) == 200
        photo = whatsapp_form("whatsapp_media.json", "MM" + "2" * 32)
        photo.update(From="whatsapp:" + sanne.sender, WaId=sanne.sender.lstrip("+"))
        assert await post_signed(http, settings, "/webhooks/twilio/whatsapp", photo) == 200
        created, updated = await events(stream, 2)
    assert (created["event"], updated["event"]) == ("tip.created", "tip.updated")
    assert created["action_code"] == action.code and created["channel"] == "whatsapp"
    assert created["location"] == {"text": None, "lat": 52.2215, "lon": 6.8937}
    # Our own URL for the photo (the API's): Twilio's URL, which needs our credentials, never leaves.
    assert updated["media"] == [f"/api/v1/tips/{created['id']}/media/1"] and updated["id"] == created["id"]


async def test_unsigned_tip_webhook_is_refused_and_nothing_is_stored(
    http: httpx.AsyncClient, settings: Settings, sessions: Any, clock: FixedClock
) -> None:
    from tests.tips.conftest import stored_tips

    form = whatsapp_form("whatsapp_location.json", "SM" + "3" * 32)
    response = await http.post(
        "/webhooks/twilio/whatsapp",
        content=urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "Zm9v"},
    )
    assert response.status_code == 403
    assert stored_tips(sessions) == []
