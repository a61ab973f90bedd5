"""Twilio's webhooks: checked (size, type, signature) before anything is parsed, then handed on."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Query, Request, Response
from starlette.datastructures import MultiDict
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    compare,
    get_signature_algorithm,
)

from bot.channels import twilio_voice as voice
from bot.channels.base import OnMessage
from bot.channels.limits import FORM_TYPE, read_limited_body
from bot.channels.twilio_payloads import (
    BadPayload,
    parse_keys,
    parse_message,
    parse_recording,
    parse_speech,
    parse_status,
    status_key,
)
from bot.messages import IncomingMessage, OutgoingMessage, answered_in_band
from bot.texts import Catalogue
from storage.vocabulary import StatusUpdate

log = logging.getLogger(__name__)

PREFIX = "/webhooks/twilio"
SMS_PATH = f"{PREFIX}/sms"
WHATSAPP_PATH = f"{PREFIX}/whatsapp"
STATUS_PATH = f"{PREFIX}/status"
VOICE_PATH = f"{PREFIX}/voice"
GATHER_PATH = f"{PREFIX}/voice/gather"
RECORDING_PATH = f"{PREFIX}/voice/recording"
MENU_PATH = f"{PREFIX}/voice/menu"
KEYS_PATH = f"{PREFIX}/voice/keys"
TWIML_TYPE = "application/xml"
SEEN_MEMORY = 10_000

StatusHandler = Callable[[StatusUpdate], Awaitable[Any]]
FirstTime = Callable[[str], bool]
Lang = Annotated[str, Query(max_length=8)]
T = TypeVar("T")


async def _hand_on_call_input(
    on_message: OnMessage, incoming: IncomingMessage, call_sid: str
) -> list[OutgoingMessage]:
    # The replies to the caller are spoken in this call's TwiML: recorded as sent in-band by the router.
    with answered_in_band(f"call:{call_sid}"):
        replies = await on_message(incoming)
    if not isinstance(replies, list):
        return []
    return [
        r
        for r in replies
        if isinstance(r, OutgoingMessage) and r.channel is incoming.channel and r.recipient == incoming.sender
    ]


class RecentKeys:
    """In-memory 'seen before?' for receipts when no persistent check is wired (bounded, oldest forgotten)."""

    def __init__(self, size: int = SEEN_MEMORY) -> None:
        self._size = size
        self._keys: OrderedDict[str, None] = OrderedDict()

    def __call__(self, key: str) -> bool:
        """True the first time a key is seen."""
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > self._size:
            self._keys.popitem(last=False)
        return True


@dataclass(frozen=True)
class SignedForms:
    """Reads a webhook's form and checks `X-Twilio-Signature` against the public URL Twilio called."""

    validator: RequestValidator
    public_base_url: str

    def url_for(self, request: Request) -> str:
        """The URL Twilio signed: our public base URL, the path and the query exactly as sent."""
        query = request.scope.get("query_string", b"").decode("latin-1")
        url = self.public_base_url.rstrip("/") + request.url.path
        return f"{url}?{query}" if query else url

    async def read(self, request: Request) -> MultiDict:
        """The verified form; 415 for another content type, 413 over 64 KiB, 403 for a bad signature."""
        body = await read_limited_body(request, content_type=FORM_TYPE)
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:
            log.warning("twilio webhook %s refused: no signature header", request.url.path)
            raise HTTPException(403, "signature required")
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError as exc:
            log.warning("twilio webhook %s refused: body is not UTF-8", request.url.path)
            raise HTTPException(400, "body is not UTF-8") from exc
        form = MultiDict(pairs)
        algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER))
        if not self._signed(self.url_for(request), form, signature, algorithm):
            log.warning("twilio webhook %s refused: signature does not match", request.url.path)
            raise HTTPException(403, "signature does not match")
        return form

    def _signed(self, url: str, form: MultiDict, signature: str, algorithm: str | None) -> bool:
        # The URL exactly as configured first: `validate` always signs it twice (with and without a
        # port), which cost three times one signature on every message; a miss still gets both.
        try:
            if compare(self.validator.compute_signature(url, form, algorithm), signature):
                return True
        except ValueError:
            pass  # an algorithm this twilio does not know: `validate` refuses it and says so
        return bool(self.validator.validate(url, form, signature, algorithm))


def twiml(body: str) -> Response:
    """A TwiML answer."""
    return Response(content=body, media_type=TWIML_TYPE)


def _unavailable(path: str, exc: Exception) -> HTTPException:
    log.error("twilio webhook %s failed: %s", path, type(exc).__name__)
    return HTTPException(503, "try again later", headers={"Retry-After": "5"})


async def _handed_on(step: Awaitable[T], path: str) -> T:
    """The handler's result; its failure (the database stayed locked) answers 503 so Twilio may retry."""
    try:
        return await step
    except Exception as exc:  # noqa: BLE001 - nothing was recorded: a retry is handled afresh
        raise _unavailable(path, exc) from exc


def _parsed(parse: Callable[[], T], path: str) -> T:
    try:
        return parse()
    except BadPayload as exc:
        log.warning("twilio webhook %s refused: %s", path, exc)
        raise HTTPException(400, str(exc)) from exc


def twilio_webhook_router(
    *,
    forms: SignedForms,
    on_message: OnMessage,
    on_status: StatusHandler,
    first_time: FirstTime | None,
    clock: Callable[[], datetime],
    catalogue: Catalogue,
    controlroom_phone: str | None,
) -> APIRouter:
    """The Twilio webhooks: SMS, WhatsApp, delivery status and the voice callbacks.

    `first_time` says whether a receipt's key is new; None when `on_status` records each receipt's key
    itself (`StatusUpdate.key`), in the transaction that applies it: recorded apart, a failed apply would
    leave the key behind and Twilio's retry would be dropped as a duplicate.
    """
    router = APIRouter(tags=["twilio"])
    public = forms.public_base_url.rstrip("/")

    def callback_url(path: str, lang: str) -> str:
        return f"{public}{path}?lang={lang}"

    def _answer(said: list[OutgoingMessage], lang: str) -> str:
        if not said:
            return voice.thanks_twiml(lang=lang, catalogue=catalogue)
        return voice.replies_twiml(
            texts=[r.text for r in said],
            lang=lang,
            catalogue=catalogue,
            gather_url=callback_url(GATHER_PATH, lang),
        )

    def _keys_answer(said: list[OutgoingMessage], lang: str) -> str:
        # The last reply says whether a question waits for keys; the conversation's state is ours, kept
        # server-side under the caller's number, so the URL carries only the language of the voice.
        if not said:
            return voice.keys_twiml(
                texts=[catalogue.render(lang, "voice.goodbye")],
                keypad=None,
                lang=lang,
                catalogue=catalogue,
                answer_url=callback_url(KEYS_PATH, lang),
            )
        return voice.keys_twiml(
            texts=[r.text for r in said],
            keypad=said[-1].keypad,
            lang=lang,
            catalogue=catalogue,
            answer_url=callback_url(KEYS_PATH, lang),
        )

    async def _keys_handed_on(form: MultiDict, text: str, path: str) -> list[OutgoingMessage]:
        incoming = _parsed(lambda: parse_keys(form, text=text, received_at=clock()), path)
        return await _handed_on(_hand_on_call_input(on_message, incoming, form.get("CallSid", "")), path)

    @router.post(SMS_PATH)
    @router.post(WHATSAPP_PATH)
    async def message(request: Request) -> Response:
        """An SMS or WhatsApp message; answered through the REST API, so the TwiML stays empty."""
        form = await forms.read(request)
        incoming = _parsed(lambda: parse_message(form, received_at=clock()), request.url.path)
        await _handed_on(on_message(incoming), request.url.path)
        return twiml(voice.empty_twiml())

    @router.post(STATUS_PATH)
    async def status(request: Request) -> Response:
        """A delivery receipt for a message or call; each (sid, status) is handed on once."""
        form = await forms.read(request)
        update = _parsed(lambda: parse_status(form), request.url.path)
        if update is None:
            log.info("twilio status callback with an untracked status ignored")
            return twiml(voice.empty_twiml())
        try:
            new = first_time is None or first_time(status_key(form))
        except Exception as exc:  # noqa: BLE001 - storage down: Twilio retries a 5xx receipt
            raise _unavailable(request.url.path, exc) from exc
        if new:
            await _handed_on(on_status(update), request.url.path)
        return twiml(voice.empty_twiml())

    @router.post(VOICE_PATH)
    async def call(request: Request, lang: Lang = voice.DEFAULT_LANGUAGE) -> Response:
        """A person calls our number: the menu (sign up, unsubscribe, control room, English, a tip)."""
        await forms.read(request)
        lang = voice.catalogue_language(lang)
        return twiml(voice.menu_twiml(lang=lang, catalogue=catalogue, menu_url=callback_url(MENU_PATH, lang)))

    @router.post(MENU_PATH)
    async def menu(request: Request, lang: Lang = voice.DEFAULT_LANGUAGE) -> Response:
        """A key of the menu: 1 signs up, 9 unsubscribes, 0 connects, 2/3 switch language; speech is a tip."""
        form = await forms.read(request)
        lang = voice.catalogue_language(lang)
        digits = form.get("Digits", "")
        path = request.url.path
        if digits == voice.MENU_CONTROLROOM_DIGIT and controlroom_phone:
            return twiml(
                voice.connect_twiml(lang=lang, catalogue=catalogue, controlroom_phone=controlroom_phone)
            )
        if digits in voice.MENU_KEYWORDS:
            said = await _keys_handed_on(form, voice.MENU_KEYWORDS[digits], path)
            return twiml(_keys_answer(said, lang))
        if digits in voice.MENU_LANGUAGES:
            # Kept with the caller's identity, so the sign-up that may follow speaks this language.
            chosen = voice.MENU_LANGUAGES[digits]
            await _keys_handed_on(form, "ENGLISH" if chosen == "en" else "NEDERLANDS", path)
            return twiml(
                voice.menu_twiml(lang=chosen, catalogue=catalogue, menu_url=callback_url(MENU_PATH, chosen))
            )
        if not digits and form.get("SpeechResult", "").strip():
            incoming = _parsed(lambda: parse_speech(form, received_at=clock()), path)
            said = await _handed_on(_hand_on_call_input(on_message, incoming, form.get("CallSid", "")), path)
            return twiml(_answer(said, lang))
        return twiml(
            voice.record_twiml(
                lang=lang, catalogue=catalogue, recording_url=callback_url(RECORDING_PATH, lang)
            )
        )

    @router.post(KEYS_PATH)
    async def keys(request: Request, lang: Lang = voice.DEFAULT_LANGUAGE) -> Response:
        """The keys that answer a question asked in the call (the sign-up, the yearly reconfirmation)."""
        form = await forms.read(request)
        lang = voice.catalogue_language(lang)
        # A caller who pressed nothing hears the step's question again with what was wrong.
        said = await _keys_handed_on(form, form.get("Digits", ""), request.url.path)
        return twiml(_keys_answer(said, lang))

    @router.post(GATHER_PATH)
    async def gather(request: Request, lang: Lang = voice.DEFAULT_LANGUAGE) -> Response:
        """After the prompt: 1 connects to the control room, 2 records a tip, speech is a tip, else record."""
        form = await forms.read(request)
        lang = voice.catalogue_language(lang)
        digits = form.get("Digits", "")
        if digits == voice.CONTROLROOM_DIGIT and controlroom_phone:
            return twiml(
                voice.connect_twiml(lang=lang, catalogue=catalogue, controlroom_phone=controlroom_phone)
            )
        if digits != voice.TIP_DIGIT and form.get("SpeechResult", "").strip():
            incoming = _parsed(lambda: parse_speech(form, received_at=clock()), request.url.path)
            said = await _handed_on(
                _hand_on_call_input(on_message, incoming, form.get("CallSid", "")), request.url.path
            )
            return twiml(_answer(said, lang))
        return twiml(
            voice.record_twiml(
                lang=lang, catalogue=catalogue, recording_url=callback_url(RECORDING_PATH, lang)
            )
        )

    @router.post(RECORDING_PATH)
    async def recording(request: Request, lang: Lang = voice.DEFAULT_LANGUAGE) -> Response:
        """A recorded tip: its URL goes on as the tip's media."""
        form = await forms.read(request)
        lang = voice.catalogue_language(lang)
        incoming = _parsed(lambda: parse_recording(form, received_at=clock()), request.url.path)
        said = await _handed_on(
            _hand_on_call_input(on_message, incoming, form.get("CallSid", "")), request.url.path
        )
        return twiml(_answer(said, lang))

    return router
