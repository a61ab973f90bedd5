"""Registration by calling the service number: the postcode's digits and the house number on the keys,
read back and confirmed with 1, the short privacy statement and consent with 1, then voice alerts.

The four digits of the postcode are enough to place a person (the PC4 area); the letters are not asked.
The number alerted is the one calling, as the carrier gives it. Nothing is stored before the consent:
until then the answers live in the conversation state of the caller's voice identity, never in a URL.
Every text here is written to be heard, and every question says which keys answer it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from bot.flows.engine import Finish, Flow, FlowContext, Goto, Retry, Step, Transition
from bot.flows.places import address_from_data
from bot.messages import Keypad, OutgoingMessage
from storage.geo import UnknownPostcode
from storage.participants import Registration, register_participant
from storage.phones import InvalidPhoneNumber, parse_phone
from storage.vocabulary import ChannelKind

YES_KEY = "1"
NO_KEY = "2"
MAX_HOUSE_NUMBER = 99_999
_PC4 = re.compile(r"[1-9]\d{3}")
_HOUSE_NUMBER = re.compile(r"\d{1,5}")


class PhoneRegistrationStep(StrEnum):
    """The steps of registration by phone, in order."""

    POSTCODE = "postcode"
    HOUSE_NUMBER = "house_number"
    CONFIRM = "confirm"
    CONSENT = "consent"


def spoken_digits(digits: str) -> str:
    """`7511` → `7 5 1 1`: a postcode is heard digit by digit, not as seven thousand five hundred."""
    return " ".join(digits)


def _keys(ctx: FlowContext, key: str, keypad: Keypad, **params: Any) -> OutgoingMessage:
    return OutgoingMessage(
        channel=ctx.message.channel,
        recipient=ctx.message.sender,
        text=ctx.t(key, **params),
        keypad=keypad,
    )


def _keys_pressed(ctx: FlowContext) -> str:
    return "".join(ctx.text.split()).rstrip("#")


class PhoneRegistrationFlow(Flow):
    """Sign up a caller for voice alerts, answered on the phone's keys."""

    name = "phone_registration"

    def steps(self) -> Mapping[str, Step]:
        """The table of steps."""
        return {
            PhoneRegistrationStep.POSTCODE: Step(self.ask_postcode, self.on_postcode),
            PhoneRegistrationStep.HOUSE_NUMBER: Step(self.ask_house_number, self.on_house_number),
            PhoneRegistrationStep.CONFIRM: Step(self.ask_confirm, self.on_confirm),
            PhoneRegistrationStep.CONSENT: Step(self.ask_consent, self.on_consent),
        }

    def begin(self, ctx: FlowContext) -> Transition:
        """A caller whose number we cannot see or cannot call back hears so at once."""
        try:
            parse_phone(ctx.message.sender)
        except InvalidPhoneNumber:
            return Finish((ctx.say("voice_signup.caller_unknown"),))
        return Goto(PhoneRegistrationStep.POSTCODE)

    def ask_postcode(self, ctx: FlowContext) -> OutgoingMessage:
        """The four digits of the postcode, then the hash key."""
        return _keys(ctx, "voice_signup.ask_postcode", Keypad.DIGITS)

    def on_postcode(self, ctx: FlowContext) -> Transition:
        """Four digits of a known PC4 go on to the house number."""
        pc4 = _keys_pressed(ctx)
        if not _PC4.fullmatch(pc4):
            return Retry(ctx.say("voice_signup.postcode_bad"))
        try:
            place = ctx.services.book.lookup(pc4)
        except UnknownPostcode:
            return Retry(ctx.say("voice_signup.postcode_unknown", pc4=spoken_digits(pc4)))
        ctx.data["address"] = {
            "postcode": pc4,
            "lat": place.lat,
            "lon": place.lon,
            "place": place.place,
            "municipality_code": place.municipality_code,
            "municipality_name": place.municipality_name,
        }
        return Goto(PhoneRegistrationStep.HOUSE_NUMBER)

    def ask_house_number(self, ctx: FlowContext) -> OutgoingMessage:
        """The house number, then the hash key."""
        return _keys(ctx, "voice_signup.ask_house_number", Keypad.DIGITS)

    def on_house_number(self, ctx: FlowContext) -> Transition:
        """A number from 1 to 99999 goes on to the read-back."""
        typed = _keys_pressed(ctx)
        if not _HOUSE_NUMBER.fullmatch(typed) or not 1 <= int(typed) <= MAX_HOUSE_NUMBER:
            return Retry(ctx.say("voice_signup.house_number_bad"))
        ctx.data["address"]["house_number"] = int(typed)
        return Goto(PhoneRegistrationStep.CONFIRM)

    def ask_confirm(self, ctx: FlowContext) -> OutgoingMessage:
        """Read the address back: 1 if it is right, 2 to key it in again."""
        address = ctx.data["address"]
        return _keys(
            ctx,
            "voice_signup.confirm",
            Keypad.ONE_KEY,
            number=address["house_number"],
            pc4=spoken_digits(address["postcode"]),
            place=address["place"],
        )

    def on_confirm(self, ctx: FlowContext) -> Transition:
        """1 goes on to the privacy statement; 2 starts the address again."""
        key = _keys_pressed(ctx)
        if key == YES_KEY:
            return Goto(PhoneRegistrationStep.CONSENT)
        if key == NO_KEY:
            ctx.data.pop("address", None)
            return Goto(PhoneRegistrationStep.POSTCODE)
        return Retry(ctx.say("voice_signup.confirm_retry"))

    def ask_consent(self, ctx: FlowContext) -> OutgoingMessage:
        """The short privacy statement: 1 to agree (16 and over), 2 to decline."""
        return _keys(ctx, "voice_signup.consent", Keypad.ONE_KEY)

    def on_consent(self, ctx: FlowContext) -> Transition:
        """1 stores the registration with voice as its channel; 2 ends with nothing stored."""
        key = _keys_pressed(ctx)
        if key == NO_KEY:
            return Finish((ctx.say("voice_signup.no_consent"),))
        if key != YES_KEY:
            return Retry(ctx.say("voice_signup.consent_retry"))
        return self._register(ctx, consent_at=ctx.now)

    def _register(self, ctx: FlowContext, *, consent_at: datetime) -> Transition:
        phone = parse_phone(ctx.message.sender).e164
        registration = Registration(
            name=None,
            phone=phone,
            address=address_from_data({**ctx.data["address"], "addition": None}),
            preferred_channel=ChannelKind.VOICE,
            consent_version=ctx.services.settings.privacy_statement_version,
            consent_at=consent_at,
            language=ctx.lang,
        )
        participant, _ = register_participant(
            ctx.session,
            vault=ctx.services.vault,
            identity=ctx.identity,
            registration=registration,
            now=ctx.now,
        )
        ctx.participant = participant
        return Finish((ctx.say("voice_signup.welcome", place=ctx.data["address"]["place"]),))
