"""What the pages' Leaflet maps are given: tiles or the offline outline, the area, groups and tips.

The page's script (`static/map.js`) reads this from the map's `data-map` attribute. Without a tile URL
the map draws the country from the postcode table (a disc per postcode area, names of the larger towns),
so zoom, pan, the scale and picking a point work the same in an air-gapped control room.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from bot.controlroom.deps import PREFIX, ControlRoom
from bot.controlroom.live import RecipientGroup
from bot.controlroom.svgmap import NL_CENTRE, NL_ZOOM
from bot.controlroom.tipfeed import TipView
from storage.geo import PostcodeBook, distance_m
from storage.targeting import Circle, Municipalities, Polygon

# A town with at least this many postcode areas gets its name on the offline map.
LABELLED_TOWN_AREAS = 6
# The offline outline's discs: a share of the distance to the nearest area, within bounds (metres).
DISC_SHARE, DISC_MIN_M, DISC_MAX_M = 1.4, 1200.0, 6000.0


def map_config(
    cr: ControlRoom,
    *,
    lang: str = "nl",
    area: Circle | Municipalities | Polygon | None = None,
    groups: list[RecipientGroup] | None = None,
    tips: list[TipView] | None = None,
    pick: bool = False,
    rings: list[float] | None = None,
) -> dict[str, Any]:
    """The `data-map` of a page's map: where to look, what to draw (with a circle's rings still to come,
    dashed), and the texts it shows."""
    t = cr.catalogue
    config: dict[str, Any] = {
        "tiles": cr.tile_url,
        "attribution": cr.settings.controlroom.tile_attribution if cr.tile_url else "",
        "base": f"{PREFIX}/map/base.json",
        "centre": list(NL_CENTRE),
        "zoom": NL_ZOOM,
        "pick": pick,
        "circle": None,
        "rings": list(rings or []),
        "polygons": [],
        "area_points": [],
        "groups": [{"lat": g.lat, "lon": g.lon, "count": g.count} for g in groups or []],
        "tips": [_tip(tip) for tip in tips or [] if tip.lat is not None and tip.lon is not None],
        "texts": {
            key: t.render(lang, f"controlroom.map.{key}")
            for key in ("zoom_in", "zoom_out", "offline", "recipients")
        },
    }
    if isinstance(area, Circle):
        config["circle"] = {"lat": area.lat, "lon": area.lon, "radius_m": area.radius_m}
        config["centre"] = [area.lat, area.lon]
    elif isinstance(area, Polygon):
        config["polygons"] = [[[list(pt) for pt in ring] for ring in rings] for rings in area.parts]
        config["centre"] = list(area.centre)
    elif isinstance(area, Municipalities):
        codes = set(area.codes)
        points = [[p.lat, p.lon] for p in cr.book if p.municipality_code in codes]
        config["area_points"] = points
        if points:
            config["centre"] = [
                sum(p[0] for p in points) / len(points),
                sum(p[1] for p in points) / len(points),
            ]
    return config


def _tip(tip: TipView) -> dict[str, Any]:
    return {
        "id": tip.id,
        "lat": tip.lat,
        "lon": tip.lon,
        "text": tip.text,
        "location": tip.location,
        "received_at": tip.received_at.isoformat(),
    }


@cache
def base_layer(book: PostcodeBook) -> dict[str, Any]:
    """The offline outline: every postcode area's centre, and the larger towns with their size."""
    towns: dict[str, list[tuple[float, float]]] = {}
    for place in book:
        if place.place:
            towns.setdefault(place.place, []).append((place.lat, place.lon))
    labels: list[dict[str, Any]] = []
    for name, points in towns.items():
        if len(points) < LABELLED_TOWN_AREAS:
            continue
        lats, lons = sorted(p[0] for p in points), sorted(p[1] for p in points)
        lat, lon = lats[len(points) // 2], lons[len(points) // 2]
        # A town whose areas lie far apart (a municipality of villages) has no one point to label.
        if max(distance_m(lat, lon, a, b) for a, b in points) > 15_000:
            continue
        labels.append({"name": name, "lat": lat, "lon": lon, "size": len(points)})
    labels.sort(key=lambda item: -item["size"])
    return {"points": _discs(book), "places": labels}


def _discs(book: PostcodeBook) -> list[list[float]]:
    """Each postcode area's centre with a radius of about half the way to its nearest neighbour: the
    discs join into land where areas are small (towns) and large (the countryside) alike."""
    cells: dict[tuple[int, int], list[tuple[float, float]]] = {}
    points = [(p.lat, p.lon) for p in book]
    for lat, lon in points:
        cells.setdefault((int(lat * 10), int(lon * 10)), []).append((lat, lon))
    out = []
    for lat, lon in points:
        cx, cy = int(lat * 10), int(lon * 10)
        nearest = min(
            (
                distance_m(lat, lon, a, b)
                for dx in (-1, 0, 1)
                for dy in (-1, 0, 1)
                for a, b in cells.get((cx + dx, cy + dy), [])
                if (a, b) != (lat, lon)
            ),
            default=DISC_MAX_M / DISC_SHARE,
        )
        radius = max(DISC_MIN_M, min(DISC_MAX_M, DISC_SHARE * nearest))
        out.append([round(lat, 4), round(lon, 4), round(radius)])
    return out
