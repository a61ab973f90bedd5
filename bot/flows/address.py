"""Changing addresses: replace the home address, add an extra one (with a weekly window), remove one."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from enum import StrEnum

from bot.flows.engine import (
    Answer,
    Finish,
    Flow,
    FlowContext,
    Goto,
    Retry,
    Step,
    Transition,
    normalise,
    yes_or_no,
)
from bot.flows.places import address_from_data, confirm_place, describe_row, read_address
from bot.flows.windows import InvalidWindow, Window, format_window, is_always, parse_window
from bot.messages import OutgoingMessage
from storage.models import Address, Participant
from storage.participants import (
    MAX_ADDRESSES,
    add_address,
    addresses_of,
    audit,
    remove_address,
    set_address,
)


class AddressStep(StrEnum):
    """The steps of the address flow."""

    CHOOSE = "choose"
    HOME = "home"
    HOME_CONFIRM = "home_confirm"
    EXTRA = "extra"
    EXTRA_CONFIRM = "extra_confirm"
    WINDOW = "window"
    REMOVE_CHOOSE = "remove_choose"
    REMOVE_CONFIRM = "remove_confirm"


class Choice(StrEnum):
    """What a person can do with their addresses."""

    CHANGE = "change"
    ADD = "add"
    REMOVE = "remove"


_CHOICE_WORDS = {
    Choice.CHANGE: {
        "wijzigen",
        "wijzig",
        "verhuizen",
        "verhuisd",
        "woonadres",
        "nieuw adres",
        "change",
        "home",
    },
    Choice.ADD: {"toevoegen", "extra", "erbij", "werkadres", "tweede adres", "add", "extra adres", "work"},
    Choice.REMOVE: {"verwijderen", "verwijder", "weg", "schrappen", "remove", "delete"},
}


_MOVED_WORDS = frozenset({"verhuisd", "verhuis", "verhuizen", "verhuizing", "moved", "moving", "relocated"})
_EXTRA_WORDS = frozenset({"werkadres", "werk", "tweede", "extra", "second", "work", "toevoegen", "add"})


def window_text(ctx: FlowContext, address: Address) -> str:
    """An address's window in the person's language, or the word for "always"."""
    if not address.window_days or address.window_start is None or address.window_end is None:
        return ctx.t("address.always")
    return format_window(
        Window(address.window_days, address.window_start, address.window_end),
        day_names=ctx.t("address.day_names").split(","),
        every_day=ctx.t("address.every_day"),
    )


def address_lines(ctx: FlowContext, participant: Participant) -> str:
    """The person's addresses, one per line: home first, extra ones with their window."""
    lines = []
    for row in addresses_of(ctx.session, participant=participant):
        key = "address.line_home" if row.slot == 1 else "address.line_extra"
        lines.append(
            ctx.t(
                key, slot=row.slot, address=describe_row(row), place=row.place, window=window_text(ctx, row)
            )
        )
    return "\n".join(lines)


class AddressFlow(Flow):
    """Replace, add or remove an address of a registered participant."""

    name = "address"
    intents = ("change_address",)

    def steps(self) -> Mapping[str, Step]:
        """The table of steps."""
        return {
            AddressStep.CHOOSE: Step(self.ask_choice, self.on_choice),
            AddressStep.HOME: Step(self.ask_home, self.on_home),
            AddressStep.HOME_CONFIRM: Step(self.ask_confirm, self.on_home_confirm),
            AddressStep.EXTRA: Step(self.ask_extra, self.on_extra),
            AddressStep.EXTRA_CONFIRM: Step(self.ask_confirm, self.on_extra_confirm),
            AddressStep.WINDOW: Step(self.ask_window, self.on_window),
            AddressStep.REMOVE_CHOOSE: Step(self.ask_remove_choice, self.on_remove_choice),
            AddressStep.REMOVE_CONFIRM: Step(self.ask_remove_confirm, self.on_remove_confirm),
        }

    def begin(self, ctx: FlowContext) -> Transition:
        """Only participants have addresses; others are told how to register."""
        if ctx.participant is None:
            return Finish((ctx.say("address.not_registered"),))
        # A free-text wish that already says what to do skips the menu ("ik ben verhuisd").
        words = set(normalise(ctx.text).replace(",", " ").split())
        if words & _MOVED_WORDS:
            return Goto(AddressStep.HOME)
        if words & _EXTRA_WORDS and Choice.ADD in self.choices(ctx):
            return Goto(AddressStep.EXTRA)
        if len(addresses_of(ctx.session, participant=self._participant(ctx))) == 1:
            # One address: nearly always a move; the question says how to add one instead.
            ctx.data["single"] = True
            return Goto(AddressStep.HOME)
        return Goto(AddressStep.CHOOSE)

    def _participant(self, ctx: FlowContext) -> Participant:
        if ctx.participant is None:
            raise _NotRegistered
        return ctx.participant

    def choices(self, ctx: FlowContext) -> list[Choice]:
        """What can be done now: add only below the maximum, remove only with an extra address."""
        count = len(addresses_of(ctx.session, participant=self._participant(ctx)))
        options = [Choice.CHANGE]
        if count < MAX_ADDRESSES:
            options.append(Choice.ADD)
        if count > 1:
            options.append(Choice.REMOVE)
        return options

    def ask_choice(self, ctx: FlowContext) -> OutgoingMessage:
        """Show the addresses and the options."""
        options = self.choices(ctx)
        return ctx.say(
            "address.choose",
            buttons=tuple(ctx.t(f"address.button_{c.value}") for c in options),
            addresses=address_lines(ctx, self._participant(ctx)),
            options=" / ".join(ctx.t(f"address.button_{c.value}") for c in options),
        )

    def on_choice(self, ctx: FlowContext) -> Transition:
        """Go to the chosen branch."""
        options = self.choices(ctx)
        value = normalise(ctx.text)
        chosen = None
        if (value.isascii() and value.isdigit()) and 1 <= int(value) <= len(options):
            chosen = options[int(value) - 1]
        for option in options:
            if value == ctx.t(f"address.button_{option.value}").casefold() or value in _CHOICE_WORDS[option]:
                chosen = option
        if chosen is None and _looks_like_address(ctx.text):
            # A postcode typed here is the new home address: confirm it rather than ask to choose.
            ctx.data["address"] = read_address(ctx)
            return Goto(AddressStep.HOME_CONFIRM)
        if chosen is None:
            return Retry(
                ctx.say(
                    "address.choose_retry",
                    options=" / ".join(ctx.t(f"address.button_{c.value}") for c in options),
                )
            )
        if chosen is Choice.CHANGE:
            return Goto(AddressStep.HOME)
        if chosen is Choice.ADD:
            return Goto(AddressStep.EXTRA)
        extras = [a for a in addresses_of(ctx.session, participant=self._participant(ctx)) if a.slot > 1]
        if len(extras) == 1:
            ctx.data["remove_slot"] = extras[0].slot
            return Goto(AddressStep.REMOVE_CONFIRM)
        return Goto(AddressStep.REMOVE_CHOOSE)

    # replace home --------------------------------------------------------------------------
    def ask_home(self, ctx: FlowContext) -> OutgoingMessage:
        """Ask for the new home address (with one address on file, also how to add one instead)."""
        if ctx.data.get("address_denied"):
            return ctx.say("address.ask_again")
        if ctx.data.get("single"):
            return ctx.say("address.ask_new_home_single", buttons=(ctx.t("address.button_add"),))
        return ctx.say("address.ask_new_home")

    def on_home(self, ctx: FlowContext) -> Transition:
        """Validate and look up the new home address (or, with one on file, go to adding one)."""
        value = normalise(ctx.text)
        if ctx.data.get("single") and (
            value in _CHOICE_WORDS[Choice.ADD] or value == ctx.t("address.button_add").casefold()
        ):
            return Goto(AddressStep.EXTRA)
        if ctx.data.get("single") and (
            value in _CHOICE_WORDS[Choice.CHANGE] or value == ctx.t("address.button_change").casefold()
        ):
            ctx.data.pop("single")  # they answered the menu they knew: ask plainly
            return Goto(AddressStep.HOME)
        ctx.data["address"] = read_address(ctx)
        return Goto(AddressStep.HOME_CONFIRM)

    def ask_confirm(self, ctx: FlowContext) -> OutgoingMessage:
        """Show the place found for the address."""
        return confirm_place(ctx, ctx.data["address"])

    def on_home_confirm(self, ctx: FlowContext) -> Transition:
        """JA replaces the home address; NEE asks again."""
        answer = yes_or_no(ctx.text)
        if answer is None:
            return Retry(ctx.say("common.yes_no_retry"))
        if answer is Answer.NO:
            ctx.data["address_denied"] = True
            return Goto(AddressStep.HOME)
        participant = self._participant(ctx)
        set_address(
            ctx.session, participant=participant, slot=1, address=address_from_data(ctx.data["address"])
        )
        self._audit(ctx, participant, "address_changed", 1)
        return Finish((ctx.say("address.home_saved", place=ctx.data["address"]["place"]),))

    # add extra -----------------------------------------------------------------------------
    def ask_extra(self, ctx: FlowContext) -> OutgoingMessage:
        """Ask for the extra address."""
        return ctx.say("address.ask_again" if ctx.data.get("address_denied") else "address.ask_extra")

    def on_extra(self, ctx: FlowContext) -> Transition:
        """Validate and look up the extra address."""
        ctx.data["address"] = read_address(ctx)
        return Goto(AddressStep.EXTRA_CONFIRM)

    def on_extra_confirm(self, ctx: FlowContext) -> Transition:
        """JA asks for the window; NEE asks for the address again."""
        answer = yes_or_no(ctx.text)
        if answer is None:
            return Retry(ctx.say("common.yes_no_retry"))
        if answer is Answer.NO:
            ctx.data["address_denied"] = True
            return Goto(AddressStep.EXTRA)
        return Goto(AddressStep.WINDOW)

    def ask_window(self, ctx: FlowContext) -> OutgoingMessage:
        """Ask when the extra address counts."""
        return ctx.say("address.ask_window", buttons=(ctx.t("address.always_button"),))

    def on_window(self, ctx: FlowContext) -> Transition:
        """Store the extra address with its window (or none: always)."""
        address = address_from_data(ctx.data["address"])
        if not is_always(ctx.text) and normalise(ctx.text) != ctx.t("address.always_button").casefold():
            try:
                window = parse_window(ctx.text)
            except InvalidWindow:
                return Retry(ctx.say("address.window_invalid"))
            address = replace(
                address, window_days=window.days, window_start=window.start, window_end=window.end
            )
        participant = self._participant(ctx)
        if len(addresses_of(ctx.session, participant=participant)) >= MAX_ADDRESSES:
            return Finish((ctx.say("address.limit", max=MAX_ADDRESSES),))
        row = add_address(ctx.session, participant=participant, address=address)
        self._audit(ctx, participant, "address_added", row.slot)
        return Finish(
            (ctx.say("address.extra_saved", address=describe_row(row), window=window_text(ctx, row)),)
        )

    # remove --------------------------------------------------------------------------------
    def ask_remove_choice(self, ctx: FlowContext) -> OutgoingMessage:
        """Ask which extra address to remove."""
        extras = [a for a in addresses_of(ctx.session, participant=self._participant(ctx)) if a.slot > 1]
        return ctx.say(
            "address.ask_remove",
            buttons=tuple(str(a.slot) for a in extras),
            addresses=address_lines(ctx, self._participant(ctx)),
        )

    def on_remove_choice(self, ctx: FlowContext) -> Transition:
        """Remember which slot to remove, then confirm."""
        extras = {a.slot for a in addresses_of(ctx.session, participant=self._participant(ctx)) if a.slot > 1}
        value = normalise(ctx.text)
        if not (value.isascii() and value.isdigit()) or int(value) not in extras:
            return Retry(ctx.say("address.remove_retry", options=" / ".join(str(s) for s in sorted(extras))))
        ctx.data["remove_slot"] = int(value)
        return Goto(AddressStep.REMOVE_CONFIRM)

    def ask_remove_confirm(self, ctx: FlowContext) -> OutgoingMessage:
        """Ask to confirm the removal, showing the address."""
        slot = int(ctx.data["remove_slot"])
        row = next(a for a in addresses_of(ctx.session, participant=self._participant(ctx)) if a.slot == slot)
        return ctx.ask_yes_no("address.confirm_remove", address=describe_row(row), place=row.place)

    def on_remove_confirm(self, ctx: FlowContext) -> Transition:
        """JA removes the address; NEE keeps it."""
        answer = yes_or_no(ctx.text)
        if answer is None:
            return Retry(ctx.say("common.yes_no_retry"))
        if answer is Answer.NO:
            return Finish((ctx.say("address.remove_cancelled"),))
        participant = self._participant(ctx)
        slot = int(ctx.data["remove_slot"])
        if any(a.slot == slot for a in addresses_of(ctx.session, participant=participant)):
            remove_address(ctx.session, participant=participant, slot=slot)
            self._audit(ctx, participant, "address_removed", slot)
        return Finish((ctx.say("address.removed"),))

    def _audit(self, ctx: FlowContext, participant: Participant, event: str, slot: int) -> None:
        audit(
            ctx.session,
            now=ctx.now,
            actor=f"identity:{ctx.identity.id}",
            event=event,
            subject=f"participant:{participant.id}",
            detail={"slot": slot},
        )


def _looks_like_address(text: str) -> bool:
    return _POSTCODE_START.match(text) is not None


_POSTCODE_START = re.compile(r"^\s*[1-9]\d{3}\s?[A-Za-z]{2}\b")


class _NotRegistered(Exception):
    """The participant was erased while their address flow was open."""
