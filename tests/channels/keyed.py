"""A stand-in for the router that behaves like it towards the outbox, and a one-shot dispatcher drain.

`KeyedHandler` records the provider id and queues its replies in one transaction, as the router does;
`drain` runs the real dispatcher once over the outbox into the given senders.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bot.alerts import AlertTexts
from bot.channels.base import Channel
from bot.config import load_settings
from bot.dispatch import Dispatcher, DrainReport
from bot.messages import IncomingMessage, OutgoingMessage, event_key
from bot.outbox import queue_messages
from bot.texts import Catalogue
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.events import record_first_time
from storage.models import OutboundKind
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock


@dataclass
class KeyedHandler:
    """Handles each provider message once and queues `reply(message)` in the same transaction."""

    sessions: SessionFactory
    vault: DataVault
    clock: FixedClock
    reply: Callable[[IncomingMessage], list[OutgoingMessage]]
    handled: list[IncomingMessage] = field(default_factory=list)

    def _step(self, message: IncomingMessage) -> list[OutgoingMessage]:
        key = event_key(message)
        with transaction(self.sessions) as session:
            if key is not None and not record_first_time(session, key=key, at=self.clock()):
                return []
            replies = self.reply(message)
            queue_messages(
                session,
                replies,
                vault=self.vault,
                kind=OutboundKind.REPLY,
                now=self.clock(),
                sender=(message.channel, message.sender),
            )
        self.handled.append(message)
        return replies

    async def __call__(self, message: IncomingMessage) -> list[OutgoingMessage]:
        # In a thread as the router's step: the webhook's in-band context goes along.
        return await asyncio.to_thread(self._step, message)


async def drain(
    sessions: SessionFactory, senders: Mapping[ChannelKind, Channel], clock: FixedClock, vault: DataVault
) -> DrainReport:
    """Send what the outbox holds now through the real dispatcher."""
    settings = load_settings()
    texts = AlertTexts.from_settings(Catalogue.load(), settings)
    return await Dispatcher(sessions, senders, clock, settings, vault=vault, texts=texts).drain()
