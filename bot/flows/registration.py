"""Registration: consent (16+), name, address, phone number, preferred channel, welcome.

A Dutch landline typed on a chat can register for voice alerts only: it cannot take an SMS or WhatsApp,
so its verification code comes by a call that speaks the code.

Nothing is stored as a participant until the last answer: an abandoned sign-up leaves only its
conversation state, which expires. Name and phone are kept encrypted in that state meanwhile.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum

from bot.flows.engine import (
    Answer,
    BadAnswer,
    Finish,
    Flow,
    FlowContext,
    Goto,
    Retry,
    Step,
    Transition,
    yes_or_no,
)
from bot.flows.follow import (
    FOLLOW_CHANNELS,
    area_place,
    ask_area,
    ask_follow_consent,
    on_follow_consent,
    to_follow_consent,
)
from bot.flows.places import address_from_data, address_in_text, confirm_place, describe, read_address
from bot.messages import OutgoingMessage
from storage.db import after_commit
from storage.participants import Registration, identities_of, register_participant
from storage.phones import InvalidPhoneNumber, mask_phone, parse_mobile, parse_phone
from storage.verifications import CODE_DIGITS, CodeCheck, CodeLimits, CodeRefused, check_code, request_code
from storage.vocabulary import ChannelKind

MAX_NAME = 60
SKIP_WORDS = frozenset(
    {"-", "overslaan", "sla over", "geen", "nee", "skip", "no", "none", "geen naam", "n.v.t."}
)
NAME_PUNCTUATION = frozenset(" -'.’")
ALERT_CHANNELS = (ChannelKind.TELEGRAM, ChannelKind.WHATSAPP, ChannelKind.SMS, ChannelKind.VOICE)
# What a landline cannot receive: texts.
TEXT_CHANNELS = frozenset({ChannelKind.WHATSAPP, ChannelKind.SMS})
# Wanting to sign up, in any form people write it: "aanmelden", "meld me aan", "inschrijving",
# "meedoen", "doe mee", "deelnemen", "registreren", "sign up".
_SIGN_UP = re.compile(
    r"\b(?:aan\s?(?:ge)?meld\w*|meld\s+(?:me|mij|ons|je)\s+(?:\w+\s+){0,3}?aan|in\s?schrij\w*|"
    r"ingeschreven|schrijf\s+(?:me|mij|ons)\s+(?:\w+\s+){0,3}?in|mee\s?(?:doen|doet|gedaan)|doe[n]?\s+mee|"
    r"deel\s?(?:nemen|neem\w*|name)|neem\s+deel|registr\w*|geregistreerd|sign(?:\s|-)?(?:me\s+)?up|"
    r"register\w*|join\w*)\b",
    re.IGNORECASE,
)
_NEW_CODE_WORDS = frozenset({"nieuw", "nieuwe code", "opnieuw", "new", "new code", "again", "resend"})


def asks_to_sign_up(text: str) -> bool:
    """Whether free text says the person wants to sign up (for someone not registered: it is a sign-up)."""
    return _SIGN_UP.search(text) is not None


class RegistrationStep(StrEnum):
    """The steps of registration, in order."""

    AREA = "area"
    AREA_CONSENT = "area_consent"
    CONSENT = "consent"
    NAME = "name"
    ADDRESS = "address"
    CONFIRM_PLACE = "confirm_place"
    PHONE = "phone"
    CONFIRM_PHONE = "confirm_phone"
    CHANNEL = "channel"
    CODE = "code"


def code_limits(ctx: FlowContext) -> CodeLimits:
    """The verification code limits from the settings."""
    s = ctx.services.settings
    return CodeLimits(
        valid_minutes=s.verification_code_minutes,
        max_tries=s.verification_max_tries,
        per_number=s.verification_per_number,
        per_sender=s.verification_per_sender,
        overall=s.verification_per_hour,
    )


class RegistrationFlow(Flow):
    """Sign a person up (or update them when they register again).

    A number typed in a chat proves nothing: before anything is stored or sent to it but a code, its
    owner types back the code we send to it. A shared Telegram contact (the sender's own, checked by
    the channel) and the number an SMS or WhatsApp message comes from need no code.
    """

    name = "registration"
    intents = ("register",)

    def __init__(self, on_code_queued: Callable[[], None] | None = None) -> None:
        self._on_code_queued = on_code_queued

    def steps(self) -> Mapping[str, Step]:
        """The table of steps."""
        return {
            RegistrationStep.AREA: Step(ask_area, self.on_area),
            RegistrationStep.AREA_CONSENT: Step(ask_follow_consent, on_follow_consent),
            RegistrationStep.CONSENT: Step(self.ask_consent, self.on_consent),
            RegistrationStep.NAME: Step(self.ask_name, self.on_name),
            RegistrationStep.ADDRESS: Step(self.ask_address, self.on_address),
            RegistrationStep.CONFIRM_PLACE: Step(self.ask_confirm_place, self.on_confirm_place),
            RegistrationStep.PHONE: Step(self.ask_phone, self.on_phone),
            RegistrationStep.CONFIRM_PHONE: Step(self.ask_confirm_phone, self.on_confirm_phone),
            RegistrationStep.CHANNEL: Step(self.ask_channel, self.on_channel),
            RegistrationStep.CODE: Step(self.ask_code, self.on_code),
        }

    def begin(self, ctx: FlowContext) -> Transition:
        """Start with the privacy statement; say so when this updates an existing registration."""
        ctx.data["update"] = ctx.participant is not None
        if ctx.message.channel in (ChannelKind.SMS, ChannelKind.WHATSAPP):
            # The number we would alert is the one they write from: one that cannot get alerts hears
            # so now, before giving consent, a name and an address for nothing.
            try:
                parse_mobile(ctx.message.sender)
            except InvalidPhoneNumber as exc:
                return Finish((ctx.say(f"registration.sender_{exc.reason}"),))
        if ctx.participant is None:
            found = address_in_text(ctx, ctx.text)
            if found is not None:
                # Kept for the address step, after consent: the request already said where they live.
                ctx.data["address"] = found
                ctx.data["address_given"] = True
        return Goto(RegistrationStep.CONSENT)

    # area only (chats) -----------------------------------------------------------------------
    def on_area(self, ctx: FlowContext) -> Transition:
        """The PC4 typed or found from a shared location; then the follower's own consent."""
        return to_follow_consent(ctx, area_place(ctx), RegistrationStep.AREA_CONSENT)

    # consent -------------------------------------------------------------------------------
    def ask_consent(self, ctx: FlowContext) -> OutgoingMessage:
        """The short privacy statement and the consent question (16+)."""
        key = "registration.consent_update" if ctx.data.get("update") else "registration.consent"
        settings = ctx.services.settings
        url = settings.privacy_url(ctx.lang)
        if self._offers_area(ctx):
            # On chats one may join without name, address or number: offered beside JA and NEE.
            return ctx.say(
                "registration.consent_chat",
                buttons=(*ctx.yes_no(), ctx.t("registration.area_button")),
                version=settings.privacy_statement_version,
                url=url,
            )
        return ctx.ask_yes_no(key, version=settings.privacy_statement_version, url=url)

    @staticmethod
    def _offers_area(ctx: FlowContext) -> bool:
        return (
            ctx.participant is None
            and ctx.message.channel in FOLLOW_CHANNELS
            and not ctx.data.get("address_given")
        )

    def on_consent(self, ctx: FlowContext) -> Transition:
        """JA records when consent was given; NEE ends the sign-up with nothing stored."""
        if self._offers_area(ctx) and (
            _chose_area(ctx) or (ctx.message.location is not None and not ctx.text)
        ):
            # The follower's own, shorter privacy statement is asked once the area is known.
            return self.on_area(ctx) if ctx.message.location is not None else Goto(RegistrationStep.AREA)
        answer = yes_or_no(ctx.text)
        if answer is Answer.NO:
            ctx.data.pop("address", None)
            return Finish((ctx.say("registration.no_consent"),))
        if answer is None:
            return Retry(ctx.say("registration.consent_retry"))
        ctx.data["consent_at"] = ctx.now.isoformat()
        return Goto(RegistrationStep.NAME)

    # name ----------------------------------------------------------------------------------
    def ask_name(self, ctx: FlowContext) -> OutgoingMessage:
        """Ask for a name, which may be skipped."""
        return ctx.say("registration.ask_name", buttons=(ctx.t("registration.skip_button"),))

    def on_name(self, ctx: FlowContext) -> Transition:
        """Keep a plausible name (encrypted), or none."""
        text = " ".join(ctx.text.split())
        if (
            text.casefold().strip(" .!") in SKIP_WORDS
            or text.casefold() == ctx.t("registration.skip_button").casefold()
        ):
            ctx.data["name_enc"] = None
            return self._to_address(ctx)
        if not text:
            return Retry(ctx.say("registration.name_empty"))
        if len(text) > MAX_NAME:
            return Retry(ctx.say("registration.name_too_long", max=MAX_NAME))
        if not all(ch.isalpha() or ch in NAME_PUNCTUATION for ch in text) or not any(
            ch.isalpha() for ch in text
        ):
            return Retry(ctx.say("registration.name_invalid"))
        ctx.data["name_enc"] = ctx.services.vault.encrypt(text)
        return self._to_address(ctx)

    # address -------------------------------------------------------------------------------
    @staticmethod
    def _to_address(ctx: FlowContext) -> Transition:
        if ctx.data.get("address_given"):
            return Goto(RegistrationStep.CONFIRM_PLACE)
        return Goto(RegistrationStep.ADDRESS)

    def ask_address(self, ctx: FlowContext) -> OutgoingMessage:
        """Ask for postcode and house number (again, after a NEE)."""
        key = "address.ask_again" if ctx.data.get("address_denied") else "address.ask_home"
        return ctx.say(key)

    def on_address(self, ctx: FlowContext) -> Transition:
        """Validate the address and look up its place; a shared location finds the postcode area."""
        if ctx.message.location is not None and not ctx.text:
            # The location only names the PC4; the house and its letters are still the person's to say.
            place = area_place(ctx)
            return Retry(ctx.say("address.location_found", pc4=place.pc4, place=place.place))
        ctx.data["address"] = read_address(ctx)
        return Goto(RegistrationStep.CONFIRM_PLACE)

    def ask_confirm_place(self, ctx: FlowContext) -> OutgoingMessage:
        """Show the place we found for the postcode (for an address from the request: is it theirs?)."""
        address = ctx.data["address"]
        if ctx.data.get("address_given"):
            return ctx.ask_yes_no(
                "registration.confirm_given_address",
                address=describe(address),
                place=address["place"],
                municipality=address["municipality_name"],
            )
        return confirm_place(ctx, address)

    def on_confirm_place(self, ctx: FlowContext) -> Transition:
        """JA goes on to the phone number; NEE asks for the address again."""
        answer = yes_or_no(ctx.text)
        if answer is None:
            return Retry(ctx.say("common.yes_no_retry"))
        if answer is Answer.NO:
            ctx.data.pop("address", None)
            ctx.data.pop("address_given", None)
            ctx.data["address_denied"] = True
            return Goto(RegistrationStep.ADDRESS)
        return self._to_phone(ctx)

    # phone ---------------------------------------------------------------------------------
    def _to_phone(self, ctx: FlowContext) -> Transition:
        if ctx.message.channel in (ChannelKind.SMS, ChannelKind.WHATSAPP):
            try:
                phone = parse_mobile(ctx.message.sender)
            except InvalidPhoneNumber as exc:
                return Finish((ctx.say(f"registration.sender_{exc.reason}"),))
            ctx.data["phone_enc"] = ctx.services.vault.encrypt(phone)
            ctx.data["phone_masked"] = mask_phone(phone)
            return Goto(RegistrationStep.CONFIRM_PHONE)
        return Goto(RegistrationStep.PHONE)

    def ask_phone(self, ctx: FlowContext) -> OutgoingMessage:
        """Ask a Telegram user for their mobile number, offering the share-contact button."""
        return ctx.say("registration.ask_phone", request_contact=True)

    def on_phone(self, ctx: FlowContext) -> Transition:
        """Accept a shared contact, a typed Dutch/EU mobile number or a Dutch landline (voice only)."""
        raw = ctx.message.contact_phone or ctx.text
        if ctx.message.contact_phone and raw[:1] not in ("+", "0"):
            raw = "+" + raw  # Telegram sends a shared contact's number without the plus
        if not raw.strip():
            return Retry(ctx.say("registration.phone_empty"))
        try:
            parsed = parse_phone(raw)
        except InvalidPhoneNumber as exc:
            return Retry(ctx.say(f"registration.phone_{exc.reason}"))
        phone = parsed.e164
        ctx.data["landline"] = not parsed.mobile
        # Whether the number is registered is not looked at here: the answer must not tell. A typed
        # number gets a code, whoever owns it; only its owner can type it back.
        ctx.data["phone_typed"] = not ctx.message.contact_phone
        ctx.data["phone_enc"] = ctx.services.vault.encrypt(phone)
        ctx.data["phone_masked"] = mask_phone(phone)
        return Goto(RegistrationStep.CHANNEL)

    def ask_confirm_phone(self, ctx: FlowContext) -> OutgoingMessage:
        """On SMS and WhatsApp: confirm that the number they write from is theirs."""
        return ctx.ask_yes_no("registration.confirm_phone", phone=ctx.data["phone_masked"])

    def on_confirm_phone(self, ctx: FlowContext) -> Transition:
        """JA goes on to the channel; NEE ends: only the owner of a number can sign it up."""
        answer = yes_or_no(ctx.text)
        if answer is None:
            return Retry(ctx.say("common.yes_no_retry"))
        if answer is Answer.NO:
            return Finish((ctx.say("registration.phone_denied"),))
        return Goto(RegistrationStep.CHANNEL)

    # channel -------------------------------------------------------------------------------
    def channel_options(self, ctx: FlowContext) -> list[ChannelKind]:
        """The channels we can reach the person on: this one, their number's, their other chats."""
        options = [ctx.message.channel, ChannelKind.WHATSAPP, ChannelKind.SMS, ChannelKind.VOICE]
        if ctx.participant is not None:
            options += [i.channel for i in identities_of(ctx.session, participant=ctx.participant)]
        refused = TEXT_CHANNELS if ctx.data.get("landline") else frozenset()
        return [c for c in dict.fromkeys(options) if c in ALERT_CHANNELS and c not in refused]

    def ask_channel(self, ctx: FlowContext) -> OutgoingMessage:
        """Ask how alerts should arrive, with a button per channel."""
        labels = tuple(ctx.t(f"channels.{c.value}") for c in self.channel_options(ctx))
        return ctx.say("registration.ask_channel", buttons=labels, options=", ".join(labels))

    def on_channel(self, ctx: FlowContext) -> Transition:
        """Store the registration and welcome the person (a typed number first gets its code)."""
        chosen = self._chosen_channel(ctx)
        ctx.data["channel"] = chosen.value
        if ctx.data.get("phone_typed"):
            return self._send_code(ctx)
        return self._register(ctx, chosen)

    # code ----------------------------------------------------------------------------------
    def _code_channel(self, ctx: FlowContext) -> ChannelKind:
        # By WhatsApp when that is how they want alerts; else by SMS, which every mobile receives; a
        # landline takes no text at all, so its code is spoken in a call.
        if ctx.data.get("landline"):
            return ChannelKind.VOICE
        chosen = ChannelKind(ctx.data["channel"])
        return ChannelKind.WHATSAPP if chosen is ChannelKind.WHATSAPP else ChannelKind.SMS

    def _code_text(self, ctx: FlowContext, channel: ChannelKind, code: str) -> str:
        if channel is ChannelKind.VOICE:
            # Said digit by digit ("4, 8, 2, ..."), not as one big number, so it can be typed while heard.
            return ctx.t("registration.code_call", digits=", ".join(code))
        return ctx.t("registration.code_message", code=code)

    def _send_code(self, ctx: FlowContext) -> Transition:
        phone = ctx.services.vault.decrypt(ctx.data["phone_enc"])
        assert ctx.identity.id is not None
        channel = self._code_channel(ctx)
        try:
            row = request_code(
                ctx.session,
                vault=ctx.services.vault,
                phone=phone,
                channel=channel,
                requester_id=ctx.identity.id,
                compose=lambda code: self._code_text(ctx, channel, code),
                now=ctx.now,
                limits=code_limits(ctx),
            )
        except CodeRefused:
            return Finish((ctx.say("registration.code_limited"),))
        ctx.data["verification_id"] = row.id
        if self._on_code_queued is not None:
            after_commit(ctx.session, self._on_code_queued)
        return Goto(RegistrationStep.CODE)

    def ask_code(self, ctx: FlowContext) -> OutgoingMessage:
        """Ask for the code sent to the typed number (or spoken to it in a call)."""
        if self._code_channel(ctx) is ChannelKind.VOICE:
            return ctx.say(
                "registration.ask_code_call",
                phone=ctx.data["phone_masked"],
                minutes=ctx.services.settings.verification_code_minutes,
            )
        return ctx.say(
            "registration.ask_code",
            phone=ctx.data["phone_masked"],
            channel=ctx.t(f"channels.{self._code_channel(ctx).value}"),
            minutes=ctx.services.settings.verification_code_minutes,
        )

    def on_code(self, ctx: FlowContext) -> Transition:
        """The right code stores the registration; a wrong one uses a try; NIEUW sends another."""
        typed = "".join(ctx.text.split())
        if " ".join(ctx.text.casefold().split()).strip(" .!") in _NEW_CODE_WORDS:
            return self._send_code(ctx)
        if not (typed.isascii() and typed.isdigit() and len(typed) == CODE_DIGITS):
            # A slip of the thumb (five digits, a letter) is no guess at the code: it uses no try.
            return Retry(ctx.say("registration.code_not_digits"))
        assert ctx.identity.id is not None
        result = check_code(
            ctx.session,
            vault=ctx.services.vault,
            verification_id=int(ctx.data["verification_id"]),
            requester_id=ctx.identity.id,
            code=typed,
            now=ctx.now,
            limits=code_limits(ctx),
        )
        if result is CodeCheck.VERIFIED:
            return self._register(ctx, ChannelKind(ctx.data["channel"]))
        if result is CodeCheck.WRONG:
            return Retry(ctx.say("registration.code_wrong"))
        if result is CodeCheck.EXPIRED:
            return Retry(ctx.say("registration.code_expired"))
        return Finish((ctx.say("registration.code_used_up"),))

    def _register(self, ctx: FlowContext, chosen: ChannelKind) -> Transition:
        phone = ctx.services.vault.decrypt(ctx.data["phone_enc"])
        name_enc = ctx.data.get("name_enc")
        registration = Registration(
            name=ctx.services.vault.decrypt(name_enc) if name_enc else None,
            phone=phone,
            address=address_from_data(ctx.data["address"]),
            preferred_channel=chosen,
            consent_version=ctx.services.settings.privacy_statement_version,
            consent_at=datetime.fromisoformat(ctx.data["consent_at"]),
            language=ctx.lang,
        )
        participant, created = register_participant(
            ctx.session,
            vault=ctx.services.vault,
            identity=ctx.identity,
            registration=registration,
            now=ctx.now,
        )
        ctx.participant = participant
        if chosen is ChannelKind.VOICE:
            key = "registration.welcome_voice" if created else "registration.updated_voice"
            return Finish((ctx.say(key, phone=mask_phone(phone), place=ctx.data["address"]["place"]),))
        key = "registration.welcome" if created else "registration.updated"
        return Finish(
            (ctx.say(key, channel=ctx.t(f"channels.{chosen.value}"), place=ctx.data["address"]["place"]),)
        )

    def _chosen_channel(self, ctx: FlowContext) -> ChannelKind:
        options = self.channel_options(ctx)
        value = " ".join(ctx.text.casefold().split()).strip(" .!")
        if (value.isascii() and value.isdigit()) and 1 <= int(value) <= len(options):
            return options[int(value) - 1]
        for channel in ALERT_CHANNELS:
            names = {channel.value, ctx.t(f"channels.{channel.value}").casefold(), *_ALIASES.get(channel, ())}
            if value not in names:
                continue
            if channel in options:
                return channel
            if ctx.data.get("landline") and channel in TEXT_CHANNELS:
                raise BadAnswer(
                    ctx.say(
                        "registration.landline_voice_only",
                        channel=ctx.t(f"channels.{channel.value}"),
                        options=", ".join(ctx.t(f"channels.{c.value}") for c in options),
                    )
                )
        raise BadAnswer(
            ctx.say(
                "registration.channel_retry",
                options=", ".join(ctx.t(f"channels.{c.value}") for c in options),
            )
        )


_AREA_WORDS = frozenset({"gebied", "alleen gebied", "alleen een gebied", "area", "area only", "only an area"})


def _chose_area(ctx: FlowContext) -> bool:
    value = " ".join(ctx.text.casefold().split()).strip(" .!")
    return value in _AREA_WORDS or value == ctx.t("registration.area_button").casefold()


_ALIASES = {
    ChannelKind.WHATSAPP: ("whats app", "wa", "whatsap", "app"),
    ChannelKind.SMS: ("sms'je", "tekst", "text", "sms bericht", "sms-bericht"),
    ChannelKind.TELEGRAM: ("tg", "telegram app"),
    ChannelKind.VOICE: (
        "spraak",
        "bellen",
        "bel",
        "bel me",
        "bel mij",
        "gebeld",
        "telefoon",
        "telefoontje",
        "oproep",
        "vaste telefoon",
        "call",
        "call me",
        "calls",
        "phone",
        "phone call",
        "voice",
        "voice call",
    ),
}
