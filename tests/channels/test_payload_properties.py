"""Property tests over the provider payload parsers and their webhooks: random fields never escape as an
exception (a signed but odd form is 200 or 400, never 5xx), and every reply fits its channel."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from bot.channels.segments import count_segments
from bot.channels.telegram import SECRET_HEADER, WEBHOOK_PATH
from bot.channels.twilio_payloads import (
    BadPayload,
    parse_message,
    parse_recording,
    parse_speech,
    parse_status,
)
from bot.messages import OutgoingMessage
from storage.vocabulary import ChannelKind
from tests.channels.webhooks_app import AUTH_TOKEN, NOW, PUBLIC, SECRET, TELEGRAM_TOKEN, Wired, webhooks_app
from tests.fakes.telegram_api import FakeTelegramApi

TELEGRAM_MAX_TEXT = 4096
WHATSAPP_MAX_TEXT = 1600
SMS_MAX_SEGMENTS = 3
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))

TWILIO_FIELDS = [
    "MessageSid", "SmsSid", "SmsMessageSid", "AccountSid", "From", "To", "Body", "NumMedia", "NumSegments",
    "MediaUrl0", "MediaContentType0", "Latitude", "Longitude", "ButtonText", "ProfileName", "WaId",
    "OriginalRepliedMessageSid", "MessageStatus", "SmsStatus", "CallSid", "CallStatus", "Direction",
    "SpeechResult", "Digits", "RecordingUrl", "RecordingSid", "TranscriptionText", "ErrorCode",
]  # fmt: skip
values = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
    st.sampled_from(["+31612345678", "whatsapp:+31612345678", "client:anna", "0612345678", "", "nan",
                     "1e999", "-91", "10", "delivered", "failed", "in-progress", "outbound-api", "START",
                     "STOP", "JA"]),
)  # fmt: skip
forms = st.dictionaries(st.sampled_from(TWILIO_FIELDS), values, max_size=len(TWILIO_FIELDS))
# An SMS from a well-formed number with a random text reaches the router, not only the parser.
sms_forms = st.builds(
    lambda sid, body, extra: extra | {"MessageSid": f"SM{sid:032x}", "From": "+31612345678", "Body": body},
    st.integers(1, 2**64),
    st.one_of(st.text(max_size=300), st.sampled_from(["START", "STOP", "HULP", "MIJN GEGEVENS", "ADRES"])),
    forms,
)


@PROPERTY
@given(forms)
def test_twilio_parsers_raise_only_bad_payload(form: dict[str, str]) -> None:
    for parse in (parse_message, parse_speech, parse_recording):
        try:
            message = parse(form, received_at=NOW)
        except BadPayload:
            continue
        assert message.sender
        assert message.provider_id
    with contextlib.suppress(BadPayload):
        parse_status(form)


@pytest.fixture
def telegram_api() -> Iterator[FakeTelegramApi]:
    with FakeTelegramApi(TELEGRAM_TOKEN) as api:
        yield api


@pytest.fixture
async def wired(database_url: str, telegram_api: FakeTelegramApi) -> AsyncIterator[Wired]:
    """Both webhooks of the app as `serve` builds it, on the test's database."""
    async with webhooks_app(
        database_url=database_url,
        telegram_api_base_url=telegram_api.base_url,
        controlroom_phone="+31534800000",
    ) as wired:
        yield wired


def assert_replies_fit(sent: list[OutgoingMessage]) -> None:
    for reply in sent:
        if reply.channel is ChannelKind.SMS:
            assert count_segments(reply.text).segments <= SMS_MAX_SEGMENTS, reply.text
        elif reply.channel is ChannelKind.WHATSAPP:
            assert len(reply.text) <= WHATSAPP_MAX_TEXT
        else:
            assert len(reply.text) <= TELEGRAM_MAX_TEXT


TWILIO_PATHS = st.sampled_from(
    ["/webhooks/twilio/sms", "/webhooks/twilio/whatsapp", "/webhooks/twilio/status",
     "/webhooks/twilio/voice", "/webhooks/twilio/voice/gather", "/webhooks/twilio/voice/recording"]
)  # fmt: skip


@PROPERTY
@given(path=TWILIO_PATHS, form=st.one_of(forms, sms_forms))
async def test_a_signed_random_twilio_form_is_200_or_400(
    wired: Wired, path: str, form: dict[str, str]
) -> None:
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + path, form)
    response = await wired.post(
        path,
        content=urlencode(form).encode("utf-8"),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )
    assert response.status_code in (200, 400), response.text
    assert_replies_fit(wired.outbox.sent)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
users = st.fixed_dictionaries(
    {"id": st.integers(1, 2**40), "is_bot": st.booleans(), "first_name": st.text(max_size=20)},
    optional={"language_code": st.sampled_from(["nl", "en", "fy", ""]), "username": st.text(max_size=10)},
)
chats = st.fixed_dictionaries(
    {
        "id": st.integers(-(2**40), 2**40),
        "type": st.sampled_from(["private", "group", "supergroup", "channel"]),
    }
)
messages = st.fixed_dictionaries(
    {"message_id": st.integers(1, 2**31), "date": st.integers(0, 2**32), "chat": chats},
    optional={
        "from": users,
        "text": st.one_of(
            st.text(max_size=300), st.sampled_from(["/start", "/start BN-4K7P", "STOP", "/help"])
        ),
        "caption": st.text(max_size=50),
        "contact": st.fixed_dictionaries(
            {"phone_number": st.text(max_size=20), "first_name": st.text(max_size=10)},
            optional={"user_id": st.integers(1, 2**40)},
        ),
        "location": st.fixed_dictionaries(
            {"latitude": st.floats(-90, 90), "longitude": st.floats(-180, 180)}
        ),
        "photo": st.lists(
            st.fixed_dictionaries(
                {"file_id": st.text(min_size=1, max_size=10), "file_unique_id": st.text(max_size=5),
                 "width": st.integers(0, 5000), "height": st.integers(0, 5000)}
            ),
            max_size=3,
        ),
        "extra": json_values,
    },
)  # fmt: skip
updates = st.fixed_dictionaries(
    {"update_id": st.integers(0, 2**31)},
    optional={
        "message": st.one_of(messages, json_values),
        "edited_message": messages,
        "callback_query": st.fixed_dictionaries(
            {"id": st.text(max_size=10), "from": users, "chat_instance": st.text(max_size=5)},
            optional={"data": st.text(max_size=64), "message": messages},
        ),
        "poll": json_values,
    },
)


@PROPERTY
@given(update=st.one_of(updates, st.dictionaries(st.text(max_size=10), json_values, max_size=4)))
async def test_a_random_telegram_update_is_200_or_400(wired: Wired, update: dict[str, Any]) -> None:
    response = await wired.post(
        WEBHOOK_PATH,
        content=json.dumps(update).encode(),
        headers={"Content-Type": "application/json", SECRET_HEADER: SECRET},
    )
    assert response.status_code in (200, 400), update
    assert_replies_fit(wired.outbox.sent)
    assert all(isinstance(m, OutgoingMessage) and m.recipient for m in wired.outbox.sent)
