"""The database locked for a while: the webhooks answer 503 (the provider delivers again later), nothing
is half-written, and the provider's retry after the lock is handled once.

The app's engine waits only 0.2 s for a lock (`DATABASE_LOCK_WAIT_S`; by default 30 s on SQLite), so
that a lock of a few seconds is met many times; another connection holds the lock as a long transaction
would.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import text
from sqlmodel import create_engine, select
from twilio.request_validator import RequestValidator

from bot.channels.telegram import SECRET_HEADER, WEBHOOK_PATH
from bot.config import load_settings
from bot.conversations import ConversationRouter
from bot.messages import IncomingMessage
from bot.texts import Catalogue
from nlu.keywords import KeywordParser
from storage.crypto import DataVault
from storage.db import SessionFactory
from storage.geo import PostcodeBook
from storage.models import ChannelIdentity, ConversationState, ProcessedEvent
from storage.vocabulary import ChannelKind
from tests.channels.webhooks_app import AUTH_TOKEN, NOW, PUBLIC, SECRET, TELEGRAM_TOKEN, Wired, webhooks_app
from tests.conftest import FixedClock
from tests.fakes.telegram_api import FakeTelegramApi

PHONE = "+31612345678"
CHAT = 551234567
LOCK_WAIT_S = 0.2
_ids = itertools.count(1)


@contextmanager
def database_locked(url: str, tables: tuple[str, ...]) -> Iterator[None]:
    """Another connection holds the write lock (SQLite: the whole file; PostgreSQL: these tables)."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    engine = create_engine(url)
    with engine.connect() as conn:
        transaction = conn.begin()
        conn.execute(text(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE"))
        try:
            yield
        finally:
            transaction.rollback()
    engine.dispose()


@pytest.fixture
def telegram_api() -> Iterator[FakeTelegramApi]:
    with FakeTelegramApi(TELEGRAM_TOKEN) as api:
        yield api


@pytest.fixture
async def app(database_url: str, telegram_api: FakeTelegramApi) -> AsyncIterator[Wired]:
    async with webhooks_app(
        database_url=database_url, telegram_api_base_url=telegram_api.base_url, lock_wait_s=LOCK_WAIT_S
    ) as wired:
        yield wired


def sms(text_: str) -> dict[str, Any]:
    sid = f"SM{next(_ids):032x}"
    return {"MessageSid": sid, "SmsSid": sid, "From": PHONE, "To": "+3197010254321", "Body": text_}


def telegram_update(text_: str) -> dict[str, Any]:
    user = {"id": CHAT, "is_bot": False, "first_name": "Anna"}
    return {
        "update_id": 483_920_000 + next(_ids),
        "message": {"message_id": next(_ids), "from": user, "chat": {"id": CHAT, "type": "private"},
                    "date": 1795437000, "text": text_},
    }  # fmt: skip


async def deliver(app: Wired, channel: ChannelKind, payload: dict[str, Any]) -> int:
    """Post one provider delivery of a message; its HTTP status."""
    if channel is ChannelKind.SMS:
        path = "/webhooks/twilio/sms"
        signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + path, payload)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
        response = await app.post(path, content=urlencode(payload).encode(), headers=headers)
    else:
        headers = {"Content-Type": "application/json", SECRET_HEADER: SECRET}
        response = await app.post(WEBHOOK_PATH, content=json.dumps(payload).encode(), headers=headers)
    return response.status_code


def snapshot(sessions: SessionFactory) -> tuple[list[dict[str, Any]], list[str], int]:
    """Conversation states, processed event keys and identities: what a half-written step would change."""
    with sessions() as session:
        states = [s.model_dump(exclude={"updated_at"}) for s in session.exec(select(ConversationState))]
        keys = sorted(e.key for e in session.exec(select(ProcessedEvent)))
        identities = len(list(session.exec(select(ChannelIdentity))))
    return states, keys, identities


CHANNELS = [
    pytest.param(ChannelKind.SMS, sms, ("processed_event", "channel_identity"), id="sms-all-locked"),
    pytest.param(
        ChannelKind.TELEGRAM, telegram_update, ("processed_event", "channel_identity"), id="telegram-all"
    ),
    # PostgreSQL only: the event id could be written, the router's step cannot: neither may be kept.
    pytest.param(ChannelKind.SMS, sms, ("channel_identity",), id="sms-router-locked"),
    pytest.param(ChannelKind.TELEGRAM, telegram_update, ("channel_identity",), id="telegram-router-locked"),
]


@pytest.mark.parametrize(("channel", "payload", "tables"), CHANNELS)
async def test_a_locked_database_answers_503_writes_nothing_and_the_retry_is_handled_once(
    app: Wired, database_url: str, channel: ChannelKind, payload: Any, tables: tuple[str, ...]
) -> None:
    if database_url.startswith("sqlite") and tables != ("processed_event", "channel_identity"):
        pytest.skip("SQLite locks the whole file; the one-table lock is a PostgreSQL case")
    assert await deliver(app, channel, payload("START")) == 200
    replies_before = len(app.outbox.sent)
    before = snapshot(app.runtime.sessions)
    answer = payload("JA")
    with database_locked(database_url, tables):
        # The provider delivers again and again while the lock lasts: 503 each time.
        for _ in range(3):
            assert await deliver(app, channel, answer) == 503
    assert snapshot(app.runtime.sessions) == before
    assert len(app.outbox.sent) == replies_before
    assert await deliver(app, channel, answer) == 200
    assert await deliver(app, channel, answer) == 200  # a late duplicate of the same delivery
    assert len(app.outbox.sent) == replies_before + 1
    states, keys, _ = snapshot(app.runtime.sessions)
    assert states != before[0] and len(keys) == len(before[1]) + 1


async def test_the_router_records_the_provider_id_with_the_step(
    sessions: SessionFactory, vault: DataVault, book: PostcodeBook
) -> None:
    router = ConversationRouter(
        sessions=sessions,
        vault=vault,
        book=book,
        parser=KeywordParser(),
        catalogue=Catalogue.load(),
        settings=load_settings(privacy_statement_version="2026-1"),
        clock=FixedClock(NOW),
    )
    start = IncomingMessage(ChannelKind.SMS, PHONE, "START", NOW, provider_id="SM" + "1" * 32)
    assert await router.handle(start)
    before = snapshot(sessions)
    # A second worker given the same retry: recognised inside the router's own transaction.
    assert await router.handle(start) == []
    assert snapshot(sessions) == before
    assert before[1] == [f"sms:{'SM' + '1' * 32}"]


async def test_the_dispatcher_outlives_a_locked_database_and_sends_afterwards(
    app: Wired, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("an idle dispatcher on SQLite only reads, and readers pass a writer's lock")
    # Longer than the lock wait and the dispatcher's poll: its claims meet the lock and fail.
    with database_locked(database_url, ("delivery", "outbound_message", "phone_verification")):
        await asyncio.sleep(1.5)
    assert "dispatcher: database failed" in caplog.text
    assert await deliver(app, ChannelKind.SMS, sms("START")) == 200
    assert len(app.outbox.sent) == 1, "the reply went out after the lock"
