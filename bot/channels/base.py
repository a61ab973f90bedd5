"""The protocol every channel adapter implements: verify, parse, send."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from bot.messages import IncomingMessage, OutgoingMessage
from storage.vocabulary import ChannelKind

OnMessage = Callable[[IncomingMessage], Awaitable[object]]
"""What a channel hands each verified, parsed message to (the inbox's `receive`)."""


class SendError(Exception):
    """A send that did not go through; `retryable` says whether trying again makes sense."""

    retryable: bool = False

    def __init__(self, message: str, *, code: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class RetryableSendError(SendError):
    """The provider is busy or down for now (5xx, 429, time-out)."""

    retryable = True


class PermanentSendError(SendError):
    """This message will never go through this way (bad number, unsupported)."""

    retryable = False


class RecipientOptedOut(PermanentSendError):
    """The person blocked the bot or texted STOP at the provider (Telegram 403, Twilio 21610)."""


@dataclass(frozen=True)
class SendReceipt:
    """What a provider said when it accepted a message."""

    provider_id: str
    segments: int = 1


class Channel(Protocol):
    """What the dispatcher and the router need of a provider adapter."""

    kinds: frozenset[ChannelKind]

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        """Send one message; raise a `SendError` when it fails."""
        ...
