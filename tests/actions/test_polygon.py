"""Polygon areas: parsing and checks (CAP rings and GeoJSON), and selection inside them, nearest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from storage.crypto import DataVault
from storage.db import SessionFactory
from storage.geo import distance_m
from storage.targeting import InvalidArea, Polygon, parse_area, select_recipients
from tests.actions.conftest import ENSCHEDE, seed_person
from tests.conftest import FixedClock

LAT, LON = ENSCHEDE
D = 0.01  # about 1.1 km north-south, 0.7 km east-west here
# A square of 2D around the centre of Enschede, CAP order (lat, lon), closed.
SQUARE = [[LAT - D, LON - D], [LAT - D, LON + D], [LAT + D, LON + D], [LAT + D, LON - D], [LAT - D, LON - D]]
# An L: the square without its north-east quarter (a concave polygon).
ELL = [
    [LAT - D, LON - D],
    [LAT - D, LON + D],
    [LAT, LON + D],
    [LAT, LON],
    [LAT + D, LON],
    [LAT + D, LON - D],
    [LAT - D, LON - D],
]


def _geo(ring: list[list[float]]) -> list[list[float]]:
    return [[lon, lat] for lat, lon in ring]


def _ids(sessions: SessionFactory, area: dict[str, Any], at: datetime) -> list[int]:
    with sessions() as session:
        return [r.participant_id for r in select_recipients(session, area=parse_area(area), at=at)]


@pytest.mark.parametrize(
    ("offset", "inside"),
    [
        ((0.0, 0.0), True),
        ((-0.5, -0.5), True),  # south-west quarter
        ((0.5, 0.5), False),  # the missing north-east quarter
        ((0.5, -0.5), True),
        ((-0.5, 0.5), True),
        ((0.99, -0.99), True),  # just inside a corner
        ((1.01, -0.5), False),  # just north of it
        ((0.0, -1.2), False),
        ((-1.0, 0.0), True),  # on the southern edge
    ],
    ids=["corner-point", "sw", "ne-cut-out", "nw", "se", "inside-corner", "north", "west", "edge"],
)
def test_point_in_concave_polygon(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock, offset: tuple[float, float], inside: bool
) -> None:
    person = seed_person(sessions, vault, clock(), at=(LAT + offset[0] * D, LON + offset[1] * D))
    assert (person.participant_id in _ids(sessions, {"polygon": ELL}, clock())) is inside


def test_geojson_polygon_with_a_hole(sessions: SessionFactory, vault: DataVault, clock: FixedClock) -> None:
    hole = [[LAT - D / 2, LON - D / 2], [LAT + D / 2, LON - D / 2], [LAT + D / 2, LON + D / 2],
            [LAT - D / 2, LON + D / 2], [LAT - D / 2, LON - D / 2]]  # fmt: skip
    in_hole = seed_person(sessions, vault, clock(), at=(LAT, LON))
    in_ring = seed_person(sessions, vault, clock(), at=(LAT + 0.8 * D, LON))
    area = {"geojson": {"type": "Polygon", "coordinates": [_geo(SQUARE), _geo(hole)]}}
    assert _ids(sessions, area, clock()) == [in_ring.participant_id]
    assert in_hole.participant_id not in _ids(sessions, area, clock())


def test_multipolygon_parts_far_apart(sessions: SessionFactory, vault: DataVault, clock: FixedClock) -> None:
    hengelo = (52.2658, 6.7931)
    other = [[lat + hengelo[0] - LAT, lon + hengelo[1] - LON] for lat, lon in SQUARE]
    between = seed_person(sessions, vault, clock(), at=((LAT + hengelo[0]) / 2, (LON + hengelo[1]) / 2))
    here = seed_person(sessions, vault, clock(), at=(LAT, LON))
    there = seed_person(sessions, vault, clock(), at=hengelo)
    area = {"geojson": {"type": "MultiPolygon", "coordinates": [[_geo(SQUARE)], [_geo(other)]]}}
    ids = _ids(sessions, area, clock())
    assert set(ids) == {here.participant_id, there.participant_id}
    assert between.participant_id not in ids


def test_nearest_first_from_the_centroid_or_the_operators_point(
    sessions: SessionFactory, vault: DataVault, clock: FixedClock
) -> None:
    south = seed_person(sessions, vault, clock(), at=(LAT - 0.8 * D, LON))
    middle = seed_person(sessions, vault, clock(), at=(LAT, LON))
    north = seed_person(sessions, vault, clock(), at=(LAT + 0.6 * D, LON))
    assert _ids(sessions, {"polygon": SQUARE}, clock()) == [
        middle.participant_id,
        north.participant_id,
        south.participant_id,
    ]
    from_south = {"polygon": SQUARE, "centre": {"lat": LAT - D, "lon": LON}}
    assert _ids(sessions, from_south, clock()) == [
        south.participant_id,
        middle.participant_id,
        north.participant_id,
    ]
    with sessions() as session:
        recipients = select_recipients(session, area=parse_area(from_south), at=clock())
    assert recipients[0].distance_m == pytest.approx(distance_m(LAT - D, LON, LAT - 0.8 * D, LON), abs=0.1)


def test_centroid_of_a_square_is_its_middle() -> None:
    area = parse_area({"polygon": SQUARE})
    assert isinstance(area, Polygon)
    assert area.centre == pytest.approx((LAT, LON), abs=1e-6)


@pytest.mark.parametrize(
    ("area", "message"),
    [
        ({"polygon": SQUARE[:-1]}, "not closed"),
        ({"polygon": [SQUARE[0], SQUARE[1], SQUARE[0]]}, "at least 4 points"),
        ({"polygon": [[91, 6], [52, 6.1], [52.1, 6.1], [91, 6]]}, "out of range"),
        ({"polygon": [[52, 181], [52, 6.1], [52.1, 6.1], [52, 181]]}, "out of range"),
        ({"polygon": [[52, 6], [52, 6], [52.1, 6.1], [52, 6]]}, "3 different corners"),
        ({"polygon": [[52, 6], [52, "x"], [52.1, 6.1], [52, 6]]}, "pair of numbers"),
        ({"polygon": [[51, 5], [51, 7], [53, 7], [51, 5]]}, "too large"),
        ({"polygon": "52,6 52,7"}, "list of"),
        ({"geojson": {"type": "Point", "coordinates": [6, 52]}}, "Polygon or MultiPolygon"),
        ({"geojson": {"type": "Polygon", "coordinates": [_geo(SQUARE[:-1])]}}, "not closed"),
        ({"geojson": {"type": "MultiPolygon", "coordinates": []}}, "at least one polygon"),
        ({"polygon": SQUARE, "centre": {"lat": 52}}, "centre needs"),
    ],
    ids=[
        "open",
        "short",
        "lat",
        "lon",
        "degenerate",
        "nan",
        "large",
        "string",
        "point",
        "geo-open",
        "empty",
        "centre",
    ],
)
def test_bad_polygons_are_refused_with_a_reason(area: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArea, match=message):
        parse_area(area)


def test_too_many_points() -> None:
    ring = [[LAT + 0.001 * i / 1000, LON + 0.01 * (i % 2)] for i in range(1001)]
    ring.append(ring[0])
    with pytest.raises(InvalidArea, match="at most 1000"):
        parse_area({"polygon": ring})
