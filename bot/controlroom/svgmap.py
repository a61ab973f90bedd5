"""A map without a map library: Web-Mercator pixels at one zoom level, drawn as inline SVG.

The same projection as the XYZ tiles of OpenStreetMap-style tile servers, so an optional tile layer
lines up; without one the map still shows the circle and points on a plain background (tests and
air-gapped control rooms). The page's script reads the zoom from the SVG to turn a click into lat/lon.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

TILE = 256
EARTH_CIRCUMFERENCE_M = 40_075_016.686
# The Netherlands, with a margin, for the new-action form.
NL_CENTRE = (52.15, 5.3)
NL_ZOOM = 7


def project(lat: float, lon: float, zoom: int) -> tuple[float, float]:
    """World pixel coordinates of a point at a zoom level."""
    size = TILE * 2**zoom
    x = (lon + 180.0) / 360.0 * size
    s = math.sin(math.radians(max(-85.0, min(85.0, lat))))
    y = (0.5 - math.log((1 + s) / (1 - s)) / (4 * math.pi)) * size
    return x, y


def unproject(x: float, y: float, zoom: int) -> tuple[float, float]:
    """The lat/lon of world pixel coordinates (the inverse of `project`)."""
    size = TILE * 2**zoom
    lon = x / size * 360.0 - 180.0
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / size))))
    return lat, lon


def metres_per_pixel(lat: float, zoom: int) -> float:
    """Ground distance of one pixel at a latitude and zoom."""
    return EARTH_CIRCUMFERENCE_M * math.cos(math.radians(lat)) / (TILE * 2**zoom)


@dataclass(frozen=True)
class Tile:
    """One tile image of the optional tile layer, placed in world pixels."""

    href: str
    x: int
    y: int


@dataclass(frozen=True)
class Dot:
    """A point on the map: a tip, or a group of recipients."""

    x: float
    y: float
    r: float
    label: str
    kind: str


@dataclass
class MapView:
    """What the template draws: the viewBox, the circle, tiles, dots and a faint outline of the country."""

    zoom: int
    width: int
    height: int
    min_x: float
    min_y: float
    circle: tuple[float, float, float] | None = None
    tiles: list[Tile] = field(default_factory=list)
    dots: list[Dot] = field(default_factory=list)
    outline: str = ""

    @property
    def view_box(self) -> str:
        """The SVG viewBox in world pixels."""
        return f"{self.min_x:.1f} {self.min_y:.1f} {self.width} {self.height}"

    def point(self, lat: float, lon: float) -> tuple[float, float]:
        """Where a lat/lon lands on this map."""
        return project(lat, lon, self.zoom)

    def add_dot(self, lat: float, lon: float, *, label: str, kind: str, r: float = 7.0) -> None:
        """Put a point on the map."""
        x, y = self.point(lat, lon)
        self.dots.append(Dot(x, y, r, label, kind))


def view_for(
    *,
    centre: tuple[float, float],
    radius_m: float | None = None,
    zoom: int | None = None,
    width: int = 640,
    height: int = 480,
    tile_url: str | None = None,
) -> MapView:
    """A map centred on a point: the deepest zoom where the circle fills at most 80% of the height."""
    lat, lon = centre
    if zoom is None:
        zoom = 16
        if radius_m:
            while zoom > 5 and 2 * radius_m / metres_per_pixel(lat, zoom) > 0.8 * min(width, height):
                zoom -= 1
    cx, cy = project(lat, lon, zoom)
    view = MapView(zoom=zoom, width=width, height=height, min_x=cx - width / 2, min_y=cy - height / 2)
    if radius_m:
        view.circle = (cx, cy, radius_m / metres_per_pixel(lat, zoom))
    if tile_url:
        view.tiles = list(_tiles(view, tile_url))
    return view


def _tiles(view: MapView, url: str) -> Iterable[Tile]:
    last = 2**view.zoom - 1
    for ty in range(int(view.min_y // TILE), int((view.min_y + view.height) // TILE) + 1):
        for tx in range(int(view.min_x // TILE), int((view.min_x + view.width) // TILE) + 1):
            if 0 <= tx <= last and 0 <= ty <= last:
                href = url.replace("{z}", str(view.zoom)).replace("{x}", str(tx)).replace("{y}", str(ty))
                yield Tile(href, tx * TILE, ty * TILE)


def outline_path(view: MapView, points: Iterable[tuple[float, float]]) -> str:
    """A faint dot per postcode area, as one SVG path, so the country is recognisable without tiles."""
    parts = []
    seen: set[tuple[int, int]] = set()
    for lat, lon in points:
        x, y = view.point(lat, lon)
        key = (round(x), round(y))
        if key in seen or not (view.min_x <= x <= view.min_x + view.width):
            continue
        if not view.min_y <= y <= view.min_y + view.height:
            continue
        seen.add(key)
        parts.append(f"M{key[0]} {key[1]}h1")
    return "".join(parts)
