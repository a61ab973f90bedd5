"""Leaving: STOP at once (any channel, any moment), or a confirmed unsubscribe from free text; and START.

Both erase the personal data and keep only a keyed hash of the number as an opt-out record, so that
an SMS opt-out is honoured even after the erasure.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from bot.flows.engine import Answer, Finish, Flow, FlowContext, Goto, Retry, Step, Transition, yes_or_no
from bot.messages import OutgoingMessage
from storage.outbound import forget_outbound
from storage.participants import (
    PHONE_CHANNELS,
    audit,
    clear_opt_out,
    erase_participant,
    identities_of,
    record_opt_out,
    remember_address,
)
from storage.relays import erase_relays
from storage.tips import forget_tipster


def opt_out(ctx: FlowContext, *, source: str) -> bool:
    """Erase the person's data (if registered) and record the opt-out; returns whether they were registered.

    The caller has already ended any active conversation of this identity.
    """
    # A coordinator's neighbourhood groups go with them: nothing is relayed on their behalf.
    erase_relays(ctx.session, identity_ids=own_identity_ids(ctx), now=ctx.now)

    hashes: set[str] = set()
    if ctx.message.channel in PHONE_CHANNELS:
        hashes.add(ctx.identity.address_hash)
    participant = ctx.participant
    registered = participant is not None
    # Tips stay for the control room, without the number (a participant's are handled by the erasure).
    forget_tipster(ctx.session, identity_ids=[ctx.identity.id or 0], participant_id=None)
    # Messages still waiting for this person are wiped with the rest (the STOP reply comes after).
    forget_outbound(ctx.session, identity_ids=[ctx.identity.id or 0])
    if participant is not None:
        if participant.phone_hash:
            hashes.add(participant.phone_hash)
        others = identities_of(ctx.session, participant=participant)
        erase_participant(ctx.session, participant=participant, now=ctx.now, reason="unsubscribed")
        for identity in others:
            identity.opted_out = True
            identity.opted_out_at = ctx.now
            ctx.session.add(identity)
        ctx.participant = None
    ctx.identity.opted_out = True
    ctx.identity.opted_out_at = ctx.now
    ctx.identity.address_enc = None
    ctx.identity.participant_id = None
    ctx.session.add(ctx.identity)
    for key in hashes:
        record_opt_out(ctx.session, phone_hash=key, now=ctx.now)
    audit(
        ctx.session,
        now=ctx.now,
        actor=f"identity:{ctx.identity.id}",
        event="opted_out",
        subject=f"identity:{ctx.identity.id}",
        detail={"channel": ctx.message.channel.value, "source": source, "was_registered": registered},
    )
    return registered


def own_identity_ids(ctx: FlowContext) -> list[int]:
    """The sender's identity and, when registered, every identity of their registration."""
    identities = [ctx.identity]
    if ctx.participant is not None:
        identities += identities_of(ctx.session, participant=ctx.participant)
    return sorted({i.id for i in identities if i.id is not None})


def stop_now(ctx: FlowContext) -> list[OutgoingMessage]:
    """STOP and its synonyms: opt out at once and say how to come back."""
    registered = opt_out(ctx, source="keyword")
    # On a call (9 in the menu) `say` takes the `_call` texts: the way back is calling, not sending START.
    return [ctx.say("unsubscribe.stopped" if registered else "unsubscribe.stopped_unregistered")]


def opt_in(ctx: FlowContext) -> bool:
    """START after STOP: the identity and its number may get messages again; True when it had opted out."""
    was_out = ctx.identity.opted_out
    ctx.identity.opted_out = False
    ctx.identity.opted_out_at = None
    remember_address(ctx.session, vault=ctx.services.vault, identity=ctx.identity, address=ctx.message.sender)
    ctx.session.add(ctx.identity)
    if ctx.message.channel in PHONE_CHANNELS:
        clear_opt_out(ctx.session, phone_hash=ctx.identity.address_hash)
    if was_out:
        audit(
            ctx.session,
            now=ctx.now,
            actor=f"identity:{ctx.identity.id}",
            event="opted_in",
            subject=f"identity:{ctx.identity.id}",
            detail={"channel": ctx.message.channel.value},
        )
    return was_out


class UnsubscribeStep(StrEnum):
    """The one step of a confirmed unsubscribe."""

    CONFIRM = "confirm"


class UnsubscribeFlow(Flow):
    """A free-text wish to leave ("ik wil me afmelden"): confirm, then erase."""

    name = "unsubscribe"
    intents = ("unsubscribe",)

    def steps(self) -> Mapping[str, Step]:
        """The table of steps."""
        return {UnsubscribeStep.CONFIRM: Step(self.ask_confirm, self.on_confirm)}

    def begin(self, ctx: FlowContext) -> Transition:
        """Only a participant has something to erase."""
        if ctx.participant is None:
            return Finish((ctx.say("unsubscribe.not_registered"),))
        return Goto(UnsubscribeStep.CONFIRM)

    def ask_confirm(self, ctx: FlowContext) -> OutgoingMessage:
        """Ask whether they really want to leave (and lose their data)."""
        return ctx.ask_yes_no("unsubscribe.confirm")

    def on_confirm(self, ctx: FlowContext) -> Transition:
        """JA erases; NEE keeps everything."""
        answer = yes_or_no(ctx.text)
        if answer is None:
            return Retry(ctx.say("common.yes_no_retry"))
        if answer is Answer.NO:
            return Finish((ctx.say("unsubscribe.kept"),))
        # The erasure deletes this identity's conversation state itself; finish without touching it.
        registered = opt_out(ctx, source="confirmed")
        return Finish((ctx.say("unsubscribe.done" if registered else "unsubscribe.not_registered"),))
