"""No personal data in the logs, and none in clear in the database.

A whole registration, a look at MIJN GEGEVENS and an unsubscribe, on SMS (signed Twilio webhooks, replies
through the real Twilio channel to its fake) and on Telegram (webhook updates, replies through PTB to the
fake Bot API), with every logger at DEBUG: the test phone numbers and names never appear in a log record.
Between registration and unsubscribe the raw database (SQLite's file bytes with its WAL, or every column
value on PostgreSQL) holds neither the numbers nor the names in clear.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import MetaData, select
from twilio.request_validator import RequestValidator

from bot.app import create_app
from bot.channels.telegram import SECRET_HEADER, WEBHOOK_PATH
from bot.config import load_settings
from bot.runtime import build_runtime
from storage.crypto import new_data_key
from storage.db import SessionFactory
from tests.conftest import FixedClock
from tests.e2e.serving import outbox_settled
from tests.fakes.telegram_api import FakeTelegramApi
from tests.fakes.twilio_api import FakeTwilioApi

ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "9a1e" * 8
TELEGRAM_TOKEN = "7000000001:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0"
SECRET = "s3cr3t-Token_for-webhooks"
PUBLIC = "https://bot.example.nl"
OUR_NUMBER = "+3197010254321"
SMS_PHONE = "+31613572468"
TELEGRAM_PHONE = "+31624681357"
CHAT = 551234567
SMS_NAME = "Wilhelmina"
TELEGRAM_NAME = "Geertruida"
PROFILE = ("Anneke", "Zwanenburg")  # the Telegram profile's first and last name
NOW = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
TESTDATA = Path(__file__).parents[1] / "channels" / "testdata" / "telegram"
_ids = itertools.count(1)


def forms_of(phone: str) -> list[str]:
    """A phone number as it may be written: E.164, without +, national, bare digits."""
    national = "0" + phone.removeprefix("+31")
    return [phone, phone.lstrip("+"), national, national[1:], f"{national[:2]} {national[2:]}"]


SECRETS = [*forms_of(SMS_PHONE), *forms_of(TELEGRAM_PHONE), SMS_NAME, TELEGRAM_NAME, *PROFILE]
# Not personal data, but a credential that must not reach the logs either (it is in Telegram's URLs).
CREDENTIALS = [TELEGRAM_TOKEN.split(":", 1)[1], AUTH_TOKEN]


@dataclass
class Wired:
    http: httpx.AsyncClient
    sessions: SessionFactory
    twilio_api: FakeTwilioApi
    telegram_api: FakeTelegramApi


@pytest.fixture
def twilio_api() -> Iterator[FakeTwilioApi]:
    with FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN) as api:
        yield api


@pytest.fixture
def telegram_api() -> Iterator[FakeTelegramApi]:
    with FakeTelegramApi(TELEGRAM_TOKEN) as api:
        yield api


@pytest.fixture
async def wired(
    database_url: str, twilio_api: FakeTwilioApi, telegram_api: FakeTelegramApi
) -> AsyncIterator[Wired]:
    """The whole app as `serve` builds it, with both providers pointed at their fakes."""
    settings = load_settings(
        database_url=database_url,
        data_key=new_data_key(),
        scheduler_enabled=False,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_sms_from=OUR_NUMBER,
        twilio_api_base_url=twilio_api.base_url,
        telegram_bot_token=TELEGRAM_TOKEN,
        telegram_api_base_url=telegram_api.base_url,
        telegram_webhook_secret=SECRET,
        public_base_url=PUBLIC,
        privacy_statement_version="2026-1",
    )
    runtime = build_runtime(
        settings, clock=FixedClock(NOW), run_migrations=False, telegram_options={"per_chat_interval": 0}
    )
    app = create_app(runtime)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC) as http,
    ):
        yield Wired(http, runtime.sessions, twilio_api, telegram_api)


async def send_sms(wired: Wired, text: str) -> None:
    sid = f"SM{next(_ids):032x}"
    form = {"MessageSid": sid, "SmsSid": sid, "AccountSid": ACCOUNT_SID, "From": SMS_PHONE, "To": OUR_NUMBER,
            "Body": text, "NumMedia": "0", "SmsStatus": "received", "ApiVersion": "2010-04-01"}  # fmt: skip
    path = "/webhooks/twilio/sms"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + path, form)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
    response = await wired.http.post(path, content=urlencode(form).encode(), headers=headers)
    assert response.status_code == 200
    await settled(wired)


async def send_telegram(wired: Wired, text: str) -> None:
    update: dict[str, Any] = json.loads((TESTDATA / "text.json").read_text(encoding="utf-8"))
    profile = {"first_name": PROFILE[0], "last_name": PROFILE[1]}
    update["message"]["from"] |= profile
    update["message"]["chat"] |= profile
    if text == "<contact>":
        update["message"].pop("text")
        update["message"]["contact"] = {"phone_number": TELEGRAM_PHONE.lstrip("+"), "user_id": CHAT} | profile
    else:
        update["message"]["text"] = text
    update["update_id"] = 500_000_000 + next(_ids)
    update["message"]["message_id"] = next(_ids)
    headers = {"Content-Type": "application/json", SECRET_HEADER: SECRET}
    response = await wired.http.post(WEBHOOK_PATH, content=json.dumps(copy.deepcopy(update)), headers=headers)
    assert response.status_code == 200
    await settled(wired)


REGISTER_SMS = ["START", "JA", SMS_NAME, "7511 AB 12", "JA", "JA", "SMS", "MIJN GEGEVENS"]
REGISTER_TELEGRAM = [
    "/start",
    "ja",
    TELEGRAM_NAME,
    "7511 AB 12",
    "ja",
    "<contact>",
    "Telegram",
    "/mijngegevens",
]


async def settled(wired: Wired) -> None:
    """A person reads the answer before writing again."""
    await outbox_settled(wired.sessions)


def raw_database_text(database_url: str, sessions: SessionFactory) -> str:
    """Everything the database holds, as stored: SQLite's files as bytes, PostgreSQL's column values."""
    if database_url.startswith("sqlite"):
        path = Path(database_url.split("///", 1)[1])
        files = [path, path.with_name(path.name + "-wal")]
        return b"".join(f.read_bytes() for f in files if f.exists()).decode("latin-1")
    with sessions() as session:
        bind = session.get_bind()
        meta = MetaData()
        meta.reflect(bind=bind)
        return "\n".join(
            repr(tuple(row)) for table in meta.sorted_tables for row in session.execute(select(table)).all()
        )


def leaks(text: str, secrets: list[str] = SECRETS) -> list[str]:
    return [secret for secret in secrets if secret in text]


async def test_registration_and_unsubscribe_leave_no_personal_data_in_logs_or_in_clear(
    wired: Wired, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for text in REGISTER_SMS:
        await send_sms(wired, text)
    for text in REGISTER_TELEGRAM:
        await send_telegram(wired, text)
    # The flows did run: the people saw their own data (so the data passed through every layer).
    # MIJN GEGEVENS answers with the summary, then the history.
    assert any(SMS_NAME in m["Body"] for m in wired.twilio_api.messages()[-2:])
    assert any(TELEGRAM_NAME in text for text in wired.telegram_api.sent_texts(CHAT))

    stored = raw_database_text(database_url, wired.sessions)
    assert "participant" in stored or database_url.startswith("postgresql")
    assert leaks(stored) == [], "personal data stored in clear"

    await send_sms(wired, "STOP")
    await send_telegram(wired, "/stop")

    records = [
        (record.name, record.getMessage(), record.exc_text or "", repr(record.args))
        for record in caplog.records
    ]
    assert records, "nothing was logged at DEBUG: the check would prove nothing"
    leaked = [(name, s) for name, *parts in records for s in leaks(" ".join(parts), SECRETS + CREDENTIALS)]
    assert leaked == [], sorted(set(leaked))
