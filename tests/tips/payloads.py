"""Real provider payloads (tests/channels/testdata) through the real parsers, sent by a test person."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from telegram import Bot, Update

from bot.channels.telegram_updates import incoming_from_update
from bot.channels.twilio_payloads import parse_message
from bot.messages import IncomingMessage

TESTDATA = Path(__file__).resolve().parents[1] / "channels" / "testdata"


def _json(folder: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((TESTDATA / folder / name).read_text(encoding="utf-8"))
    return data


def telegram_incoming(
    name: str, *, sender: str, received_at: datetime, code: str | None = None
) -> IncomingMessage:
    """A Telegram update from the testdata, as the channel parses it, from `sender`'s private chat.

    `code` replaces the testdata's example code (`BN-4821`) with a real action's."""
    data = _json("telegram", name)
    data["message"]["from"]["id"] = int(sender)
    data["message"]["chat"]["id"] = int(sender)
    if code is not None and "text" in data["message"]:
        data["message"]["text"] = data["message"]["text"].replace("BN-4821", code)
    update = Update.de_json(data, Bot("123:TEST"))
    incoming = incoming_from_update(update, received_at=received_at)
    assert incoming is not None
    return incoming


def whatsapp_incoming(name: str, *, sender: str, received_at: datetime) -> IncomingMessage:
    """A Twilio WhatsApp form from the testdata, as the channel parses it, from `sender`."""
    form = _json("twilio", name)
    form["From"] = "whatsapp:" + sender
    form["WaId"] = sender.lstrip("+")
    incoming = parse_message(form, received_at=received_at)
    # The testdata's reply points at someone else's message: the tests link by the sender's alert.
    return replace(incoming, reply_to_provider_id=None)
