"""Place names and postcodes to coordinates: PDOK Locatieserver when `GEOCODER_URL` is set, else the
postcode table shipped with the system.

The remote geocoder speaks the Locatieserver API (`/suggest` for typing, `/free` for whole texts, both
Solr answers: `{"response": {"numFound", "docs": [{"id", "type", "weergavenaam", "centroide_ll", ...}]}}`).
Any timeout or error there falls back to the built-in table, so a dead or slow geocoder never stops the
form or the tips.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from bot.texts import Catalogue
from storage.geo import InvalidPostcode, PostcodeBook, UnknownPostcode, distance_m, normalise_postcode

log = logging.getLogger(__name__)

# What an operator or a tipster means by a place: a street, an address, a postcode, a town or municipality.
PLACE_TYPES = "type:(gemeente OR woonplaats OR weg OR postcode OR adres)"
FIELDS = "id,weergavenaam,type,score,centroide_ll"
_POINT = re.compile(r"^\s*POINT\s*\(\s*(-?\d+(?:\.\d+)?)\s+(-?\d+(?:\.\d+)?)\s*\)\s*$", re.IGNORECASE)
_WORD = re.compile(r"[\w'-]+", re.UNICODE)


@dataclass(frozen=True)
class Found:
    """One answer of a geocoder: what to show, where it is, and what kind of place it is."""

    label: str
    lat: float
    lon: float
    kind: str
    """`adres`, `postcode`, `weg`, `woonplaats` or `gemeente` (Locatieserver's types)."""

    def to_json(self) -> dict[str, Any]:
        """The answer for the control room's script."""
        return {"label": self.label, "lat": self.lat, "lon": self.lon, "kind": self.kind}


@dataclass(frozen=True)
class Near:
    """Where to look: a centre and how far from it an answer may lie."""

    lat: float
    lon: float
    radius_m: float

    def holds(self, found: Found) -> bool:
        """Whether an answer lies inside."""
        return distance_m(self.lat, self.lon, found.lat, found.lon) <= self.radius_m


class Geocoder(Protocol):
    """Text to places, best first."""

    async def suggest(self, text: str, *, near: Near | None = None, limit: int = 8) -> list[Found]:
        """Answers for a search box while the operator types (prefixes count)."""
        ...

    async def free(self, text: str, *, near: Near | None = None, limit: int = 5) -> list[Found]:
        """Answers for a whole text, such as the place named in a tip."""
        ...

    async def aclose(self) -> None:
        """Release what the geocoder holds (its HTTP client)."""
        ...


class GeocoderUnavailable(RuntimeError):
    """The remote geocoder timed out, failed or answered something we cannot read."""


def parse_point(value: str) -> tuple[float, float]:
    """`POINT(lon lat)` (Locatieserver's `centroide_ll`) → (lat, lon). Raises ValueError."""
    match = _POINT.match(value or "")
    if not match:
        raise ValueError(value)
    return float(match.group(2)), float(match.group(1))


def _fold(text: str) -> str:
    return " ".join(_WORD.findall(text.casefold()))


@dataclass(frozen=True)
class _Town:
    name: str
    municipality: str
    kind: str
    lat: float
    lon: float
    key: str


class PostcodeGeocoder:
    """The offline geocoder: postcodes, towns and municipalities from the shipped postcode table."""

    def __init__(self, book: PostcodeBook, *, municipality_label: str = "{name}") -> None:
        self._book = book
        self._municipality_label = municipality_label
        towns: dict[tuple[str, str], list[tuple[float, float, str]]] = {}
        for place in book:
            if place.place:
                towns.setdefault(("woonplaats", place.place), []).append(
                    (place.lat, place.lon, place.municipality_name)
                )
            towns.setdefault(("gemeente", place.municipality_name), []).append(
                (place.lat, place.lon, place.municipality_name)
            )
        self._towns: list[_Town] = []
        for (kind, name), points in towns.items():
            # The middle of a town's postcode areas: a median keeps one far-off area from pulling it away.
            lats, lons = sorted(p[0] for p in points), sorted(p[1] for p in points)
            mid = len(points) // 2
            municipality = points[0][2]
            self._towns.append(_Town(name, municipality, kind, lats[mid], lons[mid], _fold(name)))
        # Towns before municipalities of the same name, larger towns (more postcode areas) first.
        size = {(k, n): len(p) for (k, n), p in towns.items()}
        self._towns.sort(key=lambda t: (t.kind != "woonplaats", -size[(t.kind, t.name)], t.name))
        # A tip names a town inside a longer text: look its word runs up instead of scanning every town.
        self._by_key: dict[str, list[int]] = {}
        for rank, town in enumerate(self._towns):
            self._by_key.setdefault(town.key, []).append(rank)
        self._longest = max((town.key.count(" ") + 1 for town in self._towns), default=0)

    async def aclose(self) -> None:
        """Nothing to release."""

    def _label(self, town: _Town) -> str:
        if town.kind == "gemeente":
            return self._municipality_label.format(name=town.name)
        if town.municipality != town.name:
            return f"{town.name}, {town.municipality}"
        return town.name

    def _postcode(self, text: str) -> list[Found]:
        try:
            place = self._book.lookup(normalise_postcode(text))
        except (InvalidPostcode, UnknownPostcode):
            return []
        return [Found(f"{place.postcode} {place.place}", place.lat, place.lon, "postcode")]

    async def suggest(self, text: str, *, near: Near | None = None, limit: int = 8) -> list[Found]:
        """Postcodes, and towns and municipalities whose name starts with the text."""
        return self._search(text, near=near, limit=limit, prefix=True)

    async def free(self, text: str, *, near: Near | None = None, limit: int = 5) -> list[Found]:
        """A postcode in the text, else the towns and municipalities the text names."""
        return self._search(text, near=near, limit=limit, prefix=False)

    def _search(self, text: str, *, near: Near | None, limit: int, prefix: bool) -> list[Found]:
        found = self._postcode(text)
        if not found:
            for match in re.finditer(r"\b[1-9]\d{3}\s?[A-Za-z]{2}\b|\b[1-9]\d{3}\b", text):
                found = self._postcode(match.group(0))
                if found:
                    break
        wanted = _fold(text)
        if wanted:
            for town in self._towns_in(wanted, prefix=prefix):
                found.append(Found(self._label(town), town.lat, town.lon, town.kind))
        if near is not None:
            found = [f for f in found if near.holds(f)]
        return _unique(found)[:limit]

    def _towns_in(self, wanted: str, *, prefix: bool) -> list[_Town]:
        """The towns a folded text names: its start (typing a name) or any run of its words (a tip)."""
        if prefix:
            return [town for town in self._towns if town.key.startswith(wanted)]
        # "Oude Markt Enschede", "bij station Hengelo": every run of words that is a whole name.
        ranks = {rank for run in _word_runs(wanted, self._longest) for rank in self._by_key.get(run, ())}
        return [self._towns[rank] for rank in sorted(ranks)]


def _word_runs(text: str, longest: int) -> Iterator[str]:
    words = text.split(" ")
    for start in range(len(words)):
        for end in range(start + 1, min(start + longest, len(words)) + 1):
            yield " ".join(words[start:end])


def _unique(found: Sequence[Found]) -> list[Found]:
    seen: set[tuple[str, float, float]] = set()
    out = []
    for f in found:
        key = (f.label, round(f.lat, 5), round(f.lon, 5))
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


class LocatieserverGeocoder:
    """PDOK Locatieserver (v3.1): `/suggest` and `/free` with the centroid asked for in `fl`."""

    def __init__(
        self, base_url: str, *, http: httpx.AsyncClient | None = None, timeout_s: float = 2.0
    ) -> None:
        self._base = base_url.rstrip("/")
        self._http = http
        self._timeout_s = timeout_s

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout_s)
        return self._http

    async def aclose(self) -> None:
        """Close the HTTP client this geocoder made."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def suggest(self, text: str, *, near: Near | None = None, limit: int = 8) -> list[Found]:
        """`/suggest?q=…`. Raises GeocoderUnavailable."""
        return await self._ask("suggest", text, near=near, limit=limit)

    async def free(self, text: str, *, near: Near | None = None, limit: int = 5) -> list[Found]:
        """`/free?q=…`. Raises GeocoderUnavailable."""
        return await self._ask("free", text, near=near, limit=limit)

    async def _ask(self, endpoint: str, text: str, *, near: Near | None, limit: int) -> list[Found]:
        if not text.strip():
            return []
        params: dict[str, str | int | float] = {
            "q": text.strip()[:200],
            "fq": PLACE_TYPES,
            "fl": FIELDS,
            "rows": limit if near is None else max(limit, 10),
        }
        if near is not None:
            # Sorts by distance from the centre; the answers outside the area are dropped below.
            params["lat"], params["lon"] = round(near.lat, 6), round(near.lon, 6)
        try:
            response = await self._client().get(
                f"{self._base}/{endpoint}", params=params, timeout=self._timeout_s
            )
            response.raise_for_status()
            docs = response.json()["response"]["docs"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise GeocoderUnavailable(f"{endpoint}: {type(exc).__name__}") from exc
        found = []
        for doc in docs:
            try:
                lat, lon = parse_point(doc["centroide_ll"])
                found.append(Found(str(doc["weergavenaam"]), lat, lon, str(doc.get("type", ""))))
            except (KeyError, ValueError, TypeError):
                continue
        if near is not None:
            found = [f for f in found if near.holds(f)]
        return found[:limit]


class FallbackGeocoder:
    """The remote geocoder first; on a timeout or an error, the built-in one (and a log line saying why)."""

    def __init__(self, remote: LocatieserverGeocoder, local: PostcodeGeocoder) -> None:
        self.remote = remote
        self.local = local

    async def suggest(self, text: str, *, near: Near | None = None, limit: int = 8) -> list[Found]:
        """Remote suggestions, else the built-in ones."""
        try:
            return await self.remote.suggest(text, near=near, limit=limit)
        except GeocoderUnavailable as exc:
            # The reason only: the searched text may hold a tipster's address.
            log.warning("geocoder unavailable (%s): using the built-in postcode table", exc)
            return await self.local.suggest(text, near=near, limit=limit)

    async def free(self, text: str, *, near: Near | None = None, limit: int = 5) -> list[Found]:
        """Remote answers, else the built-in ones."""
        try:
            return await self.remote.free(text, near=near, limit=limit)
        except GeocoderUnavailable as exc:
            log.warning("geocoder unavailable (%s): using the built-in postcode table", exc)
            return await self.local.free(text, near=near, limit=limit)

    async def aclose(self) -> None:
        """Close the remote geocoder's HTTP client."""
        await self.remote.aclose()


def make_geocoder(
    book: PostcodeBook,
    *,
    url: str | None,
    timeout_s: float = 2.0,
    http: httpx.AsyncClient | None = None,
    municipality_label: str = "{name}",
) -> Geocoder:
    """Locatieserver at `url` with the postcode table behind it, or the postcode table alone
    (`municipality_label`: how it names a municipality, `{name}` for its name)."""
    local = PostcodeGeocoder(book, municipality_label=municipality_label)
    if not url:
        return local
    return FallbackGeocoder(LocatieserverGeocoder(url, http=http, timeout_s=timeout_s), local)


def area_near(area: dict[str, Any], book: PostcodeBook, *, margin_m: float = 1000.0) -> Near | None:
    """The circle around an action's area (a circle, or its municipalities' postcode areas), with a margin."""
    circle = area.get("circle")
    if isinstance(circle, dict):
        try:
            lat, lon, radius = float(circle["lat"]), float(circle["lon"]), float(circle["radius_m"])
        except (KeyError, TypeError, ValueError):
            return None
        if math.isnan(lat) or math.isnan(lon):
            return None
        return Near(lat, lon, radius + margin_m)
    codes = set(area.get("municipalities") or [])
    places = [p for p in book if p.municipality_code in codes]
    if not places:
        return None
    lat = sum(p.lat for p in places) / len(places)
    lon = sum(p.lon for p in places) / len(places)
    far = max(distance_m(lat, lon, p.lat, p.lon) for p in places)
    # A postcode area's centre is not its edge: a few kilometres more holds the whole municipality.
    return Near(lat, lon, far + 3000.0 + margin_m)


def municipality_label(catalogue: Catalogue) -> str:
    """How the built-in geocoder names a municipality in the control room ("Gemeente {name}")."""
    return catalogue.render("nl", "controlroom.map.municipality", name="{name}")
