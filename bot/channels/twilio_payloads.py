"""Twilio webhook forms to our messages: inbound SMS/WhatsApp, voice input and delivery receipts."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping
from datetime import datetime

from bot.channels.twilio_media import accepted_media_url
from bot.messages import IncomingMessage
from storage.phones import InvalidPhoneNumber, to_e164
from storage.vocabulary import ChannelKind, DeliveryStatus, GeoPoint, StatusUpdate

log = logging.getLogger(__name__)

WHATSAPP_PREFIX = "whatsapp:"
MAX_MEDIA = 10  # Twilio delivers at most 10 media items per message

MESSAGE_STATUSES = {
    "accepted": DeliveryStatus.QUEUED,
    "scheduled": DeliveryStatus.QUEUED,
    "queued": DeliveryStatus.QUEUED,
    "sending": DeliveryStatus.SENDING,
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "undelivered": DeliveryStatus.UNDELIVERED,
    "failed": DeliveryStatus.FAILED,
    "canceled": DeliveryStatus.FAILED,
}
CALL_STATUSES = {
    "queued": DeliveryStatus.QUEUED,
    "initiated": DeliveryStatus.QUEUED,
    "ringing": DeliveryStatus.SENDING,
    # A call that was answered has reached the person: that is what "delivered" means for a voice alert.
    "in-progress": DeliveryStatus.DELIVERED,
    "completed": DeliveryStatus.DELIVERED,
    "busy": DeliveryStatus.UNDELIVERED,
    "no-answer": DeliveryStatus.UNDELIVERED,
    "failed": DeliveryStatus.FAILED,
    "canceled": DeliveryStatus.FAILED,
}


class BadPayload(ValueError):
    """A signed webhook whose form lacks what its kind needs (says which field, never its value)."""


def _required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name, "")
    if not value:
        raise BadPayload(f"missing {name}")
    return value


def phone_of(address: str) -> str:
    """A Twilio address (`+316…`, `whatsapp:+316…`) as E.164; other addresses (`client:…`) unchanged."""
    bare = address.removeprefix(WHATSAPP_PREFIX)
    try:
        return to_e164(bare)
    except InvalidPhoneNumber:
        return bare


def channel_of(address: str) -> ChannelKind:
    """WhatsApp when Twilio's address carries the `whatsapp:` prefix, else SMS."""
    return ChannelKind.WHATSAPP if address.startswith(WHATSAPP_PREFIX) else ChannelKind.SMS


def _location(form: Mapping[str, str]) -> GeoPoint | None:
    try:
        lat, lon = float(form["Latitude"]), float(form["Longitude"])
    except (KeyError, ValueError):
        return None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return GeoPoint(lat=lat, lon=lon)


def _media(form: Mapping[str, str]) -> tuple[str, ...]:
    try:
        count = min(int(form.get("NumMedia") or 0), MAX_MEDIA)
    except ValueError:
        return ()
    return _accepted([url for i in range(count) if (url := form.get(f"MediaUrl{i}"))])


def _accepted(urls: list[str]) -> tuple[str, ...]:
    """Only https media URLs on Twilio's hosts: nothing else is ever fetched (or given our credentials)."""
    kept = tuple(url for url in urls if accepted_media_url(url))
    refused = len(urls) - len(kept)
    if refused:
        log.warning("twilio media refused: %d URL(s) not https on a Twilio host", refused)
    return kept


def parse_message(form: Mapping[str, str], *, received_at: datetime) -> IncomingMessage:
    """An inbound SMS or WhatsApp message (text, quick-reply button, location, media)."""
    address = _required(form, "From")
    sid = form.get("MessageSid") or _required(form, "SmsSid")
    # A tap on a template's quick-reply button arrives with an empty Body and the button's text.
    text = form.get("Body") or form.get("ButtonText") or ""
    return IncomingMessage(
        channel=channel_of(address),
        sender=phone_of(address),
        text=text,
        received_at=received_at,
        provider_id=sid,
        location=_location(form),
        media=_media(form),
        reply_to_provider_id=form.get("OriginalRepliedMessageSid") or None,
        raw=dict(form),
    )


def caller_of(form: Mapping[str, str]) -> str:
    """The citizen's phone on a call: `To` on calls we placed, `From` on calls they placed."""
    direction = form.get("Direction", "inbound")
    return phone_of(_required(form, "To" if direction.startswith("outbound") else "From"))


def parse_speech(form: Mapping[str, str], *, received_at: datetime) -> IncomingMessage:
    """A tip spoken after the gather prompt, as Twilio's speech recognition heard it."""
    call_sid = _required(form, "CallSid")
    text = _required(form, "SpeechResult").strip()
    # One call can carry several answers; a retried webhook carries the same words, so it dedupes.
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return IncomingMessage(
        channel=ChannelKind.VOICE,
        sender=caller_of(form),
        text=text,
        received_at=received_at,
        provider_id=f"{call_sid}:speech:{digest}",
        # The call's sid is the alert's delivery id when we placed the call: it links the tip to the action.
        reply_to_provider_id=call_sid,
        raw=dict(form),
    )


def parse_keys(form: Mapping[str, str], *, text: str, received_at: datetime) -> IncomingMessage:
    """Keys pressed in a call (or the keyword a menu key stands for), as the caller's message."""
    _required(form, "CallSid")
    return IncomingMessage(
        channel=ChannelKind.VOICE,
        sender=caller_of(form),
        text=text,
        received_at=received_at,
        # No provider id: the same keys may rightly come twice in one call (1 to confirm, 1 to consent),
        # and Twilio does not post a gather's result again.
        provider_id=None,
        raw=dict(form),
    )


def parse_recording(form: Mapping[str, str], *, received_at: datetime) -> IncomingMessage:
    """A tip recorded after the beep: the recording's URL as media, a transcription when Twilio made one."""
    call_sid = _required(form, "CallSid")
    return IncomingMessage(
        channel=ChannelKind.VOICE,
        sender=caller_of(form),
        text=form.get("TranscriptionText", "").strip(),
        received_at=received_at,
        provider_id=form.get("RecordingSid") or f"{call_sid}:recording",
        media=_accepted([_required(form, "RecordingUrl")]),
        reply_to_provider_id=call_sid,
        raw=dict(form),
    )


def parse_status(form: Mapping[str, str]) -> StatusUpdate | None:
    """A delivery receipt for a message or a call we placed; None for a status we do not track."""
    if "CallStatus" in form and "MessageSid" not in form:
        call_status = CALL_STATUSES.get(form["CallStatus"])
        if call_status is None:
            return None
        return StatusUpdate(
            channel=ChannelKind.VOICE,
            provider_id=_required(form, "CallSid"),
            status=call_status,
            error_code=form.get("ErrorCode") or None,
            raw=dict(form),
            key=status_key(form),
        )
    sid = form.get("MessageSid") or _required(form, "SmsSid")
    raw_status = form.get("MessageStatus") or _required(form, "SmsStatus")
    status = MESSAGE_STATUSES.get(raw_status)
    if status is None:
        return None
    address = form.get("To") or form.get("From") or ""
    return StatusUpdate(
        channel=channel_of(address),
        provider_id=sid,
        status=status,
        error_code=form.get("ErrorCode") or None,
        raw=dict(form),
        key=status_key(form),
    )


def status_key(form: Mapping[str, str]) -> str:
    """What makes a receipt unique: the sid and the raw status (Twilio may post the same one twice)."""
    sid = form.get("MessageSid") or form.get("SmsSid") or form.get("CallSid", "")
    status = form.get("MessageStatus") or form.get("SmsStatus") or form.get("CallStatus", "")
    return f"twilio-status:{sid}:{status}"
