"""Twilio: SMS, WhatsApp and voice out through the REST API, webhooks in, delivery receipts back."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

import requests
from fastapi import APIRouter
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http import HttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from bot.channels import twilio_voice as voice
from bot.channels.base import (
    OnMessage,
    PermanentSendError,
    RecipientOptedOut,
    RetryableSendError,
    SendError,
    SendReceipt,
)
from bot.channels.media import FetchedMedia
from bot.channels.segments import count_segments
from bot.channels.twilio_http import HttpxTwilioClient, TwilioThrottled, TwilioUnreachable
from bot.channels.twilio_media import TwilioMedia
from bot.channels.twilio_payloads import WHATSAPP_PREFIX
from bot.channels.twilio_webhooks import (
    GATHER_PATH,
    KEYS_PATH,
    STATUS_PATH,
    FirstTime,
    SignedForms,
    StatusHandler,
    twilio_webhook_router,
)
from bot.config import Settings
from bot.messages import OutgoingMessage
from bot.texts import Catalogue
from storage.vocabulary import ChannelKind

log = logging.getLogger(__name__)

OPTED_OUT = 21610  # "Attempt to send to unsubscribed recipient": the person texted STOP to our number
THROTTLED = 20429
MESSAGING_SERVICE_PREFIX = "MG"


class TwilioNotConfigured(ValueError):
    """TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are both needed for the Twilio channel."""


def with_buttons(text: str, buttons: tuple[str, ...]) -> str:
    """The text with its answer options as a short suffix, e.g. "(JA/NEE)", unless it already names them."""
    if not buttons:
        return text
    upper = text.upper()
    if all(re.search(rf"(?<!\w){re.escape(b.upper())}(?!\w)", upper) for b in buttons):
        return text
    return f"{text} ({'/'.join(buttons)})"


def send_error(status: int, code: int | None) -> SendError:
    """Twilio's error as ours: 21610 is an opt-out, 429/5xx are worth a retry, other 4xx are not."""
    text = str(code) if code is not None else str(status)
    if code == OPTED_OUT:
        return RecipientOptedOut("recipient unsubscribed at Twilio", code=text)
    if status == 429 or code == THROTTLED or status >= 500:
        return RetryableSendError(f"Twilio answered {status}", code=text)
    return PermanentSendError(f"Twilio refused the message ({status})", code=text)


def _address(prefix: str, number: str) -> str:
    return prefix + number.removeprefix(prefix)


class TwilioChannel:
    """SMS, WhatsApp and voice through one Twilio account; `router()` holds its webhooks."""

    kinds = frozenset({ChannelKind.SMS, ChannelKind.WHATSAPP, ChannelKind.VOICE})

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], datetime],
        http_client: HttpClient | None = None,
        *,
        catalogue: Catalogue | None = None,
    ) -> None:
        if not settings.twilio.account_sid or not settings.twilio.auth_token:
            raise TwilioNotConfigured("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are required")
        self._settings = settings
        self._clock = clock
        self._catalogue = catalogue or Catalogue.load()
        self._public = settings.public_base_url.rstrip("/")
        self._validator = RequestValidator(settings.twilio.auth_token)
        self._http = http_client or HttpxTwilioClient(base_url=settings.twilio.api_base_url)
        self._owns_http = http_client is None
        self._client = Client(settings.twilio.account_sid, settings.twilio.auth_token, http_client=self._http)
        # twilio imports its REST resources on first use; done here, not in the first send of an action,
        # where it would hold back the first slots of the shared rate and let them go out in a bunch.
        _ = self._client.messages, self._client.calls
        self._media = TwilioMedia(
            account_sid=settings.twilio.account_sid,
            auth_token=settings.twilio.auth_token,
            api_base_url=settings.twilio.api_base_url,
        )

    @property
    def status_callback(self) -> str:
        """Where Twilio posts delivery receipts for what we send."""
        return self._public + STATUS_PATH

    def router(
        self, on_message: OnMessage, on_status: StatusHandler, *, first_time: FirstTime | None
    ) -> APIRouter:
        """The webhooks under /webhooks/twilio handing messages and receipts on, for the app to include.

        `first_time`: None when `on_status` records each receipt's key itself (see `twilio_webhook_router`).
        """
        return twilio_webhook_router(
            forms=SignedForms(validator=self._validator, public_base_url=self._public),
            on_message=on_message,
            on_status=on_status,
            first_time=first_time,
            clock=self._clock,
            catalogue=self._catalogue,
            controlroom_phone=self._settings.controlroom.phone,
        )

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        """Send one SMS or WhatsApp message (a VOICE message places a call); raise a SendError on failure."""
        if message.channel is ChannelKind.VOICE:
            lang = voice.catalogue_language(message.language or voice.DEFAULT_LANGUAGE)
            if message.call_menu:
                return await self.call(message.recipient, message.text, lang)
            if message.keypad is not None:
                # A question (the yearly reconfirmation): its answer comes to the keys webhook.
                twiml = voice.keys_twiml(
                    texts=[message.text],
                    keypad=message.keypad,
                    lang=lang,
                    catalogue=self._catalogue,
                    answer_url=f"{self._public}{KEYS_PATH}?lang={lang}",
                )
                return await self._place_call(message.recipient, twiml)
            return await self._place_call(message.recipient, voice.say_twiml(text=message.text, lang=lang))
        if message.channel is ChannelKind.SMS:
            return await self._send_sms(message)
        if message.channel is ChannelKind.WHATSAPP:
            return await self._send_whatsapp(message)
        raise PermanentSendError(f"Twilio does not carry {message.channel}", code="unsupported_channel")

    async def _send_sms(self, message: OutgoingMessage) -> SendReceipt:
        sender = self._settings.twilio.sms_from
        if not sender:
            raise PermanentSendError("TWILIO_SMS_FROM is not set", code="not_configured")
        text = with_buttons(message.text, message.buttons)
        origin = (
            {"messaging_service_sid": sender}
            if sender.startswith(MESSAGING_SERVICE_PREFIX)
            else {"from_": sender}
        )
        sid = await self._create(
            "messages", to=message.recipient, body=text, status_callback=self.status_callback, **origin
        )
        return SendReceipt(provider_id=sid, segments=count_segments(text).segments)

    async def _send_whatsapp(self, message: OutgoingMessage) -> SendReceipt:
        sender = self._settings.twilio.whatsapp_from
        if not sender:
            raise PermanentSendError("TWILIO_WHATSAPP_FROM is not set", code="not_configured")
        content: dict[str, Any]
        if message.template_sid:
            # Outside the 24-hour window only an approved template may start the conversation.
            content = {
                "content_sid": message.template_sid,
                "content_variables": json.dumps(dict(message.template_variables or {}), ensure_ascii=False),
            }
        else:
            content = {"body": with_buttons(message.text, message.buttons)}
            if message.photo_url is not None:
                content["media_url"] = [message.photo_url]  # Twilio fetches it from our public page
        sid = await self._create(
            "messages",
            from_=_address(WHATSAPP_PREFIX, sender),
            to=_address(WHATSAPP_PREFIX, message.recipient),
            status_callback=self.status_callback,
            **content,
        )
        return SendReceipt(provider_id=sid, segments=1)

    async def call(self, to: str, text: str, lang: str = voice.DEFAULT_LANGUAGE) -> SendReceipt:
        """Phone a person and speak an alert twice, then offer the control room (1) or a spoken tip (2)."""
        lang = voice.catalogue_language(lang)
        twiml = voice.alert_twiml(
            text=text,
            lang=lang,
            catalogue=self._catalogue,
            gather_url=f"{self._public}{GATHER_PATH}?lang={lang}",
        )
        return await self._place_call(to, twiml)

    async def _place_call(self, to: str, twiml: str) -> SendReceipt:
        sender = self._settings.twilio.voice_from
        if not sender:
            raise PermanentSendError("TWILIO_VOICE_FROM is not set", code="not_configured")
        if len(twiml) > voice.MAX_TWIML_CHARS:
            raise PermanentSendError("alert too long for a call", code="twiml_too_long")
        sid = await self._create(
            "calls", to=to, from_=sender, twiml=twiml, status_callback=self.status_callback
        )
        return SendReceipt(provider_id=sid, segments=1)

    async def _create(self, resource: str, **params: Any) -> str:
        """Create a message or call at Twilio and return its sid, with failures as SendErrors."""
        api = self._client.api.v2010.account
        listing = api.messages if resource == "messages" else api.calls
        try:
            if self._http.is_async:
                instance = await listing.create_async(**params)
            else:
                # twilio's default client blocks: keep it off the event loop.
                instance = await asyncio.to_thread(listing.create, **params)
        except TwilioThrottled as exc:
            raise RetryableSendError(
                "Twilio throttled the request", code=str(exc.code or 429), retry_after=exc.retry_after
            ) from exc
        except TwilioUnreachable as exc:
            raise RetryableSendError(f"Twilio unreachable: {exc}", code="unreachable") from exc
        except requests.RequestException as exc:
            raise RetryableSendError(f"Twilio unreachable: {type(exc).__name__}", code="unreachable") from exc
        except (TwilioRestException, TwilioServiceException) as exc:
            raise send_error(exc.status, exc.code) from exc
        sid = instance.sid
        if not sid:
            raise RetryableSendError("Twilio answered without a sid", code="no_sid")
        return str(sid)

    async def fetch_media(self, ref: str, *, max_bytes: int) -> FetchedMedia:
        """A message's file (a `MediaUrlN` or `RecordingUrl`), with the account's credentials."""
        return await self._media.fetch(ref, max_bytes=max_bytes)

    def receiving(
        self, on_message: OnMessage, on_status: StatusHandler, *, first_time: FirstTime | None
    ) -> TwilioReceiving:
        """Twilio as a subsystem of the runtime: its webhooks hand messages and receipts on."""
        return TwilioReceiving(self, self.router(on_message, on_status, first_time=first_time))

    async def aclose(self) -> None:
        """Close the HTTP connection pool (when the channel made it)."""
        if self._owns_http and isinstance(self._http, HttpxTwilioClient):
            await self._http.aclose()
        await self._media.aclose()


class TwilioReceiving:
    """The receiving side of a Twilio channel: its webhooks; stopping closes the HTTP client."""

    def __init__(self, channel: TwilioChannel, router: APIRouter) -> None:
        self.channel = channel
        self._router = router

    async def start(self) -> None:
        """Nothing to start: Twilio calls the webhooks."""

    async def stop(self) -> None:
        """Close the channel's HTTP client."""
        await self.channel.aclose()

    def routes(self) -> list[APIRouter]:
        """The webhooks under /webhooks/twilio."""
        return [self._router]
