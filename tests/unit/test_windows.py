"""Weekly windows for extra addresses: reading what people type, writing it back."""

from __future__ import annotations

from datetime import time

import pytest

from bot.flows.windows import InvalidWindow, Window, format_window, is_always, parse_window

NL_DAYS = ["ma", "di", "wo", "do", "vr", "za", "zo"]


@pytest.mark.parametrize(
    ("text", "days", "start", "end"),
    [
        ("ma-vr 09:00-17:00", "12345", time(9), time(17)),
        ("Ma-Vr 9-17", "12345", time(9), time(17)),
        ("werkdagen 8.30-17.30", "12345", time(8, 30), time(17, 30)),
        ("ma t/m vr van 8.30 tot 17 uur", "12345", time(8, 30), time(17)),
        ("maandag tot vrijdag 9-17", "12345", time(9), time(17)),
        ("ma, wo en vr 8-12", "135", time(8), time(12)),
        ("za zo 10:00-16:00", "67", time(10), time(16)),
        ("weekend", "67", time(0), time(23, 59)),
        ("09:00-17:00", "1234567", time(9), time(17)),
        ("elke dag 7-9", "1234567", time(7), time(9)),
        ("vr-ma 22:00-06:00", "1567", time(22), time(6)),
        ("Mon-Fri 9:00-17:00", "12345", time(9), time(17)),
        ("weekdays 9-17", "12345", time(9), time(17)),
        ("sat, sun 10-24", "67", time(10), time(23, 59)),
    ],
)
def test_parse_window(text: str, days: str, start: time, end: time) -> None:
    assert parse_window(text) == Window(days, start, end)


@pytest.mark.parametrize(
    "text",
    ["", "   ", "als het regent", "ma-vr 25:00-17:00", "ma-vr 9:75-17", "ma-vr 9-9", "x" * 200, "🙂",
     "ma-xx 9-17", "DROP TABLE address", "<b>ma</b>"],
    ids=["empty", "spaces", "words", "hour-25", "minute-75", "zero-length", "long", "emoji", "bad-day", "sql",
         "html"],
)  # fmt: skip
def test_parse_window_refuses(text: str) -> None:
    with pytest.raises(InvalidWindow):
        parse_window(text)


@pytest.mark.parametrize("text", ["altijd", "ALTIJD", "always", " Altijd. "])
def test_always(text: str) -> None:
    assert is_always(text)


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (Window("12345", time(9), time(17)), "ma-vr 09:00-17:00"),
        (Window("67", time(0), time(23, 59)), "za, zo"),
        (Window("135", time(8), time(12)), "ma, wo, vr 08:00-12:00"),
        (Window("1234567", time(9), time(17)), "elke dag 09:00-17:00"),
    ],
)
def test_format_window(window: Window, expected: str) -> None:
    assert format_window(window, day_names=NL_DAYS, every_day="elke dag") == expected
