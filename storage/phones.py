"""Phone numbers: always E.164 through `phonenumbers`; Dutch or EU mobiles, and Dutch landlines for calls."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

# EU member states: a participant's phone may be any EU mobile (cross-border workers, students).
EU_REGIONS = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
    ]
)
_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
# A landline can be called but gets no SMS or WhatsApp; only Dutch ones: calls abroad cost more.
LANDLINE_REGIONS = frozenset({"NL"})
MAX_INPUT = 40
E164_CACHE_SIZE = 4096


class InvalidPhoneNumber(ValueError):
    """Text that is not a usable phone number; `reason` is not_a_number, not_mobile or not_eu."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@lru_cache(maxsize=E164_CACHE_SIZE)
def to_e164(text: str, default_region: str = "NL") -> str:
    """Any valid phone number as E.164. Raises InvalidPhoneNumber(reason="not_a_number")."""
    # Cached: every inbound message parses its sender twice (webhook, identity), the same people write
    # again and again, and `phonenumbers` is a good part of a message's cost. Failures are not cached.
    return _format(_parse(text, default_region))


def parse_mobile(text: str, default_region: str = "NL") -> str:
    """A Dutch or EU mobile number as E.164; landlines and non-EU numbers are refused."""
    number = _parse(text, default_region)
    region = phonenumbers.region_code_for_number(number)
    if region not in EU_REGIONS:
        raise InvalidPhoneNumber(text, "not_eu")
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        raise InvalidPhoneNumber(text, "not_mobile")
    return _format(number)


@dataclass(frozen=True)
class ParsedPhone:
    """A number someone can be reached on: E.164, and whether it takes SMS and WhatsApp (a mobile)."""

    e164: str
    mobile: bool


def parse_phone(text: str, default_region: str = "NL") -> ParsedPhone:
    """A Dutch or EU mobile, or a Dutch landline (reachable by voice only); other numbers are refused."""
    number = _parse(text, default_region)
    region = phonenumbers.region_code_for_number(number)
    if region not in EU_REGIONS:
        raise InvalidPhoneNumber(text, "not_eu")
    kind = phonenumbers.number_type(number)
    if kind in _MOBILE_TYPES:
        return ParsedPhone(e164=_format(number), mobile=True)
    if kind is PhoneNumberType.FIXED_LINE and region in LANDLINE_REGIONS:
        return ParsedPhone(e164=_format(number), mobile=False)
    raise InvalidPhoneNumber(text, "not_mobile")


def is_mobile(e164: str) -> bool:
    """Whether a stored number takes SMS and WhatsApp (a Dutch landline takes calls only)."""
    try:
        return phonenumbers.number_type(phonenumbers.parse(e164, None)) in _MOBILE_TYPES
    except NumberParseException:
        return False


def mask_phone(e164: str) -> str:
    """`+31612345678` → `+31 6 ****5678`: enough to recognise, too little to misuse."""
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException:
        return "****"
    national = str(number.national_number)
    return f"+{number.country_code} {national[:1]} ****{national[-4:]}"


def _parse(text: str, default_region: str) -> phonenumbers.PhoneNumber:
    cleaned = (text or "").strip()
    if not cleaned or len(cleaned) > MAX_INPUT:
        raise InvalidPhoneNumber(text, "not_a_number")
    if cleaned.startswith("00"):
        cleaned = "+" + cleaned[2:]
    try:
        number = phonenumbers.parse(cleaned, default_region)
    except NumberParseException as exc:
        raise InvalidPhoneNumber(text, "not_a_number") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber(text, "not_a_number")
    return number


def _format(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
