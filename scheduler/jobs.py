"""The maintenance jobs: plain functions of a `JobContext`, each idempotent and safe to run twice.

Every job reads the time from the injected clock, keeps its state in the database (so a restart in
the middle resumes where it stopped) and returns a `JobResult` with counts of what it did.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, SQLModel, col, select

from bot.channels.base import Channel
from bot.clock import Clock
from bot.config import Settings
from bot.messages import Keypad, OutgoingMessage
from bot.outbox import queue_messages
from bot.texts import Catalogue
from storage import keys, reports
from storage import reconfirmations as store
from storage.actions import ActionStateError, close_action, next_ring, tipster_identity_ids, widen_to
from storage.crypto import DataKeyError, DataVault
from storage.data_exports import purge_exports
from storage.db import SessionFactory, transaction
from storage.geo import PostcodeBook
from storage.models import (
    Action,
    ActionOutcome,
    ActionStatus,
    Address,
    ChannelIdentity,
    ConversationState,
    Delivery,
    OutboundKind,
    Participant,
    ParticipantStatus,
    ReconfirmRequest,
)
from storage.participants import addresses_of, audit, erase_participant, identities_of
from storage.tip_outbox import settle_questions
from storage.vocabulary import ChannelKind, DeliveryStatus

log = logging.getLogger(__name__)

WHATSAPP_WINDOW = timedelta(hours=24)
TEXT_CHANNELS = (ChannelKind.TELEGRAM, ChannelKind.WHATSAPP, ChannelKind.SMS)
REACH_ORDER = (*TEXT_CHANNELS, ChannelKind.VOICE)
BATCH = 200


@dataclass(frozen=True)
class JobContext:
    """What every job may use; built once from the runtime and injected."""

    sessions: SessionFactory
    settings: Settings
    clock: Clock
    vault: DataVault
    catalogue: Catalogue
    senders: Mapping[ChannelKind, Channel] = field(default_factory=dict)
    book: PostcodeBook | None = None


@dataclass
class JobResult:
    """What a run did, as counts by name (`asked`, `expired`, `purged.delivery`, ...)."""

    counts: dict[str, int] = field(default_factory=dict)
    note: str = ""

    def add(self, name: str, n: int = 1) -> None:
        """Count `n` more of something."""
        self.counts[name] = self.counts.get(name, 0) + n

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in sorted(self.counts.items()) if v]
        return ", ".join(parts) or self.note or "nothing to do"


Job = Callable[[JobContext], Awaitable[JobResult] | JobResult]


# --------------------------------------------------------------------------------------------------
# Time of day
# --------------------------------------------------------------------------------------------------


def in_quiet_hours(now: datetime, *, start: time, end: time, timezone: str) -> bool:
    """Whether local time lies in the quiet hours [start, end), which may wrap past midnight."""
    local = now.astimezone(ZoneInfo(timezone)).time()
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def minute_start(now: datetime) -> datetime:
    """The start of the clock minute `now` falls in."""
    return now.replace(second=0, microsecond=0)


def local_date(moment: datetime, timezone: str) -> str:
    """A date as people in the Netherlands write it (dd-mm-yyyy)."""
    return store.aware(moment).astimezone(ZoneInfo(timezone)).strftime("%d-%m-%Y")


# --------------------------------------------------------------------------------------------------
# Reconfirmation
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reachable:
    """Where and how to message a participant."""

    channel: ChannelKind
    recipient: str
    last_inbound_at: datetime | None
    identity_id: int | None = None


def reach_of(
    identities: Iterable[ChannelIdentity], *, vault: DataVault, preferred: ChannelKind | None
) -> Reachable | None:
    """The participant's preferred text channel, else any other live one, else a call; None when none is left.

    Someone who signed up by calling has only their phone to be called on: the question is asked in a
    call then, answered with a key.
    """
    usable: list[ChannelIdentity] = [
        i for i in identities if i.channel in REACH_ORDER and not i.opted_out and i.address_enc and i.verified
    ]
    usable.sort(
        key=lambda i: (i.channel not in TEXT_CHANNELS, i.channel != preferred, REACH_ORDER.index(i.channel))
    )
    for identity in usable:
        assert identity.address_enc is not None
        try:
            recipient = vault.decrypt(identity.address_enc)
        except DataKeyError:
            continue
        last = store.aware(identity.last_inbound_at) if identity.last_inbound_at else None
        return Reachable(identity.channel, recipient, last, identity.id)
    return None


def reconfirm_message(
    ctx: JobContext, *, to: Reachable, language: str, key: str, expires_at: datetime, now: datetime
) -> OutgoingMessage:
    """The question or a reminder, on the participant's channel and in their language."""
    expires = local_date(expires_at, ctx.settings.timezone)
    if to.channel is ChannelKind.VOICE:
        # A call: the question written to be heard, answered with a key (1 stay, 9 leave).
        text = ctx.catalogue.render(language, f"{key}_call", expires=expires)
        return OutgoingMessage(
            channel=to.channel, recipient=to.recipient, text=text, language=language, keypad=Keypad.ONE_KEY
        )
    text = ctx.catalogue.render(language, key, expires=expires)
    buttons: tuple[str, ...] = ()
    if ctx.catalogue.has("reconfirm.button_yes", language):
        buttons = (
            ctx.catalogue.render(language, "reconfirm.button_yes"),
            ctx.catalogue.render(language, "reconfirm.button_no"),
        )
    template = ctx.settings.whatsapp_templates.reconfirm
    outside_window = to.last_inbound_at is None or now - to.last_inbound_at > WHATSAPP_WINDOW
    if to.channel is ChannelKind.WHATSAPP and template and outside_window:
        # WhatsApp only lets a business start a conversation with an approved template.
        return OutgoingMessage(
            channel=to.channel,
            recipient=to.recipient,
            text=text,
            template_sid=template,
            template_variables={"1": expires},
        )
    return OutgoingMessage(channel=to.channel, recipient=to.recipient, text=text, buttons=buttons)


def _queue(ctx: JobContext, session: Session, message: OutgoingMessage, to: Reachable, now: datetime) -> None:
    # In the transaction that records the question: the dispatcher sends it (lane 2, after alerts).
    queue_messages(
        session, [message], vault=ctx.vault, kind=OutboundKind.RECONFIRM, now=now, identity_id=to.identity_id
    )


def expire_unanswered(ctx: JobContext, *, now: datetime, limit: int) -> int:
    """Erase the participants who did not answer in time, as on unsubscribe; returns how many."""
    done = 0
    while done < limit:
        with transaction(ctx.sessions) as session:
            due = store.due_for_expiry(session, now=now, limit=min(BATCH, limit - done))
            for request in due:
                participant = session.get(Participant, request.participant_id)
                if participant is not None and participant.status in (
                    ParticipantStatus.ACTIVE,
                    ParticipantStatus.PENDING,
                ):
                    home = next(iter(addresses_of(session, participant=participant)), None)
                    # The municipality (not personal on its own) keeps the monthly report right after erasure.
                    audit(
                        session,
                        now=now,
                        actor="scheduler",
                        event="participant_expired",
                        subject=f"participant:{participant.id}",
                        detail={"municipality_code": home.municipality_code if home else None},
                    )
                    erase_participant(session, participant=participant, now=now, reason="expired")
                store.close_request(session, participant_id=request.participant_id)
        if not due:
            break
        done += len(due)
    return done


async def reconfirm(ctx: JobContext) -> JobResult:
    """Ask, remind and expire: at most N messages a minute, never in quiet hours; expiry any time."""
    settings, now = ctx.settings, ctx.clock()
    result = JobResult()
    expired = await asyncio.to_thread(
        expire_unanswered, ctx, now=now, limit=settings.scheduler.reconfirm_batch_expire
    )
    result.add("expired", expired)
    if in_quiet_hours(
        now,
        start=settings.scheduler.quiet_hours_start,
        end=settings.scheduler.quiet_hours_end,
        timezone=settings.timezone,
    ):
        result.note = "quiet hours"
        return result
    with transaction(ctx.sessions) as session:
        budget = settings.scheduler.reconfirm_per_minute - store.sent_since(session, since=minute_start(now))
    unreachable_left = BATCH

    def reminders(session: Session, limit: int) -> tuple[int, list[_Ask]]:
        due = store.due_for_reminder(
            session, now=now, reminder_days=settings.scheduler.reconfirm_reminder_days, limit=limit
        )
        asks: list[_Ask] = []
        for request in due:
            participant = session.get(Participant, request.participant_id)
            if participant is None or participant.status is not ParticipantStatus.ACTIVE:
                # Left meanwhile (STOP): the question is moot.
                store.close_request(session, participant_id=request.participant_id)
                continue
            to = _reach(ctx, session, participant)
            store.record_reminder(session, request=request, now=now, sent=to is not None)
            asks.append(_Ask(participant.language, to, request.expires_at))
        return len(due), asks

    def questions(session: Session, limit: int) -> tuple[int, list[_Ask]]:
        due = store.due_for_question(
            session, now=now, after_days=settings.scheduler.reconfirm_after_days, limit=limit
        )
        asks: list[_Ask] = []
        for participant in due:
            to = _reach(ctx, session, participant)
            request = store.record_question(
                session,
                participant=participant,
                now=now,
                expire_after_days=settings.scheduler.expire_after_days,
                sent=to is not None,
            )
            asks.append(_Ask(participant.language, to, request.expires_at))
        return len(due), asks

    # Reminders first: their deadline is nearer than that of a question not yet asked.
    for take, key, label in (
        (reminders, "reconfirm.reminder", "reminded"),
        (questions, "reconfirm.question", "asked"),
    ):
        budget, unreachable_left = _ask_in_batches(
            ctx, result, budget, take=take, key=key, label=label, now=now, unreachable_left=unreachable_left
        )
    return result


@dataclass(frozen=True)
class _Ask:
    """One reconfirmation message to queue (`to` None: the person has no channel we can reach)."""

    language: str
    to: Reachable | None
    expires_at: datetime


def _reach(ctx: JobContext, session: Session, participant: Participant) -> Reachable | None:
    return reach_of(
        identities_of(session, participant=participant),
        vault=ctx.vault,
        preferred=participant.preferred_channel,
    )


def _ask_in_batches(
    ctx: JobContext,
    result: JobResult,
    budget: int,
    *,
    take: Callable[[Session, int], tuple[int, list[_Ask]]],
    key: str,
    label: str,
    now: datetime,
    unreachable_left: int,
) -> tuple[int, int]:
    """Queue one kind of reconfirmation message in batches, each in its own transaction, until the
    minute's budget is spent, none is due or too many were unreachable; the budget and allowance left."""
    while budget > 0:
        queued = 0
        with transaction(ctx.sessions) as session:
            seen, asks = take(session, budget)
            for ask in asks:
                if ask.to is None:
                    result.add("unreachable")
                    unreachable_left -= 1
                    continue
                message = reconfirm_message(
                    ctx, to=ask.to, language=ask.language, key=key, expires_at=ask.expires_at, now=now
                )
                _queue(ctx, session, message, ask.to, now)
                queued += 1
        if queued:
            result.add(label, queued)
        budget -= queued
        if not seen or unreachable_left <= 0:
            break
    return budget, unreachable_left


# --------------------------------------------------------------------------------------------------
# Unfinished sign-ups
# --------------------------------------------------------------------------------------------------


def clean_signups(ctx: JobContext) -> JobResult:
    """Delete sign-ups left unfinished for `signup_timeout_hours` (pending people, half-done flows)."""
    now = ctx.clock()
    cutoff = now - timedelta(hours=ctx.settings.scheduler.signup_timeout_hours)
    result = JobResult()
    with transaction(ctx.sessions) as session:
        pending = list(
            session.exec(
                select(Participant).where(
                    Participant.status == ParticipantStatus.PENDING, col(Participant.created_at) <= cutoff
                )
            )
        )
        for participant in pending:
            assert participant.id is not None
            for identity in identities_of(session, participant=participant):
                session.execute(
                    sa.delete(ConversationState).where(col(ConversationState.identity_id) == identity.id)
                )
                identity.participant_id = None
                session.add(identity)
            session.execute(
                sa.delete(ReconfirmRequest).where(col(ReconfirmRequest.participant_id) == participant.id)
            )
            session.execute(sa.delete(Address).where(col(Address.participant_id) == participant.id))
            session.flush()
            session.delete(participant)
        result.add("participants", len(pending))
        # Conversation state holds what a half-done registration typed (name, postcode): it must not linger.
        stale = session.execute(
            sa.delete(ConversationState).where(col(ConversationState.updated_at) <= cutoff)
        )
        result.add("conversations", int(getattr(stale, "rowcount", 0) or 0))
        if result.counts.get("participants") or result.counts.get("conversations"):
            audit(session, now=now, actor="scheduler", event="signups_cleaned", detail=dict(result.counts))
    return result


# --------------------------------------------------------------------------------------------------
# Retention
# --------------------------------------------------------------------------------------------------


def _tables() -> Mapping[str, sa.Table]:
    return SQLModel.metadata.tables


def _action_linked_tables() -> list[sa.Table]:
    """Tables whose rows belong to an action (deliveries, tips, their media and logs)."""
    linked = []
    for table in _tables().values():
        column = table.columns.get("action_id")
        if column is not None and any(fk.column.table.name == "action" for fk in column.foreign_keys):
            linked.append(table)
    # Children first, so that rows pointing at other purged rows go before them.
    order = {t.name: i for i, t in enumerate(SQLModel.metadata.sorted_tables)}
    return sorted(linked, key=lambda t: -order[t.name])


OUTBOUND_KEEP_DAYS = 1
"""Days a message out stays as a row once written (wiped of its text and recipient when sent)."""


def _time_rules(settings: Settings) -> list[tuple[str, str, int]]:
    """(table, timestamp column, days) for what is purged by age alone."""
    rules = [
        ("audit_event", "at", settings.scheduler.audit_retention_days),
        ("processed_event", "at", settings.scheduler.processed_event_retention_days),
        # Tips and conversation logs that never belonged to an action age out on their own.
        ("tip", "received_at", settings.retention_days),
        ("conversation_log", "at", settings.retention_days),
        # Verification codes matter for an hour (their limits); a day later nothing of them is kept.
        ("phone_verification", "created_at", 1),
        # Messages out are wiped when sent; the rows stay a day as counts, a reply unsent by then is moot.
        ("outbound_message", "created_at", OUTBOUND_KEEP_DAYS),
    ]
    return [(t, c, d) for t, c, d in rules if t in _tables() and c in _tables()[t].columns]


def purge_retention(ctx: JobContext) -> JobResult:
    """Purge what is past its retention and write a summary of it to the audit log."""
    settings, now = ctx.settings, ctx.clock()
    result = JobResult()
    tables = _tables()
    with transaction(ctx.sessions) as session:
        if "action" in tables:
            action = tables["action"]
            cutoff = now - timedelta(days=settings.retention_days)
            closed = sa.select(action.c.id).where(
                action.c.closed_at.is_not(None), action.c.closed_at <= cutoff
            )
            if "tip_media" in tables and "tip" in tables:
                # A tip's photos go with it (the key cascades); deleted first so that the summary counts them.
                media, tip = tables["tip_media"], tables["tip"]
                purged_tips = sa.select(tip.c.id).where(tip.c.action_id.in_(closed))
                gone = session.execute(sa.delete(media).where(media.c.tip_id.in_(purged_tips)))
                result.add("purged.tip_media", int(getattr(gone, "rowcount", 0) or 0))
            for table in _action_linked_tables():
                gone = session.execute(sa.delete(table).where(table.c.action_id.in_(closed)))
                result.add(f"purged.{table.name}", int(getattr(gone, "rowcount", 0) or 0))
        if "tip_message" in tables:
            # A question's state lives in its outbound row until that row goes with the rule below.
            settle_questions(session, created_before=now - timedelta(days=OUTBOUND_KEEP_DAYS))
        for name, column, days in _time_rules(settings):
            table = tables[name]
            condition = table.c[column] <= now - timedelta(days=days)
            if "action_id" in table.columns and name != "audit_event":
                condition = sa.and_(condition, table.c.action_id.is_(None))
            gone = session.execute(sa.delete(table).where(condition))
            result.add(f"purged.{name}", int(getattr(gone, "rowcount", 0) or 0))
        result.add(
            "purged.channel_identity",
            _purge_silent_identities(session, now=now, days=settings.retention_days),
        )
        # One-time export links: once used or expired, their hash is kept no longer.
        result.add("purged.data_export", purge_exports(session, now=now))
        for name, n in _purge_opted_out(session, now=now, days=settings.retention_days).items():
            result.add(f"purged.opted_out_{name}", n)
        purged = {k.removeprefix("purged."): v for k, v in result.counts.items() if v}
        if purged:
            audit(session, now=now, actor="scheduler", event="retention_purged", detail={"purged": purged})
    return result


def _purge_silent_identities(session: Any, *, now: datetime, days: int) -> int:
    """Identities of nobody (never registered, or erased), silent for `days`, that nothing refers to.

    Opted-out identities stay: they are the record that the number said STOP.
    """
    identity = ChannelIdentity.__table__  # type: ignore[attr-defined]
    cutoff = now - timedelta(days=days)
    seen = sa.func.coalesce(identity.c.last_inbound_at, identity.c.created_at)
    conditions: list[Any] = [
        identity.c.participant_id.is_(None),
        identity.c.opted_out.is_(False),
        seen <= cutoff,
    ]
    for table in _tables().values():
        for fk in table.foreign_keys:
            if fk.column is identity.c.id:
                conditions.append(~sa.exists().where(fk.parent == identity.c.id))
    gone = session.execute(sa.delete(identity).where(*conditions))
    return int(getattr(gone, "rowcount", 0) or 0)


def _purge_opted_out(session: Any, *, now: datetime, days: int) -> dict[str, int]:
    """Reduce opted-out identities to their keyed hash: the record that the number said STOP.

    Whatever could still be decrypted goes at once (an address, a tip's number); what the person did
    since (a conversation, when they last wrote) goes once they have been silent for `days`.
    """
    identity = ChannelIdentity.__table__  # type: ignore[attr-defined]
    tip = _tables()["tip"]
    out = sa.select(identity.c.id).where(identity.c.opted_out.is_(True))
    counts = {
        "address": session.execute(
            sa.update(identity)
            .where(identity.c.opted_out.is_(True), identity.c.address_enc.is_not(None))
            .values(address_enc=None)
        ).rowcount,
        "tip_number": session.execute(
            sa.update(tip)
            .where(tip.c.identity_id.in_(out), tip.c.phone_enc.is_not(None))
            .values(phone_enc=None)
        ).rowcount,
    }
    cutoff = now - timedelta(days=days)
    seen = sa.func.coalesce(identity.c.last_inbound_at, identity.c.opted_out_at, identity.c.created_at)
    silent = sa.select(identity.c.id).where(identity.c.opted_out.is_(True), seen <= cutoff)
    counts["conversation"] = session.execute(
        sa.delete(ConversationState).where(col(ConversationState.identity_id).in_(silent))
    ).rowcount
    counts["last_seen"] = session.execute(
        sa.update(identity)
        .where(identity.c.id.in_(silent), identity.c.last_inbound_at.is_not(None))
        .values(last_inbound_at=None)
    ).rowcount
    return {k: int(v or 0) for k, v in counts.items()}


# --------------------------------------------------------------------------------------------------
# Actions and their deliveries
# --------------------------------------------------------------------------------------------------


def close_expired_actions(ctx: JobContext) -> JobResult:
    """Close active actions past `expires_at` (outcome no result) and queue their closing messages."""
    now = ctx.clock()
    result = JobResult()
    with transaction(ctx.sessions) as session:
        due = list(
            session.exec(
                select(Action.id).where(Action.status == ActionStatus.ACTIVE, col(Action.expires_at) <= now)
            )
        )
    for action_id in due:
        assert action_id is not None
        try:
            # One transaction per action: the status change and its closing deliveries go together.
            with transaction(ctx.sessions) as session:
                action = session.get(Action, action_id)
                if action is None or action.status is not ActionStatus.ACTIVE:
                    continue
                queued = close_action(
                    session,
                    action=action,
                    outcome=ActionOutcome.NO_RESULT,
                    closing_text="",
                    now=now,
                    tipster_identities=tipster_identity_ids(session, action_id=action_id),
                )
                audit(
                    session,
                    now=now,
                    actor="scheduler",
                    event="action_expired",
                    subject=f"action:{action_id}",
                    detail={"closing_messages": queued},
                )
        except ActionStateError:
            # Closed by an operator between our look and our close: nothing left to do.
            continue
        result.add("closed")
        result.add("closing_messages", queued)
    return result


def widen_rings(ctx: JobContext) -> JobResult:
    """Widen running actions with rings whose next ring is due: the circle grows to the ring's radius
    and who is newly inside gets the alert, nearest first; audited like an operator's widening."""
    now = ctx.clock()
    result = JobResult()
    with ctx.sessions() as session:
        candidates = list(
            session.exec(
                select(Action.id).where(Action.status == ActionStatus.ACTIVE, col(Action.rings).is_not(None))
            )
        )
    for action_id in candidates:
        assert action_id is not None
        try:
            # One transaction per ring: the new area and its alerts go together.
            with transaction(ctx.sessions) as session:
                # Locked while we decide: an operator who stops the rings meanwhile waits, or is waited for.
                action = session.get(Action, action_id, with_for_update=True, populate_existing=True)
                ring = next_ring(action) if action is not None else None
                if action is None or ring is None or ring.due_at > now:
                    continue
                before = dict(action.area)
                after = {"circle": {**before["circle"], "radius_m": ring.radius_m}}
                queued = widen_to(session, action=action, area=after, now=now, timezone=ctx.settings.timezone)
                audit(
                    session,
                    now=now,
                    actor="scheduler",
                    event="action_widened",
                    subject=f"action:{action_id}",
                    detail={"from": before, "to": after, "recipients": queued, "ring": ring.number},
                )
        except ActionStateError:
            # Closed or cancelled between our look and the widening: nothing left to do.
            continue
        result.add("widened")
        result.add("alerts", queued)
    return result


def reconcile_deliveries(ctx: JobContext) -> JobResult:
    """Deliveries stuck in sending: failed once they used up their tries, else queued again."""
    from bot.alerts import AlertTexts
    from bot.dispatch import Dispatcher

    settings, now = ctx.settings, ctx.clock()
    result = JobResult()
    d = Delivery.__table__.c  # type: ignore[attr-defined]
    cutoff = now - timedelta(minutes=settings.scheduler.delivery_stuck_minutes)
    with transaction(ctx.sessions) as session:
        failed = session.execute(
            sa.update(Delivery)
            .where(
                d.status == DeliveryStatus.SENDING.value,
                d.provider_id.is_(None),
                d.claimed_at < cutoff,
                d.attempts >= settings.dispatch.max_attempts,
            )
            .values(status=DeliveryStatus.FAILED.value, error_code="stuck", updated_at=now)
        )
    result.add("failed", int(getattr(failed, "rowcount", 0) or 0))
    dispatcher = Dispatcher(
        ctx.sessions,
        ctx.senders,
        ctx.clock,
        settings,
        vault=ctx.vault,
        texts=AlertTexts(ctx.catalogue),
    )
    result.add("requeued", dispatcher.reconcile(stale_only=True))
    return result


# --------------------------------------------------------------------------------------------------
# Lookup key rotation
# --------------------------------------------------------------------------------------------------


def rehash_lookups(ctx: JobContext) -> JobResult:
    """While LOOKUP_KEY lists an older key, move every stored look-up hash to the newest key."""
    if not ctx.vault.rehashing:
        return JobResult(note="one lookup key")
    report = keys.rehash_lookups(ctx.sessions, vault=ctx.vault)
    result = JobResult()
    for name in ("identities", "participants", "opt_outs", "tips"):
        result.add(f"rehashed.{name}", getattr(report, name))
    with transaction(ctx.sessions) as session:
        audit(
            session, now=ctx.clock(), actor="scheduler", event="lookups_rehashed", detail=dict(result.counts)
        )
    return result


# --------------------------------------------------------------------------------------------------
# The monthly report
# --------------------------------------------------------------------------------------------------


def monthly_report(ctx: JobContext) -> JobResult:
    """Store last month's figures per municipality (replacing them if the job ran before)."""
    now = ctx.clock()
    period = reports.previous_month(now, ctx.settings.timezone)
    return report_for(ctx, period=period)


def report_for(ctx: JobContext, *, period: reports.Period) -> JobResult:
    """Compute and store one period's figures per municipality."""
    now = ctx.clock()
    result = JobResult(note=period.label)
    with transaction(ctx.sessions) as session:
        rows = reports.compute(session, period=period, book=ctx.book, now=now)
        result.add("municipalities", reports.save(session, period=period, rows=rows))
    return result
