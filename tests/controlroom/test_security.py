"""The control room's security, on the whole app as `serve` builds it: every /controlroom route is read
from the app and must be in the access table below, so a new route is checked as soon as it exists.

No access without a session; each role against each route; CSRF on every POST; the session id rotated
at login and dropped server-side at logout; `<script>` in a tip, a headline or an account name shown as
text on every page and in the live stream; SQL strings in every field give a 4xx or are stored as text.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect, text
from sqlmodel import col, select

from bot.controlroom.deps import PRE_COOKIE, SESSION_COOKIE
from storage.models import Action, ActionStatus, Operator, Tip
from tests.conftest import FixedClock
from tests.controlroom.conftest import PASSWORD, csrf_of
from tests.controlroom.whole_app import (
    TOKEN,
    Whole,
    build_whole,
    client_for,
    concrete,
    controlroom_routes,
    log_in,
)
from tests.e2e.serving import served

SCRIPT = "<script>alert('xss')</script>"
IMG = '"><img src=x onerror=alert(1)>'
IMG_NAME = '"><img/src=x/onerror=alert(2)>'  # no spaces: a valid username
RAW = ("<script>alert", "<img src=x onerror", "<img/src=x")
HEADLINE = f"Vermist: Noah {SCRIPT} {IMG}"
DRAFT_HEADLINE = f"Overval {SCRIPT} {IMG}"
TIP_TEXT = f"Ik zag hem bij de Jumbo {SCRIPT} {IMG} richting station"
JS = Path(__file__).resolve().parents[2] / "bot" / "controlroom" / "static" / "controlroom.js"

PUBLIC = frozenset({"anonymous", "olga", "cor", "ada"})
ALL = frozenset({"olga", "cor", "ada"})
OPS = frozenset({"olga", "ada"})  # operators and admins: actions and tips
ADMIN = frozenset({"ada"})
ACCESS: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/controlroom/static/{name}"): PUBLIC,
    ("GET", "/controlroom/static/vendor/leaflet/{name:path}"): PUBLIC,
    ("GET", "/controlroom/login"): PUBLIC,
    ("POST", "/controlroom/login"): PUBLIC,
    ("POST", "/controlroom/language"): PUBLIC,
    ("GET", "/controlroom/"): ALL,
    ("POST", "/controlroom/logout"): ALL,
    ("GET", "/controlroom/figures"): ALL,
    ("GET", "/controlroom/figures.csv"): ALL,
    ("GET", "/controlroom/actions"): OPS,
    ("GET", "/controlroom/actions/new"): OPS,
    ("POST", "/controlroom/postcode"): OPS,
    ("POST", "/controlroom/texts/alert"): OPS,
    ("POST", "/controlroom/places"): OPS,
    ("GET", "/controlroom/map/base.json"): ALL,
    ("POST", "/controlroom/actions"): OPS,
    ("GET", "/controlroom/actions/{action_id}"): OPS,
    ("POST", "/controlroom/actions/{action_id}/launch"): OPS,
    ("POST", "/controlroom/actions/{action_id}/close"): OPS,
    ("POST", "/controlroom/actions/{action_id}/updates"): OPS,
    ("POST", "/controlroom/actions/{action_id}/widen"): OPS,
    ("POST", "/controlroom/actions/{action_id}/rings/stop"): OPS,
    ("POST", "/controlroom/actions/{action_id}/cancel"): OPS,
    ("POST", "/controlroom/actions/{action_id}/cap-changes/{change_id}/confirm"): OPS,
    ("POST", "/controlroom/actions/{action_id}/cap-changes/{change_id}/discard"): OPS,
    ("POST", "/controlroom/actions/{action_id}/approve"): OPS,
    ("POST", "/controlroom/actions/{action_id}/reject"): OPS,
    ("GET", "/controlroom/actions/{action_id}/edit"): OPS,
    ("POST", "/controlroom/actions/{action_id}/edit"): OPS,
    ("POST", "/controlroom/actions/{action_id}/delete"): OPS,
    ("GET", "/controlroom/actions/{action_id}/photo"): OPS,
    ("GET", "/controlroom/actions/{action_id}/stream"): OPS,
    ("POST", "/controlroom/actions/{action_id}/tips/{tip_id}/mark"): OPS,
    ("POST", "/controlroom/actions/{action_id}/tips/{tip_id}/reply"): OPS,
    ("POST", "/controlroom/actions/{action_id}/tips/{tip_id}/phone"): OPS,
    ("GET", "/controlroom/tips/{tip_id}/media/{position}"): OPS,
    ("GET", "/controlroom/audit"): ADMIN,
    ("GET", "/controlroom/operators"): ADMIN,
    ("POST", "/controlroom/operators"): ADMIN,
    ("POST", "/controlroom/operators/{operator_id}/sessions/end"): ADMIN,
    ("POST", "/controlroom/operators/{operator_id}/active"): ADMIN,
    ("POST", "/controlroom/operators/{operator_id}/password"): ADMIN,
    ("GET", "/controlroom/settings"): ADMIN,
    ("POST", "/controlroom/regions"): ADMIN,
    ("POST", "/controlroom/regions/delete"): ADMIN,
    ("POST", "/controlroom/operators/{operator_id}/regions"): ADMIN,
    ("POST", "/controlroom/four-eyes"): ADMIN,
}
# A valid form for each POST (without its CSRF token); the SQL-injection test puts its strings in each field.
FORMS: dict[str, dict[str, str]] = {
    "/controlroom/login": {"username": "olga", "password": PASSWORD},
    "/controlroom/language": {"lang": "en", "back": "/controlroom/figures"},
    "/controlroom/logout": {},
    "/controlroom/actions": {
        "type": "missing_person",
        "headline": "Vermist: Sem (6), rode jas",
        "description": "Sem is weg.",
        "instruction": "Bel 112.",
        "area_kind": "circle",
        "lat": "52.22",
        "lon": "6.89",
        "radius_m": "2000",
        "postcode": "",
        "municipalities": "",
        "expires_minutes": "120",
    },  # fmt: skip
    "/controlroom/actions/{action_id}/launch": {"confirm": "yes"},
    "/controlroom/actions/{action_id}/edit": {
        "type": "missing_person",
        "headline": "Vermist: Sem (6), blauwe jas",
        "description": "Sem is weg.",
        "instruction": "",
        "area_kind": "circle",
        "lat": "52.22",
        "lon": "6.89",
        "radius_m": "2000",
        "postcode": "",
        "municipalities": "",
        "expires_minutes": "60",
    },  # fmt: skip
    "/controlroom/actions/{action_id}/delete": {"confirm": "yes"},
    "/controlroom/actions/{action_id}/close": {
        "outcome": "found",
        "closing_text": "Noah is gevonden.",
        "confirm": "yes",
    },
    "/controlroom/actions/{action_id}/updates": {"text": "Hij draagt een rode pet.", "instruction": ""},
    "/controlroom/actions/{action_id}/widen": {"radius_m": "9000"},
    "/controlroom/actions/{action_id}/rings/stop": {},
    "/controlroom/actions/{action_id}/cancel": {"reason": "Verkeerde persoon.", "confirm": "yes"},
    "/controlroom/actions/{action_id}/cap-changes/{change_id}/confirm": {
        "text": "Rode pet.",
        "instruction": "",
    },
    "/controlroom/actions/{action_id}/cap-changes/{change_id}/discard": {},
    "/controlroom/actions/{action_id}/tips/{tip_id}/mark": {"useful": "yes"},
    "/controlroom/actions/{action_id}/tips/{tip_id}/reply": {"text": "Welke kleur had zijn jas?"},
    "/controlroom/actions/{action_id}/tips/{tip_id}/phone": {},
    "/controlroom/actions/{action_id}/approve": {},
    "/controlroom/actions/{action_id}/reject": {"reason": "Verkeerde straal"},
    "/controlroom/regions": {"name": "Twente", "municipalities": "Enschede, 0164"},
    "/controlroom/regions/delete": {"name": "Heel Nederland"},
    "/controlroom/operators/{operator_id}/regions": {"region": "Heel Nederland"},
    "/controlroom/four-eyes": {"region": "Heel Nederland", "action_type": "*", "required": "yes"},
    "/controlroom/operators": {"username": "nieuw", "password": PASSWORD, "role": "operator"},
    "/controlroom/postcode": {"pc": "7511"},
    "/controlroom/places": {"q": "Enschede"},
    "/controlroom/texts/alert": {"type": "robbery", "headline": "Overval", "description": "Man"},
    "/controlroom/operators/{operator_id}/sessions/end": {},
    "/controlroom/operators/{operator_id}/active": {"active": "yes"},
    "/controlroom/operators/{operator_id}/password": {"password": PASSWORD},
}
# Before login the form's token is the pre-session cookie (double submit), not a session's.
PRE_SESSION_POSTS = ("/controlroom/login", "/controlroom/language")
STREAM = "/controlroom/actions/{action_id}/stream"
INJECTIONS = [
    pytest.param("' OR 1=1 --", id="or-1-1"),
    pytest.param('"; DROP TABLE participant; --', id="drop-table"),
    pytest.param("1; DELETE FROM operator; --", id="delete"),
    pytest.param("') OR ('1'='1", id="paren-or"),
    pytest.param("%' UNION SELECT password_hash FROM operator --", id="union"),
    pytest.param("\\'; SELECT pg_sleep(0); --\x00", id="nul-byte"),
]


@pytest.fixture
async def whole(database_url: str, clock: FixedClock) -> AsyncIterator[Whole]:
    """The whole app with a headline, a draft and a tip that carry markup."""
    built = await build_whole(
        database_url, clock, headline=HEADLINE, tip_text=TIP_TEXT, draft_headline=DRAFT_HEADLINE
    )
    yield built
    built.runtime.engine.dispose()


def plant(http: httpx.AsyncClient, value: str) -> None:
    """Put this session id in the browser, replacing whatever session cookie it holds."""
    for cookie in [c for c in http.cookies.jar if c.name == SESSION_COOKIE]:
        http.cookies.jar.clear(cookie.domain, cookie.path, cookie.name)
    http.cookies.set(SESSION_COOKIE, value, domain="127.0.0.1", path="/controlroom")


def session_id(http: httpx.AsyncClient) -> str:
    """The session id the browser holds."""
    (value,) = [c.value for c in http.cookies.jar if c.name == SESSION_COOKIE]
    return value or ""


def refused_login(response: httpx.Response) -> bool:
    """A visitor without a session: sent to the login form, or a plain 401/403."""
    if response.status_code == 303:
        return response.headers["location"] == "/controlroom/login"
    return response.status_code in (401, 403)


async def call(
    http: httpx.AsyncClient, whole: Whole, method: str, path: str, csrf: str | None
) -> httpx.Response:
    """One request to a route with its parameters filled in and, for a POST, its valid form."""
    url = concrete(path, whole)
    if method == "GET":
        return await http.get(url)
    data = dict(FORMS[path])
    if csrf is not None:
        data["csrf_token"] = csrf
    return await http.post(url, data=data)


def audit_count(whole: Whole) -> int:
    """How many audit events are stored (each state change writes one)."""
    with whole.runtime.sessions() as session:
        return int(session.execute(text("SELECT count(*) FROM audit_event")).scalar_one())


def test_every_controlroom_route_is_in_the_access_table(whole: Whole) -> None:
    served_routes = set(controlroom_routes(whole.app))
    assert served_routes == set(ACCESS), "classify the new route in ACCESS (and FORMS for a POST)"
    assert {path for method, path in ACCESS if method == "POST"} == set(FORMS)


async def test_no_route_shows_anything_without_a_session(whole: Whole) -> None:
    wrong = []
    async with client_for(whole.app) as http:
        for cookie in (None, "not-a-session", ""):
            if cookie is not None:
                plant(http, cookie)
            for method, path in controlroom_routes(whole.app):
                if "anonymous" in ACCESS[(method, path)]:
                    continue
                response = await call(http, whole, method, path, csrf="guessed")
                if not refused_login(response):
                    wrong.append((cookie, method, path, response.status_code))
    assert wrong == []


async def test_each_role_gets_exactly_its_routes(whole: Whole) -> None:
    # Allowed POSTs really run (the action is closed, a tip marked), so logout comes last for each role.
    routes = sorted(controlroom_routes(whole.app), key=lambda r: r[1] == "/controlroom/logout")
    wrong = []
    for user in ("cor", "olga", "ada"):
        async with client_for(whole.app) as http:
            csrf = await log_in(http, user)
            for method, path in routes:
                allowed = user in ACCESS[(method, path)]
                if "anonymous" in ACCESS[(method, path)] or (path == STREAM and allowed):
                    continue  # public; the stream is endless: the served app's stream test reads it
                response = await call(http, whole, method, path, csrf)
                if not allowed:
                    ok = response.status_code == 403
                elif path == "/controlroom/logout":
                    ok = response.status_code == 303
                else:
                    ok = response.status_code < 500 and not refused_login(response)
                if not ok:
                    wrong.append((user, method, path, response.status_code))
    assert wrong == []


async def test_every_post_needs_the_csrf_token_of_its_own_session(whole: Whole) -> None:
    async with client_for(whole.app) as other:
        foreign = await log_in(other, "olga")
    wrong = []
    async with client_for(whole.app) as http:
        own = await log_in(http, "ada")
        before = audit_count(whole)
        with whole.runtime.sessions() as session:
            operators = len(list(session.exec(select(Operator))))
        for method, path in controlroom_routes(whole.app):
            if method != "POST":
                continue
            for case, token in (
                ("none", None),
                ("wrong", "x" * 43),
                ("empty", ""),
                ("other-session", foreign),
            ):
                response = await call(http, whole, method, path, token)
                if response.status_code != 403:
                    wrong.append((path, case, response.status_code))
        assert wrong == []
        assert audit_count(whole) == before, "a refused POST changed nothing"
        with whole.runtime.sessions() as session:
            action = session.get(Action, whole.action_id)
            assert action is not None and action.status == ActionStatus.ACTIVE
            assert len(list(session.exec(select(Operator)))) == operators
        assert (await http.get("/controlroom/figures")).status_code == 200, "still logged in"
        assert own


async def test_session_fixation_and_logout(whole: Whole) -> None:
    async with client_for(whole.app) as http:
        form = await http.get("/controlroom/login")
        pre = http.cookies[PRE_COOKIE]
        # An attacker plants a session id (or the pre-login token) before the victim logs in.
        for planted in ("planted-by-an-attacker", pre):
            plant(http, planted)
            assert refused_login(await http.get("/controlroom/figures")), planted
        done = await http.post(
            "/controlroom/login",
            data={"username": "olga", "password": PASSWORD, "csrf_token": csrf_of(form.text)},
        )
        assert done.status_code == 303
        first = session_id(http)
        assert first not in ("planted-by-an-attacker", pre)
        assert PRE_COOKIE not in http.cookies, "the pre-login token is dropped at login"
        csrf = await log_in(http, "olga")
        second = session_id(http)
        assert second != first, "a new session id at every login"
        async with client_for(whole.app) as thief:
            plant(thief, first)
            assert refused_login(await thief.get("/controlroom/actions")), "the replaced session is gone"
            plant(thief, second)
            assert (await thief.get("/controlroom/actions")).status_code == 200
            assert (await http.post("/controlroom/logout", data={"csrf_token": csrf})).status_code == 303
            # The copied cookie still holds the old value: the server must refuse it.
            assert refused_login(await thief.get("/controlroom/actions")), "logout ends it server-side"


async def test_markup_is_shown_as_text_on_every_page(whole: Whole) -> None:
    async with client_for(whole.app) as http:
        csrf = await log_in(http, "ada")
        made = await http.post(
            "/controlroom/operators",
            data={"username": SCRIPT, "password": PASSWORD, "role": "operator", "csrf_token": csrf},
        )
        assert made.status_code == 200
        also = {"username": IMG_NAME, "password": PASSWORD, "role": "operator", "csrf_token": csrf}
        assert (await http.post("/controlroom/operators", data=also)).status_code == 200
        pages = {}
        for method, path in controlroom_routes(whole.app):
            if method != "GET" or path in (STREAM, "/controlroom/static/{name}"):
                continue
            pages[path] = await http.get(concrete(path, whole))
            if "{action_id}" in path:
                pages[path + " (draft)"] = await http.get(concrete(path, whole, draft=True))
        # Notices the pages take from their query string (after a redirect) are reflected as text too.
        vault = whole.runtime.vault
        reflected = {"flash": vault.encrypt(SCRIPT), "error": vault.encrypt(IMG)}
        # A link with notices the app did not seal shows none of them.
        forged = {"flash": SCRIPT, "error": IMG}
        for path in ("/controlroom/actions/{action_id}", "/controlroom/operators"):
            pages[path + " (reflected)"] = await http.get(concrete(path, whole), params=reflected)
            pages[path + " (forged)"] = await http.get(concrete(path, whole), params=forged)
        draft = concrete("/controlroom/actions/{action_id}", whole, draft=True)
        pages["preview (reflected)"] = await http.get(draft, params=reflected)
    async with client_for(whole.app) as http:
        await log_in(http, SCRIPT)  # the account's name is in every page's header
        pages["actions as <script>"] = await http.get("/controlroom/actions")
    shown = {
        name: r.text for name, r in pages.items() if r.headers.get("content-type", "").startswith("text/html")
    }
    assert {n: r.status_code for n, r in pages.items() if n in shown} == dict.fromkeys(shown, 200)
    assert len(shown) >= 9, sorted(shown)
    leaks = [(name, marker) for name, body in shown.items() for marker in RAW if marker in body]
    assert leaks == []
    escaped = "&lt;script&gt;alert("
    for name in (
        "/controlroom/actions",
        "/controlroom/actions/{action_id}",
        "/controlroom/actions/{action_id} (draft)",
        "/controlroom/audit",
        "/controlroom/operators",
        "actions as <script>",
        "/controlroom/operators (reflected)",
    ):
        assert escaped in shown[name], name
    assert "&#34;&gt;&lt;img" in shown["/controlroom/actions/{action_id}"]
    assert "&#34;&gt;&lt;img" in shown["/controlroom/operators (reflected)"]
    for name in ("/controlroom/actions/{action_id} (forged)", "/controlroom/operators (forged)"):
        assert 'class="flash"' not in shown[name] and 'class="error"' not in shown[name], name


def test_the_page_script_builds_tips_with_text_nodes_only() -> None:
    source = JS.read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in source, sink
    # Tip fields reach the page only as textContent (never as an attribute but the data-id and the links).
    uses = set(re.findall(r"tip\.(\w+)", source))
    assert uses <= {
        "id",
        "received_at",
        "channel",
        "reporter",
        "text",
        "media",
        "verdict",
        "lat",
        "lon",
        "has_phone",
        "seen_at",  # formatted by seenTime() into a text node
        "seen_text",  # the tipster's phrase, formatted by seenTime() into the same text node
        "thread",  # each line's text appended as a text node
        "location",  # a desktop notification's body: plain text
        "late",  # a flag: which list the tip goes to
        "new",  # not a field: the `.tip.new` selector
    }


async def sse_data(response: httpx.Response, event: str) -> dict[str, object]:
    """The data of the first event of this name on a server-sent event stream."""
    lines = response.aiter_lines()
    current = ""
    while True:
        line = await asyncio.wait_for(anext(lines), 10)
        if line.startswith("event:"):
            current = line[6:].strip()
        elif line.startswith("data:") and current == event:
            data: dict[str, object] = json.loads(line[5:])
            return data


async def test_the_live_streams_carry_markup_as_json_text(whole: Whole) -> None:
    async with served(whole.app) as http:
        await log_in(http, "olga")
        path = concrete(STREAM, whole)
        async with http.stream("GET", path, params={"after": 0}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            tip = await sse_data(stream, "tip")
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with http.stream("GET", "/api/v1/tips/stream", params={"after": 0}, headers=auth) as api:
            forwarded = await sse_data(api, "tip")
    assert tip["text"] == TIP_TEXT
    assert forwarded["text"] == TIP_TEXT
    # The coordinator never gets the stream, even knowing its address.
    async with client_for(whole.app) as http:
        await log_in(http, "cor")
        assert (await http.get(path)).status_code == 403


def is_postgres(whole: Whole) -> bool:
    """Whether the app runs on PostgreSQL."""
    return whole.runtime.settings.database_url.startswith("postgresql")


def table_counts(whole: Whole) -> dict[str, int]:
    """Rows per table, and that every table is still there."""
    with whole.runtime.sessions() as session:
        names = inspect(session.connection()).get_table_names()
        return {
            name: int(session.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()) for name in names
        }


@pytest.mark.parametrize("attack", INJECTIONS)
async def test_sql_strings_in_every_field_are_refused_or_stored_as_text(whole: Whole, attack: str) -> None:
    before = table_counts(whole)
    wrong = []
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with client_for(whole.app) as http, client_for(whole.app) as anonymous:
        csrf = await log_in(http, "ada")
        pre = csrf_of((await anonymous.get("/controlroom/login")).text)
        for path, form in FORMS.items():
            if path == "/controlroom/logout":
                continue
            for name in form:
                data = {**form, name: attack, "csrf_token": pre if path in PRE_SESSION_POSTS else csrf}
                client = anonymous if path in PRE_SESSION_POSTS else http
                response = await client.post(concrete(path, whole, draft="launch" in path), data=data)
                if response.status_code >= 500:
                    wrong.append((path, name, response.status_code))
        queries = [
            ("/controlroom/audit", "event"), ("/controlroom/audit", "actor"), ("/controlroom/audit", "since"),
            ("/controlroom/figures.csv", "table"),
            ("/controlroom/operators", "flash"), ("/controlroom/operators", "error"),
            (concrete("/controlroom/actions/{action_id}", whole), "error"),
            (concrete("/controlroom/actions/{action_id}", whole), "flash"),
        ]  # fmt: skip
        for path, name in queries:
            response = await http.get(path, params={name: attack})
            if response.status_code >= 500:
                wrong.append((path, name, response.status_code))
            elif response.status_code == 200 and response.headers["content-type"].startswith("text/html"):
                assert attack.split("'")[0] not in RAW
        body = {
            "type": "robbery", "headline": attack, "description": attack, "instruction": attack,
            "area": {"municipalities": [attack]}, "expires_at": "2026-11-20T18:00:00+00:00",
        }  # fmt: skip
        created = await http.post("/api/v1/actions", json=body, headers=auth)
        if created.status_code >= 500:
            wrong.append(("/api/v1/actions", "municipalities", created.status_code))
        body["area"] = {"circle": {"lat": 52.22, "lon": 6.89, "radius_m": 1000}}
        created = await http.post("/api/v1/actions", json=body, headers=auth)
        # PostgreSQL cannot hold a NUL byte in text: a clear 422; everything else is stored as it came.
        assert created.status_code == (422 if "\x00" in attack and is_postgres(whole) else 201), created.text
        if created.status_code == 201:
            shown = (await http.get(f"/api/v1/actions/{created.json()['id']}", headers=auth)).json()
            assert (shown["headline"], shown["description"]) == (attack, attack), "stored as text"
        close = {"outcome": attack, "closing_text": attack}
        api_calls: list[tuple[str, str, dict[str, Any]]] = [
            ("GET", "/api/v1/tips", {"params": {"since": attack}}),
            ("GET", "/api/v1/actions", {"params": {"status": attack}}),
            ("POST", f"/api/v1/tips/{whole.tip_id}/reply", {"json": {"text": attack}}),
            ("POST", f"/api/v1/actions/{whole.action_id}/close", {"json": close}),
            (
                "POST",
                "/simulator/messages",
                {"json": {"channel": "sms", "sender": "+31612345670", "text": attack}},
            ),
            (
                "POST",
                "/simulator/messages",
                {"json": {"channel": "telegram", "sender": attack, "text": "START"}},
            ),
        ]
        for method, path, kwargs in api_calls:
            response = await http.request(method, path, headers=auth, **kwargs)
            if response.status_code >= 500:
                wrong.append((path, str(kwargs), response.status_code))
    assert wrong == []
    after = table_counts(whole)
    assert set(after) == set(before), "no table dropped"
    assert after["operator"] >= before["operator"] and after["participant"] >= before["participant"]
    with whole.runtime.sessions() as session:
        assert session.exec(select(Tip).where(col(Tip.id) == whole.tip_id)).one().text == TIP_TEXT


BIG = 2**40  # beyond PostgreSQL's integer columns: a DataError there (a 500 before), a miss on SQLite
BIG_IDS = [
    pytest.param("GET", f"/api/v1/actions/{BIG}/tips", id="api-action-tips"),
    pytest.param("POST", f"/api/v1/tips/{BIG}/reply", id="api-tip-reply"),
    pytest.param("GET", f"/controlroom/actions/{BIG}", id="controlroom-action"),
    pytest.param("POST", f"/controlroom/operators/{BIG}/sessions/end", id="controlroom-end-sessions"),
    pytest.param("POST", f"/controlroom/operators/{BIG}/active", id="controlroom-deactivate"),
]


@pytest.mark.parametrize(("method", "path"), BIG_IDS)
async def test_ids_beyond_the_columns_range_are_a_4xx_not_a_500(whole: Whole, method: str, path: str) -> None:
    async with client_for(whole.app) as http:
        csrf = await log_in(http, "ada")
        auth = {"Authorization": f"Bearer {TOKEN}"}
        if method == "GET":
            response = await http.get(path, headers=auth)
        elif path.startswith("/api/"):
            response = await http.post(path, headers=auth, json={"text": "Welke kleur?"})
        else:
            response = await http.post(path, data={"csrf_token": csrf})
    assert 400 <= response.status_code < 500, response.text


async def test_a_filter_beyond_the_columns_range_is_no_500(whole: Whole) -> None:
    async with client_for(whole.app) as http:
        response = await http.get(f"/api/v1/tips?after={BIG}", headers={"Authorization": f"Bearer {TOKEN}"})
    # Ids are 32-bit on every database: a larger one is refused before it reaches one (422).
    assert response.status_code == 422, response.text
