"""Telegram: real update payloads through the webhook and polling, sends against a fake Bot API."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bot.channels.base import PermanentSendError, RecipientOptedOut, RetryableSendError, SendError
from bot.channels.media import MAX_MEDIA_BYTES, MediaRefused
from bot.channels.telegram import (
    WEBHOOK_PATH,
    ChatPacer,
    TelegramChannel,
    TelegramNotConfigured,
    menu_commands,
)
from bot.config import Settings, load_settings
from bot.flows.follow import follow_command
from bot.flows.keywords import Keyword, keyword_of
from bot.inbox import Inbox
from bot.messages import IncomingMessage, OutgoingMessage
from bot.texts import Catalogue
from storage.crypto import DataVault
from storage.db import SessionFactory
from storage.vocabulary import ChannelKind, GeoPoint
from tests.channels.keyed import KeyedHandler, drain
from tests.conftest import FixedClock
from tests.fakes.telegram_api import BLOCKED, CHAT_NOT_FOUND, FakeTelegramApi

# PTB itself warns about RetryAfter's int form when it raises one (the 429 case).
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

TOKEN = "7000000001:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0"
SECRET = "s3cr3t-Token_for-webhooks"
PUBLIC = "https://burgernet.example.nl"
ANNA = 551234567
TESTDATA = Path(__file__).parent / "testdata" / "telegram"
NOW = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
JPEG = (TESTDATA.parent / "media" / "photo.jpg").read_bytes()


def payload(name: str) -> dict[str, Any]:
    """One real update from the testdata folder."""
    data: dict[str, Any] = json.loads((TESTDATA / f"{name}.json").read_text(encoding="utf-8"))
    return data


class Received:
    """The `on_message` callback: records what arrives and lets a test await a count."""

    def __init__(self) -> None:
        self.messages: list[IncomingMessage] = []
        self._changed = asyncio.Event()
        self.fail_with: Exception | None = None

    async def __call__(self, message: IncomingMessage) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.messages.append(message)
        self._changed.set()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[IncomingMessage]:
        async def enough() -> None:
            while len(self.messages) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(enough(), timeout)
        return self.messages


def make_settings(fake: FakeTelegramApi, *, secret: str | None) -> Settings:
    return load_settings(
        telegram_bot_token=TOKEN,
        telegram_api_base_url=fake.base_url,
        telegram_webhook_secret=secret,
        public_base_url=PUBLIC,
    )


@pytest.fixture
def fake() -> Iterator[FakeTelegramApi]:
    with FakeTelegramApi(TOKEN, max_poll_s=0.5) as api:
        yield api


@pytest.fixture
def received() -> Received:
    return Received()


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load()


@pytest.fixture
async def webhook_channel(
    fake: FakeTelegramApi, received: Received, catalogue: Catalogue
) -> AsyncIterator[TelegramChannel]:
    channel = TelegramChannel(
        make_settings(fake, secret=SECRET),
        FixedClock(NOW),
        per_chat_interval=0,
        catalogue=catalogue,
    )
    await channel.start(received)
    yield channel
    await channel.stop()


@pytest.fixture
async def client(webhook_channel: TelegramChannel, received: Received) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(webhook_channel.router(received))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC) as http:
        yield http


async def post_update(
    client: httpx.AsyncClient, update: dict[str, Any], secret: str | None = SECRET
) -> httpx.Response:
    headers = {} if secret is None else {"X-Telegram-Bot-Api-Secret-Token": secret}
    return await client.post(WEBHOOK_PATH, json=update, headers=headers)


# name -> the fields of the IncomingMessage it must become (None: the update is not acted on)
CASES: dict[str, dict[str, Any] | None] = {
    "text": {"text": "Ik zag een man met een rode jas richting het station lopen"},
    "start_payload": {"text": "/start BN-4821", "start_payload": "BN-4821"},
    "contact_own": {"text": "", "contact_phone": "31612345678", "reply_to_provider_id": "1202"},
    "contact_other": {"text": "", "contact_phone": None},
    "location": {"text": "", "location": GeoPoint(lat=52.255851, lon=6.163236)},
    "photo": {
        "text": "Deze auto stond hier net, kenteken niet te zien",
        "media": ("AgACAgQAAxkBAAIBXmVxS3",),
    },
    "edited_message": None,
    "group_message": {"text": "Heeft iemand anders die man ook gezien?", "group_id": "-1001987654321"},
    "callback_query": {"text": "JA", "reply_to_provider_id": "1210"},
}
DEFAULTS: dict[str, Any] = {
    "channel": ChannelKind.TELEGRAM,
    "sender": str(ANNA),
    "received_at": NOW,
    "location": None,
    "media": (),
    "contact_phone": None,
    "reply_to_provider_id": None,
    "start_payload": None,
    "group_id": None,
}


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
async def test_webhook_with_the_right_secret_hands_on_the_message(
    name: str, client: httpx.AsyncClient, received: Received
) -> None:
    update = payload(name)
    response = await post_update(client, update)
    assert response.status_code == 200
    expected = CASES[name]
    if expected is None:
        assert received.messages == []
        return
    [message] = received.messages
    for field, value in {**DEFAULTS, **expected}.items():
        assert getattr(message, field) == value, field
    assert message.provider_id == f"update:{update['update_id']}"
    assert message.raw["update_id"] == update["update_id"]


@pytest.mark.parametrize(
    "secret", ["wrong-secret", SECRET + "x", "", None], ids=["wrong", "longer", "empty", "none"]
)
@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
async def test_webhook_without_the_right_secret_is_refused(
    name: str, secret: str | None, client: httpx.AsyncClient, received: Received
) -> None:
    response = await post_update(client, payload(name), secret)
    assert response.status_code == 403
    assert received.messages == []


async def test_webhook_refuses_everything_in_polling_mode(
    fake: FakeTelegramApi, received: Received, catalogue: Catalogue
) -> None:
    channel = TelegramChannel(make_settings(fake, secret=None), FixedClock(NOW), catalogue=catalogue)
    app = FastAPI()
    app.include_router(channel.router(received))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC) as http:
        response = await post_update(http, payload("text"), secret="")
    assert response.status_code == 403
    assert received.messages == []


async def test_webhook_refuses_a_body_that_is_not_an_update(
    client: httpx.AsyncClient, received: Received
) -> None:
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    not_json = await client.post(
        WEBHOOK_PATH, content=b"{not json", headers=headers | {"Content-Type": "application/json"}
    )
    no_update_id = await client.post(WEBHOOK_PATH, json={"message": {}}, headers=headers)
    assert (not_json.status_code, no_update_id.status_code) == (400, 400)
    assert received.messages == []


async def test_webhook_answers_503_when_handling_fails_so_telegram_retries(
    client: httpx.AsyncClient, received: Received
) -> None:
    received.fail_with = RuntimeError("database locked")
    assert (await post_update(client, payload("text"))).status_code == 503
    received.fail_with = None
    assert (await post_update(client, payload("text"))).status_code == 200
    assert len(received.messages) == 1


async def test_callback_query_is_answered_so_the_button_stops_spinning(
    client: httpx.AsyncClient, fake: FakeTelegramApi
) -> None:
    await post_update(client, payload("callback_query"))
    [answer] = fake.calls_to("answerCallbackQuery")
    assert answer.params["callback_query_id"] == "2369581937462837461"


async def test_start_in_webhook_mode_registers_the_webhook_with_the_secret(
    webhook_channel: TelegramChannel, fake: FakeTelegramApi
) -> None:
    assert webhook_channel.webhook_mode
    assert fake.calls_to("getMe")
    hook = fake.webhook
    assert hook is not None
    assert hook["url"] == PUBLIC + WEBHOOK_PATH
    assert hook["secret_token"] == SECRET
    assert json.loads(hook["allowed_updates"]) == ["message", "callback_query"]
    assert fake.calls_to("getUpdates") == []


async def test_start_sets_the_command_menu_in_dutch_and_in_english(
    webhook_channel: TelegramChannel, fake: FakeTelegramApi, catalogue: Catalogue
) -> None:
    menus = fake.commands
    assert set(menus) == {"", "en"}  # Dutch for every app, English for apps set to English
    assert [c["command"] for c in menus[""]] == [
        "start",
        "volg",
        "mijngegevens",
        "voorkeuren",
        "adres",
        "hulp",
        "stop",
    ]
    assert [c["command"] for c in menus["en"]] == [
        "start",
        "follow",
        "mydata",
        "preferences",
        "address",
        "help",
        "stop",
    ]
    assert menus[""][1]["description"] == catalogue.render("nl", "telegram.menu.follow")
    assert menus["en"][1]["description"] == catalogue.render("en", "telegram.menu.follow")


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_every_menu_command_is_one_the_bot_understands(lang: str) -> None:
    expected = {
        "start": Keyword.START,
        "mydata": Keyword.MY_DATA,
        "preferences": Keyword.PREFERENCES,
        "address": Keyword.ADDRESS,
        "help": Keyword.HELP,
        "stop": Keyword.STOP,
    }
    for key, command in menu_commands(lang):
        typed = f"/{command}@BurgernetBot"  # as Telegram sends a tapped command in a group
        if key == "follow":
            found = follow_command(typed)
            assert found is not None and found.follow and found.postcode is None
        else:
            assert keyword_of(typed) is expected[key], typed


async def test_a_refused_menu_does_not_stop_the_channel(
    fake: FakeTelegramApi, received: Received, catalogue: Catalogue
) -> None:
    fake.fail_next("setMyCommands", 400, "Bad Request: BOT_COMMAND_INVALID")
    channel = TelegramChannel(make_settings(fake, secret=SECRET), FixedClock(NOW), catalogue=catalogue)
    await channel.start(received)
    try:
        assert fake.webhook is not None  # the webhook is registered all the same
        assert fake.commands == {}
    finally:
        await channel.stop()


async def test_a_repeated_update_is_handled_once_through_the_inbox(
    fake: FakeTelegramApi, sessions: SessionFactory, catalogue: Catalogue, vault: DataVault
) -> None:
    handle = KeyedHandler(
        sessions,
        vault,
        FixedClock(NOW),
        lambda m: [OutgoingMessage(ChannelKind.TELEGRAM, m.sender, "Dank u")],
    )
    inbox = Inbox(handle=handle)
    channel = TelegramChannel(
        make_settings(fake, secret=SECRET),
        FixedClock(NOW),
        per_chat_interval=0,
        catalogue=catalogue,
    )
    await channel.start(inbox.receive)
    app = FastAPI()
    app.include_router(channel.router(inbox.receive))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC) as http:
            update = payload("text")
            first = await post_update(http, update)
            again = await post_update(http, update)
        await drain(sessions, {ChannelKind.TELEGRAM: channel}, FixedClock(NOW), vault)
    finally:
        await channel.stop()
    assert (first.status_code, again.status_code) == (200, 200)
    assert len(handle.handled) == 1
    assert fake.sent_texts(ANNA) == ["Dank u"]


# --- polling ---------------------------------------------------------------------------------------
async def test_polling_hands_on_updates_in_order_and_confirms_them(
    fake: FakeTelegramApi, received: Received, catalogue: Catalogue
) -> None:
    texts = ["START", "JA", "Anna", "7511 AB 12"]
    for text in texts:
        update = payload("text")
        del update["update_id"]
        update["message"] = {**update["message"], "text": text}
        fake.push_update(update)
    fake.push_update({k: v for k, v in payload("edited_message").items() if k != "update_id"})
    fake.push_update({k: v for k, v in payload("location").items() if k != "update_id"})
    channel = TelegramChannel(
        make_settings(fake, secret=None),
        FixedClock(NOW),
        per_chat_interval=0,
        poll_timeout=0.5,
        catalogue=catalogue,
    )
    await channel.start(received)
    try:
        messages = await received.wait_for(len(texts) + 1)
    finally:
        await channel.stop()
    assert [m.text for m in messages[: len(texts)]] == texts
    assert messages[-1].location == GeoPoint(lat=52.255851, lon=6.163236)
    ids = [int(m.provider_id.removeprefix("update:")) for m in messages if m.provider_id]
    assert ids == sorted(ids)
    assert fake.calls_to("deleteWebhook"), "polling needs the webhook gone"
    assert fake.pending_updates() == 0, "the last offset was confirmed on stop"
    [poll, *_] = fake.calls_to("getUpdates")
    assert json.loads(poll.params["allowed_updates"]) == ["message", "callback_query"]


# --- sending ---------------------------------------------------------------------------------------
@pytest.fixture
async def sender(
    fake: FakeTelegramApi, received: Received, catalogue: Catalogue
) -> AsyncIterator[TelegramChannel]:
    channel = TelegramChannel(
        make_settings(fake, secret=None), FixedClock(NOW), per_chat_interval=0, catalogue=catalogue
    )
    yield channel
    await channel.stop()


def out(**fields: Any) -> OutgoingMessage:
    return OutgoingMessage(channel=ChannelKind.TELEGRAM, recipient=str(ANNA), **{"text": "Vraag", **fields})


KEYBOARDS: dict[str, tuple[OutgoingMessage, dict[str, Any]]] = {
    "yes_no_on_one_row": (
        out(buttons=("JA", "NEE")),
        {"keyboard": [[{"text": "JA"}, {"text": "NEE"}]], "one_time_keyboard": True, "resize_keyboard": True},
    ),
    "long_choices_one_per_row": (
        out(buttons=("Telegram", "WhatsApp", "SMS", "Telefoon")),
        {
            "keyboard": [
                [{"text": "Telegram"}],
                [{"text": "WhatsApp"}],
                [{"text": "SMS"}],
                [{"text": "Telefoon"}],
            ],
            "one_time_keyboard": True,
            "resize_keyboard": True,
        },
    ),
    "share_contact": (
        out(request_contact=True),
        {
            "keyboard": [[{"text": "Deel mijn nummer", "request_contact": True}]],
            "one_time_keyboard": True,
            "resize_keyboard": True,
        },
    ),
    "share_contact_label_in_the_language_of_the_question": (
        out(text="Which mobile number? Tap 'Share my number' or type it.", request_contact=True),
        {
            "keyboard": [[{"text": "Share my number", "request_contact": True}]],
            "one_time_keyboard": True,
            "resize_keyboard": True,
        },
    ),
    "share_location_and_skip": (
        out(request_location=True, buttons=("OVERSLAAN",)),
        {
            "keyboard": [[{"text": "Deel mijn locatie", "request_location": True}], [{"text": "OVERSLAAN"}]],
            "one_time_keyboard": True,
            "resize_keyboard": True,
        },
    ),
    "plain_text_removes_the_keyboard": (out(), {"remove_keyboard": True}),
}


@pytest.mark.parametrize("name", list(KEYBOARDS), ids=list(KEYBOARDS))
async def test_send_shapes_the_reply_keyboard(
    name: str, sender: TelegramChannel, fake: FakeTelegramApi
) -> None:
    message, keyboard = KEYBOARDS[name]
    receipt = await sender.send(message)
    [call] = fake.calls_to("sendMessage")
    assert int(call.params["chat_id"]) == ANNA
    assert call.params["text"] == message.text
    assert call.json("reply_markup") == keyboard
    assert receipt.provider_id.isdigit()


async def test_receipts_carry_telegrams_message_ids(sender: TelegramChannel) -> None:
    first = await sender.send(out(text="een"))
    second = await sender.send(out(text="twee"))
    assert int(second.provider_id) == int(first.provider_id) + 1


# A tiny JPEG as an action's public page serves it (the bytes only need to reach the fake unchanged).
PHOTO = b"\xff\xd8\xff\xe0" + b"burgernet-photo" * 20 + b"\xff\xd9"


@pytest.fixture
def photo_url() -> Iterator[str]:
    """A URL on loopback serving PHOTO as image/jpeg, as /a/<code>/photo does while an action runs."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(PHOTO)))
            self.end_headers()
            self.wfile.write(PHOTO)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/a/BN-4K7P/photo"
    server.shutdown()
    server.server_close()


async def test_an_alert_with_a_photo_goes_as_the_photo_with_the_alert_as_its_caption(
    sender: TelegramChannel, fake: FakeTelegramApi, photo_url: str
) -> None:
    text = "Burgernet BN-4K7P: Vermist: jongen (8), blauwe jas. Bel 112 als u hem ziet."
    receipt = await sender.send(out(text=text, photo_url=photo_url))
    [photo] = fake.photos
    assert (photo.chat_id, photo.ref, photo.caption, photo.content) == (ANNA, photo_url, text, PHOTO)
    assert receipt.provider_id == str(photo.message_id)
    assert fake.calls_to("sendMessage") == []


async def test_an_alert_too_long_for_a_caption_follows_its_photo(
    sender: TelegramChannel, fake: FakeTelegramApi, photo_url: str
) -> None:
    text = "Burgernet BN-4K7P: " + "Signalement. " * 90  # over Telegram's 1024 characters of caption
    receipt = await sender.send(out(text=text, photo_url=photo_url))
    [photo] = fake.photos
    assert (photo.caption, photo.content) == ("", PHOTO)
    assert fake.sent_texts(ANNA) == [text]
    [message] = fake.calls_to("sendMessage")
    assert [c.method for c in fake.calls if c.method.startswith("send")] == ["sendPhoto", "sendMessage"]
    assert int(receipt.provider_id) == photo.message_id + 1


async def test_a_photo_telegram_cannot_fetch_leaves_the_alert_as_text(
    sender: TelegramChannel, fake: FakeTelegramApi
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        gone = f"http://127.0.0.1:{closed.getsockname()[1]}/a/BN-4K7P/photo"
    await sender.send(out(text="Burgernet BN-4K7P: Vermist", photo_url=gone))
    assert fake.photos == []
    assert fake.sent_texts(ANNA) == ["Burgernet BN-4K7P: Vermist"]


FAILURES: dict[str, tuple[int, str, int | None, type[SendError], str, float | None]] = {
    "blocked": (403, BLOCKED, None, RecipientOptedOut, "403", None),
    "deactivated": (403, "Forbidden: user is deactivated", None, RecipientOptedOut, "403", None),
    "never_started": (
        403,
        "Forbidden: bot can't initiate conversation with a user",
        None,
        PermanentSendError,
        "403",
        None,
    ),
    "flood": (429, "Too Many Requests: retry after 7", 7, RetryableSendError, "429", 7.0),
    "chat_not_found": (400, CHAT_NOT_FOUND, None, PermanentSendError, "400", None),
    "bad_gateway": (502, "Bad Gateway", None, RetryableSendError, "network", None),
}


@pytest.mark.parametrize("name", list(FAILURES), ids=list(FAILURES))
async def test_send_failures_become_our_errors(
    name: str, sender: TelegramChannel, fake: FakeTelegramApi
) -> None:
    status, description, retry_after, error, code, wait = FAILURES[name]
    fake.fail_next("sendMessage", status, description, retry_after=retry_after)
    with pytest.raises(SendError) as caught:
        await sender.send(out())
    assert type(caught.value) is error
    assert caught.value.code == code
    assert caught.value.retry_after == wait


async def test_a_blocked_chat_stays_opted_out_and_others_still_get_messages(
    sender: TelegramChannel, fake: FakeTelegramApi
) -> None:
    fake.block(ANNA)
    with pytest.raises(RecipientOptedOut):
        await sender.send(out())
    receipt = await sender.send(OutgoingMessage(ChannelKind.TELEGRAM, "662345678", "Hallo"))
    assert receipt.provider_id
    assert fake.sent_texts() == ["Hallo"]


async def test_a_recipient_that_is_no_chat_id_is_refused_without_a_call(
    sender: TelegramChannel, fake: FakeTelegramApi
) -> None:
    with pytest.raises(PermanentSendError):
        await sender.send(OutgoingMessage(ChannelKind.TELEGRAM, "+31612345678", "Hallo"))
    assert fake.calls_to("sendMessage") == []


async def test_fetch_media_gets_a_photo_through_get_file(
    sender: TelegramChannel, fake: FakeTelegramApi
) -> None:
    fake.add_file("AgACAgQAAxkBAAIBXmVxS3", JPEG, file_path="photos/file_7.jpg")
    fetched = await sender.fetch_media("AgACAgQAAxkBAAIBXmVxS3", max_bytes=MAX_MEDIA_BYTES)
    assert (fetched.data, fetched.content_type) == (JPEG, "image/jpeg")
    assert fake.downloads == ["photos/file_7.jpg"]


@pytest.mark.parametrize(
    ("content", "file_path", "reason"),
    [
        pytest.param(JPEG, "photos/file_1.jpg", "too_large", id="over-our-limit"),
        pytest.param(b"<svg onload=alert(1)>", "photos/file_2.jpg", "type", id="not-an-image"),
        pytest.param(b"%PDF-1.7 x", "photos/file_3.jpg", "type", id="pdf-posing-as-jpeg"),
        pytest.param(
            JPEG + b"x" * (20 * 1024 * 1024), "documents/file_4.jpg", "too_large", id="over-bot-api"
        ),
    ],
)
async def test_fetch_media_refuses_what_we_do_not_keep(
    sender: TelegramChannel, fake: FakeTelegramApi, content: bytes, file_path: str, reason: str
) -> None:
    fake.add_file("AgACfile", content, file_path=file_path)
    limit = len(content) - 1 if reason == "too_large" else MAX_MEDIA_BYTES * 3
    with pytest.raises(MediaRefused) as refused:
        await sender.fetch_media("AgACfile", max_bytes=limit)
    assert refused.value.reason == reason
    if reason == "too_large":
        assert fake.downloads == []  # getFile's file_size says so: the bytes are never fetched


async def test_fetch_media_of_an_unknown_file_is_refused(
    sender: TelegramChannel, fake: FakeTelegramApi
) -> None:
    with pytest.raises(MediaRefused):
        await sender.fetch_media("no-such-file", max_bytes=MAX_MEDIA_BYTES)


def test_no_token_no_channel(fake: FakeTelegramApi, received: Received, catalogue: Catalogue) -> None:
    settings = make_settings(fake, secret=None).model_copy(update={"telegram_bot_token": None})
    with pytest.raises(TelegramNotConfigured):
        TelegramChannel(settings, FixedClock(NOW), catalogue=catalogue)


@pytest.mark.parametrize("secret", ["with space", "sla/sh", "x" * 257], ids=["space", "slash", "too_long"])
def test_a_secret_telegram_would_refuse_is_refused_at_start_up(
    secret: str, fake: FakeTelegramApi, received: Received, catalogue: Catalogue
) -> None:
    with pytest.raises(TelegramNotConfigured):
        TelegramChannel(make_settings(fake, secret=secret), FixedClock(NOW), catalogue=catalogue)


# --- our own pace of one message per second per chat -----------------------------------------------
class FakeTime:
    """A monotonic clock that only `sleep` moves."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_pacer_spaces_one_chat_and_leaves_others_alone() -> None:
    time = FakeTime()
    pacer = ChatPacer(1.0, monotonic=time.monotonic, sleep=time.sleep)
    await pacer.wait(1)
    await pacer.wait(2)
    await pacer.wait(1)
    await pacer.wait(1)
    assert time.sleeps == [1.0, 1.0]
    time.now += 5
    await pacer.wait(1)
    assert time.sleeps == [1.0, 1.0], "a chat quiet for a while is not delayed"


async def test_sends_to_one_chat_are_paced(
    fake: FakeTelegramApi, received: Received, catalogue: Catalogue
) -> None:
    time = FakeTime()
    channel = TelegramChannel(
        make_settings(fake, secret=None),
        FixedClock(NOW),
        per_chat_interval=1.0,
        monotonic=time.monotonic,
        sleep=time.sleep,
        catalogue=catalogue,
    )
    try:
        await asyncio.gather(*(channel.send(out(text=str(n))) for n in range(3)))
    finally:
        await channel.stop()
    assert time.sleeps == [1.0, 1.0]
    assert sorted(fake.sent_texts(ANNA)) == ["0", "1", "2"]
