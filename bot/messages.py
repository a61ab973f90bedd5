"""Channel-agnostic messages: what flows read and write, whatever the provider.

The words they are made of (`ChannelKind`, `GeoPoint`, `DeliveryStatus`, `StatusUpdate`) are in
`storage.vocabulary`, the lowest layer that records them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from storage.vocabulary import ChannelKind, GeoPoint


@dataclass(frozen=True)
class IncomingMessage:
    """One message from a person, normalised at the channel's edge."""

    channel: ChannelKind
    sender: str
    """Phone number (E.164) for SMS/WhatsApp/voice, the chat id for Telegram."""
    text: str
    received_at: datetime
    provider_id: str | None = None
    location: GeoPoint | None = None
    media: tuple[str, ...] = ()
    contact_phone: str | None = None
    """A phone number the sender shared as their own (Telegram contact)."""
    reply_to_provider_id: str | None = None
    start_payload: str | None = None
    """Deep-link payload, e.g. `BN-4821` from `/start BN-4821`."""
    group_id: str | None = None
    """Set when the message was written in a group chat rather than a private one."""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


def event_key(message: IncomingMessage) -> str | None:
    """The key a provider's message is recorded under once handled (`sms:SM…`, `telegram:update:…`)."""
    return f"{message.channel}:{message.provider_id}" if message.provider_id else None


class Keypad(StrEnum):
    """How a question asked in a call is answered on the phone's keys."""

    ONE_KEY = "one_key"
    """A single key (1 for yes; the question says which key is no)."""
    DIGITS = "digits"
    """Several digits, ended by the hash key (a postcode, a house number)."""


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to a person; `buttons` become a reply keyboard where the channel has one."""

    channel: ChannelKind
    recipient: str
    text: str
    buttons: tuple[str, ...] = ()
    request_contact: bool = False
    request_location: bool = False
    template_sid: str | None = None
    template_variables: Mapping[str, str] | None = None
    photo_url: str | None = None
    """A photo to show with the text (an action's), at a URL the provider fetches itself."""
    language: str | None = None
    """The catalogue language the text is in, where a channel needs it (a call speaks with its voice)."""
    call_menu: bool = False
    """On a call: say the text twice, then offer the control room (1) and a spoken tip (2): an alert."""
    keypad: Keypad | None = None
    """A question asked in a call: how it is answered; None when nothing is asked (the call may end)."""


# Set while a webhook hands a message on whose replies it speaks itself: the call's (or a session's) id.
IN_BAND: ContextVar[str | None] = ContextVar("answered_in_band", default=None)


@contextmanager
def answered_in_band(answer_id: str) -> Iterator[None]:
    """Within this block, replies to the sender are recorded as answered in the webhook's response."""
    token = IN_BAND.set(answer_id or "in-band")
    try:
        yield
    finally:
        IN_BAND.reset(token)
