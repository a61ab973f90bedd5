"""Whether one alert area contains another: polygon in polygon, circle in polygon, polygon in circle."""

from __future__ import annotations

import pytest

from storage.targeting import (
    Circle,
    Polygon,
    circle_contains_polygon,
    parse_polygon,
    polygon_contains_circle,
    polygon_contains_polygon,
)

LAT, LON = 52.2215, 6.8937
D = 0.01  # about 1.1 km north-south, 0.7 km east-west here


def square(half: float, *, lat: float = LAT, lon: float = LON) -> list[list[float]]:
    """A closed square ring around a point, `half` degrees from its centre to each side."""
    ring = [
        [lat - half, lon - half],
        [lat - half, lon + half],
        [lat + half, lon + half],
        [lat + half, lon - half],
    ]
    return [*ring, ring[0]]


def poly(ring: list[list[float]], *holes: list[list[float]]) -> Polygon:
    """A polygon from CAP-ordered rings (holes through GeoJSON, which takes them)."""
    if not holes:
        return parse_polygon({"polygon": ring})
    return parse_polygon(
        {"geojson": {"type": "Polygon", "coordinates": [[[b, a] for a, b in r] for r in (ring, *holes)]}}
    )


# A U shape opening north: its notch cuts into the middle from the top.
U_SHAPE = [
    [LAT - 2 * D, LON - 2 * D],
    [LAT - 2 * D, LON + 2 * D],
    [LAT + 2 * D, LON + 2 * D],
    [LAT + 2 * D, LON + D],
    [LAT - D, LON + D],
    [LAT - D, LON - D],
    [LAT + 2 * D, LON - D],
    [LAT + 2 * D, LON - 2 * D],
    [LAT - 2 * D, LON - 2 * D],
]


@pytest.mark.parametrize(
    ("outer", "inner", "contains"),
    [
        (poly(square(2 * D)), poly(square(D)), True),
        (poly(square(D)), poly(square(D)), True),
        (poly(square(D)), poly(square(2 * D)), False),
        (poly(square(2 * D)), poly(square(D, lat=LAT + 1.5 * D)), False),
        # Every corner of the inner square lies in the U's arms or base, but its top edge crosses the notch.
        (
            poly(U_SHAPE),
            poly(
                [
                    [LAT - 1.5 * D, LON - 1.5 * D],
                    [LAT - 1.5 * D, LON + 1.5 * D],
                    [LAT + 1.5 * D, LON + 1.5 * D],
                    [LAT + 1.5 * D, LON - 1.5 * D],
                    [LAT - 1.5 * D, LON - 1.5 * D],
                ]
            ),
            False,
        ),
        # The old polygon keeps two corners of the new one and its whole west edge.
        (
            poly(square(2 * D)),
            poly(
                [
                    [LAT - 2 * D, LON - 2 * D],
                    [LAT, LON],
                    [LAT + 2 * D, LON - 2 * D],
                    [LAT - 2 * D, LON - 2 * D],
                ]
            ),
            True,
        ),
        # A hole in the new area where the old area was.
        (poly(square(3 * D), square(D / 2)), poly(square(2 * D)), False),
        (poly(square(3 * D), square(D / 2, lat=LAT + 2.5 * D)), poly(square(D)), True),
    ],
    ids=[
        "larger",
        "same",
        "smaller",
        "shifted-out",
        "edge-crosses-notch",
        "shared-edge",
        "hole-inside",
        "hole-apart",
    ],
)
def test_polygon_in_polygon(outer: Polygon, inner: Polygon, contains: bool) -> None:
    assert polygon_contains_polygon(outer, inner) is contains


@pytest.mark.parametrize(
    ("circle", "contains"),
    [
        (Circle(LAT, LON, 1000), True),
        # The square reaches 2.2 km north and south but only about 1.36 km east and west.
        (Circle(LAT, LON, 1300), True),
        (Circle(LAT, LON, 1400), False),
        (Circle(LAT + 0.5, LON, 100), False),
        # Inside the U's outline but over its notch.
        (Circle(LAT + 1.5 * D, LON, 100), False),
    ],
    ids=["well-inside", "just-inside", "touches-east-side", "far-away", "in-the-notch"],
)
def test_circle_in_polygon(circle: Circle, contains: bool) -> None:
    shape = poly(U_SHAPE) if circle.lat == LAT + 1.5 * D else poly(square(2 * D))
    assert polygon_contains_circle(shape, circle) is contains


def test_circle_in_polygon_with_a_hole_near_its_centre() -> None:
    holed = poly(square(3 * D), square(D / 4, lat=LAT + D))
    assert not polygon_contains_circle(holed, Circle(LAT, LON, 1500))
    assert polygon_contains_circle(holed, Circle(LAT - D, LON, 600))


@pytest.mark.parametrize(
    ("radius", "contains"), [(3000, True), (1500, False)], ids=["covers-corners", "misses-corners"]
)
def test_polygon_in_circle(radius: float, contains: bool) -> None:
    # The square's corners lie about 2.6 km from its centre.
    assert circle_contains_polygon(Circle(LAT, LON, radius), poly(square(2 * D))) is contains


def test_a_corner_pushed_out_contains_and_a_corner_pulled_in_does_not() -> None:
    """The common widening: the operator drags one corner of a star-shaped polygon outwards (the other
    corners and edges shared with the old one), or, wrongly, inwards."""
    import math
    import random

    rng = random.Random(3)
    for _ in range(100):
        n = rng.randint(4, 12)
        corners = [
            (
                LAT + 0.05 * rng.uniform(0.5, 1) * math.sin(2 * math.pi * i / n),
                LON + 0.08 * rng.uniform(0.5, 1) * math.cos(2 * math.pi * i / n),
            )
            for i in range(n)
        ]
        k = rng.randrange(n)

        def moved(factor: float, corners: list[tuple[float, float]] = corners, k: int = k) -> Polygon:
            ring = [list(c) for c in corners]
            ring[k] = [LAT + (corners[k][0] - LAT) * factor, LON + (corners[k][1] - LON) * factor]
            return poly([*ring, ring[0]])

        old = moved(1.0)
        assert polygon_contains_polygon(moved(1.3), old)
        assert not polygon_contains_polygon(moved(0.7), old)
