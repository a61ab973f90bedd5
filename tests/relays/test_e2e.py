"""The whole app on loopback: a coordinator registers over signed WhatsApp webhooks, the API launches an
action, the running dispatcher sends the forward-ready alert through (fake) Twilio, and the prefilled text
of its wa.me link comes back through the webhook as a group member would send it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from bot.config import Settings, load_settings
from storage.actions import normalise_code
from storage.crypto import new_data_key
from storage.relays import relay_ref
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock
from tests.e2e.serving import served_runtime
from tests.e2e.test_twilio_registration import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    OUR_NUMBER,
    PUBLIC,
    WHATSAPP_PHONE,
    post_signed,
    twilio_form,
)
from tests.fakes.twilio_api import FakeTwilioApi

TOKEN = "relay-e2e-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MEMBER = "+31655501234"  # a group member who never registered
WEBHOOK = "/webhooks/twilio/whatsapp"


@pytest.fixture
def fake() -> Iterator[FakeTwilioApi]:
    with FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN) as api:
        yield api


@pytest.fixture
def e2e_settings(database_url: str, fake: FakeTwilioApi) -> Settings:
    return load_settings(
        database_url=database_url,
        data_key=new_data_key(),
        public_base_url=PUBLIC,
        api_token=TOKEN,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_sms_from=OUR_NUMBER,
        twilio_whatsapp_from=OUR_NUMBER,
        twilio_api_base_url=fake.base_url,
        telegram_bot_username="BurgernetTestBot",
        dispatch_rate_limits=False,
        dispatch_poll_interval_s=0.05,
        scheduler_leader_poll_seconds=0.05,
    )


@pytest.fixture
async def http(e2e_settings: Settings, clock: FixedClock) -> AsyncIterator[httpx.AsyncClient]:
    async with served_runtime(e2e_settings, clock) as (_, client):
        yield client


async def sent_to(fake: FakeTwilioApi, address: str, count: int) -> list[dict[str, Any]]:
    """The messages (fake) Twilio got for an address, waiting (bounded) until `count` arrived."""
    for _ in range(200):
        got = [m for m in fake.messages() if m["To"] == address]
        if len(got) >= count:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {len(got)} of {count} messages reached {address}")


async def test_a_whatsapp_coordinator_gets_a_working_tip_link(
    http: httpx.AsyncClient, fake: FakeTwilioApi, clock: FixedClock
) -> None:
    answers = ["BUURTAPP", "JA", "Buurtpreventie Roombeek", "WhatsApp", "7511", "80", "JA"]
    for text in answers:
        response = await post_signed(http, WEBHOOK, twilio_form(ChannelKind.WHATSAPP, WHATSAPP_PHONE, text))
        assert response.status_code == 200, response.text
    coordinator = "whatsapp:" + WHATSAPP_PHONE
    replies = await sent_to(fake, coordinator, len(answers))
    assert "Buurtpreventie Roombeek" in replies[-1]["Body"]

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
    launched = await http.post(f"/api/v1/actions/{action['id']}/launch", headers=AUTH)
    assert launched.status_code == 200, launched.text

    alert = (await sent_to(fake, coordinator, len(answers) + 1))[-1]
    assert action["code"] in alert["Body"] and "ContentSid" not in alert
    link = urlparse(next(w for w in alert["Body"].split() if w.startswith("https://wa.me/")))
    assert link.path == "/" + OUR_NUMBER.lstrip("+")
    prefilled = parse_qs(link.query)["text"][0]
    assert normalise_code(prefilled) == action["code"] and relay_ref(prefilled) is not None

    # A member taps the link, adds what they saw to the prefilled text and sends it: a tip on the action,
    # from someone never registered, that the control room sees came through this relay.
    tip_text = prefilled + " jongen in blauwe jas bij het station Enschede, 10 minuten geleden"
    tapped = await post_signed(http, WEBHOOK, twilio_form(ChannelKind.WHATSAPP, MEMBER, tip_text))
    assert tapped.status_code == 200
    [answer] = await sent_to(fake, "whatsapp:" + MEMBER, 1)
    assert action["code"] in answer["Body"] and "112" in answer["Body"]

    [tip] = (await http.get(f"/api/v1/actions/{action['id']}/tips", headers=AUTH)).json()
    assert tip["relay_id"] == relay_ref(prefilled)
    assert tip["reporter"].startswith("R-") and MEMBER not in str(tip)
    shown = (await http.get(f"/api/v1/actions/{action['id']}", headers=AUTH)).json()
    assert shown["relays"]["relays"] == 1 and shown["relays"]["estimated_members"] == 80
    assert shown["relays"]["tips"] == 1
