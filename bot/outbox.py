"""Messages out as outbox rows: what a flow, the scheduler or the tip forwarder writes, the dispatcher sends.

Every message leaves through the dispatcher (bot/dispatch.py); here an `OutgoingMessage` becomes a row in
the caller's transaction (storage/outbound.py) and a claimed row becomes an `OutgoingMessage` again.
A webhook that answers in its own response (a call's TwiML, the simulator) says so with `answered_in_band`:
the replies to the person writing are then recorded as sent by it, not sent again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session

from bot.messages import IN_BAND, OutgoingMessage
from storage.crypto import DataVault
from storage.db import after_commit
from storage.models import OutboundKind
from storage.outbound import ClaimedOutbound, queue_message
from storage.vocabulary import ChannelKind


def payload_of(message: OutgoingMessage) -> dict[str, Any]:
    """What a row keeps of a message: its text and the channel's extras (keyboard, template)."""
    payload: dict[str, Any] = {"text": message.text}
    if message.buttons:
        payload["buttons"] = list(message.buttons)
    if message.request_contact:
        payload["request_contact"] = True
    if message.request_location:
        payload["request_location"] = True
    if message.template_sid:
        payload["template_sid"] = message.template_sid
        payload["template_variables"] = dict(message.template_variables or {})
    return payload


def message_of(row: ClaimedOutbound) -> OutgoingMessage | None:
    """The message to send for a claimed row; None when its recipient or text was wiped."""
    if row.recipient is None or row.payload is None:
        return None
    p = row.payload
    return OutgoingMessage(
        channel=row.channel,
        recipient=row.recipient,
        text=str(p.get("text", "")),
        buttons=tuple(p.get("buttons", ())),
        request_contact=bool(p.get("request_contact", False)),
        request_location=bool(p.get("request_location", False)),
        template_sid=p.get("template_sid"),
        template_variables=p.get("template_variables"),
    )


def queue_messages(
    session: Session,
    messages: Sequence[OutgoingMessage],
    *,
    vault: DataVault,
    kind: OutboundKind,
    now: datetime,
    identity_id: int | None = None,
    sender: tuple[ChannelKind, str] | None = None,
    on_queued: Callable[[], None] | None = None,
) -> int:
    """Write messages to the outbox in the caller's transaction; returns how many wait for the dispatcher.

    `identity_id` is kept for messages to `sender` (the person writing), whose STOP wipes them; within
    `answered_in_band` those are recorded as sent by the webhook. `on_queued` runs after the commit.
    """
    in_band = IN_BAND.get()
    queued = 0
    for message in messages:
        to_sender = sender is not None and (message.channel, message.recipient) == sender
        answer = in_band if to_sender else None
        queue_message(
            session,
            vault=vault,
            channel=message.channel,
            recipient=message.recipient,
            payload=payload_of(message),
            kind=kind,
            identity_id=identity_id if (to_sender or sender is None) else None,
            now=now,
            answered_in_band=answer,
        )
        queued += answer is None
    if queued and on_queued is not None:
        after_commit(session, on_queued)
    return queued
