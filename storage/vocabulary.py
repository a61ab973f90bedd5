"""The words every layer shares: the channels, the states of a delivery, a point, a provider's receipt.

They live at the bottom (in `storage`, which records them) so that storage never imports from `bot`;
`bot.messages` adds the messages themselves on top of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ChannelKind(StrEnum):
    """A way a person reaches us and we reach them."""

    TELEGRAM = "telegram"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    VOICE = "voice"


@dataclass(frozen=True)
class GeoPoint:
    """A latitude/longitude pair in WGS84."""

    lat: float
    lon: float


class DeliveryStatus(StrEnum):
    """Where a message is on its way to a person."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    UNDELIVERED = "undelivered"
    FAILED = "failed"


# What counts as a message that reached the person (the provider took it, or better).
RECEIVED = (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ)


@dataclass(frozen=True)
class StatusUpdate:
    """A provider's receipt for a message we sent."""

    channel: ChannelKind
    provider_id: str
    status: DeliveryStatus
    error_code: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    key: str = field(default="", compare=False)
    """What makes this receipt unique at the provider (a retry carries the same key); empty if unknown."""
