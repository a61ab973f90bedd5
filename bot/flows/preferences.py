"""VOORKEUREN, GEEN/WEL <soort>, STIL <uren>/STIL UIT: which alerts a person gets, and when.

Keyword commands in the style of OEFENINGEN AAN/UIT: one message changes one thing and says what now
holds, so they work the same on SMS, WhatsApp and Telegram without a conversation to keep. Quiet hours
are read by the weekly-window parser of extra addresses (`bot.flows.windows`): "STIL 23-7",
"STIL ma-vr 22:30-6:30". They hold back only alerts that are not urgent (`storage.preferences`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import time
from enum import StrEnum

from bot.flows.engine import FlowContext, normalise
from bot.flows.windows import InvalidWindow, Window, format_window, parse_window
from bot.messages import OutgoingMessage
from storage.models import ActionType
from storage.participants import audit
from storage.preferences import Preferences, QuietHours, preferences_of, save_preferences

# What people call each kind of action, Dutch and English, singular and plural.
TYPE_WORDS: dict[str, ActionType] = {
    **dict.fromkeys(
        [
            "vermissing", "vermissingen", "vermist", "vermisten", "vermiste persoon", "vermiste personen",
            "missing", "missing person", "missing persons",
        ],
        ActionType.MISSING_PERSON,
    ),
    **dict.fromkeys(["overval", "overvallen", "robbery", "robberies"], ActionType.ROBBERY),
    **dict.fromkeys(
        [
            "doorrijden", "doorrijder", "doorrijders", "doorrijden na ongeval", "aanrijding", "aanrijdingen",
            "hit and run", "hit-and-run", "hit and runs",
        ],
        ActionType.HIT_AND_RUN,
    ),
    **dict.fromkeys(["inbraak", "inbraken", "burglary", "burglaries"], ActionType.BURGLARY),
    **dict.fromkeys(
        [
            "voertuig", "voertuigen", "gestolen voertuig", "gestolen voertuigen", "autodiefstal",
            "vehicle", "vehicles", "stolen vehicle", "stolen vehicles",
        ],
        ActionType.STOLEN_VEHICLE,
    ),
    **dict.fromkeys(["overig", "overige", "other", "others"], ActionType.OTHER),
}  # fmt: skip
SKIP_WORDS = ("geen", "skip", "no")
ALLOW_WORDS = ("wel", "allow", "yes")
QUIET_WORDS = ("stil", "stille uren", "quiet", "quiet hours")
OFF_WORDS = frozenset({"uit", "off", "geen", "none", "nooit", "never"})
WHOLE_DAY_START, WHOLE_DAY_END = time(0, 0), time(23, 59)
_COMMAND = re.compile(r"^(\S+(?: uren| hours)?)\s+(.+)$")


class Change(StrEnum):
    """What a preference command changes."""

    SKIP = "skip"
    ALLOW = "allow"
    QUIET = "quiet"
    QUIET_OFF = "quiet_off"


@dataclass(frozen=True)
class PreferenceCommand:
    """One preference command as typed: a kind to skip or allow, or quiet hours to set (text) or end."""

    change: Change
    action_type: ActionType | None = None
    hours: str = ""


def preference_command(text: str) -> PreferenceCommand | None:
    """The command a message is (GEEN INBRAAK, WEL INBRAAK, STIL 23-7, STIL UIT, English alike), else None.

    Only a known kind after GEEN/WEL counts, so that "geen idee" stays free text (a tip, a question).
    """
    value = normalise(text)
    match = _COMMAND.match(value)
    if match is None:
        return None
    word, rest = match.groups()
    if word in SKIP_WORDS and rest in TYPE_WORDS:
        return PreferenceCommand(Change.SKIP, TYPE_WORDS[rest])
    if word in ALLOW_WORDS and rest in TYPE_WORDS:
        return PreferenceCommand(Change.ALLOW, TYPE_WORDS[rest])
    if word in QUIET_WORDS:
        if rest in OFF_WORDS:
            return PreferenceCommand(Change.QUIET_OFF)
        if any(ch.isdigit() for ch in rest):
            return PreferenceCommand(Change.QUIET, hours=rest)
    return None


def describe_preferences(ctx: FlowContext, preferences: Preferences) -> tuple[str, str]:
    """The kinds skipped and the quiet hours, in the person's words ("-" / "geen" when none)."""
    skipped = ", ".join(ctx.t(f"preferences.kind.{t.value}") for t in ActionType if t in preferences.skipped)
    quiet = preferences.quiet
    hours = ctx.t("preferences.no_quiet")
    if quiet is not None:
        hours = format_window(
            Window(quiet.days or "1234567", quiet.start, quiet.end),
            day_names=ctx.t("address.day_names").split(","),
            every_day=ctx.t("address.every_day"),
        )
    return skipped or ctx.t("preferences.nothing_skipped"), hours


def show_preferences(ctx: FlowContext) -> list[OutgoingMessage]:
    """VOORKEUREN: what the person gets now, and the words that change it."""
    participant = ctx.participant
    if participant is None or participant.id is None:
        return [ctx.say("preferences.not_registered")]
    skipped, hours = describe_preferences(ctx, preferences_of(ctx.session, participant_id=participant.id))
    return [ctx.say("preferences.summary", skipped=skipped, quiet=hours)]


def change_preference(ctx: FlowContext, command: PreferenceCommand) -> list[OutgoingMessage]:
    """Apply one preference command, audited, and say what now holds."""
    participant = ctx.participant
    if participant is None or participant.id is None:
        return [ctx.say("preferences.not_registered")]
    current = preferences_of(ctx.session, participant_id=participant.id)
    if command.change in (Change.SKIP, Change.ALLOW):
        assert command.action_type is not None
        kind = command.action_type
        skipped = current.skipped | {kind} if command.change is Change.SKIP else current.skipped - {kind}
        if len(skipped) == len(ActionType):
            # Skipping every kind is leaving: say so, rather than keep someone who gets nothing.
            return [ctx.say("preferences.all_skipped")]
        updated = replace(current, skipped=frozenset(skipped))
        name = ctx.t(f"preferences.kind.{kind.value}")
        if command.change is Change.ALLOW:
            key = "preferences.allowed"
        elif kind is ActionType.MISSING_PERSON:
            key = "preferences.skipped_missing"
        else:
            key = "preferences.skipped"
        reply = ctx.say(key, kind=name, word=ctx.t(f"preferences.word.{kind.value}"))
        detail = {"change": command.change.value, "type": kind.value}
    elif command.change is Change.QUIET_OFF:
        updated = replace(current, quiet=None)
        reply = ctx.say("preferences.quiet_off")
        detail = {"change": command.change.value}
    else:
        try:
            window = parse_window(command.hours)
        except InvalidWindow:
            return [ctx.say("preferences.quiet_bad")]
        if (window.start, window.end) == (WHOLE_DAY_START, WHOLE_DAY_END):
            # Days without hours ("STIL weekend") would hold back every alert that can wait, all day.
            return [ctx.say("preferences.quiet_bad")]
        days = None if window.days == "1234567" else window.days
        updated = replace(current, quiet=QuietHours(days, window.start, window.end))
        _, hours = describe_preferences(ctx, updated)
        reply = ctx.say("preferences.quiet_set", quiet=hours)
        detail = {"change": command.change.value}
    if updated != current:
        save_preferences(ctx.session, participant_id=participant.id, preferences=updated, now=ctx.now)
        audit(
            ctx.session,
            now=ctx.now,
            actor=f"identity:{ctx.identity.id}",
            event="preferences_changed",
            subject=f"participant:{participant.id}",
            detail=detail,
        )
    return [reply]
