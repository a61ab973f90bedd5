"""The small engine every conversation shares: a table of `StrEnum` steps, state in the database.

A flow is a table step → (prompt, handler). The handler reads the person's answer and returns a
transition: `Goto` another step (its prompt is sent), `Retry` the same step with an explanation, or
`Finish`. State (flow, step, data) lives in `ConversationState`, written with a compare-and-set on
its `version`, so two workers never both advance the same conversation.
"""

from __future__ import annotations

import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any, ClassVar

from sqlalchemy import Table, bindparam, delete, update
from sqlalchemy.sql.dml import Update
from sqlmodel import Session, col, select

from bot.clock import Clock
from bot.config import Settings
from bot.messages import IncomingMessage, OutgoingMessage
from bot.texts import Catalogue
from nlu.types import ParseResult
from storage.crypto import DataVault
from storage.geo import PostcodeBook
from storage.models import ChannelIdentity, ConversationState, Participant
from storage.vocabulary import ChannelKind

MAX_RETRIES = 5
RETRIES_KEY = "_retries"
_NOT_LOADED: Any = object()


class StaleState(RuntimeError):
    """Another worker changed this conversation since we read it; the message must be handled again."""


class BadAnswer(Exception):
    """Raised by a step's helpers for an answer it cannot use; the engine turns it into a `Retry`."""

    def __init__(self, say: OutgoingMessage) -> None:
        super().__init__(say.text)
        self.say = say


@dataclass(frozen=True)
class Services:
    """The long-lived objects a flow step may use."""

    vault: DataVault
    book: PostcodeBook
    catalogue: Catalogue
    settings: Settings
    clock: Clock


@dataclass
class FlowContext:
    """One message being handled: who sent it, what we know of them, and the flow's scratch data."""

    session: Session
    services: Services
    message: IncomingMessage
    identity: ChannelIdentity
    participant: Participant | None
    now: datetime
    text: str
    data: dict[str, Any] = field(default_factory=dict)
    parsed: ParseResult | None = None
    found_state: ConversationState | None = field(default=_NOT_LOADED, repr=False)
    """The sender's conversation as the router found it; the router sets it, so flows need not ask again."""

    def sender_state(self) -> ConversationState | None:
        """The sender's conversation state when the message came in (loaded here if nobody set it)."""
        if self.found_state is _NOT_LOADED:
            assert self.identity.id is not None
            self.found_state = load_state(self.session, identity_id=self.identity.id)
        return self.found_state

    @property
    def lang(self) -> str:
        """The language the person reads (the identity's choice; Dutch by default)."""
        return self.identity.language or "nl"

    def t(self, key: str, **params: Any) -> str:
        """A catalogue text in the person's language."""
        return self.services.catalogue.render(self.lang, key, **params)

    def say(
        self, key: str, *, buttons: tuple[str, ...] = (), request_contact: bool = False, **params: Any
    ) -> OutgoingMessage:
        """A reply to the sender with a catalogue text (on a call: its `<key>_call` variant, if any)."""
        if self.message.channel is ChannelKind.VOICE and self.services.catalogue.has(f"{key}_call"):
            # Written to be heard: no action code spelled out letter by letter, 112 digit by digit.
            key = f"{key}_call"
        return self.reply(self.t(key, **params), buttons=buttons, request_contact=request_contact)

    def reply(
        self, text: str, *, buttons: tuple[str, ...] = (), request_contact: bool = False
    ) -> OutgoingMessage:
        """A reply to the sender with a text already rendered."""
        return OutgoingMessage(
            channel=self.message.channel,
            recipient=self.message.sender,
            text=text,
            buttons=buttons,
            request_contact=request_contact,
        )

    def yes_no(self) -> tuple[str, str]:
        """The JA/NEE buttons in the person's language."""
        return (self.t("common.yes_button"), self.t("common.no_button"))

    def ask_yes_no(self, key: str, **params: Any) -> OutgoingMessage:
        """A question answered with JA or NEE."""
        return self.say(key, buttons=self.yes_no(), **params)


Prompt = Callable[[FlowContext], OutgoingMessage]
Handler = Callable[[FlowContext], "Transition"]


@dataclass(frozen=True)
class Step:
    """A step of a flow: what we ask, and what we do with the answer."""

    prompt: Prompt
    handle: Handler


@dataclass(frozen=True)
class Goto:
    """Move to a step and ask its question, after saying `say`."""

    step: StrEnum
    say: tuple[OutgoingMessage, ...] = ()


@dataclass(frozen=True)
class Retry:
    """Stay on the step: explain what was wrong (the step's buttons are kept)."""

    say: OutgoingMessage


@dataclass(frozen=True)
class Finish:
    """End the flow with these messages."""

    say: tuple[OutgoingMessage, ...] = ()


Transition = Goto | Retry | Finish


class Flow(ABC):
    """A conversation: a name, a table of steps, how it begins; optionally intents that start it.

    `intercepts` lets a flow claim a message before the active flow sees it (an action code in a tip).
    """

    name: ClassVar[str]
    intents: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def steps(self) -> Mapping[str, Step]:
        """The table of steps, keyed by the step's StrEnum value."""

    @abstractmethod
    def begin(self, ctx: FlowContext) -> Transition:
        """What happens when the flow starts (usually `Goto(first step)`)."""

    def intercepts(self, ctx: FlowContext) -> bool:
        """Whether this flow should take the message whatever else is going on."""
        return False

    # Group dialogues: a flow that talks with a whole group chat, e.g. to register it as a
    # relay. The router runs it on the group's own identity, replies go to the group, and only the
    # messages `hears_in_group` accepts (its starter's) advance it; `intercepts` opens it.
    group_chat: ClassVar[bool] = False

    def hears_in_group(self, ctx: FlowContext, data: Mapping[str, Any]) -> bool:
        """In a group, whether a message answers this flow's open question there (default: no)."""
        return False


def load_state(session: Session, *, identity_id: int) -> ConversationState | None:
    """The identity's conversation state, if any."""
    return session.get(ConversationState, identity_id)


def is_expired(state: ConversationState, *, now: datetime, timeout_minutes: int) -> bool:
    """Whether a conversation has been silent longer than the timeout."""
    updated = state.updated_at if state.updated_at.tzinfo else state.updated_at.replace(tzinfo=UTC)
    return now - updated > timedelta(minutes=timeout_minutes)


def set_state(
    session: Session,
    *,
    identity_id: int,
    flow: str,
    step: str,
    data: Mapping[str, Any],
    now: datetime,
    current: ConversationState | None,
) -> None:
    """Write the conversation state; raises StaleState when someone else changed it meanwhile."""
    if current is None:
        session.add(
            ConversationState(
                identity_id=identity_id, flow=flow, step=step, data=dict(data), updated_at=now, version=1
            )
        )
        session.flush()
        return
    # Core on the session's connection: the ORM's bulk UPDATE had nothing to synchronise here and its
    # preparation cost more than the statement (one per conversation step).
    result = session.connection().execute(
        _advance_statement(),
        {
            "b_identity_id": identity_id,
            "b_version": current.version,
            "b_flow": flow,
            "b_step": step,
            "b_data": dict(data),
            "b_now": now,
            "b_next": current.version + 1,
        },
    )
    if result.rowcount != 1:
        raise StaleState(identity_id)
    session.expire(current)


@cache
def _advance_statement() -> Update:
    # Built on first use and kept: one state write per conversation step.
    table: Table = ConversationState.__table__  # type: ignore[attr-defined]
    return (
        update(table)
        .where(table.c.identity_id == bindparam("b_identity_id"), table.c.version == bindparam("b_version"))
        .values(
            flow=bindparam("b_flow"),
            step=bindparam("b_step"),
            data=bindparam("b_data", type_=table.c.data.type),
            updated_at=bindparam("b_now", type_=table.c.updated_at.type),
            version=bindparam("b_next"),
        )
    )


def clear_state(session: Session, *, current: ConversationState) -> None:
    """Delete the conversation state; raises StaleState when someone else changed it meanwhile."""
    result = session.execute(
        delete(ConversationState)
        .where(
            col(ConversationState.identity_id) == current.identity_id,
            col(ConversationState.version) == current.version,
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 1) != 1:
        still_there = session.exec(
            select(ConversationState.identity_id).where(ConversationState.identity_id == current.identity_id)
        ).first()
        # Already gone (an erasure in this same step deleted it) is fine; changed by someone else is not.
        if still_there is not None:
            raise StaleState(current.identity_id)
    if current in session:
        session.expunge(current)


class FlowEngine:
    """Runs flows: starts them, feeds them answers, re-asks, cancels; persists their state."""

    def __init__(self, flows: Mapping[str, Flow]) -> None:
        self.flows = dict(flows)

    def start(self, ctx: FlowContext, flow: Flow, current: ConversationState | None) -> list[OutgoingMessage]:
        """Start a flow (replacing whatever flow was going on) and return its first messages."""
        ctx.data = {}
        transition = flow.begin(ctx)
        return self._apply(ctx, flow, transition, current=current, step=None)

    def advance(self, ctx: FlowContext, state: ConversationState) -> list[OutgoingMessage]:
        """Feed the message to the active flow's current step."""
        flow = self.flows[state.flow]
        step = flow.steps()[state.step]
        ctx.data = dict(state.data)
        try:
            transition = step.handle(ctx)
        except BadAnswer as problem:
            transition = Retry(problem.say)
        return self._apply(ctx, flow, transition, current=state, step=state.step)

    def knows(self, state: ConversationState) -> bool:
        """Whether the state names a flow and step this engine can run (old versions may not)."""
        flow = self.flows.get(state.flow)
        return flow is not None and state.step in flow.steps()

    def reprompt(self, ctx: FlowContext, state: ConversationState) -> OutgoingMessage:
        """The current step's question again (after a keyword answered mid-flow)."""
        ctx.data = dict(state.data)
        return self.flows[state.flow].steps()[state.step].prompt(ctx)

    def _apply(
        self,
        ctx: FlowContext,
        flow: Flow,
        transition: Transition,
        *,
        current: ConversationState | None,
        step: str | None,
    ) -> list[OutgoingMessage]:
        if isinstance(transition, Finish):
            if current is not None:
                clear_state(ctx.session, current=current)
            return list(transition.say)
        if isinstance(transition, Retry):
            if step is None:
                raise RuntimeError(f"flow {flow.name} cannot retry before it started")
            retries = int(ctx.data.get(RETRIES_KEY, 0)) + 1
            if retries > MAX_RETRIES:
                # Five wrong answers in a row: likely an auto-responder or someone stuck; stop asking.
                if current is not None:
                    clear_state(ctx.session, current=current)
                return [ctx.say("router.too_many_retries")]
            ctx.data[RETRIES_KEY] = retries
            prompt = flow.steps()[step].prompt(ctx)
            assert ctx.identity.id is not None
            # Saving on a retry too: it bumps the version and keeps the flow from expiring.
            set_state(
                ctx.session,
                identity_id=ctx.identity.id,
                flow=flow.name,
                step=step,
                data=ctx.data,
                now=ctx.now,
                current=current,
            )
            return [
                replace(
                    transition.say,
                    buttons=prompt.buttons,
                    request_contact=prompt.request_contact,
                    request_location=prompt.request_location,
                    keypad=prompt.keypad,
                )
            ]
        next_step = transition.step.value
        ctx.data.pop(RETRIES_KEY, None)
        prompt = flow.steps()[next_step].prompt(ctx)
        assert ctx.identity.id is not None
        set_state(
            ctx.session,
            identity_id=ctx.identity.id,
            flow=flow.name,
            step=next_step,
            data=ctx.data,
            now=ctx.now,
            current=current,
        )
        return [*transition.say, prompt]


class Answer(StrEnum):
    """A reply to a yes/no question."""

    YES = "yes"
    NO = "no"


# The yes and no words people type, with the typos and the English they use; one place for every flow.
# Only words that cannot mean the other answer: "goed" alone is yes, "niet goed" stays unknown (None).
_YES = frozenset(
    {
        # Dutch
        "ja", "j", "jah", "jaa", "jaaa", "jaja", "jawel", "jazeker", "ja zeker", "zeker", "zeker weten",
        "jep", "jepp", "jup", "jip", "jes", "jahoor", "ja hoor", "ja graag", "graag", "ja hoor graag",
        "klopt", "dat klopt", "ja klopt", "klopt ja", "klopt helemaal", "dat is juist", "juist", "precies",
        "prima", "akkoord", "ga akkoord", "ik ga akkoord", "goed", "is goed", "ja goed", "helemaal goed",
        "oke", "oké", "okee", "okey", "oki", "okido", "ok", "okay", "tuurlijk", "natuurlijk",
        "correct", "ja correct", "doe maar", "ja doe maar", "yes hoor",
        # English
        "yes", "y", "ye", "yea", "yeah", "yep", "yup", "yess", "yes please", "sure", "of course", "ofc",
        "agree", "i agree", "that's right", "thats right", "right",
        "👍", "✅", "👌",
    }
)  # fmt: skip
_NO = frozenset(
    {
        # Dutch
        "nee", "n", "ne", "neen", "neee", "nee hoor", "nee dank je", "nee dankje", "nee dank u",
        "nee bedankt",
        "nee, bedankt", "liever niet", "nee liever niet", "niet", "klopt niet", "nee klopt niet",
        "dat klopt niet", "niet akkoord", "ik ga niet akkoord", "nope", "nop", "nah", "nein", "fout",
        "nee fout", "onjuist", "helemaal niet", "zeker niet", "absoluut niet", "nooit",
        # English
        "no", "nö", "no thanks", "no thank you", "not", "wrong", "incorrect", "not right", "no way",
        "👎", "❌",
    }
)  # fmt: skip
# Letters held down ("jaaaa", "neeeee", "yesss") are read as the word itself.
_HELD_YES = re.compile(r"j+a+|y+e+s+|y+e+p+|j+e+p+")
_HELD_NO = re.compile(r"n+e+e+|n+o+|n+o+p+e+")


_YES_LEADS = frozenset(
    {
        "ja", "jazeker", "jawel", "jep", "yes", "yep", "klopt", "correct", "prima", "akkoord",
        "ok", "oke", "okay",
    }
)  # fmt: skip
_NO_LEADS = frozenset({"nee", "neen", "no", "nope"})
_NEGATIONS = frozenset({"nee", "niet", "geen", "no", "not", "nope", "never", "nooit", "wrong", "fout"})
MAX_ANSWER_WORDS = 8


def normalise(text: str) -> str:
    """Case-folded, accents kept, whitespace collapsed, trailing punctuation dropped."""
    folded = " ".join(text.casefold().split())
    return folded.strip(" .!?,;:")


def yes_or_no(text: str) -> Answer | None:
    """JA, NEE (or their many spellings, Dutch or English), else None."""
    value = normalise(text)
    if value in _YES or _HELD_YES.fullmatch(value):
        return Answer.YES
    if value in _NO or _HELD_NO.fullmatch(value):
        return Answer.NO
    # "ja, dat is mijn nummer" / "nee, verkeerd": the first word decides, unless the rest contradicts it.
    words = re.findall(r"[\w']+", value)
    if len(words) < 2 or len(words) > MAX_ANSWER_WORDS:
        return None
    first, rest = words[0], set(words[1:])
    if first in _YES_LEADS and not rest & _NEGATIONS:
        return Answer.YES
    if first in _NO_LEADS and not rest & _YES_LEADS:
        return Answer.NO
    return None


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def clean_text(text: str) -> str:
    """The message text without control and direction characters, NFC-normalised and stripped."""
    return _CONTROL.sub("", unicodedata.normalize("NFC", text or "")).strip()
