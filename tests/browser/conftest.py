"""A live control room on a loopback port for the browser tests, and Debian's Chromium via Playwright."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from bot.alerts import AlertTexts
from bot.channels.simulator import SimulatorChannel
from bot.clock import utcnow
from bot.config import Settings, load_settings
from bot.controlroom.deps import ControlRoom
from bot.controlroom.router import make_controlroom, routes_for
from bot.dispatch import Dispatcher
from bot.messages import ChannelKind
from bot.texts import Catalogue
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.geo import PostcodeBook
from storage.models import OperatorRole
from storage.operators import create_operator
from tests.actions.conftest import seed_person
from tests.controlroom.conftest import PASSWORD, FakeTipFeed, cheap_hasher

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


def _need_chromium() -> None:
    if CHROMIUM.exists() and shutil.which(str(CHROMIUM)):
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} is missing (CI installs Debian's chromium)")
    pytest.skip(f"{CHROMIUM} is missing")


class Served:
    """A uvicorn server in a thread on 127.0.0.1, which a test can take down and bring back on its port."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve (on a free port the first time, on the same port afterwards)."""
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        self.port = server.servers[0].sockets[0].getsockname()[1]
        self._server, self._thread = server, thread

    def stop(self) -> None:
        """Drop every connection at once, as a network failure or a server restart would."""
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._server.force_exit = True
        self._thread.join(timeout=10)


@dataclass
class LiveRoom:
    """The running control room and the handles a test moves it with."""

    url: str
    cr: ControlRoom
    tips: FakeTipFeed
    dispatcher: Dispatcher
    sessions: SessionFactory
    served: Served

    def drain(self) -> None:
        """Let the dispatcher send everything queued (to the simulator, as a provider would).

        In a thread of its own: Playwright's sync API keeps an event loop running in the test's thread.
        """
        worker = threading.Thread(target=asyncio.run, args=(self.dispatcher.drain(),))
        worker.start()
        worker.join(timeout=30)


@pytest.fixture
def live_room(
    sessions: SessionFactory, vault: DataVault, book: PostcodeBook, database_url: str
) -> Iterator[LiveRoom]:
    """Serve a control room with six participants near Enschede, on a free loopback port."""
    _need_chromium()
    settings: Settings = load_settings(database_url=database_url, dispatch_rate_limits=False)
    now = utcnow()
    for _ in range(4):
        seed_person(sessions, vault, now, at=ENSCHEDE, channels=[ChannelKind.TELEGRAM])
    for _ in range(2):
        seed_person(sessions, vault, now, at=ENSCHEDE, channels=[ChannelKind.SMS])
    hasher = cheap_hasher()
    with transaction(sessions) as session:
        for name, role, munis in (
            ("olga", OperatorRole.OPERATOR, ()),
            ("cor", OperatorRole.COORDINATOR, ("0153",)),
        ):
            create_operator(
                session,
                username=name,
                password=PASSWORD,
                role=role,
                municipalities=munis,
                now=now,
                hasher=hasher,
            )
    catalogue = Catalogue.load()
    tips = FakeTipFeed()

    @dataclass
    class Wiring:
        settings: Settings
        clock: object
        sessions: SessionFactory
        vault: DataVault
        book: PostcodeBook
        catalogue: Catalogue

    cr = make_controlroom(
        Wiring(settings, utcnow, sessions, vault, book, catalogue),  # type: ignore[arg-type]
        hasher=hasher,
        tips=tips,
        stream_poll_s=0.1,
    )
    simulator = SimulatorChannel()
    dispatcher = Dispatcher(
        sessions,
        dict.fromkeys(simulator.kinds, simulator),
        utcnow,
        settings,
        vault=vault,
        texts=AlertTexts(catalogue),
    )
    app = FastAPI()
    app.include_router(routes_for(cr))
    served = Served(app)
    served.start()
    try:
        yield LiveRoom(f"http://127.0.0.1:{served.port}", cr, tips, dispatcher, sessions, served)
    finally:
        served.stop()


@pytest.fixture
def browser() -> Iterator[object]:
    """Debian's Chromium, headless (never a downloaded browser)."""
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
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
