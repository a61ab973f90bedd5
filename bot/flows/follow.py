"""Following an area without an address: VOLG 7511 (or a shared location), VOLG NIET 7511, on chats only.

The chat equivalent of the app that needs no registration: the person is kept as their chat identity
(a Telegram chat id, or the WhatsApp number we must reply to) and the PC4 codes they follow. A shared
location only finds the nearest PC4 centre; the coordinates themselves are never stored or logged.
SMS and voice keep the full registration: a phone number is personal data, so there is nothing to save.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

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
from bot.flows.unsubscribe import opt_in
from bot.messages import OutgoingMessage
from storage.areas import (
    MAX_FOLLOWED_AREAS,
    TooManyAreas,
    follow_area,
    followed_areas_of,
    is_area_only,
    start_following,
    unfollow_area,
)
from storage.geo import InvalidPostcode, Place, UnknownPostcode, normalise_postcode
from storage.participants import audit, erase_participant
from storage.phones import mask_phone
from storage.vocabulary import ChannelKind

FOLLOW_CHANNELS = frozenset({ChannelKind.TELEGRAM, ChannelKind.WHATSAPP})
# How far a shared location may lie from the nearest PC4 centre: PC4 areas in the countryside are
# a few kilometres across; farther than this the location is at sea or abroad.
MAX_LOCATION_DISTANCE_M = 5_000.0
_COMMAND = re.compile(
    r"^/?(?P<verb>volg niet|niet volgen|ontvolg|ontvolgen|unfollow|volg|volgen|follow)(?:@\w+)?"
    r"(?:\s+(?P<arg>[1-9]\d{3}(?:\s?[a-z]{2})?))?$"
)
_UNFOLLOW_VERBS = frozenset({"volg niet", "niet volgen", "ontvolg", "ontvolgen", "unfollow"})


@dataclass(frozen=True)
class FollowCommand:
    """VOLG or VOLG NIET, with the postcode typed after it (if any)."""

    follow: bool
    postcode: str | None


def follow_command(text: str) -> FollowCommand | None:
    """The follow command a message is (`VOLG 7511`, `ONTVOLG`, `/follow 7511 AB`), if it is one."""
    value = " ".join(text.casefold().split()).strip(" .!?")
    match = _COMMAND.fullmatch(value)
    if match is None:
        return None
    return FollowCommand(follow=match.group("verb") not in _UNFOLLOW_VERBS, postcode=match.group("arg"))


def area_place(ctx: FlowContext, postcode: str | None = None) -> Place:
    """The PC4 a typed postcode or a shared location names. Raises BadAnswer with the reason."""
    location = ctx.message.location
    if postcode is None and location is not None:
        try:
            return ctx.services.book.nearest(location.lat, location.lon, MAX_LOCATION_DISTANCE_M)
        except LookupError as exc:
            raise BadAnswer(ctx.say("follow.location_not_found")) from exc
    typed = postcode if postcode is not None else ctx.text
    try:
        pc4 = normalise_postcode(typed)[:4]
        return ctx.services.book.lookup(pc4)
    except InvalidPostcode as exc:
        raise BadAnswer(ctx.say("follow.bad_area")) from exc
    except UnknownPostcode as exc:
        raise BadAnswer(ctx.say("follow.unknown_area", pc4=exc.postcode[:4])) from exc


def ask_area(ctx: FlowContext) -> OutgoingMessage:
    """Ask for the four digits of a postcode, or a shared location."""
    return replace(ctx.say("follow.ask_area"), request_location=True)


def area_list(ctx: FlowContext) -> str:
    """The areas the sender follows, for a message (`7511 Enschede, 1012 Amsterdam`)."""
    if ctx.participant is None:
        return "-"
    areas = []
    for row in followed_areas_of(ctx.session, participant=ctx.participant):
        try:
            areas.append(f"{row.pc4} {ctx.services.book.lookup(row.pc4).place}")
        except (InvalidPostcode, UnknownPostcode):
            areas.append(row.pc4)
    return ", ".join(areas) or "-"


def store_area(ctx: FlowContext, place: Place) -> Transition:
    """Follow the area (a new follower after consent) and say so."""
    if ctx.participant is None:
        opt_in(ctx)
        ctx.participant = start_following(
            ctx.session,
            identity=ctx.identity,
            language=ctx.lang,
            consent_version=ctx.services.settings.privacy_statement_version,
            consent_at=datetime.fromisoformat(ctx.data["consent_at"]),
            now=ctx.now,
        )
        event = "follower_registered"
    else:
        event = "area_followed"
    try:
        added = follow_area(ctx.session, participant=ctx.participant, place=place)
    except TooManyAreas:
        return Finish((ctx.say("follow.too_many", max=MAX_FOLLOWED_AREAS, areas=area_list(ctx)),))
    if added:
        audit(
            ctx.session,
            now=ctx.now,
            actor=f"identity:{ctx.identity.id}",
            event=event,
            subject=f"participant:{ctx.participant.id}",
            detail={"channel": ctx.message.channel.value},
        )
    key = "follow.followed" if added else "follow.already"
    return Finish((ctx.say(key, pc4=place.pc4, place=place.place),))


class FollowStep(StrEnum):
    """The steps of following an area."""

    AREA = "area"
    CONSENT = "consent"


class FollowFlow(Flow):
    """VOLG [postcode]: ask the area (digits or a location), the consent of a newcomer, then follow it."""

    name = "follow"

    def __init__(self, postcode: str | None = None) -> None:
        self._postcode = postcode

    def steps(self) -> Mapping[str, Step]:
        """The table of steps."""
        return {
            FollowStep.AREA: Step(ask_area, self.on_area),
            FollowStep.CONSENT: Step(self.ask_consent, self.on_consent),
        }

    def begin(self, ctx: FlowContext) -> Transition:
        """On chats only; with the postcode typed after VOLG, straight to consent (or done)."""
        if ctx.message.channel not in FOLLOW_CHANNELS:
            return Finish((ctx.say("follow.chat_only"),))
        if self._postcode is None:
            return Goto(FollowStep.AREA)
        try:
            place = area_place(ctx, self._postcode)
        except BadAnswer as problem:
            return Goto(FollowStep.AREA, say=(problem.say,))
        return self._to_consent(ctx, place)

    def on_area(self, ctx: FlowContext) -> Transition:
        """Read the area; a newcomer is asked for consent first."""
        return self._to_consent(ctx, area_place(ctx))

    def _to_consent(self, ctx: FlowContext, place: Place) -> Transition:
        return to_follow_consent(ctx, place, FollowStep.CONSENT)

    def ask_consent(self, ctx: FlowContext) -> OutgoingMessage:
        """The short privacy statement for following an area (16+)."""
        return ask_follow_consent(ctx)

    def on_consent(self, ctx: FlowContext) -> Transition:
        """JA follows the area; NEE ends with nothing stored."""
        return on_follow_consent(ctx)


def to_follow_consent(ctx: FlowContext, place: Place, consent: StrEnum) -> Transition:
    """A participant follows the area at once; a newcomer is asked for consent first (step `consent`)."""
    if ctx.participant is not None:
        return store_area(ctx, place)
    ctx.data["pc4"] = place.pc4
    return Goto(consent)


def ask_follow_consent(ctx: FlowContext) -> OutgoingMessage:
    """The short privacy statement for following an area: what is kept on this channel (16+)."""
    settings = ctx.services.settings
    return ctx.ask_yes_no(
        f"follow.consent_{ctx.message.channel.value}",
        pc4=ctx.data["pc4"],
        url=settings.privacy_url(ctx.lang),
    )


def on_follow_consent(ctx: FlowContext) -> Transition:
    """JA follows the area; NEE ends with nothing stored."""
    answer = yes_or_no(ctx.text)
    if answer is Answer.NO:
        return Finish((ctx.say("follow.no_consent"),))
    if answer is None:
        return Retry(ctx.say("follow.consent_retry"))
    ctx.data["consent_at"] = ctx.now.isoformat()
    return store_area(ctx, ctx.services.book.lookup(ctx.data["pc4"]))


def unfollow(ctx: FlowContext, postcode: str | None) -> list[OutgoingMessage]:
    """VOLG NIET [postcode]: stop following an area; with none left, an area-only follower is erased."""
    participant = ctx.participant
    areas = followed_areas_of(ctx.session, participant=participant) if participant is not None else []
    if participant is None or not areas:
        return [ctx.say("follow.none_followed")]
    if postcode is None:
        if len(areas) > 1:
            return [ctx.say("follow.which_area", areas=area_list(ctx))]
        pc4 = areas[0].pc4
    else:
        try:
            pc4 = normalise_postcode(postcode)[:4]
        except InvalidPostcode:
            return [ctx.say("follow.bad_area")]
    if not unfollow_area(ctx.session, participant=participant, pc4=pc4):
        return [ctx.say("follow.not_followed", pc4=pc4, areas=area_list(ctx))]
    audit(
        ctx.session,
        now=ctx.now,
        actor=f"identity:{ctx.identity.id}",
        event="area_unfollowed",
        subject=f"participant:{participant.id}",
    )
    if len(areas) == 1 and is_area_only(participant):
        # Nothing left to alert them about: keep nothing either (they may follow again any time).
        erase_participant(ctx.session, participant=participant, now=ctx.now, reason="unsubscribed")
        ctx.participant = None
        return [ctx.say("follow.unfollowed_last", pc4=pc4)]
    return [ctx.say("follow.unfollowed", pc4=pc4, areas=area_list(ctx))]


def show_follower_data(ctx: FlowContext) -> OutgoingMessage:
    """MIJN GEGEVENS for an area-only follower: the chat identity, the areas, the consent."""
    participant = ctx.participant
    assert participant is not None
    if ctx.message.channel is ChannelKind.WHATSAPP:
        identity = ctx.t("follow.identity_whatsapp", phone=mask_phone(ctx.message.sender))
    else:
        identity = ctx.t(f"follow.identity_{ctx.identity.channel.value}")
    consent_date = "-"
    if participant.consent_at is not None:
        local = participant.consent_at.astimezone(ZoneInfo(ctx.services.settings.timezone))
        consent_date = f"{local:%d-%m-%Y}"
    return ctx.say(
        "mydata.follower",
        identity=identity,
        areas=area_list(ctx),
        version=participant.consent_version or "-",
        consent_date=consent_date,
    )
