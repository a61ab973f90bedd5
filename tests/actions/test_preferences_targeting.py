"""Alert preferences in targeting: a skipped kind never arrives, quiet hours hold back only what can wait,
and the preview says how many were left out by their own choice (SQLite, and PostgreSQL when set)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.alerts import AlertTexts
from bot.services.actions import ActionService
from storage.actions import ActionDraft
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.geo import PostcodeBook
from storage.models import ActionType, Urgency
from storage.preferences import Preferences, QuietHours, save_preferences, select_for_alert
from storage.targeting import Circle
from tests.actions.conftest import ENSCHEDE, Second, dispatch_settings, seed_person
from tests.conftest import FixedClock

AREA = Circle(ENSCHEDE[0], ENSCHEDE[1], 3_000)
# Quiet hours that run past midnight, Amsterdam time.
NIGHT = QuietHours(None, time(23, 0), time(7, 0))


def _prefer(sessions: SessionFactory, clock: FixedClock, pid: int, preferences: Preferences) -> None:
    with transaction(sessions) as session:
        save_preferences(session, participant_id=pid, preferences=preferences, now=clock())


def _chosen(
    sessions: SessionFactory, at: datetime, kind: ActionType, urgency: Urgency = Urgency.EXPECTED
) -> tuple[set[int], int]:
    with sessions() as session:
        found = select_for_alert(session, area=AREA, at=at, action_type=kind, urgency=urgency)
    return {r.participant_id for r in found.recipients}, found.left_out


# (Amsterdam local time, action type, urgency, whether the night-quiet person gets it)
QUIET_CASES = [
    pytest.param(
        datetime(2026, 11, 20, 23, 30), ActionType.BURGLARY, Urgency.EXPECTED, False, id="23:30-held"
    ),
    pytest.param(
        datetime(2026, 11, 21, 6, 59), ActionType.BURGLARY, Urgency.EXPECTED, False, id="06:59-held"
    ),
    pytest.param(datetime(2026, 11, 21, 7, 0), ActionType.BURGLARY, Urgency.EXPECTED, True, id="07:00-open"),
    pytest.param(
        datetime(2026, 11, 20, 22, 59), ActionType.BURGLARY, Urgency.EXPECTED, True, id="22:59-open"
    ),
    pytest.param(
        datetime(2026, 11, 20, 23, 30), ActionType.BURGLARY, Urgency.IMMEDIATE, True, id="immediate"
    ),
    pytest.param(
        datetime(2026, 11, 20, 23, 30), ActionType.MISSING_PERSON, Urgency.EXPECTED, True, id="missing-person"
    ),
    # Summer time: 23:30 in Amsterdam is 21:30 UTC, still quiet.
    pytest.param(datetime(2026, 7, 1, 23, 30), ActionType.ROBBERY, Urgency.FUTURE, False, id="summer-held"),
]


@pytest.mark.parametrize(("local", "kind", "urgency", "gets_it"), QUIET_CASES)
def test_quiet_hours_hold_back_only_what_can_wait(
    sessions: SessionFactory,
    vault: DataVault,
    clock: FixedClock,
    local: datetime,
    kind: ActionType,
    urgency: Urgency,
    gets_it: bool,
) -> None:
    quiet = seed_person(sessions, vault, clock())
    always = seed_person(sessions, vault, clock())
    _prefer(sessions, clock, quiet.participant_id, Preferences(quiet=NIGHT))
    at = local.replace(tzinfo=ZoneInfo("Europe/Amsterdam")).astimezone(UTC)
    chosen, left_out = _chosen(sessions, at, kind, urgency)
    assert always.participant_id in chosen
    assert (quiet.participant_id in chosen) is gets_it
    assert left_out == (0 if gets_it else 1)


def test_a_skipped_kind_never_arrives_even_when_immediate(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    no_burglary = seed_person(sessions, vault, clock())
    no_missing = seed_person(sessions, vault, clock())
    everything = seed_person(sessions, vault, clock())
    _prefer(
        sessions, clock, no_burglary.participant_id, Preferences(skipped=frozenset({ActionType.BURGLARY}))
    )
    _prefer(
        sessions,
        clock,
        no_missing.participant_id,
        Preferences(skipped=frozenset({ActionType.MISSING_PERSON})),
    )
    chosen, left_out = _chosen(sessions, clock(), ActionType.BURGLARY, Urgency.IMMEDIATE)
    assert chosen == {no_missing.participant_id, everything.participant_id} and left_out == 1
    # Turned off explicitly: a missing person does not come through either.
    chosen, left_out = _chosen(sessions, clock(), ActionType.MISSING_PERSON, Urgency.IMMEDIATE)
    assert chosen == {no_burglary.participant_id, everything.participant_id} and left_out == 1
    chosen, left_out = _chosen(sessions, clock(), ActionType.ROBBERY)
    assert len(chosen) == 3 and left_out == 0


def test_quiet_hours_on_some_days_and_with_an_address_window(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    # Quiet on weekdays 09-17 (at work); the second address counts only then: no alert can wait there.
    far = (ENSCHEDE[0] + 0.1, ENSCHEDE[1])
    worker = seed_person(sessions, vault, clock(), at=far, second=Second(ENSCHEDE[0], ENSCHEDE[1]))
    _prefer(sessions, clock, worker.participant_id, Preferences(quiet=QuietHours("12345", time(9), time(17))))
    friday_afternoon = clock()  # Friday 15:30 Amsterdam
    chosen, left_out = _chosen(sessions, friday_afternoon, ActionType.STOLEN_VEHICLE)
    assert chosen == set() and left_out == 1
    chosen, _ = _chosen(sessions, friday_afternoon, ActionType.STOLEN_VEHICLE, Urgency.IMMEDIATE)
    assert chosen == {worker.participant_id}
    # Saturday 15:30: the window of the second address is closed, so nobody is in the area at all.
    chosen, left_out = _chosen(sessions, friday_afternoon + timedelta(days=1), ActionType.STOLEN_VEHICLE)
    assert chosen == set() and left_out == 0


def test_back_to_the_default_removes_the_row(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    person = seed_person(sessions, vault, clock())
    _prefer(sessions, clock, person.participant_id, Preferences(skipped=frozenset({ActionType.OTHER})))
    _prefer(sessions, clock, person.participant_id, Preferences())
    assert _chosen(sessions, clock(), ActionType.OTHER) == ({person.participant_id}, 0)


def test_preview_and_launch_count_who_preferences_left_out(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, book: PostcodeBook, texts: AlertTexts
) -> None:
    service = ActionService(
        sessions=sessions, clock=clock, book=book, texts=texts, settings=dispatch_settings()
    )
    people = [seed_person(sessions, vault, clock()) for _ in range(4)]
    _prefer(sessions, clock, people[0].participant_id, Preferences(skipped=frozenset({ActionType.BURGLARY})))
    # Quiet 15-16 on Fridays: the clock says 15:30 on a Friday.
    _prefer(sessions, clock, people[1].participant_id, Preferences(quiet=QuietHours("5", time(15), time(16))))
    draft = ActionDraft(
        type=ActionType.BURGLARY,
        headline="Inbraak aan de Oldenzaalsestraat",
        description="Twee mannen vluchtten te voet.",
        instruction="Gezien? Antwoord met uw tip.",
        area={"circle": {"lat": ENSCHEDE[0], "lon": ENSCHEDE[1], "radius_m": 3000}},
        expires_at=clock() + timedelta(hours=2),
        urgency=Urgency.EXPECTED,
    )
    action = service.create(draft, actor="op", created_by="op")
    assert action.id is not None
    preview = service.preview(action.id)
    assert (preview.estimate.recipients, preview.left_out_by_preferences) == (2, 2)
    assert service.launch(action.id, actor="op", runs_from_launch=True) == 2
