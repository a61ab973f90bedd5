"""Who gets an action: active participants with an address in the area, once each, nearest first.

Selection reads only the reach table (`storage.reach`: one row per address and reachable identity of an
active participant) through a covering index: the strips of longitude that cross the circle's (or the
polygon's) bounding box, each a range of latitude, or the municipality codes. The exact distance or
point-in-polygon test, the time windows and the choice of channel are done in Python on the few thousand
rows that come back.

Point-in-polygon is an even-odd ray cast written here rather than shapely: addresses sit on a few
hundred distinct PC4 centres per area, each tested once, so a few thousand edge crossings decide a
selection; shapely would add a compiled dependency (and numpy arrays built per call) to save nothing.

It lives in `storage` because it is a query of the reach table, and because storage itself needs its
geometry (`Circle`, `parse_area`) and its channel order (`order_reaches`) for relays and fallback.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from functools import cached_property
from operator import itemgetter
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import Select, Table, and_, null, or_, select
from sqlmodel import Session

from storage.geo import distance_m
from storage.models import ChannelIdentity, FollowedArea, Participant, ParticipantStatus
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


# A polygon may span at most this much (north-south and east-west), twice the largest circle's radius.
MAX_POLYGON_SPAN_M = 100_000.0
MAX_POLYGON_POINTS = 1_000


class InvalidArea(ValueError):
    """An area that is not a valid circle, polygon or list of municipalities; `reason` names the rule
    broken (`not_closed`, `too_few`, `range`, `numbers`, `degenerate`, `too_many`, `too_large`, `shape`)
    so that a form can say it in the operator's language."""

    def __init__(self, message: str, reason: str = "shape") -> None:
        super().__init__(message)
        self.reason = reason


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


LatLon = tuple[float, float]
Ring = tuple[LatLon, ...]


@dataclass(frozen=True)
class Polygon:
    """One or more polygons (each an outer ring and its holes, points as lat/lon, rings closed) and the
    point that recipients are ranked from (the operator's, else the centroid of the outer rings)."""

    parts: tuple[tuple[Ring, ...], ...]
    centre: LatLon

    @cached_property
    def boxes(self) -> list[tuple[float, float, float, float]]:
        """Per part, its bounding box as (lat_min, lat_max, lon_min, lon_max)."""
        boxes = []
        for rings in self.parts:
            lats = [pt[0] for pt in rings[0]]
            lons = [pt[1] for pt in rings[0]]
            boxes.append((min(lats), max(lats), min(lons), max(lons)))
        return boxes

    def contains(self, lat: float, lon: float) -> bool:
        """Whether a point lies inside one of the parts (outside its holes); the boundary counts as in."""
        for (lat_min, lat_max, lon_min, lon_max), rings in zip(self.boxes, self.parts, strict=True):
            if not (lat_min <= lat <= lat_max and lon_min <= lon <= lon_max):
                continue
            if _in_ring(rings[0], lat, lon) and not any(_in_ring(h, lat, lon) for h in rings[1:]):
                return True
        return False


Area = Circle | Municipalities | Polygon


def _on_segment(a: LatLon, b: LatLon, lat: float, lon: float) -> bool:
    cross = (b[0] - a[0]) * (lon - a[1]) - (b[1] - a[1]) * (lat - a[0])
    if abs(cross) > 1e-12:
        return False
    return min(a[0], b[0]) <= lat <= max(a[0], b[0]) and min(a[1], b[1]) <= lon <= max(a[1], b[1])


def _in_ring(ring: Ring, lat: float, lon: float) -> bool:
    """Even-odd rule: a ray from the point eastwards crosses the ring an odd number of times."""
    inside = False
    for i in range(len(ring) - 1):
        a, b = ring[i], ring[i + 1]
        if _on_segment(a, b, lat, lon):
            return True
        if (a[0] > lat) != (b[0] > lat):
            cross_lon = a[1] + (lat - a[0]) * (b[1] - a[1]) / (b[0] - a[0])
            if lon < cross_lon:
                inside = not inside
    return inside


def _ring_area_centroid(ring: Ring) -> tuple[float, float, float]:
    """Signed area (in square degrees, lon scaled to the ring's latitude) and centroid of a closed ring."""
    scale = math.cos(math.radians(sum(pt[0] for pt in ring) / len(ring)))
    area = c_lat = c_lon = 0.0
    for i in range(len(ring) - 1):
        (y0, x0), (y1, x1) = ring[i], ring[i + 1]
        x0, x1 = x0 * scale, x1 * scale
        cross = x0 * y1 - x1 * y0
        area += cross
        c_lat += (y0 + y1) * cross
        c_lon += (x0 + x1) * cross
    if abs(area) < 1e-15:
        # A degenerate ring: the mean of its corners.
        pts = ring[:-1]
        return 0.0, sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)
    return area / 2, c_lat / (3 * area), c_lon / (3 * area) / scale


def _ring(points: Any, *, lon_first: bool, where: str) -> Ring:
    """A list of coordinate pairs as a closed ring of (lat, lon), checked. Raises InvalidArea."""
    if not isinstance(points, list | tuple):
        raise InvalidArea(f"{where} must be a list of [lat, lon] points")
    ring: list[LatLon] = []
    for n, point in enumerate(points):
        if not isinstance(point, list | tuple) or len(point) < 2:
            raise InvalidArea(f"{where}: point {n + 1} must be a pair of numbers", "numbers")
        try:
            a, b = float(point[0]), float(point[1])
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidArea(f"{where}: point {n + 1} must be a pair of numbers", "numbers") from exc
        lat, lon = (b, a) if lon_first else (a, b)
        if not (math.isfinite(lat) and math.isfinite(lon)) or not -90 <= lat <= 90 or not -180 <= lon <= 180:
            raise InvalidArea(
                f"{where}: point {n + 1} is out of range (latitude -90..90, longitude -180..180)", "range"
            )
        ring.append((lat, lon))
    if len(ring) < 4:
        raise InvalidArea(
            f"{where} needs at least 4 points (3 corners and the first point again to close it)", "too_few"
        )
    if ring[0] != ring[-1]:
        raise InvalidArea(
            f"{where} is not closed: the last point must be the same as the first", "not_closed"
        )
    if len(set(ring)) < 3:
        raise InvalidArea(f"{where} needs at least 3 different corners", "degenerate")
    return tuple(ring)


def _polygon(parts: list[list[Any]], *, lon_first: bool, centre: Any, where: str) -> Polygon:
    """Rings (outer first, then holes) per part as a checked `Polygon`. Raises InvalidArea."""
    if not parts:
        raise InvalidArea(f"{where} must hold at least one polygon")
    checked: list[tuple[Ring, ...]] = []
    count = 0
    for p, rings in enumerate(parts):
        if not isinstance(rings, list | tuple) or not rings:
            raise InvalidArea(f"{where}: polygon {p + 1} must hold at least one ring")
        label = where if len(parts) == 1 else f"{where} polygon {p + 1}"
        made = tuple(
            _ring(r, lon_first=lon_first, where=label if i == 0 else f"{label} hole {i}")
            for i, r in enumerate(rings)
        )
        count += sum(len(r) for r in made)
        checked.append(made)
    if count > MAX_POLYGON_POINTS:
        raise InvalidArea(f"{where} has {count} points; at most {MAX_POLYGON_POINTS} are allowed", "too_many")
    lats = [pt[0] for rings in checked for pt in rings[0]]
    lons = [pt[1] for rings in checked for pt in rings[0]]
    mid = (min(lats) + max(lats)) / 2
    span_ns = (max(lats) - min(lats)) * METRES_PER_DEGREE_LAT
    span_ew = (max(lons) - min(lons)) * METRES_PER_DEGREE_LAT * math.cos(math.radians(mid))
    if max(span_ns, span_ew) > MAX_POLYGON_SPAN_M:
        raise InvalidArea(
            f"{where} is too large: at most {MAX_POLYGON_SPAN_M / 1000:.0f} km across", "too_large"
        )
    if centre is not None:
        try:
            point = (float(centre["lat"]), float(centre["lon"]))
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise InvalidArea("centre needs lat and lon") from exc
    else:
        weighted = [_ring_area_centroid(rings[0]) for rings in checked]
        total = sum(abs(w[0]) for w in weighted)
        if total > 0:
            point = (
                sum(abs(w[0]) * w[1] for w in weighted) / total,
                sum(abs(w[0]) * w[2] for w in weighted) / total,
            )
        else:
            point = (sum(w[1] for w in weighted) / len(weighted), sum(w[2] for w in weighted) / len(weighted))
    return Polygon(tuple(checked), (round(point[0], 7), round(point[1], 7)))


def parse_polygon(area: Mapping[str, Any]) -> Polygon:
    """An area's `polygon` (CAP order: [[lat, lon], ...], one closed ring) or `geojson` (a GeoJSON
    Polygon or MultiPolygon, [lon, lat], holes allowed) as a `Polygon`. Raises InvalidArea."""
    centre = area.get("centre")
    if "polygon" in area:
        return _polygon([[area["polygon"]]], lon_first=False, centre=centre, where="polygon")
    shape = area.get("geojson")
    if not isinstance(shape, Mapping):
        raise InvalidArea("geojson must be a GeoJSON Polygon or MultiPolygon object")
    kind, coordinates = shape.get("type"), shape.get("coordinates")
    if kind == "Polygon" and isinstance(coordinates, list):
        return _polygon([coordinates], lon_first=True, centre=centre, where="geojson")
    if kind == "MultiPolygon" and isinstance(coordinates, list):
        return _polygon(coordinates, lon_first=True, centre=centre, where="geojson")
    raise InvalidArea("geojson must be a GeoJSON Polygon or MultiPolygon with coordinates")


# How far (in degrees, about a tenth of a millimetre) a point may lie from a polygon's edge and still count
# as on it: a corner the operator kept from the old polygon must not fall outside by a rounding error.
_ON_EDGE_DEG = 1e-9


def _segment_distance(p: LatLon, a: LatLon, b: LatLon) -> float:
    """The distance from p to the segment a-b, in the plane of the coordinates given."""
    dy, dx = b[0] - a[0], b[1] - a[1]
    length = dy * dy + dx * dx
    t = 0.0 if length == 0 else max(0.0, min(1.0, ((p[0] - a[0]) * dy + (p[1] - a[1]) * dx) / length))
    return math.hypot(p[0] - (a[0] + t * dy), p[1] - (a[1] + t * dx))


def _edges(polygon: Polygon, *, holes: bool = True) -> list[tuple[LatLon, LatLon]]:
    return [
        (ring[i], ring[i + 1])
        for rings in polygon.parts
        for ring in (rings if holes else rings[:1])
        for i in range(len(ring) - 1)
    ]


def _covers(polygon: Polygon, point: LatLon) -> bool:
    """Inside the polygon or on its boundary (within `_ON_EDGE_DEG`)."""
    if polygon.contains(*point):
        return True
    return any(_segment_distance(point, a, b) <= _ON_EDGE_DEG for a, b in _edges(polygon))


def _cuts(p: LatLon, q: LatLon, a: LatLon, b: LatLon) -> list[float]:
    """Where along p-q (0..1) the segment a-b meets it: a crossing, a touch, or both ends of an overlap."""
    r = (q[0] - p[0], q[1] - p[1])
    s = (b[0] - a[0], b[1] - a[1])
    denominator = r[0] * s[1] - r[1] * s[0]
    ap = (a[0] - p[0], a[1] - p[1])
    length = r[0] * r[0] + r[1] * r[1]
    if length == 0:
        return []
    if abs(denominator) <= 1e-12 * math.sqrt(length * (s[0] * s[0] + s[1] * s[1])):
        # Parallel: only a collinear overlap matters, cut where a and b lie along p-q.
        if abs(ap[0] * r[1] - ap[1] * r[0]) / math.sqrt(length) > _ON_EDGE_DEG:
            return []
        ends = ((a[0] - p[0]) * r[0] + (a[1] - p[1]) * r[1], (b[0] - p[0]) * r[0] + (b[1] - p[1]) * r[1])
        return [e / length for e in ends if 0 < e / length < 1]
    t = (ap[0] * s[1] - ap[1] * s[0]) / denominator
    u = (ap[0] * r[1] - ap[1] * r[0]) / denominator
    return [t] if 0 < t < 1 and -1e-12 <= u <= 1 + 1e-12 else []


def polygon_contains_polygon(outer: Polygon, inner: Polygon) -> bool:
    """Whether `inner` lies wholly inside `outer` (a shared edge or corner counts as inside).

    Each edge of inner is cut where it meets an edge of outer; between two cuts a piece is wholly in or
    wholly out, so its midpoint decides. A hole of outer must not lie inside inner. Inner's own holes are
    not subtracted (its outer rings are checked whole): a refusal may be too strict, never too lenient."""
    outer_edges = _edges(outer)
    for ring in (rings[0] for rings in inner.parts):
        for p, q in zip(ring, ring[1:], strict=False):
            if not _covers(outer, p):
                return False
            lat_lo, lat_hi = min(p[0], q[0]), max(p[0], q[0])
            lon_lo, lon_hi = min(p[1], q[1]), max(p[1], q[1])
            cuts = {0.0, 1.0}
            for a, b in outer_edges:
                if max(a[0], b[0]) < lat_lo or min(a[0], b[0]) > lat_hi:
                    continue
                if max(a[1], b[1]) < lon_lo or min(a[1], b[1]) > lon_hi:
                    continue
                cuts.update(_cuts(p, q, a, b))
            ordered = sorted(cuts)
            for t0, t1 in zip(ordered, ordered[1:], strict=False):
                mid = (t0 + t1) / 2
                if not _covers(outer, (p[0] + mid * (q[0] - p[0]), p[1] + mid * (q[1] - p[1]))):
                    return False
    inner_whole = Polygon(tuple(rings[:1] for rings in inner.parts), inner.centre)
    for rings in outer.parts:
        for hole in rings[1:]:
            if any(inner_whole.contains(*corner) for corner in hole):
                return False
    return True


def polygon_contains_circle(polygon: Polygon, circle: Circle, *, slack_m: float = 1.0) -> bool:
    """Whether the circle lies inside the polygon: its centre inside, and every edge (holes' too) at
    least its radius away (`slack_m` forgives a centre given again with fewer decimals)."""
    if not polygon.contains(circle.lat, circle.lon):
        return False
    # Metres in a plane tangent at the centre: at the scale of an alert area it errs by centimetres.
    east = METRES_PER_DEGREE_LAT * math.cos(math.radians(circle.lat))

    def flat(pt: LatLon) -> LatLon:
        return ((pt[0] - circle.lat) * METRES_PER_DEGREE_LAT, (pt[1] - circle.lon) * east)

    centre = (0.0, 0.0)
    return all(
        _segment_distance(centre, flat(a), flat(b)) + slack_m >= circle.radius_m for a, b in _edges(polygon)
    )


def circle_contains_polygon(circle: Circle, polygon: Polygon, *, slack_m: float = 1.0) -> bool:
    """Whether the polygon lies inside the circle: a circle is convex, so every corner inside will do."""
    return all(
        distance_m(circle.lat, circle.lon, lat, lon) <= circle.radius_m + slack_m
        for rings in polygon.parts
        for lat, lon in rings[0]
    )


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
    """The stored JSON form of an area as a `Circle`, `Polygon` or `Municipalities`. Raises InvalidArea."""
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
    if "polygon" in area or "geojson" in area:
        return parse_polygon(area)
    raise InvalidArea("area must hold 'circle', 'polygon', 'geojson' or 'municipalities'")


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
    elif isinstance(area, Polygon):
        # One bounding box per part (a MultiPolygon's parts may lie far apart), each a short range scan
        # per strip of longitude; the exact test follows in Python.
        boxes = [
            and_(
                r.lon_cell.in_(lon_cells(lon_min, lon_max)),
                r.lat.between(lat_min, lat_max),
                r.lon.between(lon_min, lon_max),
            )
            for lat_min, lat_max, lon_min, lon_max in area.boxes
        ]
        query = query.where(boxes[0] if len(boxes) == 1 else or_(*boxes))
    else:
        query = query.where(r.municipality_code.in_(area.codes))

    excluded = set(exclude_participants)
    points: list[tuple[int, float, float]] = []
    distances: dict[tuple[float, float], float] = {}
    windows: dict[tuple[str | None, Any, Any], bool] = {}
    channels: dict[str | None, ChannelKind | None] = {kind.value: kind for kind in ChannelKind}
    channels[None] = None
    circle = area if isinstance(area, Circle) else None
    polygon = area if isinstance(area, Polygon) else None
    radius = circle.radius_m if circle is not None else math.inf
    # Per distinct point: its distance to the polygon's centre, or None when it lies outside.
    inside: dict[tuple[float, float], float | None] = {}
    # Per person: [nearest distance, preferred channel, language, first reach seen, {id: reach} or None].
    people: dict[int, list[Any]] = {}
    rows = _raw_rows(session, query) + _follower_rows(session, area)
    for row in rows:
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
        elif polygon is not None:
            if (lat, lon) in inside:
                found = inside[(lat, lon)]
            else:
                found = inside[(lat, lon)] = (
                    distance_m(polygon.centre[0], polygon.centre[1], lat, lon)
                    if polygon.contains(lat, lon)
                    else None
                )
            if found is None:
                continue
            dist = found
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


# Above this many followed areas in an area the join is left to the planner as a whole.
FOLLOWED_BY_ID = 1000


def _follower_rows(session: Session, area: Area) -> list[tuple[Any, ...]]:
    """The reach rows of area-only following: one per followed PC4 centre and reachable identity.

    The same columns as the reach table's, so the same loop decides them; a person who also has an
    address is the same participant there and here, so they are alerted once. The followed areas in
    the area are looked up first, by their own index: without table statistics SQLite would start the
    join from every participant, a scan that costs more than the whole selection when, as mostly,
    nobody follows the area.
    """
    areas: Table = FollowedArea.__table__  # type: ignore[attr-defined]
    inside = _in_area(areas.c, area)
    ids = list(session.scalars(select(areas.c.id).where(inside).limit(FOLLOWED_BY_ID + 1)))
    if not ids:
        return []
    query = _followers_query()
    if len(ids) <= FOLLOWED_BY_ID:
        return _raw_rows(session, query.where(areas.c.id.in_(ids)))
    return _raw_rows(session, query.where(inside))


def _followers_query() -> Select[Any]:
    """Reach rows of followed areas joined with their active participants' reachable identities."""
    areas: Table = FollowedArea.__table__  # type: ignore[attr-defined]
    people: Table = Participant.__table__  # type: ignore[attr-defined]
    identities: Table = ChannelIdentity.__table__  # type: ignore[attr-defined]
    f, p, i = areas.c, people.c, identities.c
    return (
        select(
            f.participant_id,
            f.lat,
            f.lon,
            null().label("window_days"),
            null().label("window_start"),
            null().label("window_end"),
            p.preferred_channel,
            p.language,
            i.id,
            i.channel,
            i.last_inbound_at,
        )
        .select_from(areas)
        .join(people, and_(p.id == f.participant_id, p.status == ParticipantStatus.ACTIVE.value))
        .join(
            identities,
            and_(
                i.participant_id == f.participant_id,
                i.opted_out.is_(False),
                i.address_enc.is_not(None),
                i.verified.is_(True),
            ),
        )
    )


def _in_area(f: Any, area: Area) -> Any:
    """Followed areas whose centre lies in the area's bounding boxes (or its municipalities)."""
    if isinstance(area, Circle):
        dlat = area.radius_m / METRES_PER_DEGREE_LAT
        dlon = dlat / max(math.cos(math.radians(min(abs(area.lat) + dlat, 89.0))), 0.01)
        return and_(
            f.lat.between(area.lat - dlat, area.lat + dlat), f.lon.between(area.lon - dlon, area.lon + dlon)
        )
    if isinstance(area, Polygon):
        return or_(
            *(
                and_(f.lat.between(lat_min, lat_max), f.lon.between(lon_min, lon_max))
                for lat_min, lat_max, lon_min, lon_max in area.boxes
            )
        )
    return f.municipality_code.in_(area.codes)
