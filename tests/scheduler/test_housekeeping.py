"""Unfinished sign-ups, the monthly report and its CSV, and every job run twice giving the same result."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import select

from bot.conversations import ConversationRouter
from bot.messages import IncomingMessage
from scheduler import jobs
from scheduler.jobs import JobContext, JobResult, clean_signups, monthly_report
from storage import reports
from storage.db import SessionFactory, transaction
from storage.models import (
    ActionOutcome,
    ActionStatus,
    ActionType,
    Address,
    AuditEvent,
    ChannelIdentity,
    ConversationState,
    DataExport,
    MunicipalityReport,
    Participant,
    ParticipantStatus,
)
from storage.vocabulary import ChannelKind
from tests.conftest import FixedClock
from tests.scheduler.conftest import register, rows, say


async def test_half_done_registration_is_forgotten_after_a_day(
    router: ConversationRouter, clock: FixedClock, sessions: SessionFactory, job_context: JobContext
) -> None:
    await say(router, clock, "+31611111111", ["START", "JA", "Halverwege"])  # stops at the address
    with sessions() as session:
        [state] = session.exec(select(ConversationState)).all()
        assert state.data.get("name_enc"), "the half-done registration holds the name"
    clock.advance(hours=23)
    assert clean_signups(job_context).counts.get("conversations") == 0
    clock.advance(hours=2)
    assert clean_signups(job_context).counts.get("conversations") == 1
    with sessions() as session:
        assert session.exec(select(ConversationState)).all() == []


def test_pending_participant_older_than_a_day_is_deleted(
    clock: FixedClock, sessions: SessionFactory, job_context: JobContext
) -> None:
    now = clock()
    with transaction(sessions) as session:
        for hours in (25, 23):
            person = Participant(status=ParticipantStatus.PENDING, created_at=now - timedelta(hours=hours))
            session.add(person)
            session.flush()
            session.add(
                ChannelIdentity(
                    participant_id=person.id,
                    channel=ChannelKind.TELEGRAM,
                    address_hash=f"chat-{hours}",
                    address_enc="secret",
                    created_at=person.created_at,
                )
            )
            session.add(
                Address(
                    participant_id=person.id or 0,
                    postcode="7511 AB",
                    house_number=hours,
                    lat=52.2,
                    lon=6.9,
                    municipality_code="0153",
                    municipality_name="Enschede",
                    place="Enschede",
                )
            )
    result = clean_signups(job_context)
    assert result.counts["participants"] == 1
    people = rows(sessions, Participant)
    assert [p.created_at.replace(tzinfo=UTC) for p in people] == [now - timedelta(hours=23)]
    with sessions() as session:
        assert [a.house_number for a in session.exec(select(Address))] == [23]
        orphan = session.exec(select(ChannelIdentity).where(ChannelIdentity.address_hash == "chat-25")).one()
        assert orphan.participant_id is None


async def test_active_registrations_are_not_touched(
    router: ConversationRouter, clock: FixedClock, sessions: SessionFactory, job_context: JobContext
) -> None:
    await register(router, clock, "+31611111111")
    clock.advance(days=3)
    clean_signups(job_context)
    assert [p.status for p in rows(sessions, Participant)] == [ParticipantStatus.ACTIVE]


async def test_monthly_report_per_municipality_and_csv(
    router: ConversationRouter, clock: FixedClock, sessions: SessionFactory, job_context: JobContext
) -> None:
    from storage.actions import ActionDraft, create_action

    clock.now = datetime(2026, 10, 10, 10, 0, tzinfo=UTC)
    await register(router, clock, "+31611111111", address="7511 AB 1")  # Enschede
    await register(router, clock, "+31622222222", address="7511 AB 2")  # Enschede
    await register(router, clock, "+31633333333", address="1012 AB 3")  # Amsterdam
    await say(router, clock, "+31622222222", ["STOP"])
    with transaction(sessions) as session:
        # An expiry as the reconfirmation job records it (with the municipality, before the erasure).
        session.add(
            AuditEvent(
                at=clock(),
                actor="scheduler",
                event="participant_expired",
                detail={"municipality_code": "0363"},
            )
        )
    with transaction(sessions) as session:
        areas: list[tuple[ActionOutcome, dict[str, Any]]] = [
            (ActionOutcome.FOUND, {"municipalities": ["0153"]}),
            (ActionOutcome.NO_RESULT, {"circle": {"lat": 52.372, "lon": 4.893, "radius_m": 2000}}),
        ]
        for outcome, area in areas:
            action = create_action(
                session,
                draft=ActionDraft(
                    type=ActionType.MISSING_PERSON,
                    headline="Vermist",
                    description="",
                    instruction="",
                    area=area,
                    expires_at=clock() + timedelta(hours=2),
                ),
                now=clock(),
                created_by="test",
            )
            action.status, action.outcome, action.launched_at = ActionStatus.CLOSED, outcome, clock()
            session.add(action)
    clock.now = datetime(2026, 11, 1, 3, 30, tzinfo=UTC)  # 04:30 local on the 1st
    result = monthly_report(job_context)
    assert result.note == "2026-10"
    with sessions() as session:
        stored = {r.municipality_code: r for r in reports.stored(session, period="2026-10")}
    # An unsubscribe counts in its municipality once the erasure's audit event carries the code;
    # until then it lands under "onbekend" (unknown), never lost.
    unsubscribed_in = "0153" if stored.get(reports.UNKNOWN) is None else reports.UNKNOWN
    assert set(stored) == {"0153", "0363", unsubscribed_in}
    assert stored[unsubscribed_in].unsubscribed == 1
    enschede, amsterdam = stored["0153"], stored["0363"]
    assert (enschede.participants, enschede.new, enschede.actions, enschede.solved) == (1, 1, 1, 1)
    assert (amsterdam.participants, amsterdam.new, amsterdam.expired) == (1, 1, 1)
    assert (amsterdam.actions, amsterdam.solved) == (1, 0)
    assert enschede.municipality_name == "Enschede"

    monthly_report(job_context)
    with sessions() as session:
        assert len(session.exec(select(MunicipalityReport)).all()) == len(stored), (
            "a rerun replaces, never adds"
        )
        exported = reports.to_csv(reports.stored(session, period="2026-10"))
    table = list(csv.DictReader(io.StringIO(exported)))
    assert list(table[0]) == list(reports.CSV_COLUMNS)
    assert [(r["municipality_code"], r["participants"], r["expired"]) for r in table][:2] == [
        ("0153", "1", "0"),
        ("0363", "1", "1"),
    ]


@pytest.mark.parametrize(
    ("now", "label"),
    [
        pytest.param(datetime(2026, 1, 1, 0, 30, tzinfo=UTC), "2025-12", id="new-year"),
        pytest.param(datetime(2026, 3, 31, 22, 30, tzinfo=UTC), "2026-03", id="utc-march-is-local-april"),
        pytest.param(datetime(2026, 7, 15, 12, 0, tzinfo=UTC), "2026-06", id="mid-month"),
    ],
)
def test_previous_month_in_local_time(now: datetime, label: str) -> None:
    assert reports.previous_month(now, "Europe/Amsterdam").label == label


@pytest.mark.parametrize("label", ["2026-13", "2026-1x", "26-01", ""])
def test_a_bad_period_is_refused(label: str) -> None:
    with pytest.raises(ValueError):
        reports.parse_period(label, "Europe/Amsterdam")


def _snapshot(sessions: SessionFactory) -> dict[str, list[tuple[Any, ...]]]:
    with sessions() as session:
        bind = session.get_bind()
        names = sorted(sa.inspect(bind).get_table_names())
        return {
            name: sorted(session.execute(sa.text(f'SELECT * FROM "{name}"')).all(), key=repr)
            for name in names
        }


async def _run(job: Callable[[JobContext], Any], ctx: JobContext) -> JobResult:
    outcome = job(ctx)
    return await outcome if hasattr(outcome, "__await__") else outcome


JOBS = [
    pytest.param(jobs.reconfirm, id="reconfirm"),
    pytest.param(jobs.clean_signups, id="clean-signups"),
    pytest.param(jobs.close_expired_actions, id="close-actions"),
    pytest.param(jobs.reconcile_deliveries, id="reconcile-deliveries"),
    pytest.param(jobs.purge_retention, id="purge-retention"),
    pytest.param(jobs.monthly_report, id="monthly-report"),
]


@pytest.mark.parametrize("job", JOBS)
async def test_every_job_run_twice_gives_the_same_result(
    job: Callable[[JobContext], Any],
    router: ConversationRouter,
    clock: FixedClock,
    sessions: SessionFactory,
    job_context: JobContext,
) -> None:
    """A world with something for every job to do, a year and a bit later."""
    from tests.scheduler.test_actions_jobs import _closed_action, _stuck, launch

    clock.now = datetime(2025, 10, 1, 10, 0, tzinfo=UTC)
    await register(router, clock, "+31611111111")
    await register(router, clock, "+31622222222", address="1012 AB 3")
    stuck = launch(sessions, clock, minutes=30)
    _stuck(sessions, stuck, attempts=1, claimed_at=clock())
    _closed_action(sessions, clock, closed_days_ago=0, deliveries=1)
    with transaction(sessions) as session:
        session.add(AuditEvent(at=clock(), actor="test", event="old"))
    await router.handle(
        IncomingMessage(channel=ChannelKind.SMS, sender="+31612399999", text="START", received_at=clock())
    )
    clock.now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

    first = await _run(job, job_context)
    assert any(first.counts.values()), f"the job had nothing to do: {first}"
    after_first = _snapshot(sessions)
    await _run(job, job_context)
    assert _snapshot(sessions) == after_first


def test_retention_purges_used_and_expired_export_links(
    sessions: SessionFactory, clock: FixedClock, job_context: JobContext
) -> None:
    now = clock()
    with transaction(sessions) as session:
        person = Participant(created_at=now)
        session.add(person)
        session.flush()
        for n, (expires, used) in enumerate(
            [
                (now - timedelta(seconds=1), None),
                (now + timedelta(hours=20), now),
                (now + timedelta(hours=20), None),
            ]
        ):
            session.add(
                DataExport(
                    participant_id=person.id or 0,
                    token_hash=f"hash-{n}",
                    created_at=now - timedelta(hours=4),
                    expires_at=expires,
                    used_at=used,
                )
            )
    assert jobs.purge_retention(job_context).counts["purged.data_export"] == 2
    assert [row.token_hash for row in rows(sessions, DataExport)] == ["hash-2"]


@pytest.mark.parametrize(
    ("area", "counted_in"),
    [
        pytest.param({"municipalities": ["0363", "0153", "0363"]}, ["0153", "0363"], id="named"),
        pytest.param({"circle": {"lat": 52.372, "lon": 4.893, "radius_m": 2000}}, ["0363"], id="circle"),
        pytest.param(
            {"polygon": [[52.23, 6.88], [52.23, 6.91], [52.21, 6.91], [52.21, 6.88], [52.23, 6.88]]},
            ["0153"],
            id="polygon-centre",
        ),
        pytest.param({}, [reports.UNKNOWN], id="no-area"),
    ],
)
def test_an_action_counts_in_the_municipality_of_its_area(
    book: Any, area: dict[str, Any], counted_in: list[str]
) -> None:
    from storage.models import Action

    action = Action(type=ActionType.MISSING_PERSON, code="BN-TEST", headline="Vermist", area=area)
    assert reports.action_municipalities(action, book=book) == counted_in
    assert reports.action_municipalities(action, book=None) == (
        counted_in if "municipalities" in area else [reports.UNKNOWN]
    )
