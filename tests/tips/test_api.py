"""The tips REST API on a real server on loopback: lists, the SSE stream resuming, operator replies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from bot.config import Settings, load_settings
from bot.conversations import ConversationRouter
from bot.dispatch import Dispatcher
from bot.texts import Catalogue
from bot.tips.wiring import TipServices
from storage.actions import close_action
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.models import Action, ActionOutcome, OutboundKind
from tests.conftest import FixedClock
from tests.e2e.serving import served
from tests.tips.conftest import FakeChannel, launch, outbound, person, say, stored_tips

TOKEN = "api-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def settings() -> Settings:
    """Settings with an API token."""
    return load_settings(privacy_statement_version="2026-1", api_token=TOKEN)


@pytest.fixture
def tips(
    sessions: SessionFactory, vault: DataVault, settings: Settings, clock: FixedClock, catalogue: Catalogue,
    channel: FakeChannel,
) -> TipServices:  # fmt: skip
    """Tip services whose stream polls storage quickly (a tip from another process shows up soon)."""
    return TipServices(
        sessions=sessions, vault=vault, settings=settings, clock=clock, catalogue=catalogue,
        senders=dict.fromkeys(channel.kinds, channel), stream_poll_s=0.05,
    )  # fmt: skip


@pytest.fixture
async def http(tips: TipServices) -> AsyncIterator[httpx.AsyncClient]:
    """The API served by uvicorn on loopback, and a client for it."""
    app = FastAPI()
    app.include_router(tips.api_router())
    async with served(app, timeout_s=10) as client:
        yield client


@dataclass(frozen=True)
class Event:
    """One server-sent event."""

    id: int
    name: str
    data: dict[str, Any]


class Stream:
    """An open SSE connection read event by event."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def next(self) -> Event:
        """The next event (comments and `retry:` lines skipped)."""
        fields: dict[str, str] = {}
        while True:
            line = await asyncio.wait_for(anext(self._lines), 10)
            if not line:
                if "data" in fields:
                    return Event(int(fields["id"]), fields["event"], json.loads(fields["data"]))
                fields = {}
                continue
            if line.startswith(":"):
                continue
            key, _, value = line.partition(":")
            fields[key] = value.strip()


async def test_every_route_needs_the_token(http: httpx.AsyncClient) -> None:
    for path in ("/api/v1/tips", "/api/v1/actions/1/tips", "/api/v1/tips/stream"):
        assert (await http.get(path)).status_code == 401
    assert (await http.post("/api/v1/tips/1/reply", json={"text": "?"})).status_code == 401


async def test_lists_since_and_per_action(
    http: httpx.AsyncClient,
    router: ConversationRouter,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
) -> None:
    jan, piet = person(sessions, vault, clock()), person(sessions, vault, clock())
    first = launch(sessions, clock(), jan)
    second = launch(sessions, clock(), piet)
    await say(router, jan, clock, "Ik zag hem om 15:10 bij de Jumbo")
    cutoff = clock().isoformat()
    clock.advance(minutes=10)
    await say(router, piet, clock, "Ik zag hem om 15:40 bij het station")
    everything = (await http.get("/api/v1/tips", headers=AUTH)).json()
    assert [t["action_code"] for t in everything] == [first.code, second.code]
    recent = (await http.get("/api/v1/tips", params={"since": cutoff}, headers=AUTH)).json()
    assert [t["action_id"] for t in recent] == [second.id]
    of_first = (await http.get(f"/api/v1/actions/{first.id}/tips", headers=AUTH)).json()
    assert [t["text"] for t in of_first] == ["Ik zag hem om 15:10 bij de Jumbo"]
    assert (await http.get("/api/v1/actions/999/tips", headers=AUTH)).status_code == 404
    assert (await http.get("/api/v1/tips", params={"since": "gisteren"}, headers=AUTH)).status_code == 422


async def test_a_message_after_close_is_listed_as_late(
    http: httpx.AsyncClient,
    router: ConversationRouter,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
) -> None:
    jan = person(sessions, vault, clock())
    action = launch(sessions, clock(), jan)
    await say(router, jan, clock, "Ik zag hem om 15:10 bij de Jumbo")
    with transaction(sessions) as session:
        stored = session.get(Action, action.id)
        assert stored is not None
        close_action(session, action=stored, outcome=ActionOutcome.FOUND, closing_text="", now=clock())
    await say(router, jan, clock, "hij liep naar de brug")
    listed = (await http.get(f"/api/v1/actions/{action.id}/tips", headers=AUTH)).json()
    assert [(t["text"], t["late"]) for t in listed] == [
        ("Ik zag hem om 15:10 bij de Jumbo", False),
        ("hij liep naar de brug", True),
    ]


async def test_stream_resumes_with_last_event_id_and_sees_other_processes(
    http: httpx.AsyncClient, router: ConversationRouter, sessions: SessionFactory, vault: DataVault,
    clock: FixedClock,
    settings: Settings, catalogue: Catalogue, channel: FakeChannel, book: Any,
) -> None:  # fmt: skip
    people = [person(sessions, vault, clock()) for _ in range(3)]
    action = launch(sessions, clock(), *people)
    async with http.stream("GET", "/api/v1/tips/stream", headers=AUTH) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = Stream(response)
        await say(router, people[0], clock, "Ik zag hem om 15:10 bij de Jumbo")
        first = await stream.next()
        assert first.name == "tip" and first.data["event"] == "tip.created"
        assert first.data["action_code"] == action.code
    last_seen = first.id

    # Meanwhile: an extension here, and a tip stored by another process (its own services, no shared hub).
    await say(router, people[0], clock, "Hij had een rode rugzak")
    other = TipServices(
        sessions=sessions, vault=vault, settings=settings, clock=clock, catalogue=catalogue,
        senders={}, stream_poll_s=0.05,
    )  # fmt: skip
    other_router = ConversationRouter(
        sessions=sessions, vault=vault, book=book, parser=router._parser, catalogue=catalogue,
        settings=settings, clock=clock, flows=other.flows,
    )  # fmt: skip
    await say(other_router, people[1], clock, "Ik zag hem om 15:20 bij het station")

    headers = {**AUTH, "Last-Event-ID": str(last_seen)}
    async with http.stream("GET", "/api/v1/tips/stream", headers=headers) as response:
        stream = Stream(response)
        missed = [await stream.next(), await stream.next()]
        assert [e.data["event"] for e in missed] == ["tip.updated", "tip.created"]
        assert missed[0].data["id"] == first.data["id"] and missed[0].id > last_seen
        # And live: a tip from the other process arrives through the storage poll.
        await say(other_router, people[2], clock, "Ik zag hem om 15:25 bij de brug")
        live = await stream.next()
        assert live.id > missed[1].id and live.data["location"]["text"] == "brug"

    async with http.stream("GET", "/api/v1/tips/stream", params={"after": 0}, headers=AUTH) as response:
        stream = Stream(response)
        assert [(await stream.next()).id for _ in range(4)] == sorted(
            {first.id, *(e.id for e in missed), live.id}
        )


async def test_operator_reply_reaches_the_tipster_and_the_answer_joins_the_tip(
    http: httpx.AsyncClient, router: ConversationRouter, tips: TipServices, sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock, catalogue: Catalogue, channel: FakeChannel, dispatcher: Dispatcher,
) -> None:  # fmt: skip
    jan = person(sessions, vault, clock())
    action = launch(sessions, clock(), jan)
    await say(router, jan, clock, "Ik zag hem om 15:10 bij de Jumbo")
    await dispatcher.drain()  # the thanks
    channel.sent.clear()
    [tip] = stored_tips(sessions)
    answer = await http.post(
        f"/api/v1/tips/{tip.id}/reply", json={"text": "Welke kant liep hij op?"}, headers=AUTH
    )
    assert answer.status_code == 202 and answer.json()["state"] == "queued"
    assert (await http.post("/api/v1/tips/999/reply", json={"text": "?"}, headers=AUTH)).status_code == 404
    assert (
        await http.post(f"/api/v1/tips/{tip.id}/reply", json={"text": " "}, headers=AUTH)
    ).status_code == 422

    assert (await dispatcher.drain()).messages == 1
    [question] = channel.sent
    assert (question.channel, question.recipient) == (jan.channel, jan.sender)
    assert question.text == catalogue.render(
        "nl", "tip.operator_question", code=action.code, question="Welke kant liep hij op?"
    )
    clock.advance(minutes=20)  # well past the extension window: the open question still links it
    [replies] = await say(router, jan, clock, "Richting het centrum")
    assert replies == [catalogue.render("nl", "tip.answer_added")]
    [tip] = stored_tips(sessions)
    assert tip.text.endswith("Richting het centrum") and tip.direction == "centrum"
    assert tip.answer_open_until is None
    [shown] = tips.feed.tips(action_id=action.id or 0)
    assert [(line.direction, line.state) for line in shown.thread] == [
        ("in", "done"),
        ("out", "sent"),
        ("in", "done"),
    ]
    [row] = outbound(sessions, OutboundKind.TIP_QUESTION)
    assert row.identity_id == jan.identity_id and row.recipient_enc is None  # wiped once sent


async def test_a_question_that_fails_to_send_is_retried(
    router: ConversationRouter, tips: TipServices, sessions: SessionFactory, vault: DataVault,
    clock: FixedClock,
    channel: FakeChannel, dispatcher: Dispatcher,
) -> None:  # fmt: skip
    from bot.channels.base import RetryableSendError

    jan = person(sessions, vault, clock())
    launch(sessions, clock(), jan)
    await say(router, jan, clock, "Ik zag hem om 15:10 bij de Jumbo")
    await dispatcher.drain()  # the thanks
    channel.sent.clear()
    [tip] = stored_tips(sessions)
    channel.failures.append(RetryableSendError("provider down", code="503"))
    await tips.feed.reply(
        action_id=tip.action_id, tip_id=tip.id or 0, text="Hoe laat?", actor="operator:olga"
    )
    assert (await dispatcher.drain()).messages == 0 and channel.sent == []
    [shown] = tips.feed.tips(action_id=tip.action_id)
    assert shown.thread[-1].state == "queued"
    clock.advance(seconds=10)
    assert (await dispatcher.drain()).messages == 1 and len(channel.sent) == 1
    [shown] = tips.feed.tips(action_id=tip.action_id)
    assert shown.thread[-1].state == "sent"
