"""Who gets an action: active participants with an address in the area, once each, nearest first.

Selection reads only the reach table (`storage.reach`: one row per address and reachable identity of an
active participant) through a covering index: the strips of longitude that cross the circle's bounding box,
each a range of latitude, or the municipality codes. The exact distance, the time windows and the choice
of channel are done in Python on the few thousand rows that come back.

It lives in `storage` because it is a query of the reach table, and because storage itself needs its
geometry (`Circle`, `parse_area`) and its channel order (`order_reaches`) for relays and fallback.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from operator import itemgetter
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import Select, select
from sqlmodel import Session

from storage.geo import distance_m
from storage.reach import REACH, lon_cells
from storage.vocabulary import ChannelKind

# Free channels first, then the paid ones: the order a person's channels are tried in after their preference.
CHANNEL_ORDER: tuple[ChannelKind, ...] = (
    ChannelKind.TELEGRAM,
    ChannelKind.WHATSAPP,
    ChannelKind.SMS,
    ChannelKind.VOICE,
)
METRES_PER_DEGREE_LAT = 111_195.0


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


# Named tuples, not dataclasses: selection makes tens of thousands at a time and a frozen dataclass
# costs several times as much to build.
class Reach(NamedTuple):
    """One way to reach a person: an identity on a channel."""

    identity_id: int
    channel: ChannelKind
    last_inbound_at: datetime | None = None


class Recipient(NamedTuple):
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


def _raw_rows(session: Session, query: Select[Any]) -> list[tuple[Any, ...]]:
    """The rows of a query as the driver returns them, without SQLAlchemy's per-row processing.

    At 1M participants a 5 km circle returns ~19,000 rows; building and converting SQLAlchemy rows took
    half of the selection's time, so the driver's cursor is used directly (raw values: SQLite gives
    times as text, converted only where needed).
    """
    # The driver's cursor does not autoflush as `session.execute` would: pending writes count too.
    session.flush()
    connection = session.connection()
    compiled = query.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    params: Any = compiled.params
    if compiled.positional:
        params = tuple(compiled.params[name] for name in compiled.positiontup or ())
    raw = connection.connection
    # psycopg's binary format saves parsing ~190,000 values from text (a few ms at 1M participants).
    cursor = raw.cursor(binary=True) if connection.dialect.driver == "psycopg" else raw.cursor()
    try:
        cursor.execute(str(compiled), params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def select_recipients(
    session: Session,
    *,
    area: Area,
    at: datetime,
    timezone: str = "Europe/Amsterdam",
    exclude_participants: Sequence[int] = (),
) -> list[Recipient]:
    """Every active, reachable participant with an address in the area at `at`, once, nearest first."""
    # Tens of thousands of small acyclic objects: the cyclic collector would walk the whole heap several
    # times over while they are made (a third of the time at 1M participants) and find nothing to free.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _select(
            session, area=area, at=at, timezone=timezone, exclude_participants=exclude_participants
        )
    finally:
        if was_enabled:
            gc.enable()


def _select(
    session: Session, *, area: Area, at: datetime, timezone: str, exclude_participants: Sequence[int]
) -> list[Recipient]:
    local = at.astimezone(ZoneInfo(timezone))
    r = REACH.c
    query = select(
        r.participant_id,
        r.lat,
        r.lon,
        r.window_days,
        r.window_start,
        r.window_end,
        r.preferred_channel,
        r.language,
        r.identity_id,
        r.channel,
        r.last_inbound_at,
    )
    if isinstance(area, Circle):
        dlat = area.radius_m / METRES_PER_DEGREE_LAT
        dlon = dlat / max(math.cos(math.radians(area.lat)), 0.01)
        # Degrees of longitude shrink towards the pole: scaled by the bounding box's outermost latitude,
        # the flat distance below never exceeds the great-circle one, so with 1% to spare the database
        # drops only the box's corners (a fifth of its rows) and Python decides the edge exactly.
        scale = math.cos(math.radians(min(abs(area.lat) + dlat, 89.0)))
        reach_deg = dlat * 1.01
        query = query.where(
            # One short range scan of the covering index per strip of longitude.
            r.lon_cell.in_(lon_cells(area.lon - dlon, area.lon + dlon)),
            r.lat.between(area.lat - dlat, area.lat + dlat),
            r.lon.between(area.lon - dlon, area.lon + dlon),
            (r.lat - area.lat) * (r.lat - area.lat)
            + (r.lon - area.lon) * (r.lon - area.lon) * (scale * scale)
            <= reach_deg * reach_deg,
        )
    else:
        query = query.where(r.municipality_code.in_(area.codes))

    excluded = set(exclude_participants)
    points: list[tuple[int, float, float]] = []
    distances: dict[tuple[float, float], float] = {}
    windows: dict[tuple[str | None, Any, Any], bool] = {}
    channels: dict[str | None, ChannelKind | None] = {kind.value: kind for kind in ChannelKind}
    channels[None] = None
    circle = area if isinstance(area, Circle) else None
    radius = circle.radius_m if circle is not None else math.inf
    # Per person: [nearest distance, preferred channel, language, first reach seen, {id: reach} or None].
    people: dict[int, list[Any]] = {}
    for row in _raw_rows(session, query):
        pid, lat, lon, days, start, end, preferred, language, identity_id, channel, inbound = row
        if excluded and pid in excluded:
            continue
        if days or start:
            # Windows repeat (most are working hours): decide each distinct one once.
            open_now = windows.get((days, start, end))
            if open_now is None:
                open_now = windows[(days, start, end)] = in_window(
                    days, _as_time(start), _as_time(end), local
                )
            if not open_now:
                continue
        if circle is not None:
            # Addresses sit on PC4 centres, so many share a point: compute each distance once.
            dist = distances.get((lat, lon))
            if dist is None:
                dist = distances[(lat, lon)] = distance_m(circle.lat, circle.lon, lat, lon)
            if dist > radius:
                continue
        else:
            dist = math.inf
            points.append((pid, lat, lon))
        reach = Reach(identity_id, channels[channel], None if inbound is None else _as_datetime(inbound))  # type: ignore[arg-type]
        entry = people.get(pid)
        if entry is None:
            people[pid] = [dist, preferred, language, reach, None]
            continue
        if dist < entry[0]:
            entry[0] = dist
        # A second identity, or the same one again at another address.
        if entry[4] is None:
            entry[4] = {entry[3].identity_id: entry[3]}
        entry[4][identity_id] = reach

    if isinstance(area, Municipalities) and points:
        # No centre was given: rank from the middle of the recipients' own addresses.
        mid_lat = sum(pt[1] for pt in points) / len(points)
        mid_lon = sum(pt[2] for pt in points) / len(points)
        for pid, lat, lon in points:
            dist = distance_m(mid_lat, mid_lon, lat, lon)
            if dist < people[pid][0]:
                people[pid][0] = dist

    recipients = []
    for pid, (dist, preferred, language, first, more) in people.items():
        others: tuple[Reach, ...] = ()
        if more is not None and len(more) > 1:
            ordered = order_reaches(channels[preferred], more.values())
            first, others = ordered[0], tuple(ordered[1:])
        recipients.append(Recipient(pid, language, round(dist, 1), first, others))
    recipients.sort(key=itemgetter(2, 0))
    return recipients
