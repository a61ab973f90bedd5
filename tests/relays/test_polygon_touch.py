"""A neighbourhood group meets a polygon action: its circle reaches the polygon, or a postcode lies inside."""

from __future__ import annotations

from typing import Any

import pytest

from storage.relays import touches

SQUARE = [[52.21, 6.88], [52.21, 6.90], [52.23, 6.90], [52.23, 6.88], [52.21, 6.88]]


@pytest.mark.parametrize(
    ("relay_area", "meets"),
    [
        ({"circle": {"lat": 52.22, "lon": 6.89, "radius_m": 100}}, True),  # centre inside
        ({"circle": {"lat": 52.24, "lon": 6.90, "radius_m": 1500}}, True),  # reaches a corner
        ({"circle": {"lat": 52.30, "lon": 6.90, "radius_m": 1500}}, False),
        ({"postcodes": [{"pc4": "7511", "lat": 52.22, "lon": 6.89}]}, True),
        ({"postcodes": [{"pc4": "7550", "lat": 52.26, "lon": 6.79}]}, False),
    ],
    ids=["circle-inside", "circle-corner", "circle-far", "postcode-inside", "postcode-outside"],
)
def test_touches_a_polygon(relay_area: dict[str, Any], meets: bool) -> None:
    assert touches(relay_area, [], {"polygon": SQUARE}) is meets
