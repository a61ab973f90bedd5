"""Where every verified, parsed message arrives: handled once, in order per sender, replies sent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from bot.channels.base import Channel, SendError
from bot.messages import IncomingMessage, OutgoingMessage, event_key
from storage.db import SessionFactory, transaction
from storage.models import ProcessedEvent
from storage.vocabulary import ChannelKind

log = logging.getLogger(__name__)

Handler = Callable[[IncomingMessage], Awaitable[list[OutgoingMessage]]]


class Inbox:
    """Runs the router for each message and sends its replies on the sender's channel."""

    def __init__(
        self,
        *,
        handle: Handler,
        senders: Mapping[ChannelKind, Channel],
        sessions: SessionFactory,
        clock: Callable[[], datetime],
        handler_records_keys: bool = False,
    ) -> None:
        self._handle = handle
        # The router checks and records the provider id in its own step's transaction; checking and
        # recording it here as well would cost two more transactions per message for nothing.
        self._handler_records_keys = handler_records_keys
        self._senders = senders
        self._sessions = sessions
        self._clock = clock
        self._locks: dict[tuple[ChannelKind, str], asyncio.Lock] = {}

    def first_time(self, key: str) -> bool:
        """Record a provider event id; False when it was handled before (a provider retry)."""
        try:
            with transaction(self._sessions) as session:
                session.add(ProcessedEvent(key=key, at=self._clock()))
        except IntegrityError:
            return False
        return True

    def seen(self, key: str) -> bool:
        """Whether a provider event id was handled before."""
        with self._sessions() as session:
            return session.get(ProcessedEvent, key) is not None

    def _record(self, key: str) -> None:
        # The router records the id in its own transaction; this covers any other handler.
        try:
            with transaction(self._sessions) as session:
                if session.get(ProcessedEvent, key) is None:
                    session.add(ProcessedEvent(key=key, at=self._clock()))
        except IntegrityError:
            pass  # another worker recorded it at the same moment

    async def receive(self, message: IncomingMessage, *, send: bool = True) -> list[OutgoingMessage]:
        """Handle one message (once per provider id), then send the replies unless `send` is off.

        The id is recorded once the message was handled (by the router, in the same transaction, when
        `handler_records_keys` says so; else here, after the handler): a handler that raises (the
        database stayed locked) leaves nothing behind, the error goes on, the webhook answers 503 and
        the provider's retry is handled.
        """
        key = None if self._handler_records_keys else event_key(message)
        lock = self._locks.setdefault((message.channel, message.sender), asyncio.Lock())
        try:
            async with lock:
                # Checked under the sender's lock: a duplicate that arrives meanwhile waits, then sees it.
                # In threads: a query that waits for a locked database must not stall other requests.
                if key is not None and await asyncio.to_thread(self.seen, key):
                    log.info("duplicate %s message ignored", message.channel)
                    return []
                replies = await self._handle(message)
                if key is not None:
                    await asyncio.to_thread(self._record, key)
                if send:
                    for reply in replies:
                        await self.send(reply)
        finally:
            if not lock.locked():
                self._locks.pop((message.channel, message.sender), None)
        return replies

    async def send(self, reply: OutgoingMessage) -> None:
        """Send one reply on its channel; a failure is logged, the conversation goes on."""
        sender = self._senders.get(reply.channel)
        if sender is None:
            log.warning("no sender configured for channel %s", reply.channel)
            return
        try:
            await sender.send(reply)
        except SendError as exc:
            log.warning("reply on %s failed: %s (code %s)", reply.channel, type(exc).__name__, exc.code)
