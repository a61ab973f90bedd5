"""The built-in simulator: chat as an SMS, WhatsApp or Telegram user from the browser or the terminal.

The simulator keeps each simulated person's conversation (what they wrote and what the bot sent, also
while the page was closed) in memory, so that a reload shows it again. Phone numbers travel in request
bodies only: the server logs every URL.
"""

from __future__ import annotations

import itertools
import uuid
from collections import defaultdict, deque
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from bot.channels.base import SendReceipt
from bot.channels.segments import count_segments
from bot.clock import Clock, utcnow
from bot.messages import IncomingMessage, OutgoingMessage, answered_in_band
from storage.vocabulary import ChannelKind, GeoPoint

MAX_TEXT = 10_000
MAILBOX_SIZE = 200
# One default person per channel, for the page and `run_bot.py console` alike, so that someone registered
# in one is the same person in the other. Telegram knows a person by chat id; the number is what its
# "share my number" button hands over (Telegram's own account number, never the chat id).
DEFAULT_SENDERS: dict[ChannelKind, str] = {
    ChannelKind.SMS: "+31612345678",
    ChannelKind.WHATSAPP: "+31612345678",
    ChannelKind.TELEGRAM: "100200300",
}
DEFAULT_TELEGRAM_PHONE = "+31612345678"

SimulatedChannel = Literal["sms", "whatsapp", "telegram"]


class SimulatedMessage(BaseModel):
    """What the simulator page posts: one message from a simulated person."""

    channel: SimulatedChannel
    sender: str = Field(min_length=1, max_length=64)
    text: str = Field(default="", max_length=MAX_TEXT)
    lat: float | None = None
    lon: float | None = None
    contact_phone: str | None = Field(default=None, max_length=40)


class SimulatedPerson(BaseModel):
    """One simulated person: a channel and the sender's phone number or chat id."""

    channel: SimulatedChannel
    sender: str = Field(min_length=1, max_length=64)


class HistoryQuery(SimulatedPerson):
    """A person's conversation from an entry on (`after`: the last entry the page has)."""

    after: int = Field(default=0, ge=0)


class SmsText(BaseModel):
    """A text being typed, to count its SMS parts."""

    text: str = Field(default="", max_length=MAX_TEXT)


class SmsParts(BaseModel):
    """How many SMS parts a text takes, in which encoding, with how many units (septets or UTF-16)."""

    parts: int
    encoding: str
    units: int


class SimulatedReply(BaseModel):
    """One entry of a simulated conversation: a message of the bot or (`from_person`) of the person."""

    id: int
    channel: str
    recipient: str
    text: str
    buttons: list[str]
    request_contact: bool
    request_location: bool
    at: datetime
    from_person: bool = False
    sms_parts: int | None = None
    """For SMS: the parts this text takes on the air."""
    contact_phone: str | None = None
    location: tuple[float, float] | None = None
    photo_url: str | None = None
    """A photo the bot sent with the text (an action's, on the chats)."""


def sms_parts(text: str) -> SmsParts:
    """The SMS parts of a text, as `bot.channels.segments` counts them for the cost report."""
    count = count_segments(text)
    return SmsParts(parts=count.segments, encoding=count.encoding.value, units=count.units)


class SimulatorChannel:
    """A channel that keeps each simulated person's conversation, for the page to show (and show again)."""

    kinds = frozenset({ChannelKind.SMS, ChannelKind.WHATSAPP, ChannelKind.TELEGRAM, ChannelKind.VOICE})

    def __init__(self, clock: Clock = utcnow) -> None:
        self._clock = clock
        self._ids = itertools.count(1)
        self._mailboxes: dict[tuple[str, str], deque[SimulatedReply]] = defaultdict(
            lambda: deque(maxlen=MAILBOX_SIZE)
        )

    def record(self, message: OutgoingMessage) -> SimulatedReply:
        """Put a message of the bot in the recipient's conversation and return it as the page shows it."""
        return self._keep(
            channel=message.channel.value,
            person=message.recipient,
            text=message.text,
            buttons=list(message.buttons),
            request_contact=message.request_contact,
            request_location=message.request_location,
            photo_url=message.photo_url,
        )

    def record_incoming(self, message: IncomingMessage) -> SimulatedReply:
        """Put what the simulated person wrote (or shared) in their conversation."""
        where = message.location
        return self._keep(
            channel=message.channel.value,
            person=message.sender,
            text=message.text,
            from_person=True,
            contact_phone=message.contact_phone,
            location=(where.lat, where.lon) if where is not None else None,
            at=message.received_at,
        )

    def _keep(
        self, *, channel: str, person: str, text: str, at: datetime | None = None, **fields: object
    ) -> SimulatedReply:
        entry = SimulatedReply.model_validate(
            {
                "buttons": [],
                "request_contact": False,
                "request_location": False,
                **fields,
                "id": next(self._ids),
                "channel": channel,
                "recipient": person,
                "text": text,
                "at": at or self._clock(),
                "sms_parts": count_segments(text).segments if channel == ChannelKind.SMS.value else None,
            }
        )
        self._mailboxes[(channel, person)].append(entry)
        return entry

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        """Deliver a message to the simulated person's conversation."""
        reply = self.record(message)
        return SendReceipt(provider_id=f"SIM{reply.id}")

    def mailbox(self, channel: str, recipient: str, after: int = 0) -> list[SimulatedReply]:
        """The bot's messages for one person newer than `after`."""
        return [m for m in self.history(channel, recipient, after) if not m.from_person]

    def history(self, channel: str, person: str, after: int = 0) -> list[SimulatedReply]:
        """One person's conversation newer than `after`, oldest first; on SMS with their voice calls."""
        kinds = [channel, ChannelKind.VOICE.value] if channel == ChannelKind.SMS.value else [channel]
        entries = [m for kind in kinds for m in self._mailboxes.get((kind, person), ()) if m.id > after]
        return sorted(entries, key=lambda m: m.id)

    def forget(self, channel: str, person: str) -> None:
        """Drop one person's conversation from the simulator (what is stored about them stays)."""
        kinds = [channel, ChannelKind.VOICE.value] if channel == ChannelKind.SMS.value else [channel]
        for kind in kinds:
            self._mailboxes.pop((kind, person), None)


class Receiver(Protocol):
    """What the simulator hands a message to (`bot.inbox.Inbox`, which stands above the channels)."""

    async def receive(self, message: IncomingMessage) -> list[OutgoingMessage]:
        """Handle one message; the replies it queued."""
        ...


def simulator_router(*, inbox: Receiver, simulator: SimulatorChannel, clock: Clock) -> APIRouter:
    """`POST /simulator/messages`, the page's history, reset and SMS counter, and the `/simulator` page."""
    router = APIRouter(tags=["simulator"])
    templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
    defaults = {
        "senders": {kind.value: sender for kind, sender in DEFAULT_SENDERS.items()},
        "telegram_phone": DEFAULT_TELEGRAM_PHONE,
    }

    @router.get("/simulator", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(request, "simulator.html", {"defaults": defaults})

    @router.post("/simulator/messages")
    async def post_message(body: SimulatedMessage) -> list[SimulatedReply]:
        """Send a message as a simulated person; the bot's replies come back at once."""
        channel = ChannelKind(body.channel)
        if channel is not ChannelKind.TELEGRAM and not body.sender.lstrip("+").isdigit():
            raise HTTPException(422, "sender must be a phone number for sms and whatsapp")
        location = GeoPoint(body.lat, body.lon) if body.lat is not None and body.lon is not None else None
        message = IncomingMessage(
            channel=channel,
            sender=body.sender,
            text=body.text,
            received_at=clock(),
            location=location,
            contact_phone=body.contact_phone,
        )
        simulator.record_incoming(message)
        # The page shows the replies in this response: recorded as sent in-band, not sent again.
        with answered_in_band(f"simulator:{uuid.uuid4().hex[:12]}"):
            replies = await inbox.receive(message)
        return [simulator.record(reply) for reply in replies]

    @router.post("/simulator/history")
    async def history(body: HistoryQuery) -> list[SimulatedReply]:
        """A simulated person's conversation after an entry: theirs and the bot's, alerts included."""
        return simulator.history(body.channel, body.sender, body.after)

    @router.post("/simulator/reset", status_code=204)
    async def reset(body: SimulatedPerson) -> Response:
        """Clear a simulated person's conversation on the page (STOP is what erases their data)."""
        simulator.forget(body.channel, body.sender)
        return Response(status_code=204)

    @router.post("/simulator/sms-parts")
    async def parts(body: SmsText) -> SmsParts:
        """How many SMS parts a text takes, for the counter under the input."""
        return sms_parts(body.text)

    return router
