"""A person's data: what MIJN GEGEVENS lists (AVG art. 15) and the one-time JSON export (art. 20).

MIJN GEGEVENS EXPORT makes a random token and keeps only its keyed hash (as verification codes do), so a
copy of the database opens no export. The link `PUBLIC_BASE_URL/mijn-gegevens/<token>` answers the JSON
once, within `EXPORT_VALID` (24 hours: long enough to open it on another device, short enough that a
forwarded or leaked message is soon worthless); then, or when unknown, 410. A person may ask
`EXPORTS_PER_DAY` times in 24 hours, counted from the audit log, so that purging used and expired
tokens (the scheduler's retention job) does not reset the count. The document is built when the link
is opened, from this one participant's rows only: never another person's data (no other tipsters,
no recipients of the same action, no operator names).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, update
from sqlmodel import Session, col, select

from storage.crypto import DataVault
from storage.models import (
    Action,
    AuditEvent,
    ConversationState,
    DataExport,
    Delivery,
    Participant,
    ParticipantStatus,
    ReachPoint,
    ReconfirmRequest,
    Relay,
    Tip,
    TipMessage,
)
from storage.participants import addresses_of, audit, identities_of
from storage.preferences import preferences_of
from storage.vocabulary import RECEIVED

EXPORT_VALID = timedelta(hours=24)
EXPORTS_PER_DAY = 3
HISTORY = timedelta(days=365)
REQUESTED = "data_export_requested"
EXPORT_VERSION = 1


class ExportRefused(Exception):
    """No new export link now: the person asked `EXPORTS_PER_DAY` times in the last 24 hours."""


class ExportGone(LookupError):
    """The link is unknown, used or expired (all answered alike, so a token cannot be probed)."""


@dataclass(frozen=True)
class ReceivedAlert:
    """An alert that reached the person: its action's code and type, and when."""

    code: str
    type: str
    at: datetime


@dataclass(frozen=True)
class SentTip:
    """A tip the person sent: when, for which action, and its text."""

    code: str
    at: datetime
    text: str


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime | time | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        aware = _aware(value)
        assert aware is not None
        return aware.astimezone(UTC).isoformat()
    return value.strftime("%H:%M")


def _token_hashes(vault: DataVault, token: str) -> tuple[str, ...]:
    return vault.lookup_hashes(f"data-export:{token}")


def _identity_ids(session: Session, participant: Participant) -> list[int]:
    return [i.id for i in identities_of(session, participant=participant) if i.id is not None]


def _tips_query(session: Session, participant: Participant) -> Any:
    who = col(Tip.participant_id) == participant.id
    ids = _identity_ids(session, participant)
    if ids:
        who = or_(who, col(Tip.identity_id).in_(ids))
    return select(Tip, Action.code).join(Action, col(Action.id) == col(Tip.action_id)).where(who)


def received_alerts(session: Session, *, participant: Participant, now: datetime) -> list[ReceivedAlert]:
    """The alerts that reached the person in the last twelve months, newest first."""
    query = (
        select(Action.code, Action.type, Delivery.sent_at, Delivery.created_at)
        .join(Action, col(Action.id) == col(Delivery.action_id))
        .where(
            col(Delivery.participant_id) == participant.id,
            col(Delivery.relay_id).is_(None),
            col(Delivery.kind) == "alert",
            col(Delivery.status).in_([s.value for s in RECEIVED]),
            col(Delivery.created_at) >= now - HISTORY,
        )
        .order_by(col(Delivery.created_at).desc())
    )
    found = []
    for code, kind, sent_at, created_at in session.execute(query):
        at = _aware(sent_at or created_at)
        assert at is not None
        found.append(ReceivedAlert(code, getattr(kind, "value", str(kind)), at))
    return found


def sent_tips(session: Session, *, participant: Participant) -> list[SentTip]:
    """The tips the person sent (as long as we keep them), newest first."""
    rows = session.execute(_tips_query(session, participant).order_by(col(Tip.received_at).desc()))
    found = []
    for tip, code in rows:
        at = _aware(tip.received_at)
        assert at is not None
        found.append(SentTip(code, at, tip.text))
    return found


def request_export(session: Session, *, vault: DataVault, participant: Participant, now: datetime) -> str:
    """A new one-time export token for the person (the link's last part), audited. Raises ExportRefused."""
    subject = f"participant:{participant.id}"
    asked = session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(
            col(AuditEvent.event) == REQUESTED,
            col(AuditEvent.subject) == subject,
            col(AuditEvent.at) > now - timedelta(days=1),
        )
    )
    if (asked or 0) >= EXPORTS_PER_DAY:
        raise ExportRefused(subject)
    # 128 random bits: unguessable, and short enough for the link to fit one SMS part with its text.
    token = secrets.token_urlsafe(16)
    session.add(
        DataExport(
            participant_id=participant.id or 0,
            token_hash=_token_hashes(vault, token)[0],
            created_at=now,
            expires_at=now + EXPORT_VALID,
        )
    )
    audit(session, now=now, actor="participant", event=REQUESTED, subject=subject)
    session.flush()
    return token


def redeem_export(session: Session, *, vault: DataVault, token: str, now: datetime) -> Participant:
    """The person a token is for, marking it used (once only). Raises ExportGone."""
    if not token or len(token) > 100:
        raise ExportGone(token)
    row = session.exec(
        select(DataExport).where(col(DataExport.token_hash).in_(_token_hashes(vault, token)))
    ).first()
    if row is None or row.used_at is not None:
        raise ExportGone(token)
    expires = _aware(row.expires_at)
    assert expires is not None
    # Marked used by a guarded update: of two requests at once, only one gets the document.
    claimed = session.execute(
        update(DataExport)
        .where(col(DataExport.id) == row.id, col(DataExport.used_at).is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if expires <= now or int(getattr(claimed, "rowcount", 0) or 0) != 1:
        raise ExportGone(token)
    participant = session.get(Participant, row.participant_id)
    if participant is None or participant.status is not ParticipantStatus.ACTIVE:
        raise ExportGone(token)
    return participant


def purge_exports(session: Session, *, now: datetime) -> int:
    """Delete used and expired export tokens; how many went."""
    gone = session.execute(
        delete(DataExport).where(or_(col(DataExport.used_at).is_not(None), col(DataExport.expires_at) <= now))
    )
    return int(getattr(gone, "rowcount", 0) or 0)


def _decrypt(vault: DataVault, value: str | None) -> str | None:
    return vault.decrypt(value) if value else None


def export_document(
    session: Session, *, vault: DataVault, participant: Participant, now: datetime
) -> dict[str, Any]:
    """Everything we keep about this one person, as JSON-ready values (times in UTC, ISO 8601)."""
    pid = participant.id
    identities = identities_of(session, participant=participant)
    identity_ids = [i.id for i in identities if i.id is not None]
    addresses = addresses_of(session, participant=participant)
    by_address = {a.id: a.slot for a in addresses}
    reach = session.exec(select(ReachPoint).where(col(ReachPoint.participant_id) == pid)).all()
    preferences = preferences_of(session, participant_id=pid or 0)
    deliveries = session.execute(
        select(Delivery, Action.code, Action.type)
        .join(Action, col(Action.id) == col(Delivery.action_id))
        .where(col(Delivery.participant_id) == pid, col(Delivery.relay_id).is_(None))
        .order_by(col(Delivery.created_at))
    ).all()
    tips = session.execute(_tips_query(session, participant).order_by(col(Tip.received_at))).all()
    tip_ids = [tip.id for tip, _ in tips]
    messages: dict[int, list[TipMessage]] = {}
    if tip_ids:
        for message in session.exec(
            select(TipMessage).where(col(TipMessage.tip_id).in_(tip_ids)).order_by(col(TipMessage.at))
        ):
            messages.setdefault(message.tip_id, []).append(message)
    relays: Sequence[Relay] = (
        session.exec(select(Relay).where(col(Relay.coordinator_identity_id).in_(identity_ids))).all()
        if identity_ids
        else []
    )
    states = (
        session.exec(
            select(ConversationState).where(col(ConversationState.identity_id).in_(identity_ids))
        ).all()
        if identity_ids
        else []
    )
    reconfirm = session.get(ReconfirmRequest, pid)
    subjects = [f"participant:{pid}", *(f"identity:{i}" for i in identity_ids)]
    events = session.exec(
        select(AuditEvent).where(col(AuditEvent.subject).in_(subjects)).order_by(col(AuditEvent.at))
    ).all()
    quiet = preferences.quiet
    return {
        "format": "burgernet-my-data",
        "version": EXPORT_VERSION,
        "exported_at": _iso(now),
        "participant": {
            "status": participant.status.value,
            "name": _decrypt(vault, participant.name_enc),
            "phone": _decrypt(vault, participant.phone_enc),
            "language": participant.language,
            "preferred_channel": participant.preferred_channel.value
            if participant.preferred_channel
            else None,
            "registered_at": _iso(participant.created_at),
            "confirmed_at": _iso(participant.confirmed_at),
            "exercises": participant.exercises,
        },
        "consent": {
            "privacy_statement_version": participant.consent_version,
            "given_at": _iso(participant.consent_at),
        },
        "identities": [
            {
                "channel": i.channel.value,
                "address": _decrypt(vault, i.address_enc),
                "language": i.language,
                "verified": i.verified,
                "opted_out": i.opted_out,
                "created_at": _iso(i.created_at),
                "last_message_at": _iso(i.last_inbound_at),
            }
            for i in identities
        ],
        "addresses": [
            {
                "slot": a.slot,
                "postcode": a.postcode,
                "house_number": a.house_number,
                "addition": a.addition,
                "place": a.place,
                "municipality": a.municipality_name,
                "municipality_code": a.municipality_code,
                "lat": a.lat,
                "lon": a.lon,
                "window": None
                if a.window_days is None and a.window_start is None
                else {"days": a.window_days, "start": _iso(a.window_start), "end": _iso(a.window_end)},
            }
            for a in addresses
        ],
        "reach_points": [
            {"address_slot": by_address.get(r.address_id), "channel": r.channel.value} for r in reach
        ],
        "preferences": {
            "skipped_types": sorted(t.value for t in preferences.skipped),
            "quiet_hours": None
            if quiet is None
            else {"days": quiet.days, "start": _iso(quiet.start), "end": _iso(quiet.end)},
        },
        "deliveries": [
            {
                "action_code": code,
                "action_type": getattr(kind, "value", str(kind)),
                "kind": d.kind.value,
                "channel": d.channel.value,
                "status": d.status.value,
                "distance_m": d.distance_m,
                "created_at": _iso(d.created_at),
                "sent_at": _iso(d.sent_at),
            }
            for d, code, kind in deliveries
        ],
        "tips": [
            {
                "action_code": code,
                "received_at": _iso(tip.received_at),
                "channel": tip.channel.value,
                "text": tip.text,
                "seen_at": _iso(tip.seen_at),
                "seen_text": tip.seen_text,
                "location": tip.location_text,
                "lat": tip.lat,
                "lon": tip.lon,
                "direction": tip.direction,
                "description": tip.description,
                "vehicle_plate": tip.vehicle_plate,
                "media": len(tip.media),
                "late": tip.late,
                "messages": [
                    {"direction": m.direction, "text": m.text, "at": _iso(m.at)}
                    for m in messages.get(tip.id or 0, [])
                ],
            }
            for tip, code in tips
        ],
        "neighbourhood_groups": [
            {
                "name": r.group_name,
                "platform": r.platform.value,
                "area": r.area,
                "estimated_members": r.estimated_members,
                "rules_version": r.rules_version,
                "rules_accepted_at": _iso(r.rules_at),
                "active": r.active,
            }
            for r in relays
        ],
        "conversations": [{"flow": s.flow, "step": s.step, "updated_at": _iso(s.updated_at)} for s in states],
        "reconfirmation": None
        if reconfirm is None
        else {"asked_at": _iso(reconfirm.asked_at), "expires_at": _iso(reconfirm.expires_at)},
        "events": [{"event": e.event, "at": _iso(e.at)} for e in events],
    }
