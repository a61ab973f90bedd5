"""Monthly figures per municipality (participants, new, expired, unsubscribed, actions, reach, tips,
solved), stored in `MunicipalityReport` for the control room and exported as CSV.

Erased participants have no address any more, so expiries and unsubscribes are counted from the
audit log, whose erasure events carry the municipality code (not personal on its own).
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, SQLModel, col, select

from storage.geo import PostcodeBook
from storage.models import (
    Action,
    ActionOutcome,
    Address,
    AuditEvent,
    Delivery,
    DeliveryKind,
    MunicipalityReport,
    Participant,
    ParticipantStatus,
)
from storage.targeting import InvalidArea, Municipalities, Polygon, parse_area
from storage.vocabulary import DeliveryStatus

UNKNOWN = "onbekend"
FIGURES = ("participants", "new", "expired", "unsubscribed", "actions", "reach", "tips", "solved")
CSV_COLUMNS = ("period", "municipality_code", "municipality_name", *FIGURES)
REACHED = (DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ)
SOLVED = (ActionOutcome.FOUND, ActionOutcome.ARRESTED)


@dataclass(frozen=True)
class Period:
    """A calendar month in local time, as UTC bounds [start, end)."""

    label: str
    start: datetime
    end: datetime


def month(year: int, number: int, timezone: str) -> Period:
    """The month `year-number` in a timezone."""
    tz = ZoneInfo(timezone)
    start = datetime(year, number, 1, tzinfo=tz)
    end = datetime(year + (number == 12), number % 12 + 1, 1, tzinfo=tz)
    return Period(f"{year:04d}-{number:02d}", start.astimezone(UTC), end.astimezone(UTC))


def parse_period(label: str, timezone: str) -> Period:
    """`YYYY-MM` → the period. Raises ValueError."""
    year, _, number = label.partition("-")
    if len(year) != 4 or not number.isdigit() or not 1 <= int(number) <= 12:
        raise ValueError(f"period must be YYYY-MM, not {label!r}")
    return month(int(year), int(number), timezone)


def previous_month(now: datetime, timezone: str) -> Period:
    """The month before the one `now` falls in (local time)."""
    local = now.astimezone(ZoneInfo(timezone))
    first = local.replace(day=1) - timedelta(days=1)
    return month(first.year, first.month, timezone)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def action_municipalities(action: Action, *, book: PostcodeBook | None) -> list[str]:
    """The municipalities an action is counted in: those it names, or the one at its circle's or its
    polygon's centre."""
    try:
        area = parse_area(action.area or {})
    except InvalidArea:
        return [UNKNOWN]
    if isinstance(area, Municipalities):
        return sorted({str(code) for code in area.codes})
    lat, lon = area.centre if isinstance(area, Polygon) else (area.lat, area.lon)
    nearest = book.closest(lat, lon) if book is not None else None
    return [nearest.municipality_code] if nearest is not None else [UNKNOWN]


def compute(
    session: Session, *, period: Period, book: PostcodeBook | None, now: datetime
) -> list[MunicipalityReport]:
    """The figures of a period per municipality (participants: the active ones at `now`)."""
    figures: dict[str, Counter[str]] = defaultdict(Counter)
    names: dict[str, str] = dict(book.municipalities()) if book is not None else {}
    homes = session.exec(
        select(
            Address.municipality_code,
            Address.municipality_name,
            Participant.consent_at,
            Participant.created_at,
        )
        .join(Participant, col(Participant.id) == col(Address.participant_id))
        .where(Address.slot == 1, Participant.status == ParticipantStatus.ACTIVE)
    ).all()
    for code, name, consent_at, created_at in homes:
        names.setdefault(code, name)
        figures[code]["participants"] += 1
        joined = _aware(consent_at) or _aware(created_at)
        if joined is not None and period.start <= joined < period.end:
            figures[code]["new"] += 1
    events = session.exec(
        select(AuditEvent).where(
            col(AuditEvent.at) >= period.start,
            col(AuditEvent.at) < period.end,
            col(AuditEvent.event).in_(["participant_expired", "participant_erased"]),
        )
    ).all()
    for event in events:
        code = str(event.detail.get("municipality_code") or UNKNOWN)
        if event.event == "participant_expired":
            figures[code]["expired"] += 1
        elif event.detail.get("reason") == "unsubscribed":
            figures[code]["unsubscribed"] += 1
    actions = session.exec(
        select(Action).where(
            col(Action.launched_at).is_not(None),
            col(Action.launched_at) >= period.start,
            col(Action.launched_at) < period.end,
            col(Action.exercise).is_(False),  # an exercise never counts in the figures
        )
    ).all()
    reach = _reach(session, [a.id for a in actions if a.id is not None])
    tips = _tips(session, [a.id for a in actions if a.id is not None])
    for action in actions:
        for code in action_municipalities(action, book=book):
            figures[code]["actions"] += 1
            figures[code]["reach"] += reach.get(action.id or 0, 0)
            figures[code]["tips"] += tips.get(action.id or 0, 0)
            figures[code]["solved"] += int(action.outcome in SOLVED)
    return [
        MunicipalityReport(
            period=period.label,
            municipality_code=code,
            municipality_name=names.get(code, UNKNOWN),
            created_at=now,
            **{name: counts[name] for name in FIGURES},
        )
        for code, counts in sorted(figures.items())
    ]


def _reach(session: Session, action_ids: list[int]) -> dict[int, int]:
    if not action_ids:
        return {}
    d = Delivery.__table__.c  # type: ignore[attr-defined]
    rows = session.execute(
        sa.select(d.action_id, sa.func.count(sa.distinct(d.participant_id)))
        .where(
            d.action_id.in_(action_ids),
            d.kind == DeliveryKind.ALERT.value,
            d.status.in_([s.value for s in REACHED]),
        )
        .group_by(d.action_id)
    ).all()
    return {int(a): int(n) for a, n in rows}


def _tips(session: Session, action_ids: list[int]) -> dict[int, int]:
    table = SQLModel.metadata.tables.get("tip")
    if table is None or "action_id" not in table.c or not action_ids:
        return {}
    rows = session.execute(
        sa.select(table.c.action_id, sa.func.count())
        .where(table.c.action_id.in_(action_ids))
        .group_by(table.c.action_id)
    ).all()
    return {int(a): int(n) for a, n in rows}


def save(session: Session, *, period: Period, rows: Iterable[MunicipalityReport]) -> int:
    """Store a period's figures in place of earlier ones (running the report twice gives the same rows)."""
    existing = {r.municipality_code: r for r in stored(session, period=period.label)}
    count = 0
    for row in rows:
        count += 1
        old = existing.pop(row.municipality_code, None)
        if old is None:
            session.add(row)
            continue
        for name in (*FIGURES, "municipality_name", "created_at"):
            setattr(old, name, getattr(row, name))
        session.add(old)
    for gone in existing.values():
        session.delete(gone)
    session.flush()
    return count


def stored(session: Session, *, period: str) -> list[MunicipalityReport]:
    """A period's stored figures by municipality code."""
    return list(
        session.exec(
            select(MunicipalityReport)
            .where(MunicipalityReport.period == period)
            .order_by(col(MunicipalityReport.municipality_code))
        )
    )


def to_csv(rows: Iterable[MunicipalityReport]) -> str:
    """The figures as CSV with a header line (comma-separated, UTF-8)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        values: Mapping[str, object] = row.model_dump()
        writer.writerow([values[name] for name in CSV_COLUMNS])
    return out.getvalue()
