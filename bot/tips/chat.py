"""The operators' Telegram chat: each tip version as a short message, an outbound row the dispatcher sends.

The tip flow writes the row in the transaction that stores the tip version (storage/tips.py writes the
forward row for the stream and the webhook beside it). The chat's id is the control room's setting, not a
person's address; the row stores it encrypted like any recipient.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from bot.config import Settings
from bot.messages import OutgoingMessage
from bot.outbox import queue_messages
from bot.texts import Catalogue
from storage.crypto import DataVault
from storage.models import OutboundKind, Tip
from storage.tips import UPDATED, tip_json
from storage.vocabulary import ChannelKind

log = logging.getLogger(__name__)


def chat_text(payload: Mapping[str, Any], catalogue: Catalogue, *, event: str, tz: str) -> str:
    """A tip as a short message for the operators' chat (Dutch: the control room's language; local time)."""
    location = payload.get("location") or {}
    seen_at = payload.get("seen_at")
    when = (
        datetime.fromisoformat(seen_at).astimezone(ZoneInfo(tz)).strftime("%H:%M %d-%m") if seen_at else None
    )
    if payload.get("seen_text"):  # the tipster's words next to the time, or alone when they gave none
        phrase = f"‘{payload['seen_text']}’"
        when = f"{when} ({phrase})" if when else phrase
    where = location.get("text") or (
        f"{location['lat']:.5f}, {location['lon']:.5f}" if location.get("lat") is not None else None
    )
    facts = [
        ("where", where),
        ("when", when),
        ("direction", payload.get("direction")),
        ("plate", payload.get("vehicle_plate")),
        ("description", payload.get("description")),
        ("media", str(len(payload["media"])) if payload.get("media") else None),
    ]
    lines = "".join(
        "\n"
        + catalogue.render("nl", "tip.chat_fact", label=catalogue.render("nl", f"tip.label_{name}"), value=v)
        for name, v in facts
        if v
    )
    key = "tip.chat_updated" if event == UPDATED else "tip.chat"
    return (
        catalogue.render(
            "nl",
            key,
            id=payload.get("id"),
            code=payload.get("action_code"),
            channel=payload.get("channel"),
            reporter=payload.get("reporter"),
            text=payload.get("text") or "-",
        )
        + lines
    )


class OperatorsChat:
    """Queues a tip version's message to the operators' chat in the caller's transaction."""

    def __init__(
        self,
        *,
        chat_id: str,
        catalogue: Catalogue,
        vault: DataVault,
        tz: str,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self._chat_id = chat_id
        self._catalogue = catalogue
        self._vault = vault
        self._tz = tz
        self._on_queued = on_queued

    def __call__(self, session: Session, tip: Tip, *, action_code: str, event: str, now: datetime) -> None:
        """Write the outbound row for this version of the tip (the dispatcher is woken after the commit)."""
        text = chat_text(tip_json(tip, action_code=action_code), self._catalogue, event=event, tz=self._tz)
        queue_messages(
            session,
            [OutgoingMessage(channel=ChannelKind.TELEGRAM, recipient=self._chat_id, text=text)],
            vault=self._vault,
            kind=OutboundKind.OPERATOR_CHAT,
            now=now,
            on_queued=self._on_queued,
        )


def operators_chat(
    settings: Settings,
    *,
    catalogue: Catalogue,
    vault: DataVault,
    carried: Container[ChannelKind],
    on_queued: Callable[[], None] | None = None,
) -> OperatorsChat | None:
    """The operators' chat when CONTROLROOM_TELEGRAM_CHAT_ID is set and Telegram is carried, else None."""
    chat_id = settings.controlroom.telegram_chat_id
    if not chat_id:
        return None
    if ChannelKind.TELEGRAM not in carried:
        log.warning("CONTROLROOM_TELEGRAM_CHAT_ID is set but Telegram is not configured: no operators' chat")
        return None
    return OperatorsChat(
        chat_id=chat_id, catalogue=catalogue, vault=vault, tz=settings.timezone, on_queued=on_queued
    )
