"""Fetches tips' photos and files in the background and keeps them encrypted, for operators to see.

The webhook only stores the provider's reference with the tip and rings a bell (`wake`); the fetch runs
here, so a slow provider never delays a tip. The file comes through the tip's own channel (only it holds
the provider's credentials) and is stored encrypted with DATA_KEY; operators see it from our own origin.
A provider that is down is asked again with a growing pause; after a few tries, or for a file that is
too large or of a type we do not take, the file is marked refused and the control room says why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from bot.channels.media import FetchedMedia, MediaRefused, MediaSource, MediaUnavailable
from bot.tips.worker import GATHER_S, WakeableWorker
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.tip_media import MediaToFetch, claim_media, refuse_media, retry_media, store_media
from storage.vocabulary import ChannelKind

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


class TipMediaFetcher(WakeableWorker):
    """The background worker that fetches tips' files through their channels and stores them encrypted."""

    name = "tip-media"

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        vault: DataVault,
        clock: Callable[[], datetime],
        sources: Mapping[ChannelKind, object],
        max_bytes: int,
        poll_s: float = 5.0,
        gather_s: float = GATHER_S,
        lease: timedelta = timedelta(minutes=2),
        backoff_base_s: float = 5.0,
        backoff_max_s: float = 600.0,
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._vault = vault
        self._clock = clock
        self._sources = sources
        self._max_bytes = max_bytes
        self._lease = lease
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._on_stored = on_stored
        super().__init__(poll_s=poll_s, gather_s=gather_s)

    async def step(self) -> int:
        """Fetch every file that is due, once each; how many were stored or refused for good."""
        done = 0
        while not self._stopping:
            claimed = await asyncio.to_thread(self._claim)
            for media in claimed:
                done += await self._fetch_one(media)
            if len(claimed) < 10:
                break
        return done

    def _claim(self) -> list[MediaToFetch]:
        with transaction(self._sessions) as session:
            return claim_media(session, now=self._clock(), lease=self._lease)

    async def _fetch_one(self, media: MediaToFetch) -> int:
        source = self._sources.get(media.channel)
        try:
            if not isinstance(source, MediaSource):
                # The channel is not wired here (no credentials): nobody could ever fetch this file.
                raise MediaRefused("no_channel")
            fetched = await source.fetch_media(media.ref, max_bytes=self._max_bytes)
        except MediaRefused as exc:
            log.info("tip media %s refused: %s", media.id, exc.reason)
            await asyncio.to_thread(self._refuse, media.id, exc.reason)
            return 1
        except MediaUnavailable as exc:
            if media.attempts + 1 >= MAX_ATTEMPTS:
                await asyncio.to_thread(self._refuse, media.id, "unavailable")
                return 1
            pause = min(self._backoff_max_s, self._backoff_base_s * 2**media.attempts)
            log.info("tip media %s not fetched (%s); again in %.0f s", media.id, exc, pause)
            at = self._clock() + timedelta(seconds=pause)
            await asyncio.to_thread(self._retry, media.id, at, str(exc) or type(exc).__name__)
            return 0
        await asyncio.to_thread(self._store, media.id, fetched)
        return 1

    def _store(self, media_id: int, fetched: FetchedMedia) -> None:
        token = self._vault.encrypt_bytes(fetched.data)
        with transaction(self._sessions) as session:
            store_media(
                session,
                media_id=media_id,
                data_enc=token,
                content_type=fetched.content_type,
                size=len(fetched.data),
                now=self._clock(),
            )
        if self._on_stored is not None:
            self._on_stored()

    def _refuse(self, media_id: int, reason: str) -> None:
        with transaction(self._sessions) as session:
            refuse_media(session, media_id=media_id, reason=reason, now=self._clock())
        if self._on_stored is not None:
            self._on_stored()

    def _retry(self, media_id: int, at: datetime, reason: str) -> None:
        with transaction(self._sessions) as session:
            retry_media(session, media_id=media_id, at=at, reason=reason)
