"""Abuse rules (rate limit, duplicates folded, long tips cut), SMS budgets, and the control room's feed."""

from __future__ import annotations

import pytest

from bot.channels.segments import count_segments
from bot.controlroom.tipfeed import TipNotFound
from bot.conversations import ConversationRouter
from bot.texts import Catalogue
from bot.tips.wiring import TipServices
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock
from tests.tips.conftest import forwards, launch, person, say, stored_tips

SAMPLE = {
    "code": "BN-4K7P", "max": 1000, "n": 9, "count": 9, "headline": "x", "options": "1. BN-4K7P: x",
    "question": "Welke kant liep hij op?", "id": 123456, "channel": "whatsapp", "reporter": "R-0123456789",
    "text": "Ik zag om 15:10 twee mannen op een zwarte scooter bij de Jumbo", "label": "Signalement",
    "value": "zwarte scooter, donkere jas", "outcome": "de actie is gestopt zonder resultaat",
}  # fmt: skip


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_tip_texts_fit_two_sms_parts(catalogue: Catalogue, lang: str) -> None:
    keys = sorted(k for k in catalogue.keys(lang) if k.startswith("tip."))
    assert len(keys) >= 15
    too_long = {k: n for k in keys if (n := count_segments(catalogue.render(lang, k, **SAMPLE)).segments) > 2}
    assert too_long == {}


async def test_rate_limit_per_sender_answers_politely(
    router: ConversationRouter, sessions: SessionFactory, vault: DataVault, clock: FixedClock,
    catalogue: Catalogue,
    tips: TipServices,
) -> None:  # fmt: skip
    jan = person(sessions, vault, clock(), registered=False)
    action = launch(sessions, clock())
    limit = tips.rules.max_tips_per_window
    turns = []
    for n in range(limit + 1):
        turns += await say(
            router, jan, clock, f"{action.code} Ik zag hem om 15:0{n} bij de Jumbo, melding {n}"
        )
        clock.advance(minutes=1)  # a message with a code starts a new tip, even within the extension window
    assert turns[-1] == [catalogue.render("nl", "tip.rate_limited")]
    assert len(stored_tips(sessions)) == limit
    clock.advance(minutes=tips.rules.rate_window_minutes)
    await say(router, jan, clock, f"{action.code} Nog een keer gezien om 15:40 bij het station")
    assert len(stored_tips(sessions)) == limit + 1


async def test_sixty_sms_tips_from_one_sender_get_a_bounded_number_of_replies(
    router: ConversationRouter, sessions: SessionFactory, vault: DataVault, clock: FixedClock,
    catalogue: Catalogue,
    tips: TipServices,
) -> None:  # fmt: skip
    jan = person(sessions, vault, clock())
    action = launch(sessions, clock(), jan)
    window_s = tips.rules.rate_window_minutes * 60
    turns = []
    for n in range(60):
        turns += await say(router, jan, clock, f"{action.code} Ik zag hem bij de Jumbo, melding {n}")
    windows = 60 * 20 // window_s + 1  # `say` sends one every 20 s; the windows may not start with ours
    refused_at = [n for n, t in enumerate(turns) if t == [catalogue.render("nl", "tip.rate_limited")]]
    # The limit is said once per (clock-aligned) window, then silence (60 messages used to get 60 replies).
    assert 1 <= len(refused_at) <= windows
    assert sum(1 for t in turns if t) <= 60 // 2
    assert len(stored_tips(sessions)) <= windows * tips.rules.max_tips_per_window


async def test_a_resent_text_is_folded_into_the_tip_that_has_it(
    router: ConversationRouter,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    catalogue: Catalogue,
) -> None:
    jan = person(sessions, vault, clock())
    action = launch(sessions, clock(), jan)
    text = "Ik zag hem om 15:10 bij de Jumbo"
    turns = await say(router, jan, clock, text, text)
    clock.advance(minutes=30)
    turns += await say(router, jan, clock, text)  # past the extension window: a new tip, but it is known
    assert turns[1] == [catalogue.render("nl", "tip.duplicate", code=action.code)]
    assert turns[2] == [catalogue.render("nl", "tip.duplicate", code=action.code)]
    [tip] = stored_tips(sessions)
    assert tip.text == text and tip.messages == 1 and len(forwards(sessions)) == 1


async def test_an_over_long_tip_is_truncated_with_a_note(
    router: ConversationRouter, sessions: SessionFactory, vault: DataVault, clock: FixedClock,
    catalogue: Catalogue,
    tips: TipServices,
) -> None:  # fmt: skip
    jan = person(sessions, vault, clock())
    action = launch(sessions, clock(), jan)
    long_text = "Ik zag hem om 15:10 bij de Jumbo. " + "Hij liep heen en weer. " * 100
    [replies] = await say(router, jan, clock, long_text)
    limit = tips.rules.max_chars
    assert replies == [
        catalogue.render("nl", "tip.truncated", max=limit),
        catalogue.render("nl", "tip.thanks", code=action.code),
    ]
    [tip] = stored_tips(sessions)
    assert tip.truncated and len(tip.text) <= limit
    assert forwards(sessions)[0].payload["truncated"] is True


async def test_storage_feed_for_the_control_room(
    router: ConversationRouter,
    tips: TipServices,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
) -> None:
    sms = person(sessions, vault, clock())
    stranger_chat = person(sessions, vault, clock(), ChannelKind.TELEGRAM, registered=False)
    action = launch(sessions, clock(), sms)
    await say(router, sms, clock, "Ik zag hem om 15:10 bij de Jumbo, rode jas")
    await say(router, stranger_chat, clock, f"{action.code} Hij zat om 15:15 in de bus naar Hengelo")
    feed = tips.feed
    views = feed.tips(action_id=action.id or 0)
    assert [v.channel for v in views] == ["sms", "telegram"]
    assert [v.has_phone for v in views] == [True, False]
    assert views[0].location == "Jumbo" and views[0].description == "rode jas"
    assert feed.tips(action_id=action.id or 0, after=views[0].id) == [views[1]]
    marked = feed.mark(action_id=action.id or 0, tip_id=views[0].id, useful=True, actor="operator:olga")
    assert marked.verdict == "useful"
    assert feed.phone(action_id=action.id or 0, tip_id=views[0].id, actor="operator:olga") == sms.sender
    with pytest.raises(TipNotFound):
        feed.phone(action_id=action.id or 0, tip_id=views[1].id, actor="operator:olga")
    with pytest.raises(TipNotFound):
        feed.mark(action_id=(action.id or 0) + 1, tip_id=views[0].id, useful=False, actor="operator:olga")
    with pytest.raises(TipNotFound):
        await feed.reply(action_id=action.id or 0, tip_id=999, text="?", actor="operator:olga")


@pytest.mark.parametrize("registered", [True, False], ids=["participant", "unregistered"])
async def test_stop_erases_the_tipsters_number_from_their_tips(
    router: ConversationRouter,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    registered: bool,
) -> None:
    jan = person(sessions, vault, clock(), registered=registered)
    action = launch(sessions, clock(), jan)
    await say(router, jan, clock, f"{action.code} Ik zag hem om 15:10 bij de Jumbo")
    assert stored_tips(sessions)[0].phone_enc is not None
    await say(router, jan, clock, "STOP")
    [tip] = stored_tips(sessions)
    assert tip.phone_enc is None and tip.text.endswith("bij de Jumbo")


async def test_retention_purges_a_closed_actions_tips_with_their_forwards_and_messages(
    router: ConversationRouter,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    catalogue: Catalogue,
) -> None:
    from sqlalchemy import update
    from sqlmodel import col, select

    from bot.config import load_settings
    from scheduler.jobs import JobContext, purge_retention
    from storage.models import Action, ActionStatus, TipForward, TipMessage

    jan = person(sessions, vault, clock())
    action = launch(sessions, clock(), jan)
    await say(router, jan, clock, "Ik zag hem om 15:10 bij de Jumbo", "en een rode rugzak")
    with transaction(sessions) as session:
        session.execute(
            update(Action)
            .where(col(Action.id) == action.id)
            .values(status=ActionStatus.CLOSED.value, closed_at=clock())
        )
    settings = load_settings()
    clock.advance(days=settings.retention_days + 1)
    purge_retention(
        JobContext(sessions=sessions, settings=settings, clock=clock, vault=vault, catalogue=catalogue)
    )
    with sessions() as session:
        left = [len(session.exec(select(model)).all()) for model in (TipForward, TipMessage)]
    assert stored_tips(sessions) == [] and left == [0, 0]


async def test_storage_feed_shows_the_whole_thread_with_the_operators_questions(
    router: ConversationRouter,
    tips: TipServices,
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
) -> None:
    sms = person(sessions, vault, clock())
    action = launch(sessions, clock(), sms)
    await say(router, sms, clock, "Ik zag hem om 15:10 bij de Jumbo, rode jas")
    feed = tips.feed
    (first,) = feed.tips(action_id=action.id or 0)
    await feed.reply(action_id=action.id or 0, tip_id=first.id, text="Welke kant op?", actor="operator:olga")
    await say(router, sms, clock, "Richting het station")
    (tip,) = feed.tips(action_id=action.id or 0)
    assert [(line.direction, line.text) for line in tip.thread] == [
        ("in", "Ik zag hem om 15:10 bij de Jumbo, rode jas"),
        ("out", "Welke kant op?"),
        ("in", "Richting het station"),
    ]
    assert tip.to_json()["thread"][1]["text"] == "Welke kant op?"
    marked = feed.mark(action_id=action.id or 0, tip_id=tip.id, useful=True, actor="operator:olga")
    assert len(marked.thread) == 3, "a verdict keeps the conversation"
