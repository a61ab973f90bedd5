"""Telegram through python-telegram-bot: polling or our own webhook in, reply keyboards out.

PTB is the transport only: every update becomes an `IncomingMessage` for `on_message` (in
practice `Inbox.receive`); the flows never see a Telegram type.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import mimetypes
import re
import time
import warnings
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from json import JSONDecodeError
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from telegram import (
    BotCommand,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.ext import AIORateLimiter, Application, ContextTypes, TypeHandler
from telegram.request import BaseRequest
from telegram.warnings import PTBDeprecationWarning

from bot.channels.base import (
    OnMessage,
    PermanentSendError,
    RecipientOptedOut,
    RetryableSendError,
    SendError,
    SendReceipt,
)
from bot.channels.limits import JSON_TYPE, read_limited_body
from bot.channels.media import FetchedMedia, MediaRefused, MediaUnavailable, checked
from bot.channels.telegram_updates import ALLOWED_UPDATES, incoming_from_update
from bot.config import Settings
from bot.messages import OutgoingMessage
from bot.texts import DEFAULT_LANGUAGE, LANGUAGES, Catalogue
from storage.vocabulary import ChannelKind

log = logging.getLogger(__name__)
# The Bot API's limit on a photo's caption (a longer alert goes as a message after its photo).
MAX_CAPTION = 1024

# The command menu: catalogue key and the command per language. Every command is a keyword the router
# knows (a test holds that); the descriptions are in the catalogues under telegram.menu.
MENU: tuple[tuple[str, dict[str, str]], ...] = (
    ("start", {"nl": "start", "en": "start"}),
    ("follow", {"nl": "volg", "en": "follow"}),
    ("mydata", {"nl": "mijngegevens", "en": "mydata"}),
    ("preferences", {"nl": "voorkeuren", "en": "preferences"}),
    ("address", {"nl": "adres", "en": "address"}),
    ("help", {"nl": "hulp", "en": "help"}),
    ("stop", {"nl": "stop", "en": "stop"}),
)


def menu_commands(lang: str) -> list[tuple[str, str]]:
    """The menu for a language: (catalogue key, command without the slash) in the order shown."""
    return [(key, names.get(lang, names[DEFAULT_LANGUAGE])) for key, names in MENU]


WEBHOOK_PATH = "/webhooks/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# 403 descriptions that mean the person does not want us (courier treats them as "contact stopped").
OPTED_OUT_MARKERS = ("bot was blocked by the user", "user is deactivated", "bot was kicked")
CHAT_ID = re.compile(r"-?[1-9][0-9]{0,19}")
WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
SHORT_BUTTON = 16  # characters; up to three short answers (JA/NEE, channels) fit on one row

Sleep = Callable[[float], Awaitable[None]]
AnyApplication = Application[Any, Any, Any, Any, Any, Any]


# PTB logs every Bot API call's parameters and answer at DEBUG: message texts, names, shared numbers.
PTB_BOT_LOGGERS = ("telegram.Bot", "telegram.ext.ExtBot")
REDACTED = "<bot-token>"


class DropBotApiDebug(logging.Filter):
    """Drops PTB's DEBUG records of Bot API calls, which carry personal data."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep INFO and above."""
        return record.levelno > logging.DEBUG


class RedactBotToken(logging.Filter):
    """httpx logs each request's URL at INFO, and a Bot API URL carries the bot token: replace it."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep the record, with the token taken out of its message."""
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = message.replace(self.token, REDACTED), None
        return True


def keep_secrets_out_of_logs(token: str) -> None:
    """Install the two filters above (once per token) on the loggers that would leak."""
    for name in PTB_BOT_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropBotApiDebug) for f in logger.filters):
            logger.addFilter(DropBotApiDebug())
    httpx_log = logging.getLogger("httpx")
    if not any(isinstance(f, RedactBotToken) and f.token == token for f in httpx_log.filters):
        httpx_log.addFilter(RedactBotToken(token))


class TelegramNotConfigured(ValueError):
    """TELEGRAM_BOT_TOKEN is needed for the Telegram channel."""


class ChatPacer:
    """Our own limit of one message per `interval` seconds per chat (Telegram's advice for private chats)."""

    def __init__(
        self,
        interval: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._interval = interval
        self._monotonic = monotonic
        self._sleep = sleep
        self._due: dict[int, float] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def wait(self, chat_id: int) -> None:
        """Wait until this chat may get its next message, and book the slot after it."""
        if self._interval <= 0:
            return
        lock = self._locks.setdefault(chat_id, asyncio.Lock())
        async with lock:
            now = self._monotonic()
            due = self._due.get(chat_id, now)
            if due > now:
                await self._sleep(due - now)
            self._due[chat_id] = max(now, due) + self._interval
            self._forget_past(now)
        if not lock.locked():
            self._locks.pop(chat_id, None)

    def _forget_past(self, now: float) -> None:
        # A fan-out reaches many chats once; keep the table from growing with all of them.
        if len(self._due) > 10_000:
            self._due = {chat: due for chat, due in self._due.items() if due > now}


def reply_markup(
    message: OutgoingMessage, *, share_phone: str, share_location: str
) -> ReplyKeyboardMarkup | ReplyKeyboardRemove:
    """A one-time reply keyboard for buttons and share requests; otherwise remove any earlier keyboard."""
    rows: list[list[KeyboardButton]] = []
    if message.request_contact:
        rows.append([KeyboardButton(share_phone, request_contact=True)])
    if message.request_location:
        rows.append([KeyboardButton(share_location, request_location=True)])
    buttons = [KeyboardButton(label) for label in message.buttons]
    if len(buttons) <= 3 and all(len(label) <= SHORT_BUTTON for label in message.buttons):
        if buttons:
            rows.append(buttons)
    else:
        rows.extend([button] for button in buttons)
    if not rows:
        # A keyboard from an earlier question would otherwise stay on screen under free-text questions.
        return ReplyKeyboardRemove()
    return ReplyKeyboardMarkup(rows, one_time_keyboard=True, resize_keyboard=True)


def send_error(exc: TelegramError) -> SendError:
    """PTB's error as ours: flood control and network trouble are retryable, a block is an opt-out."""
    if isinstance(exc, RetryAfter):
        return RetryableSendError("Telegram flood control", code="429", retry_after=retry_after_seconds(exc))
    if isinstance(exc, Forbidden):
        text = exc.message.lower()
        if any(marker in text for marker in OPTED_OUT_MARKERS):
            return RecipientOptedOut("the person blocked the bot", code="403")
        return PermanentSendError("Telegram refused the chat", code="403")
    if isinstance(exc, BadRequest):
        # "chat not found", a bad markup, a too-long text: sending again will not help.
        return PermanentSendError("Telegram refused the message", code="400")
    if isinstance(exc, InvalidToken):
        return PermanentSendError("TELEGRAM_BOT_TOKEN was refused", code="401")
    if isinstance(exc, NetworkError):
        # TimedOut and Telegram's 5xx answers are NetworkErrors in PTB.
        return RetryableSendError("Telegram unreachable", code="network")
    return PermanentSendError(f"Telegram error {type(exc).__name__}", code="telegram")


def retry_after_seconds(exc: RetryAfter) -> float:
    """RetryAfter's wait in seconds, whether PTB gives an int or (PTB_TIMEDELTA) a timedelta."""
    with warnings.catch_warnings():
        # PTB 22 warns that the int form will become a timedelta; we accept both.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def file_base_url(api_base_url: str) -> str:
    """Telegram's file URL next to its API URL (`.../bot` -> `.../file/bot`)."""
    if api_base_url.endswith("/bot"):
        return api_base_url.removesuffix("/bot") + "/file/bot"
    return api_base_url.rstrip("/") + "/file/bot"


class TelegramNotStarted(RuntimeError):
    """An update arrived by polling before `start()` said where updates go."""


class TelegramChannel:
    """Telegram in (polling, or `POST /webhooks/telegram` when TELEGRAM_WEBHOOK_SECRET is set) and out."""

    kinds = frozenset({ChannelKind.TELEGRAM})

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], datetime],
        *,
        catalogue: Catalogue | None = None,
        per_chat_interval: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        poll_timeout: float = 10.0,
        request: BaseRequest | None = None,
    ) -> None:
        if not settings.telegram.bot_token:
            raise TelegramNotConfigured("TELEGRAM_BOT_TOKEN is required")
        keep_secrets_out_of_logs(settings.telegram.bot_token)
        self._settings = settings
        self._polled_to: OnMessage | None = None
        self._clock = clock
        self._catalogue = catalogue or Catalogue.load()
        self._pacer = ChatPacer(per_chat_interval, monotonic=monotonic, sleep=sleep)
        self._poll_timeout = poll_timeout
        self._secret = settings.telegram.webhook_secret or None
        if self._secret is not None and not WEBHOOK_SECRET.fullmatch(self._secret):
            # Telegram refuses other secrets at setWebhook; say so at start-up, not in a 400 later.
            raise TelegramNotConfigured("TELEGRAM_WEBHOOK_SECRET must be 1-256 of A-Z, a-z, 0-9, _ and -")
        self._init_lock = asyncio.Lock()
        self._initialized = False
        self._app = self._build_application(settings, request)

    @property
    def webhook_mode(self) -> bool:
        """True when updates come by webhook (TELEGRAM_WEBHOOK_SECRET set), False when we poll."""
        return self._secret is not None

    @property
    def webhook_url(self) -> str:
        """Where Telegram posts updates in webhook mode."""
        return self._settings.public_base_url.rstrip("/") + WEBHOOK_PATH

    def _build_application(self, settings: Settings, request: BaseRequest | None) -> AnyApplication:
        builder = (
            Application.builder()
            .token(settings.telegram.bot_token or "")
            .base_url(settings.telegram.api_base_url)
            .base_file_url(file_base_url(settings.telegram.api_base_url))
            # 30 messages/s overall, 20/min per group (Telegram's limits); no retries inside PTB, so a
            # RetryAfter reaches the dispatcher, which reschedules instead of holding a worker.
            .rate_limiter(
                AIORateLimiter(
                    overall_max_rate=30,
                    overall_time_period=1,
                    group_max_rate=20,
                    group_time_period=60,
                    max_retries=0,
                )
            )
            # One update at a time: a person's "JA" must not overtake the question it answers.
            .concurrent_updates(False)
        )
        if request is not None:
            builder = builder.request(request)
        if self.webhook_mode:
            builder = builder.updater(None)
        app = builder.build()
        app.add_handler(TypeHandler(Update, self._on_update))
        app.add_error_handler(self._on_error)
        return app

    # --- lifecycle -------------------------------------------------------------------------------
    async def _ensure_initialized(self) -> None:
        async with self._init_lock:
            if not self._initialized:
                await self._app.initialize()  # getMe: also checks the token
                self._initialized = True

    async def start(self, on_message: OnMessage) -> None:
        """Register the webhook (webhook mode) or start polling updates for `on_message`."""
        await self._ensure_initialized()
        await self.publish_menu()
        if self.webhook_mode:
            await self._app.bot.set_webhook(
                url=self.webhook_url, secret_token=self._secret, allowed_updates=list(ALLOWED_UPDATES)
            )
            log.info("telegram webhook registered")
            return
        self._polled_to = on_message
        await self._app.start()
        assert self._app.updater is not None
        await self._app.updater.start_polling(
            timeout=timedelta(seconds=self._poll_timeout), allowed_updates=list(ALLOWED_UPDATES)
        )
        log.info("telegram polling started")

    async def publish_menu(self) -> None:
        """The command menu Telegram shows beside the text field: Dutch by default, English for English apps.

        Without it the bot still works (the commands are typed words), so a refusal is logged, not fatal.
        """
        for lang in LANGUAGES:
            commands = [
                BotCommand(command, self._catalogue.render(lang, f"telegram.menu.{key}"))
                for key, command in menu_commands(lang)
            ]
            language_code = None if lang == DEFAULT_LANGUAGE else lang
            try:
                await self._app.bot.set_my_commands(commands, language_code=language_code)
            except TelegramError as exc:
                log.warning("telegram command menu not set: %s", type(exc).__name__)
                return

    async def stop(self) -> None:
        """Stop polling and close the HTTP client (the webhook stays registered for the next start)."""
        if self._app.updater is not None and self._app.updater.running:
            await self._app.updater.stop()
        if self._app.running:
            await self._app.stop()
        if self._initialized:
            await self._app.shutdown()
            self._initialized = False

    # --- inbound ---------------------------------------------------------------------------------
    async def _on_update(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        if self._polled_to is None:
            raise TelegramNotStarted("an update was polled before start()")
        await self.process(update, self._polled_to)

    async def _on_error(self, _update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        # Polling: a failed update is logged and the next one goes on (no personal data in the log).
        log.error("telegram update failed: %s", type(context.error).__name__)

    async def process(self, update: Update, on_message: OnMessage) -> None:
        """Turn one update into an `IncomingMessage` and hand it on; updates we do not act on are dropped."""
        message = incoming_from_update(update, received_at=self._clock())
        if message is None:
            log.info("telegram update %s ignored (not a message we act on)", update.update_id)
            return
        if update.callback_query is not None:
            await self._answer_callback(update.callback_query.id)
        await on_message(message)

    async def _answer_callback(self, query_id: str) -> None:
        # Without an answer the button keeps spinning in the person's app.
        try:
            await self._app.bot.answer_callback_query(query_id)
        except TelegramError as exc:
            log.warning("answerCallbackQuery failed: %s", type(exc).__name__)

    async def webhook_endpoint(self, request: Request, on_message: OnMessage) -> Response:
        """`POST /webhooks/telegram`: check the secret token, then process the update before answering."""
        given = request.headers.get(SECRET_HEADER, "")
        if self._secret is None or not hmac.compare_digest(given.encode(), self._secret.encode()):
            log.warning("telegram webhook refused: %s secret token", "missing" if not given else "wrong")
            return Response(status_code=403)
        try:
            body = await read_limited_body(request, content_type=JSON_TYPE)
        except HTTPException as exc:
            return Response(status_code=exc.status_code)
        try:
            data = json.loads(body)
        except (JSONDecodeError, UnicodeDecodeError, RecursionError):
            log.warning("telegram webhook refused: body is not JSON")
            return Response(status_code=400)
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            return Response(status_code=400)
        try:
            update = Update.de_json(data, self._app.bot)
        except (KeyError, TypeError, ValueError, AttributeError):
            # A well-formed JSON object that is not an update PTB can read (a field of the wrong type).
            log.warning("telegram webhook refused: not an update")
            return Response(status_code=400)
        try:
            await self.process(update, on_message)
        except Exception as exc:  # noqa: BLE001 - Telegram retries a non-2xx; the inbox dedupes the retry
            log.error("telegram update %s failed: %s", update.update_id, type(exc).__name__)
            return Response(status_code=503)
        return Response(status_code=200)

    def router(self, on_message: OnMessage) -> APIRouter:
        """The webhook route handing updates to `on_message`, for the app (answers 403 in polling mode)."""

        async def endpoint(request: Request) -> Response:
            return await self.webhook_endpoint(request, on_message)

        router = APIRouter()
        router.add_api_route(WEBHOOK_PATH, endpoint, methods=["POST"], include_in_schema=False)
        return router

    def receiving(self, on_message: OnMessage) -> TelegramReceiving:
        """Telegram as a subsystem of the runtime: updates (webhook or polling) go to `on_message`."""
        return TelegramReceiving(self, on_message)

    # --- outbound --------------------------------------------------------------------------------
    async def send(self, message: OutgoingMessage) -> SendReceipt:
        """Send one message, paced per chat; raise `RecipientOptedOut` when the person blocked the bot."""
        if not CHAT_ID.fullmatch(message.recipient):
            # A phone number would parse as an int too; only a chat id addresses a Telegram chat.
            raise PermanentSendError("not a Telegram chat id", code="recipient")
        chat_id = int(message.recipient)
        markup = reply_markup(
            message,
            share_phone=self._label("telegram.share_phone", message.text),
            share_location=self._label("telegram.share_location", message.text),
        )
        try:
            await self._ensure_initialized()
            await self._pacer.wait(chat_id)
            sent = None
            if message.photo_url is not None:
                sent = await self._send_photo(chat_id, message, markup)
            if sent is None:
                sent = await self._app.bot.send_message(
                    chat_id=chat_id, text=message.text, reply_markup=markup
                )
        except TelegramError as exc:
            error = send_error(exc)
            log.warning("telegram send failed: %s (%s)", type(exc).__name__, error.code)
            raise error from exc
        return SendReceipt(provider_id=str(sent.message_id))

    async def _send_photo(self, chat_id: int, message: OutgoingMessage, markup: Any) -> Message | None:
        """The photo, with the text as its caption when it fits; None when the text still has to go.

        Telegram fetches the photo from its URL itself. When it cannot (the URL is not public, the action
        just ended), the alert goes without it rather than not at all.
        """
        assert message.photo_url is not None
        fits = len(message.text) <= MAX_CAPTION
        try:
            photo = await self._app.bot.send_photo(
                chat_id=chat_id,
                photo=message.photo_url,
                caption=message.text if fits else None,
                reply_markup=markup if fits else None,
            )
        except BadRequest as exc:
            log.warning("telegram photo not sent, the text goes alone: %s", exc.message)
            return None
        if not fits:
            await self._pacer.wait(chat_id)
            return None
        return photo

    def _label(self, key: str, text: str) -> str:
        # OutgoingMessage carries no language, but the question names its button ("Tik op 'Deel
        # mijn nummer'"): use the language whose label the text quotes, else the default (Dutch).
        for lang in LANGUAGES:
            label = self._catalogue.render(lang, key)
            if label in text:
                return label
        return self._catalogue.render(DEFAULT_LANGUAGE, key)

    async def fetch_media(self, ref: str, *, max_bytes: int) -> FetchedMedia:
        """The file behind a message's `media` entry (a file id), via getFile and Telegram's file URL."""
        try:
            await self._ensure_initialized()
            file = await self._app.bot.get_file(ref)
            if file.file_size is not None and file.file_size > max_bytes:
                raise MediaRefused("too_large")
            data = bytes(await file.download_as_bytearray())
        except BadRequest as exc:
            # "file is too big" (over the Bot API's 20 MB), "invalid file_id": asking again will not help.
            reason = "too_large" if "too big" in exc.message.lower() else "unavailable"
            raise MediaRefused(reason) from exc
        except (NetworkError, RetryAfter) as exc:
            raise MediaUnavailable(type(exc).__name__) from exc
        except TelegramError as exc:
            raise MediaRefused("unavailable") from exc
        declared, _ = mimetypes.guess_type(file.file_path or "")
        return checked(data, declared=declared, max_bytes=max_bytes)


class TelegramReceiving:
    """The receiving side of a Telegram channel: its webhook route, its polling, its lifecycle."""

    def __init__(self, channel: TelegramChannel, on_message: OnMessage) -> None:
        self.channel = channel
        self._on_message = on_message

    async def start(self) -> None:
        """Register the webhook or start polling."""
        await self.channel.start(self._on_message)

    async def stop(self) -> None:
        """Stop polling and close the channel's HTTP client."""
        await self.channel.stop()

    def routes(self) -> list[APIRouter]:
        """The webhook route."""
        return [self.channel.router(self._on_message)]
