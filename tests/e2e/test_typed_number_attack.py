"""The typed-number attack end to end: someone registers on Telegram with another person's number and
asks for SMS alerts; an action covers the address. The number's owner gets only the verification code.
A typed landline is proved the same way, by a call that speaks the code, and then gets alerts as calls.

The whole app serves on loopback with the Telegram webhook, Twilio and the API, as `serve` wires it;
Telegram updates and Twilio webhooks come in signed, and what goes out is read at the fake providers.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlmodel import select
from twilio.request_validator import RequestValidator

from bot.channels.telegram import WEBHOOK_PATH
from bot.config import Settings, load_settings
from bot.runtime import Runtime
from storage.crypto import new_data_key
from storage.models import Delivery, OptOut, Participant, PhoneVerification
from tests.conftest import FixedClock
from tests.e2e.serving import outbox_settled, served_runtime
from tests.fakes.telegram_api import FakeTelegramApi
from tests.fakes.twilio_api import FakeTwilioApi

TOKEN = "7000000001:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0"
SECRET = "e2e-webhook-secret_0123456789"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "e2e1" * 8
API_TOKEN = "api-token-for-the-typed-number-test"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
PUBLIC = "https://burgernet.example.nl"
OUR_NUMBER = "+3197010254321"
VICTIM = "+31612345678"
ATTACKER_CHAT = 551234567  # the chat of tests/channels/testdata/telegram/text.json
TESTDATA = Path(__file__).parent.parent / "channels" / "testdata" / "telegram"
ATTACK = ["/start", "ja", "overslaan", "7511 AB 12", "ja", "06 12345678", "SMS"]
_ids = itertools.count(810_000_001)
_sids = itertools.count(1)


@dataclass
class Running:
    """The app serving on loopback, its runtime and the two fake providers."""

    runtime: Runtime
    http: httpx.AsyncClient
    telegram: FakeTelegramApi
    twilio: FakeTwilioApi


@pytest.fixture
def telegram() -> Iterator[FakeTelegramApi]:
    with FakeTelegramApi(TOKEN, max_poll_s=0.5) as api:
        yield api


@pytest.fixture
def twilio() -> Iterator[FakeTwilioApi]:
    with FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN) as api:
        yield api


@pytest.fixture
def settings(database_url: str, telegram: FakeTelegramApi, twilio: FakeTwilioApi) -> Settings:
    return load_settings(
        database_url=database_url,
        data_key=new_data_key(),
        public_base_url=PUBLIC,
        api_token=API_TOKEN,
        telegram_bot_token=TOKEN,
        telegram_api_base_url=telegram.base_url,
        telegram_webhook_secret=SECRET,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_sms_from=OUR_NUMBER,
        twilio_whatsapp_from=OUR_NUMBER,
        twilio_voice_from=OUR_NUMBER,
        twilio_api_base_url=twilio.base_url,
        privacy_statement_version="2026-1",
        dispatch_rate_limits=False,
        dispatch_poll_interval_s=0.05,
        scheduler_enabled=False,
    )


@pytest.fixture
async def running(
    settings: Settings, clock: FixedClock, telegram: FakeTelegramApi, twilio: FakeTwilioApi
) -> AsyncIterator[Running]:
    async with served_runtime(settings, clock, telegram_options={"per_chat_interval": 0}) as (runtime, http):
        yield Running(runtime, http, telegram, twilio)


def text_update(text: str) -> dict[str, Any]:
    """The attacker's message as Telegram posts it to the webhook."""
    update = copy.deepcopy(json.loads((TESTDATA / "text.json").read_text(encoding="utf-8")))
    update["update_id"] = next(_ids)
    update["message"]["message_id"] = next(_ids)
    update["message"]["text"] = text
    return update


async def on_telegram(running: Running, *texts: str) -> None:
    for text in texts:
        response = await running.http.post(
            WEBHOOK_PATH, json=text_update(text), headers={SECRET_HEADER: SECRET}
        )
        assert response.status_code == 200
        await outbox_settled(running.runtime.sessions)  # the person reads the answer before writing again


async def by_sms(running: Running, sender: str, text: str) -> None:
    """A signed Twilio SMS webhook from `sender`."""
    sid = f"SM{next(_sids):032x}"
    form = {
        "MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid, "AccountSid": ACCOUNT_SID,
        "From": sender, "To": OUR_NUMBER, "Body": text, "NumMedia": "0", "NumSegments": "1",
        "SmsStatus": "received", "ApiVersion": "2010-04-01",
    }  # fmt: skip
    path = "/webhooks/twilio/sms"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + path, form)
    response = await running.http.post(
        path,
        content=urlencode(form).encode("utf-8"),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )
    assert response.status_code == 200, response.text


async def twilio_messages(running: Running, count: int, timeout_s: float = 10.0) -> list[dict[str, str]]:
    """The messages Twilio accepted, once there are `count` (the dispatcher sends in the background)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while len(running.twilio.messages()) < count:
        assert loop.time() < deadline, running.twilio.messages()
        await asyncio.sleep(0.02)
    return running.twilio.messages()


async def twilio_calls(running: Running, count: int, timeout_s: float = 10.0) -> list[dict[str, str]]:
    """The calls Twilio accepted, once there are `count` (the dispatcher places them in the background)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while len(running.twilio.calls()) < count:
        assert loop.time() < deadline, running.twilio.calls()
        await asyncio.sleep(0.02)
    return running.twilio.calls()


def spoken(twiml: str) -> list[tuple[str, str, str]]:
    """A call's TwiML as (verb, language, text), nested verbs after their parent."""
    root = ET.fromstring(twiml)
    return [(el.tag, el.get("language", ""), (el.text or "").strip()) for el in root.iter() if el is not root]


async def launch_over_enschede(running: Running, clock: FixedClock) -> int:
    """Create and launch an action around the address the attacker gave; its id."""
    action = (
        await running.http.post(
            "/api/v1/actions",
            headers=AUTH,
            json={
                "type": "missing_person",
                "headline": "Vermist: jongen (8), blauwe jas",
                "description": "Tim is sinds 14:00 vermist rond het Volkspark.",
                "instruction": "Ziet u hem? Bel 112.",
                "area": {"circle": {"lat": 52.2215, "lon": 6.8937, "radius_m": 5000}},
                "expires_at": (clock() + timedelta(hours=2)).isoformat(),
            },
        )
    ).json()
    launched = await running.http.post(f"/api/v1/actions/{action['id']}/launch", headers=AUTH)
    assert launched.status_code == 200, launched.text
    return int(action["id"])


def rows(running: Running, model: type[Any]) -> list[Any]:
    with running.runtime.sessions() as session:
        return list(session.exec(select(model)))


def code_message(running: Running) -> str:
    return running.runtime.catalogue.render("nl", "registration.code_message", code="000000")


async def test_a_typed_number_gets_only_the_code_and_no_alert(running: Running, clock: FixedClock) -> None:
    await on_telegram(running, *ATTACK)
    [code] = await twilio_messages(running, 1)
    assert code["To"] == VICTIM
    assert re.sub(r"\d{6}", "000000", code["Body"]) == code_message(running)

    action_id = await launch_over_enschede(running, clock)
    # Nobody is registered at the address: the action has no recipient at all, so nothing can follow.
    assert [d for d in rows(running, Delivery) if d.action_id == action_id] == []
    assert rows(running, Participant) == []
    assert running.twilio.messages() == [code]
    # On Telegram the attacker is only asked for the code.
    asked = running.telegram.calls_to("sendMessage")[-1].params["text"]
    assert asked.startswith("We stuurden een code van 6 cijfers per SMS naar +31 6 ****5678.")


async def test_the_owner_who_types_the_code_gets_the_alert(running: Running, clock: FixedClock) -> None:
    await on_telegram(running, *ATTACK)
    [code] = await twilio_messages(running, 1)
    await on_telegram(running, re.findall(r"\d{6}", code["Body"])[0])
    [participant] = rows(running, Participant)
    assert participant.preferred_channel == "sms"

    await launch_over_enschede(running, clock)
    sent = await twilio_messages(running, 2)
    assert [m["To"] for m in sent] == [VICTIM, VICTIM]
    assert "Vermist: jongen (8), blauwe jas" in sent[1]["Body"]


async def test_a_number_that_said_stop_gets_nothing_when_someone_types_it(
    running: Running, clock: FixedClock
) -> None:
    await by_sms(running, VICTIM, "STOP")
    [confirmation] = await twilio_messages(running, 1)
    assert confirmation["To"] == VICTIM
    assert len(rows(running, OptOut)) == 1

    await on_telegram(running, *ATTACK)
    [verification] = rows(running, PhoneVerification)
    assert verification.state == "withheld"
    asked = running.telegram.calls_to("sendMessage")[-1].params["text"]
    assert asked.startswith("We stuurden een code van 6 cijfers per SMS naar +31 6 ****5678.")
    action_id = await launch_over_enschede(running, clock)
    assert [d for d in rows(running, Delivery) if d.action_id == action_id] == []
    assert running.twilio.messages() == [confirmation]
    assert len(rows(running, OptOut)) == 1


LANDLINE = "+31534800000"


async def test_a_landline_chooses_voice_and_gets_the_alert_as_a_call(
    running: Running, clock: FixedClock
) -> None:
    nl = running.runtime.catalogue
    await on_telegram(running, "/start", "ja", "overslaan", "7511 AB 12", "ja", "053 480 0000", "SMS")
    refused = running.telegram.calls_to("sendMessage")[-1].params["text"]
    assert refused == nl.render(
        "nl", "registration.landline_voice_only", channel="SMS", options="Telegram, Telefoon"
    )
    await on_telegram(running, "bellen")
    [code_call] = await twilio_calls(running, 1)
    assert (code_call["To"], code_call["From"]) == (LANDLINE, OUR_NUMBER)
    said = spoken(code_call["Twiml"])
    assert [(verb, language) for verb, language, _ in said] == [("Say", "nl-NL"), ("Hangup", "")]
    [digits, again] = re.findall(r"\d(?:, \d){5}", said[0][2])
    assert digits == again and said[0][2] == nl.render("nl", "registration.code_call", digits=digits)

    await on_telegram(running, digits.replace(", ", ""))
    [participant] = rows(running, Participant)
    assert participant.preferred_channel == "voice"

    await launch_over_enschede(running, clock)
    [_, alert_call] = await twilio_calls(running, 2)
    assert alert_call["To"] == LANDLINE
    said = spoken(alert_call["Twiml"])
    assert [verb for verb, _, _ in said] == ["Gather", "Say", "Say", "Say", "Say"]
    assert {language for _, language, _ in said} == {"nl-NL"}
    alert, repeat, alert_again, prompt = (text for _, _, text in said[1:])
    assert "Vermist: jongen (8), blauwe jas" in alert and alert.startswith("Dit is een Burgernetactie.")
    assert (repeat, alert_again, prompt) == (
        nl.render("nl", "voice.repeat"),
        alert,
        nl.render("nl", "voice.alert_prompt"),
    )
    gather = ET.fromstring(alert_call["Twiml"]).find("Gather")
    assert gather is not None and gather.get("action") == f"{PUBLIC}/webhooks/twilio/voice/gather?lang=nl"
    # A landline gets no text at all.
    assert running.twilio.messages() == []
