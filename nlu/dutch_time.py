"""When a tipster saw something: Dutch (and some English) time phrases resolved against the message time.

dateparser alone is silently wrong for common Dutch tip phrases ("om 9 uur" becomes nine hours ago,
"gisteren om 22.00 uur" the day before yesterday; see RASA.md) and knows nothing of "vanochtend" or
"een kwartier geleden". So our own rules come first; dateparser only reads what they leave (explicit dates
such as "3 maart" or "12-11"). Every value is a timezone-aware datetime in Europe/Amsterdam.

Choices where Dutch is vague (documented here because the control room reads the result):
- a part of the day alone is its typical hour: ochtend 09:00, middag 14:00, avond 20:00, nacht 03:00;
  when that hour is still to come but the part of the day has begun, the message time is used.
- "vannacht" and "gisternacht" both mean the night that ended this morning (colloquial "last night").
- a clock hour of 1..12 with no part of the day: today, the most recent past reading (9 or 21);
  on an earlier day, the daytime reading (07:00..18:59).
- a day alone ("gisteren", "maandag", "eerder vandaag") keeps the clock time of the message, as
  dateparser does, but is marked `vague`: it says nothing of the hour, so `seen_time` gives no moment
  for it (only its phrase), unless a clock elsewhere in the text ("gisteren ... om 22.00") completes it.
- a clock time with no day is the latest such moment not after the message (allowing FUTURE_TOLERANCE
  of clock skew): "om kwart over 3" sent at 00:55 is 15:15 yesterday, not 03:15 still to come.
- "net", "zojuist" next to a more precise time ("nu net 5 minuten geleden", "net om 14.50") is read as
  that time; alone it is the message time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from nlu.words import Words, matches_at, words_of

AMSTERDAM: Final = "Europe/Amsterdam"
# A clock time this far after the message still counts as today (phones and clocks disagree).
FUTURE_TOLERANCE: Final = timedelta(minutes=15)
MAX_TEXT: Final = 2000
# An explicit date further back than this is a misreading, not a tip.
MAX_AGE: Final = timedelta(days=366)

NUMBER_WORDS: Final[dict[str, int]] = {
    "een": 1, "één": 1, "eén": 1, "one": 1, "twee": 2, "two": 2, "drie": 3, "three": 3, "vier": 4,
    "four": 4, "vijf": 5, "five": 5, "zes": 6, "six": 6, "zeven": 7, "seven": 7, "acht": 8, "eight": 8,
    "negen": 9, "nine": 9, "tien": 10, "ten": 10, "elf": 11, "eleven": 11, "twaalf": 12, "twelve": 12,
    "dertien": 13, "veertien": 14, "vijftien": 15, "fifteen": 15, "twintig": 20, "twenty": 20,
    "vijfentwintig": 25, "dertig": 30, "thirty": 30, "veertig": 40, "forty": 40, "vijftig": 50,
    "fifty": 50, "zestig": 60, "sixty": 60,
}
_NUM = r"(?:\d{1,3}|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + r")"
_HOUR = r"(?:\d{1,2}|" + "|".join(k for k, v in NUMBER_WORDS.items() if v <= 12) + r")"

# Part of the day: (start hour, typical hour, end hour) with end exclusive.
PARTS: Final[dict[str, tuple[int, int, int]]] = {
    "ochtend": (6, 9, 12),
    "middag": (12, 14, 18),
    "avond": (18, 20, 24),
    "nacht": (0, 3, 6),
}
_PART_WORDS: Final[dict[str, str]] = {
    "ochtend": "ochtend", "morgen": "ochtend", "middag": "middag", "avond": "avond", "nacht": "nacht",
    "morning": "ochtend", "afternoon": "middag", "evening": "avond", "night": "nacht",
}
WEEKDAYS: Final[dict[str, int]] = {
    "maandag": 0, "dinsdag": 1, "woensdag": 2, "donderdag": 3, "vrijdag": 4, "zaterdag": 5, "zondag": 6,
    "monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5, "sunday": 6,
}
_WEEKDAY = "|".join(WEEKDAYS)
_UNIT_MINUTES: Final[dict[str, float]] = {
    "sec": 1 / 60, "seconde": 1 / 60, "seconden": 1 / 60, "seconds": 1 / 60,
    "min": 1, "mins": 1, "minuut": 1, "minuten": 1, "minuutje": 1, "minuutjes": 1, "minute": 1, "minutes": 1,
    "m": 1, "kwartier": 15, "kwartiertje": 15, "uur": 60, "uurtje": 60, "uurtjes": 60, "uren": 60,
    "u": 60, "hour": 60, "hours": 60, "hr": 60, "hrs": 60, "dag": 1440, "dagen": 1440, "day": 1440,
    "days": 1440, "week": 10080, "weken": 10080, "weeks": 10080,
}
_UNIT = r"(?:" + "|".join(sorted(_UNIT_MINUTES, key=len, reverse=True)) + r")"


@dataclass(frozen=True)
class TimeMention:
    """A time phrase in a text, its span and the moment it means."""

    start: int
    end: int
    text: str
    value: datetime
    approximate: bool = False
    # A day alone: `value` carries the message's clock time, not a time the text gives.
    vague: bool = False
    parts: tuple[_Part, ...] = field(default=(), repr=False, compare=False)


@dataclass(frozen=True)
class SeenTime:
    """When a tip says something was seen: the phrase as written and the moment, None when unresolved."""

    phrase: str
    value: datetime | None
    approximate: bool = False


@dataclass(frozen=True)
class _Part:
    start: int
    end: int
    kind: str  # "relative", "now", "day", "daypart", "clock"
    approximate: bool = False
    delta: timedelta | None = None  # relative: how long ago
    day_offset: int | None = None  # day: 0 today, 1 yesterday, ...
    weekday: int | None = None  # day: 0 Monday .. 6 Sunday
    strict_past_weekday: bool = False  # "afgelopen maandag" is never today
    daypart: str | None = None
    hour: int | None = None
    minute: int = 0
    ambiguous: bool = False  # hour 1..12 that may be am or pm
    pm: bool | None = None  # English am/pm


_F = re.IGNORECASE
_APPROX = r"(?:rond|rondom|omstreeks|ongeveer|ong\.?|ca\.?|circa|zo'?n|tegen|around|about|ish)"

_RELATIVE = re.compile(
    r"(?<![\w-])(?P<q>(?:(?:ruim|bijna|ongeveer|zo'?n|nog\s+geen|about|almost)\s+)?"
    r"(?:een\s+half|een\s+halve|half\s+an|half\s+a|half|anderhalf|anderhalve|een\s+paar|paar|enkele|a\s+few|few|"
    r"een|één|an?|" + _NUM + r"))?\s*(?P<u>" + _UNIT + r")\.?(?:\s+(?:of\s+)?(?P<n2>\d{1,3}))?"
    r"\s+(?:geleden|terug|hiervoor|ago)(?![\w-])",
    _F,
)
_QUARTER_AGO = re.compile(r"(?<![\w-])(?:a\s+)?quarter\s+of\s+an\s+hour\s+ago(?![\w-])", _F)
_JUST_NOW = re.compile(
    r"(?<![\w-])(?:zojuist|zonet|zo\s+net|daarnet|daar\s+net|zo-?even|zoëven|nu\s+net|net(?!\s+(?:als|zo|"
    r"iets|wat|niet|als|over))|op\s+dit\s+moment|just\s+now|right\s+now|a\s+moment\s+ago)(?![\w-])",
    _F,
)
_DAY_WORDS = re.compile(
    r"(?<![\w-])(?:(?P<van>van|this)\s*(?P<vpart>ochtend|morgen|middag|avond|nacht|morning|afternoon|evening)"
    r"|(?P<gister>gister(?:en)?|yesterday)\s*(?P<gpart>ochtend|morgen|middag|avond|nacht|morning|afternoon|"
    r"evening|night)?"
    r"|(?P<eer>eergister(?:en)?)\s*(?P<epart>ochtend|morgen|middag|avond|nacht)?"
    r"|(?P<vandaag>vandaag|today)"
    r"|(?P<tonight>tonight)|(?P<lastnight>last\s+night)"
    r"|(?:(?P<afg>afgelopen|vorige|last|past)\s+)?(?P<wd>" + _WEEKDAY + r")"
    r"\s*(?P<wpart>ochtend|morgen|middag|avond|nacht|morning|afternoon|evening|night)?"
    r"|(?P<s>['’]s\s*|des\s+)(?P<spart>ochtends|morgens|middags|avonds|nachts)"
    r"|(?:in|tijdens)\s+de\s+(?P<inpart>ochtend|middag|avond|nacht)"
    r"|(?:in\s+the\s+|at\s+)(?P<enpart>morning|afternoon|evening|night))(?![\w-])",
    _F,
)
_CLOCK_NUMERIC = re.compile(
    r"(?<![\w.:,-])(?P<pre>(?:(?:om|rond|rondom|omstreeks|ongeveer|tegen|ca\.?|circa|at|around|about|"
    r"vanaf|sinds)\s+(?:de\s+klok\s+van\s+)?)?)"
    r"(?P<h>\d{1,2})(?:(?P<sep>[:.])(?P<m>\d{2})|(?P<u>\s*u(?:ur)?)(?:\s*(?P<um>\d{2})(?!\d))?)"
    r"(?P<suffix>\s*uur|\s*u(?![\w]))?(?:\s*(?P<ampm>[ap]\.?m\.?))?(?![\w:]|\.\d)",
    _F,
)
_CLOCK_TRIGGERED = re.compile(
    r"(?<![\w-])(?P<pre>om|rond|rondom|omstreeks|tegen|at|around)\s+(?:een\s+uur\s+of\s+)?"
    r"(?P<h>" + _HOUR + r")(?:\s*(?P<ampm>[ap]\.?m\.?|uur))?"
    r"(?![\w:.,]\d?)(?!\s*(?:min|minuten|minuut|mins|minutes|dagen|days|weken|meter|m\b|km|personen|man|"
    r"mannen|jongens|mensen|auto|euro|keer|over|voor|past|to)\b)",
    _F,
)
_UUR_OF = re.compile(r"(?<![\w-])(?:een\s+)?uur\s+of\s+(?P<h>" + _HOUR + r")(?![\w-])", _F)
_WORD_HOUR = re.compile(r"(?<![\w-])(?P<h>" + _HOUR + r")\s+uur(?!\s*(?:geleden|terug|ago))(?![\w-])", _F)
_HALF_PAST = re.compile(
    r"(?<![\w-])(?P<what>half|quarter|" + _NUM + r")\s+(?P<dir>past|to)\s+(?P<h>" + _HOUR + r")"
    r"(?:\s*(?P<ampm>[ap]\.?m\.?))?(?![\w-])",
    _F,
)
_DUTCH_OVER = re.compile(
    r"(?<![\w-])(?:(?P<m>kwart|" + _NUM + r")\s+(?P<dir>over|voor)\s+)?(?P<half>half\s+)?"
    r"(?P<h>" + _HOUR + r")(?P<uur>\s+uur)?(?![\w-])",
    _F,
)


def find_times(text: str, received_at: datetime, tz: str = AMSTERDAM) -> list[TimeMention]:
    """Every time phrase in `text`, resolved against `received_at` (aware), in order of appearance."""
    return find_times_in(text, received_at, tz, words_of(text[:MAX_TEXT]))


def find_times_in(text: str, received_at: datetime, tz: str, words: Words) -> list[TimeMention]:
    """`find_times` for a caller that has the words of `text` already (`nlu.words.words_of`)."""
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    zone = ZoneInfo(tz)
    now = received_at.astimezone(zone)
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT]
        words = words_of(text)  # the cut can end a word early ("netto" → "net")
    present = words.present
    has_digit = _DIGIT.search(text) is not None
    mentions = _explicit_dates(text, now, words) if has_digit or "week" in present else []
    parts = _scan(text, [(m.start, m.end) for m in mentions], words, has_digit)
    for group in _group(text, parts):
        value = _resolve(group, now)
        if value is None:
            continue
        start, end = group[0].start, group[-1].end
        approx = any(p.approximate for p in group if p.kind != "now" or len(group) == 1)
        mentions.append(TimeMention(start, end, text[start:end], value, approx, _vague(group), tuple(group)))
    mentions.sort(key=lambda m: m.start)
    return mentions


def seen_time(mentions: list[TimeMention], received_at: datetime, tz: str = AMSTERDAM) -> SeenTime | None:
    """The one time a tip's mentions (`find_times`) say something was seen: its phrase, and its moment.

    The most precise mention wins (a clock or a time ago over a part of the day, that over "net", that
    over a day alone). A day without a clock and a clock without a day elsewhere in the text are read
    together ("gisteren zag ik hem, om 22.00 bij de Hema"). A day alone gives its phrase and no moment.
    """
    if not mentions:
        return None
    now = received_at.astimezone(ZoneInfo(tz))
    best = min(mentions, key=_precision)
    kinds = {p.kind for p in best.parts}
    if best.parts and "clock" in kinds and not kinds & {"day", "relative"}:
        day = next((m for m in mentions if m is not best and _day_without_clock(m)), None)
        if day is not None:
            pair = sorted((day, best), key=lambda m: m.start)
            parts = sorted([*day.parts, *best.parts], key=lambda p: p.start)
            value = _resolve(parts, now)
            phrase = " … ".join(m.text for m in pair)
            return SeenTime(phrase, _past(value, now), any(m.approximate for m in pair))
    if best.vague:
        return SeenTime(best.text, None, True)
    return SeenTime(best.text, _past(best.value, now), best.approximate)


def _past(value: datetime | None, now: datetime) -> datetime | None:
    # Nobody saw something later than they wrote about it ("vanavond" at two in the afternoon).
    return value if value is not None and value <= now + FUTURE_TOLERANCE else None


def _day_without_clock(mention: TimeMention) -> bool:
    kinds = {p.kind for p in mention.parts}
    return bool(kinds & {"day", "daypart"}) and not kinds & {"clock", "relative"}


def _precision(mention: TimeMention) -> tuple[int, int]:
    kinds = {p.kind for p in mention.parts}
    if mention.vague:
        rank = 4
    elif kinds & {"clock", "relative"} or not mention.parts:  # an explicit date with a clock
        rank = 0
    elif kinds & {"daypart"} or any(p.daypart for p in mention.parts):
        rank = 2
    else:
        rank = 3  # "net" alone
    return rank, mention.start


def find_time(text: str, received_at: datetime, tz: str = AMSTERDAM) -> TimeMention | None:
    """The first time phrase in `text`, or None."""
    found = find_times(text, received_at, tz)
    return found[0] if found else None


def resolve_time(phrase: str, received_at: datetime, tz: str = AMSTERDAM) -> datetime | None:
    """The moment a time phrase means, or None when it holds no time."""
    found = find_time(phrase, received_at, tz)
    return found.value if found else None


# --- scanning ----------------------------------------------------------------------------------------


def _number(word: str) -> int | None:
    word = word.lower()
    if word.isdigit():
        return int(word)
    return NUMBER_WORDS.get(word)


def _free(taken: list[tuple[int, int]], start: int, end: int) -> bool:
    return all(end <= s or start >= e for s, e in taken)


_DIGIT = re.compile(r"\d")
_APPROX_AMOUNT = re.compile(r"(ruim|bijna|ongeveer|zo'?n|about|almost|een paar|paar|enkele|a few|few)", _F)

# Most time rules match only where some words stand; knowing a text's words (nlu/words.py) lets _scan
# skip a rule or try it only where a match can begin, with the answers of a full scan.
# First: folded words of which a match of the rule holds at least one. Without any in the text the rule
# cannot match.
_AGO_WORDS: Final = frozenset({"geleden", "terug", "hiervoor", "ago"})
_PAST_TO: Final = frozenset({"past", "to"})
# _DUTCH_OVER also matches a bare hour, which _dutch_clock then refuses.
_OVER_VOOR_HALF: Final = frozenset({"over", "voor", "half"})
_NOW_WORDS: Final = frozenset(
    {"zojuist", "zonet", "net", "daarnet", "zo-even", "zoeven", "zoëven", "moment", "now"}
)


def _day_tokens() -> frozenset[str]:
    """Every word one of _DAY_WORDS' matches can hold: a day, a part of the day, or both run together."""
    parts = ("ochtend", "morgen", "middag", "avond", "nacht", "morning", "afternoon", "evening", "night")
    days = ("van", "this", "gister", "gisteren", "yesterday", "eergister", "eergisteren", *WEEKDAYS)
    alone = ("gister", "gisteren", "yesterday", "eergister", "eergisteren", "vandaag", "today", "tonight")
    s_parts = ("ochtends", "morgens", "middags", "avonds", "nachts")  # 's avonds, 'savonds, des avonds
    joined = [d + p for d in days for p in parts] + ["s" + p for p in s_parts]
    return frozenset([*parts, *alone, *WEEKDAYS, *s_parts, *joined])


_DAY_TOKENS: Final = _day_tokens()

# Then: the folded words a rule's matches begin with, and whether they can also begin with a digit
# (str.isdecimal() is what \d matches). Every rule here starts after (?<![\w-]) or (?<![\w.:,-]).
_NUMBERS: Final = frozenset(NUMBER_WORDS)
_TRIGGERS: Final = frozenset({"om", "rond", "rondom", "omstreeks", "tegen", "at", "around"})
_CLOCK_PRE: Final = frozenset(
    ("om", "rond", "rondom", "omstreeks", "ongeveer", "tegen", "ca", "circa", "at", "around", "about")
    + ("vanaf", "sinds")
)
_BEGINS: Final[dict[re.Pattern[str], tuple[frozenset[str], bool]]] = {
    _HALF_PAST: (_NUMBERS | {"half", "quarter"}, True),
    _DUTCH_OVER: (_NUMBERS | {"kwart", "half"}, True),
    _CLOCK_NUMERIC: (_CLOCK_PRE, True),
    _UUR_OF: (frozenset({"een", "uur"}), False),
    _CLOCK_TRIGGERED: (_TRIGGERS, False),
    _WORD_HOUR: (_NUMBERS, True),
    _JUST_NOW: (
        frozenset({"zojuist", "zonet", "zo", "daarnet", "daar", "zo-even", "zoeven", "zoëven", "nu", "net"})
        | {"op", "just", "right", "a"},
        False,
    ),
}


def _starts(pattern: re.Pattern[str], words: Words) -> list[int]:
    first, digit = _BEGINS[pattern]
    return [at for at, w in words.at if w in first or digit and w[0].isdecimal()]


def _matches(pattern: re.Pattern[str], text: str, words: Words) -> list[re.Match[str]]:
    return matches_at(pattern, text, _starts(pattern, words))


def _scan(text: str, taken: list[tuple[int, int]], words: Words, has_digit: bool) -> list[_Part]:
    present = words.present
    parts: list[_Part] = []
    taken = list(taken)

    def add(part: _Part) -> None:
        if part.end > part.start and _free(taken, part.start, part.end):
            parts.append(part)
            taken.append((part.start, part.end))

    ago = not present.isdisjoint(_AGO_WORDS)
    for m in _RELATIVE.finditer(text) if ago else ():
        delta = _relative_delta(m)
        if delta is not None:
            approx = bool(_APPROX_AMOUNT.match(m.group("q") or "")) or m.group("n2") is not None
            add(_Part(m.start(), m.end(), "relative", approximate=approx, delta=delta))
    for m in _QUARTER_AGO.finditer(text) if ago else ():
        add(_Part(m.start(), m.end(), "relative", delta=timedelta(minutes=15)))
    for m in _matches(_HALF_PAST, text, words) if not present.isdisjoint(_PAST_TO) else ():
        clock = _english_past_to(m)
        if clock is not None:
            add(clock)
    for m in _matches(_DUTCH_OVER, text, words) if not present.isdisjoint(_OVER_VOOR_HALF) else ():
        clock = _dutch_clock(m, text)
        if clock is not None:
            add(clock)
    for m in _matches(_CLOCK_NUMERIC, text, words) if has_digit else ():
        clock = _numeric_clock(m)
        if clock is not None:
            add(clock)
    uur = "uur" in present
    for m in _matches(_UUR_OF, text, words) if uur and "of" in present else ():
        hour = _number(m.group("h"))
        if hour is not None and 1 <= hour <= 12:
            add(_Part(m.start(), m.end(), "clock", approximate=True, hour=hour % 12, ambiguous=True))
    for m in _matches(_CLOCK_TRIGGERED, text, words) if not present.isdisjoint(_TRIGGERS) else ():
        hour = _number(m.group("h"))
        if hour is None or hour > 23:
            continue
        add(_clock_part(m.start(), m.end(), hour, 0, m.group("ampm"), m.group("pre")))
    for m in _matches(_WORD_HOUR, text, words) if uur else ():
        hour = _number(m.group("h"))
        if hour is not None and hour <= 23:
            add(_clock_part(m.start(), m.end(), hour, 0, None, ""))
    for m in _DAY_WORDS.finditer(text) if not present.isdisjoint(_DAY_TOKENS) else ():
        add(_day_part(m))
    for m in _matches(_JUST_NOW, text, words) if not present.isdisjoint(_NOW_WORDS) else ():
        add(_Part(m.start(), m.end(), "now", approximate=True, delta=timedelta(0)))
    parts.sort(key=lambda p: p.start)
    return parts


_AMOUNT_WORD = re.compile(r"^(ruim|bijna|ongeveer|zo'?n|nog\s+geen|about|almost)\s+")
_SPACES = re.compile(r"\s+")


def _relative_delta(m: re.Match[str]) -> timedelta | None:
    q = (m.group("q") or "een").lower()  # "kwartiertje geleden": one
    q = _AMOUNT_WORD.sub("", q)
    q = _SPACES.sub(" ", q)
    unit = _UNIT_MINUTES[m.group("u").lower()]
    amount: float
    if q in ("een half", "een halve", "half an", "half a", "half"):
        amount = 0.5
    elif q in ("anderhalf", "anderhalve"):
        amount = 1.5
    elif q in ("een paar", "paar", "enkele", "a few", "few"):
        amount = 3 if unit < 60 else 2
    elif q in ("een", "één", "a", "an"):
        amount = 1
    else:
        n = _number(q)
        if n is None:
            return None
        amount = n
    if m.group("n2") is not None:  # "een minuut of 10 geleden"
        amount = int(m.group("n2"))
    minutes = amount * unit
    if minutes > 60 * 24 * 60:
        return None
    return timedelta(minutes=minutes)


_APPROX_WORD = re.compile(_APPROX, _F)
_APPROX_BEFORE = re.compile(r"(?:" + _APPROX + r"|om)\s+$", _F)


def _clock_part(start: int, end: int, hour: int, minute: int, ampm: str | None, pre: str | None) -> _Part:
    approx = bool(pre and _APPROX_WORD.fullmatch(pre.strip()))
    pm: bool | None = None
    if ampm and ampm.lower().startswith(("a", "p")):
        pm = ampm.lower().startswith("p")
    ambiguous = pm is None and 1 <= hour <= 12
    if pm is not None:
        hour = hour % 12 + (12 if pm else 0)
    return _Part(start, end, "clock", approximate=approx, hour=hour % 24, minute=minute,
                 ambiguous=ambiguous, pm=pm)


def _numeric_clock(m: re.Match[str]) -> _Part | None:
    hour = int(m.group("h"))
    minute_text = m.group("m") or m.group("um")
    minute = int(minute_text) if minute_text else 0
    if hour > 24 or minute > 59:
        return None
    hour %= 24
    has_uur = bool(m.group("u") or m.group("suffix"))
    if m.group("sep") == "." and not (has_uur or m.group("pre") or len(m.group("h")) == 2):
        return None  # "1.80 lang" is a height, not a time
    if m.group("sep") is None and not (has_uur or m.group("ampm")):
        return None
    if m.group("u") and not m.group("um") and not m.group("suffix") and m.group("u").strip().lower() == "u":
        # "9 u" alone is fine; "9u" too: Dutch shorthand for uur
        pass
    part = _clock_part(m.start(), m.end(), hour, minute, m.group("ampm"), m.group("pre"))
    if len(m.group("h")) == 2 and m.group("h").startswith("0") and part.pm is None:
        # "09.15" is written on a 24-hour clock
        return _Part(part.start, part.end, "clock", part.approximate, hour=hour, minute=minute)
    return part


def _english_past_to(m: re.Match[str]) -> _Part | None:
    hour = _number(m.group("h"))
    what = m.group("what").lower()
    minutes = 30 if what == "half" else 15 if what == "quarter" else _number(what)
    if hour is None or minutes is None or hour > 12 or minutes >= 60:
        return None
    total = hour * 60 + (minutes if m.group("dir").lower() == "past" else -minutes)
    return _clock_part(m.start(), m.end(), (total // 60) % 24, total % 60, m.group("ampm"), "")


def _dutch_clock(m: re.Match[str], text: str) -> _Part | None:
    hour = _number(m.group("h"))
    if hour is None or hour > 12 and (m.group("half") or m.group("m")):
        return None
    if hour > 23:
        return None
    if not (m.group("m") or m.group("half")):
        return None  # a bare number or "N uur" is handled by the stricter rules
    total = hour * 60
    if m.group("half"):
        total -= 30
    if m.group("m"):
        minutes = 15 if m.group("m").lower() == "kwart" else _number(m.group("m"))
        if minutes is None or minutes >= 30 and not m.group("half") or minutes >= 60:
            return None
        total += minutes if m.group("dir").lower() == "over" else -minutes
    start = m.start()
    pre = _APPROX_BEFORE.search(text[max(0, start - 12) : start])
    if pre is not None:
        start -= len(pre.group(0))
    total %= 24 * 60
    return _clock_part(start, m.end(), total // 60, total % 60, None, pre.group(0) if pre else "")


def _day_part(m: re.Match[str]) -> _Part:
    g = m.groupdict()
    start, end = m.start(), m.end()
    if g["van"]:
        return _Part(start, end, "day", day_offset=0, daypart=_PART_WORDS[g["vpart"].lower()])
    if g["gister"]:
        part = _PART_WORDS[g["gpart"].lower()] if g["gpart"] else None
        if part == "nacht":  # "gisternacht": the night that ended this morning
            return _Part(start, end, "day", day_offset=0, daypart="nacht")
        return _Part(start, end, "day", day_offset=1, daypart=part)
    if g["eer"]:
        part = _PART_WORDS[g["epart"].lower()] if g["epart"] else None
        return _Part(start, end, "day", day_offset=2, daypart=part)
    if g["vandaag"]:
        return _Part(start, end, "day", day_offset=0)
    if g["tonight"]:
        return _Part(start, end, "day", day_offset=0, daypart="avond")
    if g["lastnight"]:
        return _Part(start, end, "day", day_offset=1, daypart="avond")
    if g["wd"]:
        part = _PART_WORDS[g["wpart"].lower()] if g["wpart"] else None
        return _Part(start, end, "day", weekday=WEEKDAYS[g["wd"].lower()], daypart=part,
                     strict_past_weekday=bool(g["afg"]))
    word = (g["spart"] or g["inpart"] or g["enpart"] or "").lower().rstrip("s")
    return _Part(start, end, "daypart", daypart=_PART_WORDS[word])


# --- grouping and resolving -------------------------------------------------------------------------

_GLUE = re.compile(
    r"[\s,]*(?:(?:om|rond|rondom|omstreeks|ongeveer|tegen|circa|ca\.?|zo'?n|in\s+de|op|van|de|het|en|at|"
    r"around|about|in|on|at\s+about|'s|des|tijdens)[\s,]+)*[\s,]*",
    _F,
)


def _group(text: str, parts: list[_Part]) -> list[list[_Part]]:
    groups: list[list[_Part]] = []
    for part in parts:
        if groups:
            last = groups[-1]
            kinds = {p.kind for p in last}
            glued = _GLUE.fullmatch(text[last[-1].end : part.start]) is not None
            # "nu net 5 minuten geleden", "net om 14.50": the just-now word goes with the precise time.
            if glued and (part.kind == "now" and "now" not in kinds or kinds == {"now"}):
                last.append(part)
                continue
            joinable = (
                part.kind != "relative"
                and "relative" not in kinds
                and part.kind not in kinds
                and not (part.kind == "daypart" and any(p.daypart for p in last))
                and not (part.kind == "day" and any(p.daypart for p in last) and part.daypart)
                and _GLUE.fullmatch(text[last[-1].end : part.start]) is not None
            )
            if joinable:
                last.append(part)
                continue
        groups.append([part])
    return groups


def _vague(group: list[_Part]) -> bool:
    """A day alone: no clock, no part of the day, no time ago."""
    kinds = {p.kind for p in group}
    return "day" in kinds and kinds <= {"day", "now"} and not any(p.daypart for p in group)


def _resolve(group: list[_Part], now: datetime) -> datetime | None:
    relative = next((p for p in group if p.kind == "relative"), None)
    if relative is None and all(p.kind == "now" for p in group):
        relative = group[0]
    group = [p for p in group if p.kind != "now"]
    if relative is not None and relative.delta is not None:
        # In UTC: aware arithmetic in one zone is wall-clock arithmetic, wrong across a DST switch.
        return (now.astimezone(UTC) - relative.delta).astimezone(now.tzinfo)
    day = next((p for p in group if p.kind == "day"), None)
    clock = next((p for p in group if p.kind == "clock"), None)
    daypart = next((p.daypart for p in group if p.daypart), None)
    the_day: date | None = None
    if day is not None:
        the_day = _day_of(day, now)
    if clock is not None and clock.hour is not None:
        return _with_clock(the_day, daypart, clock, now)
    if daypart is not None:
        return _with_daypart(the_day, daypart, now, explicit_day=day is not None)
    if the_day is not None:
        return _at(the_day, now.time().replace(tzinfo=None), now)
    return None


def _at(day: date, clock: time, now: datetime) -> datetime:
    assert now.tzinfo is not None
    return datetime.combine(day, clock, tzinfo=now.tzinfo)


def _day_of(day: _Part, now: datetime) -> date:
    today = now.date()
    if day.weekday is not None:
        back = (today.weekday() - day.weekday) % 7
        if back == 0 and day.strict_past_weekday:
            back = 7
        return today - timedelta(days=back)
    return today - timedelta(days=day.day_offset or 0)


def _with_daypart(day: date | None, daypart: str, now: datetime, *, explicit_day: bool) -> datetime:
    start_h, typical_h, _ = PARTS[daypart]
    today = now.date()
    if day is None:
        # "'s avonds" alone: the most recent such part of the day
        day = today
        if now.hour < start_h:
            day = today - timedelta(days=1)
    value = _at(day, time(typical_h), now)
    if value > now and day == today and now.hour >= start_h:
        return now
    if value > now and not explicit_day:
        return _at(day - timedelta(days=1), time(typical_h), now)
    return value


def _hour_in_daypart(hour: int, daypart: str) -> tuple[int, int]:
    """A 12-hour clock hour read inside a part of the day: (hour, days to add)."""
    if daypart == "ochtend":
        return hour % 12, 0
    if daypart == "middag":
        return (hour if hour == 12 else hour % 12 + 12) if hour <= 12 else hour, 0
    if daypart == "avond":
        return (0, 1) if hour == 12 else (hour + 12 if hour < 12 else hour, 0)
    # nacht: small hours belong to the night's morning; 9..11 are the evening before it
    if hour >= 7:
        return hour % 12 + 12, -1
    return hour % 12, 0


def _with_clock(day: date | None, daypart: str | None, clock: _Part, now: datetime) -> datetime:
    assert clock.hour is not None
    hour, minute = clock.hour, clock.minute
    shift = 0
    if daypart is not None and clock.ambiguous:
        hour, shift = _hour_in_daypart(hour if hour else 12, daypart)
    elif daypart == "nacht" and hour >= 18:
        shift = -1
    if day is None and daypart is not None:
        day = now.date()
        base = _at(day, time(hour, minute), now) + timedelta(days=shift)
        if base > now + FUTURE_TOLERANCE:
            day = day - timedelta(days=1)
    if day is not None:
        if clock.ambiguous and daypart is None:
            if day == now.date():
                return _most_recent(now, [hour % 12, hour % 12 + 12], minute, only_today=day)
            hour = hour % 12 + 12 if hour % 12 < 7 else hour % 12
        return _at(day, time(hour, minute), now) + timedelta(days=shift)
    hours = [hour % 12, hour % 12 + 12] if clock.ambiguous else [hour]
    return _most_recent(now, hours, minute)


def _most_recent(now: datetime, hours: list[int], minute: int, only_today: date | None = None) -> datetime:
    """The latest of these clock times that is not (much) after `now`, today or yesterday."""
    today = now.date()
    candidates = []
    for d in (today, today - timedelta(days=1)):
        if only_today is not None and d != only_today:
            continue
        for h in hours:
            value = _at(d, time(h % 24, minute), now)
            if value <= now + FUTURE_TOLERANCE:
                candidates.append(value)
    if not candidates:  # only_today and every reading still to come: the earliest one
        return _at(today, time(min(hours) % 24, minute), now)
    return max(candidates)


# --- dateparser for what the rules leave --------------------------------------------------------------

_MONTHS = (
    r"jan(?:uari)?|feb(?:ruari)?|maart|mrt|apr(?:il)?|mei|jun[i]?|jul[i]?|aug(?:ustus)?|sep(?:t(?:ember)?)?|"
    r"okt(?:ober)?|nov(?:ember)?|dec(?:ember)?|january|february|march|may|june|july|august|october|december"
)
_DATE_CUE = re.compile(
    r"(?<![\w-])(?:\d{1,2}\s+(?:" + _MONTHS + r")(?:\s+\d{4})?|\d{1,2}[-/]\d{1,2}(?:[-/]\d{2,4})?|"
    r"vorige\s+week|last\s+week)(?:\s+(?:om\s+)?\d{1,2}[:.]\d{2}(?:\s*uur)?)?(?![\w-])",
    _F,
)

_DATE_CLOCK = re.compile(r"\d[:.]\d{2}")

_BEGINS[_DATE_CUE] = (frozenset({"vorige", "last"}), True)


def _explicit_dates(text: str, now: datetime, words: Words) -> list[TimeMention]:
    """Explicit dates ("3 maart om 14:00", "12-11"), read by dateparser; cheap when there are none."""
    matches = _matches(_DATE_CUE, text, words)
    if not matches:
        return []
    import dateparser  # slow to import; only needed for the rare explicit date

    settings = {
        "RELATIVE_BASE": now.replace(tzinfo=None),
        "PREFER_DATES_FROM": "past",
        "TIMEZONE": str(now.tzinfo),
        "RETURN_AS_TIMEZONE_AWARE": True,
        "DATE_ORDER": "DMY",
    }
    found = []
    for match in matches:
        try:
            value = dateparser.parse(match.group(0), languages=["nl", "en"], settings=settings)
        except (ValueError, OverflowError, TypeError):
            continue
        # dateparser reads "12-13" as the year 1913: a tip speaks of the past year, not of history.
        if value is not None and now - MAX_AGE <= value <= now + timedelta(days=1):
            value = value.astimezone(now.tzinfo)
            vague = _DATE_CLOCK.search(match.group(0)) is None
            found.append(TimeMention(match.start(), match.end(), match.group(0), value, vague=vague))
    return found
