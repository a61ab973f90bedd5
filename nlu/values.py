"""Scoring the tip rules on values, not spans: the moment a tip means (to the minute) and the places it names.

A span score says the rules found "om kwart over 3"; only a value score says whether they made it 15:15
yesterday or the receipt time. `nlu/data/values.yml` holds real-looking tips with their receipt time and
what they mean; `make nlu-eval` prints these figures next to the span scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import yaml

from nlu.entities import read_tip
from nlu.places import Towns
from nlu.words import words_of

DATA_DIR: Final = Path(__file__).resolve().parent / "data"
VALUES_FILE: Final = DATA_DIR / "values.yml"
# The postcode table the project ships: its place and municipality names are the towns.
POSTCODE_TABLE: Final = Path(__file__).resolve().parent.parent / "storage" / "data" / "nl_pc4.csv"
TIME_TOLERANCE: Final = timedelta(minutes=1)
_ARTICLES: Final = frozenset({"de", "het", "den", "t", "the", "a", "an", "een"})


@dataclass(frozen=True)
class ValueCase:
    """One tip: its text, when it came in, the moment it means (None: none) and the places it names."""

    text: str
    received: datetime
    seen: datetime | None
    places: tuple[str, ...]


@dataclass(frozen=True)
class ValueReport:
    """Time accuracy (within a minute, or rightly none) and place precision and recall, with the misses."""

    tips: int
    time_accuracy: float
    times_expected: int
    times_right: int
    place_precision: float
    place_recall: float
    misses: tuple[str, ...] = field(default=())


def default_towns() -> Towns:
    """The towns of the postcode table the project ships."""
    return Towns.from_postcode_table(POSTCODE_TABLE)


def _moment(value: Any, zone: ZoneInfo) -> datetime:
    return datetime.fromisoformat(str(value)).replace(tzinfo=zone)


def load_values(path: Path = VALUES_FILE) -> tuple[ValueCase, ...]:
    """The cases of a values file (times are wall-clock times in its `tz`)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    zone = ZoneInfo(data.get("tz", "Europe/Amsterdam"))
    return tuple(
        ValueCase(
            text=str(item["text"]),
            received=_moment(item["received"], zone),
            seen=_moment(item["seen"], zone) if item.get("seen") is not None else None,
            places=tuple(str(p) for p in item.get("places") or ()),
        )
        for item in data["tips"]
    )


def _key(place: str) -> tuple[str, ...]:
    return tuple(w for _, w in words_of(place).at if w not in _ARTICLES)


def score_values(
    cases: tuple[ValueCase, ...], towns: Towns | None, tz: str = "Europe/Amsterdam"
) -> ValueReport:
    """How often the rules give the expected moment and places (places compared without case or article)."""
    right = expected_times = times_right = 0
    place_tp = place_fp = place_fn = 0
    misses: list[str] = []
    for case in cases:
        reading = read_tip(case.text, case.received, tz, towns)
        got = reading.seen.value if reading.seen is not None else None
        ok = got is None if case.seen is None else got is not None and abs(got - case.seen) <= TIME_TOLERANCE
        right += ok
        if case.seen is not None:
            expected_times += 1
            times_right += ok
        if not ok:
            shown = got.astimezone(case.received.tzinfo).strftime("%d-%m %H:%M") if got else "none"
            wanted = case.seen.strftime("%d-%m %H:%M") if case.seen else "none"
            misses.append(f"time {case.text!r}: expected {wanted}, got {shown}")
        found = {_key(n.value) for n in reading.places.named}
        wanted_places = {_key(p) for p in case.places}
        place_tp += len(found & wanted_places)
        place_fp += len(found - wanted_places)
        place_fn += len(wanted_places - found)
        if found != wanted_places:
            names = [n.value for n in reading.places.named]
            misses.append(f"places {case.text!r}: expected {list(case.places)}, got {names}")
    n = len(cases)
    return ValueReport(
        tips=n,
        time_accuracy=right / n if n else 0.0,
        times_expected=expected_times,
        times_right=times_right,
        place_precision=place_tp / (place_tp + place_fp) if place_tp + place_fp else 0.0,
        place_recall=place_tp / (place_tp + place_fn) if place_tp + place_fn else 0.0,
        misses=tuple(misses),
    )


def format_values(report: ValueReport) -> str:
    """The value figures as lines for the evaluation's output."""
    lines = [
        f"value examples: {report.tips} (nlu/data/values.yml, built-in rules)",
        "time right (±1 min)".ljust(22) + f"{report.time_accuracy:.3f}".rjust(12),
        "  of tips with a time".ljust(22) + f"{report.times_right / report.times_expected:.3f}".rjust(12)
        if report.times_expected
        else "  of tips with a time".ljust(22) + "-".rjust(12),
        "place precision".ljust(22) + f"{report.place_precision:.3f}".rjust(12),
        "place recall".ljust(22) + f"{report.place_recall:.3f}".rjust(12),
    ]
    lines += [f"[values] {miss}" for miss in report.misses]
    return "\n".join(lines)
