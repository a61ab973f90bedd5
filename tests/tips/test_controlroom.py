"""The control room on the storage-backed feed: a real tip on the action page, verdict, question, phone."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlmodel import select

from bot.controlroom.deps import ControlRoom
from bot.controlroom.live import action_events
from bot.controlroom.tipfeed import TipFeed
from bot.conversations import ConversationRouter
from bot.dispatch import Dispatcher
from bot.texts import Catalogue
from bot.tips.wiring import TipServices
from nlu.keywords import KeywordParser
from storage.actions import close_action
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.geo import PostcodeBook
from storage.models import Action, ActionOutcome, AuditEvent
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock
from tests.controlroom.conftest import FakeRuntime, app, client, cr, csrf_of, login, runtime  # noqa: F401
from tests.tips.conftest import FakeChannel, launch, person, say, stored_tips


@pytest.fixture
def services(runtime: FakeRuntime, channel: FakeChannel) -> TipServices:  # noqa: F811
    """Tip services on the control room's database."""
    return TipServices(
        sessions=runtime.sessions, vault=runtime.vault, settings=runtime.settings, clock=runtime.clock,
        catalogue=runtime.catalogue, senders=dict.fromkeys(ChannelKind, channel),
    )  # fmt: skip


@pytest.fixture
def tips(services: TipServices) -> TipFeed:
    """The control room reads the storage feed (instead of the fake one its own tests use)."""
    return services.feed


@pytest.fixture
def tip_router(runtime: FakeRuntime, services: TipServices, book: PostcodeBook) -> ConversationRouter:  # noqa: F811
    """The router with the tip flow on the same database."""
    return ConversationRouter(
        sessions=runtime.sessions, vault=runtime.vault, book=book, parser=KeywordParser(),
        catalogue=runtime.catalogue, settings=runtime.settings, clock=runtime.clock, flows=services.flows,
    )  # fmt: skip


async def test_operator_sees_marks_questions_and_calls_a_real_tip(
    client: httpx.AsyncClient,  # noqa: F811
    tip_router: ConversationRouter,
    services: TipServices,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    channel: FakeChannel,
    catalogue: Catalogue,
    dispatcher: Dispatcher,
) -> None:
    jan = person(sessions, vault, clock())
    action = launch(sessions, clock(), jan)
    await say(tip_router, jan, clock, "Ik zag hem om 15:10 bij de Jumbo, rode jas")
    await dispatcher.drain()  # the thanks
    channel.sent.clear()
    [tip] = stored_tips(sessions)

    await login(client, "olga")
    page = await client.get(f"/controlroom/actions/{action.id}")
    assert page.status_code == 200
    assert "Ik zag hem om 15:10 bij de Jumbo, rode jas" in page.text and tip.reporter in page.text
    assert jan.sender not in page.text
    token = csrf_of(page.text)
    base = f"/controlroom/actions/{action.id}/tips/{tip.id}"
    headers = {"X-Requested-With": "fetch"}
    marked = await client.post(f"{base}/mark", data={"csrf_token": token, "useful": "yes"}, headers=headers)
    assert marked.json()["verdict"] == "useful"
    replied = await client.post(
        f"{base}/reply", data={"csrf_token": token, "text": "Welke kant op?"}, headers=headers
    )
    assert replied.status_code == 200
    shown = (await client.get(f"/controlroom/actions/{action.id}")).text
    assert "Welke kant op?" in shown and "nog niet verstuurd" in shown  # the outbound row waits
    assert (await dispatcher.drain()).messages == 1
    shown = (await client.get(f"/controlroom/actions/{action.id}")).text
    assert "Welke kant op?" in shown and "niet verstuurd" not in shown  # sent: the thread says nothing more
    assert [m.text for m in channel.sent] == [
        catalogue.render("nl", "tip.operator_question", code=action.code, question="Welke kant op?")
    ]
    phone = await client.post(f"{base}/phone", data={"csrf_token": token}, headers=headers)
    assert phone.json() == {"phone": jan.sender}
    with sessions() as session:
        viewed = session.exec(select(AuditEvent).where(AuditEvent.event == "tip_phone_viewed")).all()
    assert [(e.actor, e.subject) for e in viewed] == [("operator:olga", f"tip:{tip.id}")]


async def test_a_late_message_is_marked_apart_on_the_action_page(
    client: httpx.AsyncClient,  # noqa: F811
    tip_router: ConversationRouter,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
) -> None:
    jan = person(sessions, vault, clock())
    action = launch(sessions, clock(), jan)
    await say(tip_router, jan, clock, "Ik zag hem om 15:10 bij de Jumbo, rode jas")
    with transaction(sessions) as session:
        stored = session.get(Action, action.id)
        assert stored is not None
        close_action(session, action=stored, outcome=ActionOutcome.FOUND, closing_text="", now=clock())
    await say(tip_router, jan, clock, "hij liep naar de brug")
    live, late = stored_tips(sessions)
    await login(client, "olga")
    page = (await client.get(f"/controlroom/actions/{action.id}")).text
    live_item = page[page.index(f'id="tip-{live.id}"') - 40 : page.index(f'id="tip-{live.id}"')]
    late_item = page[page.index(f'id="tip-{late.id}"') - 40 : page.index(f'id="tip-{late.id}"') + 200]
    assert "late" not in live_item
    assert 'class="tip  late"' in late_item and 'data-late="yes"' in late_item and "Na afloop" in late_item


async def _never() -> bool:
    return False


async def test_a_tip_that_grows_is_pushed_again_to_the_open_page(
    cr: ControlRoom,  # noqa: F811
    tip_router: ConversationRouter,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
) -> None:
    jan = person(sessions, vault, clock())
    action = launch(sessions, clock(), jan)
    assert action.id is not None
    await say(tip_router, jan, clock, "Ik zag hem om 15:10 bij de Jumbo, rode jas")
    [tip] = stored_tips(sessions)
    assert tip.id is not None
    clock.advance(minutes=1)

    def stream() -> AsyncIterator[str]:
        return action_events(
            cr, action_id=action.id or 0, after=tip.id or 0, disconnected=_never, max_polls=1
        )

    assert not [e async for e in stream() if "event: tip_updated" in e]  # nothing changed since
    await say(tip_router, jan, clock, "Hij fietste richting het station")
    clock.advance(seconds=-15)  # the page looks 5 s after the second message
    [updated] = [e async for e in stream() if "event: tip_updated" in e]
    data = json.loads(updated.split("data: ", 1)[1])
    assert data["id"] == tip.id and "richting het station" in data["text"]
    assert "id: " not in updated.split("event:", 1)[0]  # no event id: Last-Event-ID stays the newest tip
