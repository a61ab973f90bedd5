"""Registrations on SMS and WhatsApp: signed webhooks into the running app, replies at the fake Twilio."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlmodel import select
from twilio.request_validator import RequestValidator

from bot.config import Settings, load_settings
from bot.runtime import Runtime
from storage.crypto import DataVault, new_data_key
from storage.models import ChannelIdentity, ConversationState, Participant, ParticipantStatus, ProcessedEvent
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock
from tests.e2e.serving import outbox_settled, served_runtime
from tests.fakes.twilio_api import FakeTwilioApi

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "e2e0" * 8
PUBLIC = "https://burgernet.example.nl"
OUR_NUMBER = "+3197010254321"
SMS_PHONE = "+31612345678"
WHATSAPP_PHONE = "+31687654321"
_sids = itertools.count(1)


@pytest.fixture
def fake() -> Iterator[FakeTwilioApi]:
    with FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN) as api:
        yield api


@pytest.fixture
def settings(database_url: str, fake: FakeTwilioApi) -> Settings:
    return load_settings(
        database_url=database_url,
        data_key=new_data_key(),
        public_base_url=PUBLIC,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_sms_from=OUR_NUMBER,
        twilio_whatsapp_from=OUR_NUMBER,
        twilio_voice_from=OUR_NUMBER,
        twilio_api_base_url=fake.base_url,
        privacy_statement_version="2026-1",
    )


@dataclass
class Running:
    """The app serving on loopback as `serve` wires it, and its runtime."""

    runtime: Runtime
    http: httpx.AsyncClient


@pytest.fixture
async def running(settings: Settings, clock: FixedClock) -> AsyncIterator[Running]:
    async with served_runtime(settings, clock) as (runtime, http):
        yield Running(runtime=runtime, http=http)


def twilio_form(channel: ChannelKind, sender: str, text: str) -> dict[str, str]:
    """An inbound message form as Twilio posts it (see tests/channels/testdata/twilio)."""
    sid = f"SM{next(_sids):032x}"
    prefix = "whatsapp:" if channel is ChannelKind.WHATSAPP else ""
    form = {
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": text,
        "To": prefix + OUR_NUMBER,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": prefix + sender,
        "ApiVersion": "2010-04-01",
    }
    if channel is ChannelKind.WHATSAPP:
        form |= {"ProfileName": "Sanne", "WaId": sender.lstrip("+"), "MessageType": "text"}
    return form


async def post_signed(http: httpx.AsyncClient, path: str, form: dict[str, str]) -> httpx.Response:
    """POST a form with the X-Twilio-Signature Twilio computes over our public URL."""
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + path, form)
    return await http.post(
        path,
        content=urlencode(form).encode("utf-8"),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )


def rows(running: Running, model: type[Any]) -> list[Any]:
    with running.runtime.sessions() as session:
        return list(session.exec(select(model)))


REGISTRATIONS = [
    pytest.param(
        ChannelKind.SMS, SMS_PHONE, "/webhooks/twilio/sms",
        ["START", "JA", "Jan", "7511 AB 12", "JA", "JA", "SMS"], SMS_PHONE, id="sms",
    ),
    pytest.param(
        ChannelKind.WHATSAPP, WHATSAPP_PHONE, "/webhooks/twilio/whatsapp",
        ["START", "ja", "Sanne", "7511 AB 12", "ja", "ja", "WhatsApp"], "whatsapp:" + WHATSAPP_PHONE,
        id="whatsapp",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("channel", "phone", "path", "answers", "address"), REGISTRATIONS)
async def test_whole_registration(
    running: Running,
    fake: FakeTwilioApi,
    settings: Settings,
    channel: ChannelKind,
    phone: str,
    path: str,
    answers: list[str],
    address: str,
) -> None:
    nl = running.runtime.catalogue
    forms = [twilio_form(channel, phone, text) for text in answers]
    for i, form in enumerate(forms):
        response = await post_signed(running.http, path, form)
        assert response.status_code == 200, response.text
        assert response.text.endswith("<Response />")
        if i == 2:
            # Twilio retries a webhook it thinks failed: the retry must not be answered twice.
            assert (await post_signed(running.http, path, forms[1])).status_code == 200

    await outbox_settled(running.runtime.sessions)
    sent = fake.messages()
    assert len(sent) == len(answers)
    assert {m["To"] for m in sent} == {address}
    assert {m["From"] for m in sent} == {address.replace(phone, OUR_NUMBER)}
    assert {m["StatusCallback"] for m in sent} == {PUBLIC + "/webhooks/twilio/status"}
    assert sent[0]["Body"].startswith(
        nl.render("nl", "registration.consent", version="2026-1", url=PUBLIC + "/privacy")
    )
    assert sent[-1]["Body"] == nl.render(
        "nl",
        "registration.welcome",
        channel="SMS" if channel is ChannelKind.SMS else "WhatsApp",
        place="Enschede",
    )

    vault = DataVault(settings.data_key or "")
    [participant] = rows(running, Participant)
    assert participant.status is ParticipantStatus.ACTIVE
    assert participant.preferred_channel is channel
    assert participant.phone_hash == vault.lookup_hash(phone)
    assert vault.decrypt(participant.phone_enc) == phone
    identities = rows(running, ChannelIdentity)
    assert [(i.channel, i.participant_id) for i in identities] == [(channel, participant.id)]
    assert rows(running, ConversationState) == []
    keys = {e.key for e in rows(running, ProcessedEvent)}
    assert {f"{channel}:{form['MessageSid']}" for form in forms} <= keys

    # Twilio reports the welcome delivered (twice, as it may): recorded once.
    receipt = {
        "MessageSid": fake.requests[-1].sid or "",
        "MessageStatus": "delivered",
        "To": address,
        "From": address.replace(phone, OUR_NUMBER),
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
    }
    for _ in range(2):
        assert (await post_signed(running.http, "/webhooks/twilio/status", receipt)).status_code == 200
    keys = [e.key for e in rows(running, ProcessedEvent) if e.key.startswith("twilio-status:")]
    assert keys == [f"twilio-status:{receipt['MessageSid']}:delivered"]


async def test_unsigned_webhook_never_reaches_the_router(running: Running, fake: FakeTwilioApi) -> None:
    form = twilio_form(ChannelKind.SMS, SMS_PHONE, "START")
    response = await running.http.post(
        "/webhooks/twilio/sms",
        content=urlencode(form).encode("utf-8"),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "Zm9v"},
    )
    assert response.status_code == 403
    assert fake.messages() == []
    assert rows(running, ProcessedEvent) == []
