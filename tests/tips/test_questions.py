"""An operator's question to a tipster: a thread message and an outbound row, written together, sent by the
dispatcher, its state read from that row, and wiped by the tipster's STOP while it waits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from bot.conversations import ConversationRouter
from bot.dispatch import Dispatcher
from bot.texts import Catalogue
from bot.tips.questions import ask_tipster
from bot.tips.wiring import TipServices
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.models import OutboundKind, Tip, TipMessage
from storage.vocabulary import ChannelKind, DeliveryStatus
from tests.conftest import FixedClock
from tests.tips.conftest import FakeChannel, launch, outbound, person, say, stored_tips


def questions(sessions: SessionFactory) -> list[TipMessage]:
    """The operators' questions, in id order."""
    with sessions() as session:
        return list(
            session.exec(
                select(TipMessage).where(col(TipMessage.direction) == "out").order_by(col(TipMessage.id))
            )
        )


async def test_a_question_and_its_row_are_written_in_one_transaction(
    router: ConversationRouter, tips: TipServices, sessions: SessionFactory, vault: DataVault,
    clock: FixedClock, catalogue: Catalogue, channel: FakeChannel, dispatcher: Dispatcher,
) -> None:  # fmt: skip
    ann = person(sessions, vault, clock(), language="en")
    action = launch(sessions, clock(), ann)
    await say(router, ann, clock, "I saw him at 15:10 near the Jumbo")
    await dispatcher.drain()  # the thanks
    channel.sent.clear()
    [tip] = stored_tips(sessions)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction(sessions) as session:
        stored = session.get(Tip, tip.id)
        assert stored is not None
        ask_tipster(
            session, tip=stored, text="Which way?", actor="operator:olga", now=clock(),
            answer_open=timedelta(hours=1), vault=vault, catalogue=catalogue,
        )  # fmt: skip
        raise Boom  # the step fails after the question was written: neither stays
    assert questions(sessions) == [] and outbound(sessions, OutboundKind.TIP_QUESTION) == []
    assert stored_tips(sessions)[0].answer_open_until is None

    await tips.feed.reply(
        action_id=action.id or 0, tip_id=tip.id or 0, text="Which way?", actor="operator:olga"
    )
    [question] = questions(sessions)
    [row] = outbound(sessions, OutboundKind.TIP_QUESTION)
    assert question.outbound_id == row.id and row.identity_id == ann.identity_id
    assert row.status is DeliveryStatus.QUEUED and row.recipient_enc is not None
    assert ann.sender not in (row.recipient_enc or "") + (row.message_enc or "")  # encrypted while it waits
    [shown] = tips.feed.tips(action_id=action.id or 0)
    assert shown.thread[-1].state == "queued"

    assert (await dispatcher.drain()).messages == 1
    # Built in the transaction with the tipster's address and language.
    assert [(m.channel, m.recipient, m.text) for m in channel.sent] == [
        (
            ChannelKind.SMS,
            ann.sender,
            catalogue.render("en", "tip.operator_question", code=action.code, question="Which way?"),
        )
    ]
    [shown] = tips.feed.tips(action_id=action.id or 0)
    assert [(line.direction, line.state) for line in shown.thread] == [("in", "done"), ("out", "sent")]
    assert (await dispatcher.drain()).messages == 0  # sent once


async def test_stop_by_the_tipster_wipes_a_waiting_question(
    router: ConversationRouter, tips: TipServices, sessions: SessionFactory, vault: DataVault,
    clock: FixedClock, channel: FakeChannel, dispatcher: Dispatcher,
) -> None:  # fmt: skip
    jan = person(sessions, vault, clock())
    action = launch(sessions, clock(), jan)
    await say(router, jan, clock, "Ik zag hem om 15:10 bij de Jumbo")
    [tip] = stored_tips(sessions)
    await tips.feed.reply(
        action_id=action.id or 0, tip_id=tip.id or 0, text="Hoe laat?", actor="operator:olga"
    )
    await say(router, jan, clock, "STOP")
    [row] = outbound(sessions, OutboundKind.TIP_QUESTION)
    assert row.status is DeliveryStatus.FAILED and row.error_code == "erased"
    assert row.recipient_enc is None and row.message_enc is None
    await dispatcher.drain()
    assert not any("Hoe laat?" in m.text for m in channel.sent)
    [shown] = tips.feed.tips(action_id=action.id or 0)
    assert shown.thread[-1].state == "failed"


async def test_a_sent_question_still_shows_sent_after_its_row_is_purged(
    router: ConversationRouter, tips: TipServices, sessions: SessionFactory, vault: DataVault,
    clock: FixedClock, catalogue: Catalogue, dispatcher: Dispatcher,
) -> None:  # fmt: skip
    from bot.config import load_settings
    from scheduler.jobs import JobContext, purge_retention

    jan = person(sessions, vault, clock())
    action = launch(sessions, clock(), jan)
    await say(router, jan, clock, "Ik zag hem om 15:10 bij de Jumbo")
    [tip] = stored_tips(sessions)
    for text in ("Hoe laat?", "Welke kant op?"):
        await tips.feed.reply(action_id=action.id or 0, tip_id=tip.id or 0, text=text, actor="operator:olga")
    await dispatcher.drain()
    with transaction(sessions) as session:  # as if the second one never went out
        for message in outbound(sessions, OutboundKind.TIP_QUESTION)[1:]:
            stored = session.get(type(message), message.id)
            assert stored is not None
            stored.status = DeliveryStatus.QUEUED
            session.add(stored)

    clock.advance(days=2)
    context = JobContext(
        sessions=sessions, settings=load_settings(), clock=clock, vault=vault, catalogue=catalogue
    )
    purge_retention(context)
    assert outbound(sessions, OutboundKind.TIP_QUESTION) == []
    [shown] = tips.feed.tips(action_id=action.id or 0)
    assert [line.state for line in shown.thread if line.direction == "out"] == ["sent", "failed"]
