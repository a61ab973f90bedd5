"""Jobs around actions: expired actions close with one closing message each; stuck deliveries; retention."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select

from bot.alerts import AlertTexts
from bot.config import Settings
from bot.conversations import ConversationRouter
from bot.dispatch import Dispatcher
from scheduler.jobs import JobContext, close_expired_actions, purge_retention, reconcile_deliveries
from storage.actions import ActionDraft, Target, close_action, create_action, launch_action
from storage.db import SessionFactory, transaction
from storage.models import (
    Action,
    ActionOutcome,
    ActionStatus,
    ActionType,
    AuditEvent,
    ChannelIdentity,
    Delivery,
    ProcessedEvent,
)
from storage.vocabulary import ChannelKind, DeliveryStatus
from tests.conftest import FixedClock
from tests.scheduler.conftest import FakeChannel, register

PHONES = ["+31611111111", "+31622222222", "+31633333333"]


def dispatcher(job_context: JobContext) -> Dispatcher:
    """The real outbox worker, sending to the fake channel without rate limits."""
    job_context.settings.dispatch_rate_limits = False
    return Dispatcher(
        job_context.sessions,
        job_context.senders,
        job_context.clock,
        job_context.settings,
        vault=job_context.vault,
        texts=AlertTexts(job_context.catalogue),
    )


def launch(sessions: SessionFactory, clock: FixedClock, *, minutes: int = 60) -> int:
    """An action for every registered person, ending `minutes` from now; returns its id."""
    with transaction(sessions) as session:
        action = create_action(
            session,
            draft=ActionDraft(
                type=ActionType.MISSING_PERSON,
                headline="Vermist: man van 81",
                description="Grijze jas, loopt met een stok.",
                instruction="Bel 112 als u hem ziet.",
                area={"circle": {"lat": 52.22, "lon": 6.89, "radius_m": 5000}},
                expires_at=clock() + timedelta(minutes=minutes),
            ),
            now=clock(),
            created_by="test",
        )
        identities = session.exec(select(ChannelIdentity).where(ChannelIdentity.participant_id != None)).all()  # noqa: E711
        targets = [Target(i.participant_id, i.id or 0, i.channel, "nl") for i in identities]
        launch_action(session, action=action, targets=targets, now=clock())
        assert action.id is not None
        return action.id


async def test_action_past_its_end_closes_and_its_closing_message_goes_out_once(
    router: ConversationRouter,
    clock: FixedClock,
    sessions: SessionFactory,
    job_context: JobContext,
    channel: FakeChannel,
) -> None:
    for phone in PHONES:
        await register(router, clock, phone)
    action_id = launch(sessions, clock, minutes=45)
    outbox = dispatcher(job_context)
    await outbox.drain()
    assert len(channel.sent) == 3
    channel.sent.clear()

    clock.advance(minutes=44)
    assert close_expired_actions(job_context).counts == {}
    clock.advance(minutes=2)
    first = close_expired_actions(job_context)
    second = close_expired_actions(job_context)
    assert first.counts == {"closed": 1, "closing_messages": 3}
    assert second.counts == {}
    await outbox.drain()
    await outbox.drain()
    assert sorted(m.recipient for m in channel.sent) == sorted(PHONES)
    closing = job_context.catalogue.render("nl", "action.outcome.no_result")
    assert all(closing in m.text for m in channel.sent)
    with sessions() as session:
        action = session.get(Action, action_id)
        assert action is not None
        assert (action.status, action.outcome) == (ActionStatus.CLOSED, ActionOutcome.NO_RESULT)
        assert session.exec(select(AuditEvent).where(AuditEvent.event == "action_expired")).one()


async def test_an_action_the_operator_closed_is_left_alone(
    router: ConversationRouter, clock: FixedClock, sessions: SessionFactory, job_context: JobContext
) -> None:
    await register(router, clock, PHONES[0])
    action_id = launch(sessions, clock, minutes=10)
    with transaction(sessions) as session:
        action = session.get(Action, action_id)
        assert action is not None
        close_action(
            session, action=action, outcome=ActionOutcome.FOUND, closing_text="Gevonden.", now=clock()
        )
    clock.advance(minutes=20)
    assert close_expired_actions(job_context).counts == {}
    with sessions() as session:
        action = session.get(Action, action_id)
        assert action is not None and action.outcome is ActionOutcome.FOUND


def _stuck(sessions: SessionFactory, action_id: int, *, attempts: int, claimed_at: datetime) -> int:
    with transaction(sessions) as session:
        delivery = session.exec(select(Delivery).where(Delivery.action_id == action_id)).first()
        assert delivery is not None
        delivery.status = DeliveryStatus.SENDING
        delivery.claimed_by = "dead-worker"
        delivery.claimed_at = claimed_at
        delivery.attempts = attempts
        session.add(delivery)
        assert delivery.id is not None
        return delivery.id


@pytest.mark.parametrize(
    ("attempts", "stuck_minutes", "expected"),
    [
        pytest.param(1, 30, DeliveryStatus.QUEUED, id="stuck-with-tries-left-is-retried"),
        pytest.param(5, 30, DeliveryStatus.FAILED, id="stuck-after-last-try-fails"),
        pytest.param(1, 1, DeliveryStatus.SENDING, id="just-claimed-is-left-alone"),
    ],
)
async def test_deliveries_stuck_in_sending(
    router: ConversationRouter,
    clock: FixedClock,
    sessions: SessionFactory,
    job_context: JobContext,
    attempts: int,
    stuck_minutes: int,
    expected: DeliveryStatus,
) -> None:
    await register(router, clock, PHONES[0])
    action_id = launch(sessions, clock)
    delivery_id = _stuck(
        sessions, action_id, attempts=attempts, claimed_at=clock() - timedelta(minutes=stuck_minutes)
    )
    reconcile_deliveries(job_context)
    reconcile_deliveries(job_context)
    with sessions() as session:
        delivery = session.get(Delivery, delivery_id)
        assert delivery is not None and delivery.status is expected


def _closed_action(
    sessions: SessionFactory, clock: FixedClock, *, closed_days_ago: float, deliveries: int
) -> int:
    """A closed action with alert deliveries (to nobody in particular)."""
    now = clock()
    with transaction(sessions) as session:
        identity = ChannelIdentity(
            channel=ChannelKind.SMS, address_hash=f"h{now.timestamp()}-{closed_days_ago}", created_at=now
        )
        session.add(identity)
        session.flush()
        action = create_action(
            session,
            draft=ActionDraft(
                type=ActionType.ROBBERY,
                headline="Overval",
                description="",
                instruction="",
                area={"municipalities": ["0153"]},
                expires_at=now + timedelta(hours=1),
            ),
            now=now,
            created_by="test",
        )
        launch_action(
            session,
            action=action,
            targets=[Target(None, identity.id or 0, ChannelKind.SMS, "nl")] if deliveries else [],
            now=now,
        )
        action.status = ActionStatus.CLOSED
        action.closed_at = now - timedelta(days=closed_days_ago)
        session.add(action)
        assert action.id is not None
        return action.id


def _count(sessions: SessionFactory, model: type, **where: object) -> int:
    with sessions() as session:
        query: Any = select(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return len(session.exec(query).all())


def test_retention_purges_exactly_what_is_due(
    clock: FixedClock, sessions: SessionFactory, job_context: JobContext, settings: Settings
) -> None:
    old = _closed_action(sessions, clock, closed_days_ago=30.01, deliveries=1)
    recent = _closed_action(sessions, clock, closed_days_ago=29.99, deliveries=1)
    now = clock()
    with transaction(sessions) as session:
        for days, event in [(366, "old"), (364, "young")]:
            session.add(AuditEvent(at=now - timedelta(days=days), actor="test", event=event))
        for days, key in [(8, "sms:old"), (6, "sms:young")]:
            session.add(ProcessedEvent(key=key, at=now - timedelta(days=days)))

    first = purge_retention(job_context)
    assert first.counts["purged.delivery"] == 1
    assert first.counts["purged.audit_event"] == 1
    assert first.counts["purged.processed_event"] == 1
    assert _count(sessions, Delivery, action_id=old) == 0
    assert _count(sessions, Delivery, action_id=recent) == 1
    assert _count(sessions, AuditEvent, event="old") == 0
    assert _count(sessions, AuditEvent, event="young") == 1
    assert _count(sessions, ProcessedEvent, key="sms:young") == 1
    assert _count(sessions, Action) == 2, "the actions themselves stay for the figures"
    with sessions() as session:
        summary = session.exec(select(AuditEvent).where(AuditEvent.event == "retention_purged")).one()
    assert summary.detail["purged"]["delivery"] == 1 and summary.detail["purged"]["audit_event"] == 1

    second = purge_retention(job_context)
    assert not any(second.counts.values())
    assert _count(sessions, AuditEvent, event="retention_purged") == 1, "nothing purged, nothing to report"

    clock.advance(days=1)
    third = purge_retention(job_context)
    assert third.counts["purged.delivery"] == 1
    assert _count(sessions, Delivery) == 0
