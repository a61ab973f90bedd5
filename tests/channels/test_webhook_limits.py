"""Webhook limits on both providers: size (413), content type (415), signatures and replays (403),
duplicates handled once, and a failing handler answered 503 so that the provider's retry is handled."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import select
from twilio.request_validator import RequestValidator

from bot.channels.limits import MAX_BODY_BYTES
from bot.channels.telegram import SECRET_HEADER, WEBHOOK_PATH, TelegramChannel
from bot.channels.twilio import TwilioChannel
from bot.channels.twilio_webhooks import RecentKeys
from bot.config import load_settings
from bot.inbox import Inbox
from bot.messages import IncomingMessage, OutgoingMessage, event_key
from storage.db import SessionFactory, transaction
from storage.events import record_first_time
from storage.models import ProcessedEvent
from storage.vocabulary import ChannelKind, StatusUpdate
from tests.conftest import FixedClock
from tests.fakes.twilio_api import FakeTwilioApi

TESTDATA = Path(__file__).parent / "testdata"
ACCOUNT_SID = "ACa1b2c3d4e5f60718293a4b5c6d7e8f90"
AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
TELEGRAM_TOKEN = "7000000001:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0"
SECRET = "s3cr3t-Token_for-webhooks"
PUBLIC = "https://bot.example.nl"
SMS = "/webhooks/twilio/sms"
NOW = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
FORM = "application/x-www-form-urlencoded"


def twilio_form() -> dict[str, str]:
    form: dict[str, str] = json.loads((TESTDATA / "twilio" / "sms_text.json").read_text(encoding="utf-8"))
    return form


def telegram_update() -> dict[str, Any]:
    update: dict[str, Any] = json.loads((TESTDATA / "telegram" / "text.json").read_text(encoding="utf-8"))
    return update


def sign(url: str, form: dict[str, str]) -> str:
    signature: str = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
    return signature


@dataclass
class Handler:
    """Stands in for the router: records the provider id as it does (in the step's transaction) and what
    it handled, or fails like a locked database."""

    sessions: SessionFactory
    clock: FixedClock
    handled: list[IncomingMessage] = field(default_factory=list)
    failures: int = 0

    async def __call__(self, message: IncomingMessage) -> list[OutgoingMessage]:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("database stayed locked")
        key = event_key(message)
        with transaction(self.sessions) as session:
            if key is not None and not record_first_time(session, key=key, at=self.clock()):
                return []
        self.handled.append(message)
        return []


@dataclass
class Wired:
    http: httpx.AsyncClient
    handler: Handler
    sessions: SessionFactory


@pytest.fixture
def fake() -> Iterator[FakeTwilioApi]:
    with FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN) as api:
        yield api


@pytest.fixture
async def wired(sessions: SessionFactory, fake: FakeTwilioApi, clock: FixedClock) -> AsyncIterator[Wired]:
    """Both webhooks on one app, each handing on through the same inbox (as the runtime wires them)."""
    handler = Handler(sessions, clock)
    inbox = Inbox(handle=handler)
    settings = load_settings(
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_api_base_url=fake.base_url,
        telegram_bot_token=TELEGRAM_TOKEN,
        telegram_webhook_secret=SECRET,
        public_base_url=PUBLIC,
    )

    async def on_status(_update: StatusUpdate) -> None:
        return None

    twilio = TwilioChannel(settings, clock)
    telegram = TelegramChannel(settings, clock, per_chat_interval=0)
    app = FastAPI()
    app.include_router(twilio.router(inbox.receive, on_status, first_time=RecentKeys()))
    app.include_router(telegram.router(inbox.receive))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC) as http:
        yield Wired(http, handler, sessions)
    await twilio.aclose()


def processed(sessions: SessionFactory) -> int:
    with sessions() as session:
        return len(list(session.exec(select(ProcessedEvent))))


# --- size and content type ---------------------------------------------------------------------------


def _twilio_padded(size: int) -> tuple[bytes, dict[str, str]]:
    """A signed SMS form whose encoded body is exactly `size` bytes."""
    form = twilio_form() | {"Body": ""}
    form["Body"] = "x" * (size - len(urlencode(form).encode()))
    body = urlencode(form).encode()
    assert len(body) == size
    return body, {"Content-Type": FORM, "X-Twilio-Signature": sign(PUBLIC + SMS, form)}


def _telegram_padded(size: int) -> tuple[bytes, dict[str, str]]:
    update = telegram_update()
    update["message"]["text"] = ""
    update["message"]["text"] = "x" * (size - len(json.dumps(update).encode()))
    body = json.dumps(update).encode()
    assert len(body) == size
    return body, {"Content-Type": "application/json", SECRET_HEADER: SECRET}


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    # A generator body goes out chunked, without Content-Length: the limit must count while reading.
    for start in range(0, len(body), 8192):
        yield body[start : start + 8192]


SIZES = [
    pytest.param(_twilio_padded, SMS, MAX_BODY_BYTES, False, 200, id="twilio-64kib-exactly"),
    pytest.param(_twilio_padded, SMS, MAX_BODY_BYTES + 1, False, 413, id="twilio-one-byte-over"),
    pytest.param(_twilio_padded, SMS, 4 * MAX_BODY_BYTES, True, 413, id="twilio-chunked-no-length"),
    pytest.param(_telegram_padded, WEBHOOK_PATH, MAX_BODY_BYTES, False, 200, id="telegram-64kib-exactly"),
    pytest.param(_telegram_padded, WEBHOOK_PATH, MAX_BODY_BYTES + 1, False, 413, id="telegram-one-byte-over"),
    pytest.param(_telegram_padded, WEBHOOK_PATH, 4 * MAX_BODY_BYTES, True, 413, id="telegram-chunked"),
]


@pytest.mark.parametrize(("build", "path", "size", "chunked", "expected"), SIZES)
async def test_body_size_limit(
    wired: Wired, build: Any, path: str, size: int, chunked: bool, expected: int
) -> None:
    body, headers = build(size)
    content: Any = _chunks(body) if chunked else body
    response = await wired.http.post(path, content=content, headers=headers)
    assert response.status_code == expected
    assert len(wired.handler.handled) == (1 if expected == 200 else 0)


async def test_a_false_small_content_length_does_not_let_a_large_body_through(wired: Wired) -> None:
    body, headers = _twilio_padded(2 * MAX_BODY_BYTES)

    async def stream() -> AsyncIterator[bytes]:
        yield body

    request = wired.http.build_request(
        "POST", SMS, content=stream(), headers=headers | {"Content-Length": "10"}
    )
    response = await wired.http.send(request)
    assert response.status_code == 413
    assert wired.handler.handled == []


def _twilio_as(content_type: str | None) -> tuple[bytes, dict[str, str]]:
    form = twilio_form()
    headers = {"X-Twilio-Signature": sign(PUBLIC + SMS, form)}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return urlencode(form).encode(), headers


def _telegram_as(content_type: str | None) -> tuple[bytes, dict[str, str]]:
    headers = {SECRET_HEADER: SECRET}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return json.dumps(telegram_update()).encode(), headers


CONTENT_TYPES = [
    pytest.param(_twilio_as, SMS, FORM + "; charset=UTF-8", 200, id="twilio-form-with-charset"),
    pytest.param(_twilio_as, SMS, "application/json", 415, id="twilio-json"),
    pytest.param(_twilio_as, SMS, "multipart/form-data; boundary=x", 415, id="twilio-multipart"),
    pytest.param(_twilio_as, SMS, "text/plain", 415, id="twilio-text"),
    pytest.param(_twilio_as, SMS, None, 415, id="twilio-none"),
    pytest.param(_telegram_as, WEBHOOK_PATH, "application/json", 200, id="telegram-json"),
    pytest.param(_telegram_as, WEBHOOK_PATH, "Application/JSON; charset=utf-8", 200, id="telegram-json-case"),
    pytest.param(_telegram_as, WEBHOOK_PATH, FORM, 415, id="telegram-form"),
    pytest.param(_telegram_as, WEBHOOK_PATH, "text/plain", 415, id="telegram-text"),
    pytest.param(_telegram_as, WEBHOOK_PATH, None, 415, id="telegram-none"),
]


@pytest.mark.parametrize(("build", "path", "content_type", "expected"), CONTENT_TYPES)
async def test_content_type(
    wired: Wired, build: Any, path: str, content_type: str | None, expected: int
) -> None:
    body, headers = build(content_type)
    response = await wired.http.post(path, content=body, headers=headers)
    assert response.status_code == expected
    assert len(wired.handler.handled) == (1 if expected == 200 else 0)


# --- signatures and replays --------------------------------------------------------------------------

OTHER = twilio_form() | {"MessageSid": "SM" + "f" * 32, "Body": "STOP"}


SIGNATURES = [
    pytest.param(SMS, twilio_form(), None, id="missing"),
    pytest.param(SMS, twilio_form(), "", id="empty"),
    pytest.param(SMS, twilio_form(), "%%%not base64%%%", id="not-base64"),
    pytest.param(SMS, twilio_form(), sign(PUBLIC + SMS, OTHER), id="replayed-over-another-body"),
    pytest.param(
        SMS, twilio_form(), sign(PUBLIC + "/webhooks/twilio/whatsapp", twilio_form()), id="other-path"
    ),
    pytest.param(SMS + "?lang=en", twilio_form(), sign(PUBLIC + SMS, twilio_form()), id="query-added"),
    pytest.param(SMS, twilio_form(), sign("http://bot.example.nl" + SMS, twilio_form()), id="http-not-https"),
    pytest.param(
        SMS, twilio_form() | {"Extra": "1"}, sign(PUBLIC + SMS, twilio_form()), id="field-added-after-signing"
    ),
]


@pytest.mark.parametrize(("path", "form", "signature"), SIGNATURES)
async def test_bad_or_replayed_twilio_signature_is_403(
    wired: Wired, path: str, form: dict[str, str], signature: str | None
) -> None:
    headers = {"Content-Type": FORM}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    response = await wired.http.post(path, content=urlencode(form).encode(), headers=headers)
    assert response.status_code == 403
    assert wired.handler.handled == []
    assert processed(wired.sessions) == 0


SECRETS = [
    pytest.param(None, id="missing"),
    pytest.param("", id="empty"),
    pytest.param(SECRET[:-1], id="prefix"),
    pytest.param(SECRET + "x", id="longer"),
    pytest.param(SECRET.upper(), id="other-case"),
]


@pytest.mark.parametrize("secret", SECRETS)
async def test_bad_telegram_secret_is_403(wired: Wired, secret: str | None) -> None:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    response = await wired.http.post(WEBHOOK_PATH, content=json.dumps(telegram_update()), headers=headers)
    assert response.status_code == 403
    assert wired.handler.handled == []


async def _post_twilio(wired: Wired) -> httpx.Response:
    body, headers = _twilio_as(FORM)
    return await wired.http.post(SMS, content=body, headers=headers)


async def _post_telegram(wired: Wired) -> httpx.Response:
    body, headers = _telegram_as("application/json")
    return await wired.http.post(WEBHOOK_PATH, content=body, headers=headers)


DELIVERIES = [pytest.param(_post_twilio, id="twilio"), pytest.param(_post_telegram, id="telegram")]


@pytest.mark.parametrize("post", DELIVERIES)
async def test_an_exact_duplicate_delivery_is_accepted_and_handled_once(wired: Wired, post: Any) -> None:
    statuses = [(await post(wired)).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    assert len(wired.handler.handled) == 1
    assert processed(wired.sessions) == 1


@pytest.mark.parametrize("post", DELIVERIES)
async def test_a_failing_handler_answers_503_and_the_retry_is_handled(wired: Wired, post: Any) -> None:
    wired.handler.failures = 1
    assert (await post(wired)).status_code == 503
    # Nothing was recorded: the provider's retry is not taken for a duplicate.
    assert processed(wired.sessions) == 0
    assert (await post(wired)).status_code == 200
    assert (await post(wired)).status_code == 200
    assert [m.channel for m in wired.handler.handled] in ([ChannelKind.SMS], [ChannelKind.TELEGRAM])
