"""Postcode to place: validation of Dutch postcodes and a PC4 table of coordinates and municipalities.

The table is PC4 (four digits) because that is the open data we have; `PostcodeBook` keys on the
normalised postcode and falls back to its first four digits, so a finer PC6/BAG table can replace it.
"""

from __future__ import annotations

import csv
import math
import re
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# Letter pairs never issued by PostNL (they read as SA, SD and SS).
_NEVER_ISSUED = {"SA", "SD", "SS"}
_POSTCODE = re.compile(r"^\s*([1-9]\d{3})\s?([A-Za-z]{2})?\s*$")
_ADDRESS = re.compile(
    r"^\s*(?P<pc>[1-9]\d{3}\s?[A-Za-z]{2})[\s,.-]*(?P<num>\d{1,6})\s*[-/\s]?\s*(?P<add>[A-Za-z0-9]{0,8})\s*$"
)
_NETHERLANDS_BOX = (50.70, 53.60, 3.30, 7.25)  # lat min, lat max, lon min, lon max (mainland and islands)
EARTH_RADIUS_M = 6_371_008.8
# Open data shipped with the package (CC BY 4.0, GeoNames and CBS; credit in storage/data/README.md).
SHIPPED_DATA = Path(__file__).resolve().parent / "data"
SHIPPED_POSTCODE_DATA = SHIPPED_DATA / "nl_pc4.csv"
SHIPPED_MUNICIPALITIES = SHIPPED_DATA / "nl_gemeenten_2025.csv"


class InvalidPostcode(ValueError):
    """Text that is not a Dutch postcode."""


class InvalidHouseNumber(ValueError):
    """A house number out of range (1..99999) or with an addition we cannot read."""


class UnknownPostcode(LookupError):
    """A well-formed postcode that is not in the table."""

    def __init__(self, postcode: str) -> None:
        super().__init__(postcode)
        self.postcode = postcode


@dataclass(frozen=True)
class Place:
    """Where a postcode lies: coordinates (PC4 centre), place name, municipality."""

    postcode: str
    pc4: str
    lat: float
    lon: float
    place: str
    municipality_code: str
    municipality_name: str
    province: str


@dataclass(frozen=True)
class ParsedAddress:
    """A postcode with house number and optional addition, as the person typed them."""

    postcode: str
    house_number: int
    addition: str | None


def normalise_postcode(text: str) -> str:
    """`7511ab` → `7511 AB`; four digits alone stay four digits. Raises InvalidPostcode."""
    match = _POSTCODE.match(text or "")
    if not match:
        raise InvalidPostcode(text)
    digits, letters = match.group(1), match.group(2)
    if letters is None:
        return digits
    letters = letters.upper()
    if letters in _NEVER_ISSUED:
        raise InvalidPostcode(text)
    return f"{digits} {letters}"


def parse_address(text: str) -> ParsedAddress:
    """Read "7511 AB 12", "7511AB 12-a", "7511 ab, 12 bis". Raises InvalidPostcode or InvalidHouseNumber."""
    cleaned = (text or "").strip()
    match = _ADDRESS.match(cleaned)
    if not match:
        pc_only = re.match(r"^\s*([1-9]\d{3}\s?[A-Za-z]{2})\b", cleaned)
        if pc_only:
            normalise_postcode(pc_only.group(1))
            raise InvalidHouseNumber(text)
        raise InvalidPostcode(text)
    postcode = normalise_postcode(match.group("pc"))
    number = int(match.group("num"))
    if not 1 <= number <= 99999:
        raise InvalidHouseNumber(text)
    addition = match.group("add").upper() or None
    if addition is not None and not re.fullmatch(r"[A-Z]{1,4}|\d{1,4}|[A-Z]\d{1,3}|BIS|HS|BG|HUIS", addition):
        raise InvalidHouseNumber(text)
    return ParsedAddress(postcode=postcode, house_number=number, addition=addition)


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def in_netherlands(lat: float, lon: float) -> bool:
    """Whether a point lies inside the Netherlands' bounding box."""
    lat_min, lat_max, lon_min, lon_max = _NETHERLANDS_BOX
    return lat_min <= lat <= lat_max and lon_min <= lon <= lon_max


# CBS writes a municipality code `GM0153`; our tables and forms write `0153`.
_MUNICIPALITY_CODE = re.compile(r"(?:GM\s*)?(\d{1,4})", re.IGNORECASE)


class PostcodeBook:
    """The postcode table in memory: a few thousand PC4 rows, looked up by postcode."""

    def __init__(self, places: Iterable[Place]) -> None:
        self._by_key: dict[str, Place] = {p.postcode: p for p in places}
        self._municipalities: dict[str, str] = {p.municipality_code: p.municipality_name for p in self}

    @classmethod
    def load(cls, path: Path) -> PostcodeBook:
        """Read a PC4 CSV (`pc4,lat,lon,plaatsen,gemeentecode,gemeentenaam,provincie,...`)."""
        with path.open(encoding="utf-8", newline="") as handle:
            return cls(repair_outliers(list(_rows_to_places(csv.DictReader(handle)))))

    def __iter__(self) -> Iterator[Place]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def lookup(self, postcode: str) -> Place:
        """The place for a postcode (PC6 or PC4). Raises InvalidPostcode or UnknownPostcode."""
        key = normalise_postcode(postcode)
        place = self._by_key.get(key) or self._by_key.get(key[:4])
        if place is None:
            raise UnknownPostcode(key)
        if place.postcode != key:
            return Place(
                key,
                place.pc4,
                place.lat,
                place.lon,
                place.place,
                place.municipality_code,
                place.municipality_name,
                place.province,
            )
        return place

    def municipalities(self) -> dict[str, str]:
        """Municipality code → name, for every municipality that has a postcode."""
        return dict(self._municipalities)

    def municipality_code(self, name_or_code: str) -> str:
        """The four-digit code for a municipality given by code (`0153`, `153`, CBS's `GM0153`) or
        (case-insensitive) name. Raises LookupError."""
        wanted = name_or_code.strip()
        digits = _MUNICIPALITY_CODE.fullmatch(wanted)
        if digits is not None:
            padded = digits.group(1).zfill(4)
            if padded in self._municipalities:
                return padded
            raise LookupError(name_or_code)
        for code, name in self._municipalities.items():
            if name.casefold() == wanted.casefold():
                return code
        raise LookupError(name_or_code)

    def municipality_codes(self, names_or_codes: Iterable[str]) -> list[str]:
        """The known codes for several municipalities (blanks skipped), sorted. Raises LookupError."""
        return sorted({self.municipality_code(n) for n in names_or_codes if n.strip()})

    def nearest(self, lat: float, lon: float, max_m: float) -> Place:
        """The PC4 whose centre lies nearest the point, at most `max_m` away. Raises LookupError."""
        if not (math.isfinite(lat) and math.isfinite(lon)) or not in_netherlands(lat, lon):
            raise LookupError("outside the Netherlands")
        best = self.closest(lat, lon)
        if best is None or distance_m(lat, lon, best.lat, best.lon) > max_m:
            raise LookupError("no postcode near")
        return best

    def closest(self, lat: float, lon: float) -> Place | None:
        """The PC4 whose centre lies nearest the point, however far (None only for an empty book)."""
        return min(self, key=lambda p: distance_m(lat, lon, p.lat, p.lon), default=None)

    def within(self, lat: float, lon: float, radius_m: float) -> list[Place]:
        """Every PC4 whose centre lies within the radius, nearest first."""
        hits = [(distance_m(lat, lon, p.lat, p.lon), p) for p in self]
        return [p for d, p in sorted(hits, key=lambda pair: pair[0]) if d <= radius_m]


def repair_outliers(places: list[Place], max_km: float = 31.5) -> list[Place]:
    """Move a PC4 whose centre lies implausibly far from its municipality to the municipality's median.

    GeoNames averages every place that shares a PC4; a few rows (9999, 3062, 3523) mix places from
    all over the country, and an alert targeted on such a centre would miss everyone.
    """
    groups: dict[str, list[Place]] = {}
    for place in places:
        groups.setdefault(place.municipality_code, []).append(place)
    medians = {
        code: (statistics.median(p.lat for p in group), statistics.median(p.lon for p in group))
        for code, group in groups.items()
    }
    repaired = []
    for place in places:
        lat, lon = medians[place.municipality_code]
        if distance_m(place.lat, place.lon, lat, lon) > max_km * 1000:
            place = Place(
                place.postcode,
                place.pc4,
                lat,
                lon,
                place.place,
                place.municipality_code,
                place.municipality_name,
                place.province,
            )
        repaired.append(place)
    return repaired


def _rows_to_places(rows: Iterable[dict[str, str]]) -> Iterator[Place]:
    for row in rows:
        yield Place(
            postcode=row["pc4"],
            pc4=row["pc4"],
            lat=float(row["lat"]),
            lon=float(row["lon"]),
            place=(row.get("plaatsen") or "").split("|")[0].split(";")[0].strip(),
            municipality_code=row["gemeentecode"],
            municipality_name=row["gemeentenaam"],
            province=row.get("provincie", ""),
        )
