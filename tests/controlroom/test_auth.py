"""Login, CSRF, session fixation, roles and the audit trail, over HTTP without a browser."""

from __future__ import annotations

import httpx
import pytest
from sqlmodel import select

from storage.db import SessionFactory
from storage.models import AuditEvent, OperatorSession
from tests.conftest import FixedClock
from tests.controlroom.conftest import PASSWORD, csrf_of, login, page_csrf


def _events(sessions: SessionFactory) -> list[AuditEvent]:
    with sessions() as session:
        return list(session.exec(select(AuditEvent).order_by(AuditEvent.id)))  # type: ignore[arg-type]


async def test_login_sets_a_strict_httponly_session_cookie(client: httpx.AsyncClient) -> None:
    response = await login(client, "olga")
    assert response.status_code == 303
    assert response.headers["location"] == "/controlroom/"
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("cr_session="))
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # served over http here
    assert "Path=/controlroom" in cookie


async def test_cookie_is_secure_when_the_public_address_is_https(app, runtime) -> None:  # type: ignore[no-untyped-def]
    runtime.settings.public_base_url = "https://meldkamer.example.nl"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://meldkamer.example.nl") as client:
        response = await login(client, "olga")
    assert response.status_code == 303
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("cr_session="))
    assert "Secure" in cookie


async def test_wrong_password_is_refused_and_audited_without_the_password(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    response = await login(client, "olga", "not the password")
    assert response.status_code == 401
    assert "klopt niet" in response.text
    events = _events(sessions)
    assert [e.event for e in events] == ["security.login_failed"]
    assert events[0].subject == "operator:olga"
    assert "not the password" not in repr(events[0].detail)


async def test_unknown_user_failure_does_not_log_the_typed_name(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    response = await login(client, "my-secret-password-typed-as-name")
    assert response.status_code == 401
    (event,) = _events(sessions)
    assert event.subject is None
    assert "my-secret" not in repr(event.detail)


@pytest.mark.parametrize(
    ("path", "data"),
    [
        pytest.param("/controlroom/login", {"username": "olga", "password": PASSWORD}, id="login"),
        pytest.param("/controlroom/logout", {}, id="logout"),
        pytest.param("/controlroom/language", {"lang": "en"}, id="language"),
    ],
)
async def test_post_without_csrf_token_is_refused(
    client: httpx.AsyncClient, path: str, data: dict[str, str]
) -> None:
    if path != "/controlroom/login":
        assert (await login(client, "olga")).status_code == 303
    response = await client.post(path, data=data)
    assert response.status_code == 403


async def test_post_with_another_sessions_token_is_refused(app, client: httpx.AsyncClient) -> None:  # type: ignore[no-untyped-def]
    await login(client, "olga")
    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8080")
    async with other:
        await login(other, "ada")
        foreign = await page_csrf(other)
    response = await client.post("/controlroom/logout", data={"csrf_token": foreign})
    assert response.status_code == 403


async def test_login_rotates_the_session_id(client: httpx.AsyncClient, sessions: SessionFactory) -> None:
    await client.get("/controlroom/login")
    domain = next(c.domain for c in client.cookies.jar if c.name == "cr_pre")
    client.cookies.set("cr_session", "chosen-by-an-attacker", domain=domain, path="/controlroom")
    await login(client, "olga")
    first = client.cookies.get("cr_session")
    assert first and first != "chosen-by-an-attacker"
    await login(client, "olga")
    second = client.cookies.get("cr_session")
    assert second and second != first
    with sessions() as session:
        assert len(list(session.exec(select(OperatorSession)))) == 1, "the old session is gone"
    client.cookies.set("cr_session", first, domain=domain, path="/controlroom")
    assert (await client.get("/controlroom/figures")).status_code == 303


async def test_session_table_holds_no_usable_token(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    await login(client, "olga")
    token = client.cookies.get("cr_session")
    with sessions() as session:
        (row,) = session.exec(select(OperatorSession))
    assert token and row.id != token


async def test_logout_ends_the_session_and_is_audited(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    await login(client, "olga")
    response = await client.post("/controlroom/logout", data={"csrf_token": await page_csrf(client)})
    assert response.status_code == 303
    assert (await client.get("/controlroom/figures")).status_code == 303
    assert [e.event for e in _events(sessions)] == ["controlroom.login", "controlroom.logout"]


async def test_idle_session_expires(client: httpx.AsyncClient, clock: FixedClock) -> None:
    await login(client, "olga")
    assert (await client.get("/controlroom/figures")).status_code == 200
    clock.advance(hours=2, seconds=1)
    response = await client.get("/controlroom/figures")
    assert response.status_code == 303
    assert response.headers["location"] == "/controlroom/login"


@pytest.mark.parametrize(
    ("user", "path", "status"),
    [
        pytest.param(None, "/controlroom/actions", 303, id="anonymous-actions"),
        pytest.param(None, "/controlroom/audit", 303, id="anonymous-audit"),
        pytest.param("cor", "/controlroom/actions", 403, id="coordinator-actions"),
        pytest.param("cor", "/controlroom/actions/new", 403, id="coordinator-new-action"),
        pytest.param("cor", "/controlroom/audit", 403, id="coordinator-audit"),
        pytest.param("cor", "/controlroom/figures", 200, id="coordinator-figures"),
        pytest.param("olga", "/controlroom/actions", 200, id="operator-actions"),
        pytest.param("olga", "/controlroom/audit", 403, id="operator-audit"),
        pytest.param("olga", "/controlroom/operators", 403, id="operator-accounts"),
        pytest.param("ada", "/controlroom/audit", 200, id="admin-audit"),
        pytest.param("ada", "/controlroom/operators", 200, id="admin-accounts"),
        pytest.param("ada", "/controlroom/actions", 200, id="admin-actions"),
    ],
)
async def test_roles(client: httpx.AsyncClient, user: str | None, path: str, status: int) -> None:
    if user:
        await login(client, user)
    assert (await client.get(path)).status_code == status


async def test_language_switch_is_kept_in_the_session(client: httpx.AsyncClient) -> None:
    await login(client, "olga")
    dutch = await client.get("/controlroom/figures")
    assert 'lang="nl"' in dutch.text and "Cijfers" in dutch.text
    response = await client.post(
        "/controlroom/language",
        data={"lang": "en", "back": "/controlroom/figures", "csrf_token": csrf_of(dutch.text)},
    )
    assert response.status_code == 303
    english = await client.get("/controlroom/figures")
    assert 'lang="en"' in english.text and "Figures" in english.text


async def test_pages_forbid_inline_script_and_framing(client: httpx.AsyncClient) -> None:
    page = await client.get("/controlroom/login")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
