"""Tip photos end to end: a Telegram photo through the fake Bot API and Twilio media through the fake
Twilio API, fetched in the background, stored encrypted, served to operators and the API from our own
origin; URLs that are not https on Twilio, redirects to http, oversized and disguised files refused;
the retention purge takes the files with their tips."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import col, select
from twilio.request_validator import RequestValidator

from bot.app import create_app
from bot.channels.telegram import WEBHOOK_PATH
from bot.config import Settings, load_settings
from bot.runtime import Runtime, build_runtime
from bot.tips.wiring import Timings
from scheduler.jobs import JobContext, purge_retention
from storage.actions import close_action
from storage.crypto import new_data_key
from storage.db import transaction
from storage.models import Action, ActionOutcome, AuditEvent, OperatorRole, Tip, TipMedia
from storage.operators import create_operator
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock
from tests.controlroom.conftest import PASSWORD, cheap_hasher, csrf_of
from tests.e2e.serving import served
from tests.fakes.telegram_api import FakeTelegramApi
from tests.fakes.twilio_api import FakeTwilioApi
from tests.tips.conftest import Person, launch, person

TESTDATA = Path(__file__).parent.parent / "channels" / "testdata"
JPEG = (TESTDATA / "media" / "photo.jpg").read_bytes()
PNG = (TESTDATA / "media" / "photo.png").read_bytes()
TOKEN = "7000000001:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0"
SECRET = "media-webhook-secret_0123456789"
ACCOUNT_SID = "AC" + "d" * 32
AUTH_TOKEN = "media-auth-token-0123456789abcdef"
OUR_NUMBER = "+3197010254321"
API_TOKEN = "media-api-token-0123456789"
PUBLIC = "http://127.0.0.1:8080"
WAIT_S = 15.0
MAX_BYTES = 10_000_000


@dataclass
class Room:
    """The app on loopback with Telegram and Twilio at their fakes."""

    runtime: Runtime
    http: httpx.AsyncClient
    telegram: FakeTelegramApi
    twilio: FakeTwilioApi
    settings: Settings


@pytest.fixture
def telegram() -> Iterator[FakeTelegramApi]:
    with FakeTelegramApi(TOKEN, max_poll_s=0.5) as api:
        yield api


@pytest.fixture
def twilio() -> Iterator[FakeTwilioApi]:
    with FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN) as api:
        yield api


@pytest.fixture
async def room(
    database_url: str, clock: FixedClock, telegram: FakeTelegramApi, twilio: FakeTwilioApi
) -> AsyncIterator[Room]:
    settings = load_settings(
        database_url=database_url,
        data_key=new_data_key(),
        public_base_url=PUBLIC,
        api_token=API_TOKEN,
        telegram_bot_token=TOKEN,
        telegram_api_base_url=telegram.base_url,
        telegram_webhook_secret=SECRET,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_sms_from=OUR_NUMBER,
        twilio_whatsapp_from=OUR_NUMBER,
        twilio_api_base_url=twilio.base_url,
        privacy_statement_version="2026-1",
        tip_media_max_bytes=MAX_BYTES,
        controlroom_webhook_url=None,
        controlroom_telegram_chat_id=None,
    )
    runtime = build_runtime(
        settings,
        clock=clock,
        run_migrations=False,
        telegram_options={"per_chat_interval": 0},
        timings=Timings(stream_poll_s=0.1, forwarder_poll_s=0.1),
    )
    with transaction(runtime.sessions) as session:
        for name, role, munis in (
            ("olga", OperatorRole.OPERATOR, ()),
            ("cor", OperatorRole.COORDINATOR, ("0153",)),
        ):
            create_operator(
                session, username=name, password=PASSWORD, role=role, municipalities=munis,
                now=clock(), hasher=cheap_hasher(),
            )  # fmt: skip
    async with served(create_app(runtime)) as http:
        yield Room(runtime, http, telegram, twilio, settings)


@asynccontextmanager
async def log_in(room: Room, username: str = "olga") -> AsyncIterator[httpx.AsyncClient]:
    """A second client on the same app with an operator's session."""
    async with httpx.AsyncClient(base_url=str(room.http.base_url), timeout=30) as client:
        page = await client.get("/controlroom/login")
        data = {"username": username, "password": PASSWORD, "csrf_token": csrf_of(page.text)}
        done = await client.post("/controlroom/login", data=data)
        assert done.status_code == 303, done.text
        yield client


def media_rows(room: Room) -> list[TipMedia]:
    with room.runtime.sessions() as session:
        return list(session.exec(select(TipMedia).order_by(col(TipMedia.id))))


async def settled(room: Room, count: int) -> list[TipMedia]:
    """The tips' files once `count` of them are no longer waiting to be fetched (bounded wait)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        rows = await asyncio.to_thread(media_rows, room)
        if len([r for r in rows if r.state != "pending"]) >= count:
            return rows
        assert time.monotonic() < deadline, f"files still pending: {[(r.state, r.reason) for r in rows]}"
        await asyncio.sleep(0.05)


def telegram_photo(anna: Person, update_id: int) -> dict[str, Any]:
    update: dict[str, Any] = json.loads((TESTDATA / "telegram" / "photo.json").read_text(encoding="utf-8"))
    update["update_id"] = update_id
    update["message"]["from"]["id"] = update["message"]["chat"]["id"] = int(anna.sender)
    return update


def twilio_form(who: Person, sid: str, **media: str) -> dict[str, str]:
    form: dict[str, str] = json.loads(
        (TESTDATA / "twilio" / "whatsapp_media.json").read_text(encoding="utf-8")
    )
    prefix = "whatsapp:" if who.channel is ChannelKind.WHATSAPP else ""
    form.update(
        From=prefix + who.sender, To=prefix + OUR_NUMBER, WaId=who.sender.lstrip("+"), AccountSid=ACCOUNT_SID,
        MessageSid=sid, SmsMessageSid=sid, SmsSid=sid, **media,
    )  # fmt: skip
    form.pop("OriginalRepliedMessageSid", None)
    form.pop("OriginalRepliedMessageSender", None)
    form["Body"] = "Ik zag de auto net bij het station"
    if who.channel is ChannelKind.SMS:
        for whatsapp_only in ("WaId", "ProfileName", "MessageType"):
            form.pop(whatsapp_only, None)
    return form


async def post_twilio(room: Room, who: Person, form: dict[str, str]) -> None:
    path = "/webhooks/twilio/whatsapp" if who.channel is ChannelKind.WHATSAPP else "/webhooks/twilio/sms"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC + path, form)
    response = await room.http.post(
        path,
        content=urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )
    assert response.status_code == 200, response.text


def only_tip(room: Room) -> Tip:
    with room.runtime.sessions() as session:
        [tip] = session.exec(select(Tip)).all()
        return tip


async def test_a_telegram_photo_is_fetched_stored_encrypted_and_shown_to_operators_only(
    room: Room, clock: FixedClock
) -> None:
    anna = person(room.runtime.sessions, room.runtime.vault, clock(), ChannelKind.TELEGRAM)
    action = launch(room.runtime.sessions, clock(), anna)
    room.telegram.add_file("AgACAgQAAxkBAAIBXmVxS3", JPEG, file_path="photos/file_42.jpg")
    response = await room.http.post(
        WEBHOOK_PATH,
        json=telegram_photo(anna, 900_000_001),
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
    )
    assert response.status_code == 200

    [row] = await settled(room, 1)
    assert (row.state, row.content_type, row.size, row.position) == ("stored", "image/jpeg", len(JPEG), 1)
    # The largest size of the photo, through getFile and Telegram's file URL.
    assert [c.params["file_id"] for c in room.telegram.calls_to("getFile")] == ["AgACAgQAAxkBAAIBXmVxS3"]
    assert room.telegram.downloads == ["photos/file_42.jpg"]

    # At rest: only ciphertext, no JPEG in any form; the file id is not kept once fetched.
    with room.runtime.engine.connect() as connection:
        [(raw, ref)] = connection.execute(sa.text("SELECT data_enc, ref FROM tip_media")).all()
    stored = str(raw).encode()
    assert b"\xff\xd8\xff" not in stored and b"JFIF" not in stored
    assert base64.b64encode(JPEG[:30]) not in stored and base64.urlsafe_b64encode(JPEG[:30]) not in stored
    assert ref == ""

    tip = only_tip(room)
    url = f"/controlroom/tips/{tip.id}/media/1"
    async with log_in(room) as operator:
        page = await operator.get(f"/controlroom/actions/{action.id}")
        assert f'<img src="{url}"' in page.text
        assert "AgACAgQ" not in page.text, "the provider's file id is never a URL in the page"
        assert "img-src 'self'" in page.headers["content-security-policy"]
        photo = await operator.get(url)
        assert photo.status_code == 200 and photo.content == JPEG
        assert photo.headers["content-type"] == "image/jpeg"
        assert photo.headers["cache-control"] == "no-store"
        assert photo.headers["x-content-type-options"] == "nosniff"
        assert photo.headers["content-disposition"].startswith("inline")
        assert (await operator.get(f"/controlroom/tips/{tip.id}/media/2")).status_code == 404

    # Logged out: no photo, only the way to the login page.
    anonymous = await room.http.get(url)
    assert anonymous.status_code in (303, 401) and anonymous.content != JPEG
    async with httpx.AsyncClient(
        base_url=str(room.http.base_url), cookies={"cr_session": "forged"}
    ) as stranger:
        forged = await stranger.get(url)
    assert forged.status_code in (303, 401) and forged.content != JPEG
    # Coordinators never see tips, so never their photos either.
    async with log_in(room, "cor") as coordinator:
        assert (await coordinator.get(url)).status_code == 403

    # The API gives our own URL, which serves the photo with the API token only.
    listed = await room.http.get("/api/v1/tips", headers={"Authorization": f"Bearer {API_TOKEN}"})
    [shown] = listed.json()
    assert shown["media"] == [f"/api/v1/tips/{tip.id}/media/1"]
    assert "AgACAgQ" not in listed.text
    by_api = await room.http.get(shown["media"][0], headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert by_api.status_code == 200 and by_api.content == JPEG
    assert by_api.headers["cache-control"] == "no-store"
    assert (await room.http.get(shown["media"][0])).status_code == 401


@pytest.mark.parametrize("channel", [ChannelKind.WHATSAPP, ChannelKind.SMS], ids=["whatsapp", "mms"])
async def test_twilio_media_is_fetched_with_basic_auth_and_the_cdn_never_gets_the_credentials(
    room: Room, clock: FixedClock, channel: ChannelKind
) -> None:
    sanne = person(room.runtime.sessions, room.runtime.vault, clock(), channel)
    launch(room.runtime.sessions, clock(), sanne)
    sid = "MM" + "5" * 32
    jpeg, png = (
        room.twilio.add_media(JPEG, message_sid=sid),
        room.twilio.add_media(PNG, "image/png", message_sid=sid),
    )
    form = twilio_form(
        sanne, sid, NumMedia="2", MediaUrl0=jpeg, MediaContentType0="image/jpeg", MediaUrl1=png,
        MediaContentType1="image/png",
    )  # fmt: skip
    await post_twilio(room, sanne, form)

    rows = await settled(room, 2)
    assert [(r.state, r.content_type, r.channel) for r in rows] == [
        ("stored", "image/jpeg", channel), ("stored", "image/png", channel),
    ]  # fmt: skip
    fetched = room.twilio.media_requests()
    api = [r for r in fetched if r.kind == "Media"]
    cdn = [r for r in fetched if r.kind == "CDN"]
    assert len(api) == 2 and all(r.authorized and r.status == 307 for r in api)
    assert len(cdn) == 2 and not any(r.credentials_sent for r in cdn)

    tip = only_tip(room)
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    first = await room.http.get(f"/api/v1/tips/{tip.id}/media/1", headers=auth)
    second = await room.http.get(f"/api/v1/tips/{tip.id}/media/2", headers=auth)
    assert (first.content, second.content) == (JPEG, PNG)
    listed = (await room.http.get("/api/v1/tips", headers=auth)).json()
    assert listed[0]["media"] == [f"/api/v1/tips/{tip.id}/media/1", f"/api/v1/tips/{tip.id}/media/2"]
    assert "twilio.com" not in json.dumps(listed), "Twilio's URLs (which need our credentials) stay inside"
    assert second.headers["content-type"] == "image/png"


async def test_twilio_without_our_credentials_gets_no_file(room: Room, clock: FixedClock) -> None:
    # The fake checks basic auth as Twilio does: a request with other credentials is refused.
    url = room.twilio.add_media(JPEG)
    local = url.replace("https://api.twilio.com", room.twilio.base_url)
    assert httpx.get(local, auth=(ACCOUNT_SID, "wrong")).status_code == 401
    assert httpx.get(local).status_code == 401


@pytest.mark.parametrize(
    "media_url",
    [
        pytest.param(
            "http://api.twilio.com/2010-04-01/Accounts/{sid}/Messages/{mm}/Media/{me}", id="http-twilio"
        ),
        pytest.param("{base}/2010-04-01/Accounts/{sid}/Messages/{mm}/Media/{me}", id="http-loopback-fake"),
        pytest.param("https://attacker.example/2010-04-01/Accounts/{sid}/Media/{me}", id="https-elsewhere"),
        pytest.param("https://api.twilio.com.attacker.example/x/{me}", id="twilio-lookalike"),
    ],
)
async def test_a_media_url_that_is_not_https_on_twilio_is_refused(
    room: Room, clock: FixedClock, media_url: str
) -> None:
    sanne = person(room.runtime.sessions, room.runtime.vault, clock(), ChannelKind.WHATSAPP)
    launch(room.runtime.sessions, clock(), sanne)
    real = room.twilio.add_media(JPEG, message_sid="MM" + "6" * 32)
    me = real.rsplit("/", 1)[1]
    url = media_url.format(base=room.twilio.base_url, sid=ACCOUNT_SID, mm="MM" + "6" * 32, me=me)
    await post_twilio(room, sanne, twilio_form(sanne, "MM" + "6" * 32, MediaUrl0=url))

    tip = only_tip(room)  # the words still make a tip
    assert tip.media == [] and media_rows(room) == []
    await asyncio.sleep(0.3)  # the worker's poll: it must find nothing to fetch
    assert room.twilio.media_requests() == []


@pytest.mark.parametrize(
    ("content", "declared", "redirect", "reason"),
    [
        pytest.param(JPEG + b"\0" * MAX_BYTES, "image/jpeg", "https", "too_large", id="over-10-mb"),
        pytest.param(b"<html><script>alert(1)</script>", "image/jpeg", "https", "type", id="html-as-jpeg"),
        pytest.param(JPEG, "image/png", "https", "type", id="declared-otherwise"),
        pytest.param(JPEG, "image/jpeg", "http", "url", id="redirect-to-http"),
    ],
)
async def test_files_we_do_not_keep_are_refused_and_the_page_says_why(
    room: Room, clock: FixedClock, content: bytes, declared: str, redirect: str, reason: str
) -> None:
    sanne = person(room.runtime.sessions, room.runtime.vault, clock(), ChannelKind.WHATSAPP)
    action = launch(room.runtime.sessions, clock(), sanne)
    url = room.twilio.add_media(content, declared, message_sid="MM" + "7" * 32, redirect=redirect)
    await post_twilio(
        room, sanne, twilio_form(sanne, "MM" + "7" * 32, MediaUrl0=url, MediaContentType0=declared)
    )

    [row] = await settled(room, 1)
    assert (row.state, row.reason, row.data_enc) == ("refused", reason, None)
    if redirect == "http":
        assert [r.kind for r in room.twilio.media_requests()] == ["Media"], "the http URL is never fetched"
    tip = only_tip(room)
    async with log_in(room) as operator:
        page = await operator.get(f"/controlroom/actions/{action.id}")
        assert (
            room.runtime.catalogue.render("nl", f"controlroom.tip.media_refused.{reason}", n=1) in page.text
        )
        assert f"/controlroom/tips/{tip.id}/media/1" not in page.text
        assert (await operator.get(f"/controlroom/tips/{tip.id}/media/1")).status_code == 404


async def test_a_provider_outage_is_retried_then_the_file_arrives(room: Room, clock: FixedClock) -> None:
    sanne = person(room.runtime.sessions, room.runtime.vault, clock(), ChannelKind.WHATSAPP)
    launch(room.runtime.sessions, clock(), sanne)
    url = room.twilio.add_media(JPEG, message_sid="MM" + "8" * 32)
    room.twilio.stop()  # Twilio unreachable: the tip is stored all the same, the file waits
    await post_twilio(room, sanne, twilio_form(sanne, "MM" + "8" * 32, MediaUrl0=url))
    deadline = time.monotonic() + WAIT_S
    while not (rows := media_rows(room)) or rows[0].attempts < 1:
        assert time.monotonic() < deadline, "no attempt was made"
        await asyncio.sleep(0.05)
    assert rows[0].state == "pending" and rows[0].data_enc is None
    assert only_tip(room).text  # the tip reached the control room without its photo


def test_the_retention_purge_removes_the_files_with_their_tips(
    sessions: Any, vault: Any, clock: FixedClock, database_url: str
) -> None:
    from storage.tips import TipFacts, create_tip

    settings = load_settings(database_url=database_url)
    jan = person(sessions, vault, clock())
    action = launch(sessions, clock(), jan)
    with transaction(sessions) as session:
        from storage.models import ChannelIdentity

        identity = session.get(ChannelIdentity, jan.identity_id)
        assert identity is not None
        tip = create_tip(
            session, action=session.get(Action, action.id), identity=identity, participant=None,  # type: ignore[arg-type]
            vault=vault, text="foto", facts=TipFacts(media=("https://api.twilio.com/x",)), truncated=False,
            now=clock(), webhook=False,
        )  # fmt: skip
        row = session.exec(select(TipMedia).where(TipMedia.tip_id == tip.id)).one()
        row.state, row.data_enc, row.ref = "stored", vault.encrypt_bytes(JPEG), ""
        session.add(row)
    with transaction(sessions) as session:
        running = session.get(Action, action.id)
        assert running is not None
        close_action(session, action=running, outcome=ActionOutcome.FOUND, closing_text="", now=clock())
    context = JobContext(sessions=sessions, settings=settings, clock=clock, vault=vault, catalogue=None)  # type: ignore[arg-type]

    clock.advance(days=settings.retention_days - 1)
    purge_retention(context)
    with sessions() as session:
        assert len(session.exec(select(TipMedia)).all()) == 1, "kept while the tip is"

    clock.advance(days=2)
    result = purge_retention(context)
    assert result.counts["purged.tip_media"] == 1 and result.counts["purged.tip"] == 1
    with sessions() as session:
        assert session.exec(select(TipMedia)).all() == []
        summary = session.exec(select(AuditEvent).where(AuditEvent.event == "retention_purged")).one()
    assert summary.detail["purged"]["tip_media"] == 1
