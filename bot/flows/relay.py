"""Neighbourhood groups as relays: a coordinator registers a group (any channel), or a Telegram group itself.

A coordinator sends BUURTAPP and answers: consent to the relay rules (SAAR), the group's name, where it
chats, its area (four-digit postcodes, or a circle around their own postcode), a rough member count, then
confirms. An admin of a Telegram group the bot was added to sends `/buurtapp` in the group: the same
questions, shorter (the name comes from the group), answered only by them, and the bot posts the alerts
in the group itself. Nothing is stored until the last answer; of an address only its postcode's centre.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlmodel import select

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
    load_state,
    normalise,
    yes_or_no,
)
from bot.flows.places import read_address
from bot.messages import OutgoingMessage
from storage.geo import InvalidPostcode, Place, UnknownPostcode
from storage.models import Relay, RelayPlatform
from storage.participants import find_identity, identities_of, remember_address, touch_sender
from storage.relays import (
    RELAY_RULES_VERSION,
    RelayDraft,
    circle_area,
    postcode_area,
    register_relay,
    relays_of,
)

START_WORDS = frozenset(
    {
        "buurtapp",
        "/buurtapp",
        "buurtgroep",
        "/buurtgroep",
        "groep aanmelden",
        "buurtapp aanmelden",
        "relay",
        "/relay",
        "neighbourhood group",
        "register group",
    }
)
AROUND_WORDS = frozenset(
    {"rond mijn adres", "rond mijn huis", "rond adres", "mijn adres", "around my address", "my address"}
)
PLATFORM_WORDS: dict[RelayPlatform, frozenset[str]] = {
    RelayPlatform.WHATSAPP: frozenset({"whatsapp", "whats app", "wa", "app"}),
    RelayPlatform.TELEGRAM: frozenset({"telegram", "tg"}),
    RelayPlatform.OTHER: frozenset({"anders", "other", "overig", "iets anders", "signal", "facebook"}),
}
MAX_GROUP_NAME = 64
MAX_POSTCODES = 10
MIN_RADIUS_KM, MAX_RADIUS_KM = 0.5, 5.0
MIN_MEMBERS, MAX_MEMBERS = 2, 100_000
_SEPARATORS = re.compile(r"[\s,;/&+]+|\b(?:en|and)\b", re.IGNORECASE)
_PC4 = re.compile(r"[1-9]\d{3}")
_DISTANCE = re.compile(
    r"(?P<number>\d+(?:[.,]\d+)?)\s*(?P<unit>km|kilometers?|kilometres?|m|meters?|metres?)?\b", re.IGNORECASE
)
_COUNT = re.compile(r"\d+(?:[.,]\d+)*")
_THOUSANDS = re.compile(r"\d{1,3}(?:\.\d{3})+")
_NAME_BLOCKED = re.compile(r"https?://|www\.|[<>{}\[\]\\]|[\x00-\x1f]", re.IGNORECASE)


class RelayStep(StrEnum):
    """The steps of a relay registration; a flow's `ORDER` says which it asks, in which order."""

    RULES = "rules"
    NAME = "name"
    PLATFORM = "platform"
    AREA = "area"
    ADDRESS = "address"
    RADIUS = "radius"
    MEMBERS = "members"
    CONFIRM = "confirm"


def group_member(ctx: FlowContext) -> str | None:
    """The Telegram user who wrote a group message (the raw update's `from`), or None."""
    for key in ("message", "callback_query"):
        part = ctx.message.raw.get(key)
        if isinstance(part, Mapping):
            sender = part.get("from")
            if isinstance(sender, Mapping) and sender.get("id") is not None:
                return str(sender["id"])
    return None


def group_title(ctx: FlowContext) -> str | None:
    """The group chat's title from the raw update, when Telegram sent one."""
    message = ctx.message.raw.get("message")
    chat = message.get("chat") if isinstance(message, Mapping) else None
    title = " ".join(str(chat.get("title") or "").split()) if isinstance(chat, Mapping) else ""
    return title[:MAX_GROUP_NAME] or None


def read_postcodes(ctx: FlowContext) -> list[Place]:
    """The four-digit postcodes in an answer (`7511 7512`, `7511, 7512 en 7513`). Raises BadAnswer."""
    tokens = [t for t in _SEPARATORS.split(ctx.text) if t]
    if not tokens or not all(_PC4.fullmatch(t) for t in tokens):
        raise BadAnswer(ctx.say("relay.area_bad"))
    unique = list(dict.fromkeys(tokens))
    if len(unique) > MAX_POSTCODES:
        raise BadAnswer(ctx.say("relay.area_too_many", max=MAX_POSTCODES))
    places, unknown = [], []
    for pc4 in unique:
        try:
            places.append(ctx.services.book.lookup(pc4))
        except (UnknownPostcode, InvalidPostcode):
            unknown.append(pc4)
    if unknown:
        raise BadAnswer(ctx.say("relay.area_unknown", postcodes=", ".join(unknown)))
    return places


def read_km(text: str) -> float | None:
    """A distance in kilometres (`1,5`, `1.5 km`, `500 m`, `ongeveer 2 kilometer`), else None."""
    match = _DISTANCE.search(text)
    if match is None:
        return None
    value = float(match.group("number").replace(",", "."))
    unit = (match.group("unit") or "km").casefold()
    return value / 1000 if unit in ("m", "meter", "metres", "meters") else value


def read_count(text: str) -> int | None:
    """A whole number (`80`, `ongeveer 80`, `1.000` as Dutch write a thousand), else None (also `2,5`)."""
    match = _COUNT.search(text)
    if match is None:
        return None
    number = match.group()
    if _THOUSANDS.fullmatch(number):
        return int(number.replace(".", ""))
    return int(number) if number.isdigit() else None


def km_text(km: float) -> str:
    """`1.5` → `1,5`; `2.0` → `2`: how a Dutch reader writes kilometres."""
    return f"{km:g}".replace(".", ",")


def relay_summary(ctx: FlowContext) -> list[OutgoingMessage]:
    """MIJN GEGEVENS for a coordinator: the groups they registered (AVG art. 15), or nothing."""
    ids = [ctx.identity.id] if ctx.identity.id is not None else []
    if ctx.participant is not None:
        ids += [i.id for i in identities_of(ctx.session, participant=ctx.participant) if i.id is not None]
    lines = []
    for relay in relays_of(ctx.session, identity_ids=ids):
        if not relay.active:
            continue
        if "circle" in relay.area:
            km = km_text(float(relay.area["circle"]["radius_m"]) / 1000)
            area = ctx.t("relay.mydata_circle", km=km)
        else:
            area = ", ".join(p["pc4"] for p in relay.area.get("postcodes", ()))
        lines.append(
            ctx.t(
                "relay.mydata_line",
                name=relay.group_name,
                platform=ctx.t(f"relay.platform.{relay.platform.value}"),
                area=area,
                members=relay.estimated_members,
            )
        )
    return [ctx.say("relay.mydata", groups="\n".join(lines))] if lines else []


class RelayFlow(Flow):
    """A coordinator registers a neighbourhood group as a relay, on any channel, after the SAAR rules."""

    name = "relay"
    ORDER: ClassVar[tuple[RelayStep, ...]] = (
        RelayStep.RULES,
        RelayStep.NAME,
        RelayStep.PLATFORM,
        RelayStep.AREA,
        RelayStep.ADDRESS,
        RelayStep.RADIUS,
        RelayStep.MEMBERS,
        RelayStep.CONFIRM,
    )

    def steps(self) -> Mapping[str, Step]:
        """The table of steps this flow asks."""
        table = {
            RelayStep.RULES: Step(self.ask_rules, self.on_rules),
            RelayStep.NAME: Step(self.ask_name, self.on_name),
            RelayStep.PLATFORM: Step(self.ask_platform, self.on_platform),
            RelayStep.AREA: Step(self.ask_area, self.on_area),
            RelayStep.ADDRESS: Step(self.ask_address, self.on_address),
            RelayStep.RADIUS: Step(self.ask_radius, self.on_radius),
            RelayStep.MEMBERS: Step(self.ask_members, self.on_members),
            RelayStep.CONFIRM: Step(self.ask_confirm, self.on_confirm),
        }
        return {step: table[step] for step in self.ORDER}

    def intercepts(self, ctx: FlowContext) -> bool:
        """BUURTAPP (and its synonyms) in a private chat starts a registration, whatever is going on."""
        if ctx.message.group_id is not None:
            return False
        return normalise(ctx.text).split("@", 1)[0] in START_WORDS

    def begin(self, ctx: FlowContext) -> Transition:
        """Start with the relay rules."""
        return Goto(RelayStep.RULES)

    # moving on -------------------------------------------------------------------------------
    def _next(self, ctx: FlowContext, after: RelayStep) -> Transition:
        """The next step this flow asks that is still open, or saving the relay after the last one."""
        for step in self.ORDER[self.ORDER.index(after) + 1 :]:
            if step is RelayStep.NAME and ctx.data.get("group_name"):
                continue
            if step in (RelayStep.ADDRESS, RelayStep.RADIUS) and not ctx.data.get("around"):
                continue
            return Goto(step)
        return self._save(ctx)

    def prompt(
        self, ctx: FlowContext, key: str, *, buttons: tuple[str, ...] = (), **params: Any
    ) -> OutgoingMessage:
        """A question of this flow."""
        return ctx.say(key, buttons=buttons, **params)

    # rules -----------------------------------------------------------------------------------
    def ask_rules(self, ctx: FlowContext) -> OutgoingMessage:
        """The SAAR relay rules and the question whether the group follows them."""
        return self.prompt(ctx, "relay.rules", buttons=ctx.yes_no())

    def on_rules(self, ctx: FlowContext) -> Transition:
        """JA records when the rules were accepted; NEE ends with nothing stored."""
        answer = yes_or_no(ctx.text)
        if answer is None:
            return Retry(ctx.say("relay.rules_retry"))
        if answer is Answer.NO:
            return Finish((ctx.say("relay.no_consent"),))
        ctx.data["rules_at"] = ctx.now.isoformat()
        return self._next(ctx, RelayStep.RULES)

    # name ------------------------------------------------------------------------------------
    def ask_name(self, ctx: FlowContext) -> OutgoingMessage:
        """Ask the group's name."""
        return self.prompt(ctx, "relay.ask_name")

    def on_name(self, ctx: FlowContext) -> Transition:
        """A plain name of at most 64 characters, no links."""
        text = " ".join(ctx.text.split())
        if not text:
            return Retry(ctx.say("relay.name_empty"))
        if len(text) > MAX_GROUP_NAME:
            return Retry(ctx.say("relay.name_too_long", max=MAX_GROUP_NAME))
        if _NAME_BLOCKED.search(text) or not any(ch.isalnum() for ch in text):
            return Retry(ctx.say("relay.name_invalid"))
        ctx.data["group_name"] = text
        return self._next(ctx, RelayStep.NAME)

    # platform --------------------------------------------------------------------------------
    def _platform_labels(self, ctx: FlowContext) -> tuple[str, ...]:
        return tuple(ctx.t(f"relay.platform.{p.value}") for p in RelayPlatform)

    def ask_platform(self, ctx: FlowContext) -> OutgoingMessage:
        """Ask where the group chats."""
        return self.prompt(ctx, "relay.ask_platform", buttons=self._platform_labels(ctx))

    def on_platform(self, ctx: FlowContext) -> Transition:
        """WhatsApp, Telegram or other (by name, button or number)."""
        value = normalise(ctx.text)
        options = list(RelayPlatform)
        for number, platform in enumerate(options, start=1):
            names = {
                *PLATFORM_WORDS[platform],
                ctx.t(f"relay.platform.{platform.value}").casefold(),
                str(number),
            }
            if value in names:
                ctx.data["platform"] = platform.value
                return self._next(ctx, RelayStep.PLATFORM)
        return Retry(ctx.say("relay.platform_retry"))

    # area ------------------------------------------------------------------------------------
    def ask_area(self, ctx: FlowContext) -> OutgoingMessage:
        """Ask for postcodes, or a circle around the coordinator's address."""
        return self.prompt(ctx, "relay.ask_area", buttons=(ctx.t("relay.around_button"),))

    def on_area(self, ctx: FlowContext) -> Transition:
        """Four-digit postcodes, or ROND MIJN ADRES (then postcode, house number and a radius)."""
        value = normalise(ctx.text)
        if value in AROUND_WORDS or value == ctx.t("relay.around_button").casefold():
            ctx.data["around"] = True
            return self._next(ctx, RelayStep.AREA)
        places = read_postcodes(ctx)
        ctx.data.pop("around", None)
        ctx.data["area"] = postcode_area(places)
        ctx.data["municipalities"] = sorted({p.municipality_code for p in places})
        ctx.data["area_text"] = ", ".join(p.pc4 for p in places)
        return self._next(ctx, RelayStep.AREA)

    def ask_address(self, ctx: FlowContext) -> OutgoingMessage:
        """Ask the coordinator's postcode and house number (only the postcode's centre is kept)."""
        return self.prompt(ctx, "relay.ask_address")

    def on_address(self, ctx: FlowContext) -> Transition:
        """Read the address; keep its PC4 place, not the house number."""
        found = read_address(ctx)
        ctx.data["centre"] = {
            "pc4": found["postcode"][:4],
            "lat": found["lat"],
            "lon": found["lon"],
            "place": found["place"],
            "municipality_code": found["municipality_code"],
        }
        return self._next(ctx, RelayStep.ADDRESS)

    def ask_radius(self, ctx: FlowContext) -> OutgoingMessage:
        """Ask how far around the address the group reaches."""
        return self.prompt(
            ctx,
            "relay.ask_radius",
            place=ctx.data["centre"]["place"],
            min=km_text(MIN_RADIUS_KM),
            max=km_text(MAX_RADIUS_KM),
        )

    def on_radius(self, ctx: FlowContext) -> Transition:
        """A distance in kilometres within the limits."""
        km = read_km(ctx.text)
        if km is None or not MIN_RADIUS_KM <= km <= MAX_RADIUS_KM:
            return Retry(ctx.say("relay.radius_bad", min=km_text(MIN_RADIUS_KM), max=km_text(MAX_RADIUS_KM)))
        centre = ctx.data["centre"]
        radius_m = km * 1000
        place = ctx.services.book.lookup(centre["pc4"])
        nearby = ctx.services.book.within(place.lat, place.lon, radius_m)
        ctx.data["area"] = circle_area(place, radius_m=radius_m)
        ctx.data["municipalities"] = sorted(
            {centre["municipality_code"], *(p.municipality_code for p in nearby)}
        )
        ctx.data["area_text"] = ctx.t("relay.area_circle", km=km_text(km), place=centre["place"])
        return self._next(ctx, RelayStep.RADIUS)

    # members ---------------------------------------------------------------------------------
    def ask_members(self, ctx: FlowContext) -> OutgoingMessage:
        """Ask roughly how many members the group has."""
        return self.prompt(ctx, "relay.ask_members")

    def on_members(self, ctx: FlowContext) -> Transition:
        """A whole number of members (`ongeveer 80`, `~80`, `80 leden`)."""
        number = read_count(ctx.text)
        if number is None or not MIN_MEMBERS <= number <= MAX_MEMBERS:
            return Retry(ctx.say("relay.members_bad", min=MIN_MEMBERS, max=MAX_MEMBERS))
        ctx.data["members"] = number
        return self._next(ctx, RelayStep.MEMBERS)

    # confirm and save ------------------------------------------------------------------------
    def ask_confirm(self, ctx: FlowContext) -> OutgoingMessage:
        """Show everything once more."""
        return self.prompt(
            ctx,
            "relay.confirm",
            buttons=ctx.yes_no(),
            name=ctx.data["group_name"],
            platform=ctx.t(f"relay.platform.{ctx.data['platform']}"),
            area=ctx.data["area_text"],
            members=ctx.data["members"],
        )

    def on_confirm(self, ctx: FlowContext) -> Transition:
        """JA saves the relay; NEE stores nothing."""
        answer = yes_or_no(ctx.text)
        if answer is None:
            return Retry(ctx.say("common.yes_no_retry"))
        if answer is Answer.NO:
            return Finish((ctx.say("relay.not_saved"),))
        return self._next(ctx, RelayStep.CONFIRM)

    def _draft(self, ctx: FlowContext, platform: RelayPlatform) -> RelayDraft:
        return RelayDraft(
            group_name=ctx.data["group_name"],
            platform=platform,
            area=ctx.data["area"],
            municipalities=ctx.data["municipalities"],
            estimated_members=int(ctx.data["members"]),
            language=ctx.lang,
            rules_version=RELAY_RULES_VERSION,
            rules_at=datetime.fromisoformat(ctx.data["rules_at"]),
        )

    def _save(self, ctx: FlowContext) -> Transition:
        """Store the relay and say how relaying works."""
        register_relay(
            ctx.session,
            coordinator=ctx.identity,
            draft=self._draft(ctx, RelayPlatform(ctx.data["platform"])),
            now=ctx.now,
        )
        replies = [ctx.say("relay.done", name=ctx.data["group_name"])]
        if ctx.data["platform"] == RelayPlatform.TELEGRAM.value:
            # A Telegram group can have the bot post itself, so nobody has to forward anything.
            replies.append(ctx.say("relay.telegram_hint", bot=ctx.services.settings.telegram.bot_username))
        return Finish(tuple(replies))


class RelayGroupFlow(RelayFlow):
    """A Telegram group registers itself: `/buurtapp` in the group, a short dialogue with whoever sent it.

    The router runs it on the group chat's own identity (its state, its replies); the starter's user id
    is kept in the data and only their messages answer. The bot then posts alerts in the group itself.
    """

    name = "relay_group"
    group_chat = True
    ORDER = (
        RelayStep.RULES,
        RelayStep.NAME,
        RelayStep.AREA,
        RelayStep.ADDRESS,
        RelayStep.RADIUS,
        RelayStep.MEMBERS,
    )

    def intercepts(self, ctx: FlowContext) -> bool:
        """`/buurtapp` (or `/buurtapp@OurBot`) in a group, unless someone else's dialogue is open there."""
        command, _, bot = normalise(ctx.text).partition("@")
        if ctx.message.group_id is None or command not in {"/buurtapp", "/buurtgroep", "/relay"}:
            return False
        if bot and bot != ctx.services.settings.telegram.bot_username.casefold():
            return False
        assert ctx.identity.id is not None
        state = load_state(ctx.session, identity_id=ctx.identity.id)
        return state is None or state.flow != self.name or state.data.get("starter") == group_member(ctx)

    def hears_in_group(self, ctx: FlowContext, data: Mapping[str, Any]) -> bool:
        """Only the person who sent `/buurtapp` answers the questions."""
        starter = data.get("starter")
        return starter is not None and starter == group_member(ctx)

    def begin(self, ctx: FlowContext) -> Transition:
        """Remember who started; take the group's name from Telegram when it sent one."""
        starter = group_member(ctx)
        if starter is None:
            return Finish()
        if self._taken_by_someone_else(ctx, starter):
            return Finish((ctx.reply(ctx.t("relay.group_taken")),))
        ctx.data["starter"] = starter
        title = group_title(ctx)
        if title:
            ctx.data["group_name"] = title
        return Goto(RelayStep.RULES)

    def _taken_by_someone_else(self, ctx: FlowContext, starter: str) -> bool:
        """Whether another member coordinates this group's relay: they alone may change it (or STOP)."""
        if ctx.identity.opted_out:
            return False  # the bot was removed from the group since: that registration has lapsed
        current = ctx.session.exec(
            select(Relay).where(Relay.group_identity_id == ctx.identity.id, Relay.active == True)  # noqa: E712
        ).first()
        if current is None:
            return False
        me = find_identity(
            ctx.session, vault=ctx.services.vault, channel=ctx.message.channel, address=starter
        )
        return me is None or me.id != current.coordinator_identity_id

    def prompt(
        self, ctx: FlowContext, key: str, *, buttons: tuple[str, ...] = (), **params: Any
    ) -> OutgoingMessage:
        """A question in the group, without a keyboard (it would pop up for every member), asking for a reply.

        With Telegram's privacy mode a bot in a group only sees commands and replies to its own messages.
        """
        text = ctx.t(key, **params) + "\n" + ctx.t("relay.group_reply_hint")
        return ctx.reply(text)

    def ask_rules(self, ctx: FlowContext) -> OutgoingMessage:
        """The SAAR rules as the group's admin agrees to them."""
        return self.prompt(ctx, "relay.group_rules")

    def _save(self, ctx: FlowContext) -> Transition:
        """Store the relay for this group (replacing an earlier one) and say so in the group."""
        coordinator = touch_sender(
            ctx.session,
            vault=ctx.services.vault,
            channel=ctx.message.channel,
            address=ctx.data["starter"],
            now=ctx.now,
            language=ctx.lang,
        ).identity
        group = ctx.identity
        # Added again after a kick, the group may get messages again.
        group.opted_out, group.opted_out_at = False, None
        remember_address(
            ctx.session, vault=ctx.services.vault, identity=group, address=ctx.message.group_id or ""
        )
        ctx.session.add(group)
        for earlier in ctx.session.exec(select(Relay).where(Relay.group_identity_id == group.id)):
            earlier.active = False
            ctx.session.add(earlier)
        register_relay(
            ctx.session,
            coordinator=coordinator,
            draft=self._draft(ctx, RelayPlatform.TELEGRAM),
            now=ctx.now,
            group_identity=group,
        )
        return Finish((ctx.reply(ctx.t("relay.group_done", name=ctx.data["group_name"])),))
