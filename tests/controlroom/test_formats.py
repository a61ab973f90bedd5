"""Amounts, numbers and counted nouns as the control room writes them."""

from __future__ import annotations

import pytest

from bot.controlroom.formats import counter, euro, number
from bot.texts import Catalogue


@pytest.mark.parametrize(
    ("amount", "lang", "shown"),
    [
        pytest.param(0.0, "nl", "€ 0,00", id="zero"),
        pytest.param(0.075, "nl", "€ 0,08", id="half-cent-up"),
        pytest.param(1234.5, "nl", "€ 1.234,50", id="thousands"),
        pytest.param(1234567.891, "nl", "€ 1.234.567,89", id="millions"),
        pytest.param(-3.1, "nl", "-€ 3,10", id="negative"),
        pytest.param(1234.5, "en", "€1,234.50", id="english"),
    ],
)
def test_euro(amount: float, lang: str, shown: str) -> None:
    assert euro(amount, lang) == shown


@pytest.mark.parametrize(
    ("value", "lang", "shown"),
    [
        (0, "nl", "0"),
        (999, "nl", "999"),
        (1234, "nl", "1.234"),
        (1234567, "nl", "1.234.567"),
        (1234, "en", "1,234"),
    ],
)
def test_number(value: int, lang: str, shown: str) -> None:
    assert number(value, lang) == shown


@pytest.mark.parametrize(
    ("value", "noun", "shown"),
    [
        (0, "participant", "0 deelnemers"),
        (1, "participant", "1 deelnemer"),
        (2, "participant", "2 deelnemers"),
        (1234, "participant", "1.234 deelnemers"),
        (1, "tipster", "1 tipgever"),
        (3, "tip", "3 tips"),
    ],
)
def test_counted_nouns_in_dutch(value: int, noun: str, shown: str) -> None:
    assert counter(Catalogue.load(), "nl")(value, noun) == shown


def test_counted_nouns_in_english() -> None:
    n = counter(Catalogue.load(), "en")
    assert (n(1, "participant"), n(1234, "participant")) == ("1 participant", "1,234 participants")
