"""Puts tips on the map: looks up the place a tip names, inside the action's area, after the tip is stored.

The tip path only rings a bell (`wake`); the lookup runs here, in the background, so a slow or dead
geocoder never delays a tip. An answer outside the action's area (another town's "Stationsplein") is
dropped: a tip without a marker is better than a marker in the wrong town.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from bot.geocoder import Found, Geocoder, Near, area_near
from bot.tips.worker import GATHER_S, WakeableWorker
from storage.db import SessionFactory, transaction
from storage.geo import PostcodeBook
from storage.tip_places import PlaceToFind, forward_point, set_tip_point, tips_awaiting_place

log = logging.getLogger(__name__)

# Towns and municipalities are too coarse for a marker unless the tipster named them.
COARSE = frozenset({"woonplaats", "gemeente"})
# Centres whose town is remembered; more actions than this at once is not a real control room.
TOWNS_KEPT = 256


class TipPlaces(WakeableWorker):
    """The background worker that gives tips the coordinates of the place they name."""

    name = "tip-places"

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        clock: Callable[[], datetime],
        geocoder: Geocoder,
        book: PostcodeBook,
        poll_s: float = 5.0,
        gather_s: float = GATHER_S,
        lookback: timedelta = timedelta(minutes=10),
        batch: int = 50,
        webhook: bool = False,
        on_placed: Callable[[], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._geocoder = geocoder
        self._book = book
        self._lookback = lookback
        self._batch = batch
        self._webhook = webhook
        self._on_placed = on_placed
        self._after: tuple[datetime, int] = (datetime.min.replace(tzinfo=UTC), 0)
        # An action's centre hardly ever changes, and finding its town looks at every postcode area.
        self._towns: dict[tuple[float, float], str | None] = {}
        super().__init__(poll_s=poll_s, gather_s=gather_s)

    async def step(self) -> int:
        """Look up the place of every tip that waits for one, once each; how many tips got coordinates."""
        since = self._clock() - self._lookback
        # Resume after the last tip looked at, but never look further back than the lookback.
        cursor = max(self._after, (since, 0))
        placed = 0
        while True:
            waiting = await asyncio.to_thread(self._waiting, cursor)
            for tip in waiting:
                cursor = (tip.updated_at, tip.tip_id)
                found = await self.locate_first((*tip.places, tip.text), tip.area)
                if found is not None:
                    # Strictly later than the tip's last change, so the live page's stream sends it again.
                    at = max(self._clock(), tip.updated_at + timedelta(microseconds=1))
                    placed += await asyncio.to_thread(self._store, tip.tip_id, found, at)
            self._after = cursor
            if len(waiting) < self._batch:
                return placed

    async def locate_first(self, queries: Sequence[str], area: dict[str, object]) -> Found | None:
        """The first of a tip's place queries (most specific first) found in its action's area."""
        for query in dict.fromkeys(queries):
            found = await self.locate(query, area)
            if found is not None:
                return found
        return None

    async def locate(self, text: str, area: dict[str, object]) -> Found | None:
        """The place a tip names, inside (or near) its action's area; None when there is none."""
        near = area_near(area, self._book)
        if near is None or not text.strip():
            return None
        found = await self._geocoder.free(text, near=near, limit=5)
        if found:
            return found[0]
        # "Oude Markt" alone: ask again with the area's town, but then only for a street or an address.
        town = self._town(near)
        if town and town.casefold() not in text.casefold():
            for answer in await self._geocoder.free(f"{text} {town}", near=near, limit=5):
                if answer.kind not in COARSE:
                    return answer
        return None

    def _town(self, near: Near) -> str | None:
        centre = (near.lat, near.lon)
        if centre not in self._towns:
            if len(self._towns) >= TOWNS_KEPT:
                self._towns.clear()
            try:
                self._towns[centre] = self._book.nearest(near.lat, near.lon, math.inf).place
            except LookupError:
                self._towns[centre] = None
        return self._towns[centre]

    def _waiting(self, after: tuple[datetime, int]) -> list[PlaceToFind]:
        with self._sessions() as session:
            return tips_awaiting_place(session, after=after, limit=self._batch)

    def _store(self, tip_id: int, found: Found, at: datetime) -> int:
        with transaction(self._sessions) as session:
            if not set_tip_point(session, tip_id=tip_id, lat=found.lat, lon=found.lon, now=at):
                return 0
            forward_point(session, tip_id=tip_id, now=at, webhook=self._webhook)
        if self._on_placed is not None:
            self._on_placed()
        return 1
