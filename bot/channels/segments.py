"""SMS segment counting (GSM-7 and UCS-2), for keeping alerts short and for the cost report."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# GSM 03.38 default alphabet (the escape character 0x1B left out: it only introduces the extension table).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each of these costs two septets (escape + character).
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE = 160
GSM7_MULTI = 153  # 7 septets of each part go to the concatenation header
UCS2_SINGLE = 70
UCS2_MULTI = 67


class Encoding(StrEnum):
    """How an SMS is encoded on the air."""

    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True)
class SegmentCount:
    """How many SMS parts a text needs; `units` are septets (GSM-7) or UTF-16 code units (UCS-2)."""

    encoding: Encoding
    segments: int
    units: int


def is_gsm7(text: str) -> bool:
    """Whether every character of the text is in the GSM-7 alphabet or its extension table."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _char_units(text: str, encoding: Encoding) -> list[int]:
    if encoding is Encoding.GSM7:
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    # Characters outside the Basic Multilingual Plane (most emoji) are a surrogate pair: two units.
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def _pack(units: list[int], per_segment: int) -> int:
    # Greedy packing: an escape pair or a surrogate pair is never split across two parts, as phones do.
    segments, used = 1, 0
    for size in units:
        if used + size > per_segment:
            segments += 1
            used = 0
        used += size
    return segments


def count_segments(text: str) -> SegmentCount:
    """The encoding, number of parts and units an SMS with this text needs (an empty text is one part)."""
    encoding = Encoding.GSM7 if is_gsm7(text) else Encoding.UCS2
    units = _char_units(text, encoding)
    total = sum(units)
    single, multi = (GSM7_SINGLE, GSM7_MULTI) if encoding is Encoding.GSM7 else (UCS2_SINGLE, UCS2_MULTI)
    segments = 1 if total <= single else _pack(units, multi)
    return SegmentCount(encoding=encoding, segments=segments, units=total)
