"""Admins manage accounts: deactivate (sessions and live streams end at once), reactivate, reset a
password (the policy applies, sessions end) and end all sessions; every change is audited."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import col, select

from bot.controlroom.deps import ControlRoom
from bot.controlroom.live import action_events
from storage.db import SessionFactory
from storage.models import AuditEvent, Operator
from storage.password_policy import MIN_LENGTH, WeakPassword, check_password
from tests.controlroom.conftest import PASSWORD, csrf_of, login

NEW = "plenty of words in this one"


def account_id(sessions: SessionFactory, name: str) -> int:
    """The id of the account with this name."""
    with sessions() as session:
        return session.exec(select(Operator.id).where(Operator.username == name)).one() or 0


def actions(sessions: SessionFactory) -> list[tuple[str, str, str | None]]:
    """Audited account changes: actor, event, subject."""
    with sessions() as session:
        rows = session.exec(
            select(AuditEvent)
            .where(col(AuditEvent.event).startswith("controlroom.operator_"))
            .order_by(col(AuditEvent.id))
        )
        return [(r.actor, r.event, r.subject) for r in rows]


def browser(app: FastAPI) -> httpx.AsyncClient:
    """Another browser on the app."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8080")


async def admin_post(client: httpx.AsyncClient, path: str, **form: str) -> httpx.Response:
    """Post an admin form with the session's CSRF token."""
    csrf = csrf_of((await client.get("/controlroom/operators")).text)
    return await client.post(path, data={**form, "csrf_token": csrf})


async def _never() -> bool:
    return False


async def next_event(stream: AsyncIterator[str]) -> str:
    """The stream's next event, past keep-alive comments."""
    while True:
        event = await anext(stream)
        if not event.startswith(":"):
            return event


async def test_deactivation_ends_the_sessions_and_the_live_stream_at_once(
    app: FastAPI, cr: ControlRoom, client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    cr.stream_poll_s = 60.0  # the stream would next look at its session in a minute by itself
    async with browser(app) as olga:
        assert (await login(olga, "olga")).status_code == 303
        token = olga.cookies.get("cr_session") or ""
        stream = action_events(cr, action_id=1, after=0, disconnected=_never, session_token=token)
        opening = [await anext(stream), await anext(stream)]
        assert opening[0].startswith("retry:") and "event: progress" in opening[1]
        waiting = asyncio.create_task(next_event(stream))
        await asyncio.sleep(0.05)
        assert not waiting.done(), "the stream waits for its next poll"
        await login(client, "ada")
        olga_id = account_id(sessions, "olga")
        done = await admin_post(client, f"/controlroom/operators/{olga_id}/active", active="no")
        assert done.status_code == 303
        ended = await asyncio.wait_for(waiting, timeout=10)
        assert ended.startswith("event: logout"), "the admin's change woke the stream"
        assert (await olga.get("/controlroom/actions")).status_code == 303, "the open page's next request"
        assert (await login(olga, "olga")).status_code == 401, "and no new login"
    assert ("operator:ada", "controlroom.operator_deactivated", "operator:olga") in actions(sessions)
    page = await client.get("/controlroom/operators")
    assert "Gedeactiveerd" in page.text
    assert (
        await admin_post(client, f"/controlroom/operators/{olga_id}/active", active="yes")
    ).status_code == 303
    async with browser(app) as olga:
        assert (await login(olga, "olga")).status_code == 303, "reactivated"
    assert actions(sessions)[-1] == ("operator:ada", "controlroom.operator_activated", "operator:olga")


async def test_ending_the_sessions_logs_the_account_out_everywhere(
    app: FastAPI, client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    async with browser(app) as phone, browser(app) as desk:
        for olga in (phone, desk):
            assert (await login(olga, "olga")).status_code == 303
        await login(client, "ada")
        done = await admin_post(client, f"/controlroom/operators/{account_id(sessions, 'olga')}/sessions/end")
        assert done.status_code == 303
        assert "(2 sessies)" in (await client.get(done.headers["location"])).text
        for olga in (phone, desk):
            assert (await olga.get("/controlroom/actions")).status_code == 303
        assert (await login(phone, "olga")).status_code == 303, "the account itself still works"
    assert (await client.get("/controlroom/operators")).status_code == 200, (
        "the admin's own session is untouched"
    )
    assert actions(sessions)[-1] == ("operator:ada", "controlroom.operator_sessions_ended", "operator:olga")


async def test_a_password_reset_ends_the_sessions_and_replaces_the_password(
    app: FastAPI, client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    async with browser(app) as olga:
        assert (await login(olga, "olga")).status_code == 303
        await login(client, "ada")
        done = await admin_post(
            client, f"/controlroom/operators/{account_id(sessions, 'olga')}/password", password=NEW
        )
        assert done.status_code == 303
        assert (await olga.get("/controlroom/actions")).status_code == 303, "logged out"
        assert (await login(olga, "olga", PASSWORD)).status_code == 401
        assert (await login(olga, "olga", NEW)).status_code == 303
    assert actions(sessions)[-1] == ("operator:ada", "controlroom.operator_password_reset", "operator:olga")


@pytest.mark.parametrize(
    ("password", "message"),
    [
        pytest.param("aaaaaaaaaa", "te kort", id="ten-a"),
        pytest.param("aaaaaaaaaaaaaaaa", "te weinig verschillende", id="sixteen-a"),
        pytest.param("abababababababab", "te weinig verschillende", id="two-letters"),
        pytest.param("password123456", "te gangbaar", id="common-plus-digits"),
        pytest.param("Qwertyuiop2026!", "te gangbaar", id="keyboard-row"),
        pytest.param("wachtwoord2026", "te gangbaar", id="dutch-common"),
        pytest.param("1234567890123", "te gangbaar", id="digits"),
        pytest.param("olgaolgaolga1", "gebruikersnaam", id="username"),
    ],
)
async def test_weak_passwords_are_refused_on_the_admin_page(
    client: httpx.AsyncClient, sessions: SessionFactory, password: str, message: str
) -> None:
    await login(client, "ada")
    olga = account_id(sessions, "olga")
    reset = await admin_post(client, f"/controlroom/operators/{olga}/password", password=password)
    assert reset.status_code == 422 and message in reset.text
    if message != "gebruikersnaam":  # another username: the account would be made
        made = await admin_post(
            client, "/controlroom/operators", username="newcomer", password=password, role="operator"
        )
        assert made.status_code == 422 and message in made.text
    async with browser(client._transport.app) as http:  # type: ignore[attr-defined]
        assert (await login(http, "olga", PASSWORD)).status_code == 303, "the old password still holds"
    assert actions(sessions) == [], "nothing changed, nothing audited"


async def test_an_admin_cannot_deactivate_their_own_account(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    await login(client, "ada")
    response = await admin_post(
        client, f"/controlroom/operators/{account_id(sessions, 'ada')}/active", active="no"
    )
    assert response.status_code == 409
    assert (await client.get("/controlroom/operators")).status_code == 200


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        pytest.param("aaaaaaaaaa", "too_short", id="ten-a"),
        pytest.param("a" * MIN_LENGTH, "repetitive", id="repeated"),
        pytest.param("abcabcabcabcabc", "repetitive", id="three-letters"),
        pytest.param("PASSWORD1234", "common", id="common-upper"),
        pytest.param("!!iloveyou2026!!", "common", id="common-wrapped"),
        pytest.param("abcdefghijklmnop", "common", id="alphabet-run"),
        pytest.param("0987654321098", "common", id="digits-down"),
        pytest.param("a" + "b" * 600, "too_long", id="too-long"),
        pytest.param("ada-ada-ada-ada-xyz1", "username", id="username-repeated"),
    ],
)
def test_the_policy_refuses(password: str, reason: str) -> None:
    with pytest.raises(WeakPassword) as refused:
        check_password(password, username="ada")
    assert refused.value.reason == reason
    assert password not in str(refused.value)


@pytest.mark.parametrize(
    "password",
    [PASSWORD, "Zeven zwanen op de Vecht", "k3rst-b00m-lamp", "ada loves long walks"],
)
def test_the_policy_accepts(password: str) -> None:
    check_password(password, username="ada")


async def test_the_audit_page_shows_security_events_apart_from_actions(
    app: FastAPI, client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    async with browser(app) as guesser:
        for _ in range(3):
            assert (await login(guesser, "olga", "a wrong guess here")).status_code == 401
    await login(client, "ada")
    await admin_post(client, f"/controlroom/operators/{account_id(sessions, 'olga')}/sessions/end")
    security = (await client.get("/controlroom/audit", params={"kind": "security"})).text
    actions_only = (await client.get("/controlroom/audit", params={"kind": "actions"})).text
    everything = (await client.get("/controlroom/audit")).text
    rows = re.compile(r"<tr class=\"(security|action)\">")
    assert rows.findall(security) == ["security"], "three failures of one client on one account: one row"
    assert re.search(r'<td class="num">3</td>', security), "with their count"
    assert set(rows.findall(actions_only)) == {"action"}
    assert "<code>controlroom.operator_sessions_ended</code>" in actions_only
    assert "<code>security." not in actions_only
    assert sorted(rows.findall(everything)) == sorted(rows.findall(security) + rows.findall(actions_only))
