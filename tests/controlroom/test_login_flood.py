"""Attacks on the login form: guessing from one address and from many, probing for usernames, and a
flood of bad logins against the event loop. Nothing locks an account, every answer is the same for an
unknown, an inactive and a real account, and argon2 runs in worker threads, at most two at once.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlmodel import col, select

from bot.controlroom.deps import ControlRoom
from bot.controlroom.router import make_controlroom, routes_for
from bot.controlroom.throttle import LoginThrottle
from storage.db import SessionFactory, transaction
from storage.models import AuditEvent, Operator, OperatorRole
from storage.operators import create_operator, set_active
from tests.conftest import FixedClock
from tests.controlroom.conftest import PASSWORD, FakeRuntime, FakeTipFeed, csrf_of

WRONG = "not the password at all"
CSRF_VALUE = re.compile(r'value="[A-Za-z0-9_-]{43}"')


class CountingHasher(PasswordHasher):
    """argon2id with tiny costs that counts its checks and notes the thread each ran on."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.checks = 0
        self.threads: set[str] = set()
        self.priorities: set[int] = set()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002 - the library's name
        self.checks += 1
        self.threads.add(threading.current_thread().name)
        self.priorities.add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return super().verify(hash, password)


class GatedHasher(CountingHasher):
    """Checks that wait until the test opens the gate, counting how many wait at once."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            self.gate.wait(timeout=30)
            return super().verify(hash, password)
        finally:
            with self.lock:
                self.running -= 1


def build(runtime: FakeRuntime, hasher: PasswordHasher) -> tuple[FastAPI, ControlRoom]:
    """The control room with this hasher and olga (operator), ada (admin) and old (deactivated)."""
    cr = make_controlroom(runtime, hasher=hasher, tips=FakeTipFeed(), stream_poll_s=0.02)
    with transaction(runtime.sessions) as session:
        for name, role in (
            ("olga", OperatorRole.OPERATOR),
            ("ada", OperatorRole.ADMIN),
            ("old", OperatorRole.OPERATOR),
        ):
            made = create_operator(
                session, username=name, password=PASSWORD, role=role, now=runtime.clock(), hasher=hasher
            )
            if name == "old":
                set_active(session, operator=made, active=False)
    app = FastAPI()
    app.include_router(routes_for(cr))
    return app, cr


@asynccontextmanager
async def browser(app: FastAPI, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A browser at this client address."""
    transport = httpx.ASGITransport(app=app, client=(address, 51000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as http:
        yield http


async def try_login(http: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    """Fetch the form (once per browser) and post it."""
    token = http.cookies.get("cr_pre")
    if token is None:
        token = csrf_of((await http.get("/controlroom/login")).text)
    return await http.post(
        "/controlroom/login", data={"username": username, "password": password, "csrf_token": token}
    )


def shown(response: httpx.Response) -> tuple[int, str, str | None]:
    """What a visitor sees: status, the page without its per-browser CSRF token, Retry-After."""
    return (
        response.status_code,
        CSRF_VALUE.sub('value=""', response.text),
        response.headers.get("retry-after"),
    )


def security_rows(sessions: SessionFactory) -> list[AuditEvent]:
    """The security events, oldest first."""
    with sessions() as session:
        query = (
            select(AuditEvent)
            .where(col(AuditEvent.event).startswith("security."))
            .order_by(col(AuditEvent.id))
        )
        return list(session.exec(query))


@pytest.fixture
def counting() -> CountingHasher:
    """The hasher the app checks passwords with."""
    return CountingHasher()


@pytest.fixture
def room_app(runtime: FakeRuntime, counting: CountingHasher) -> tuple[FastAPI, ControlRoom]:
    """The app and its control room."""
    return build(runtime, counting)


async def test_unknown_inactive_and_real_accounts_get_the_same_answer(
    room_app: tuple[FastAPI, ControlRoom], counting: CountingHasher
) -> None:
    app, _ = room_app
    answers: dict[str, Any] = {}
    for n, name in enumerate(("olga", "nobody", "old")):
        async with browser(app, f"10.1.0.{n + 1}") as http:
            before = counting.checks
            answers[name] = shown(await try_login(http, name, WRONG))
            # The same work for each: one argon2 check (a dummy hash for an unknown or inactive account).
            assert counting.checks - before == 1, name
    assert answers["olga"][0] == 401
    assert answers["olga"] == answers["nobody"] == answers["old"]
    async with browser(app, "10.1.0.9") as http:
        assert shown(await try_login(http, "old", PASSWORD)) == answers["olga"], (
            "the right password of a deactivated account"
        )


async def test_an_account_under_attack_answers_like_an_unknown_name_under_attack(
    room_app: tuple[FastAPI, ControlRoom],
) -> None:
    app, cr = room_app
    for name in ("olga", "nobody"):
        for n in range(cr.throttle.account_free):
            async with browser(app, f"10.2.{n}.1") as http:
                assert (await try_login(http, name, WRONG)).status_code == 401
    answers: dict[str, list[Any]] = {}
    for name, address in (("olga", "10.3.0.1"), ("nobody", "10.3.0.2")):
        async with browser(app, address) as http:
            answers[name] = [shown(await try_login(http, name, WRONG)) for _ in range(2)]
    assert [a[0] for a in answers["olga"]] == [401, 429], "a first try, then the account's pace"
    assert answers["olga"] == answers["nobody"], "no 423, no other page, nothing that tells which name exists"


async def test_a_flood_of_wrong_passwords_does_not_keep_the_operator_out(
    room_app: tuple[FastAPI, ControlRoom], clock: FixedClock
) -> None:
    app, cr = room_app
    async with browser(app, "10.9.0.8") as usual:
        assert (await try_login(usual, "olga", PASSWORD)).status_code == 303, (
            "olga's usual place, before the attack"
        )
    # One address guesses as fast as it can, twenty more help it.
    async with browser(app, "203.0.113.66") as attacker:
        statuses = [(await try_login(attacker, "olga", WRONG)).status_code for _ in range(40)]
    assert statuses.count(401) == cr.throttle.free_failures + 1 and statuses.count(
        429
    ) == 40 - statuses.count(401)
    for n in range(20):
        async with browser(app, f"198.51.100.{n}") as helper:
            for _ in range(3):
                await try_login(helper, "olga", WRONG)
    clock.advance(seconds=1)
    # The operator from a place she never logged in from, with the right password: in at once.
    async with browser(app, "10.9.0.7") as new_place:
        assert (await try_login(new_place, "olga", PASSWORD)).status_code == 303
        assert (await new_place.get("/controlroom/actions")).status_code == 200
    # From her usual place even a typo first does not slow her down.
    async with browser(app, "10.9.0.8") as usual:
        assert (await try_login(usual, "olga", "typo in it, sorry")).status_code == 401
        assert (await try_login(usual, "olga", PASSWORD)).status_code == 303


async def test_the_guessing_address_is_slowed_down_without_any_password_check(
    room_app: tuple[FastAPI, ControlRoom], counting: CountingHasher, clock: FixedClock
) -> None:
    app, cr = room_app
    async with browser(app, "203.0.113.9") as attacker:
        for _ in range(cr.throttle.free_failures + 1):
            assert (await try_login(attacker, "olga", WRONG)).status_code == 401
        checks = counting.checks
        waited = await try_login(attacker, "olga", PASSWORD)
        assert waited.status_code == 429, "even the right password waits: this address is guessing"
        assert waited.headers["retry-after"] == "2"
        assert (await try_login(attacker, "ada", WRONG)).status_code == 429, "whichever account it tries"
        assert counting.checks == checks, "a throttled try costs no argon2 check"
        clock.advance(seconds=2)
        assert (await try_login(attacker, "olga", WRONG)).status_code == 401
        assert (await try_login(attacker, "olga", WRONG)).headers["retry-after"] == "4", "the wait doubles"
    async with browser(app, "203.0.113.10") as neighbour:
        assert (await try_login(neighbour, "olga", PASSWORD)).status_code == 303, (
            "another address is not slowed"
        )


async def test_parallel_guesses_from_one_address_are_counted_before_their_checks(
    room_app: tuple[FastAPI, ControlRoom], counting: CountingHasher
) -> None:
    app, cr = room_app
    async with browser(app, "203.0.113.50") as attacker:
        token = csrf_of((await attacker.get("/controlroom/login")).text)
        data = {"username": "olga", "password": WRONG, "csrf_token": token}
        answers = await asyncio.gather(*(attacker.post("/controlroom/login", data=data) for _ in range(32)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [401] * (cr.throttle.free_failures + 1) + [429] * (32 - cr.throttle.free_failures - 1)
    assert counting.checks == cr.throttle.free_failures + 1


async def test_repeated_failures_are_one_audit_row_per_client_and_account(
    room_app: tuple[FastAPI, ControlRoom], runtime: FakeRuntime, clock: FixedClock
) -> None:
    app, cr = room_app
    cr.throttle = LoginThrottle(clock, free_failures=1000, account_free=1000)
    async with browser(app, "203.0.113.20") as attacker:
        for _ in range(30):
            await try_login(attacker, "olga", WRONG)
        for _ in range(5):
            await try_login(attacker, "nobody", WRONG)
    async with browser(app, "203.0.113.21") as other:
        await try_login(other, "olga", WRONG)
    rows = security_rows(runtime.sessions)
    counts = sorted((r.subject or "-", r.detail["count"]) for r in rows)
    assert counts == [("-", 5), ("operator:olga", 1), ("operator:olga", 30)]
    assert all(r.event == "security.login_failed" and r.actor.startswith("client:") for r in rows)
    assert not any("203.0.113" in r.actor or "nobody" in repr(r.detail) for r in rows), (
        "no address, no typed name"
    )
    clock.advance(minutes=16)
    async with browser(app, "203.0.113.20") as attacker:
        await try_login(attacker, "olga", WRONG)
    assert len(security_rows(runtime.sessions)) == 4, "a new window, a new row"


async def test_throttled_tries_are_counted_apart_from_failures(
    room_app: tuple[FastAPI, ControlRoom], runtime: FakeRuntime
) -> None:
    app, cr = room_app
    cr.throttle = LoginThrottle(runtime.clock, tally_every=timedelta(0))  # every refusal written at once
    async with browser(app, "203.0.113.30") as attacker:
        for _ in range(cr.throttle.free_failures + 1 + 10):
            await try_login(attacker, "olga", WRONG)
    by_event = {r.event: r.detail["count"] for r in security_rows(runtime.sessions)}
    assert by_event == {
        "security.login_failed": cr.throttle.free_failures + 1,
        "security.login_throttled": 10,
    }


def test_refusals_reach_the_audit_log_in_batches(clock: FixedClock) -> None:
    throttle = LoginThrottle(clock, tally_every=timedelta(seconds=5))
    written = [throttle.refused(client="203.0.113.40", account="olga") for _ in range(10)]
    assert written == [1] + [0] * 9, "the first at once, the rest held back"
    assert throttle.refused(client="203.0.113.41", account="olga") == 1, "another client: its own tally"
    clock.advance(seconds=5)
    assert throttle.refused(client="203.0.113.40", account="olga") == 10, "the nine held back and this one"


async def test_parallel_bad_logins_leave_the_event_loop_free(runtime: FakeRuntime) -> None:
    gated = GatedHasher()
    app, cr = build(runtime, gated)
    async with browser(app, "10.5.0.1") as warm:
        token = csrf_of((await warm.get("/controlroom/login")).text)
    gated.gate.clear()

    async def bad_login(n: int) -> int:
        async with browser(app, f"10.6.0.{n}") as http:
            http.cookies.set("cr_pre", token, domain="127.0.0.1", path="/controlroom")
            data = {"username": "olga", "password": WRONG, "csrf_token": token}
            return (await http.post("/controlroom/login", data=data)).status_code

    flood = [asyncio.create_task(bad_login(n)) for n in range(16)]
    while gated.running < cr.passwords.at_once:
        await asyncio.sleep(0.01)
    # Every check is held in its thread: the loop still serves other requests meanwhile.
    async with browser(app, "10.5.0.2") as other:
        assert (await other.get("/controlroom/login")).status_code == 200
    assert not any(task.done() for task in flood)
    gated.gate.set()
    assert await asyncio.gather(*flood) == [401] * 16
    assert gated.most == cr.passwords.at_once == 2, "at most two argon2 checks at once"
    assert gated.threads and all(name.startswith("argon2") for name in gated.threads)
    loop_priority = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert gated.priorities and min(gated.priorities) > loop_priority, "argon2 yields the CPU to the loop"


async def test_admins_password_reset_clears_the_accounts_attack_state(
    room_app: tuple[FastAPI, ControlRoom], runtime: FakeRuntime
) -> None:
    app, cr = room_app
    for n in range(cr.throttle.account_free):
        async with browser(app, f"10.7.{n}.1") as http:
            await try_login(http, "olga", WRONG)
    with runtime.sessions() as session:
        olga = session.exec(select(Operator).where(Operator.username == "olga")).one()
    async with browser(app, "10.8.0.1") as admin:
        assert (await try_login(admin, "ada", PASSWORD)).status_code == 303
        csrf = csrf_of((await admin.get("/controlroom/operators")).text)
        new = "a brand new passphrase here"
        done = await admin.post(
            f"/controlroom/operators/{olga.id}/password", data={"password": new, "csrf_token": csrf}
        )
        assert done.status_code == 303
    async with browser(app, "10.8.0.2") as http:
        assert (await try_login(http, "olga", WRONG)).status_code == 401
        assert (await try_login(http, "olga", "a brand new passphrase here")).status_code == 303, (
            "no account pace left"
        )
