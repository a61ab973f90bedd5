"""Everything tip handling adds to the app, in one object the runtime builds and wires.

tips = TipServices(sessions=..., vault=..., settings=..., clock=..., catalogue=..., senders=...)
Router(..., flows=[*tips.flows, ...]); app.include_router(tips.api_router())
controlroom_router(..., tips=tips.feed); on start `await tips.start()`, on stop `await tips.stop()`
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime

import httpx
from fastapi import APIRouter

from bot.api.tips import tips_router
from bot.channels.base import Channel
from bot.config import Settings
from bot.controlroom.tipfeed import TipFeed
from bot.flows.engine import Flow
from bot.flows.tip import TipFlow, TipRules
from bot.messages import ChannelKind
from bot.texts import Catalogue
from bot.tips.feed import StorageTipFeed
from bot.tips.forwarder import TipForwarder, chat_configured, webhook_configured
from bot.tips.hub import TipHub
from storage.crypto import DataVault
from storage.db import SessionFactory


class TipServices:
    """The tip flow, its API routes, the control room's feed and the forwarding worker, wired together."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        vault: DataVault,
        settings: Settings,
        clock: Callable[[], datetime],
        catalogue: Catalogue,
        senders: Mapping[ChannelKind, Channel],
        rules: TipRules | None = None,
        http: httpx.AsyncClient | None = None,
        stream_poll_s: float = 1.0,
        forwarder_poll_s: float = 1.0,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._clock = clock
        self._stream_poll_s = stream_poll_s
        self.hub = TipHub()
        base = rules or TipRules()
        self.rules = replace(
            base, webhook=webhook_configured(settings), chat=chat_configured(settings, senders)
        )
        self.forwarder = TipForwarder(
            sessions=sessions,
            settings=settings,
            clock=clock,
            vault=vault,
            catalogue=catalogue,
            senders=senders,
            http=http,
            poll_s=forwarder_poll_s,
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
        )
        self.flow = TipFlow(self.rules, on_stored=self.wake)
        self.flows: list[Flow] = [self.flow]
        # Typed as the protocol, so mypy checks that the storage feed is what the control room expects.
        self.feed: TipFeed = StorageTipFeed(
            sessions=sessions, vault=vault, clock=clock, on_queued=self.forwarder.wake
        )

    def wake(self) -> None:
        """A tip was stored: ring the stream and the forward lanes; safe from any thread."""
        self.hub.notify()
        self.forwarder.wake(questions=False)

    def api_router(self) -> APIRouter:
        """The `/api/v1` tip routes (bearer API_TOKEN)."""
        return tips_router(
            sessions=self._sessions,
            settings=self._settings,
            clock=self._clock,
            hub=self.hub,
            on_queued=self.forwarder.wake,
            poll_s=self._stream_poll_s,
        )

    async def start(self) -> None:
        """Start the forwarding worker (webhook and operator questions)."""
        await self.forwarder.start()

    async def stop(self) -> None:
        """Stop the forwarding worker; what is unsent stays in the outbox."""
        await self.forwarder.stop()
