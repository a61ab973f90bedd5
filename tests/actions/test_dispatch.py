"""The outbox: launch writes it; the dispatcher sends nearest first, retries, falls back, survives a kill."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.alerts import AlertTexts
from bot.channels.base import PermanentSendError, RecipientOptedOut, RetryableSendError, SendReceipt
from bot.config import Settings
from bot.dispatch import Dispatcher, TokenBucket, apply_status
from bot.messages import OutgoingMessage
from storage.actions import (
    close_action,
    closing_audience,
    delivery_counts,
    normalise_code,
)
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.models import (
    Action,
    ActionOutcome,
    ActionStatus,
    ChannelIdentity,
    Delivery,
    DeliveryKind,
)
from storage.vocabulary import ChannelKind, DeliveryStatus, StatusUpdate
from tests.actions.conftest import (
    ENSCHEDE,
    FakeChannel,
    Person,
    WorkerKilled,
    dispatch_settings,
    draft_over_enschede,
    launch_over_enschede,
    seed_person,
)
from tests.conftest import FixedClock

ALL = (ChannelKind.TELEGRAM, ChannelKind.SMS, ChannelKind.WHATSAPP, ChannelKind.VOICE)


def _launch(sessions: SessionFactory, clock: FixedClock, radius_m: float = 5_000) -> Action:
    return launch_over_enschede(sessions, clock, draft_over_enschede(sessions, clock, radius_m), radius_m)


def _dispatcher(
    sessions: SessionFactory,
    channel: FakeChannel,
    clock: FixedClock,
    vault: DataVault,
    texts: AlertTexts,
    settings: Settings | None = None,
    worker_id: str = "w1",
) -> Dispatcher:
    return Dispatcher(
        sessions,
        dict.fromkeys(channel.kinds, channel),
        clock,
        settings or dispatch_settings(),
        worker_id,
        vault=vault,
        texts=texts,
    )


def _deliveries(sessions: SessionFactory, kind: DeliveryKind = DeliveryKind.ALERT) -> list[Delivery]:
    with sessions() as session:
        query = select(Delivery).where(Delivery.kind == kind).order_by(Delivery.rank)  # type: ignore[arg-type]
        return list(session.scalars(query))


def _people(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, n: int, **kw: object
) -> list[Person]:
    return [
        seed_person(sessions, vault, clock(), at=(ENSCHEDE[0] + (n - i) * 0.001, ENSCHEDE[1]), **kw)  # type: ignore[arg-type]
        for i in range(n)
    ]


async def test_everyone_gets_the_alert_once_nearest_first(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, texts: AlertTexts
) -> None:
    people = _people(sessions, vault, clock, 25)
    action = _launch(sessions, clock)
    channel = FakeChannel(ALL)
    report = await _dispatcher(sessions, channel, clock, vault, texts).drain()
    assert report.sent == 25
    nearest_first = [p.addresses[ChannelKind.TELEGRAM] for p in reversed(people)]
    assert channel.recipients() == nearest_first
    assert all(action.code in m.text for m in channel.sent)
    rows = _deliveries(sessions)
    assert {r.status for r in rows} == {DeliveryStatus.SENT}
    assert len({r.provider_id for r in rows}) == 25
    assert all(r.attempts == 1 and r.sent_at == clock() for r in rows)


async def test_a_second_drain_sends_nothing_again(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, texts: AlertTexts
) -> None:
    _people(sessions, vault, clock, 5)
    _launch(sessions, clock)
    channel = FakeChannel(ALL)
    dispatcher = _dispatcher(sessions, channel, clock, vault, texts)
    await dispatcher.drain()
    clock.advance(hours=1)
    report = await dispatcher.drain()
    assert report.sent == 0
    assert len(channel.sent) == 5


async def test_retryable_errors_back_off_then_succeed(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, texts: AlertTexts
) -> None:
    [person] = _people(sessions, vault, clock, 1)
    _launch(sessions, clock)
    channel = FakeChannel(ALL)
    address = person.addresses[ChannelKind.TELEGRAM]
    channel.fail(address, RetryableSendError("busy", code="429"), RetryableSendError("busy", code="502"))
    dispatcher = _dispatcher(sessions, channel, clock, vault, texts)

    assert (await dispatcher.drain()).retried == 1
    [row] = _deliveries(sessions)
    assert (row.status, row.attempts, row.error_code) == (DeliveryStatus.QUEUED, 1, "429")
    assert row.next_attempt_at == clock() + timedelta(seconds=10)

    assert (await dispatcher.drain()).sent == 0  # not due yet: nothing is tried before its time
    clock.advance(seconds=10)
    assert (await dispatcher.drain()).retried == 1
    [row] = _deliveries(sessions)
    assert row.next_attempt_at == clock() + timedelta(seconds=20)  # exponential

    clock.advance(seconds=20)
    assert (await dispatcher.drain()).sent == 1
    [row] = _deliveries(sessions)
    assert (row.status, row.attempts) == (DeliveryStatus.SENT, 3)
    assert channel.recipients() == [address]


async def test_retry_after_from_the_provider_is_respected(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, texts: AlertTexts
) -> None:
    [person] = _people(sessions, vault, clock, 1)
    _launch(sessions, clock)
    channel = FakeChannel(ALL)
    channel.fail(person.addresses[ChannelKind.TELEGRAM], RetryableSendError("slow down", retry_after=45))
    await _dispatcher(sessions, channel, clock, vault, texts).drain()
    [row] = _deliveries(sessions)
    assert row.next_attempt_at == clock() + timedelta(seconds=45)


async def test_gives_up_after_bounded_tries_then_falls_back(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, texts: AlertTexts
) -> None:
    [person] = _people(sessions, vault, clock, 1, channels=(ChannelKind.TELEGRAM, ChannelKind.SMS))
    _launch(sessions, clock)
    channel = FakeChannel(ALL)
    channel.fail(person.addresses[ChannelKind.TELEGRAM], *[RetryableSendError("down")] * 10)
    dispatcher = _dispatcher(sessions, channel, clock, vault, texts)
    for _ in range(3):  # max 3 attempts
        await dispatcher.drain()
        clock.advance(minutes=5)
    assert [m.channel for m in channel.attempts] == [ChannelKind.TELEGRAM] * 3 + [ChannelKind.SMS]
    [row] = _deliveries(sessions)
    assert (row.status, row.channel) == (DeliveryStatus.SENT, ChannelKind.SMS)


async def test_gives_up_for_good_when_no_channel_is_left(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, texts: AlertTexts
) -> None:
    [person] = _people(sessions, vault, clock, 1)
    _launch(sessions, clock)
    channel = FakeChannel(ALL)
    channel.fail(person.addresses[ChannelKind.TELEGRAM], *[RetryableSendError("down")] * 10)
    dispatcher = _dispatcher(sessions, channel, clock, vault, texts)
    for _ in range(6):
        await dispatcher.drain()
        clock.advance(minutes=5)
    assert len(channel.attempts) == 3
    [row] = _deliveries(sessions)
    assert (row.status, row.attempts) == (DeliveryStatus.FAILED, 3)


@pytest.mark.parametrize(
    ("error", "opted_out"),
    [
        (PermanentSendError("bad chat", code="400"), False),
        (RecipientOptedOut("blocked", code="403"), True),
    ],
    ids=["permanent", "opted-out"],
)
async def test_permanent_failure_falls_back_to_the_next_channel(
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    texts: AlertTexts,
    error: PermanentSendError,
    opted_out: bool,
) -> None:
    [person] = _people(
        sessions,
        vault,
        clock,
        1,
        channels=(ChannelKind.TELEGRAM, ChannelKind.WHATSAPP, ChannelKind.SMS),
        preferred=ChannelKind.TELEGRAM,
    )
    _launch(sessions, clock)
    channel = FakeChannel(ALL)
    channel.fail(person.addresses[ChannelKind.TELEGRAM], error)
    report = await _dispatcher(sessions, channel, clock, vault, texts).drain()
    assert report.fell_back == 1 and report.sent == 1
    # Free WhatsApp (a template: no message from this person in 24 hours) comes before paid SMS.
    [message] = channel.sent
    assert message.channel is ChannelKind.WHATSAPP and message.template_sid == "HX_missing"
    [row] = _deliveries(sessions)
    assert row.tried == str(person.identities[ChannelKind.TELEGRAM])
    with sessions() as session:
        identity = session.get(ChannelIdentity, person.identities[ChannelKind.TELEGRAM])
        assert identity is not None and identity.opted_out is opted_out


async def test_whatsapp_free_text_inside_the_24_hour_window_template_outside(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, texts: AlertTexts
) -> None:
    recent = seed_person(
        sessions,
        vault,
        clock(),
        channels=(ChannelKind.WHATSAPP,),
        last_inbound_at=clock() - timedelta(hours=2),
    )
    old = seed_person(
        sessions,
        vault,
        clock(),
        channels=(ChannelKind.WHATSAPP,),
        last_inbound_at=clock() - timedelta(hours=30),
    )
    action = _launch(sessions, clock)
    channel = FakeChannel(ALL)
    await _dispatcher(sessions, channel, clock, vault, texts).drain()
    by_recipient = {m.recipient: m for m in channel.sent}
    assert by_recipient[recent.addresses[ChannelKind.WHATSAPP]].template_sid is None
    templated = by_recipient[old.addresses[ChannelKind.WHATSAPP]]
    assert templated.template_sid == "HX_missing"
    assert templated.template_variables is not None and templated.template_variables["1"] == action.code


async def test_no_template_configured_falls_back(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, texts: AlertTexts
) -> None:
    seed_person(sessions, vault, clock(), channels=(ChannelKind.WHATSAPP, ChannelKind.SMS))
    _launch(sessions, clock)
    channel = FakeChannel(ALL)
    settings = dispatch_settings(whatsapp_template_default=None, whatsapp_template_missing_person=None)
    await _dispatcher(sessions, channel, clock, vault, texts, settings).drain()
    assert [m.channel for m in channel.attempts] == [ChannelKind.SMS]
    [row] = _deliveries(sessions)
    assert row.status is DeliveryStatus.SENT


async def test_worker_killed_mid_way_then_restarted_loses_and_doubles_nothing(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, texts: AlertTexts
) -> None:
    people = _people(sessions, vault, clock, 30)
    _launch(sessions, clock)
    first = FakeChannel(ALL, kill_after=12)
    with pytest.raises(WorkerKilled):
        await _dispatcher(sessions, first, clock, vault, texts, worker_id="dead").drain()
    statuses = [r.status for r in _deliveries(sessions)]
    assert statuses.count(DeliveryStatus.SENT) == 12
    assert DeliveryStatus.SENDING in statuses  # claimed by the dead worker, never sent

    second = FakeChannel(ALL)
    restarted = _dispatcher(sessions, second, clock, vault, texts, worker_id="new")
    assert restarted.reconcile(stale_only=False) > 0
    await restarted.drain()
    everyone = {p.addresses[ChannelKind.TELEGRAM] for p in people}
    assert sorted(first.recipients() + second.recipients()) == sorted(everyone)
    assert {r.status for r in _deliveries(sessions)} == {DeliveryStatus.SENT}


async def test_reconcile_leaves_fresh_claims_of_a_live_worker_alone(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, texts: AlertTexts
) -> None:
    _people(sessions, vault, clock, 3)
    _launch(sessions, clock)
    with pytest.raises(WorkerKilled):
        await _dispatcher(
            sessions, FakeChannel(ALL, kill_after=0), clock, vault, texts, worker_id="a"
        ).drain()
    other = _dispatcher(sessions, FakeChannel(ALL), clock, vault, texts, worker_id="b")
    assert other.reconcile(stale_only=True) == 0
    clock.advance(seconds=121)
    assert other.reconcile(stale_only=True) == 3


async def test_closing_goes_to_everyone_who_got_the_alert_and_tipsters(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, texts: AlertTexts
) -> None:
    reached = _people(sessions, vault, clock, 4)
    unreachable = seed_person(sessions, vault, clock(), channels=(ChannelKind.SMS,))
    outsider = seed_person(sessions, vault, clock(), at=(53.2, 5.8))
    action = _launch(sessions, clock)
    channel = FakeChannel(ALL)
    channel.fail(unreachable.addresses[ChannelKind.SMS], PermanentSendError("bad number"))
    dispatcher = _dispatcher(sessions, channel, clock, vault, texts)
    await dispatcher.drain()

    clock.advance(minutes=40)
    tipsters = [outsider.identities[ChannelKind.TELEGRAM], reached[0].identities[ChannelKind.TELEGRAM]]
    with sessions() as session:
        stored = session.get(Action, action.id)
        assert stored is not None
        audience = closing_audience(session, action=stored, tipster_identities=tipsters)
    assert (audience.participants, audience.tipsters) == (4, 1), "what the confirmation step announces"
    with transaction(sessions) as session:
        stored = session.get(Action, action.id)
        assert stored is not None
        queued = close_action(
            session,
            action=stored,
            outcome=ActionOutcome.FOUND,
            closing_text="Tim is gevonden en maakt het goed.",
            now=clock(),
            tipster_identities=tipsters,
        )
    assert queued == 5 == audience.total  # four who got the alert, one tipster who did not
    channel.sent.clear()
    await dispatcher.drain()
    closings = {m.recipient: m.text for m in channel.sent}
    expected = {p.addresses[ChannelKind.TELEGRAM] for p in reached} | {
        outsider.addresses[ChannelKind.TELEGRAM]
    }
    assert set(closings) == expected
    assert all(action.code in text for text in closings.values())
    assert "gevonden" in closings[reached[0].addresses[ChannelKind.TELEGRAM]]
    assert closings[outsider.addresses[ChannelKind.TELEGRAM]].startswith("Dank voor uw tip")
    with sessions() as session:
        counts = delivery_counts(session, action_id=action.id or 0)
        stored = session.get(Action, action.id)
    assert (
        stored is not None and stored.status is ActionStatus.CLOSED and stored.outcome is ActionOutcome.FOUND
    )
    assert counts.by_status(DeliveryKind.CLOSING) == {"sent": 4}
    assert counts.by_status(DeliveryKind.TIP_RESULT) == {"sent": 1}
    assert counts.by_status(DeliveryKind.ALERT) == {"sent": 4, "failed": 1}


async def test_closing_stops_alerts_still_queued(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, texts: AlertTexts
) -> None:
    _people(sessions, vault, clock, 3)
    action = _launch(sessions, clock)
    with transaction(sessions) as session:
        stored = session.get(Action, action.id)
        assert stored is not None
        assert (
            close_action(
                session, action=stored, outcome=ActionOutcome.CANCELLED, closing_text="x", now=clock()
            )
            == 0
        )
    channel = FakeChannel(ALL)
    await _dispatcher(sessions, channel, clock, vault, texts).drain()
    assert channel.sent == []
    assert {r.error_code for r in _deliveries(sessions)} == {"action_closed"}


async def test_receipts_update_the_delivery_and_a_failed_sms_falls_back(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, texts: AlertTexts
) -> None:
    delivered = seed_person(sessions, vault, clock(), channels=(ChannelKind.SMS,))
    bounced = seed_person(
        sessions,
        vault,
        clock(),
        at=(ENSCHEDE[0] + 0.01, ENSCHEDE[1]),
        channels=(ChannelKind.SMS, ChannelKind.TELEGRAM),
    )
    _launch(sessions, clock)
    channel = FakeChannel(ALL)
    dispatcher = _dispatcher(sessions, channel, clock, vault, texts)
    await dispatcher.drain()
    first, second = _deliveries(sessions)
    assert first.provider_id and second.provider_id

    assert apply_status(
        sessions, StatusUpdate(ChannelKind.SMS, first.provider_id, DeliveryStatus.DELIVERED), clock=clock
    )
    # Out of order: a late "sent" must not undo "delivered".
    assert not apply_status(
        sessions, StatusUpdate(ChannelKind.SMS, first.provider_id, DeliveryStatus.SENT), clock=clock
    )
    assert not apply_status(
        sessions, StatusUpdate(ChannelKind.SMS, "unknown", DeliveryStatus.DELIVERED), clock=clock
    )
    apply_status(
        sessions,
        StatusUpdate(ChannelKind.SMS, second.provider_id, DeliveryStatus.UNDELIVERED, "30003"),
        clock=clock,
    )
    first, second = _deliveries(sessions)
    assert first.status is DeliveryStatus.DELIVERED
    assert (second.status, second.channel, second.error_code) == (
        DeliveryStatus.QUEUED,
        ChannelKind.TELEGRAM,
        "30003",
    )
    await dispatcher.drain()
    assert channel.sent[-1].recipient == bounced.addresses[ChannelKind.TELEGRAM]
    assert delivered.addresses[ChannelKind.SMS] == channel.sent[0].recipient


async def test_token_bucket_keeps_the_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(30, monotonic=lambda: now[0], sleep=sleep)
    for _ in range(301):
        await bucket.acquire()
    assert now[0] == pytest.approx(10.0, rel=0.02)  # 301 sends: the first at once, then 30 a second


async def test_unlimited_bucket_never_waits() -> None:
    async def sleep(seconds: float) -> None:
        raise AssertionError("slept")

    bucket = TokenBucket(0, sleep=sleep)
    for _ in range(1000):
        await bucket.acquire()


@pytest.mark.parametrize(
    ("text", "code"),
    [("tip over bn-4k7p", "BN-4K7P"), ("BN 4K7P gezien", "BN-4K7P"), ("BN4K7P", "BN-4K7P")],
    ids=["lower-dash", "space", "no-dash"],
)
def test_codes_are_found_in_any_case_with_or_without_dash(text: str, code: str) -> None:
    assert normalise_code(text) == code


async def test_run_sends_what_a_launch_queues_after_a_wake_and_stops_cleanly(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, texts: AlertTexts
) -> None:
    import asyncio

    people = _people(sessions, vault, clock, 4)
    channel = FakeChannel(ALL)
    settings = dispatch_settings(dispatch_poll_interval_s=30.0)  # only the wake-up can make it look
    dispatcher = _dispatcher(sessions, channel, clock, vault, texts, settings)
    task = asyncio.create_task(dispatcher.run())
    await asyncio.sleep(0.02)
    _launch(sessions, clock)
    dispatcher.wake()
    for _ in range(200):
        if len(channel.sent) == len(people):
            break
        await asyncio.sleep(0.005)
    dispatcher.stop()
    await asyncio.wait_for(task, 2)
    assert sorted(channel.recipients()) == sorted(p.addresses[ChannelKind.TELEGRAM] for p in people)
    assert {r.status for r in _deliveries(sessions)} == {DeliveryStatus.SENT}


async def test_sends_never_run_far_ahead_of_what_is_recorded(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, texts: AlertTexts
) -> None:
    """What a killed worker could send twice is bounded: a few sends per consumer without a durable result."""
    from bot.dispatch import MAX_UNRECORDED

    _people(sessions, vault, clock, 40)
    _launch(sessions, clock)
    concurrency = 4
    ahead: list[int] = []

    class Watching(FakeChannel):
        async def send(self, message: OutgoingMessage) -> SendReceipt:
            import asyncio

            with sessions() as session:
                recorded = session.scalar(
                    select(func.count()).select_from(Delivery).where(Delivery.status == DeliveryStatus.SENT)  # type: ignore[arg-type]
                )
            ahead.append(len(self.sent) - int(recorded or 0))
            await asyncio.sleep(0)  # let the other consumers run, as a real send would
            return await super().send(message)

    channel = Watching(ALL)
    settings = dispatch_settings(dispatch_concurrency=concurrency)
    report = await _dispatcher(sessions, channel, clock, vault, texts, settings).drain()
    assert report.sent == 40
    assert 0 < max(ahead) <= MAX_UNRECORDED * concurrency
    assert {r.status for r in _deliveries(sessions)} == {DeliveryStatus.SENT}
