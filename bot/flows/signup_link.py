"""The Telegram deep link of the public sign-up page (`/start join_…`): binds this chat to the sign-up.

The page stored the participant when the number's code was typed; the link, good once and for a short
while, tells us which Telegram chat is theirs. Only its keyed hash is stored (storage/signups.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.flows.engine import Finish, Flow, FlowContext, Step, Transition
from storage.participants import addresses_of
from storage.signups import LINK_PREFIX, LinkInvalid, use_link
from storage.vocabulary import ChannelKind


class SignupLinkFlow(Flow):
    """One step: the link binds the chat and welcomes the person, or says it no longer works."""

    name = "signup_link"

    def steps(self) -> Mapping[str, Step]:
        """No steps: the link is answered at once."""
        return {}

    def intercepts(self, ctx: FlowContext) -> bool:
        """A Telegram `/start` with a sign-up link's payload, in a private chat."""
        payload = ctx.message.start_payload or ""
        return (
            ctx.message.channel is ChannelKind.TELEGRAM
            and ctx.message.group_id is None
            and payload.startswith(LINK_PREFIX)
        )

    def begin(self, ctx: FlowContext) -> Transition:
        """Bind the chat to the sign-up's participant, once."""
        try:
            participant, identity = use_link(
                ctx.session,
                vault=ctx.services.vault,
                token=ctx.message.start_payload or "",
                chat_id=ctx.message.sender,
                now=ctx.now,
            )
        except LinkInvalid:
            return Finish((ctx.say("signup.telegram_link_invalid"),))
        identity.language = participant.language
        ctx.session.add(identity)
        ctx.participant = participant
        homes = addresses_of(ctx.session, participant=participant)
        place = homes[0].place if homes else ""
        return Finish((ctx.say("signup.telegram_linked", place=place),))
