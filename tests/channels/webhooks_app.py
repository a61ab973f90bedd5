"""Both webhooks (Twilio, Telegram) in front of the real inbox and router, on a test's database.

For tests that feed raw provider payloads through the signature checks into the router and read what
was sent: after each message the dispatcher drains the outbox into a recording sender (no scheduler,
no NLU training).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI
from twilio.request_validator import RequestValidator

from bot.alerts import AlertTexts
from bot.channels.base import SendReceipt
from bot.channels.telegram import TelegramChannel
from bot.channels.twilio_webhooks import RecentKeys, SignedForms, twilio_webhook_router
from bot.config import load_settings
from bot.conversations import ConversationRouter
from bot.dispatch import Dispatcher
from bot.inbox import Inbox
from bot.messages import IncomingMessage, OutgoingMessage
from bot.texts import Catalogue
from nlu.keywords import KeywordParser
from storage.crypto import DataVault
from storage.db import SessionFactory
from storage.geo import PostcodeBook
from storage.vocabulary import ChannelKind, StatusUpdate
from tests.conftest import FixedClock

AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
TELEGRAM_TOKEN = "7000000001:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0"
SECRET = "s3cr3t-Token_for-webhooks"
PUBLIC = "https://bot.example.nl"
NOW = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)


@dataclass
class Outbox:
    """A sender for every channel that keeps what the inbox sent."""

    kinds: frozenset[ChannelKind] = frozenset(ChannelKind)
    sent: list[OutgoingMessage] = field(default_factory=list)

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        self.sent.append(message)
        return SendReceipt(provider_id=f"out-{len(self.sent)}")


async def _ignore_status(_update: StatusUpdate) -> None:
    return None


@asynccontextmanager
async def webhooks_app(
    *,
    sessions: SessionFactory,
    vault: DataVault,
    book: PostcodeBook,
    telegram_api_base_url: str,
    controlroom_phone: str | None = None,
) -> AsyncIterator[tuple[httpx.AsyncClient, Outbox]]:
    """A client on the webhooks (base URL `PUBLIC`, signed with `AUTH_TOKEN` / `SECRET`) and the outbox."""
    clock = FixedClock(NOW)
    catalogue = Catalogue.load()
    settings = load_settings(
        telegram_bot_token=TELEGRAM_TOKEN,
        telegram_api_base_url=telegram_api_base_url,
        telegram_webhook_secret=SECRET,
        public_base_url=PUBLIC,
        privacy_statement_version="2026-1",
    )
    router = ConversationRouter(
        sessions=sessions,
        vault=vault,
        book=book,
        parser=KeywordParser(),
        catalogue=catalogue,
        settings=settings,
        clock=clock,
    )
    outbox = Outbox()
    inbox = Inbox(handle=router.handle)
    dispatcher = Dispatcher(
        sessions,
        dict.fromkeys(ChannelKind, outbox),
        clock,
        settings,
        vault=vault,
        texts=AlertTexts.from_settings(catalogue, settings),
    )
    draining = asyncio.Lock()

    async def receive(message: IncomingMessage) -> list[OutgoingMessage]:
        replies = await inbox.receive(message)
        async with draining:
            await dispatcher.drain()
        return replies

    app = FastAPI()
    app.include_router(
        twilio_webhook_router(
            forms=SignedForms(validator=RequestValidator(AUTH_TOKEN), public_base_url=PUBLIC),
            on_message=receive,
            on_status=_ignore_status,
            first_time=RecentKeys(),
            clock=clock,
            catalogue=catalogue,
            controlroom_phone=controlroom_phone,
        )
    )
    telegram = TelegramChannel(settings, clock, per_chat_interval=0)
    await telegram.start(receive)
    app.include_router(telegram.router(receive))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC) as http:
            yield http, outbox
    finally:
        await telegram.stop()
