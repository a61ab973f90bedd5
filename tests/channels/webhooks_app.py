"""Both webhooks (Twilio, Telegram) of the app as `serve` builds it, on a test's database.

For tests that feed raw provider payloads through the signature checks into the router and read what
was sent: the runtime is the production one (`build_runtime` + `create_app`), started as the server's
lifespan starts it; only the sending side of every channel is a recording sender, and the scheduler is
off. `Wired.post` waits until the dispatcher has sent what the request queued.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from bot.app import create_app
from bot.channels.base import SendReceipt
from bot.config import load_settings
from bot.messages import OutgoingMessage
from bot.runtime import Runtime, build_runtime
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock
from tests.e2e.serving import outbox_settled

ACCOUNT_SID = "AC" + "7" * 32
AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
TELEGRAM_TOKEN = "7000000001:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0"
SECRET = "s3cr3t-Token_for-webhooks"
PUBLIC = "https://bot.example.nl"
OUR_NUMBER = "+3197010254321"
NOW = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)


@dataclass
class Outbox:
    """A sender for every channel that keeps what the dispatcher sent."""

    kinds: frozenset[ChannelKind] = frozenset(ChannelKind)
    sent: list[OutgoingMessage] = field(default_factory=list)

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        self.sent.append(message)
        return SendReceipt(provider_id=f"out-{len(self.sent)}")


@dataclass
class Wired:
    """A client on the running app's webhooks, what it sent, and its runtime (sessions, vault)."""

    http: httpx.AsyncClient
    outbox: Outbox
    runtime: Runtime

    async def post(self, path: str, **request: Any) -> httpx.Response:
        """Post to the app, then wait until the messages the request queued are sent."""
        response = await self.http.post(path, **request)
        await outbox_settled(self.runtime.sessions)
        return response


@asynccontextmanager
async def webhooks_app(
    *,
    database_url: str,
    telegram_api_base_url: str,
    controlroom_phone: str | None = None,
    lock_wait_s: float | None = None,
) -> AsyncIterator[Wired]:
    """The app on the webhooks (base URL `PUBLIC`, signed with `AUTH_TOKEN` / `SECRET`) and its outbox."""
    settings = load_settings(
        database_url=database_url,
        database_lock_wait_s=lock_wait_s,
        telegram_bot_token=TELEGRAM_TOKEN,
        telegram_api_base_url=telegram_api_base_url,
        telegram_webhook_secret=SECRET,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_sms_from=OUR_NUMBER,
        twilio_whatsapp_from=OUR_NUMBER,
        twilio_voice_from=OUR_NUMBER,
        controlroom_phone=controlroom_phone,
        public_base_url=PUBLIC,
        privacy_statement_version="2026-1",
        scheduler_enabled=False,
    )
    outbox = Outbox()
    runtime = build_runtime(
        settings,
        clock=FixedClock(NOW),
        run_migrations=False,
        telegram_options={"per_chat_interval": 0},
        senders=dict.fromkeys(ChannelKind, outbox),
    )
    app = create_app(runtime)
    await runtime.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC) as http:
            yield Wired(http, outbox, runtime)
    finally:
        await runtime.stop()
        runtime.engine.dispose()
