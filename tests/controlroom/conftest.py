"""A small app with only the control room on a fresh database, and a logged-in client helper."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI

from bot.config import Settings, load_settings
from bot.controlroom import controlroom_router
from bot.texts import Catalogue
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.geo import PostcodeBook
from storage.models import OperatorRole
from storage.operators import create_operator
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
def app(runtime: FakeRuntime) -> FastAPI:
    """An app holding only the control room, plus three accounts."""
    hasher = cheap_hasher()
    with transaction(runtime.sessions) as session:
        for name, role, munis in (
            ("olga", OperatorRole.OPERATOR, ()),
            ("cor", OperatorRole.COORDINATOR, ("0153",)),
            ("ada", OperatorRole.ADMIN, ()),
        ):
            create_operator(
                session,
                username=name,
                password=PASSWORD,
                role=role,
                municipalities=munis,
                now=runtime.clock(),
                hasher=hasher,
            )
    application = FastAPI()
    application.include_router(controlroom_router(runtime, hasher=hasher, stream_poll_s=0.02))
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
