"""The places a tip names, in the order a control room and a geocoder want them.

A tip often names several places at once ("op het bankje bij de Oude Markt", "bij de Hema in de
Kalanderstraat", "bij het station Enschede"). Operators need all of them; a geocoder needs the one it can
find first. So every place is kept and sorted: streets, squares and landmarks before roads, street
furniture (a bench, a post, a bus shelter) last as a detail, and the town the tip names at the end. Towns
are recognised from the place and municipality names of the postcode table the project ships, not from a
hand-kept list.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from nlu.words import Words, fold, words_of

# fmt: off
# Things to sit on, lean against or wait under: a detail of a place, never the place itself.
FURNITURE: Final = frozenset(
    {
        "bankje", "bankjes", "paal", "paaltje", "lantaarnpaal", "bushokje", "abri", "prullenbak", "afvalbak",
        "vuilnisbak", "container", "containers", "muurtje", "hek", "hekje", "fietsenrek", "picknicktafel",
        "brievenbus", "bench", "lamppost",
    }
)
_STREET_SUFFIXES: Final = (
    "straat", "weg", "laan", "plein", "singel", "gracht", "kade", "dijk", "pad", "steeg", "hof", "markt",
    "dreef", "baan", "wal", "boulevard", "allee", "plantsoen", "erf", "hoven", "straatje", "park", "veld",
    "brug", "haven", "poort", "dam", "burg",
)
# fmt: on
ADDRESS, STREET, LANDMARK, ROAD, TOWN, DETAIL = "address", "street", "landmark", "road", "town", "detail"
# For a geocoder, most specific first: it finds an address or a street, rarely a shop by its name.
_QUERY_RANK: Final = {ADDRESS: 0, STREET: 1, LANDMARK: 2, ROAD: 3, DETAIL: 4, TOWN: 5}
# For operators, as the tipster named them; furniture after the place it stands at, the town last.
_TEXT_RANK: Final = {ADDRESS: 0, STREET: 0, LANDMARK: 0, ROAD: 0, DETAIL: 1, TOWN: 2}


class Towns:
    """Town and municipality names, found in a text by their words ("Den Helder", "'s-Hertogenbosch")."""

    def __init__(self, names: Iterable[str]) -> None:
        self._by_first: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        seen: set[tuple[str, ...]] = set()
        for name in names:
            key = tuple(w for _, w in words_of(name.strip()).at)
            if not key or key in seen:
                continue
            seen.add(key)
            self._by_first.setdefault(key[0], []).append((key, name.strip()))
        for options in self._by_first.values():
            options.sort(key=lambda o: -len(o[0]))  # "Bergen op Zoom" before "Bergen"

    @classmethod
    def from_postcode_table(cls, path: Path) -> Towns:
        """The `plaatsen` (split on `|`) and `gemeentenaam` columns of the shipped PC4 table."""
        names: set[str] = set()
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                names.update(p.strip() for p in (row.get("plaatsen") or "").split("|") if p.strip())
                if row.get("gemeentenaam"):
                    names.add(row["gemeentenaam"].strip())
        return cls(names)

    def __contains__(self, text: object) -> bool:
        if not isinstance(text, str):
            return False
        key = tuple(w for _, w in words_of(text).at)
        return bool(key) and any(k == key for k, _ in self._by_first.get(key[0], ()))

    def find(self, text: str, words: Words) -> list[tuple[int, int, str]]:
        """Every town named in `text` as (start, end, name as the table spells it), longest names first."""
        found: list[tuple[int, int, str]] = []
        at = words.at
        i = 0
        while i < len(at):
            match = None
            for key, name in self._by_first.get(at[i][1], ()):
                if tuple(w for _, w in at[i : i + len(key)]) == key:
                    match = (key, name)
                    break
            if match is None:
                i += 1
                continue
            key, name = match
            last_start, last_word = at[i + len(key) - 1]
            found.append((at[i][0], last_start + len(last_word), name))
            i += len(key)
        return found


@dataclass(frozen=True)
class NamedPlace:
    """One place a tip names, as written, with its kind."""

    value: str
    kind: str
    start: int


@dataclass(frozen=True)
class PlaceList:
    """Every place of a tip: a text for operators, and geocoder queries, most specific first."""

    text: str | None
    places: tuple[str, ...]
    named: tuple[NamedPlace, ...]


def kind_of(value: str, towns: Towns | None) -> str:
    """What kind of place a found place value is."""
    words = [w for _, w in words_of(value).at]
    if not words:
        return LANDMARK
    if towns is not None and value in towns:
        return TOWN
    last = words[-1]
    if last in FURNITURE:
        return DETAIL
    if len(words[0]) >= 2 and words[0][0] in "an" and words[0][1:].isdigit():
        return ROAD
    if any(w.endswith(_STREET_SUFFIXES) and len(w) > 4 for w in words):
        return ADDRESS if last.isdigit() or (len(words) > 1 and words[-2].isdigit()) else STREET
    return LANDMARK


def order_places(found: Iterable[tuple[int, str]], towns: Towns | None) -> PlaceList:
    """Sort the places a tip names (start, value): streets and landmarks first, furniture, then the town."""
    named: list[NamedPlace] = []
    for start, value in sorted(found):
        if fold(value) not in (fold(n.value) for n in named):
            named.append(NamedPlace(value, kind_of(value, towns), start))
    if not named:
        return PlaceList(None, (), ())
    ordered = sorted(named, key=lambda n: (_TEXT_RANK[n.kind], n.start))
    by_query = sorted(named, key=lambda n: (_QUERY_RANK[n.kind], n.start))
    town = next((n.value for n in by_query if n.kind == TOWN), None)
    queries = [f"{n.value} {town}" if town else n.value for n in by_query if n.kind not in (TOWN, DETAIL)]
    queries += [n.value for n in by_query if n.kind == TOWN]
    return PlaceList(", ".join(n.value for n in ordered), tuple(dict.fromkeys(queries)), tuple(ordered))
