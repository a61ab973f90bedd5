"""The whole app (`create_app(build_runtime(settings))`, as `serve` runs it) on a loopback port for the
browser tests, with Twilio (SMS, WhatsApp) pointed at a local fake, and Debian's Chromium via Playwright."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from twilio.request_validator import RequestValidator

from bot.app import create_app
from bot.config import Settings, load_settings
from bot.runtime import Runtime, build_runtime
from bot.services.actions import ActionService
from bot.tips.wiring import Timings
from storage.crypto import new_data_key
from storage.db import transaction
from storage.models import OperatorRole
from storage.operators import create_operator
from storage.regions import grant_everywhere
from storage.vocabulary import ChannelKind
from tests.actions.conftest import seed_person
from tests.controlroom.conftest import PASSWORD, cheap_hasher
from tests.fakes.twilio_api import FakeTwilioApi

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
ENSCHEDE = (52.2215, 6.8937)
ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "brws" * 8
OUR_NUMBER = "+3197010254321"
WAIT_S = 15.0
_sids = itertools.count(1)
T = TypeVar("T")


def _need_chromium() -> None:
    if CHROMIUM.exists() and shutil.which(str(CHROMIUM)):
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} is missing (CI installs Debian's chromium)")
    pytest.skip(f"{CHROMIUM} is missing")


def _listening(port: int) -> socket.socket:
    """A loopback socket bound to `port` (0: a free one), reusable at once after a restart."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


class Served:
    """The app served by uvicorn from an event loop in a thread of its own, the runtime started once.

    `serve` starts the runtime in the app's lifespan. Here a test takes the HTTP server down and brings
    it back on the same port (an outage as the browser sees it). With the lifespan on, that restart would
    stop and start the runtime too, which `serve` never does: its stop closes the Twilio channel's HTTP
    client for good (made once, by `build_runtime`), and what we test is the browser losing the server,
    not the workers restarting. So uvicorn runs with lifespan off and this class does the lifespan's
    work once: `runtime.start()` in the server's loop before the first request, `runtime.stop()` at the
    end. Dispatcher, tip forwarder, scheduler and request handlers thus share one loop, as under `serve`.
    """

    def __init__(self, app: FastAPI, runtime: Runtime, sock: socket.socket) -> None:
        self.app = app
        self.runtime = runtime
        self.port: int = sock.getsockname()[1]
        self._sock: socket.socket | None = sock
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="served-app", daemon=True)
        self._thread.start()
        self._server: uvicorn.Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self._running = False

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = WAIT_S) -> T:
        """Run a coroutine in the app's loop and wait (bounded) for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> None:
        """Serve HTTP (on the first socket, then on the same port); the first time, start the runtime."""
        if not self._running:
            self.run(self.runtime.start())
            self._running = True
        sock, self._sock = self._sock or _listening(self.port), None
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
        server = uvicorn.Server(config)

        async def begin() -> asyncio.Task[None]:
            return asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")

        self._serving = self.run(begin())
        deadline = time.monotonic() + WAIT_S
        while not server.started:
            assert not self._serving.done() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        self._server = server

    def stop(self) -> None:
        """Drop every connection at once, as a network failure or a server restart would."""
        server, serving = self._server, self._serving
        assert server is not None and serving is not None
        self._server = self._serving = None

        async def down() -> None:
            server.should_exit = server.force_exit = True
            # Uvicorn lets a streaming response (the page's event stream) run on after a shutdown: cut
            # the connections, as a real outage would, until the server is gone.
            while not serving.done():
                for connection in list(server.server_state.connections):
                    connection.transport.close()  # type: ignore[attr-defined]
                await asyncio.sleep(0.02)
            await serving

        self.run(down())

    def close(self) -> None:
        """Stop serving, stop the runtime (as the lifespan's end would) and the loop."""
        if self._server is not None:
            self.stop()
        try:
            if self._running:
                self.run(self.runtime.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=WAIT_S)
            self._loop.close()


def twilio_form(channel: ChannelKind, sender: str, text: str, **extra: str) -> dict[str, str]:
    """An inbound message form as Twilio posts it (see tests/channels/testdata/twilio)."""
    sid = f"SM{next(_sids):032x}"
    prefix = "whatsapp:" if channel is ChannelKind.WHATSAPP else ""
    form = {
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": text,
        "To": prefix + OUR_NUMBER,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": prefix + sender,
        "ApiVersion": "2010-04-01",
    }
    if channel is ChannelKind.WHATSAPP:
        form |= {"ProfileName": "Sanne", "WaId": sender.lstrip("+"), "MessageType": "text"}
    return form | extra


def receipt_form(sid: str, to: str, status: str, **extra: str) -> dict[str, str]:
    """A delivery receipt as Twilio posts it to the StatusCallback."""
    channel = "whatsapp:" if to.startswith("whatsapp:") else ""
    form = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "To": to,
        "From": channel + OUR_NUMBER,
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
    }
    return form | extra


def signed(settings: Settings, path: str, form: dict[str, str]) -> dict[str, Any]:
    """The body and headers of a webhook as Twilio sends it: signed over our public URL."""
    signature = RequestValidator(AUTH_TOKEN).compute_signature(settings.public_base_url + path, form)
    return {
        "content": urlencode(form).encode("utf-8"),
        "headers": {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    }


@dataclass
class LiveRoom:
    """The running app and the handles a test moves it with: the fake Twilio and signed webhooks."""

    url: str
    settings: Settings
    runtime: Runtime
    fake: FakeTwilioApi
    served: Served
    sms: list[str]
    """The phone numbers of the participants on SMS."""
    whatsapp: list[str]
    """The phone numbers of the participants on WhatsApp."""

    def post_signed(self, path: str, form: dict[str, str]) -> httpx.Response:
        """POST a webhook to the app as Twilio does."""
        with httpx.Client(base_url=self.url, timeout=WAIT_S) as http:
            return http.post(path, **signed(self.settings, path, form))

    def sent(self, to: str, count: int) -> list[dict[str, str]]:
        """The messages fake Twilio accepted for an address, once (bounded wait) `count` have arrived."""
        deadline = time.monotonic() + WAIT_S
        while True:
            got = [m for m in self.fake.messages() if m["To"] == to]
            if len(got) >= count:
                return got
            assert time.monotonic() < deadline, f"only {len(got)} of {count} messages reached {to}"
            time.sleep(0.05)

    def actions(self) -> ActionService:
        """The actions' use cases on the running app's storage, as the API builds them."""
        runtime = self.runtime
        return ActionService(
            sessions=runtime.sessions,
            clock=runtime.clock,
            book=runtime.book,
            texts=runtime.texts,
            settings=self.settings,
        )

    def sids(self, to: str) -> list[str]:
        """The sids fake Twilio gave the messages to an address, oldest first."""
        return [r.sid for r in self.fake.requests if r.sid and r.form.get("To") == to]


def _settings(database_url: str, fake: FakeTwilioApi, port: int) -> Settings:
    return load_settings(
        database_url=database_url,
        data_key=new_data_key(),
        # What Twilio calls and signs; loopback http, so the session cookie is not `Secure` here.
        public_base_url=f"http://127.0.0.1:{port}",
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_sms_from=OUR_NUMBER,
        twilio_whatsapp_from=OUR_NUMBER,
        twilio_api_base_url=fake.base_url,
        # No Telegram: its kinds go to the simulator; every participant here is on Twilio, which reports.
        telegram_bot_token=None,
        simulator=True,
        whatsapp_template_default="HX" + "a" * 32,
        whatsapp_template_closing="HX" + "c" * 32,
        dispatch_rate_limits=False,
        dispatch_poll_interval_s=0.05,
        scheduler_leader_poll_seconds=0.05,
        controlroom_webhook_url=None,
        controlroom_telegram_chat_id=None,
    )


# The tip services with short polls (the tests wait on what they do, not on a timer).
TIMINGS = Timings(stream_poll_s=0.1, forwarder_poll_s=0.1)


@pytest.fixture
def live_room(database_url: str) -> Iterator[LiveRoom]:
    """The app with four participants on SMS and two on WhatsApp near Enschede, on a loopback port."""
    _need_chromium()
    with contextlib.ExitStack() as stack:
        fake = stack.enter_context(FakeTwilioApi(ACCOUNT_SID, AUTH_TOKEN))
        sock = _listening(0)
        stack.callback(sock.close)  # uvicorn closes it when it stops; this covers a failed start
        settings = _settings(database_url, fake, sock.getsockname()[1])
        runtime = build_runtime(settings, run_migrations=False, timings=TIMINGS)
        now = runtime.clock()
        people = [
            seed_person(runtime.sessions, runtime.vault, now, at=ENSCHEDE, channels=[channel])
            for channel in [ChannelKind.SMS] * 4 + [ChannelKind.WHATSAPP] * 2
        ]
        hasher = cheap_hasher()  # verified by the app's own hasher (and rehashed by it at login)
        with transaction(runtime.sessions) as session:
            for name, role, munis in (
                ("olga", OperatorRole.OPERATOR, ()),
                ("cor", OperatorRole.COORDINATOR, ("0153",)),
            ):
                account = create_operator(
                    session,
                    username=name,
                    password=PASSWORD,
                    role=role,
                    municipalities=munis,
                    now=now,
                    hasher=hasher,
                )
                if role != OperatorRole.COORDINATOR:
                    grant_everywhere(session, operator=account, now=now)
        served = Served(create_app(runtime), runtime, sock)
        stack.callback(served.close)
        served.start()
        room = LiveRoom(
            url=f"http://127.0.0.1:{served.port}",
            settings=settings,
            runtime=runtime,
            fake=fake,
            served=served,
            sms=[p.addresses[ChannelKind.SMS] for p in people[:4]],
            whatsapp=[p.addresses[ChannelKind.WHATSAPP] for p in people[4:]],
        )
        _until(lambda: httpx.get(f"{room.url}/healthz").status_code == 200, "the app is not healthy")
        yield room


def _until(condition: Callable[[], bool], failure: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.05)


@pytest.fixture
def browser() -> Iterator[object]:
    """Debian's Chromium, headless (never a downloaded browser)."""
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        from playwright.sync_api import expect

        # Two cores shared with other test runs: a little more room than Playwright's 5 s per wait.
        expect.set_options(timeout=10_000)
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def shot(page: object, name: str) -> Path:
    """Save a full-page screenshot under artifacts/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path


def post_to_another_worker(room: LiveRoom, path: str, form: dict[str, str]) -> httpx.Response:
    """A signed webhook handled by a second app on the same database (another worker of the same
    deployment), without its background work, while the first one's HTTP server is down."""

    async def handle() -> httpx.Response:
        other = build_runtime(room.settings, run_migrations=False, timings=TIMINGS)
        try:
            transport = httpx.ASGITransport(app=create_app(other))
            async with httpx.AsyncClient(transport=transport, base_url=room.url, timeout=WAIT_S) as http:
                return await http.post(path, **signed(room.settings, path, form))
        finally:
            await other.stop()

    # In a thread of its own: Playwright's sync API keeps an event loop running in the test's thread.
    result: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: result.append(asyncio.run(handle())))
    worker.start()
    worker.join(timeout=WAIT_S * 2)
    assert result, "the second worker did not answer"
    return result[0]
