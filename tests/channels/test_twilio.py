"""Twilio channel: real webhook payloads (signed, wrongly signed, unsigned); sends against the fake API."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import select
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.request_validator import HMAC_SHA256, SIGNATURE_SETTINGS_HEADER, RequestValidator

from bot.channels.base import PermanentSendError, RecipientOptedOut, RetryableSendError, SendError
from bot.channels.twilio import TwilioChannel, TwilioNotConfigured, send_error, with_buttons
from bot.channels.twilio_http import HttpxTwilioClient, rewrite_url
from bot.channels.twilio_payloads import caller_of
from bot.channels.twilio_webhooks import RecentKeys
from bot.config import Settings, load_settings
from bot.inbox import Inbox
from bot.messages import IncomingMessage, Keypad, OutgoingMessage
from bot.outbox import message_of, payload_of
from bot.texts import Catalogue
from storage.crypto import DataVault
from storage.db import SessionFactory
from storage.models import OutboundMessage
from storage.outbound import ClaimedOutbound
from storage.vocabulary import ChannelKind, DeliveryStatus, GeoPoint, StatusUpdate
from tests.channels.keyed import KeyedHandler, drain
from tests.conftest import FixedClock
from tests.fakes.twilio_api import FakeTwilioApi

TESTDATA = Path(__file__).parent / "testdata" / "twilio"
ACCOUNT_SID = "ACa1b2c3d4e5f60718293a4b5c6d7e8f90"
AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
PUBLIC = "https://bot.example.nl"
OUR_NUMBER = "+3197010254321"
CONTROLROOM = "+31534800000"
CITIZEN = "+31612345678"


def payload(name: str) -> dict[str, str]:
    """One stored Twilio webhook form."""
    data: dict[str, str] = json.loads((TESTDATA / f"{name}.json").read_text(encoding="utf-8"))
    return data


def sign(url: str, form: dict[str, str], token: str = AUTH_TOKEN) -> str:
    """The X-Twilio-Signature Twilio would send for this URL and form."""
    signature: str = RequestValidator(token).compute_signature(url, form)
    return signature


@dataclass
class Recorder:
    """What the channel handed on."""

    messages: list[IncomingMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)

    async def on_message(self, message: IncomingMessage) -> None:
        self.messages.append(message)

    async def on_status(self, update: StatusUpdate) -> None:
        self.statuses.append(update)


@pytest.fixture
def fake() -> Iterator[FakeTwilioApi]:
    with FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN) as api:
        yield api


def make_settings(api_base: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_sms_from": OUR_NUMBER,
        "twilio_whatsapp_from": OUR_NUMBER,
        "twilio_voice_from": OUR_NUMBER,
        "twilio_api_base_url": api_base,
        "public_base_url": PUBLIC,
        "controlroom_phone": CONTROLROOM,
    }
    return load_settings(**(values | overrides))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def channel(fake: FakeTwilioApi, recorder: Recorder, clock: FixedClock) -> AsyncIterator[TwilioChannel]:
    twilio = TwilioChannel(make_settings(fake.base_url), clock)
    yield twilio
    await twilio.aclose()


@pytest.fixture
async def client(channel: TwilioChannel, recorder: Recorder) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(channel.router(recorder.on_message, recorder.on_status, first_time=RecentKeys()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC) as http:
        yield http


async def post(
    client: httpx.AsyncClient,
    path: str,
    form: dict[str, str],
    *,
    signature: str | None = "valid",
    signed_url: str | None = None,
) -> httpx.Response:
    """POST a form as Twilio does; `signature` is "valid", None (no header) or a literal value."""
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"}
    if signature == "valid":
        headers["X-Twilio-Signature"] = sign(signed_url or PUBLIC + path, form)
    elif signature is not None:
        headers["X-Twilio-Signature"] = signature
    return await client.post(path, content=urlencode(form).encode("utf-8"), headers=headers)


def message_of_payload(payload: dict[str, Any]) -> OutgoingMessage | None:
    """A message as the dispatcher rebuilds it from an outbox row's payload."""
    row = ClaimedOutbound(
        id=1,
        channel=ChannelKind.VOICE,
        identity_id=None,
        lane=0,
        attempts=0,
        recipient=CITIZEN,
        payload=payload,
    )
    return message_of(row)


def verbs(twiml: str) -> list[tuple[str, dict[str, str], str]]:
    """The TwiML's verbs in order, nested ones after their parent: (tag, attributes, text)."""
    root = ET.fromstring(twiml)
    assert root.tag == "Response"
    return [(el.tag, dict(el.attrib), (el.text or "").strip()) for el in root.iter() if el is not root]


# --- inbound: the table of real payloads --------------------------------------------------------

MEDIA_URL = (
    f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/"
    "MM5d4c3b2a1908f7e6d5c4b3a291807f6e/Media/ME0f1e2d3c4b5a69788796a5b4c3d2e1f0"
)
RECORDING_URL = (
    f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/RE4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d"
)

SPEECH_DIGEST = hashlib.sha256(payload("voice_gather_speech")["SpeechResult"].encode("utf-8")).hexdigest()[
    :12
]

MESSAGE_CASES = [
    pytest.param(
        "sms_text",
        "/webhooks/twilio/sms",
        {"channel": ChannelKind.SMS, "sender": CITIZEN, "text": "AANMELDEN",
         "provider_id": "SM3f1c2a9b8e7d6c5b4a39281706f5e4d3", "location": None, "media": ()},
        id="sms-text",
    ),
    pytest.param(
        "sms_unicode",
        "/webhooks/twilio/sms",
        {"channel": ChannelKind.SMS, "sender": "+31687654321",
         "text": "Ik zag hem bij de brug 👀 richting centrum, geëvacueerde straat"},
        id="sms-unicode",
    ),
    pytest.param(
        "whatsapp_text",
        "/webhooks/twilio/whatsapp",
        {"channel": ChannelKind.WHATSAPP, "sender": CITIZEN, "text": "Ja",
         "provider_id": "SM7c6b5a493827160f5e4d3c2b1a098877"},
        id="whatsapp-text",
    ),
    pytest.param(
        "whatsapp_media",
        "/webhooks/twilio/whatsapp",
        {"channel": ChannelKind.WHATSAPP, "sender": CITIZEN, "text": "Deze auto stond er net",
         "media": (MEDIA_URL,), "reply_to_provider_id": "SMfeedfacecafebeef0123456789abcdef"},
        id="whatsapp-media",
    ),
    pytest.param(
        "whatsapp_location",
        "/webhooks/twilio/whatsapp",
        {"channel": ChannelKind.WHATSAPP, "sender": CITIZEN, "text": "",
         "location": GeoPoint(52.2215, 6.8937)},
        id="whatsapp-location",
    ),
    pytest.param(
        "whatsapp_button",
        "/webhooks/twilio/whatsapp",
        {"channel": ChannelKind.WHATSAPP, "text": "JA",
         "reply_to_provider_id": "SMabcabcabcabcabcabcabcabcabcabcab"},
        id="whatsapp-template-button",
    ),
    pytest.param(
        "whatsapp_text",
        "/webhooks/twilio/sms",
        {"channel": ChannelKind.WHATSAPP, "sender": CITIZEN},
        id="whatsapp-on-the-sms-url-is-still-whatsapp",
    ),
    pytest.param(
        "voice_gather_speech",
        "/webhooks/twilio/voice/gather",
        {"channel": ChannelKind.VOICE, "sender": CITIZEN,
         "text": "Ik zag een meisje met een roze jas bij het station richting de markt lopen.",
         "provider_id": "CA0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a:speech:" + SPEECH_DIGEST,
         "reply_to_provider_id": "CA0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a"},
        id="voice-speech-tip",
    ),
    pytest.param(
        "voice_recording",
        "/webhooks/twilio/voice/recording",
        {"channel": ChannelKind.VOICE, "sender": CITIZEN, "text": "", "media": (RECORDING_URL,),
         "provider_id": "RE4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d"},
        id="voice-recorded-tip",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "path", "expected"), MESSAGE_CASES)
async def test_inbound_message(
    client: httpx.AsyncClient, recorder: Recorder, clock: FixedClock, name: str, path: str, expected: dict
) -> None:
    form = payload(name)
    response = await post(client, path, form)
    assert response.status_code == 200
    assert len(recorder.messages) == 1
    message = recorder.messages[0]
    assert {key: getattr(message, key) for key in expected} == expected
    assert message.received_at == clock.now
    assert message.raw["AccountSid"] == ACCOUNT_SID


STATUS_CASES = [
    pytest.param("status_sms_queued", ChannelKind.SMS, DeliveryStatus.QUEUED, None, id="sms-queued"),
    pytest.param("status_sms_sent", ChannelKind.SMS, DeliveryStatus.SENT, None, id="sms-sent"),
    pytest.param("status_sms_delivered", ChannelKind.SMS, DeliveryStatus.DELIVERED, None, id="sms-delivered"),
    pytest.param(
        "status_sms_undelivered", ChannelKind.SMS, DeliveryStatus.UNDELIVERED, "30003", id="sms-undelivered"
    ),
    pytest.param("status_sms_failed", ChannelKind.SMS, DeliveryStatus.FAILED, "30008", id="sms-failed"),
    pytest.param("status_whatsapp_read", ChannelKind.WHATSAPP, DeliveryStatus.READ, None, id="whatsapp-read"),
    pytest.param(
        "status_call_completed", ChannelKind.VOICE, DeliveryStatus.DELIVERED, None, id="call-completed"
    ),
]


@pytest.mark.parametrize(("name", "kind", "status", "error_code"), STATUS_CASES)
async def test_status_callback(
    client: httpx.AsyncClient,
    recorder: Recorder,
    name: str,
    kind: ChannelKind,
    status: DeliveryStatus,
    error_code: str | None,
) -> None:
    form = payload(name)
    response = await post(client, "/webhooks/twilio/status", form)
    assert response.status_code == 200
    assert recorder.messages == []
    [update] = recorder.statuses
    sid = form.get("MessageSid") or form["CallSid"]
    assert (update.channel, update.provider_id, update.status, update.error_code) == (
        kind,
        sid,
        status,
        error_code,
    )


ALL_WEBHOOKS = [
    pytest.param(name, path, id=name)
    for name, path in [
        ("sms_text", "/webhooks/twilio/sms"),
        ("sms_unicode", "/webhooks/twilio/sms"),
        ("whatsapp_text", "/webhooks/twilio/whatsapp"),
        ("whatsapp_media", "/webhooks/twilio/whatsapp"),
        ("whatsapp_location", "/webhooks/twilio/whatsapp"),
        ("whatsapp_button", "/webhooks/twilio/whatsapp"),
        ("status_sms_queued", "/webhooks/twilio/status"),
        ("status_sms_sent", "/webhooks/twilio/status"),
        ("status_sms_delivered", "/webhooks/twilio/status"),
        ("status_sms_undelivered", "/webhooks/twilio/status"),
        ("status_sms_failed", "/webhooks/twilio/status"),
        ("status_whatsapp_read", "/webhooks/twilio/status"),
        ("status_call_completed", "/webhooks/twilio/status"),
        ("voice_inbound", "/webhooks/twilio/voice"),
        ("voice_gather_digits", "/webhooks/twilio/voice/gather"),
        ("voice_gather_speech", "/webhooks/twilio/voice/gather"),
        ("voice_gather_empty", "/webhooks/twilio/voice/gather"),
        ("voice_recording", "/webhooks/twilio/voice/recording"),
    ]
]


def test_every_stored_payload_is_in_the_table() -> None:
    stored = {p.stem for p in TESTDATA.glob("*.json")}
    assert stored == {p.values[0] for p in ALL_WEBHOOKS}


@pytest.mark.parametrize(("name", "path"), ALL_WEBHOOKS)
async def test_valid_signature_is_answered_with_twiml(
    client: httpx.AsyncClient, name: str, path: str
) -> None:
    response = await post(client, path, payload(name))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert ET.fromstring(response.text).tag == "Response"


BAD_SIGNATURES = [
    pytest.param({"signature": None}, id="missing"),
    pytest.param({"signature": ""}, id="empty"),
    pytest.param({"signature": "bm90IGEgc2lnbmF0dXJlIGF0IGFsbA=="}, id="garbage"),
    pytest.param({"signed_url": "http://bot.example.nl/webhooks/twilio/other"}, id="signed-for-another-url"),
]


@pytest.mark.parametrize("bad", BAD_SIGNATURES)
@pytest.mark.parametrize(("name", "path"), ALL_WEBHOOKS)
async def test_bad_signature_is_refused(
    client: httpx.AsyncClient, recorder: Recorder, name: str, path: str, bad: dict[str, Any]
) -> None:
    response = await post(client, path, payload(name), **bad)
    assert response.status_code == 403
    assert recorder.messages == [] and recorder.statuses == []


async def test_signature_by_another_token_is_refused(client: httpx.AsyncClient, recorder: Recorder) -> None:
    form = payload("sms_text")
    other = sign(PUBLIC + "/webhooks/twilio/sms", form, token="f" * 32)
    response = await post(client, "/webhooks/twilio/sms", form, signature=other)
    assert response.status_code == 403
    assert recorder.messages == []


async def test_a_signature_over_the_url_with_its_default_port_is_accepted(
    client: httpx.AsyncClient, recorder: Recorder
) -> None:
    # Twilio has signed with and without ":443": the exact URL is tried first, the other form after.
    form = payload("sms_text")
    with_port = PUBLIC + ":443/webhooks/twilio/sms"
    response = await post(client, "/webhooks/twilio/sms", form, signed_url=with_port)
    assert response.status_code == 200
    assert [m.text for m in recorder.messages] == [form["Body"]]


async def test_a_sha256_signature_named_in_the_settings_header_is_accepted(
    client: httpx.AsyncClient, recorder: Recorder
) -> None:
    form = payload("sms_text")
    url = PUBLIC + "/webhooks/twilio/sms"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form, HMAC_SHA256)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature,
        SIGNATURE_SETTINGS_HEADER: f"algorithm={HMAC_SHA256}",
    }
    response = await client.post("/webhooks/twilio/sms", content=urlencode(form).encode(), headers=headers)
    assert response.status_code == 200
    assert len(recorder.messages) == 1
    sha1_claimed_as_sha256 = headers | {"X-Twilio-Signature": sign(url, form)}
    response = await client.post(
        "/webhooks/twilio/sms", content=urlencode(form).encode(), headers=sha1_claimed_as_sha256
    )
    assert response.status_code == 403
    assert len(recorder.messages) == 1


async def test_a_signature_algorithm_twilio_does_not_know_is_refused(
    client: httpx.AsyncClient, recorder: Recorder
) -> None:
    form = payload("sms_text")
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": sign(PUBLIC + "/webhooks/twilio/sms", form),
        SIGNATURE_SETTINGS_HEADER: "algorithm=HMAC_MD5",
    }
    response = await client.post("/webhooks/twilio/sms", content=urlencode(form).encode(), headers=headers)
    assert response.status_code == 403
    assert recorder.messages == []


async def test_tampered_form_is_refused(client: httpx.AsyncClient, recorder: Recorder) -> None:
    form = payload("sms_text")
    signature = sign(PUBLIC + "/webhooks/twilio/sms", form)
    tampered = form | {"Body": "STOP"}
    response = await post(client, "/webhooks/twilio/sms", tampered, signature=signature)
    assert response.status_code == 403
    assert recorder.messages == []


async def test_wrong_content_type_is_415(client: httpx.AsyncClient, recorder: Recorder) -> None:
    form = payload("sms_text")
    response = await client.post(
        "/webhooks/twilio/sms",
        json=form,
        headers={"X-Twilio-Signature": sign(PUBLIC + "/webhooks/twilio/sms", form)},
    )
    assert response.status_code == 415
    assert recorder.messages == []


async def test_body_over_64_kib_is_413(client: httpx.AsyncClient, recorder: Recorder) -> None:
    form = payload("sms_text") | {"Body": "x" * (64 * 1024)}
    response = await post(client, "/webhooks/twilio/sms", form)
    assert response.status_code == 413
    assert recorder.messages == []


async def test_signed_form_without_sender_is_400(client: httpx.AsyncClient, recorder: Recorder) -> None:
    form = {k: v for k, v in payload("sms_text").items() if k != "From"}
    response = await post(client, "/webhooks/twilio/sms", form)
    assert response.status_code == 400
    assert recorder.messages == []


async def test_status_callback_is_handed_on_once_per_sid_and_status(
    client: httpx.AsyncClient, recorder: Recorder
) -> None:
    sent, delivered = payload("status_sms_sent"), payload("status_sms_delivered")
    for form in (sent, sent, delivered, delivered):
        assert (await post(client, "/webhooks/twilio/status", form)).status_code == 200
    assert [u.status for u in recorder.statuses] == [DeliveryStatus.SENT, DeliveryStatus.DELIVERED]


async def test_duplicate_sms_webhook_is_handled_once_by_the_inbox(
    fake: FakeTwilioApi, sessions: SessionFactory, clock: FixedClock, vault: DataVault
) -> None:
    handle = KeyedHandler(
        sessions,
        vault,
        clock,
        lambda m: [OutgoingMessage(channel=m.channel, recipient=m.sender, text="Welkom")],
    )
    inbox = Inbox(handle=handle)
    twilio = TwilioChannel(make_settings(fake.base_url), clock)
    app = FastAPI()
    app.include_router(twilio.router(inbox.receive, Recorder().on_status, first_time=RecentKeys()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC) as http:
        for _ in range(2):
            assert (await post(http, "/webhooks/twilio/sms", payload("sms_text"))).status_code == 200
        # Nothing is sent from the webhook: the reply waits in the outbox for the dispatcher.
        assert fake.messages() == []
        await drain(sessions, dict.fromkeys(twilio.kinds, twilio), clock, vault)
    await twilio.aclose()
    assert len(handle.handled) == 1
    assert [(m["To"], m["Body"]) for m in fake.messages()] == [(CITIZEN, "Welkom")]


async def test_replies_to_a_caller_are_spoken_in_the_call_not_a_call_back(
    fake: FakeTwilioApi, sessions: SessionFactory, clock: FixedClock, vault: DataVault
) -> None:
    def reply(message: IncomingMessage) -> list[OutgoingMessage]:
        return [
            OutgoingMessage(channel=message.channel, recipient=message.sender, text="Dank u, tip ontvangen."),
            OutgoingMessage(
                channel=message.channel, recipient=message.sender, text="Welke kant ging zij op?"
            ),
        ]

    inbox = Inbox(handle=KeyedHandler(sessions, vault, clock, reply))
    twilio = TwilioChannel(make_settings(fake.base_url), clock)
    app = FastAPI()
    app.include_router(twilio.router(inbox.receive, Recorder().on_status, first_time=RecentKeys()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC) as http:
        first = await post(http, "/webhooks/twilio/voice/gather", payload("voice_gather_speech"))
        again = await post(http, "/webhooks/twilio/voice/gather", payload("voice_gather_speech"))
        # The spoken replies are recorded as sent in the call: the dispatcher has nothing to send.
        report = await drain(sessions, dict.fromkeys(twilio.kinds, twilio), clock, vault)
        # Outside a call's webhook a VOICE message is an alert: that one places a call.
        await twilio.send(OutgoingMessage(channel=ChannelKind.VOICE, recipient=CITIZEN, text="Alert"))
    await twilio.aclose()
    assert report.messages == 0
    with sessions() as session:
        rows = list(session.exec(select(OutboundMessage)))
    assert [(r.status, r.channel, r.message_enc, r.recipient_enc) for r in rows] == [
        (DeliveryStatus.SENT, ChannelKind.VOICE, None, None)
    ] * 2
    call_sid = payload("voice_gather_speech")["CallSid"]
    assert {r.provider_id for r in rows} == {f"in-band:call:{call_sid}"}
    found = verbs(first.text)
    assert [(tag, text) for tag, _, text in found if tag == "Say"] == [
        ("Say", "Dank u, tip ontvangen."),
        ("Say", "Welke kant ging zij op?"),
        ("Say", Catalogue.load().render("nl", "voice.goodbye")),
    ]
    assert [tag for tag, _, _ in found] == ["Say", "Say", "Gather", "Say", "Hangup"]
    assert "actionOnEmptyResult" not in found[2][1]
    # The retried webhook is a duplicate for the inbox: no replies, a plain thank-you.
    assert [tag for tag, _, _ in verbs(again.text)] == ["Say", "Hangup"]
    assert [c["Twiml"].count("Alert") for c in fake.calls()] == [1]


# --- voice TwiML --------------------------------------------------------------------------------


async def test_gather_digit_1_dials_the_control_room(client: httpx.AsyncClient, recorder: Recorder) -> None:
    response = await post(client, "/webhooks/twilio/voice/gather", payload("voice_gather_digits"))
    catalogue = Catalogue.load()
    assert [(tag, text) for tag, _, text in verbs(response.text)] == [
        ("Say", catalogue.render("nl", "voice.connecting")),
        ("Dial", CONTROLROOM),
    ]
    assert recorder.messages == []


async def test_gather_speech_thanks_and_hangs_up(client: httpx.AsyncClient) -> None:
    response = await post(client, "/webhooks/twilio/voice/gather", payload("voice_gather_speech"))
    assert [tag for tag, _, _ in verbs(response.text)] == ["Say", "Hangup"]
    assert verbs(response.text)[0][2] == Catalogue.load().render("nl", "voice.thanks")


async def test_gather_without_input_offers_a_recording(client: httpx.AsyncClient) -> None:
    response = await post(client, "/webhooks/twilio/voice/gather", payload("voice_gather_empty"))
    found = verbs(response.text)
    assert [tag for tag, _, _ in found] == ["Say", "Record", "Say"]
    record = found[1][1]
    assert record["action"] == f"{PUBLIC}/webhooks/twilio/voice/recording?lang=nl"
    assert record["finishOnKey"] == "#"


async def test_gather_digit_2_records_a_tip(client: httpx.AsyncClient, recorder: Recorder) -> None:
    form = payload("voice_gather_digits") | {"Digits": "2"}
    response = await post(client, "/webhooks/twilio/voice/gather", form)
    found = verbs(response.text)
    catalogue = Catalogue.load()
    assert [(tag, text) for tag, _, text in found] == [
        ("Say", catalogue.render("nl", "voice.record_prompt")),
        ("Record", ""),
        ("Say", catalogue.render("nl", "voice.goodbye")),
    ]
    record = found[1][1]
    assert record["action"] == f"{PUBLIC}/webhooks/twilio/voice/recording?lang=nl"
    assert (record["maxLength"], record["playBeep"], record["finishOnKey"]) == ("120", "true", "#")
    assert recorder.messages == []


async def test_gather_in_english_keeps_the_query_in_the_signature(client: httpx.AsyncClient) -> None:
    path = "/webhooks/twilio/voice/gather?lang=en"
    form = payload("voice_gather_speech")
    response = await post(client, path, form)
    assert response.status_code == 200
    [(tag, attrs, text), _] = verbs(response.text)
    assert (attrs["language"], text) == ("en-GB", Catalogue.load().render("en", "voice.thanks"))
    # The same form signed for the URL without its query does not pass.
    unsigned_query = sign(PUBLIC + "/webhooks/twilio/voice/gather", form)
    assert (await post(client, path, form, signature=unsigned_query)).status_code == 403


async def test_inbound_call_answers_with_the_menu(client: httpx.AsyncClient) -> None:
    response = await post(client, "/webhooks/twilio/voice", payload("voice_inbound"))
    found = verbs(response.text)
    assert [tag for tag, _, _ in found] == ["Gather", "Say"]
    gather = found[0][1]
    assert (gather["input"], gather["numDigits"]) == ("dtmf speech", "1")
    assert gather["action"] == f"{PUBLIC}/webhooks/twilio/voice/menu?lang=nl"
    assert found[1][2] == Catalogue.load().render("nl", "voice.menu")


@pytest.mark.parametrize(("digits", "text"), [("1", "START"), ("9", "STOP")])
async def test_menu_keys_are_handed_on_as_the_keywords_they_stand_for(
    client: httpx.AsyncClient, recorder: Recorder, digits: str, text: str
) -> None:
    form = payload("voice_inbound") | {"Digits": digits, "msg": "Gather End"}
    response = await post(client, "/webhooks/twilio/voice/menu", form)
    assert response.status_code == 200
    [message] = recorder.messages
    assert (message.channel, message.sender, message.text) == (ChannelKind.VOICE, CITIZEN, text)
    # Keys carry no provider id: the same key may rightly come twice in one call.
    assert message.provider_id is None
    # Nothing said back (this recorder answers nothing): a goodbye, and the call ends.
    assert [tag for tag, _, _ in verbs(response.text)] == ["Say", "Hangup"]


async def test_keys_are_handed_on_as_the_callers_text(client: httpx.AsyncClient, recorder: Recorder) -> None:
    form = payload("voice_inbound") | {"Digits": "7511", "FinishedOnKey": "#", "msg": "Gather End"}
    response = await post(client, "/webhooks/twilio/voice/keys?lang=en", form)
    [message] = recorder.messages
    assert (message.sender, message.text) == (CITIZEN, "7511")
    assert verbs(response.text)[0] == (
        "Say",
        {"language": "en-GB"},
        Catalogue.load().render("en", "voice.goodbye"),
    )


async def test_digit_1_without_a_control_room_phone_offers_a_recording(
    fake: FakeTwilioApi, recorder: Recorder, clock: FixedClock
) -> None:
    twilio = TwilioChannel(make_settings(fake.base_url, controlroom_phone=None), clock)
    app = FastAPI()
    app.include_router(twilio.router(recorder.on_message, recorder.on_status, first_time=RecentKeys()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC) as http:
        response = await post(http, "/webhooks/twilio/voice/gather", payload("voice_gather_digits"))
    await twilio.aclose()
    assert "Dial" not in [tag for tag, _, _ in verbs(response.text)]
    assert "Record" in [tag for tag, _, _ in verbs(response.text)]


# --- sending through the fake REST API ----------------------------------------------------------


async def test_sms_is_sent_with_status_callback_and_segments(
    channel: TwilioChannel, fake: FakeTwilioApi
) -> None:
    receipt = await channel.send(OutgoingMessage(channel=ChannelKind.SMS, recipient=CITIZEN, text="Welkom!"))
    [sent] = fake.messages()
    assert sent == {
        "To": CITIZEN,
        "From": OUR_NUMBER,
        "Body": "Welkom!",
        "StatusCallback": f"{PUBLIC}/webhooks/twilio/status",
    }
    assert receipt.provider_id == fake.requests[-1].sid
    assert receipt.provider_id.startswith("SM") and len(receipt.provider_id) == 34
    assert receipt.segments == 1
    assert all(r.authorized for r in fake.requests)


SEGMENT_CASES = [
    pytest.param("a" * 160, 1, id="gsm7-160"),
    pytest.param("a" * 161, 2, id="gsm7-161"),
    pytest.param("ë" * 71, 2, id="ucs2-71"),
    pytest.param("🚨" * 35, 1, id="emoji-70-units"),
]


@pytest.mark.parametrize(("text", "segments"), SEGMENT_CASES)
async def test_sms_receipt_counts_segments(channel: TwilioChannel, text: str, segments: int) -> None:
    receipt = await channel.send(OutgoingMessage(channel=ChannelKind.SMS, recipient=CITIZEN, text=text))
    assert receipt.segments == segments


async def test_sms_from_a_messaging_service(
    fake: FakeTwilioApi, recorder: Recorder, clock: FixedClock
) -> None:
    service = "MG" + "1" * 32
    twilio = TwilioChannel(make_settings(fake.base_url, twilio_sms_from=service), clock)
    await twilio.send(OutgoingMessage(channel=ChannelKind.SMS, recipient=CITIZEN, text="Hoi"))
    await twilio.aclose()
    [sent] = fake.messages()
    assert sent["MessagingServiceSid"] == service and "From" not in sent


async def test_whatsapp_adds_the_prefix(channel: TwilioChannel, fake: FakeTwilioApi) -> None:
    receipt = await channel.send(
        OutgoingMessage(
            channel=ChannelKind.WHATSAPP, recipient=CITIZEN, text="Klopt dit?", buttons=("JA", "NEE")
        )
    )
    [sent] = fake.messages()
    assert (sent["From"], sent["To"], sent["Body"]) == (
        f"whatsapp:{OUR_NUMBER}",
        f"whatsapp:{CITIZEN}",
        "Klopt dit? (JA/NEE)",
    )
    assert receipt.segments == 1


async def test_a_whatsapp_alert_with_a_photo_carries_its_public_url_as_media(
    channel: TwilioChannel, fake: FakeTwilioApi
) -> None:
    photo = "https://burgernet.example.nl/a/BN-4K7P/photo"
    await channel.send(
        OutgoingMessage(
            channel=ChannelKind.WHATSAPP, recipient=CITIZEN, text="Burgernet: vermist meisje", photo_url=photo
        )
    )
    [sent] = fake.messages()
    assert (sent["Body"], sent["MediaUrl"]) == ("Burgernet: vermist meisje", photo)


async def test_whatsapp_template_uses_content_sid(channel: TwilioChannel, fake: FakeTwilioApi) -> None:
    template = "HX" + "a" * 32
    await channel.send(
        OutgoingMessage(
            channel=ChannelKind.WHATSAPP,
            recipient=CITIZEN,
            text="Burgernet: vermist meisje",
            template_sid=template,
            template_variables={"1": "vermist meisje (8)", "2": "BN-4821"},
        )
    )
    [sent] = fake.messages()
    assert sent["ContentSid"] == template
    assert json.loads(sent["ContentVariables"]) == {"1": "vermist meisje (8)", "2": "BN-4821"}
    assert "Body" not in sent


BUTTON_CASES = [
    pytest.param("Klopt dit?", ("JA", "NEE"), "Klopt dit? (JA/NEE)", id="suffix-added"),
    pytest.param("Antwoord JA of NEE.", ("JA", "NEE"), "Antwoord JA of NEE.", id="already-named"),
    pytest.param("Antwoord ja of nee.", ("JA", "NEE"), "Antwoord ja of nee.", id="named-in-lower-case"),
    pytest.param("Neem je JAS mee? NEE", ("JA", "NEE"), "Neem je JAS mee? NEE (JA/NEE)", id="word-not-part"),
    pytest.param("Hallo", (), "Hallo", id="no-buttons"),
]


@pytest.mark.parametrize(("text", "buttons", "expected"), BUTTON_CASES)
def test_with_buttons(text: str, buttons: tuple[str, ...], expected: str) -> None:
    assert with_buttons(text, buttons) == expected


FAILURE_CASES = [
    pytest.param({"status": 400, "code": 21610}, RecipientOptedOut, "21610", None, id="21610-opted-out"),
    pytest.param(
        {"status": 429, "code": 20429, "retry_after": 7}, RetryableSendError, "20429", 7.0, id="429"
    ),
    pytest.param({"status": 429, "code": 20429}, RetryableSendError, "20429", None, id="429-no-retry-after"),
    pytest.param({"status": 500, "code": 20500}, RetryableSendError, "20500", None, id="500"),
    pytest.param(
        {"status": 503, "body": "<html>down</html>"}, RetryableSendError, "503", None, id="503-html"
    ),
    pytest.param(
        {"status": 400, "code": 21211}, PermanentSendError, "21211", None, id="21211-invalid-number"
    ),
    pytest.param({"status": 400, "code": 21614}, PermanentSendError, "21614", None, id="21614-not-mobile"),
    pytest.param(
        {"status": 400, "code": 63016}, PermanentSendError, "63016", None, id="63016-outside-window"
    ),
]


@pytest.mark.parametrize("kind", [ChannelKind.SMS, ChannelKind.WHATSAPP])
@pytest.mark.parametrize(("failure", "error", "code", "retry_after"), FAILURE_CASES)
async def test_send_failure_becomes_a_send_error(
    channel: TwilioChannel,
    fake: FakeTwilioApi,
    kind: ChannelKind,
    failure: dict[str, Any],
    error: type[SendError],
    code: str,
    retry_after: float | None,
) -> None:
    fake.fail_next(1, **failure)
    with pytest.raises(SendError) as raised:
        await channel.send(OutgoingMessage(channel=kind, recipient=CITIZEN, text="Hoi"))
    assert type(raised.value) is error
    assert (raised.value.code, raised.value.retry_after) == (code, retry_after)
    # The failure was for one request only: the retry goes through.
    receipt = await channel.send(OutgoingMessage(channel=kind, recipient=CITIZEN, text="Hoi"))
    assert receipt.provider_id.startswith("SM")


async def test_number_opted_out_at_twilio(channel: TwilioChannel, fake: FakeTwilioApi) -> None:
    fake.opt_out(CITIZEN)
    with pytest.raises(RecipientOptedOut):
        await channel.send(OutgoingMessage(channel=ChannelKind.SMS, recipient=CITIZEN, text="Hoi"))
    assert fake.messages() == []


async def test_wrong_credentials_are_permanent(
    fake: FakeTwilioApi, recorder: Recorder, clock: FixedClock
) -> None:
    twilio = TwilioChannel(
        make_settings(fake.base_url, twilio_auth_token="f" * 32),
        clock,
    )
    with pytest.raises(PermanentSendError) as raised:
        await twilio.send(OutgoingMessage(channel=ChannelKind.SMS, recipient=CITIZEN, text="Hoi"))
    await twilio.aclose()
    assert raised.value.code == "20003"


async def test_unreachable_api_is_retryable(recorder: Recorder, clock: FixedClock) -> None:
    with FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN) as gone:
        base = gone.base_url
    twilio = TwilioChannel(make_settings(base), clock)
    with pytest.raises(RetryableSendError) as raised:
        await twilio.send(OutgoingMessage(channel=ChannelKind.SMS, recipient=CITIZEN, text="Hoi"))
    await twilio.aclose()
    assert raised.value.code == "unreachable"


async def test_timeout_is_retryable(recorder: Recorder, clock: FixedClock) -> None:
    def time_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    http = HttpxTwilioClient(transport=httpx.MockTransport(time_out))
    twilio = TwilioChannel(make_settings("http://127.0.0.1:9"), clock, http)
    with pytest.raises(RetryableSendError):
        await twilio.send(OutgoingMessage(channel=ChannelKind.SMS, recipient=CITIZEN, text="Hoi"))
    await http.aclose()


class RewritingSyncClient(TwilioHttpClient):
    """twilio's own blocking client, sent to the fake: proves the thread path works too."""

    def __init__(self, base_url: str) -> None:
        super().__init__(timeout=5)
        self.base_url = base_url

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> TwilioResponse:
        return super().request(method, rewrite_url(url, self.base_url), *args, **kwargs)


async def test_blocking_http_client_runs_in_a_thread(
    fake: FakeTwilioApi, recorder: Recorder, clock: FixedClock
) -> None:
    sync = RewritingSyncClient(fake.base_url)
    twilio = TwilioChannel(make_settings(fake.base_url), clock, sync)
    receipt = await twilio.send(OutgoingMessage(channel=ChannelKind.SMS, recipient=CITIZEN, text="Hoi"))
    assert receipt.provider_id == fake.requests[-1].sid
    fake.fail_next(1, status=400, code=21610)
    with pytest.raises(RecipientOptedOut):
        await twilio.send(OutgoingMessage(channel=ChannelKind.SMS, recipient=CITIZEN, text="Hoi"))


REWRITE_CASES = [
    pytest.param(
        "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json",
        "http://127.0.0.1:8123",
        "http://127.0.0.1:8123/2010-04-01/Accounts/AC1/Messages.json",
        id="api-host",
    ),
    pytest.param(
        "https://content.twilio.com/v1/Content?PageSize=50",
        "http://127.0.0.1:8123/fake/",
        "http://127.0.0.1:8123/fake/v1/Content?PageSize=50",
        id="other-twilio-host-with-prefix-and-query",
    ),
    pytest.param(
        "https://example.com/x", "http://127.0.0.1:8123", "https://example.com/x", id="not-twilio-untouched"
    ),
    pytest.param(
        "https://eviltwilio.com/x",
        "http://127.0.0.1:8123",
        "https://eviltwilio.com/x",
        id="lookalike-untouched",
    ),
    pytest.param(
        "https://api.twilio.com/2010-04-01/x", None, "https://api.twilio.com/2010-04-01/x", id="no-base-url"
    ),
]


@pytest.mark.parametrize(("url", "base", "expected"), REWRITE_CASES)
def test_rewrite_url(url: str, base: str | None, expected: str) -> None:
    assert rewrite_url(url, base) == expected


ERROR_CASES = [
    pytest.param(400, 21610, RecipientOptedOut, id="opted-out"),
    pytest.param(429, 20429, RetryableSendError, id="throttled"),
    pytest.param(502, None, RetryableSendError, id="bad-gateway"),
    pytest.param(400, 21211, PermanentSendError, id="invalid-number"),
    pytest.param(404, 20404, PermanentSendError, id="not-found"),
]


@pytest.mark.parametrize(("status", "code", "error"), ERROR_CASES)
def test_send_error_mapping(status: int, code: int | None, error: type[SendError]) -> None:
    assert type(send_error(status, code)) is error


def test_channel_refuses_missing_credentials(clock: FixedClock, recorder: Recorder) -> None:
    with pytest.raises(TwilioNotConfigured):
        TwilioChannel(
            make_settings("http://127.0.0.1:9", twilio_auth_token=None),
            clock,
        )


# --- voice calls --------------------------------------------------------------------------------


async def test_voice_alert_call_twiml(channel: TwilioChannel, fake: FakeTwilioApi) -> None:
    alert = "Burgernet: vermist meisje van acht, blond haar, roze jas, omgeving station."
    receipt = await channel.call(CITIZEN, alert, "nl")
    [call] = fake.calls()
    assert (call["To"], call["From"], call["StatusCallback"]) == (
        CITIZEN,
        OUR_NUMBER,
        f"{PUBLIC}/webhooks/twilio/status",
    )
    assert receipt.provider_id.startswith("CA")
    found = verbs(call["Twiml"])
    # Everything inside the gather: a key pressed while the alert is read counts.
    assert [tag for tag, _, _ in found] == ["Gather", "Say", "Say", "Say", "Say"]
    (_, gather, _), *says = found
    assert [text for _, _, text in says] == [
        alert,
        "Ik herhaal het bericht.",
        alert,
        "Druk 1 om met de meldkamer verbonden te worden. Druk 2 om een tip in te spreken.",
    ]
    assert {attrs["language"] for _, attrs, _ in says} == {"nl-NL"}
    assert gather["input"] == "dtmf speech"
    assert gather["language"] == "nl-NL"
    assert gather["numDigits"] == "1"
    assert gather["actionOnEmptyResult"] == "true"
    assert gather["action"] == f"{PUBLIC}/webhooks/twilio/voice/gather?lang=nl"


async def test_voice_alert_in_english(channel: TwilioChannel, fake: FakeTwilioApi) -> None:
    await channel.call(CITIZEN, "Missing girl", "en")
    found = verbs(fake.calls()[0]["Twiml"])
    assert found[0][1]["language"] == "en-GB"
    assert found[0][1]["action"] == f"{PUBLIC}/webhooks/twilio/voice/gather?lang=en"
    catalogue = Catalogue.load()
    assert [text for _, _, text in found[1:]] == [
        "Missing girl",
        catalogue.render("en", "voice.repeat"),
        "Missing girl",
        catalogue.render("en", "voice.alert_prompt"),
    ]


async def test_an_alert_through_send_is_spoken_in_its_language_with_the_menu(
    channel: TwilioChannel, fake: FakeTwilioApi
) -> None:
    message = OutgoingMessage(
        channel=ChannelKind.VOICE, recipient=CITIZEN, text="Missing girl", language="en", call_menu=True
    )
    await channel.send(message)
    found = verbs(fake.calls()[0]["Twiml"])
    assert [tag for tag, _, _ in found] == ["Gather", "Say", "Say", "Say", "Say"]
    assert {attrs["language"] for _, attrs, _ in found} == {"en-GB"}


async def test_voice_message_through_send_places_a_call(channel: TwilioChannel, fake: FakeTwilioApi) -> None:
    # Not an alert (a verification code, a closing): said once, no menu, then the call ends.
    text = "Let op: <inbraak> & vlucht"
    receipt = await channel.send(OutgoingMessage(channel=ChannelKind.VOICE, recipient=CITIZEN, text=text))
    [call] = fake.calls()
    found = verbs(call["Twiml"])
    assert [(tag, attrs.get("language"), said) for tag, attrs, said in found] == [
        ("Say", "nl-NL", text),  # escaped in XML, intact once parsed
        ("Hangup", None, ""),
    ]
    assert receipt.provider_id.startswith("CA")
    assert fake.messages() == []


async def test_a_code_call_in_english_is_said_with_the_english_voice(
    channel: TwilioChannel, fake: FakeTwilioApi
) -> None:
    text = "This is Burgernet. Your code is: 4, 8, 2, 1, 9, 0."
    await channel.send(
        OutgoingMessage(channel=ChannelKind.VOICE, recipient=CITIZEN, text=text, language="en")
    )
    assert [(tag, attrs.get("language"), said) for tag, attrs, said in verbs(fake.calls()[0]["Twiml"])] == [
        ("Say", "en-GB", text),
        ("Hangup", None, ""),
    ]


async def test_a_question_call_gathers_one_key_for_the_keys_webhook(
    channel: TwilioChannel, fake: FakeTwilioApi
) -> None:
    text = "Dit is Burgernet. Wilt u deelnemer blijven? Druk 1 voor ja. Druk 9 om u af te melden."
    message = OutgoingMessage(
        channel=ChannelKind.VOICE, recipient=CITIZEN, text=text, language="nl", keypad=Keypad.ONE_KEY
    )
    await channel.send(message)
    found = verbs(fake.calls()[0]["Twiml"])
    assert [(tag, said) for tag, _, said in found] == [
        ("Gather", ""),
        ("Say", text),
        ("Say", Catalogue.load().render("nl", "voice.no_input")),
        ("Hangup", ""),
    ]
    gather = found[0][1]
    assert (gather["input"], gather["numDigits"]) == ("dtmf", "1")
    assert gather["action"] == f"{PUBLIC}/webhooks/twilio/voice/keys?lang=nl"
    # What the outbox keeps of it comes back whole for the dispatcher.
    assert message_of_payload(payload_of(message)) == message


async def test_voice_call_failure_is_retryable(channel: TwilioChannel, fake: FakeTwilioApi) -> None:
    fake.fail_next(1, status=503, code=20503)
    with pytest.raises(RetryableSendError):
        await channel.call(CITIZEN, "Alert", "nl")


CALLER_CASES = [
    pytest.param("voice_inbound", CITIZEN, id="inbound-call-from"),
    pytest.param("voice_gather_digits", CITIZEN, id="outbound-call-to"),
]


@pytest.mark.parametrize(("name", "expected"), CALLER_CASES)
def test_caller_is_the_citizen_whichever_way_the_call_goes(name: str, expected: str) -> None:
    assert caller_of(payload(name)) == expected
