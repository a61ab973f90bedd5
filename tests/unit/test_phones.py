"""Phone numbers: E.164; Dutch and EU mobiles, and Dutch landlines for voice only."""

from __future__ import annotations

import pytest

from storage.phones import (
    InvalidPhoneNumber,
    ParsedPhone,
    is_mobile,
    mask_phone,
    parse_mobile,
    parse_phone,
    to_e164,
)


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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("06 12345678", ParsedPhone("+31612345678", mobile=True)),
        ("+32 470 12 34 56", ParsedPhone("+32470123456", mobile=True)),
        ("053 480 0000", ParsedPhone("+31534800000", mobile=False)),
        ("020-1234567", ParsedPhone("+31201234567", mobile=False)),
        ("+31 10 123 4567", ParsedPhone("+31101234567", mobile=False)),
    ],
    ids=["nl-mobile", "be-mobile", "nl-landline-enschede", "nl-landline-amsterdam", "nl-landline-intl"],
)
def test_phones_for_voice(text: str, expected: ParsedPhone) -> None:
    assert parse_phone(text) == expected
    assert is_mobile(expected.e164) is expected.mobile


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("+49 30 12345678", "not_mobile"),  # a landline abroad: not called
        ("0800 0011", "not_mobile"),  # a free number, not a line of a person
        ("088 123 4567", "not_mobile"),  # a company-wide number (VOIP type), not a landline of a home
        ("+1 202 555 0123", "not_eu"),
        ("0612", "not_a_number"),
    ],
    ids=["de-landline", "nl-0800", "nl-088", "us", "short"],
)
def test_refused_for_voice(text: str, reason: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as caught:
        parse_phone(text)
    assert caught.value.reason == reason
