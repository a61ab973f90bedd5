"""Tips: link a citizen's message to an action, store and forward it at once, ask one follow-up.

A message is linked to an action by, in this order: an answer to an operator's open question; an
action code in a deep link (`/start BN-4K7P`) or anywhere in the text; a reply to the alert message
itself; a second message within a few minutes of a tip (it extends that tip); and, for a message the
NLU calls a tip (or a bare photo or location), an alert the sender received for an action that is
still running (several: we ask which). The tip is stored and forwarded in the step's own transaction;
when where or when is missing we ask once ("Waar en hoe laat zag u dit?") and add the answer.

Tips through a neighbourhood group carry the relay: its link's `R<id>` (`TIP BN-4K7P R7`,
`/start BN-4K7P_R7`), or the Telegram group the bot posts in. In such a group a reply to the bot's post,
or a message that mentions the bot, is a tip on that post's action (or the group's latest running
one); the thanks go to the group, and no follow-up is asked there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from sqlmodel import Session, col, select

from bot.flows.engine import (
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
from bot.flows.keywords import keyword_of
from bot.flows.tip_facts import facts_from, towns_of
from bot.messages import OutgoingMessage
from nlu.keywords import KeywordParser
from storage.actions import CODE_PATTERN, CODE_PREFIX, action_with_code
from storage.db import after_commit
from storage.events import record_first_time
from storage.models import Action, ActionStatus, ConversationState, Tip
from storage.relays import RelayNotFound, latest_relay_action, relay_for_tip
from storage.tips import (
    CREATED,
    UPDATED,
    TipFacts,
    action_is_over,
    action_replied_to,
    close_answer,
    create_tip,
    ended_actions,
    extend_tip,
    late_tip,
    missing_where_when,
    received_actions,
    recent_tip,
    sender_hash,
    sender_history,
    tip_awaiting_answer,
)
from storage.vocabulary import GeoPoint


@dataclass(frozen=True)
class TipRules:
    """The limits of tip handling (abuse rules and the extension window)."""

    max_chars: int = 1000
    extend_minutes: int = 5
    late_hours: int = 24
    """How long after an action ended a message from someone it reached is kept as a late message."""
    rate_window_minutes: int = 10
    max_tips_per_window: int = 5
    max_messages_per_tip: int = 20
    webhook: bool = False
    """Whether forwards are queued for the control-room webhook (CONTROLROOM_WEBHOOK_URL is set)."""


class ChatWriter(Protocol):
    """Writes a tip version's message to the operators' chat, in the transaction that stores the version."""

    def __call__(self, session: Session, tip: Tip, *, action_code: str, event: str, now: datetime) -> None:
        """Queue the message for this version of the tip."""


class TipStep(StrEnum):
    """The questions the tip flow may ask."""

    CHOOSE = "choose"
    FOLLOWUP = "followup"


@dataclass(frozen=True)
class _Link:
    """Where a message belongs: an action (new tip), a tip (extension or answer), or a choice."""

    action: Action | None = None
    tip: Tip | None = None
    answer: bool = False
    choices: tuple[Action, ...] = ()


def action_code_in(text: str) -> str | None:
    """The action code in a text (`bn4k7p`, `BN 4K7P`, `BN-4K7P`), normalised; None without one."""
    match = CODE_PATTERN.search(text or "")
    return CODE_PREFIX + match.group(1).upper() if match else None


@dataclass(frozen=True)
class TipStored:
    """What a committed tip change asks of the background workers: a place to look up, media to fetch."""

    place: bool
    media: bool


class TipFlow(Flow):
    """Take a tip, link it to an action, store and forward it, ask where/when once, thank."""

    name = "tip"
    intents = ("give_tip",)

    def __init__(
        self,
        rules: TipRules | None = None,
        on_stored: Callable[[TipStored], None] | None = None,
        chat: ChatWriter | None = None,
    ) -> None:
        self.rules = rules or TipRules()
        self._on_stored = on_stored
        self._chat = chat
        self._links: dict[int, _Link] = {}

    def steps(self) -> Mapping[str, Step]:
        """The table of steps."""
        return {
            TipStep.CHOOSE: Step(self.ask_choice, self.on_choice),
            TipStep.FOLLOWUP: Step(self.ask_followup, self.on_followup),
        }

    # linking ---------------------------------------------------------------------------------

    def intercepts(self, ctx: FlowContext) -> bool:
        """Claim a message with a code, a deep link, a reply to an alert, or one that continues a tip."""
        link = self._explicit_link(ctx)
        if link is not None:
            state = ctx.sender_state()
            if state is not None and state.flow == self.name and self._answers_own_question(state, link):
                return False
        elif ctx.message.group_id is None and not _is_keyword(ctx.text):
            state = ctx.sender_state()
            if state is None or state.flow == self.name:
                link = self._continuing_link(ctx, in_tip_flow=state is not None)
        if link is None:
            return False
        self._links[id(ctx)] = link
        return True

    @staticmethod
    def _answers_own_question(state: ConversationState, link: _Link) -> bool:
        # The choice buttons are codes, and a follow-up answer may repeat the code: both are answers.
        if state.step == TipStep.CHOOSE:
            return True
        return link.action is not None and link.action.code == state.data.get("code")

    def _explicit_link(self, ctx: FlowContext) -> _Link | None:
        message = ctx.message
        code = action_code_in(message.start_payload or "") or action_code_in(ctx.text)
        if code is not None:
            action = action_with_code(ctx.session, code=code)
            # Not yet launched (a draft, or waiting for a second operator): no one was told the code.
            if action is not None and action.status not in (
                ActionStatus.DRAFT,
                ActionStatus.AWAITING_APPROVAL,
            ):
                return _Link(action=action)
        if message.reply_to_provider_id:
            action = action_replied_to(
                ctx.session,
                identity_id=ctx.identity.id or 0,
                channel=message.channel,
                provider_id=message.reply_to_provider_id,
            )
            if action is not None:
                return _Link(action=action)
        if message.group_id is not None:
            return self._group_link(ctx)
        return None

    def _group_link(self, ctx: FlowContext) -> _Link | None:
        """In a relay's Telegram group: a reply to the bot's post, or a message that mentions the bot."""
        try:
            source = relay_for_tip(ctx.session, vault=ctx.services.vault, message=ctx.message)
        except RelayNotFound:
            return None
        action_id = source.action_id
        mention = "@" + ctx.services.settings.telegram.bot_username.casefold()
        if action_id is None and mention in ctx.text.casefold():
            action_id = latest_relay_action(ctx.session, relay_id=source.relay_id, now=ctx.now)
        action = ctx.session.get(Action, action_id) if action_id is not None else None
        return _Link(action=action) if action is not None else None

    def _continuing_link(self, ctx: FlowContext, *, in_tip_flow: bool) -> _Link | None:
        identity_id = ctx.identity.id or 0
        answered = tip_awaiting_answer(ctx.session, identity_id=identity_id, now=ctx.now)
        if answered is not None:
            return _Link(tip=answered, answer=True)
        if in_tip_flow:
            return None  # the flow's own question takes the answer
        recent = recent_tip(
            ctx.session, identity_id=identity_id, since=ctx.now - timedelta(minutes=self.rules.extend_minutes)
        )
        if recent is not None and _has_content(ctx) and not _means_something_else(ctx.text):
            return _Link(tip=recent)
        if not ctx.text and (ctx.message.media or ctx.message.location):
            # A bare photo or location from someone who got an alert is a tip, whatever the NLU says.
            return self._received_link(ctx)
        return None

    def _received_link(self, ctx: FlowContext) -> _Link | None:
        participant_id = ctx.participant.id if ctx.participant else None
        actions = received_actions(
            ctx.session, identity_id=ctx.identity.id or 0, participant_id=participant_id, now=ctx.now
        )
        if not actions:
            # Nothing running: a message soon after an action ended is a late message on it.
            ended = ended_actions(
                ctx.session,
                identity_id=ctx.identity.id or 0,
                participant_id=participant_id,
                now=ctx.now,
                since=ctx.now - timedelta(hours=self.rules.late_hours),
            )
            return _Link(action=ended[0]) if ended else None
        if len(actions) == 1:
            return _Link(action=actions[0])
        return _Link(choices=tuple(actions[:9]))

    # beginning -------------------------------------------------------------------------------

    def begin(self, ctx: FlowContext) -> Transition:
        """Store the tip on the linked action (or ask which action); no link: say so politely."""
        link = self._links.pop(id(ctx), None) or self._received_link(ctx)
        if link is None:
            return Finish((ctx.say("router.no_action_for_tip"),))
        if link.tip is not None:
            return self._extend(ctx, link.tip, answer=link.answer)
        if link.choices:
            ctx.data["choices"] = [a.id for a in link.choices]
            ctx.data["pending"] = self._pending(ctx)
            return Goto(TipStep.CHOOSE)
        assert link.action is not None
        return self._new_tip(ctx, link.action, self._content(ctx))

    # choosing the action ---------------------------------------------------------------------

    def _choices(self, ctx: FlowContext) -> list[Action]:
        found = {
            a.id: a for a in ctx.session.exec(select(Action).where(col(Action.id).in_(ctx.data["choices"])))
        }
        return [found[i] for i in ctx.data["choices"] if i in found]

    def ask_choice(self, ctx: FlowContext) -> OutgoingMessage:
        """Which of the running actions the tip is about, numbered, with the codes as buttons."""
        actions = self._choices(ctx)
        lines = "\n".join(
            ctx.t("tip.choice_line", n=n, code=a.code, headline=a.headline) for n, a in enumerate(actions, 1)
        )
        return ctx.say("tip.which_action", buttons=tuple(a.code for a in actions), options=lines)

    def on_choice(self, ctx: FlowContext) -> Transition:
        """A number or a code picks the action; the waiting message becomes the tip."""
        actions = self._choices(ctx)
        value = normalise(ctx.text)
        chosen: Action | None = None
        if value.isascii() and value.isdigit() and 1 <= int(value) <= len(actions):
            chosen = actions[int(value) - 1]
        code = action_code_in(ctx.text)
        for action in actions:
            if code == action.code:
                chosen = action
        if chosen is None:
            return Retry(
                ctx.say("tip.which_retry", count=len(actions), code=actions[0].code if actions else "")
            )
        return self._new_tip(ctx, chosen, self._unpack(ctx, ctx.data.pop("pending")))

    def _pending(self, ctx: FlowContext) -> dict[str, Any]:
        text, media, location = self._content(ctx)
        # The waiting tip text is kept encrypted in the conversation state, like any personal answer.
        return {
            "text_enc": ctx.services.vault.encrypt(text),
            "media": list(media),
            "lat": location.lat if location else None,
            "lon": location.lon if location else None,
            "at": ctx.message.received_at.isoformat(),
        }

    def _unpack(
        self, ctx: FlowContext, data: Mapping[str, Any]
    ) -> tuple[str, tuple[str, ...], GeoPoint | None]:
        location = GeoPoint(data["lat"], data["lon"]) if data.get("lat") is not None else None
        return ctx.services.vault.decrypt(data["text_enc"]), tuple(data.get("media") or ()), location

    # storing ---------------------------------------------------------------------------------

    def _content(self, ctx: FlowContext) -> tuple[str, tuple[str, ...], GeoPoint | None]:
        text = ctx.text
        if ctx.message.start_payload and normalise(text).startswith("/start"):
            text = ""  # a deep link's text is only the command and the code
        return text, ctx.message.media, ctx.message.location

    def _truncate(self, text: str) -> tuple[str, bool]:
        if len(text) <= self.rules.max_chars:
            return text, False
        return text[: self.rules.max_chars].rstrip(), True

    def _facts(
        self, ctx: FlowContext, text: str, media: tuple[str, ...], location: GeoPoint | None
    ) -> TipFacts:
        intent = ctx.parsed.intent.name if ctx.parsed is not None else None
        return facts_from(
            text,
            received_at=ctx.message.received_at,
            tz=ctx.services.settings.timezone,
            location=location,
            media=media,
            intent=intent,
            towns=towns_of(ctx.services.book),
        )

    def _new_tip(
        self, ctx: FlowContext, action: Action, content: tuple[str, tuple[str, ...], GeoPoint | None]
    ) -> Transition:
        if action_is_over(action, now=ctx.now):
            return self._late(ctx, action, content)
        text, media, location = content
        history = sender_history(
            ctx.session,
            sender_hash=sender_hash(ctx.identity),
            action_id=action.id or 0,
            text=text,
            since=ctx.now - timedelta(minutes=self.rules.rate_window_minutes),
        )
        if history.same_text is not None:
            return Finish((ctx.say("tip.duplicate", code=action.code),))
        if history.started_since >= self.rules.max_tips_per_window:
            return self._refuse_once(ctx, f"tips:{sender_hash(ctx.identity)}")
        text, truncated = self._truncate(text)
        facts = self._facts(ctx, text, media, location)
        missing_where, missing_when = missing_where_when(facts)
        in_group = ctx.message.group_id is not None
        followup = action.status is ActionStatus.ACTIVE and (missing_where or missing_when) and not in_group
        tip = create_tip(
            ctx.session,
            action=action,
            identity=ctx.identity,
            participant=ctx.participant,
            vault=ctx.services.vault,
            text=text,
            facts=facts,
            truncated=truncated,
            now=ctx.now,
            webhook=self.rules.webhook,
            followup_asked=followup,
            relay_id=self._relay_id(ctx),
        )
        self._stored(ctx, tip, action.code, CREATED, media=bool(media))
        if in_group:
            # The member may never have opened a chat with the bot: it can only answer in the group.
            assert ctx.message.group_id is not None
            return Finish((replace(ctx.say("tip.thanks", code=action.code), recipient=ctx.message.group_id),))
        notes = (ctx.say("tip.truncated", max=self.rules.max_chars),) if truncated else ()
        if followup:
            ctx.data["tip_id"] = tip.id
            ctx.data["code"] = action.code
            ctx.data["missing"] = [n for n, m in (("where", missing_where), ("when", missing_when)) if m]
            return Goto(TipStep.FOLLOWUP, say=notes)
        return Finish((*notes, ctx.say("tip.thanks", code=action.code)))

    def _late(
        self, ctx: FlowContext, action: Action, content: tuple[str, tuple[str, ...], GeoPoint | None]
    ) -> Transition:
        """Keep a message sent after the action ended apart from live tips, and say the action is over."""
        text, media, location = content
        text, truncated = self._truncate(text)
        if text or media or location:
            earlier = late_tip(ctx.session, identity_id=ctx.identity.id or 0, action_id=action.id or 0)
            if earlier is None:
                stored = create_tip(
                    ctx.session,
                    action=action,
                    identity=ctx.identity,
                    participant=ctx.participant,
                    vault=ctx.services.vault,
                    text=text,
                    facts=self._facts(ctx, text, media, location),
                    truncated=truncated,
                    now=ctx.now,
                    webhook=self.rules.webhook,
                    relay_id=self._relay_id(ctx),
                    late=True,
                )
                self._stored(ctx, stored, action.code, CREATED, media=bool(media))
            elif earlier.messages < self.rules.max_messages_per_tip:
                self._append(ctx, earlier, content)
        if action.outcome is not None:
            outcome = ctx.t(f"action.outcome.{action.outcome.value}")
            reply = ctx.say("tip.late_outcome", code=action.code, outcome=outcome)
        else:
            reply = ctx.say("tip.late", code=action.code)
        if ctx.message.group_id is not None:
            reply = replace(reply, recipient=ctx.message.group_id)
        return Finish((reply,))

    @staticmethod
    def _relay_id(ctx: FlowContext) -> int | None:
        try:
            return relay_for_tip(ctx.session, vault=ctx.services.vault, message=ctx.message).relay_id
        except RelayNotFound:
            return None

    def _refuse_once(self, ctx: FlowContext, subject: str) -> Transition:
        """Over a limit: say so once per window, then stay silent (every SMS reply costs money)."""
        window = self.rules.rate_window_minutes * 60
        bucket = int(ctx.now.timestamp()) // window
        if record_first_time(ctx.session, key=f"limit:{subject}:{bucket}", at=ctx.now):
            return Finish((ctx.say("tip.rate_limited"),))
        return Finish(())

    def _extend(self, ctx: FlowContext, tip: Tip, *, answer: bool) -> Transition:
        action = ctx.session.get(Action, tip.action_id)
        code = action.code if action else ""
        if action is not None and not answer and action_is_over(action, now=ctx.now):
            # The action ended since this tip: the message is late, not more of a live tip.
            return self._late(ctx, action, self._content(ctx))
        if tip.messages >= self.rules.max_messages_per_tip:
            return self._refuse_once(ctx, f"tip-messages:{tip.id}")
        added, truncated = self._append(ctx, tip)
        if answer:
            close_answer(ctx.session, tip=tip)
        if not added:
            return Finish((ctx.say("tip.duplicate", code=code),))
        notes = (ctx.say("tip.truncated", max=self.rules.max_chars),) if truncated else ()
        return Finish((*notes, ctx.say("tip.answer_added" if answer else "tip.added", code=code)))

    def _append(
        self,
        ctx: FlowContext,
        tip: Tip,
        content: tuple[str, tuple[str, ...], GeoPoint | None] | None = None,
    ) -> tuple[bool, bool]:
        """Add this message to the tip and tell the forwarders; whether it added anything, and was cut."""
        text, media, location = content or self._content(ctx)
        text, truncated = self._truncate(text)
        added = extend_tip(
            ctx.session,
            tip=tip,
            text=text,
            facts=self._facts(ctx, text, media, location),
            truncated=truncated,
            now=ctx.now,
            webhook=self.rules.webhook,
            max_chars=self.rules.max_chars * 4,
        )
        if added:
            action = ctx.session.get(Action, tip.action_id)
            self._stored(ctx, tip, action.code if action else "", UPDATED, media=bool(media))
        return added, truncated

    def _stored(self, ctx: FlowContext, tip: Tip, code: str, event: str, *, media: bool) -> None:
        """Queue the operators' chat message in the step's transaction, and tell the forwarders once it has
        committed (not before: it may roll back)."""
        if self._chat is not None:
            self._chat(ctx.session, tip, action_code=code, event=event, now=ctx.now)
        if self._on_stored is not None:
            stored = TipStored(place=tip.location_text is not None and tip.lat is None, media=media)
            on_stored = self._on_stored
            after_commit(ctx.session, lambda: on_stored(stored))

    # the follow-up ---------------------------------------------------------------------------

    def ask_followup(self, ctx: FlowContext) -> OutgoingMessage:
        """The one follow-up: where, when, or both, whichever the tip is missing."""
        tip = ctx.session.get(Tip, ctx.data["tip_id"])
        missing_when = tip is None or tip.seen_at is None
        missing_where = tip is None or (tip.location_text is None and tip.lat is None)
        key = (
            "tip.followup_both"
            if missing_when and missing_where
            else ("tip.followup_when" if missing_when else "tip.followup_where")
        )
        return ctx.say(key, code=ctx.data.get("code", ""))

    def on_followup(self, ctx: FlowContext) -> Transition:
        """Whatever the answer says joins the same tip; then thanks (no second question)."""
        tip = ctx.session.get(Tip, ctx.data["tip_id"])
        code = ctx.data.get("code", "")
        if tip is None:
            return Finish((ctx.say("tip.thanks", code=code),))
        action = ctx.session.get(Action, tip.action_id)
        if action is not None and action_is_over(action, now=ctx.now):
            return self._late(ctx, action, self._content(ctx))
        self._append(ctx, tip)
        return Finish((ctx.say("tip.thanks_after_followup", code=code),))


def _has_content(ctx: FlowContext) -> bool:
    return bool(ctx.text or ctx.message.media or ctx.message.location)


# A message right after a tip joins it, unless it plainly asks for something else ("ik wil me afmelden").
_OTHER_INTENTS = frozenset({"unsubscribe", "register", "change_address", "my_data", "help", "greet"})
_KEYWORDS = KeywordParser()


def _means_something_else(text: str) -> bool:
    if not text:
        return False
    if yes_or_no(text) is not None:
        return True  # a bare JA/NEE answers nothing in a tip; the router explains there is no question
    return _KEYWORDS.parse_sync(text).intent.name in _OTHER_INTENTS


def _is_keyword(text: str) -> bool:
    return keyword_of(text) is not None
