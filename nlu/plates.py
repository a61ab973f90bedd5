"""Dutch licence plates: the fourteen sidecodes (RDW), validation, normalisation and finding them in text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

# Sidecode number → groups, L = letter, D = digit. Without dashes every layout is unique, so a plate
# typed as "12abc3" can still be read.
SIDECODES: Final[dict[int, tuple[str, ...]]] = {
    1: ("LL", "DD", "DD"),
    2: ("DD", "DD", "LL"),
    3: ("DD", "LL", "DD"),
    4: ("LL", "DD", "LL"),
    5: ("LL", "LL", "DD"),
    6: ("DD", "LL", "LL"),
    7: ("DD", "LLL", "D"),
    8: ("D", "LLL", "DD"),
    9: ("LL", "DDD", "L"),
    10: ("L", "DDD", "LL"),
    11: ("LLL", "DD", "L"),
    12: ("L", "DD", "LLL"),
    13: ("D", "LL", "DDD"),
    14: ("DDD", "LL", "D"),
}
_BY_SHAPE: Final[dict[str, int]] = {"".join(groups): code for code, groups in SIDECODES.items()}
# From sidecode 4 on the RDW issues no vowels and no C or Q (no words, no confusion with 0 and G).
_MODERN_LETTERS: Final = frozenset("BDFGHJKLNPRSTVXZ")
# Combinations the RDW never issues.
_NEVER_ISSUED: Final = frozenset(
    {"GVD", "KKK", "KVT", "LPF", "NSB", "PKK", "PSV", "TBS", "SS", "SD", "PVV", "SGP", "VVD"}
)

_SEPARATOR = re.compile(r"[-\s]")
_SIX = re.compile(r"[A-Z0-9]{6}")
_LETTERS = re.compile(r"[A-Z]+")
_CANDIDATE = re.compile(
    r"(?<![\w-])(?:"
    r"(?P<dashed>[A-Za-z0-9]{1,3}-[A-Za-z0-9]{1,3}-[A-Za-z0-9]{1,3})"
    r"|(?P<spaced>[A-Z0-9]{1,3} [A-Z0-9]{1,3} [A-Z0-9]{1,3})"
    r"|(?P<compact>[A-Za-z0-9]{6})"
    r")(?![\w-])"
)


class InvalidPlate(ValueError):
    """Not a Dutch licence plate of any sidecode."""


@dataclass(frozen=True)
class PlateMention:
    """A plate found in a text: its span, normalised value and sidecode."""

    start: int
    end: int
    text: str
    value: str
    sidecode: int
    valid: bool


def _shape(chars: str) -> str:
    return "".join("D" if c.isdigit() else "L" for c in chars)


def sidecode(plate: str, *, strict: bool = True) -> int:
    """The sidecode of a plate written with or without dashes; raises InvalidPlate.

    `strict=False` checks only the layout, not the RDW's letter rules: a tipster's "12-ABC-3" may be
    misread, and the control room still wants it.
    """
    raw = plate.strip().upper()
    groups = _SEPARATOR.split(raw) if _SEPARATOR.search(raw) else None
    chars = _SEPARATOR.sub("", raw)
    if not _SIX.fullmatch(chars):
        raise InvalidPlate(plate)
    code = _BY_SHAPE.get(_shape(chars))
    if code is None:
        raise InvalidPlate(plate)
    if groups is not None and tuple(_shape(g) for g in groups) != SIDECODES[code]:
        raise InvalidPlate(plate)  # dashes in the wrong places: "1-2ABC-3" is no plate
    if not strict:
        return code
    letters = "".join(c for c in chars if c.isalpha())
    if code >= 4 and not set(letters) <= _MODERN_LETTERS:
        raise InvalidPlate(plate)
    if code >= 4 and any(bad in g for bad in _NEVER_ISSUED for g in _letter_groups(chars)):
        raise InvalidPlate(plate)
    return code


def _letter_groups(chars: str) -> list[str]:
    return _LETTERS.findall(chars)


def normalise_plate(plate: str, *, strict: bool = True) -> str:
    """`12bbj3` → `12-BBJ-3`; raises InvalidPlate."""
    code = sidecode(plate, strict=strict)
    chars = _SEPARATOR.sub("", plate.strip().upper())
    out, i = [], 0
    for group in SIDECODES[code]:
        out.append(chars[i : i + len(group)])
        i += len(group)
    return "-".join(out)


def is_plate(text: str) -> bool:
    """Whether `text` is a Dutch licence plate of some sidecode."""
    try:
        sidecode(text)
    except InvalidPlate:
        return False
    return True


def find_plates(text: str) -> list[PlateMention]:
    """Every licence plate in a free text, normalised.

    Written with dashes (or spaced, in capitals) the layout is enough; run together ("12bbj3") it must
    also follow the letter rules, or words such as "2uur30" would pass.
    """
    found = []
    for m in _CANDIDATE.finditer(text):
        raw = m.group(0)
        compact = m.group("compact") is not None
        if compact and (raw.isdigit() or raw.isalpha()):
            continue
        try:
            value = normalise_plate(raw, strict=compact)
        except InvalidPlate:
            continue
        found.append(PlateMention(m.start(), m.end(), raw, value, sidecode(raw, strict=False), is_plate(raw)))
    return found
