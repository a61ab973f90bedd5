"""Where every verified, parsed message arrives: handled once, in order per sender.

The router writes the replies to the outbox in the step's own transaction and, after the commit, hands
them to the dispatcher running in this process (or wakes it); nothing is sent from here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bot.messages import IncomingMessage, OutgoingMessage
from storage.vocabulary import ChannelKind

Handler = Callable[[IncomingMessage], Awaitable[list[OutgoingMessage]]]


class Inbox:
    """Runs the router for each message, one at a time per sender."""

    def __init__(self, *, handle: Handler) -> None:
        self._handle = handle
        self._locks: dict[tuple[ChannelKind, str], asyncio.Lock] = {}

    async def receive(self, message: IncomingMessage) -> list[OutgoingMessage]:
        """Handle one message; returns the replies it queued (the dispatcher sends them).

        The router records the provider id in the step's transaction, so a retry after success is ignored
        and a handler that raises (the database stayed locked) leaves nothing behind: the error goes on,
        the webhook answers 503 and the provider's retry is handled.
        """
        lock = self._locks.setdefault((message.channel, message.sender), asyncio.Lock())
        try:
            async with lock:
                return await self._handle(message)
        finally:
            if not lock.locked():
                self._locks.pop((message.channel, message.sender), None)
