"""One send rate per channel and sender for the whole installation, however many processes send.

On PostgreSQL, where `serve --workers N` and other machines share the outbox, each lane of the
dispatcher takes its slots from a row in `send_budget` (storage/send_budget.py): the database hands out
consecutive slots, so Twilio sees at most `DISPATCH_RATE_SMS` a second per sender and Telegram at most
`DISPATCH_RATE_TELEGRAM` (30/s) per bot, summed over every process. A process reserves a few slots per
round trip (a lease of about `LEASE_S` worth of sends) to keep the database out of the way at high
rates; slots it cannot use in time are dropped, so a stalled process never bursts afterwards. On SQLite
one process owns the outbox (`--workers` > 1 is refused there) and the in-process `TokenBucket` is enough.

Telegram's 1/s per chat and 20/min per group stay per process (`ChatPacer` and PTB's `AIORateLimiter`
in bot/channels/telegram.py): the outbox holds one row per chat for an alert or a closing, and a row is
claimed by one worker, so two processes write to the same chat in the same second only when two
different messages for it are due at once; Telegram then answers 429 with `retry_after`, which the
limiter does not retry (`max_retries=0`) and the dispatcher turns into a rescheduled retry of that row.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

from sqlalchemy.engine import Connection, Engine

from bot.config import Settings
from storage.send_budget import ensure_budget, reserve_slots
from storage.vocabulary import ChannelKind

Sleep = Callable[[float], Awaitable[None]]
# How many seconds of sends one reservation covers: one round trip per ~50 ms keeps the database cost
# negligible at any rate and the slots a stopping process leaves unused few.
LEASE_S = 0.05
# How late a slot may still be used, as a share of the interval; later ones are given up.
LATE_SHARE = 0.25


def sender_of(settings: Settings, kind: ChannelKind) -> str:
    """Whose limit a channel's sends count against: the bot (Telegram) or the sending number (Twilio)."""
    if kind is ChannelKind.TELEGRAM:
        return (settings.telegram.bot_token or "").split(":", 1)[0] or "bot"
    sender = {
        ChannelKind.SMS: settings.twilio.sms_from,
        ChannelKind.WHATSAPP: settings.twilio.whatsapp_from,
        ChannelKind.VOICE: settings.twilio.voice_from,
    }.get(kind)
    return (sender or "default")[:64]


class SharedBucket:
    """Lets `rate` sends a second through across every process sharing the database (rate 0: no limit)."""

    def __init__(
        self,
        engine: Engine,
        *,
        channel: ChannelKind,
        sender: str,
        rate: float,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self._engine = engine
        self._channel = channel.value
        self._sender = sender
        self._interval = 1 / rate if rate > 0 else 0.0
        self._lease = max(1, round(rate * LEASE_S))
        self._monotonic = monotonic
        self._sleep = sleep
        self._slots: deque[float] = deque()
        self._conn: Connection | None = None
        self._round_trip = float("inf")
        self._offset = 0.0

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            ensure_budget(self._conn, channel=self._channel, sender=self._sender)
        return self._conn

    def _reserve(self) -> None:
        # One short autocommit statement: the row lock is held for microseconds, not across a send.
        before = self._monotonic()
        first, server_now = reserve_slots(
            self._connection(),
            channel=self._channel,
            sender=self._sender,
            count=self._lease,
            interval=self._interval,
        )
        after = self._monotonic()
        # The slots are on the server's clock; the quickest round trip so far maps it onto ours best,
        # so that one slow answer does not shift a slot towards the next process's.
        if after - before < self._round_trip:
            self._round_trip = after - before
            self._offset = (before + after) / 2 - server_now
        start = first + self._offset
        self._slots.extend(start + n * self._interval for n in range(self._lease))

    async def acquire(self) -> None:
        """Wait until one send may go."""
        if self.rate <= 0:
            return
        while True:
            if not self._slots:
                self._reserve()
            slot = self._slots.popleft()
            now = self._monotonic()
            # A slot missed by more than a quarter interval went by unused: sending in it now would
            # crowd the slots other processes hold.
            if slot >= now - self._interval * LATE_SHARE:
                break
        if slot > now:
            await self._sleep(slot - now)

    def close(self) -> None:
        """Give the connection back."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
