"""A small app with only the control room on a fresh database, and a logged-in client helper."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI

from bot.config import Settings, load_settings
from bot.controlroom.deps import ControlRoom
from bot.controlroom.router import make_controlroom, routes_for
from bot.controlroom.tipfeed import MediaFile, ThreadLine, TipNotFound, TipView
from bot.texts import Catalogue
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.geo import PostcodeBook
from storage.models import OperatorRole
from storage.operators import create_operator
from storage.regions import grant_everywhere
from tests.conftest import FixedClock

PASSWORD = "correct horse battery"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def cheap_hasher() -> PasswordHasher:
    """argon2id with tiny costs: the same code path, a thousand times faster."""
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@dataclass
class FakeRuntime:
    """The parts of the runtime the control room reads."""

    settings: Settings
    clock: FixedClock
    sessions: SessionFactory
    vault: DataVault
    book: PostcodeBook
    catalogue: Catalogue


@pytest.fixture
def runtime(
    sessions: SessionFactory, clock: FixedClock, vault: DataVault, book: PostcodeBook, database_url: str
) -> FakeRuntime:
    """A runtime on the test's own database with the fixed clock."""
    settings = load_settings(database_url=database_url, public_base_url="http://127.0.0.1:8080")
    return FakeRuntime(settings, clock, sessions, vault, book, Catalogue.load())


@pytest.fixture
def cr(runtime: FakeRuntime, tips: FakeTipFeed) -> ControlRoom:
    """The control room's shared objects, with a cheap hasher, the fake tips and a fast stream."""
    return make_controlroom(runtime, hasher=cheap_hasher(), tips=tips, stream_poll_s=0.02)


@pytest.fixture
def app(runtime: FakeRuntime, cr: ControlRoom) -> FastAPI:
    """An app holding only the control room, plus three accounts."""
    hasher = cr.hasher
    with transaction(runtime.sessions) as session:
        for name, role, munis in (
            ("olga", OperatorRole.OPERATOR, ()),
            ("cor", OperatorRole.COORDINATOR, ("0153",)),
            ("ada", OperatorRole.ADMIN, ()),
        ):
            account = create_operator(
                session,
                username=name,
                password=PASSWORD,
                role=role,
                municipalities=munis,
                now=runtime.clock(),
                hasher=hasher,
            )
            if role != OperatorRole.COORDINATOR:
                grant_everywhere(session, operator=account, now=runtime.clock())
    application = FastAPI()
    application.include_router(routes_for(cr))
    return application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as http:
        yield http


def csrf_of(html: str) -> str:
    """The CSRF token in a page's first form."""
    found = CSRF_FIELD.search(html)
    assert found, "page has no CSRF field"
    return found.group(1)


async def login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    """Fetch the login form and post it."""
    page = await client.get("/controlroom/login")
    return await client.post(
        "/controlroom/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(page.text)},
    )


async def page_csrf(client: httpx.AsyncClient, path: str = "/controlroom/figures") -> str:
    """The CSRF token of the logged-in session, read from a page."""
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return csrf_of(response.text)


class FakeTipFeed:
    """Tips held in memory, standing in for tip handling (issue 5)."""

    available = True

    def __init__(self) -> None:
        self.items: list[TipView] = []
        self.replies: list[tuple[int, str, str]] = []
        self.phones: dict[int, str] = {}
        self.files: dict[tuple[int, int], MediaFile] = {}

    def add(self, action_id: int, text: str, **fields: Any) -> TipView:
        """Store a tip as if a tipster just sent it."""
        tip = TipView(
            id=len(self.items) + 1,
            action_id=action_id,
            channel=fields.pop("channel", "sms"),
            received_at=fields.pop("received_at", datetime(2026, 11, 20, 14, 31, tzinfo=UTC)),
            text=text,
            reporter=fields.pop("reporter", f"R-{len(self.items) + 1:04d}"),
            **fields,
        )
        self.items.append(tip)
        return tip

    def _find(self, action_id: int, tip_id: int) -> TipView:
        for tip in self.items:
            if tip.id == tip_id and tip.action_id == action_id:
                return tip
        raise TipNotFound(tip_id)

    def tips(self, *, action_id: int, after: int = 0, limit: int = 200) -> list[TipView]:
        """The action's tips after an id."""
        return [t for t in self.items if t.action_id == action_id and t.id > after][:limit]

    def changed(self, *, action_id: int, since: datetime, upto: int) -> list[TipView]:
        """The action's tips up to an id that changed after a time."""
        return [
            t
            for t in self.items
            if t.action_id == action_id and t.id <= upto and t.updated_at is not None and t.updated_at > since
        ]

    def mark(self, *, action_id: int, tip_id: int, useful: bool, actor: str) -> TipView:
        """Record a verdict."""
        tip = self._find(action_id, tip_id)
        marked = replace(tip, verdict="useful" if useful else "not_useful")
        self.items[self.items.index(tip)] = marked
        return marked

    async def reply(self, *, action_id: int, tip_id: int, text: str, actor: str) -> None:
        """Remember the reply; it joins the tip's conversation."""
        tip = self._find(action_id, tip_id)
        self.replies.append((tip_id, text, actor))
        thread = tip.thread or [ThreadLine("in", tip.text, tip.received_at)]
        at = tip.received_at + timedelta(minutes=2)
        self.items[self.items.index(tip)] = replace(tip, thread=[*thread, ThreadLine("out", text, at)])

    def phone(self, *, action_id: int, tip_id: int, actor: str) -> str:
        """The tipster's number."""
        self._find(action_id, tip_id)
        return self.phones.get(tip_id, "+31612345678")

    def media(self, *, tip_id: int, position: int) -> MediaFile:
        """A stored file of a tip (none here unless a test puts one in `files`)."""
        try:
            return self.files[(tip_id, position)]
        except KeyError:
            raise TipNotFound(tip_id) from None


@pytest.fixture
def tips() -> FakeTipFeed:
    """The in-memory tip feed the test app uses."""
    return FakeTipFeed()
