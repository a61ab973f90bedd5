"""Dutch licence plates: every sidecode, valid and invalid, and finding plates in tips."""

from __future__ import annotations

import pytest

from nlu.plates import SIDECODES, InvalidPlate, find_plates, is_plate, normalise_plate, sidecode

VALID = [
    (1, "AB-12-34", "AB-12-34"),
    (2, "12-34-AB", "12-34-AB"),
    (3, "12-AB-34", "12-AB-34"),
    (4, "GB-12-HJ", "GB-12-HJ"),
    (5, "GB-HJ-12", "GB-HJ-12"),
    (6, "12-GB-HJ", "12-GB-HJ"),
    (7, "12-BBJ-3", "12-BBJ-3"),
    (8, "1-BBJ-23", "1-BBJ-23"),
    (9, "XN-542-F", "XN-542-F"),
    (10, "G-123-BB", "G-123-BB"),
    (11, "BBN-12-F", "BBN-12-F"),
    (12, "G-12-BBN", "G-12-BBN"),
    (13, "1-GB-234", "1-GB-234"),
    (14, "123-GB-4", "123-GB-4"),
    (7, "12bbj3", "12-BBJ-3"),
    (9, "xn542f", "XN-542-F"),
    (4, "gb 12 hj", "GB-12-HJ"),
    (13, " 1-gb-234 ", "1-GB-234"),
]

INVALID = [
    ("no letters", "12-34-56"),
    ("no digits", "AB-CD-EF"),
    ("seven characters", "12-BBJ-34"),
    ("five characters", "12-BB-3"),
    ("no sidecode has this layout", "1-2BBJ-3"),
    ("dashes in the wrong places", "12B-BJ-3"),
    ("vowel in a modern sidecode 7", "12-ABC-3"),
    ("C and Q never issued after sidecode 3", "GC-12-QJ"),
    ("vowel in sidecode 9", "XA-542-F"),
    ("combination never issued", "GVD-12-B"),
    ("SS never issued", "SS-12-BB"),
    ("punctuation", "12.BBJ.3"),
    ("empty", ""),
    ("a word", "hoodie"),
]


VALID_IDS = [f"{c}-{p.strip()}" for c, p, _ in VALID]


@pytest.mark.parametrize(("code", "plate", "normalised"), VALID, ids=VALID_IDS)
def test_valid_plates(code: int, plate: str, normalised: str) -> None:
    assert is_plate(plate)
    assert sidecode(plate) == code
    assert normalise_plate(plate) == normalised


def test_every_sidecode_has_a_valid_case() -> None:
    assert {c for c, _, _ in VALID} == set(SIDECODES)


@pytest.mark.parametrize(("why", "plate"), INVALID, ids=[w for w, _ in INVALID])
def test_invalid_plates(why: str, plate: str) -> None:
    assert not is_plate(plate)
    with pytest.raises(InvalidPlate):
        normalise_plate(plate)


def test_layout_only_keeps_a_misread_plate() -> None:
    assert normalise_plate("12-abc-3", strict=False) == "12-ABC-3"


FIND = [
    ("dashed", "de auto had kenteken 12-BBJ-3 en reed weg", ["12-BBJ-3"]),
    ("run together", "kenteken 12bbj3 gezien", ["12-BBJ-3"]),
    ("spaced capitals", "kenteken GB 12 HJ", ["GB-12-HJ"]),
    ("misread but dashed", "een auto met 12-ABC-3", ["12-ABC-3"]),
    ("two plates", "XN-542-F en daarachter G-123-BB", ["XN-542-F", "G-123-BB"]),
    ("time is no plate", "om 2uur30 gezien", []),
    ("lower-case words are no plate", "om 10 en 12 uur", []),
    ("height is no plate", "hij was 1.80 lang", []),
    ("a word is no plate", "zwarte hoodie", []),
]


@pytest.mark.parametrize(("why", "text", "plates"), FIND, ids=[w for w, _, _ in FIND])
def test_find_plates_in_text(why: str, text: str, plates: list[str]) -> None:
    found = find_plates(text)
    assert [p.value for p in found] == plates
    for p in found:
        assert text[p.start : p.end] == p.text


def test_found_plate_says_whether_it_is_valid() -> None:
    (misread,) = find_plates("12-ABC-3")
    (real,) = find_plates("12-BBJ-3")
    assert not misread.valid
    assert real.valid
