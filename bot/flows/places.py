"""Reading an address from a message and showing it back: shared by registration and address change."""

from __future__ import annotations

import re
from typing import Any

from bot.flows.engine import BadAnswer, FlowContext
from bot.messages import OutgoingMessage
from storage.geo import (
    InvalidHouseNumber,
    InvalidPostcode,
    ParsedAddress,
    Place,
    UnknownPostcode,
    normalise_postcode,
    parse_address,
)
from storage.models import Address
from storage.participants import NewAddress

_POSTCODE_ONLY = re.compile(r"^\s*[1-9]\d{3}\s?[A-Za-z]{2}\s*$")
_PC4_WITH_NUMBER = re.compile(r"^\s*[1-9]\d{3}\s*[,.-]?\s+\d{1,6}")
MAX_ADDRESS_INPUT = 60


def read_address(ctx: FlowContext) -> dict[str, Any]:
    """The address in the message with its place, as flow data. Raises BadAnswer with the reason."""
    text = ctx.text
    if not text:
        raise BadAnswer(ctx.say("address.empty"))
    if len(text) > MAX_ADDRESS_INPUT:
        raise BadAnswer(ctx.say("address.bad_format"))
    try:
        parsed = parse_address(text)
    except InvalidHouseNumber as exc:
        if _POSTCODE_ONLY.match(text):
            raise BadAnswer(ctx.say("address.missing_number", postcode=normalise_postcode(text))) from exc
        raise BadAnswer(ctx.say("address.bad_number")) from exc
    except InvalidPostcode as exc:
        if _PC4_WITH_NUMBER.match(text):
            raise BadAnswer(ctx.say("address.missing_letters")) from exc
        raise BadAnswer(ctx.say("address.bad_format")) from exc
    try:
        place = ctx.services.book.lookup(parsed.postcode)
    except UnknownPostcode as exc:
        raise BadAnswer(ctx.say("address.unknown_postcode", postcode=parsed.postcode)) from exc
    return _address_data(parsed, place)


def _address_data(parsed: ParsedAddress, place: Place) -> dict[str, Any]:
    return {
        "postcode": parsed.postcode,
        "house_number": parsed.house_number,
        "addition": parsed.addition,
        "lat": place.lat,
        "lon": place.lon,
        "municipality_code": place.municipality_code,
        "municipality_name": place.municipality_name,
        "place": place.place,
    }


# People type postcodes in any case ("7522 nb"); in lower case, a year or number before a short Dutch
# word ("sinds 2020 en", "1200 op") is not one.
_POSTCODE_IN_TEXT = re.compile(r"(?<![\w-])([1-9]\d{3})\s?([A-Za-z]{2})(?![\w-])")
_WORDS = frozenset(
    {"en", "in", "op", "de", "of", "om", "na", "te", "al", "is", "ik", "je", "me", "we", "ze", "er"}
)
# "7511 AB 12", "7511ab12-a", "7511 AB, nr 12": the house number right after the postcode.
_NUMBER_AFTER_POSTCODE = re.compile(
    r"^[\s,.:-]*(?:(?:huis)?(?:nummer|nr\.?|no\.?)\s*)?(\d{1,5})(?:\s?-?\s?([a-z])\b)?", re.I
)
# "... en ik woon op nummer 12", "huisnummer 12a": a house number named as such, anywhere.
_NAMED_NUMBER = re.compile(
    r"\b(?:huis)?(?:nummer|nr\.?|no\.?|number)\s*(?:is\s*)?(\d{1,5})(?:\s?-?\s?([a-z])\b)?", re.I
)


def address_in_text(ctx: FlowContext, text: str) -> dict[str, Any] | None:
    """The one address (postcode and house number) a free-text message holds, with its place; else None.

    A sign-up request may already say where the person lives ("mijn postcode is 7511 AB en ik woon op
    nummer 12"); we use it, and confirm it, rather than ask again.
    """
    postcodes = [
        m for m in _POSTCODE_IN_TEXT.finditer(text) if m.group(2).isupper() or m.group(2) not in _WORDS
    ]
    if len({(m.group(1), m.group(2).upper()) for m in postcodes}) != 1:
        return None
    found = postcodes[0]
    number = _NUMBER_AFTER_POSTCODE.match(text[found.end() :]) or _NAMED_NUMBER.search(text)
    if number is None:
        return None
    typed = f"{found.group(1)} {found.group(2)} {number.group(1)}{number.group(2) or ''}"
    try:
        parsed = parse_address(typed)
        place = ctx.services.book.lookup(parsed.postcode)
    except (InvalidPostcode, InvalidHouseNumber, UnknownPostcode):
        return None
    return _address_data(parsed, place)


def address_from_data(data: dict[str, Any]) -> NewAddress:
    """The address a flow kept in its data, ready for storage."""
    return NewAddress(
        postcode=data["postcode"],
        house_number=int(data["house_number"]),
        addition=data.get("addition"),
        lat=float(data["lat"]),
        lon=float(data["lon"]),
        municipality_code=data["municipality_code"],
        municipality_name=data["municipality_name"],
        place=data["place"],
    )


def street_line(postcode: str, house_number: int, addition: str | None) -> str:
    """`7511 AB 12-A`: how we write an address back to the person."""
    number = f"{house_number}-{addition}" if addition else str(house_number)
    return f"{postcode} {number}"


def describe(data: dict[str, Any]) -> str:
    """An address from flow data in one line."""
    return street_line(data["postcode"], int(data["house_number"]), data.get("addition"))


def describe_row(address: Address) -> str:
    """A stored address in one line."""
    return street_line(address.postcode, address.house_number, address.addition)


def confirm_place(ctx: FlowContext, data: dict[str, Any]) -> OutgoingMessage:
    """The question "Is dit <place>, <municipality>?" for an address in flow data."""
    return ctx.ask_yes_no(
        "address.confirm_place",
        address=describe(data),
        place=data["place"],
        municipality=data["municipality_name"],
    )
