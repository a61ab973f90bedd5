"""Messages out other than alerts: rows in the caller's transaction, sent by the dispatcher before alerts."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable

import pytest
from sqlmodel import Session, select

from bot.alerts import AlertTexts
from bot.channels.base import SendReceipt
from bot.dispatch import Dispatcher
from bot.messages import OutgoingMessage
from bot.outbox import queue_messages
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction, writer_lock
from storage.models import OutboundKind, OutboundMessage
from storage.participants import opt_out_identity
from storage.vocabulary import ChannelKind, DeliveryStatus
from tests.actions.conftest import (
    ENSCHEDE,
    FakeChannel,
    Person,
    dispatch_settings,
    draft_over_enschede,
    launch_over_enschede,
    seed_person,
)
from tests.conftest import FixedClock

ASKER = "777000111"


def _launch(sessions: SessionFactory, clock: FixedClock) -> None:
    launch_over_enschede(sessions, clock, draft_over_enschede(sessions, clock, 50_000), 50_000)


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


# ---- hand-off: a reply written while the dispatcher runs goes to it in memory --------------------------


class Gated(FakeChannel):
    """Records every send; the first waits for `gate`, so what is handed off meanwhile waits in the lane."""

    def __init__(self) -> None:
        super().__init__((ChannelKind.TELEGRAM,))
        self.gate = asyncio.Event()
        self.started = asyncio.Event()

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        if not self.started.is_set():
            self.started.set()
            await self.gate.wait()
        return await super().send(message)


def _write_reply(
    session: Session, vault: DataVault, clock: FixedClock, dispatcher: Dispatcher, person: Person
) -> None:
    """A reply to the person, written in a step's transaction as the router writes it."""
    address = person.addresses[ChannelKind.TELEGRAM]
    queue_messages(
        session,
        [OutgoingMessage(ChannelKind.TELEGRAM, address, "Antwoord")],
        vault=vault,
        kind=OutboundKind.REPLY,
        now=clock(),
        identity_id=person.identities[ChannelKind.TELEGRAM],
        sender=(ChannelKind.TELEGRAM, address),
        handoff=dispatcher,
    )


def _reply_to(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, dispatcher: Dispatcher, person: Person
) -> None:
    with transaction(sessions) as session:
        _write_reply(session, vault, clock, dispatcher, person)


def _outbound(sessions: SessionFactory) -> list[OutboundMessage]:
    with sessions() as session:
        return list(session.exec(select(OutboundMessage).order_by(OutboundMessage.id)).all())  # type: ignore[arg-type]


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(400):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("timed out")


def _running(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, texts: AlertTexts, channel: FakeChannel
) -> tuple[Dispatcher, asyncio.Task[None]]:
    # Only a wake-up or the hand-off makes it look: the poll is far away.
    settings = dispatch_settings(dispatch_poll_interval_s=60.0, dispatch_concurrency=1)
    dispatcher = Dispatcher(
        sessions, {ChannelKind.TELEGRAM: channel}, clock, settings, "w1", vault=vault, texts=texts
    )
    return dispatcher, asyncio.create_task(dispatcher.run())


async def test_a_reply_written_while_the_dispatcher_runs_is_claimed_at_insert_and_sent_without_a_claim(
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    texts: AlertTexts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    person = seed_person(sessions, vault, clock())
    channel = FakeChannel((ChannelKind.TELEGRAM,))
    dispatcher, task = _running(sessions, vault, clock, texts, channel)
    await _until(lambda: dispatcher.claimant() == "w1")
    claims: list[object] = []
    decrypts: list[object] = []
    monkeypatch.setattr("bot.dispatch.claim_outbound", lambda *a, **kw: claims.append(kw) or [])
    real_decrypt = vault.decrypt
    monkeypatch.setattr(vault, "decrypt", lambda value: decrypts.append(value) or real_decrypt(value))
    _reply_to(sessions, vault, clock, dispatcher, person)
    [row] = _outbound(sessions)
    assert (row.status, row.claimed_by, row.claimed_at) == (DeliveryStatus.SENDING, "w1", clock())
    assert row.recipient_enc is not None  # encrypted at rest while it waits
    await _until(lambda: len(channel.sent) == 1)
    await _until(lambda: _outbound(sessions)[0].status is DeliveryStatus.SENT)
    dispatcher.stop()
    await asyncio.wait_for(task, 2)
    assert channel.recipients() == [person.addresses[ChannelKind.TELEGRAM]]
    assert (claims, decrypts) == ([], [])
    [row] = _outbound(sessions)
    assert (row.attempts, row.claimed_by, row.recipient_enc, row.message_enc) == (1, None, None, None)
    assert row.provider_id == "telegram-1"


async def test_a_reply_handed_off_after_the_dispatcher_stopped_is_queued_again_and_sent_later(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, texts: AlertTexts
) -> None:
    person = seed_person(sessions, vault, clock())
    channel = FakeChannel((ChannelKind.TELEGRAM,))
    dispatcher, task = _running(sessions, vault, clock, texts, channel)
    await _until(lambda: dispatcher.claimant() == "w1")
    address = person.addresses[ChannelKind.TELEGRAM]
    with transaction(sessions) as session:
        _write_reply(session, vault, clock, dispatcher, person)
        # The dispatcher stops between the step's insert and its commit.
        dispatcher.stop()
        await asyncio.wait_for(task, 2)
    assert dispatcher.claimant() is None
    await _until(lambda: _outbound(sessions)[0].status is DeliveryStatus.QUEUED)
    [row] = _outbound(sessions)
    assert (row.claimed_by, row.claimed_at) == (None, None)
    assert channel.sent == []
    report = await dispatcher.drain()
    assert (report.messages, channel.recipients()) == (1, [address])
    assert _outbound(sessions)[0].status is DeliveryStatus.SENT


async def test_a_reply_wiped_by_stop_after_its_hand_off_is_not_sent(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, texts: AlertTexts
) -> None:
    first = seed_person(sessions, vault, clock(), at=(ENSCHEDE[0] + 0.01, ENSCHEDE[1]))
    stopping = seed_person(sessions, vault, clock())
    channel = Gated()
    dispatcher, task = _running(sessions, vault, clock, texts, channel)
    await _until(lambda: dispatcher.claimant() == "w1")
    _reply_to(sessions, vault, clock, dispatcher, first)
    await asyncio.wait_for(channel.started.wait(), 2)  # the one consumer is busy with the first reply
    _reply_to(sessions, vault, clock, dispatcher, stopping)
    await asyncio.sleep(0.01)  # handed off: it waits in the lane
    with transaction(sessions) as session:
        opt_out_identity(session, identity_id=stopping.identities[ChannelKind.TELEGRAM], now=clock())
    channel.gate.set()
    await _until(lambda: _outbound(sessions)[0].status is DeliveryStatus.SENT)
    await asyncio.sleep(0.05)
    dispatcher.stop()
    await asyncio.wait_for(task, 2)
    assert channel.recipients() == [first.addresses[ChannelKind.TELEGRAM]]
    wiped = _outbound(sessions)[1]
    assert (wiped.status, wiped.error_code, wiped.recipient_enc, wiped.message_enc) == (
        DeliveryStatus.FAILED,
        "erased",
        None,
        None,
    )


class SlowFirst(FakeChannel):
    """The provider answers the first send late (a slow round trip), the others at once."""

    def __init__(self) -> None:
        super().__init__((ChannelKind.TELEGRAM,))
        self._first = True

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        if self._first:
            self._first = False
            await asyncio.sleep(0.05)
        return await super().send(message)


async def test_a_persons_messages_leave_in_their_order_with_many_consumers(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, texts: AlertTexts
) -> None:
    with transaction(sessions) as session:
        queue_messages(
            session,
            [
                OutgoingMessage(ChannelKind.TELEGRAM, ASKER, "Dank u, uw tip is bij de meldkamer."),
                OutgoingMessage(ChannelKind.TELEGRAM, ASKER, "Welke kant ging hij op?"),
                OutgoingMessage(ChannelKind.TELEGRAM, "888000111", "Welkom bij Burgernet."),
            ],
            vault=vault,
            kind=OutboundKind.REPLY,
            now=clock(),
        )
    channel = SlowFirst()
    settings = dispatch_settings(dispatch_concurrency=8)
    report = await Dispatcher(
        sessions, {ChannelKind.TELEGRAM: channel}, clock, settings, vault=vault, texts=texts
    ).drain()
    assert report.messages == 3
    to_asker = [m.text for m in channel.sent if m.recipient == ASKER]
    assert to_asker == ["Dank u, uw tip is bij de meldkamer.", "Welke kant ging hij op?"]
    # Another person does not wait for the slow one.
    assert channel.sent[0].recipient == "888000111"


@pytest.mark.skipif(
    os.environ.get("DATABASE_URL", "").startswith("postgresql"), reason="SQLite's writer lock only"
)
async def test_a_result_waits_for_a_busy_writer_in_a_thread_and_the_loop_goes_on(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, texts: AlertTexts
) -> None:
    person = seed_person(sessions, vault, clock())
    channel = Gated()
    dispatcher, task = _running(sessions, vault, clock, texts, channel)
    await _until(lambda: dispatcher.claimant() == "w1")
    _reply_to(sessions, vault, clock, dispatcher, person)
    await asyncio.wait_for(channel.started.wait(), 2)  # the reply is at the provider

    # Meanwhile a conversation step in a worker thread takes the writer, as a long step would.
    with sessions() as session:
        bind = session.get_bind()
    lock = writer_lock(bind)
    assert lock is not None
    held, release = threading.Event(), threading.Event()

    def step() -> None:
        with lock:
            held.set()
            release.wait(5)

    holder = threading.Thread(target=step)
    holder.start()
    try:
        assert held.wait(2)
        channel.gate.set()  # the provider answers
        await _until(lambda: len(channel.sent) == 1)
        # This test runs on while the step holds the writer: the result's commit did not stop the event
        # loop (had it waited on the loop, this line would come only after the step let go).
        await asyncio.sleep(0.05)
        assert not release.is_set() and holder.is_alive()
        assert _outbound(sessions)[0].status is DeliveryStatus.SENDING  # recorded once the writer is free
    finally:
        release.set()
        holder.join()
    await _until(lambda: _outbound(sessions)[0].status is DeliveryStatus.SENT)
    dispatcher.stop()
    await asyncio.wait_for(task, 2)
    assert channel.recipients() == [person.addresses[ChannelKind.TELEGRAM]]
