"""Figures: participants per municipality and channel, actions per month and their results, CSV export.

Coordinators see only their own municipalities; the others see the whole country.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from sqlmodel import Session, col

from bot.controlroom.auth import AnyVisitor
from bot.controlroom.deps import Visitor, render, room
from storage.models import (
    Action,
    ActionOutcome,
    Address,
    ChannelIdentity,
    Delivery,
    DeliveryKind,
    MunicipalityReport,
    OperatorRole,
    Participant,
    ParticipantStatus,
)

router = APIRouter()
CHANNELS = ("telegram", "whatsapp", "sms", "voice")
OUTCOMES = tuple(o.value for o in ActionOutcome)


@dataclass
class MunicipalityRow:
    """Active participants of one municipality, per channel they can be reached on."""

    code: str
    name: str
    participants: int = 0
    channels: dict[str, int] = field(default_factory=dict)


@dataclass
class MonthRow:
    """Actions started in one month and how they ended."""

    month: str
    actions: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


def _scope(visitor: Visitor) -> list[str] | None:
    """The municipality codes a visitor may see; None means all."""
    return list(visitor.operator.municipalities) if visitor.role == OperatorRole.COORDINATOR else None


def participants_per_municipality(session: Session, *, codes: Sequence[str] | None) -> list[MunicipalityRow]:
    """Active participants by home municipality, and per channel (a person on two channels counts twice)."""
    active = col(Participant.status) == ParticipantStatus.ACTIVE.value
    home = col(Address.slot) == 1
    people = (
        select(
            col(Address.municipality_code),
            col(Address.municipality_name),
            func.count(func.distinct(col(Participant.id))),
        )
        .join(Participant, col(Participant.id) == col(Address.participant_id))
        .where(active, home)
        .group_by(Address.municipality_code, Address.municipality_name)
    )
    per_channel = (
        select(
            col(Address.municipality_code),
            col(ChannelIdentity.channel),
            func.count(func.distinct(col(Participant.id))),
        )
        .join(Participant, col(Participant.id) == col(Address.participant_id))
        .join(ChannelIdentity, col(ChannelIdentity.participant_id) == col(Participant.id))
        .where(active, home, col(ChannelIdentity.opted_out).is_(False))
        .group_by(Address.municipality_code, ChannelIdentity.channel)
    )
    if codes is not None:
        people = people.where(col(Address.municipality_code).in_(codes))
        per_channel = per_channel.where(col(Address.municipality_code).in_(codes))
    rows: dict[str, MunicipalityRow] = {}
    for code, name, n in session.execute(people).all():
        rows[code] = MunicipalityRow(code, name, int(n))
    for code, channel, n in session.execute(per_channel).all():
        if code in rows:
            rows[code].channels[str(channel)] = int(n)
    return sorted(rows.values(), key=lambda r: (-r.participants, r.name))


def actions_per_month(session: Session, *, codes: Sequence[str] | None) -> list[MonthRow]:
    """Launched actions per month with their outcomes; for coordinators those that reached their area."""
    # An exercise never counts in the figures.
    query = select(Action).where(col(Action.launched_at).is_not(None), col(Action.exercise).is_(False))
    actions = list(session.scalars(query))
    if codes is not None:
        wanted = set(codes)
        reached = set(
            session.scalars(
                select(col(Delivery.action_id))
                .join(Address, col(Address.participant_id) == col(Delivery.participant_id))
                .where(
                    col(Delivery.kind) == DeliveryKind.ALERT.value,
                    col(Address.slot) == 1,
                    col(Address.municipality_code).in_(wanted),
                )
                .distinct()
            )
        )
        actions = [a for a in actions if a.id in reached or wanted & set(a.area.get("municipalities") or [])]
    months: dict[str, MonthRow] = {}
    for action in actions:
        assert action.launched_at is not None
        key = action.launched_at.strftime("%Y-%m")
        row = months.setdefault(key, MonthRow(key))
        row.actions += 1
        outcome = action.outcome.value if action.outcome else "open"
        row.outcomes[outcome] = row.outcomes.get(outcome, 0) + 1
    return [months[k] for k in sorted(months)]


def monthly_reports(session: Session, *, codes: Sequence[str] | None) -> list[MunicipalityReport]:
    """The scheduler's monthly reports, newest month first."""
    query = select(MunicipalityReport).order_by(
        col(MunicipalityReport.period).desc(), col(MunicipalityReport.municipality_name)
    )
    if codes is not None:
        query = query.where(col(MunicipalityReport.municipality_code).in_(codes))
    return list(session.scalars(query.limit(500)))


@dataclass(frozen=True)
class Bar:
    """One month's bar in the chart."""

    x: float
    height: float
    label: str
    count: int


def chart(months: Sequence[MonthRow], *, width: int = 600, height: int = 200) -> list[Bar]:
    """Bars for the actions-per-month chart (the last 12 months that had actions)."""
    recent = list(months)[-12:]
    top = max((m.actions for m in recent), default=0) or 1
    step = width / max(len(recent), 1)
    return [
        Bar(x=i * step + step * 0.15, height=(height - 30) * m.actions / top, label=m.month, count=m.actions)
        for i, m in enumerate(recent)
    ]


@router.get("/figures", response_class=HTMLResponse)
async def figures(request: Request, visitor: AnyVisitor) -> HTMLResponse:
    """Participants per municipality and channel, actions per month and results, monthly reports."""
    cr = room(request)
    codes = _scope(visitor)
    with cr.sessions() as session:
        municipalities = participants_per_municipality(session, codes=codes)
        months = actions_per_month(session, codes=codes)
        reports = monthly_reports(session, codes=codes)
    totals: dict[str, int] = defaultdict(int)
    for row in municipalities:
        totals["participants"] += row.participants
        for channel, n in row.channels.items():
            totals[channel] += n
    months_desc = list(reversed(months))
    return render(
        request,
        "figures.html",
        lang=visitor.language,
        visitor=visitor,
        section="figures",
        municipalities=municipalities,
        totals=totals,
        months=months_desc,
        bars=chart(months),
        reports=reports,
        channels=CHANNELS,
        outcomes=OUTCOMES,
        scope=codes,
    )


@router.get("/figures.csv")
async def figures_csv(
    request: Request,
    visitor: AnyVisitor,
    table: Annotated[Literal["participants", "actions", "reports"], Query()] = "participants",
) -> Response:
    """One of the figure tables as CSV (semicolons, as Dutch spreadsheets expect)."""
    cr = room(request)
    codes = _scope(visitor)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    with cr.sessions() as session:
        if table == "participants":
            writer.writerow(["municipality_code", "municipality", "participants", *CHANNELS])
            for row in participants_per_municipality(session, codes=codes):
                writer.writerow(
                    [row.code, row.name, row.participants, *(row.channels.get(c, 0) for c in CHANNELS)]
                )
        elif table == "actions":
            writer.writerow(["month", "actions", *OUTCOMES, "open"])
            for month in actions_per_month(session, codes=codes):
                writer.writerow(
                    [month.month, month.actions, *(month.outcomes.get(o, 0) for o in (*OUTCOMES, "open"))]
                )
        else:
            writer.writerow(
                [
                    "period",
                    "municipality_code",
                    "municipality",
                    "participants",
                    "new",
                    "expired",
                    "unsubscribed",
                    "actions",
                    "reach",
                    "tips",
                    "solved",
                ]
            )
            for r in monthly_reports(session, codes=codes):
                writer.writerow(
                    [
                        r.period,
                        r.municipality_code,
                        r.municipality_name,
                        r.participants,
                        r.new,
                        r.expired,
                        r.unsubscribed,
                        r.actions,
                        r.reach,
                        r.tips,
                        r.solved,
                    ]
                )
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="burgernet-{table}.csv"'},
    )
