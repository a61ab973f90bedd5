"""A person's alert preferences: kinds of action they skip, and quiet hours for alerts that are not urgent.

Quiet hours are the person-wide counterpart of an address's weekly window (`Address.window_*`): a window
says when an extra address counts (where the person is), quiet hours say when the person does not want
to be disturbed at all, whichever address an alert finds them at. Both use the same form (ISO weekdays
and a daily range that may run past midnight) and the same test, `in_window`. The window is applied by
the selection itself (`select_recipients`); preferences are applied on its result (`select_for_alert`),
so the reach table and its covering index stay as they are, and the operator's preview can say how many
people were left out by their own choice.

Urgent alerts (a missing person, or any action of urgency `immediate`) always come through quiet hours;
only skipping the kind of action explicitly (GEEN VERMISSING) keeps them away.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import delete, or_, select
from sqlmodel import Session, col

from storage.models import ActionType, AlertPreference, Urgency
from storage.targeting import Area, Recipient, _as_time, in_window, select_recipients


class QuietHours(NamedTuple):
    """Weekdays (ISO digits; None: every day) and a daily range in which non-urgent alerts wait out."""

    days: str | None
    start: time
    end: time


@dataclass(frozen=True)
class Preferences:
    """What a person chose; the default (nothing skipped, no quiet hours) holds until they change it."""

    skipped: frozenset[ActionType] = frozenset()
    quiet: QuietHours | None = None


@dataclass(frozen=True)
class Selection:
    """Who gets an alert, and how many in the area were left out by their own preferences."""

    recipients: list[Recipient]
    left_out: int


def is_urgent(*, action_type: ActionType, urgency: Urgency) -> bool:
    """Whether an alert comes through quiet hours: a missing person, or anything `immediate`."""
    return action_type is ActionType.MISSING_PERSON or urgency is Urgency.IMMEDIATE


def _wrap(types: Iterable[ActionType]) -> str:
    values = sorted(t.value for t in types)
    return f",{','.join(values)}," if values else ""


def _unwrap(text: str) -> frozenset[ActionType]:
    known = {t.value for t in ActionType}
    return frozenset(ActionType(v) for v in text.strip(",").split(",") if v in known)


def preferences_of(session: Session, *, participant_id: int) -> Preferences:
    """The person's preferences (the default when they never changed any)."""
    row = session.get(AlertPreference, participant_id)
    if row is None:
        return Preferences()
    start, end = _as_time(row.quiet_start), _as_time(row.quiet_end)
    quiet = QuietHours(row.quiet_days, start, end) if start is not None and end is not None else None
    return Preferences(skipped=_unwrap(row.skipped_types), quiet=quiet)


def save_preferences(
    session: Session, *, participant_id: int, preferences: Preferences, now: datetime
) -> None:
    """Store the person's preferences; back to the default removes the row."""
    if preferences == Preferences():
        session.execute(delete(AlertPreference).where(col(AlertPreference.participant_id) == participant_id))
        return
    row = session.get(AlertPreference, participant_id) or AlertPreference(
        participant_id=participant_id, updated_at=now
    )
    row.skipped_types = _wrap(preferences.skipped)
    quiet = preferences.quiet
    row.quiet_days = quiet.days if quiet else None
    row.quiet_start = quiet.start if quiet else None
    row.quiet_end = quiet.end if quiet else None
    row.updated_at = now
    session.add(row)
    session.flush()


def left_out_by_preferences(
    session: Session,
    *,
    participant_ids: Sequence[int],
    action_type: ActionType,
    urgency: Urgency,
    at: datetime,
    timezone: str,
) -> set[int]:
    """Of these people, who does not want this alert now: the kind skipped, or quiet hours (not urgent)."""
    if not participant_ids:
        return set()
    wanted = set(participant_ids)
    p = AlertPreference.__table__.c  # type: ignore[attr-defined]
    # Only rows that could leave someone out: few people change anything, so this reads a handful.
    urgent = is_urgent(action_type=action_type, urgency=urgency)
    reasons: list[Any] = [p.skipped_types.like(f"%,{action_type.value},%")]
    if not urgent:
        reasons.append(p.quiet_start.is_not(None))
    query = select(p.participant_id, p.skipped_types, p.quiet_days, p.quiet_start, p.quiet_end).where(
        or_(*reasons)
    )
    local = at.astimezone(ZoneInfo(timezone))
    left_out: set[int] = set()
    for pid, skipped, days, start, end in session.execute(query):
        if pid not in wanted:
            continue
        skips_kind = f",{action_type.value}," in (skipped or "")
        quiet_now = (
            not urgent and start is not None and in_window(days, _as_time(start), _as_time(end), local)
        )
        if skips_kind or quiet_now:
            left_out.add(pid)
    return left_out


def select_for_alert(
    session: Session,
    *,
    area: Area,
    at: datetime,
    action_type: ActionType,
    urgency: Urgency,
    timezone: str = "Europe/Amsterdam",
    exclude_participants: Sequence[int] = (),
    only: set[int] | None = None,
) -> Selection:
    """Who an alert of this kind reaches at `at`: `select_recipients` (within `only` when given, as for
    an exercise), less who opted out of it by preference."""
    found = select_recipients(
        session, area=area, at=at, timezone=timezone, exclude_participants=exclude_participants
    )
    if only is not None:
        found = [r for r in found if r.participant_id in only]
    skip = left_out_by_preferences(
        session,
        participant_ids=[r.participant_id for r in found],
        action_type=action_type,
        urgency=urgency,
        at=at,
        timezone=timezone,
    )
    if not skip:
        return Selection(found, 0)
    return Selection([r for r in found if r.participant_id not in skip], len(skip))
