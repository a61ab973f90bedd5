"""Phone numbers: E.164, Dutch and EU mobiles only for registration."""

from __future__ import annotations

import pytest

from storage.phones import InvalidPhoneNumber, mask_phone, parse_mobile, to_e164


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0612345678", "+31612345678"),
        ("06-1234 5678", "+31612345678"),
        ("+31 6 12345678", "+31612345678"),
        ("0031612345678", "+31612345678"),
        ("+49 151 23456789", "+4915123456789"),
        ("+32 470 12 34 56", "+32470123456"),
    ],
    ids=["nl-plain", "nl-dashes", "nl-intl", "nl-00", "de-mobile", "be-mobile"],
)
def test_mobiles(text: str, expected: str) -> None:
    assert parse_mobile(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("020-1234567", "not_mobile"),
        ("+49 30 12345678", "not_mobile"),
        ("+1 202 555 0123", "not_eu"),
        ("+44 20 7123 4567", "not_eu"),
        ("abc", "not_a_number"),
        ("", "not_a_number"),
        ("12", "not_a_number"),
        ("0" * 200, "not_a_number"),
        ("06 1234 567", "not_a_number"),
    ],
    ids=["nl-landline", "de-landline", "us", "uk", "letters", "empty", "short", "huge", "nl-too-short"],
)
def test_refused(text: str, reason: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as caught:
        parse_mobile(text)
    assert caught.value.reason == reason


def test_any_valid_number_to_e164() -> None:
    assert to_e164("020-1234567") == "+31201234567"


def test_mask_keeps_only_the_last_four() -> None:
    assert mask_phone("+31612345678") == "+31 6 ****5678"
    assert "1234" not in mask_phone("+31612345678")
