"""The HTTP guards on the whole app: headers on every answer, redirects, proxies, docs, municipality codes.

Each case is an attack that once did harm: an API answer or an error page a shared cache could keep or a
page could frame, a redirect that sent the browser to whatever `Host` the request named, a forged
`X-Forwarded-For` that chose the client address a rate limit counts, the API's map served in production,
a municipality given as CBS writes it (`GM0153`) refused while an unknown code went unnoticed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI, Request
from sqlmodel import select

from bot.app import create_app
from bot.http_guards import client_address
from bot.runtime import build_runtime
from storage.models import Action, Operator
from tests.conftest import FixedClock
from tests.controlroom.conftest import csrf_of
from tests.controlroom.whole_app import TOKEN, Whole, build_whole, client_for, log_in, whole_settings

GUARDS = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def whole(database_url: str, clock: FixedClock) -> AsyncIterator[Whole]:
    """The whole app as `serve` builds it, with accounts, an action and a tip."""
    built = await build_whole(
        database_url, clock, headline="Vermist: Noah", tip_text="Ik zag hem", draft_headline="Overval"
    )
    yield built
    built.runtime.engine.dispose()


def assert_guarded(response: httpx.Response) -> None:
    for name, value in GUARDS.items():
        assert response.headers.get(name) == value, (response.request.url, name, response.headers)
    assert "frame-ancestors 'none'" in response.headers.get("content-security-policy", "")


async def test_every_kind_of_answer_carries_the_guard_headers(whole: Whole) -> None:
    @whole.app.get("/test-only/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    transport = httpx.ASGITransport(app=whole.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as http:
        answers = {
            "api": await http.get("/api/v1/actions", headers=BEARER),
            "api-action": await http.get(f"/api/v1/actions/{whole.action_id}", headers=BEARER),
            "api-401": await http.get("/api/v1/actions"),
            "api-404": await http.get("/api/v1/actions/999999", headers=BEARER),
            "api-422": await http.post("/api/v1/actions", headers=BEARER, json={"type": "nothing"}),
            "router-404": await http.get("/no/such/page"),
            "405": await http.get("/simulator/messages"),
            "health": await http.get("/healthz"),
            "500": await http.get("/test-only/boom"),
        }
        await log_in(http, "ada")
        answers["csv"] = await http.get("/controlroom/figures.csv")
        answers["html"] = await http.get("/controlroom/figures")
    assert answers["api"].status_code == 200
    assert answers["api-404"].status_code == 404 and answers["router-404"].status_code == 404
    assert answers["api-422"].status_code == 422 and answers["405"].status_code == 405
    assert answers["500"].status_code == 500 and "a bug" not in answers["500"].text
    assert answers["csv"].status_code == 200 and answers["csv"].headers["content-type"].startswith("text/csv")
    for response in answers.values():
        assert_guarded(response)
    # The pages keep their own, stricter policy.
    assert "script-src 'self'" in answers["html"].headers["content-security-policy"]


@pytest.mark.parametrize("path", ["/controlroom", "/", "/controlroom/"])
async def test_redirects_never_name_the_host_the_request_claimed(whole: Whole, path: str) -> None:
    async with client_for(whole.app) as http:
        answer = await http.get(path, headers={"Host": "evil.example"})
    assert answer.status_code in (303, 307), answer.text
    location = answer.headers["location"]
    assert "evil.example" not in location
    assert location.startswith("/") and not location.startswith("//")


async def test_a_redirect_elsewhere_is_left_alone() -> None:
    """Only a URL on the request's own host is made relative; the guard rewrites nothing else."""
    from fastapi.responses import RedirectResponse

    from bot.http_guards import GuardHeadersMiddleware

    app = FastAPI()
    app.add_middleware(GuardHeadersMiddleware)

    @app.get("/out")
    async def out() -> RedirectResponse:
        return RedirectResponse("https://www.burgernet.nl/", 303)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a.test") as http:
        answer = await http.get("/out")
    assert answer.headers["location"] == "https://www.burgernet.nl/"


def _echo_client(app: FastAPI) -> None:
    @app.get("/test-only/client")
    async def who(request: Request) -> dict[str, str]:
        return {"client": client_address(request), "scheme": request.url.scheme}


@pytest.mark.parametrize(
    ("trusted", "peer", "believed"),
    [
        pytest.param("127.0.0.1", "203.0.113.9", False, id="outsider-forges-forwarded-for"),
        pytest.param("", "127.0.0.1", False, id="no-proxy-trusted"),
        pytest.param("127.0.0.1", "127.0.0.1", True, id="the-local-proxy"),
        pytest.param("10.0.0.0/8", "10.1.2.3", True, id="a-proxy-network"),
    ],
)
async def test_forwarded_headers_are_believed_only_from_trusted_proxies(
    database_url: str, clock: FixedClock, trusted: str, peer: str, believed: bool
) -> None:
    settings = whole_settings(database_url).model_copy(update={"trusted_proxies": trusted})
    runtime = build_runtime(settings, clock=clock, run_migrations=False)
    app = create_app(runtime)
    _echo_client(app)
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bot.test") as http:
            answer = await http.get(
                "/test-only/client", headers={"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"}
            )
    finally:
        runtime.engine.dispose()
    assert answer.json() == (
        {"client": "198.51.100.7", "scheme": "https"} if believed else {"client": peer, "scheme": "http"}
    )


PRODUCTION = {
    "environment": "production",
    "simulator": False,
    "api_token": "kX3-q9Zt_Lm2Vb7Rc4Hn8Wd1Jf6Gp0Ys5",
    "public_base_url": "https://bot.example.nl",
    "lookup_key": Fernet.generate_key().decode(),
}


@pytest.mark.parametrize(
    ("update", "served"),
    [
        pytest.param(PRODUCTION, False, id="production"),
        pytest.param(PRODUCTION | {"api_docs": True}, True, id="production-asks-for-docs"),
        pytest.param({}, True, id="development"),
        pytest.param({"api_docs": False}, False, id="development-without-docs"),
    ],
)
async def test_production_serves_no_api_docs_unless_asked(
    database_url: str, clock: FixedClock, update: dict[str, object], served: bool
) -> None:
    base = whole_settings(database_url)
    settings = type(base).model_validate(base.model_dump() | update)
    runtime = build_runtime(settings, clock=clock, run_migrations=False)
    try:
        async with client_for(create_app(runtime)) as http:
            codes = [(await http.get(path)).status_code for path in ("/docs", "/redoc", "/openapi.json")]
    finally:
        runtime.engine.dispose()
    assert codes == ([200, 200, 200] if served else [404, 404, 404])


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        pytest.param(["GM0153"], ["0153"], id="cbs-form"),
        pytest.param(["gm0153", "0153", "153"], ["0153"], id="one-municipality-three-ways"),
        pytest.param(["Enschede", "GM0164"], ["0153", "0164"], id="name-and-code"),
    ],
)
async def test_the_api_takes_cbs_municipality_codes(
    whole: Whole, given: list[str], stored: list[str]
) -> None:
    body = {
        "type": "missing_person",
        "headline": "Vermist: Noah",
        "description": "Jongen van 8.",
        "area": {"municipalities": given},
        "expires_at": "2026-11-20T22:00:00Z",
    }
    async with client_for(whole.app) as http:
        answer = await http.post("/api/v1/actions", headers=BEARER, json=body)
    assert answer.status_code == 201, answer.text
    assert answer.json()["area"] == {"municipalities": stored}


@pytest.mark.parametrize("unknown", ["GM9999", "9999", "GM01530", "GM", "XX0153"])
async def test_the_api_refuses_unknown_municipality_codes(whole: Whole, unknown: str) -> None:
    body = {
        "type": "missing_person",
        "headline": "Vermist: Noah",
        "description": "Jongen van 8.",
        "area": {"municipalities": [unknown]},
        "expires_at": "2026-11-20T22:00:00Z",
    }
    async with client_for(whole.app) as http:
        answer = await http.post("/api/v1/actions", headers=BEARER, json=body)
        assert answer.status_code == 422
        assert "unknown municipality" in answer.text
    with whole.runtime.sessions() as session:
        assert all(
            a.headline != "Vermist: Noah" or a.id == whole.action_id for a in session.exec(select(Action))
        )


@pytest.mark.parametrize(
    ("given", "created"),
    [
        pytest.param("GM0153", ["0153"], id="cbs-form"),
        pytest.param("GM0153; 0164", ["0153", "0164"], id="two-forms"),
        pytest.param("GM9999", None, id="unknown-refused"),
    ],
)
async def test_the_admin_page_takes_cbs_codes_for_coordinators(
    whole: Whole, given: str, created: list[str] | None
) -> None:
    async with client_for(whole.app) as http:
        await log_in(http, "ada")
        page = await http.get("/controlroom/operators")
        answer = await http.post(
            "/controlroom/operators",
            data={
                "username": "gemeente-x",
                "password": "een lang en sterk wachtwoord 42",
                "role": "coordinator",
                "municipalities": given,
                "csrf_token": csrf_of(page.text),
            },
        )
    assert answer.status_code == 200
    with whole.runtime.sessions() as session:
        account = session.exec(select(Operator).where(Operator.username == "gemeente-x")).first()
    if created is None:
        assert account is None
        assert "9999" in answer.text
    else:
        assert account is not None and account.municipalities == created
