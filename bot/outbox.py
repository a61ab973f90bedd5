"""Messages out as outbox rows: what a flow, the scheduler or the tip forwarder writes, the dispatcher sends.

Every message leaves through the dispatcher (bot/dispatch.py); here an `OutgoingMessage` becomes a row in
the caller's transaction (storage/outbound.py) and a claimed row becomes an `OutgoingMessage` again.
A webhook that answers in its own response (a call's TwiML, the simulator) says so with `answered_in_band`:
the replies to the person writing are then recorded as sent by it, not sent again.

When the dispatcher runs in this process (`Handoff`), the rows are written already claimed by it and, once
the step has committed, handed to it in memory: no claim transaction and no decryption before a reply
goes out. Rows queued while it does not run stay unclaimed and are found by its next claim.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlmodel import Session

from bot.messages import IN_BAND, Keypad, OutgoingMessage
from storage.crypto import DataVault
from storage.db import after_commit
from storage.models import OutboundKind, OutboundMessage
from storage.outbound import ClaimedOutbound, queue_message
from storage.vocabulary import ChannelKind


class Handoff(Protocol):
    """A dispatcher in this process that takes messages straight after their step's commit."""

    def claimant(self) -> str | None:
        """The worker id to write rows claimed by, or None when it takes no hand-offs now."""
        ...

    def hand_off(self, rows: Sequence[ClaimedOutbound]) -> None:
        """Take committed rows claimed by `claimant()`; safe from any thread."""
        ...


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
    if message.keypad is not None:
        payload["keypad"] = message.keypad.value
    if message.language:
        payload["language"] = message.language
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
        language=p.get("language"),
        keypad=Keypad(p["keypad"]) if p.get("keypad") else None,
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
    handoff: Handoff | None = None,
) -> int:
    """Write messages to the outbox in the caller's transaction; returns how many wait for the dispatcher.

    `identity_id` is kept for messages to `sender` (the person writing), whose STOP wipes them; within
    `answered_in_band` those are recorded as sent by the webhook. After the commit the rows go to
    `handoff` when it takes them, else `on_queued` runs (it wakes the dispatcher).
    """
    in_band = IN_BAND.get()
    worker = handoff.claimant() if handoff is not None else None
    queued = 0
    handed: list[tuple[OutboundMessage, str, dict[str, Any]]] = []
    for message in messages:
        to_sender = sender is not None and (message.channel, message.recipient) == sender
        answer = in_band if to_sender else None
        payload = payload_of(message)
        row = queue_message(
            session,
            vault=vault,
            channel=message.channel,
            recipient=message.recipient,
            payload=payload,
            kind=kind,
            identity_id=identity_id if (to_sender or sender is None) else None,
            now=now,
            answered_in_band=answer,
            claimed_by=worker if answer is None else None,
        )
        if answer is None:
            queued += 1
            if worker is not None:
                handed.append((row, message.recipient, payload))
    if handed and handoff is not None:
        target = handoff

        def hand_off() -> None:
            # The ids exist once the commit flushed the rows (sessions do not expire on commit).
            target.hand_off(
                [
                    ClaimedOutbound(
                        id=row.id or 0,
                        channel=row.channel,
                        identity_id=row.identity_id,
                        lane=row.lane,
                        attempts=0,
                        recipient=recipient,
                        payload=payload,
                    )
                    for row, recipient, payload in handed
                ]
            )

        after_commit(session, hand_off)
    elif queued and on_queued is not None:
        after_commit(session, on_queued)
    return queued
