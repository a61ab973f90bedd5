"""The answer to "Wilt u deelnemer blijven? Antwoord JA": JA keeps the registration, NEE leaves.

The question goes out from the scheduler days before the answer may come, far past a flow's
30-minute timeout, so the open question lives in `ReconfirmRequest` and this flow claims the answer
(`intercepts`) whenever the person has an open question and is not in another conversation. Only an
explicit yes counts as a sign of life; STOP is the router's and erases at once as always.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from bot.flows.engine import Finish, Flow, FlowContext, Retry, Step, Transition, normalise
from bot.flows.unsubscribe import opt_out
from bot.messages import OutgoingMessage
from storage.reconfirmations import close_request, confirm, open_request
from storage.vocabulary import ChannelKind

YES = frozenset(
    {"ja", "j", "jaa", "ja graag", "jazeker", "ja hoor", "ja blijven", "blijven", "yes", "y", "👍"}
)
NO = frozenset({"nee", "n", "neen", "nee bedankt", "no", "no thanks", "👎"})
# Asked in a call (someone who signed up by phone): 1 to stay, 9 to leave, as the question says.
CALL_YES = frozenset({"1"})
CALL_NO = frozenset({"9"})


class ReconfirmStep(StrEnum):
    """The one step: the answer to the question."""

    ANSWER = "answer"


class ReconfirmFlow(Flow):
    """Takes the JA or NEE to the yearly reconfirmation question."""

    name = "reconfirm"

    def steps(self) -> Mapping[str, Step]:
        """The table of steps."""
        return {ReconfirmStep.ANSWER: Step(self.ask, self.on_answer)}

    def intercepts(self, ctx: FlowContext) -> bool:
        """A plain JA or NEE from a participant with an open question, outside any other conversation."""
        if ctx.participant is None or ctx.participant.id is None or ctx.message.group_id is not None:
            return False
        if _answer(ctx) is None:
            return False
        if ctx.sender_state() is not None:
            # The JA belongs to the question of the conversation going on (e.g. "is this your address?").
            return False
        return open_request(ctx.session, participant_id=ctx.participant.id) is not None

    def begin(self, ctx: FlowContext) -> Transition:
        """The intercepted message is the answer itself."""
        return self.on_answer(ctx)

    def ask(self, ctx: FlowContext) -> OutgoingMessage:
        """The short form of the question (the scheduler sends the full one)."""
        return ctx.say(
            "reconfirm.retry", buttons=(ctx.t("reconfirm.button_yes"), ctx.t("reconfirm.button_no"))
        )

    def on_answer(self, ctx: FlowContext) -> Transition:
        """JA: stay for another year. NEE: leave, erased as on unsubscribe."""
        answer = _answer(ctx)
        participant = ctx.participant
        if participant is None:
            return Finish()
        if answer is True:
            confirm(ctx.session, participant=participant, now=ctx.now)
            return Finish((ctx.say("reconfirm.stay"),))
        if answer is False:
            assert participant.id is not None
            close_request(ctx.session, participant_id=participant.id)
            opt_out(ctx, source="reconfirm")
            return Finish((ctx.say("reconfirm.left"),))
        return Retry(ctx.say("reconfirm.retry"))


def _answer(ctx: FlowContext) -> bool | None:
    """True for a yes, False for a no, None for anything else (keys count only on a call)."""
    text = normalise(ctx.text)
    on_call = ctx.message.channel is ChannelKind.VOICE
    if text in YES or (on_call and text in CALL_YES):
        return True
    if text in NO or (on_call and text in CALL_NO):
        return False
    return None
