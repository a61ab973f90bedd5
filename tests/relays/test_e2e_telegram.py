"""The whole app on loopback with Telegram: a group registers itself through the webhook, the API launches
an action, and the running dispatcher posts the alert in the group through the (fake) Bot API."""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from sqlmodel import select

from bot.channels.telegram import SECRET_HEADER, WEBHOOK_PATH
from bot.config import Settings, load_settings
from bot.runtime import Runtime
from storage.actions import normalise_code
from storage.crypto import new_data_key
from storage.models import Delivery, DeliveryKind, ProcessedEvent
from storage.relays import relay_ref
from tests.conftest import FixedClock
from tests.e2e.serving import served_runtime
from tests.fakes.telegram_api import FakeTelegramApi

TOKEN = "7000000001:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0"
SECRET = "relay-e2e-secret_0123456789"
API_TOKEN = "relay-e2e-token-0123456789"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
TESTDATA = Path(__file__).parent.parent / "channels" / "testdata" / "telegram"
GROUP_TITLE = json.loads((TESTDATA / "group_message.json").read_text(encoding="utf-8"))["message"]["chat"][
    "title"
]
GROUP = -1001987654321  # the chat of tests/channels/testdata/telegram/group_message.json
_ids = itertools.count(700_000_001)


@pytest.fixture
def fake() -> Iterator[FakeTelegramApi]:
    with FakeTelegramApi(TOKEN, username="BurgernetTestBot", max_poll_s=0.5) as api:
        yield api


@pytest.fixture
def e2e_settings(database_url: str, fake: FakeTelegramApi) -> Settings:
    return load_settings(
        database_url=database_url,
        data_key=new_data_key(),
        public_base_url="https://burgernet.example.nl",
        api_token=API_TOKEN,
        telegram_bot_token=TOKEN,
        telegram_bot_username="BurgernetTestBot",
        telegram_api_base_url=fake.base_url,
        telegram_webhook_secret=SECRET,
        dispatch_rate_limits=False,
        dispatch_poll_interval_s=0.05,
        scheduler_leader_poll_seconds=0.05,
    )


@dataclass
class Running:
    """The app serving on loopback, and its runtime."""

    runtime: Runtime
    http: httpx.AsyncClient


@pytest.fixture
async def running(e2e_settings: Settings, clock: FixedClock) -> AsyncIterator[Running]:
    options = {"per_chat_interval": 0}
    async with served_runtime(e2e_settings, clock, telegram_options=options) as (runtime, client):
        yield Running(runtime, client)


def group_update(text: str, *, reply_to: int | None = None) -> dict[str, Any]:
    """Anna's message in the neighbourhood group, as Telegram posts it."""
    update = copy.deepcopy(json.loads((TESTDATA / "group_message.json").read_text(encoding="utf-8")))
    update["update_id"] = next(_ids)
    update["message"]["message_id"] = next(_ids)
    update["message"]["text"] = text
    if reply_to is not None:
        update["message"]["reply_to_message"] = {
            "message_id": reply_to,
            "date": update["message"]["date"],
            "chat": update["message"]["chat"],
            "text": "...",
        }
    return update


async def test_a_group_registers_itself_and_gets_the_alert_posted(
    running: Running, fake: FakeTelegramApi, clock: FixedClock
) -> None:
    http = running.http
    for text in ["/buurtapp@BurgernetTestBot", "ja", "7511", "45"]:
        response = await http.post(WEBHOOK_PATH, json=group_update(text), headers={SECRET_HEADER: SECRET})
        assert response.status_code == 200
    dialogue = await asyncio.to_thread(fake.wait_for, "sendMessage", 4, 10.0)
    assert {int(c.params["chat_id"]) for c in dialogue} == {GROUP}
    assert "Buurtapp Wilhelminastraat" in dialogue[-1].params["text"]

    action = (
        await http.post(
            "/api/v1/actions",
            headers=AUTH,
            json={
                "type": "missing_person",
                "headline": "Vermist: jongen (8), blauwe jas",
                "description": "Tim is sinds 14:00 vermist rond het Volkspark.",
                "instruction": "Ziet u hem? Bel 112.",
                "area": {"circle": {"lat": 52.2215, "lon": 6.8937, "radius_m": 3000}},
                "expires_at": (clock() + timedelta(hours=2)).isoformat(),
            },
        )
    ).json()
    assert (await http.post(f"/api/v1/actions/{action['id']}/launch", headers=AUTH)).status_code == 200

    posted = (await asyncio.to_thread(fake.wait_for, "sendMessage", 5, 10.0))[-1]
    assert int(posted.params["chat_id"]) == GROUP
    assert action["code"] in posted.params["text"]
    link = urlparse(next(w for w in posted.params["text"].split() if w.startswith("https://t.me/")))
    start = parse_qs(link.query)["start"][0]
    assert link.path == "/BurgernetTestBot"
    assert normalise_code(start) == action["code"] and relay_ref(start) is not None

    shown = (await http.get(f"/api/v1/actions/{action['id']}", headers=AUTH)).json()
    assert shown["relays"]["relays"] == 1 and shown["relays"]["estimated_members"] == 45

    # A member answers the post in the group: a tip on the action through this relay, thanked in the
    # group (the member may never have opened a chat with the bot).
    with running.runtime.sessions() as session:
        [delivery] = session.exec(select(Delivery).where(Delivery.kind == DeliveryKind.RELAY_ALERT)).all()
    assert delivery.provider_id is not None
    reply = group_update("Ik zag hem net bij de Jumbo", reply_to=int(delivery.provider_id))
    assert (await http.post(WEBHOOK_PATH, json=reply, headers={SECRET_HEADER: SECRET})).status_code == 200
    with running.runtime.sessions() as session:
        handled = {e.key for e in session.exec(select(ProcessedEvent))}
    assert f"telegram:update:{reply['update_id']}" in handled
    thanks = (await asyncio.to_thread(fake.wait_for, "sendMessage", 6, 10.0))[-1]
    assert int(thanks.params["chat_id"]) == GROUP and action["code"] in thanks.params["text"]
    [tip] = (await http.get(f"/api/v1/actions/{action['id']}/tips", headers=AUTH)).json()
    assert tip["text"] == "Ik zag hem net bij de Jumbo"
    assert tip["relay_id"] == delivery.relay_id
    assert running.runtime.tip_feed is not None  # the control room names the group the tip came through
    [view] = running.runtime.tip_feed.tips(action_id=action["id"])
    assert view.relay == GROUP_TITLE
