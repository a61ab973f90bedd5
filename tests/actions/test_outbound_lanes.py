"""Messages out other than alerts: rows in the caller's transaction, sent by the dispatcher before alerts."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.alerts import AlertTexts
from bot.channels.base import SendReceipt
from bot.dispatch import Dispatcher
from bot.messages import OutgoingMessage
from bot.outbox import queue_messages
from storage.actions import ActionDraft, Target, create_action, launch_action
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.models import ActionType, OutboundKind, OutboundMessage
from storage.participants import opt_out_identity
from storage.targeting import Circle, select_recipients
from storage.vocabulary import ChannelKind, DeliveryStatus
from tests.actions.conftest import ENSCHEDE, FakeChannel, dispatch_settings, seed_person
from tests.conftest import FixedClock

ASKER = "777000111"


def _launch(sessions: SessionFactory, clock: FixedClock) -> None:
    area = {"circle": {"lat": ENSCHEDE[0], "lon": ENSCHEDE[1], "radius_m": 50_000}}
    with transaction(sessions) as session:
        action = create_action(
            session,
            draft=ActionDraft(
                type=ActionType.MISSING_PERSON,
                headline="Vermist: jongen (8), blauwe jas",
                description="Tim is sinds 14:00 vermist.",
                instruction="Bel 112 als u hem ziet.",
                area=area,
                expires_at=clock() + timedelta(hours=2),
            ),
            now=clock(),
            created_by="test",
        )
        recipients = select_recipients(session, area=Circle(ENSCHEDE[0], ENSCHEDE[1], 50_000), at=clock())
        targets = [
            Target(r.participant_id, r.first.identity_id, r.first.channel, r.language, r.distance_m)
            for r in recipients
        ]
        launch_action(session, action=action, targets=targets, now=clock())


def _queue_reply(sessions: SessionFactory, vault: DataVault, clock: FixedClock, text: str) -> None:
    with transaction(sessions) as session:
        queue_messages(
            session,
            [OutgoingMessage(ChannelKind.TELEGRAM, ASKER, text)],
            vault=vault,
            kind=OutboundKind.REPLY,
            now=clock(),
            sender=(ChannelKind.TELEGRAM, ASKER),
        )


class AskedMidway(FakeChannel):
    """Records every send; after the `at`-th alert a person writes in, and their reply is queued."""

    def __init__(self, sessions: SessionFactory, vault: DataVault, clock: FixedClock, at: int) -> None:
        super().__init__((ChannelKind.TELEGRAM,))
        self.dispatcher: Dispatcher | None = None
        self._queue = lambda: _queue_reply(sessions, vault, clock, "Antwoord op uw vraag")
        self._at = at

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        await asyncio.sleep(0)  # a provider's send waits for its answer: the loop runs meanwhile
        receipt = await super().send(message)
        if len(self.sent) == self._at:
            self._queue()
            assert self.dispatcher is not None
            self.dispatcher.wake()  # as the router's after-commit call does
        return receipt


@pytest.mark.parametrize("rate_limits", [False, True])
async def test_a_reply_queued_during_a_fan_out_of_2000_goes_before_the_remaining_alerts(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, texts: AlertTexts, rate_limits: bool
) -> None:
    for i in range(2000):
        seed_person(sessions, vault, clock(), at=(ENSCHEDE[0] + (i % 100) * 0.001, ENSCHEDE[1]))
    _launch(sessions, clock)
    channel = AskedMidway(sessions, vault, clock, at=100)
    # Large claimed batches without a rate; with one (fast, so the test is quick), the rate's own batches.
    settings = dispatch_settings(
        dispatch_batch_size=200,
        dispatch_concurrency=2,
        dispatch_rate_limits=rate_limits,
        dispatch_rate_telegram=5000.0,
    )
    dispatcher = Dispatcher(
        sessions, {ChannelKind.TELEGRAM: channel}, clock, settings, "w1", vault=vault, texts=texts
    )
    channel.dispatcher = dispatcher
    report = await dispatcher.drain()
    assert (report.sent, report.messages) == (2000, 1)
    at = [m.recipient for m in channel.sent].index(ASKER)
    # Only the sends under way while the dispatcher claims it go first, not the 200 alerts it holds claimed.
    assert 100 <= at < 100 + 20
    with sessions() as session:
        [row] = session.exec(select(OutboundMessage)).all()
    assert (row.status, row.recipient_enc, row.message_enc) == (DeliveryStatus.SENT, None, None)
    assert row.provider_id is not None and row.sent_at == clock()


async def test_a_step_that_fails_leaves_no_message(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    with pytest.raises(RuntimeError), transaction(sessions) as session:
        queue_messages(
            session,
            [OutgoingMessage(ChannelKind.SMS, "+31612345678", "Welkom")],
            vault=vault,
            kind=OutboundKind.REPLY,
            now=clock(),
        )
        raise RuntimeError("the flow's step failed")
    with sessions() as session:
        assert session.exec(select(OutboundMessage)).all() == []


async def test_an_opt_out_wipes_the_waiting_messages_and_they_are_not_sent(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, texts: AlertTexts
) -> None:
    person = seed_person(sessions, vault, clock(), channels=(ChannelKind.SMS,))
    identity_id = person.identities[ChannelKind.SMS]
    address = person.addresses[ChannelKind.SMS]
    with transaction(sessions) as session:
        queue_messages(
            session,
            [OutgoingMessage(ChannelKind.SMS, address, "Wilt u deelnemer blijven?")],
            vault=vault,
            kind=OutboundKind.RECONFIRM,
            now=clock(),
            identity_id=identity_id,
        )
    with transaction(sessions) as session:
        opt_out_identity(session, identity_id=identity_id, now=clock())
    with sessions() as session:
        [row] = session.exec(select(OutboundMessage)).all()
    assert (row.status, row.recipient_enc, row.message_enc, row.error_code) == (
        DeliveryStatus.FAILED,
        None,
        None,
        "erased",
    )
    channel = FakeChannel((ChannelKind.SMS,))
    report = await Dispatcher(
        sessions, {ChannelKind.SMS: channel}, clock, dispatch_settings(), vault=vault, texts=texts
    ).drain()
    assert (report.messages, channel.sent) == (0, [])
