"""The whole app as `serve` builds it (`create_app(build_runtime(settings))`), with accounts, an action, a
draft, a tip and a CAP Update waiting on the action, for the security tests; and the list of its
control-room routes, read from the app."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from sqlmodel import col, select

from bot.app import create_app
from bot.config import Settings, load_settings
from bot.runtime import Runtime, build_runtime
from bot.tips.wiring import Timings
from storage.actions import ActionDraft, create_action
from storage.cap_changes import add_cap_change
from storage.crypto import new_data_key
from storage.db import transaction
from storage.models import ActionType, CapChangeKind, Operator, OperatorRole, Tip
from storage.operators import create_operator
from storage.regions import grant_everywhere
from tests.conftest import FixedClock
from tests.controlroom.conftest import PASSWORD, cheap_hasher, csrf_of
from tests.tips.conftest import launch, person

TOKEN = "security-api-token-0123456789"
BASE = "http://127.0.0.1:8080"
ACCOUNTS = {"olga": OperatorRole.OPERATOR, "cor": OperatorRole.COORDINATOR, "ada": OperatorRole.ADMIN}


@dataclass
class Whole:
    """The app and the ids the routes' path parameters take."""

    app: FastAPI
    runtime: Runtime
    action_id: int
    draft_id: int
    tip_id: int
    operator_id: int
    change_id: int


def whole_settings(database_url: str) -> Settings:
    """Settings as a test deployment would have them: the simulator on, the scheduler off."""
    return load_settings(
        database_url=database_url,
        data_key=new_data_key(),
        api_token=TOKEN,
        public_base_url=BASE,
        scheduler_enabled=False,
        privacy_statement_version="2026-1",
        dispatch_rate_limits=False,
    )


async def build_whole(
    database_url: str, clock: FixedClock, *, headline: str, tip_text: str, draft_headline: str
) -> Whole:
    """The whole app, three accounts, an active action with one tip (sent through the simulator), a draft."""
    settings = whole_settings(database_url)
    timings = Timings(stream_poll_s=0.05, forwarder_poll_s=0.05)
    runtime = build_runtime(settings, clock=clock, run_migrations=False, timings=timings)
    app = create_app(runtime)
    with transaction(runtime.sessions) as session:
        for name, role in ACCOUNTS.items():
            account = create_operator(
                session,
                username=name,
                password=PASSWORD,
                role=role,
                municipalities=("0153",) if role == OperatorRole.COORDINATOR else (),
                now=clock(),
                hasher=cheap_hasher(),
            )
            if role != OperatorRole.COORDINATOR:
                grant_everywhere(session, operator=account, now=clock())
        draft = create_action(
            session,
            draft=ActionDraft(
                type=ActionType.ROBBERY,
                headline=draft_headline,
                description="Man op scooter.",
                instruction="Bel 112.",
                area={"circle": {"lat": 52.22, "lon": 6.89, "radius_m": 2000}},
                expires_at=clock().replace(hour=23),
            ),
            now=clock(),
            created_by="test",
        )
        draft_id = draft.id or 0
    jan = person(runtime.sessions, runtime.vault, clock())
    action = launch(runtime.sessions, clock(), jan, headline=headline)
    async with client_for(app) as http:
        sent = await http.post(
            "/simulator/messages", json={"channel": "sms", "sender": jan.sender, "text": tip_text}
        )
        assert sent.status_code == 200, sent.text
    with runtime.sessions() as session:
        tip = session.exec(select(Tip).order_by(col(Tip.id))).first()
        assert tip is not None, "the simulated SMS became a tip"
        operator = session.exec(select(Operator).where(Operator.username == "olga")).one()
    with transaction(runtime.sessions) as session:
        change = add_cap_change(
            session,
            action=action,
            kind=CapChangeKind.UPDATE,
            text=f"Gezien bij het station. {headline}",
            instruction="",
            sender="meldkamer@politie.example",
            identifier="MK-1",
            sent=clock(),
            now=clock(),
        )
    return Whole(app, runtime, action.id or 0, draft_id, tip.id or 0, operator.id or 0, change.id or 0)


def client_for(app: FastAPI) -> httpx.AsyncClient:
    """An in-process client on the app (no lifespan: the background work is not needed here)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


async def log_in(http: httpx.AsyncClient, username: str, password: str = PASSWORD) -> str:
    """Log in through the form; the session's CSRF token, read from a page."""
    form = await http.get("/controlroom/login")
    done = await http.post(
        "/controlroom/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(form.text)},
    )
    assert done.status_code == 303, done.text
    return csrf_of((await http.get("/controlroom/figures")).text)


def controlroom_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path template) the app serves under /controlroom, read from the app itself."""
    found = set()
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        if path.startswith("/controlroom"):
            found.update((method, path) for method in (route.methods or set()) - {"HEAD"})
    return sorted(found)


def concrete(path: str, whole: Whole, *, draft: bool = False) -> str:
    """A route's path with its parameters filled in with rows that exist."""
    return (
        path.replace("{action_id}", str(whole.draft_id if draft else whole.action_id))
        .replace("{tip_id}", str(whole.tip_id))
        .replace("{position}", "1")
        .replace("{operator_id}", str(whole.operator_id))
        .replace("{change_id}", str(whole.change_id))
        .replace("{name}", "controlroom.js")
        .replace("{name:path}", "leaflet.js")
    )
