"""Everything tip handling adds to the system, built in one go from what it needs.

`build_runtime` builds the tip subsystem after storage, the senders and the geocoder, and before the
conversations: `tips.flows` go to the conversation router, `tips.routes()` to the app, `start`/`stop`
to the runtime's subsystems and `tips.feed` to the control room.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

import httpx
from fastapi import APIRouter

from bot.channels.base import Channel
from bot.config import Settings
from bot.controlroom.tipfeed import TipFeed
from bot.flows.engine import Flow
from bot.flows.tip import TipFlow, TipRules, TipStored
from bot.geocoder import Geocoder
from bot.texts import Catalogue
from bot.tips.api import tips_router
from bot.tips.chat import operators_chat
from bot.tips.feed import StorageTipFeed
from bot.tips.forwarder import TipForwarder, webhook_configured
from bot.tips.hub import TipHub
from bot.tips.media import TipMediaFetcher
from bot.tips.places import TipPlaces
from storage.crypto import DataVault
from storage.db import SessionFactory
from storage.geo import PostcodeBook
from storage.vocabulary import ChannelKind


@dataclass(frozen=True)
class Timings:
    """How often the tip stream and the forwarder poll storage, and the webhook's backoff."""

    stream_poll_s: float = 1.0
    forwarder_poll_s: float = 1.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0


class TipServices:
    """The tip flow, its API routes, the control room's feed and the forwarding worker, wired together.

    The `senders` mapping is read when fetching media (and says whether Telegram carries the operators'
    chat); with a geocoder and the postcode table, tips' places are looked up for the map too.
    `on_queued` wakes the dispatcher after a commit that wrote a message out (the operators' chat, a
    question to a tipster).
    """

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        vault: DataVault,
        settings: Settings,
        clock: Callable[[], datetime],
        catalogue: Catalogue,
        senders: Mapping[ChannelKind, Channel],
        geocoder: Geocoder | None = None,
        book: PostcodeBook | None = None,
        rules: TipRules | None = None,
        http: httpx.AsyncClient | None = None,
        timings: Timings | None = None,
        stream_poll_s: float | None = None,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        timings = timings or Timings()
        if stream_poll_s is not None:
            timings = replace(timings, stream_poll_s=stream_poll_s)
        self._settings = settings
        self._timings = timings
        self._sessions, self._clock, self._vault = sessions, clock, vault
        self._catalogue, self._on_queued = catalogue, on_queued
        self.hub = TipHub()
        self.rules = replace(rules or TipRules(), webhook=webhook_configured(settings))
        chat = operators_chat(
            settings, catalogue=catalogue, vault=vault, carried=senders, on_queued=on_queued
        )
        self.flow = TipFlow(self.rules, on_stored=self.wake, chat=chat)
        self.flows: list[Flow] = [self.flow]
        self.forwarder = TipForwarder(
            sessions=sessions,
            settings=settings,
            clock=clock,
            http=http,
            poll_s=timings.forwarder_poll_s,
            backoff_base_s=timings.backoff_base_s,
            backoff_max_s=timings.backoff_max_s,
        )
        """The webhook worker (the operators' chat and questions go out through the dispatcher)."""
        self.places: TipPlaces | None = None
        if geocoder is not None and book is not None:
            self.places = TipPlaces(
                sessions=sessions,
                clock=clock,
                geocoder=geocoder,
                book=book,
                webhook=self.rules.webhook,
                on_placed=self._placed,
            )
        # Tips' photos and files come through the tip's own channel (`senders` is read when fetching).
        self.media = TipMediaFetcher(
            sessions=sessions,
            vault=vault,
            clock=clock,
            sources=senders,
            max_bytes=settings.tip_media_max_bytes,
            poll_s=timings.forwarder_poll_s,
            on_stored=self.hub.notify,
        )
        self._feed = StorageTipFeed(
            sessions=sessions, vault=vault, clock=clock, catalogue=catalogue, on_queued=on_queued
        )

    @property
    def feed(self) -> TipFeed:
        """The control room's tips (typed as the protocol, so mypy checks the storage feed fits it)."""
        return self._feed

    def wake(self, stored: TipStored | None = None) -> None:
        """A tip was stored: ring the stream and the webhook lane, and the workers it has work for (all of
        them when not told); safe from any thread."""
        self.hub.notify()
        self.forwarder.wake()
        if self.places is not None and (stored is None or stored.place):
            self.places.wake()
        if stored is None or stored.media:
            self.media.wake()

    def _placed(self) -> None:
        # A tip got its point: a new version for the streams and the webhook (not for the place finder).
        self.hub.notify()
        self.forwarder.wake()

    def api_router(self) -> APIRouter:
        """The `/api/v1` tip routes (bearer API_TOKEN)."""
        return tips_router(
            sessions=self._sessions,
            settings=self._settings,
            clock=self._clock,
            hub=self.hub,
            vault=self._vault,
            catalogue=self._catalogue,
            on_queued=self._on_queued,
            poll_s=self._timings.stream_poll_s,
        )

    def routes(self) -> list[APIRouter]:
        """The routes the tip subsystem serves: its API."""
        return [self.api_router()]

    async def start(self) -> None:
        """Start the webhook worker, the place finder and the media fetcher."""
        await self.forwarder.start()
        if self.places is not None:
            await self.places.start()
        await self.media.start()

    async def stop(self) -> None:
        """Stop the workers (what is unsent stays in the outbox)."""
        await self.media.stop()
        if self.places is not None:
            await self.places.stop()
        await self.forwarder.stop()
