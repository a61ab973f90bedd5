"""Where every verified, parsed message arrives: handled once, in order per sender, replies sent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from bot.channels.base import Channel, SendError
from bot.messages import ChannelKind, IncomingMessage, OutgoingMessage
from storage.db import SessionFactory, transaction
from storage.models import ProcessedEvent

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
    ) -> None:
        self._handle = handle
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

    def forget(self, key: str) -> None:
        """Drop a recorded event id again, so that the provider's next delivery of it is handled."""
        with transaction(self._sessions) as session:
            session.execute(delete(ProcessedEvent).where(ProcessedEvent.key == key))  # type: ignore[arg-type]

    async def receive(self, message: IncomingMessage, *, send: bool = True) -> list[OutgoingMessage]:
        """Handle one message (once per provider id), then send the replies unless `send` is off.

        A handler that raises (the database stayed locked) has written nothing: the id is forgotten
        again and the error goes on, so the webhook answers 503 and the provider's retry is handled.
        """
        key = f"{message.channel}:{message.provider_id}" if message.provider_id else None
        # In a thread: a commit that waits for a locked database must not stall every other request.
        if key is not None and not await asyncio.to_thread(self.first_time, key):
            log.info("duplicate %s message ignored", message.channel)
            return []
        lock = self._locks.setdefault((message.channel, message.sender), asyncio.Lock())
        async with lock:
            try:
                replies = await self._handle(message)
            except Exception:
                if key is not None:
                    await asyncio.to_thread(self._forget_quietly, key)
                raise
            if send:
                for reply in replies:
                    await self.send(reply)
        if not lock.locked():
            self._locks.pop((message.channel, message.sender), None)
        return replies

    def _forget_quietly(self, key: str) -> None:
        try:
            self.forget(key)
        except Exception as exc:  # noqa: BLE001 - the handler's own error is the one to report
            # Storage still down: the retry will count as a duplicate; say so, as that message is lost.
            log.error("could not forget a failed %s event: %s", key.split(":", 1)[0], type(exc).__name__)

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
