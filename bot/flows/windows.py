"""Weekly time windows for extra addresses: "ma-vr 09:00-17:00", "weekend", "mon,wed 8-12"."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import time

ALL_DAYS = "1234567"
_DAY_WORDS: dict[str, int] = {}
for _number, _words in enumerate(
    [
        ("ma", "maa", "maan", "maandag", "mo", "mon", "monday"),
        ("di", "din", "dins", "dinsdag", "tu", "tue", "tues", "tuesday"),
        ("wo", "woe", "woens", "woensdag", "we", "wed", "wednesday"),
        ("do", "don", "donder", "donderdag", "th", "thu", "thur", "thurs", "thursday"),
        ("vr", "vri", "vrij", "vrijdag", "fr", "fri", "friday"),
        ("za", "zat", "zaterdag", "sa", "sat", "saturday"),
        ("zo", "zon", "zondag", "su", "sun", "sunday"),
    ],
    start=1,
):
    for _word in _words:
        _DAY_WORDS[_word] = _number
_GROUP_WORDS = {
    "werkdagen": "12345",
    "doordeweeks": "12345",
    "weekdagen": "12345",
    "weekdays": "12345",
    "workdays": "12345",
    "weekend": "67",
    "weekends": "67",
    "dagelijks": ALL_DAYS,
    "daily": ALL_DAYS,
    "elke dag": ALL_DAYS,
    "iedere dag": ALL_DAYS,
    "alle dagen": ALL_DAYS,
    "every day": ALL_DAYS,
    "everyday": ALL_DAYS,
}
ALWAYS_WORDS = frozenset({"altijd", "always", "hele week", "24/7", "steeds", "all the time", "anytime"})
_TIME = r"(\d{1,2})(?:[:.h](\d{2}))?\s*(?:uur|u|hr|h)?"
_TIME_RANGE = re.compile(rf"(?:van\s+|from\s+)?{_TIME}\s*(?:-|tot|to|until|t/m)\s*{_TIME}")
_SEPARATORS = re.compile(r"\s*(?:,|;|/|&|\ben\b|\band\b|\s)\s*")
MAX_WINDOW_INPUT = 80


class InvalidWindow(ValueError):
    """Text that is not a weekly window we can read."""


@dataclass(frozen=True)
class Window:
    """Weekdays (ISO digits, Monday = 1) and a daily time range; end before start runs past midnight."""

    days: str
    start: time
    end: time


def is_always(text: str) -> bool:
    """Whether the person means "no window, always"."""
    return " ".join(text.casefold().split()).strip(" .!") in ALWAYS_WORDS


def parse_window(text: str) -> Window:
    """Read a weekly window. Raises InvalidWindow."""
    value = " ".join((text or "").casefold().replace("–", "-").replace("—", "-").split())
    if not value or len(value) > MAX_WINDOW_INPUT:
        raise InvalidWindow(text)
    start, end = time(0, 0), time(23, 59)
    match = _TIME_RANGE.search(value)
    if match:
        start = _time(match.group(1), match.group(2))
        end = _time(match.group(3), match.group(4))
        if start == end:
            raise InvalidWindow(text)
        value = (value[: match.start()] + " " + value[match.end() :]).strip()
    days = _days(value)
    if not match and not days:
        raise InvalidWindow(text)
    return Window(days=days or ALL_DAYS, start=start, end=end)


def format_window(window: Window, *, day_names: Sequence[str], every_day: str) -> str:
    """`ma-vr 09:00-17:00` in the person's language (`day_names` Monday first)."""
    hours = f"{window.start:%H:%M}-{window.end:%H:%M}"
    if window.days == ALL_DAYS:
        days = every_day
    else:
        digits = [int(d) for d in window.days]
        contiguous = len(digits) > 2 and digits == list(range(digits[0], digits[-1] + 1))
        if contiguous:
            days = f"{day_names[digits[0] - 1]}-{day_names[digits[-1] - 1]}"
        else:
            days = ", ".join(day_names[d - 1] for d in digits)
    if window.start == time(0, 0) and window.end == time(23, 59):
        return days
    return f"{days} {hours}"


def _time(hours: str, minutes: str | None) -> time:
    h, m = int(hours), int(minutes or 0)
    if h == 24 and m == 0:
        return time(23, 59)
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise InvalidWindow(f"{hours}:{minutes}")
    return time(h, m)


def _days(text: str) -> str:
    for phrase, digits in _GROUP_WORDS.items():
        if " " in phrase and phrase in text:
            text = text.replace(phrase, " ")
            return "".join(sorted(set(digits) | set(_days(text))))
    for word in (" t/m ", " tot ", " to ", " through ", " until ", " - "):
        text = text.replace(word, "-")
    chosen: set[int] = set()
    for token in (t for t in _SEPARATORS.split(text) if t):
        token = token.strip(".:")
        if not token:
            continue
        if token in _GROUP_WORDS:
            chosen.update(int(d) for d in _GROUP_WORDS[token])
            continue
        if "-" in token:
            first, _, last = token.partition("-")
            if first in _DAY_WORDS and last in _DAY_WORDS:
                a, b = _DAY_WORDS[first], _DAY_WORDS[last]
                chosen.update(range(a, b + 1) if a <= b else [*range(a, 8), *range(1, b + 1)])
                continue
            raise InvalidWindow(text)
        if token in _DAY_WORDS:
            chosen.add(_DAY_WORDS[token])
            continue
        raise InvalidWindow(text)
    return "".join(str(d) for d in sorted(chosen))
