"""From an incoming message to replies: keywords first, then the active flow, then the NLU intent.

Each message is handled in one database transaction that begins by locking the sender's identity
row, so one person's messages are handled one after the other even across worker processes, and a
step that fails leaves nothing half-written. A conversation changed by someone else meanwhile
(`StaleState`) or a locked database is retried on fresh state.
"""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from bot.channels.segments import GSM7_BASIC, GSM7_EXTENSION, is_gsm7
from bot.config import Settings
from bot.flows.address import AddressFlow
from bot.flows.engine import (
    Flow,
    FlowContext,
    FlowEngine,
    Services,
    StaleState,
    clean_text,
    clear_state,
    is_expired,
    normalise,
)
from bot.flows.follow import FollowFlow, follow_command, unfollow
from bot.flows.help import LANGUAGE_KEYWORDS, greet, not_understood, show_help, switch_language
from bot.flows.keywords import Keyword, keyword_of
from bot.flows.mydata import request_my_data_export, set_exercises, show_my_data
from bot.flows.phone_registration import PhoneRegistrationFlow
from bot.flows.preferences import change_preference, preference_command, show_preferences
from bot.flows.registration import RegistrationFlow, asks_to_sign_up
from bot.flows.unsubscribe import UnsubscribeFlow, opt_in, stop_now
from bot.messages import IncomingMessage, OutgoingMessage, event_key
from bot.outbox import Handoff, queue_messages
from bot.texts import Catalogue
from nlu.types import InProcessParser, Intent, Parser, ParseResult
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.events import record_first_time
from storage.geo import PostcodeBook
from storage.models import ChannelIdentity, ConversationState, OutboundKind, Participant
from storage.participants import (
    PHONE_CHANNELS,
    canonical_address,
    current_participant,
    find_identity,
    find_participant_by_phone,
    touch_sender,
)
from storage.vocabulary import ChannelKind

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 4
MAX_NLU_TEXT = 500
INTENT_THRESHOLD = 0.5
RETRY_PAUSE_S = 0.05
# Every reply on these costs money; a sender who floods us gets a bounded number of them.
PAID_REPLY_CHANNELS = frozenset({ChannelKind.SMS, ChannelKind.WHATSAPP})


# "stop maar" ends a conversation; with none open it may mean the alerts, which only a confirmed
# unsubscribe ends (a bare STOP stays the immediate opt-out).
_STOP_ALERTS_OUTSIDE_A_FLOW = frozenset({"stop maar", "stop er maar mee", "hou maar op"})

_SMS_LOOKALIKES = str.maketrans(
    {"‘": "'", "’": "'", "“": '"', "”": '"', "…": "...", "–": "-", "—": "-", "\u00a0": " "}
)


def fold_for_sms(text: str) -> str:
    """Replace characters outside GSM-7 by their plain letter (Súdwest-Fryslân → Sudwest-Fryslan).

    One such character would switch the whole SMS to UCS-2 and more than double its parts; letters
    without a GSM-7 form (Arabic, Chinese) are kept, the person wrote them.
    """
    if is_gsm7(text):
        return text
    folded = []
    for ch in text.translate(_SMS_LOOKALIKES):
        if ch in GSM7_BASIC or ch in GSM7_EXTENSION:
            folded.append(ch)
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        folded.append(base if base and is_gsm7(base) else ch)
    return "".join(folded)


class StorageUnavailable(RuntimeError):
    """The database stayed locked or unreachable; the message was not handled and may be retried."""


class _AlreadyHandled(Exception):
    """This provider message was handled before (a provider's retry): nothing to do."""


class _NeedsIntent(Exception):
    """The message reached the NLU stage before it was parsed; parse it and handle it again."""


class ConversationRouter:
    """Turns each incoming message into replies, keeping the conversation state in the database."""

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        vault: DataVault,
        book: PostcodeBook,
        parser: Parser,
        catalogue: Catalogue,
        settings: Settings,
        clock: Callable[[], datetime],
        flows: Sequence[Flow] = (),
        on_code_queued: Callable[[], None] | None = None,
        on_queued: Callable[[], None] | None = None,
        handoff: Handoff | None = None,
    ) -> None:
        """`on_code_queued` / `on_queued` run after the commit of a step that queued a code / messages;
        `handoff` (the dispatcher in this process) is handed the replies instead while it runs."""
        self._sessions = sessions
        self._on_queued = on_queued
        self._handoff = handoff
        self._parser = parser
        # An in-process parser is asked inside the step's transaction (we are in a worker thread
        # already); a remote one (Rasa) only between attempts, so no transaction waits on HTTP.
        self._parse_here = parser.parse_sync if isinstance(parser, InProcessParser) else None
        self._clock = clock
        self._settings = settings
        self.services = Services(vault=vault, book=book, catalogue=catalogue, settings=settings, clock=clock)
        builtin: list[Flow] = [
            RegistrationFlow(on_code_queued),
            PhoneRegistrationFlow(),
            AddressFlow(),
            UnsubscribeFlow(),
            FollowFlow(),
        ]
        table = {flow.name: flow for flow in [*builtin, *flows]}
        self.engine = FlowEngine(table)
        self._intent_flows = {intent: flow.name for flow in table.values() for intent in flow.intents}
        self._interceptors = [
            f for f in flows if not f.group_chat and type(f).intercepts is not Flow.intercepts
        ]
        self._group_flows = [f for f in flows if f.group_chat]

    async def handle(self, message: IncomingMessage) -> list[OutgoingMessage]:
        """The replies to one message; a failing step becomes an apology.

        Raises StorageUnavailable when the database stays locked or unreachable, so that the webhook
        can answer 503 and the provider delivers the message again later.
        """
        parsed: ParseResult | None = None
        unavailable: OperationalError | None = None
        for attempt in range(MAX_ATTEMPTS):
            try:
                return await asyncio.to_thread(self._handle_once, message, parsed)
            except _AlreadyHandled:
                log.info("duplicate %s message ignored", message.channel)
                return []
            except _NeedsIntent:
                parsed = await self._parse(clean_text(message.text))
            except (StaleState, IntegrityError, OperationalError) as exc:
                unavailable = exc if isinstance(exc, OperationalError) else None
                log.warning(
                    "retrying a %s message (attempt %d): %s", message.channel, attempt + 1, type(exc).__name__
                )
                if unavailable is not None:
                    await asyncio.sleep(RETRY_PAUSE_S * (attempt + 1))
            except Exception:
                log.exception("handling a %s message failed", message.channel)
                return await asyncio.to_thread(self._apologise, message)
        if unavailable is not None:
            raise StorageUnavailable("the database stayed unavailable") from unavailable
        return await asyncio.to_thread(self._apologise, message)

    def _apologise(self, message: IncomingMessage) -> list[OutgoingMessage]:
        """The step left nothing behind; the apology is queued on its own."""
        replies = [self._apology(message)]
        try:
            with transaction(self._sessions) as session:
                queue_messages(
                    session,
                    replies,
                    vault=self.services.vault,
                    kind=OutboundKind.REPLY,
                    now=self._clock(),
                    sender=(message.channel, message.sender),
                    on_queued=self._on_queued,
                    handoff=self._handoff,
                )
        except Exception:
            log.exception("the apology could not be queued")
        return replies

    async def _parse(self, text: str) -> ParseResult:
        try:
            return await self._parser.parse(text[:MAX_NLU_TEXT])
        except Exception:
            log.exception("the NLU parser failed; treating the message as not understood")
            return ParseResult(text=text, intent=Intent("out_of_scope", 0.0))

    def _parse_in_step(self, text: str) -> ParseResult:
        # Only for free text that reached the NLU stage: keywords and active flows never pay for it,
        # and the step is not run a second time only to have the intent.
        if self._parse_here is None:
            raise _NeedsIntent
        try:
            return self._parse_here(text[:MAX_NLU_TEXT])
        except Exception:
            log.exception("the NLU parser failed; treating the message as not understood")
            return ParseResult(text=text, intent=Intent("out_of_scope", 0.0))

    def _handle_once(self, message: IncomingMessage, parsed: ParseResult | None) -> list[OutgoingMessage]:
        now = self._clock()
        key = event_key(message)
        with transaction(self._sessions) as session:
            # In the step's own transaction: a message is handled and recorded, or neither, so a
            # retry after a crash or a locked database is handled, and a retry after success is not.
            if key is not None and not record_first_time(session, key=key, at=now):
                raise _AlreadyHandled
            identity, state = touch_sender(
                session, vault=self.services.vault, channel=message.channel, address=message.sender, now=now
            )
            ctx = FlowContext(
                session=session,
                services=self.services,
                message=message,
                identity=identity,
                participant=self._participant(session, identity, message),
                now=now,
                text=clean_text(message.text),
                parsed=parsed,
            )
            assert identity.id is not None
            notes: list[OutgoingMessage] = []
            if state is not None and not self.engine.knows(state):
                clear_state(session, current=state)
                state = None
            if state is not None and is_expired(
                state, now=now, timeout_minutes=self._settings.flow_timeout_minutes
            ):
                clear_state(session, current=state)
                state = None
                notes.append(ctx.say("router.expired"))
            ctx.found_state = state
            replies = self._within_reply_budget(ctx, notes + self._route(ctx, state))
            if message.channel is ChannelKind.SMS:
                replies = [replace(r, text=fold_for_sms(r.text)) for r in replies]
            # In the step's transaction: a step that fails sends nothing, one that commits is answered.
            queue_messages(
                session,
                replies,
                vault=self.services.vault,
                kind=OutboundKind.REPLY,
                now=now,
                identity_id=identity.id,
                sender=(message.channel, message.sender),
                on_queued=self._on_queued,
                handoff=self._handoff,
            )
        return replies

    def _within_reply_budget(self, ctx: FlowContext, replies: list[OutgoingMessage]) -> list[OutgoingMessage]:
        """On paid channels: past the sender's budget for the window, one notice, then silence.

        The message itself is still handled (a tip is still stored, within the tip limits); only the
        answers stop. STOP is always confirmed.
        """
        if (
            ctx.message.channel not in PAID_REPLY_CHANNELS
            or not replies
            or keyword_of(ctx.text) is Keyword.STOP
            or ctx.identity.id is None
        ):
            return replies
        identity = ctx.identity
        window = timedelta(minutes=self._settings.reply_window_minutes)
        started = identity.reply_window_at
        if started is not None and started.tzinfo is None:
            started = started.replace(tzinfo=UTC)
        if started is None or ctx.now - started >= window:
            identity.reply_window_at = ctx.now
            identity.replies_in_window = 0
        identity.replies_in_window += 1
        ctx.session.add(identity)
        limit = self._settings.reply_limit_per_window
        if identity.replies_in_window <= limit:
            return replies
        if identity.replies_in_window == limit + 1:
            return [ctx.say("router.reply_limit")]
        return []

    def _participant(
        self, session: Session, identity: ChannelIdentity, message: IncomingMessage
    ) -> Participant | None:
        """The sender's participant; an SMS/WhatsApp number registered elsewhere is linked on first contact.

        The carrier vouches for the sender's number, so a message from it may act for the participant
        registered with it (e.g. on Telegram): STOP from that phone erases, MIJN GEGEVENS shows.
        """
        participant = current_participant(session, identity=identity)
        if participant is not None or message.channel not in PHONE_CHANNELS:
            return participant
        phone = canonical_address(message.channel, message.sender)
        participant = find_participant_by_phone(session, vault=self.services.vault, phone=phone)
        if participant is not None:
            identity.participant_id = participant.id
            session.add(identity)
        return participant

    def _route(self, ctx: FlowContext, state: ConversationState | None) -> list[OutgoingMessage]:
        message = ctx.message
        keyword = keyword_of(ctx.text)
        if keyword is Keyword.STOP:
            if state is not None:
                clear_state(ctx.session, current=state)
            return stop_now(ctx)
        for flow in self._interceptors:
            if flow.intercepts(ctx):
                return self.engine.start(ctx, flow, state)
        if message.group_id is not None:
            # In a group we only speak when a flow claimed the message; chatter is not for us.
            return self._group_dialogue(ctx) if self._group_flows else []
        if keyword is not None:
            return self._keyword(ctx, keyword, state)
        command = follow_command(ctx.text)
        if command is not None:
            # VOLG 7511 / VOLG NIET 7511 are commands like the keywords: they end what was going on.
            if command.follow:
                return self.engine.start(ctx, FollowFlow(command.postcode), state)
            if state is not None:
                clear_state(ctx.session, current=state)
            return unfollow(ctx, command.postcode)
        if state is not None:
            return self.engine.advance(ctx, state)
        if not ctx.text:
            return not_understood(ctx)
        if ctx.participant is None and asks_to_sign_up(ctx.text):
            # Someone not registered who writes that they want to join is signing up, whatever
            # else the message holds (a postcode, a neighbour's advice); the NLU need not weigh it.
            return self.engine.start(ctx, self._registration(ctx), state)
        if ctx.parsed is None:
            ctx.parsed = self._parse_in_step(ctx.text)
        return self._intent(ctx)

    def _group_dialogue(self, ctx: FlowContext) -> list[OutgoingMessage]:
        """A dialogue a flow holds with a whole group, else nothing.

        Its state is keyed by the group chat's own identity and its replies go to the group; the
        person who wrote stays in `message.raw` for the flow to tell its starter from the others.
        """
        message = ctx.message
        assert message.group_id is not None
        group, state = touch_sender(
            ctx.session,
            vault=self.services.vault,
            channel=message.channel,
            address=message.group_id,
            now=ctx.now,
        )
        assert group.id is not None
        in_group = FlowContext(
            session=ctx.session,
            services=ctx.services,
            message=replace(message, sender=message.group_id),
            identity=group,
            participant=None,
            now=ctx.now,
            text=ctx.text,
            parsed=ctx.parsed,
        )
        if state is not None and (
            not self.engine.knows(state)
            or is_expired(state, now=ctx.now, timeout_minutes=self._settings.flow_timeout_minutes)
        ):
            clear_state(ctx.session, current=state)
            state = None
        in_group.found_state = state
        for flow in self._group_flows:
            if flow.intercepts(in_group):
                return self.engine.start(in_group, flow, state)
        if state is None or not self.engine.flows[state.flow].hears_in_group(in_group, state.data):
            return []
        if keyword_of(ctx.text) is Keyword.CANCEL:
            clear_state(ctx.session, current=state)
            return [in_group.say("router.cancelled")]
        return self.engine.advance(in_group, state)

    def _keyword(
        self, ctx: FlowContext, keyword: Keyword, state: ConversationState | None
    ) -> list[OutgoingMessage]:
        flows = self.engine.flows
        if keyword is Keyword.START:
            notes = [ctx.say("router.opted_in")] if opt_in(ctx) else []
            return notes + self.engine.start(ctx, self._registration(ctx), state)
        if keyword is Keyword.ADDRESS:
            return self.engine.start(ctx, flows[AddressFlow.name], state)
        if keyword is Keyword.CANCEL:
            stop_words = normalise(ctx.text) in _STOP_ALERTS_OUTSIDE_A_FLOW
            if stop_words and state is not None and state.flow == UnsubscribeFlow.name:
                # "stop maar" to "do you want to leave?" is a yes, not a change of mind.
                clear_state(ctx.session, current=state)
                return stop_now(ctx)
            if stop_words and state is None:
                # Nothing to end but the alerts themselves: ask, as a free-text wish to leave is asked.
                return self.engine.start(ctx, flows[UnsubscribeFlow.name], None)
            if state is None:
                return [ctx.say("router.nothing_to_cancel")]
            clear_state(ctx.session, current=state)
            return [ctx.say("router.cancelled")]
        if keyword is Keyword.HELP:
            replies = show_help(ctx)
        elif keyword is Keyword.MY_DATA:
            replies = show_my_data(ctx)
        elif keyword in (Keyword.EXERCISES_ON, Keyword.EXERCISES_OFF):
            replies = set_exercises(ctx, on=keyword is Keyword.EXERCISES_ON)
        elif keyword is Keyword.PREFERENCES:
            replies = show_preferences(ctx)
        elif keyword is Keyword.PREFERENCE_CHANGE:
            command = preference_command(ctx.text)
            assert command is not None
            replies = change_preference(ctx, command)
        elif keyword is Keyword.MY_DATA_EXPORT:
            replies = request_my_data_export(ctx)
        else:
            replies = switch_language(ctx, LANGUAGE_KEYWORDS[normalise(ctx.text).split("@", 1)[0]])
        if state is not None:
            replies.append(self.engine.reprompt(ctx, state))
        return replies

    def _registration(self, ctx: FlowContext) -> Flow:
        # A caller answers on the phone's keys: the same sign-up, asked the way a call can.
        name = (
            PhoneRegistrationFlow.name if ctx.message.channel is ChannelKind.VOICE else RegistrationFlow.name
        )
        return self.engine.flows[name]

    def _intent(self, ctx: FlowContext) -> list[OutgoingMessage]:
        assert ctx.parsed is not None
        intent = (
            ctx.parsed.intent.name if ctx.parsed.intent.confidence >= INTENT_THRESHOLD else "out_of_scope"
        )
        flow_name = self._intent_flows.get(intent)
        if flow_name is not None:
            return self.engine.start(ctx, self.engine.flows[flow_name], None)
        if intent == "my_data":
            return show_my_data(ctx)
        if intent == "help":
            return show_help(ctx)
        if intent == "greet":
            return greet(ctx)
        if intent in ("affirm", "deny"):
            return [ctx.say("router.nothing_pending")]
        if intent == "give_tip":
            return [ctx.say("router.no_action_for_tip")]
        return not_understood(ctx)

    def _apology(self, message: IncomingMessage) -> OutgoingMessage:
        lang = "nl"
        try:
            with self._sessions() as session:
                identity = find_identity(
                    session, vault=self.services.vault, channel=message.channel, address=message.sender
                )
                if identity is not None:
                    lang = identity.language
        except Exception:
            log.warning("could not read the language for an apology")
        return OutgoingMessage(
            channel=message.channel,
            recipient=message.sender,
            text=self.services.catalogue.render(lang, "router.error"),
        )
