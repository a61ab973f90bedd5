"""Everything tip handling adds to the system, in one object the runtime builds and wires.

The runtime builds the router before the providers fill in the senders, so the tip flow exists before
the rest: `build_runtime` makes `TipServices.deferred(settings)` (or takes one with other timings), gives
`tips.flows` to the router, then binds the storage (`tips.bind(...)`) and adds the API routes, the forwarder's
start/stop hooks and the control room's feed to the runtime itself. With every object at hand,
`TipServices(sessions=..., vault=..., settings=..., clock=..., catalogue=..., senders=...)` does both.
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
from bot.flows.tip import TipFlow, TipRules
from bot.geocoder import Geocoder
from bot.texts import Catalogue
from bot.tips.api import tips_router
from bot.tips.feed import StorageTipFeed
from bot.tips.forwarder import TipForwarder, chat_configured, webhook_configured
from bot.tips.hub import TipHub
from bot.tips.media import TipMediaFetcher
from bot.tips.places import TipPlaces
from storage.crypto import DataVault
from storage.db import SessionFactory
from storage.geo import PostcodeBook
from storage.vocabulary import ChannelKind


class TipsNotBound(RuntimeError):
    """The tip services were used before `bind()`/`attach()` gave them storage and senders."""


@dataclass(frozen=True)
class Timings:
    """How often the tip stream and the forwarder poll storage, and the webhook's backoff."""

    stream_poll_s: float = 1.0
    forwarder_poll_s: float = 1.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0


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
        timings = Timings(stream_poll_s, forwarder_poll_s, backoff_base_s, backoff_max_s)
        self._setup(settings, rules=rules, timings=timings, http=http)
        self.bind(sessions=sessions, vault=vault, clock=clock, catalogue=catalogue, senders=senders)

    @classmethod
    def deferred(
        cls,
        settings: Settings,
        *,
        rules: TipRules | None = None,
        timings: Timings | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> TipServices:
        """The flow now (for the router), the rest at `bind()`/`attach()` once storage and senders exist."""
        tips = cls.__new__(cls)
        tips._setup(settings, rules=rules, timings=timings or Timings(), http=http)
        return tips

    def _setup(
        self, settings: Settings, *, rules: TipRules | None, timings: Timings, http: httpx.AsyncClient | None
    ) -> None:
        self._settings = settings
        self._timings = timings
        self._http = http
        self.hub = TipHub()
        self.rules = replace(
            rules or TipRules(), webhook=webhook_configured(settings), chat=chat_configured(settings)
        )
        self.flow = TipFlow(self.rules, on_stored=self.wake)
        self.flows: list[Flow] = [self.flow]
        self._forwarder: TipForwarder | None = None
        self.places: TipPlaces | None = None
        self.media: TipMediaFetcher | None = None
        self._feed: StorageTipFeed | None = None
        self._sessions: SessionFactory | None = None
        self._clock: Callable[[], datetime] | None = None
        self._vault: DataVault | None = None

    def bind(
        self,
        *,
        sessions: SessionFactory,
        vault: DataVault,
        clock: Callable[[], datetime],
        catalogue: Catalogue,
        senders: Mapping[ChannelKind, Channel],
        geocoder: Geocoder | None = None,
        book: PostcodeBook | None = None,
    ) -> None:
        """Give the services their storage, clock, texts and senders (the mapping is read when sending);
        with a geocoder and the postcode table, tips' places are looked up for the map too."""
        self._sessions, self._clock, self._vault = sessions, clock, vault
        if geocoder is not None and book is not None:
            self.places = TipPlaces(
                sessions=sessions,
                clock=clock,
                geocoder=geocoder,
                book=book,
                webhook=self.rules.webhook,
                on_placed=self._placed,
            )
        self._forwarder = TipForwarder(
            sessions=sessions,
            settings=self._settings,
            clock=clock,
            vault=vault,
            catalogue=catalogue,
            senders=senders,
            http=self._http,
            poll_s=self._timings.forwarder_poll_s,
            backoff_base_s=self._timings.backoff_base_s,
            backoff_max_s=self._timings.backoff_max_s,
        )
        # Tips' photos and files come through the tip's own channel (`senders` is read when fetching).
        self.media = TipMediaFetcher(
            sessions=sessions,
            vault=vault,
            clock=clock,
            sources=senders,
            max_bytes=self._settings.tip_media_max_bytes,
            poll_s=self._timings.forwarder_poll_s,
            on_stored=self.hub.notify,
        )
        self._feed = StorageTipFeed(
            sessions=sessions, vault=vault, clock=clock, on_queued=self._forwarder.wake
        )

    @property
    def forwarder(self) -> TipForwarder:
        """The outbox worker (webhook, operators' chat, operator questions)."""
        if self._forwarder is None:
            raise TipsNotBound("call bind() or attach() first")
        return self._forwarder

    @property
    def feed(self) -> TipFeed:
        """The control room's tips (typed as the protocol, so mypy checks the storage feed fits it)."""
        if self._feed is None:
            raise TipsNotBound("call bind() or attach() first")
        return self._feed

    def wake(self) -> None:
        """A tip was stored: ring the stream and the forward lanes; safe from any thread."""
        self.hub.notify()
        if self._forwarder is not None:
            self._forwarder.wake(questions=False)
        if self.places is not None:
            self.places.wake()
        if self.media is not None:
            self.media.wake()

    def _placed(self) -> None:
        # A tip got its point: a new version for the streams and the webhook (not for the place finder).
        self.hub.notify()
        if self._forwarder is not None:
            self._forwarder.wake(questions=False)

    def api_router(self) -> APIRouter:
        """The `/api/v1` tip routes (bearer API_TOKEN)."""
        if self._sessions is None or self._clock is None or self._vault is None:
            raise TipsNotBound("call bind() or attach() first")
        return tips_router(
            sessions=self._sessions,
            settings=self._settings,
            clock=self._clock,
            hub=self.hub,
            vault=self._vault,
            on_queued=self.forwarder.wake,
            poll_s=self._timings.stream_poll_s,
        )

    async def start(self) -> None:
        """Start the forwarding worker (webhook, operators' chat, operator questions) and the place finder."""
        await self.forwarder.start()
        if self.places is not None:
            await self.places.start()
        if self.media is not None:
            await self.media.start()

    async def stop(self) -> None:
        """Stop the forwarding worker (what is unsent stays in the outbox) and the place finder."""
        if self.media is not None:
            await self.media.stop()
        if self.places is not None:
            await self.places.stop()
        await self.forwarder.stop()
