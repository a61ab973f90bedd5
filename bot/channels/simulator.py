"""The built-in simulator: chat as an SMS, WhatsApp or Telegram user from the browser or the terminal."""

from __future__ import annotations

import itertools
from collections import defaultdict, deque
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from bot.channels.base import SendReceipt
from bot.inbox import Inbox
from bot.messages import ChannelKind, GeoPoint, IncomingMessage, OutgoingMessage

MAX_TEXT = 10_000
MAILBOX_SIZE = 200


class SimulatedMessage(BaseModel):
    """What the simulator page posts: one message from a simulated person."""

    channel: Literal["sms", "whatsapp", "telegram"]
    sender: str = Field(min_length=1, max_length=64)
    text: str = Field(default="", max_length=MAX_TEXT)
    lat: float | None = None
    lon: float | None = None
    contact_phone: str | None = Field(default=None, max_length=40)


class SimulatedReply(BaseModel):
    """One message the bot sent to a simulated person."""

    id: int
    channel: str
    recipient: str
    text: str
    buttons: list[str]
    request_contact: bool
    request_location: bool


class SimulatorChannel:
    """A channel that keeps what the bot sends in a mailbox per person, for the page to show."""

    kinds = frozenset({ChannelKind.SMS, ChannelKind.WHATSAPP, ChannelKind.TELEGRAM, ChannelKind.VOICE})

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._mailboxes: dict[tuple[str, str], deque[SimulatedReply]] = defaultdict(
            lambda: deque(maxlen=MAILBOX_SIZE)
        )

    def record(self, message: OutgoingMessage) -> SimulatedReply:
        """Put a message in the recipient's mailbox and return it as the page shows it."""
        reply = SimulatedReply(
            id=next(self._ids),
            channel=message.channel.value,
            recipient=message.recipient,
            text=message.text,
            buttons=list(message.buttons),
            request_contact=message.request_contact,
            request_location=message.request_location,
        )
        self._mailboxes[(message.channel.value, message.recipient)].append(reply)
        return reply

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        """Deliver a message to the simulated person's mailbox."""
        reply = self.record(message)
        return SendReceipt(provider_id=f"SIM{reply.id}")

    def mailbox(self, channel: str, recipient: str, after: int = 0) -> list[SimulatedReply]:
        """The messages for one person newer than `after`."""
        return [m for m in self._mailboxes.get((channel, recipient), ()) if m.id > after]


def simulator_router(
    *, inbox: Inbox, simulator: SimulatorChannel, clock: Callable[[], datetime]
) -> APIRouter:
    """`POST /simulator/messages`, `GET /simulator/messages` and the `/simulator` page."""
    router = APIRouter(tags=["simulator"])
    templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

    @router.get("/simulator", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(request, "simulator.html", {})

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
        replies = await inbox.receive(message, send=False)
        return [simulator.record(reply) for reply in replies]

    @router.get("/simulator/messages")
    async def get_messages(
        channel: Annotated[str, Query(max_length=16)],
        recipient: Annotated[str, Query(max_length=64)],
        after: int = 0,
    ) -> list[SimulatedReply]:
        """Messages the bot sent to a simulated person on its own (alerts, closing messages)."""
        return simulator.mailbox(channel, recipient, after)

    return router
