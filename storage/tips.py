"""Store functions for tips: create and extend (with their forward rows), list, claim forwards, questions.

Like the other store functions these take the caller's session and keyword-only arguments and never
commit: the caller's transaction (one conversation step, one API call, one worker result) decides. A tip
and its forward row are always written together, so a stored tip is always forwarded and a forwarded
tip is always stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, Table, bindparam, insert, update
from sqlalchemy.sql.dml import Insert, ReturningInsert
from sqlmodel import Session, col, select

from storage.crypto import DataVault
from storage.models import (
    Action,
    ActionStatus,
    ChannelIdentity,
    Delivery,
    DeliveryKind,
    Participant,
    Tip,
    TipForward,
    TipMessage,
)
from storage.tip_media import add_media, media_paths
from storage.vocabulary import RECEIVED, ChannelKind, GeoPoint

CREATED = "tip.created"
UPDATED = "tip.updated"
PENDING, DONE, SKIPPED = "pending", "done", "skipped"
QUEUED, SENT, FAILED = "queued", "sent", "failed"
REPORTER_PREFIX = "R-"
SEPARATOR = "\n"
API_TIPS = "/api/v1/tips"


class TipNotFound(LookupError):
    """No tip with that id (for that action)."""


class TipHasNoChannel(Exception):
    """The tipster cannot be reached any more (erased, opted out)."""


@dataclass(frozen=True)
class TipFacts:
    """What the NLU found in one message of a tip; None where it found nothing."""

    seen_at: datetime | None = None
    seen_text: str | None = None
    """The time phrase as written ("nu net 5 minuten geleden"); kept also when it gives no moment."""
    location_text: str | None = None
    places: tuple[str, ...] = field(default=())
    """Every place the text names, for a geocoder: most specific first, each with the town it names."""
    location: GeoPoint | None = None
    direction: str | None = None
    description: str | None = None
    vehicle_plate: str | None = None
    intent: str | None = None
    media: tuple[str, ...] = field(default=())


def utc(value: datetime | None) -> datetime | None:
    """A stored datetime as aware UTC (SQLite gives naive ones back)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def sender_hash(identity: ChannelIdentity) -> str:
    """The key of one sender on one channel: the identity's keyed address hash (no number in clear)."""
    return f"{identity.channel.value}:{identity.address_hash}"


def reporter_id(*, vault: DataVault, identity: ChannelIdentity, participant_id: int | None) -> str:
    """The pseudonym operators see: one per participant (whatever the channel), else per sender."""
    basis = f"participant:{participant_id}" if participant_id else f"sender:{sender_hash(identity)}"
    return REPORTER_PREFIX + vault.lookup_hash("tip-reporter:" + basis)[:10].upper()


def tip_json(tip: Tip, *, action_code: str) -> dict[str, Any]:
    """The tip in the shape of ARCHITECTURE.md (never the phone number)."""
    seen_at = utc(tip.seen_at)
    received_at = utc(tip.received_at)
    location: dict[str, Any] | None = None
    if tip.location_text or tip.lat is not None:
        location = {"text": tip.location_text, "lat": tip.lat, "lon": tip.lon}
    return {
        "id": tip.id,
        "action_id": tip.action_id,
        "action_code": action_code,
        "channel": tip.channel.value,
        "received_at": received_at.isoformat() if received_at else None,
        "updated_at": utc(tip.updated_at).isoformat() if tip.updated_at else None,  # type: ignore[union-attr]
        "text": tip.text,
        "intent": tip.intent,
        "seen_at": seen_at.isoformat() if seen_at else None,
        "seen_text": tip.seen_text,
        "location": location,
        # Every place the tip names, most specific first with its town: what a geocoder tries in turn.
        "places": list(tip.places or ()),
        "direction": tip.direction,
        "description": tip.description,
        "vehicle_plate": tip.vehicle_plate,
        # Our own URLs (the API's, with its token): the provider's references never leave the system.
        "media": media_paths(tip, prefix=API_TIPS),
        "reporter": tip.reporter,
        "relay_id": tip.relay_id,
        "messages": tip.messages,
        "truncated": tip.truncated,
        "late": tip.late,
    }


def _apply_facts(tip: Tip, facts: TipFacts) -> None:
    # The first answer to each question stands; a later message only fills what is still missing.
    if tip.seen_at is None and facts.seen_at is not None:
        tip.seen_at = facts.seen_at.astimezone(UTC)
        tip.seen_text = facts.seen_text
    elif tip.seen_text is None and facts.seen_text:
        tip.seen_text = facts.seen_text
    if tip.location_text is None and facts.location_text:
        tip.location_text = facts.location_text
        tip.places = list(facts.places)
    if tip.lat is None and facts.location is not None:
        tip.lat, tip.lon = facts.location.lat, facts.location.lon
    if tip.direction is None and facts.direction:
        tip.direction = facts.direction
    if tip.vehicle_plate is None and facts.vehicle_plate:
        tip.vehicle_plate = facts.vehicle_plate
    if facts.description:
        known = [d.strip() for d in (tip.description or "").split(",") if d.strip()]
        for item in facts.description.split(","):
            if item.strip() and item.strip() not in known:
                known.append(item.strip())
        tip.description = ", ".join(known) or None
    if tip.intent is None and facts.intent:
        tip.intent = facts.intent
    if facts.media:
        tip.media = [*tip.media, *(m for m in facts.media if m not in tip.media)]


def _forward(
    session: Session,
    *,
    tip: Tip,
    text: str,
    action_code: str,
    event: str,
    now: datetime,
    webhook: bool,
) -> None:
    # Core inserts on the session's connection: these two rows are written for every tip version, and
    # the ORM (its unit of work, or even only its execute) would add half again to their cost.
    statements = _statements()
    connection = session.connection()
    connection.execute(statements.message, _message_row(tip, text, now))
    connection.execute(
        statements.forward,
        {
            "tip_id": tip.id,
            "action_id": tip.action_id,
            "event": event,
            "payload": tip_json(tip, action_code=action_code),
            "created_at": now,
            "webhook_state": PENDING if webhook else SKIPPED,
            "webhook_attempts": 0,
            "webhook_next_at": now,
        },
    )


class _Statements(NamedTuple):
    tip: ReturningInsert[int]
    message: Insert
    forward: Insert
    history: Select[int, int, datetime, str]


@cache
def _statements() -> _Statements:
    # Built once (on first use): every tip runs these, and building one cost a third of running it.
    tip: Table = Tip.__table__  # type: ignore[attr-defined]
    return _Statements(
        tip=insert(tip).returning(tip.c.id),
        message=insert(TipMessage.__table__),  # type: ignore[attr-defined]
        forward=insert(TipForward.__table__),  # type: ignore[attr-defined]
        history=select(tip.c.id, tip.c.action_id, tip.c.received_at, tip.c.text).where(
            tip.c.sender_hash == bindparam("b_sender")
        ),
    )


def _message_row(tip: Tip, text: str, now: datetime) -> dict[str, Any]:
    return {
        "tip_id": tip.id,
        "direction": "in",
        "text": text,
        "at": now,
        "state": DONE,
    }


def missing_where_when(facts: TipFacts) -> tuple[bool, bool]:
    """Whether a first message leaves out where, and when, something was seen."""
    return (not facts.location_text and facts.location is None), facts.seen_at is None


def create_tip(
    session: Session,
    *,
    action: Action,
    identity: ChannelIdentity,
    participant: Participant | None,
    vault: DataVault,
    text: str,
    facts: TipFacts,
    truncated: bool,
    now: datetime,
    webhook: bool,
    followup_asked: bool = False,
    relay_id: int | None = None,
    late: bool = False,
) -> Tip:
    """Store a new tip with its first message and its forward row; returns a detached copy of the row.

    `late`: sent after the action ended, so operators see it apart from the live tips.
    """
    phone_enc = None
    if identity.channel in (ChannelKind.SMS, ChannelKind.WHATSAPP, ChannelKind.VOICE):
        phone_enc = identity.address_enc  # the E.164 number the carrier vouches for, encrypted already
    elif participant is not None:
        phone_enc = participant.phone_enc
    participant_id = participant.id if participant else None
    values: dict[str, Any] = {
        "action_id": action.id or 0,
        "identity_id": identity.id,
        "participant_id": participant_id,
        "channel": identity.channel,
        "language": identity.language or "nl",
        "reporter": reporter_id(vault=vault, identity=identity, participant_id=participant_id),
        "sender_hash": sender_hash(identity),
        "phone_enc": phone_enc,
        "text": text,
        "intent": facts.intent,
        "seen_at": facts.seen_at.astimezone(UTC) if facts.seen_at else None,
        "seen_text": facts.seen_text or None,
        "location_text": facts.location_text or None,
        "places": list(facts.places),
        "lat": facts.location.lat if facts.location else None,
        "lon": facts.location.lon if facts.location else None,
        "direction": facts.direction or None,
        "description": facts.description or None,
        "vehicle_plate": facts.vehicle_plate or None,
        "media": list(dict.fromkeys(facts.media)),
        "messages": 1,
        "truncated": truncated,
        "followup_asked": followup_asked,
        "relay_id": relay_id,
        "late": late,
        "received_at": now,
        "updated_at": now,
    }
    # A Core insert and a constructed copy: every tip takes this path, and the ORM would triple its cost.
    tip_id = session.connection().execute(_statements().tip, values).scalar_one()
    tip = Tip.model_construct(id=tip_id, **values)
    if values["media"]:
        add_media(session, tip_id=tip_id, channel=identity.channel, refs=values["media"], known=0, now=now)
    _forward(
        session,
        tip=tip,
        text=text,
        action_code=action.code,
        event=CREATED,
        now=now,
        webhook=webhook,
    )
    return tip


def _known(tip: Tip) -> tuple[object, ...]:
    return (tip.seen_at, tip.seen_text, tip.location_text, tip.lat, tip.direction, tip.description) + (
        tip.vehicle_plate,
    )


def extend_tip(
    session: Session,
    *,
    tip: Tip,
    text: str,
    facts: TipFacts,
    truncated: bool,
    now: datetime,
    webhook: bool,
    max_chars: int,
) -> bool:
    """Add a message to a tip (and a forward row); False when it added nothing (a duplicate)."""
    lines = [line.strip().casefold() for line in tip.text.split(SEPARATOR)]
    new_text = bool(text.strip()) and text.strip().casefold() not in lines
    before = _known(tip)
    media_before = list(tip.media)
    _apply_facts(tip, facts)
    after = _known(tip)
    if not new_text and before == after and media_before == tip.media:
        return False
    if new_text:
        joined = f"{tip.text}{SEPARATOR}{text.strip()}" if tip.text else text.strip()
        if len(joined) > max_chars:
            joined, truncated = joined[:max_chars], True
        tip.text = joined
    tip.truncated = tip.truncated or truncated
    tip.messages += 1
    tip.updated_at = now
    session.add(tip)
    session.flush()
    if len(tip.media) > len(media_before):
        add_media(
            session,
            tip_id=tip.id or 0,
            channel=tip.channel,
            refs=tip.media[len(media_before) :],
            known=len(media_before),
            now=now,
        )
    action = session.get(Action, tip.action_id)
    code = action.code if action else ""
    _forward(session, tip=tip, text=text, action_code=code, event=UPDATED, now=now, webhook=webhook)
    return True


def get_tip(session: Session, *, tip_id: int, action_id: int | None = None) -> Tip:
    """The tip with this id (and action). Raises TipNotFound."""
    tip = session.get(Tip, tip_id)
    if tip is None or (action_id is not None and tip.action_id != action_id):
        raise TipNotFound(tip_id)
    return tip


def recent_tip(session: Session, *, identity_id: int, since: datetime) -> Tip | None:
    """The identity's latest live tip if it changed after `since` (a second message extends it).

    Late tips never count: a message after the action ended must not keep the window open.
    """
    return session.exec(
        select(Tip)
        .where(col(Tip.identity_id) == identity_id, col(Tip.updated_at) >= since, col(Tip.late).is_(False))
        .order_by(col(Tip.updated_at).desc(), col(Tip.id).desc())
        .limit(1)
    ).first()


def changed_tips(session: Session, *, action_id: int, since: datetime, upto: int) -> list[Tip]:
    """The action's tips with an id up to `upto` that changed after `since`, oldest change first."""
    return list(
        session.exec(
            select(Tip)
            .where(col(Tip.action_id) == action_id, col(Tip.id) <= upto, col(Tip.updated_at) > since)
            .order_by(col(Tip.updated_at), col(Tip.id))
            .limit(200)
        )
    )


def tip_awaiting_answer(session: Session, *, identity_id: int, now: datetime) -> Tip | None:
    """The identity's tip whose operator question is still open, if any."""
    return session.exec(
        select(Tip)
        .where(col(Tip.identity_id) == identity_id, col(Tip.answer_open_until) > now)
        .order_by(col(Tip.answer_open_until).desc())
        .limit(1)
    ).first()


def close_answer(session: Session, *, tip: Tip) -> None:
    """The operator's question was answered: the next message is a message like any other."""
    tip.answer_open_until = None
    session.add(tip)


@dataclass(frozen=True)
class SenderHistory:
    """What the abuse rules need to know of a sender's earlier tips."""

    started_since: int
    """Tips the sender started inside the rate window."""
    same_text: int | None
    """The id of a tip of theirs for this action that already says exactly this text."""


def sender_history(
    session: Session, *, sender_hash: str, action_id: int, text: str, since: datetime
) -> SenderHistory:
    """One look at the sender's tips: how many they started since `since`, and a duplicate of `text`."""
    rows = session.connection().execute(_statements().history, {"b_sender": sender_hash}).all()
    wanted = text.strip().casefold()
    started = sum(1 for _, _, received, _ in rows if (utc(received) or since) >= since)
    same = None
    for tip_id, tip_action, _, tip_text in rows:
        lines = (line.strip().casefold() for line in tip_text.split(SEPARATOR))
        if wanted and tip_action == action_id and wanted in lines:
            same = tip_id
            break
    return SenderHistory(started_since=started, same_text=same)


def received_actions(
    session: Session, *, identity_id: int, participant_id: int | None, now: datetime
) -> list[Action]:
    """Active actions whose alert reached this identity (or its participant), newest first."""
    d = col(Delivery.identity_id) == identity_id
    if participant_id is not None:
        d = d | (col(Delivery.participant_id) == participant_id)
    rows = session.exec(
        select(Action)
        .join(Delivery, col(Delivery.action_id) == col(Action.id))
        .where(
            d,
            col(Delivery.kind) == DeliveryKind.ALERT.value,
            col(Delivery.status).in_([s.value for s in RECEIVED]),
            col(Action.status) == ActionStatus.ACTIVE.value,
            col(Action.expires_at) > now,
        )
        .order_by(col(Action.launched_at).desc(), col(Action.id).desc())
    ).all()
    unique: dict[int, Action] = {}
    for action in rows:
        unique.setdefault(action.id or 0, action)
    return list(unique.values())


def late_tip(session: Session, *, identity_id: int, action_id: int) -> Tip | None:
    """The identity's late tip on this action, if it sent one (further late messages join it)."""
    return session.exec(
        select(Tip)
        .where(col(Tip.identity_id) == identity_id, col(Tip.action_id) == action_id, col(Tip.late).is_(True))
        .order_by(col(Tip.id).desc())
        .limit(1)
    ).first()


def action_is_over(action: Action, *, now: datetime) -> bool:
    """Whether an action no longer takes tips: closed, cancelled, or past its end."""
    if action.status in (ActionStatus.CLOSED, ActionStatus.CANCELLED):
        return True
    expires = utc(action.expires_at)
    return action.status is ActionStatus.ACTIVE and expires is not None and expires <= now


def ended_actions(
    session: Session, *, identity_id: int, participant_id: int | None, now: datetime, since: datetime
) -> list[Action]:
    """Actions over since `since` that reached this identity (alert) or that it tipped on, newest first."""
    d = col(Delivery.identity_id) == identity_id
    if participant_id is not None:
        d = d | (col(Delivery.participant_id) == participant_id)
    received = select(Delivery.action_id).where(
        d,
        col(Delivery.kind) == DeliveryKind.ALERT.value,
        col(Delivery.status).in_([s.value for s in RECEIVED]),
    )
    tipped = select(Tip.action_id).where(col(Tip.identity_id) == identity_id)
    ended = (
        col(Action.status).in_([ActionStatus.CLOSED.value, ActionStatus.CANCELLED.value])
        & (col(Action.closed_at) >= since)
    ) | (
        (col(Action.status) == ActionStatus.ACTIVE.value)
        & (col(Action.expires_at) <= now)
        & (col(Action.expires_at) >= since)
    )
    rows = session.exec(select(Action).where(col(Action.id).in_(received.union(tipped)), ended)).all()
    return sorted(rows, key=lambda a: utc(a.closed_at or a.expires_at) or now, reverse=True)


def action_replied_to(
    session: Session, *, identity_id: int, channel: ChannelKind, provider_id: str
) -> Action | None:
    """The action whose message this is a reply to (Telegram ids are per chat: the identity must match)."""
    query = select(Delivery.action_id).where(col(Delivery.provider_id) == provider_id)
    own = session.exec(query.where(col(Delivery.identity_id) == identity_id)).first()
    if own is None and channel is not ChannelKind.TELEGRAM:
        own = session.exec(query).first()
    return session.get(Action, own) if own is not None else None


def list_tips(
    session: Session,
    *,
    action_id: int | None = None,
    since: datetime | None = None,
    after: int = 0,
    limit: int = 200,
) -> list[tuple[Tip, str]]:
    """Tips (with their action's code) oldest first: of one action, changed since, or above an id."""
    query = select(Tip, Action.code).join(Action, col(Action.id) == col(Tip.action_id))
    if action_id is not None:
        query = query.where(col(Tip.action_id) == action_id)
    if since is not None:
        query = query.where(col(Tip.updated_at) >= since)
    query = query.where(col(Tip.id) > after).order_by(col(Tip.id)).limit(limit)
    return [(tip, code) for tip, code in session.exec(query).all()]


def forget_tipster(session: Session, *, identity_ids: Sequence[int], participant_id: int | None) -> int:
    """STOP or erasure: the tips stay for the control room, but without the tipster's number."""
    who: ColumnElement[bool] = col(Tip.identity_id).in_(list(identity_ids))
    if participant_id is not None:
        who = who | (col(Tip.participant_id) == participant_id)
    result = session.execute(
        update(Tip)
        .where(who)
        .values(phone_enc=None, answer_open_until=None)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def set_verdict(session: Session, *, tip: Tip, useful: bool) -> Tip:
    """Record an operator's verdict on a tip."""
    tip.verdict = "useful" if useful else "not_useful"
    session.add(tip)
    return tip


def tip_phone(*, tip: Tip, vault: DataVault) -> str:
    """The tipster's phone number in clear. Raises TipNotFound when none is known."""
    if not tip.phone_enc:
        raise TipNotFound(tip.id)
    return vault.decrypt(tip.phone_enc)


def messages_of(session: Session, *, tip_ids: Sequence[int]) -> list[TipMessage]:
    """The conversation of some tips, oldest first."""
    if not tip_ids:
        return []
    return list(
        session.exec(
            select(TipMessage).where(col(TipMessage.tip_id).in_(list(tip_ids))).order_by(col(TipMessage.id))
        ).all()
    )
