"""Store functions for people: channel identities, registrations, addresses, erasure, opt-outs, audit.

Every function takes the caller's session and keyword-only arguments and never commits: the caller's
transaction (one per conversation step) decides what becomes durable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import Table, bindparam, delete, insert, update
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.sql.dml import Insert, ReturningUpdate
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select, SelectOfScalar

from storage.crypto import DataVault
from storage.models import (
    Address,
    AlertPreference,
    AuditEvent,
    ChannelIdentity,
    ConversationState,
    DataExport,
    FollowedArea,
    OptOut,
    Participant,
    ParticipantStatus,
)
from storage.outbound import forget_outbound
from storage.phones import InvalidPhoneNumber, to_e164
from storage.reach import forget_identity_reach, touch_reach
from storage.tips import forget_tipster
from storage.vocabulary import ChannelKind

MAX_ADDRESSES = 3
PHONE_CHANNELS = frozenset({ChannelKind.SMS, ChannelKind.WHATSAPP, ChannelKind.VOICE})
LIVE_STATUSES = frozenset({ParticipantStatus.PENDING, ParticipantStatus.ACTIVE})


class AddressLimitReached(Exception):
    """A participant already has the maximum number of addresses."""


@dataclass(frozen=True)
class NewAddress:
    """An address as a flow collected it: postcode and number as given, place from the postcode table."""

    postcode: str
    house_number: int
    addition: str | None
    lat: float
    lon: float
    municipality_code: str
    municipality_name: str
    place: str
    window_days: str | None = None
    window_start: time | None = None
    window_end: time | None = None


@dataclass(frozen=True)
class Registration:
    """Everything the registration flow collected, ready to store."""

    name: str | None
    phone: str
    address: NewAddress
    preferred_channel: ChannelKind
    consent_version: str
    consent_at: datetime
    language: str


def canonical_address(channel: ChannelKind, address: str) -> str:
    """The form of a sender address we hash: E.164 for phone channels, the chat id as is otherwise."""
    address = address.strip()
    if channel in PHONE_CHANNELS:
        if address.lower().startswith("whatsapp:"):
            address = address.split(":", 1)[1]
        try:
            return to_e164(address)
        except InvalidPhoneNumber:
            return address
    return address


def phone_hash(*, vault: DataVault, phone: str) -> str:
    """The keyed hash of an E.164 number; equal to the address hash of its SMS/WhatsApp identities."""
    return vault.lookup_hash(phone)


def find_identity(
    session: Session, *, vault: DataVault, channel: ChannelKind, address: str
) -> ChannelIdentity | None:
    """The identity for a channel and sender address, if we have seen it."""
    # The newest key's hash first; the older ones only while a lookup key rotation runs.
    for key in vault.lookup_hashes(canonical_address(channel, address)):
        found = session.exec(
            select(ChannelIdentity).where(
                ChannelIdentity.channel == channel, ChannelIdentity.address_hash == key
            )
        ).first()
        if found is not None:
            return found
    return None


class Touched(NamedTuple):
    """The sender's identity and its conversation state (None for an identity this message made)."""

    identity: ChannelIdentity
    state: ConversationState | None = None


def touch_sender(
    session: Session,
    *,
    vault: DataVault,
    channel: ChannelKind,
    address: str,
    now: datetime,
    language: str = "nl",
) -> Touched:
    """Find or create the sender's identity and mark it seen, with its conversation state.

    The UPDATE comes first on purpose: it takes the row lock on PostgreSQL (the write lock on SQLite)
    so two workers handling the same person's messages run one after the other.
    """
    canonical = canonical_address(channel, address)
    key = vault.lookup_hash(canonical)
    seen, find, create = _touch_statements()
    params = {"b_channel": channel, "b_key": key}
    if vault.rehashing:
        _rekey_identity(session, channel=channel, key=key, older=vault.older_lookup_hashes(canonical))
    # Core, not the ORM's bulk UPDATE: this session has not loaded the row yet, so there is nothing to
    # synchronise, and the ORM's preparation cost more than the statement. It returns the id, so a new
    # sender (no row) goes straight to the INSERT.
    known = session.connection().execute(seen, {**params, "b_now": now}).first() is not None
    # The identity with its participant and conversation in one SELECT: every message needs all three,
    # and the participant is then found in the session (`current_participant`) without a query.
    found = session.exec(find, params=params).first() if known else None
    if found is None:
        identity = ChannelIdentity(
            channel=channel,
            address_hash=key,
            address_enc=vault.encrypt(canonical),
            language=language,
            last_inbound_at=now,
            created_at=now,
        )
        # A Core insert, then the row joins the session as if loaded: the unit of work's flush of one
        # new row cost twice the statement, and a new identity has no participant, so no reach rows.
        values = identity.model_dump(exclude={"id"})
        identity.id = session.connection().execute(create, values).scalar_one()
        make_transient_to_detached(identity)
        session.add(identity)
        return Touched(identity)
    identity, _participant, state = found
    assert identity.id is not None
    if identity.participant_id is not None:
        # The UPDATE above went around the ORM: the reach rows carry the time too (WhatsApp's
        # window). An identity without a participant has no reach rows.
        touch_reach(session.connection(), identity_id=identity.id, at=now)
    if identity.address_enc is None and not identity.opted_out:
        # Erased earlier; the person writes again, so we may answer and remember the chat. Not after
        # an opt-out: that keeps the keyed hash alone until START lifts it.
        identity.address_enc = vault.encrypt(canonical)
        session.add(identity)
    return Touched(identity, state)


def remember_address(session: Session, *, vault: DataVault, identity: ChannelIdentity, address: str) -> None:
    """Store an identity's address again (encrypted) once it may be written to: after START."""
    if identity.address_enc is None and not identity.opted_out:
        identity.address_enc = vault.encrypt(canonical_address(identity.channel, address))
        session.add(identity)


def _rekey_identity(session: Session, *, channel: ChannelKind, key: str, older: tuple[str, ...]) -> None:
    # While a lookup key rotation runs, a sender whose identity still carries an older key's hash
    # moves to the newest key at once, so the UPDATE below finds it and no second identity is made.
    table: Table = ChannelIdentity.__table__  # type: ignore[attr-defined]
    taken = select(table.c.id).where(table.c.channel == channel, table.c.address_hash == key)
    session.connection().execute(
        update(table)
        .where(table.c.channel == channel, table.c.address_hash.in_(older), ~taken.exists())
        .values(address_hash=key)
    )


_FindSender = Select[ChannelIdentity, Participant, ConversationState]


@cache
def _touch_statements() -> tuple[ReturningUpdate[int], _FindSender, Insert]:
    # Built once (on first use, not at import): building them cost as much as running them.
    table: Table = ChannelIdentity.__table__  # type: ignore[attr-defined]
    where = (table.c.channel == bindparam("b_channel"), table.c.address_hash == bindparam("b_key"))
    # A message from the address proves it is its owner's: a typed number that writes to us is verified.
    seen = (
        update(table)
        .where(*where)
        .values(last_inbound_at=bindparam("b_now"), verified=True)
        .returning(table.c.id)
    )
    find = (
        select(ChannelIdentity, Participant, ConversationState)
        .outerjoin(Participant, col(Participant.id) == col(ChannelIdentity.participant_id))
        .outerjoin(ConversationState, col(ConversationState.identity_id) == col(ChannelIdentity.id))
        .where(
            col(ChannelIdentity.channel) == bindparam("b_channel"),
            col(ChannelIdentity.address_hash) == bindparam("b_key"),
        )
    )
    create = insert(table).returning(table.c.id)
    return seen, find, create


def current_participant(session: Session, *, identity: ChannelIdentity) -> Participant | None:
    """The live (pending or active) participant behind an identity, or None."""
    if identity.participant_id is None:
        return None
    participant = session.get(Participant, identity.participant_id)
    if participant is None or participant.status not in LIVE_STATUSES:
        return None
    return participant


def find_participant_by_phone(session: Session, *, vault: DataVault, phone: str) -> Participant | None:
    """The live participant registered with this E.164 number, or None."""
    # The newest key's hash first; the older ones only while a lookup key rotation runs.
    for key in vault.lookup_hashes(phone):
        rows = session.scalars(_by_phone(), {"b_key": key})
        found = next((p for p in rows if p.status in LIVE_STATUSES), None)
        if found is not None:
            return found
    return None


@cache
def _by_phone() -> SelectOfScalar[Participant]:
    # By the hash alone, status checked by the caller: with a status condition SQLite may pick the
    # status index (nearly every row) over the hash index and scan a million rows.
    # Built once: every first message from a number asks.
    key = col(Participant.phone_hash) == bindparam("b_key")
    return select(Participant).where(key).order_by(col(Participant.id))


def identities_of(session: Session, *, participant: Participant) -> list[ChannelIdentity]:
    """Every channel identity linked to a participant, in the order they were made."""
    return list(
        session.exec(
            select(ChannelIdentity)
            .where(ChannelIdentity.participant_id == participant.id)
            .order_by(col(ChannelIdentity.id))
        )
    )


def addresses_of(session: Session, *, participant: Participant) -> list[Address]:
    """A participant's addresses by slot (1 is home)."""
    return list(
        session.exec(
            select(Address).where(Address.participant_id == participant.id).order_by(col(Address.slot))
        )
    )


def link_identity(
    session: Session,
    *,
    vault: DataVault,
    participant: Participant,
    channel: ChannelKind,
    address: str,
    now: datetime,
    from_the_address: bool = False,
) -> ChannelIdentity:
    """Make sure the participant is reachable on a channel at an address (creating the identity if new).

    Only a message from that address itself (`from_the_address`) lifts its opt-out: a number typed or
    shared elsewhere that had said STOP stays opted out.
    """
    canonical = canonical_address(channel, address)
    key = vault.lookup_hash(canonical)
    identity = find_identity(session, vault=vault, channel=channel, address=canonical)
    if identity is None:
        opted_out = channel in PHONE_CHANNELS and is_opted_out(session, phone_hash=key)
        identity = ChannelIdentity(
            channel=channel,
            address_hash=key,
            created_at=now,
            language=participant.language,
            opted_out=opted_out,
            opted_out_at=now if opted_out else None,
        )
    identity.participant_id = participant.id
    identity.address_hash = vault.lookup_hash(canonical)
    identity.address_enc = vault.encrypt(canonical)
    identity.verified = True
    if from_the_address:
        identity.opted_out = False
        identity.opted_out_at = None
    session.add(identity)
    session.flush()
    return identity


def register_participant(
    session: Session,
    *,
    vault: DataVault,
    identity: ChannelIdentity,
    registration: Registration,
    now: datetime,
) -> tuple[Participant, bool]:
    """Store a registration; returns the participant and whether it was new.

    The same phone number always lands on the same participant (registering twice updates), and the
    identity the person wrote from is linked to it. The number must have been proved the person's own
    (they write from it, shared it as their Telegram contact, or typed its code). A number that had
    opted out is opted back in only when the registration comes from that number itself.
    """
    key = phone_hash(vault=vault, phone=registration.phone)
    from_the_phone = identity.channel in PHONE_CHANNELS and identity.address_hash == key
    participant = find_participant_by_phone(session, vault=vault, phone=registration.phone)
    if participant is None:
        participant = current_participant(session, identity=identity)
    created = participant is None
    if participant is None:
        participant = Participant(created_at=now)
    participant.status = ParticipantStatus.ACTIVE
    participant.name_enc = vault.encrypt(registration.name) if registration.name else None
    participant.phone_enc = vault.encrypt(registration.phone)
    participant.phone_hash = key
    participant.language = registration.language
    participant.preferred_channel = registration.preferred_channel
    participant.consent_version = registration.consent_version
    participant.consent_at = registration.consent_at
    participant.confirmed_at = now
    participant.ended_at = None
    session.add(participant)
    session.flush()

    identity.participant_id = participant.id
    identity.opted_out = False
    identity.opted_out_at = None
    identity.language = registration.language
    session.add(identity)
    if registration.preferred_channel in PHONE_CHANNELS:
        link_identity(
            session,
            vault=vault,
            participant=participant,
            channel=registration.preferred_channel,
            address=registration.phone,
            now=now,
            from_the_address=from_the_phone,
        )
    if from_the_phone:
        clear_opt_out(session, phone_hash=key)
    set_address(session, participant=participant, slot=1, address=registration.address)
    audit(
        session,
        now=now,
        actor=f"identity:{identity.id}",
        event="participant_registered" if created else "participant_updated",
        subject=f"participant:{participant.id}",
        detail={
            "channel": identity.channel.value,
            "preferred_channel": registration.preferred_channel.value,
            "consent_version": registration.consent_version,
        },
    )
    return participant, created


def set_address(session: Session, *, participant: Participant, slot: int, address: NewAddress) -> Address:
    """Put an address in a slot (1..3), replacing what was there."""
    if not 1 <= slot <= MAX_ADDRESSES:
        raise AddressLimitReached(slot)
    row = session.exec(
        select(Address).where(Address.participant_id == participant.id, Address.slot == slot)
    ).first()
    if row is None:
        assert participant.id is not None
        row = Address(participant_id=participant.id, slot=slot, **_address_fields(address))
    else:
        for name, value in _address_fields(address).items():
            setattr(row, name, value)
    session.add(row)
    session.flush()
    return row


def add_address(session: Session, *, participant: Participant, address: NewAddress) -> Address:
    """Put an extra address in the first free slot. Raises AddressLimitReached."""
    used = {a.slot for a in addresses_of(session, participant=participant)}
    free = [slot for slot in range(2, MAX_ADDRESSES + 1) if slot not in used]
    if not free:
        raise AddressLimitReached(MAX_ADDRESSES)
    return set_address(session, participant=participant, slot=free[0], address=address)


def remove_address(session: Session, *, participant: Participant, slot: int) -> None:
    """Remove an extra address (never the home address) and close the gap in the slots."""
    if slot == 1:
        raise ValueError("the home address can be replaced, not removed")
    session.execute(
        delete(Address).where(col(Address.participant_id) == participant.id, col(Address.slot) == slot)
    )
    session.flush()
    for row in addresses_of(session, participant=participant):
        if row.slot > slot:
            row.slot -= 1
            session.add(row)
            session.flush()


def erase_participant(session: Session, *, participant: Participant, now: datetime, reason: str) -> None:
    """Erase a participant's personal data; the row stays as an anonymous count with its end date.

    Name, phone, addresses and conversation state go; identities keep only their keyed hash (so the
    person is recognised as opted out) and are unlinked. `reason` is unsubscribed or expired.
    """
    identities = identities_of(session, participant=participant)
    forget_tipster(
        session, identity_ids=[i.id for i in identities if i.id is not None], participant_id=participant.id
    )
    forget_outbound(session, identity_ids=[i.id for i in identities if i.id is not None])
    for identity in identities:
        session.execute(delete(ConversationState).where(col(ConversationState.identity_id) == identity.id))
        identity.address_enc = None
        identity.participant_id = None
        session.add(identity)
    session.execute(delete(Address).where(col(Address.participant_id) == participant.id))
    # Preferences and export links are the person's too; a link sent before STOP must open nothing.
    session.execute(delete(AlertPreference).where(col(AlertPreference.participant_id) == participant.id))
    session.execute(delete(DataExport).where(col(DataExport.participant_id) == participant.id))
    session.execute(delete(FollowedArea).where(col(FollowedArea.participant_id) == participant.id))
    participant.name_enc = None
    participant.phone_enc = None
    participant.phone_hash = None
    participant.preferred_channel = None
    participant.status = ParticipantStatus.EXPIRED if reason == "expired" else ParticipantStatus.UNSUBSCRIBED
    participant.ended_at = now
    session.add(participant)
    session.flush()
    audit(
        session,
        now=now,
        actor="system",
        event="participant_erased",
        subject=f"participant:{participant.id}",
        detail={"reason": reason, "identities": len(identities)},
    )


def opt_out_identity(session: Session, *, identity_id: int, now: datetime) -> None:
    """Mark one identity opted out (a provider said the contact stopped) without loading it.

    As after STOP, only the keyed hash stays: the address is forgotten until the person writes START.
    """
    session.execute(
        update(ChannelIdentity)
        .where(col(ChannelIdentity.id) == identity_id)
        .values(opted_out=True, opted_out_at=now, address_enc=None)
    )
    forget_identity_reach(session.connection(), identity_id=identity_id)
    forget_outbound(session, identity_ids=[identity_id])


def record_opt_out(session: Session, *, phone_hash: str, now: datetime) -> None:
    """Remember that a number said STOP (only its keyed hash)."""
    if session.get(OptOut, phone_hash) is None:
        session.add(OptOut(phone_hash=phone_hash, at=now))
        session.flush()


def clear_opt_out(session: Session, *, phone_hash: str) -> None:
    """Forget an opt-out: the number opted back in."""
    session.execute(delete(OptOut).where(col(OptOut.phone_hash) == phone_hash))


def is_opted_out(session: Session, *, phone_hash: str) -> bool:
    """Whether a number said STOP and has not opted back in."""
    return session.get(OptOut, phone_hash) is not None


def audit(
    session: Session,
    *,
    now: datetime,
    actor: str,
    event: str,
    subject: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Append an audit event (never personal data in clear)."""
    session.add(AuditEvent(at=now, actor=actor, event=event, subject=subject, detail=dict(detail or {})))


SECURITY_PREFIX = "security."
"""Events of this prefix are security events (failed logins, throttling); all others are actions."""
REPEAT_WINDOW = timedelta(minutes=15)


def audit_repeated(
    session: Session,
    *,
    now: datetime,
    actor: str,
    event: str,
    subject: str | None = None,
    detail: Mapping[str, Any] | None = None,
    window: timedelta = REPEAT_WINDOW,
    count: int = 1,
) -> AuditEvent:
    """Count a repeated event (`count` times): one row per actor, event and subject per window, with
    `count` and `last`.

    A flood of failed logins thus adds a row per client and account every `window`, not one per try.
    """
    query = (
        select(AuditEvent)
        .where(
            AuditEvent.event == event,
            AuditEvent.actor == actor,
            col(AuditEvent.subject).is_(None) if subject is None else AuditEvent.subject == subject,
            col(AuditEvent.at) > now - window,
        )
        .order_by(col(AuditEvent.at).desc())
        .limit(1)
    )
    row = session.exec(query).first()
    if row is None:
        row = AuditEvent(
            at=now, actor=actor, event=event, subject=subject, detail={**(detail or {}), "count": count}
        )
    else:
        # A new dict: the JSON column notices a replaced value, not one changed in place.
        row.detail = {**row.detail, **(detail or {}), "count": int(row.detail.get("count", 1)) + count}
    row.detail["last"] = now.isoformat(timespec="seconds")
    session.add(row)
    return row


def _address_fields(address: NewAddress) -> dict[str, Any]:
    return {
        "postcode": address.postcode,
        "house_number": address.house_number,
        "addition": address.addition,
        "lat": address.lat,
        "lon": address.lon,
        "municipality_code": address.municipality_code,
        "municipality_name": address.municipality_name,
        "place": address.place,
        "window_days": address.window_days,
        "window_start": address.window_start,
        "window_end": address.window_end,
    }
