"""Who gets an action: active participants with an address in the area, once each, nearest first.

Selection runs as one indexed query (a bounding box on `address.lat`/`lon`, or the municipality codes),
joined to the participant and their reachable identities; the exact distance, the time windows and the
choice of channel are done in Python on the few thousand rows that come back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, and_, select, type_coerce
from sqlalchemy.types import NullType
from sqlmodel import Session

from bot.messages import ChannelKind
from storage.geo import distance_m
from storage.models import Address, ChannelIdentity, Participant, ParticipantStatus

# Free channels first, then the paid ones: the order a person's channels are tried in after their preference.
CHANNEL_ORDER: tuple[ChannelKind, ...] = (
    ChannelKind.TELEGRAM,
    ChannelKind.WHATSAPP,
    ChannelKind.SMS,
    ChannelKind.VOICE,
)
METRES_PER_DEGREE_LAT = 111_195.0
ADDRESS: Table = Address.__table__  # type: ignore[attr-defined]
PARTICIPANT: Table = Participant.__table__  # type: ignore[attr-defined]
IDENTITY: Table = ChannelIdentity.__table__  # type: ignore[attr-defined]


class InvalidArea(ValueError):
    """An area that is neither a circle nor a list of municipalities."""


@dataclass(frozen=True)
class Circle:
    """A point and a radius in metres."""

    lat: float
    lon: float
    radius_m: float


@dataclass(frozen=True)
class Municipalities:
    """A set of municipality codes (CBS, four digits)."""

    codes: tuple[str, ...]


Area = Circle | Municipalities


@dataclass(frozen=True)
class Reach:
    """One way to reach a person: an identity on a channel."""

    identity_id: int
    channel: ChannelKind
    last_inbound_at: datetime | None = None


@dataclass(frozen=True)
class Recipient:
    """A person who gets the action, the channel tried first, and the rest in fallback order."""

    participant_id: int
    language: str
    distance_m: float
    first: Reach
    others: tuple[Reach, ...]


def parse_area(area: Mapping[str, Any]) -> Area:
    """The stored JSON form of an area as a `Circle` or `Municipalities`. Raises InvalidArea."""
    if "circle" in area:
        circle = area["circle"]
        try:
            return Circle(float(circle["lat"]), float(circle["lon"]), float(circle["radius_m"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArea("circle needs lat, lon and radius_m") from exc
    if "municipalities" in area:
        codes = area["municipalities"]
        if not isinstance(codes, list | tuple) or not codes:
            raise InvalidArea("municipalities must be a non-empty list")
        return Municipalities(tuple(str(c) for c in codes))
    raise InvalidArea("area must hold 'circle' or 'municipalities'")


def in_window(days: str | None, start: time | None, end: time | None, local: datetime) -> bool:
    """Whether a local time falls in an address's weekly window (no window: always)."""
    today = str(local.isoweekday())
    if start is None or end is None:
        return not days or today in days
    now = local.time()
    if start <= end:
        return (not days or today in days) and start <= now < end
    # An overnight window (22:00-06:00): the hours after midnight belong to the day it began.
    if now >= start:
        return not days or today in days
    if now < end:
        return not days or str((local.isoweekday() + 5) % 7 + 1) in days
    return False


def _as_time(value: time | str | None) -> time | None:
    """A time column's raw value (SQLite gives text) as a time."""
    if value is None or isinstance(value, time):
        return value
    return time.fromisoformat(value)


def _as_datetime(value: datetime | str | None) -> datetime | None:
    """A UTC timestamp column's raw value (SQLite gives naive text) as an aware datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def order_reaches(preferred: ChannelKind | None, reaches: Iterable[Reach]) -> list[Reach]:
    """A person's identities in the order to try them: the preferred channel, then the free ones first."""
    rank = {kind: i for i, kind in enumerate(CHANNEL_ORDER)}

    def key(reach: Reach) -> tuple[int, int, int]:
        return (0 if reach.channel == preferred else 1, rank.get(reach.channel, 99), reach.identity_id)

    return sorted(reaches, key=key)


def select_recipients(
    session: Session,
    *,
    area: Area,
    at: datetime,
    timezone: str = "Europe/Amsterdam",
    exclude_participants: Sequence[int] = (),
) -> list[Recipient]:
    """Every active, reachable participant with an address in the area at `at`, once, nearest first."""
    local = at.astimezone(ZoneInfo(timezone))
    a, p, i = ADDRESS.c, PARTICIPANT.c, IDENTITY.c
    query = (
        select(
            a.participant_id,
            a.lat,
            a.lon,
            a.window_days,
            # Raw values: converting every row's times and enums costs more than the query itself at 1M
            # participants; the few that are needed are converted below.
            type_coerce(a.window_start, NullType()),
            type_coerce(a.window_end, NullType()),
            type_coerce(p.preferred_channel, NullType()),
            p.language,
            i.id,
            type_coerce(i.channel, NullType()),
            type_coerce(i.last_inbound_at, NullType()),
        )
        .select_from(ADDRESS)
        .join(PARTICIPANT, and_(p.id == a.participant_id, p.status == ParticipantStatus.ACTIVE.value))
        .join(
            IDENTITY,
            and_(i.participant_id == a.participant_id, i.opted_out.is_(False), i.address_enc.is_not(None)),
        )
    )
    if isinstance(area, Circle):
        dlat = area.radius_m / METRES_PER_DEGREE_LAT
        dlon = dlat / max(math.cos(math.radians(area.lat)), 0.01)
        query = query.where(
            a.lat.between(area.lat - dlat, area.lat + dlat), a.lon.between(area.lon - dlon, area.lon + dlon)
        )
    else:
        query = query.where(a.municipality_code.in_(area.codes))

    excluded = set(exclude_participants)
    best: dict[int, float] = {}
    people: dict[int, tuple[ChannelKind | None, str, dict[int, Reach]]] = {}
    points: list[tuple[int, float, float]] = []
    distances: dict[tuple[float, float], float] = {}
    for row in session.execute(query):
        pid, lat, lon, days, start, end, preferred, language, identity_id, channel, inbound = row
        if pid in excluded:
            continue
        if (days or start) and not in_window(days, _as_time(start), _as_time(end), local):
            continue
        if isinstance(area, Circle):
            # Addresses sit on PC4 centres, so many share a point: compute each distance once.
            key = (lat, lon)
            dist = distances.get(key)
            if dist is None:
                dist = distances[key] = distance_m(area.lat, area.lon, lat, lon)
            if dist > area.radius_m:
                continue
            if dist < best.get(pid, math.inf):
                best[pid] = dist
        else:
            points.append((pid, lat, lon))
        entry = people.get(pid)
        if entry is None:
            entry = people[pid] = (preferred, language, {})
        entry[2][identity_id] = Reach(identity_id, ChannelKind(channel), _as_datetime(inbound))

    if isinstance(area, Municipalities) and points:
        # No centre was given: rank from the middle of the recipients' own addresses.
        mid_lat = sum(pt[1] for pt in points) / len(points)
        mid_lon = sum(pt[2] for pt in points) / len(points)
        for pid, lat, lon in points:
            dist = distance_m(mid_lat, mid_lon, lat, lon)
            if dist < best.get(pid, math.inf):
                best[pid] = dist

    recipients = []
    for pid, (preferred, language, reaches) in people.items():
        ordered = order_reaches(ChannelKind(preferred) if preferred else None, reaches.values())
        recipients.append(
            Recipient(
                participant_id=pid,
                language=language,
                distance_m=round(best[pid], 1),
                first=ordered[0],
                others=tuple(ordered[1:]),
            )
        )
    recipients.sort(key=lambda r: (r.distance_m, r.participant_id))
    return recipients
