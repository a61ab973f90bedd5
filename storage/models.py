"""The tables. Personal data (phone, name, chat id) is stored encrypted, with a keyed hash to find it."""

from __future__ import annotations

from datetime import datetime, time
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.vocabulary import ChannelKind, DeliveryStatus


def enum_type(enum: type[StrEnum]) -> sa.Enum:
    """A portable enum column: the lower-case values as VARCHAR, no database enum type."""
    return sa.Enum(enum, native_enum=False, length=24, values_callable=lambda e: [m.value for m in e])


class ParticipantStatus(StrEnum):
    """Where a registration stands."""

    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    EXPIRED = "expired"


class Participant(SQLModel, table=True):
    """A person in the network. Erased fields become NULL; the row stays as an anonymous count."""

    __tablename__ = "participant"

    id: int | None = Field(default=None, primary_key=True)
    status: ParticipantStatus = Field(
        default=ParticipantStatus.PENDING, index=True, sa_type=enum_type(ParticipantStatus)
    )
    name_enc: str | None = None
    phone_enc: str | None = None
    phone_hash: str | None = Field(default=None, index=True)
    language: str = "nl"
    preferred_channel: ChannelKind | None = Field(default=None, sa_type=enum_type(ChannelKind))
    consent_version: str | None = None
    consent_at: datetime | None = None
    created_at: datetime
    confirmed_at: datetime | None = Field(default=None, index=True)
    ended_at: datetime | None = None
    exercises: bool = Field(
        default=False, sa_column=Column(sa.Boolean, nullable=False, server_default=sa.false())
    )
    """Opted in to exercise alerts (OEFENINGEN AAN); exercises reach only these and test participants."""
    test: bool = Field(default=False, sa_column=Column(sa.Boolean, nullable=False, server_default=sa.false()))
    """A test identity an admin marked: gets every exercise in its area, whatever its opt-in."""


class ChannelIdentity(SQLModel, table=True):
    """One way to reach a person: a phone number on SMS or WhatsApp, a chat on Telegram."""

    __tablename__ = "channel_identity"
    __table_args__ = (UniqueConstraint("channel", "address_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    participant_id: int | None = Field(
        default=None, foreign_key="participant.id", index=True, ondelete="SET NULL"
    )
    channel: ChannelKind = Field(sa_type=enum_type(ChannelKind))
    address_hash: str
    address_enc: str | None = None
    language: str = "nl"
    opted_out: bool = False
    opted_out_at: datetime | None = None
    last_inbound_at: datetime | None = None
    created_at: datetime
    verified: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    """False for a number someone typed for alerts whose owner has not proved it (a code, or a message)."""
    reply_window_at: datetime | None = None
    """When the sender's current window of counted replies began (paid channels: SMS, WhatsApp)."""
    replies_in_window: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class Address(SQLModel, table=True):
    """A place where a person wants alerts; slot 1 is home, slots 2-3 may have a weekly window."""

    __tablename__ = "address"
    __table_args__ = (UniqueConstraint("participant_id", "slot"),)

    id: int | None = Field(default=None, primary_key=True)
    participant_id: int = Field(foreign_key="participant.id", index=True, ondelete="CASCADE")
    slot: int = 1
    postcode: str
    house_number: int
    addition: str | None = None
    lat: float = Field(index=True)
    lon: float
    municipality_code: str = Field(index=True)
    municipality_name: str
    place: str
    window_days: str | None = None
    """Weekdays the address counts, as ISO digits, e.g. `12345` for Monday to Friday."""
    window_start: time | None = None
    window_end: time | None = None


class ReachPoint(SQLModel, table=True):
    """Derived: one reachable identity of an active participant at one of their addresses.

    Kept by `storage.reach` on every write to a participant, identity or address, so that choosing the
    recipients of an action is one range scan of a covering index instead of ~16,000 random look-ups.
    """

    __tablename__ = "reach"
    __table_args__ = (
        # Every column selection reads is in these indexes: SQLite and PostgreSQL answer from the index.
        sa.Index(
            "ix_reach_area",
            "lon_cell",
            "lat",
            "lon",
            "participant_id",
            "identity_id",
            "channel",
            "preferred_channel",
            "language",
            "window_days",
            "window_start",
            "window_end",
            "last_inbound_at",
        ),
        sa.Index(
            "ix_reach_municipality",
            "municipality_code",
            "lat",
            "lon",
            "participant_id",
            "identity_id",
            "channel",
            "preferred_channel",
            "language",
            "window_days",
            "window_start",
            "window_end",
            "last_inbound_at",
        ),
    )

    address_id: int = Field(foreign_key="address.id", primary_key=True, ondelete="CASCADE")
    identity_id: int = Field(
        foreign_key="channel_identity.id", primary_key=True, index=True, ondelete="CASCADE"
    )
    participant_id: int = Field(foreign_key="participant.id", index=True, ondelete="CASCADE")
    lon_cell: int
    """`lon` in strips of 1/100 degree (about 680 m here): the range scan's leading column."""
    lat: float
    lon: float
    municipality_code: str
    window_days: str | None = None
    window_start: time | None = None
    window_end: time | None = None
    channel: ChannelKind = Field(sa_type=enum_type(ChannelKind))
    preferred_channel: ChannelKind | None = Field(default=None, sa_type=enum_type(ChannelKind))
    language: str = "nl"
    last_inbound_at: datetime | None = None


class ConversationState(SQLModel, table=True):
    """Where one identity is in a flow; `version` guards against two workers handling it at once."""

    __tablename__ = "conversation_state"

    identity_id: int = Field(foreign_key="channel_identity.id", primary_key=True, ondelete="CASCADE")
    flow: str
    step: str
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime
    version: int = 0


class AuditEvent(SQLModel, table=True):
    """An append-only record of who did what; never holds personal data in clear."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(index=True)
    actor: str
    event: str = Field(index=True)
    subject: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class OptOut(SQLModel, table=True):
    """A number that said STOP: only its keyed hash is kept, so the opt-out outlives the erasure."""

    __tablename__ = "opt_out"

    phone_hash: str = Field(primary_key=True)
    at: datetime


class SendBudget(SQLModel, table=True):
    """The next free send slot of one channel and sender, shared by every process (storage/send_budget.py)."""

    __tablename__ = "send_budget"

    channel: str = Field(primary_key=True, max_length=24)
    sender: str = Field(primary_key=True, max_length=64)
    next_at: float
    """Seconds since the epoch, on the database server's clock."""


class ProcessedEvent(SQLModel, table=True):
    """A provider event already handled (Twilio MessageSid, Telegram update_id), to process each once."""

    __tablename__ = "processed_event"

    key: str = Field(primary_key=True)
    at: datetime = Field(index=True)


# --------------------------------------------------------------------------------------------------
# Actions and their outbox (bot/dispatch.py, storage/targeting.py, storage/actions.py)
# --------------------------------------------------------------------------------------------------


class ActionType(StrEnum):
    """What happened (the kinds of Burgernet action)."""

    MISSING_PERSON = "missing_person"
    ROBBERY = "robbery"
    HIT_AND_RUN = "hit_and_run"
    BURGLARY = "burglary"
    STOLEN_VEHICLE = "stolen_vehicle"
    OTHER = "other"


class ActionStatus(StrEnum):
    """Where an action stands: draft → (awaiting approval →) active → closed or cancelled."""

    DRAFT = "draft"
    AWAITING_APPROVAL = "awaiting_approval"
    ACTIVE = "active"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class ActionOutcome(StrEnum):
    """How an action ended."""

    FOUND = "found"
    ARRESTED = "arrested"
    NO_RESULT = "no_result"
    CANCELLED = "cancelled"


class Urgency(StrEnum):
    """CAP 1.2 urgency."""

    IMMEDIATE = "immediate"
    EXPECTED = "expected"
    FUTURE = "future"
    PAST = "past"
    UNKNOWN = "unknown"


class Severity(StrEnum):
    """CAP 1.2 severity."""

    EXTREME = "extreme"
    SEVERE = "severe"
    MODERATE = "moderate"
    MINOR = "minor"
    UNKNOWN = "unknown"


class Certainty(StrEnum):
    """CAP 1.2 certainty."""

    OBSERVED = "observed"
    LIKELY = "likely"
    POSSIBLE = "possible"
    UNLIKELY = "unlikely"
    UNKNOWN = "unknown"


class DeliveryKind(StrEnum):
    """Which message of an action a delivery carries."""

    ALERT = "alert"
    CLOSING = "closing"
    TIP_RESULT = "tip_result"
    # Relays: the forward-ready alert and its closing, to a coordinator or a Telegram group.
    RELAY_ALERT = "relay_alert"
    RELAY_CLOSING = "relay_closing"
    # An update of a running action (`Delivery.update_no` says which), to whom the alert reached.
    UPDATE = "update"
    RELAY_UPDATE = "relay_update"
    # The correction of an action launched in error, in place of a closing.
    CANCEL = "cancel"
    RELAY_CANCEL = "relay_cancel"


class Action(SQLModel, table=True):
    """One alert of the control room: what, where, until when, and how it ended (CAP 1.2-like)."""

    __tablename__ = "action"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, index=True, max_length=16)
    type: ActionType = Field(sa_type=enum_type(ActionType))
    headline: str
    description: str = ""
    instruction: str = ""
    area: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """`{"circle": {"lat", "lon", "radius_m"}}` or `{"municipalities": [codes]}`."""
    urgency: Urgency = Field(default=Urgency.IMMEDIATE, sa_type=enum_type(Urgency))
    severity: Severity = Field(default=Severity.SEVERE, sa_type=enum_type(Severity))
    certainty: Certainty = Field(default=Certainty.OBSERVED, sa_type=enum_type(Certainty))
    status: ActionStatus = Field(default=ActionStatus.DRAFT, index=True, sa_type=enum_type(ActionStatus))
    outcome: ActionOutcome | None = Field(default=None, sa_type=enum_type(ActionOutcome))
    closing_text: str | None = None
    created_by: str = "api"
    created_at: datetime
    launched_at: datetime | None = None
    expires_at: datetime = Field(index=True)
    closed_at: datetime | None = None
    has_photo: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    """Whether an `ActionPhoto` row goes with it: read by the texts (the SMS then links to the page)."""
    exercise: bool = Field(
        default=False, sa_column=Column(sa.Boolean, nullable=False, server_default=sa.false())
    )
    """An exercise: only opted-in and test participants, texts start with OEFENING, CAP status Exercise,
    never in the figures."""
    approval_requested_by: str | None = None
    """Who asked to launch when a second operator must approve (the audit actor's name)."""
    approval_requested_at: datetime | None = None
    approved_by: str | None = None
    approved_at: datetime | None = None
    rings: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """Automatic widening of a circle: `{"radii_m": [...], "every_minutes": n}`; ring k (from 1) is due
    k × n minutes after the launch (the scheduler's `widen-rings`)."""


class Delivery(SQLModel, table=True):
    """One outbox row: one message of an action to one person, on the channel it currently tries."""

    __tablename__ = "delivery"
    __table_args__ = (
        # One alert per person and action, whatever widening or a second launch attempt adds; an
        # action's updates are told apart by their number.
        UniqueConstraint("action_id", "participant_id", "kind", "update_no", name="uq_delivery_once"),
        sa.Index("ix_delivery_queue", "status", "channel", "rank"),
    )

    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="action.id", ondelete="CASCADE")
    participant_id: int | None = Field(default=None, foreign_key="participant.id", ondelete="CASCADE")
    identity_id: int | None = Field(default=None, foreign_key="channel_identity.id", ondelete="SET NULL")
    kind: DeliveryKind = Field(default=DeliveryKind.ALERT, sa_type=enum_type(DeliveryKind))
    channel: ChannelKind = Field(sa_type=enum_type(ChannelKind))
    language: str = "nl"
    rank: int = 0
    """Position in the fan-out, nearest first."""
    distance_m: float | None = None
    status: DeliveryStatus = Field(default=DeliveryStatus.QUEUED, sa_type=enum_type(DeliveryStatus))
    attempts: int = 0
    next_attempt_at: datetime
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    provider_id: str | None = Field(default=None, index=True)
    segments: int | None = None
    error_code: str | None = None
    tried: str = ""
    """Identity ids already given up on, comma-separated, so a fallback never loops."""
    created_at: datetime
    sent_at: datetime | None = None
    updated_at: datetime
    relay_id: int | None = Field(default=None, foreign_key="relay.id", ondelete="SET NULL")
    """The relay a relay_alert/relay_closing goes to; None for a participant's delivery."""
    update_no: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    """For an update: its `ActionUpdate.number` (1, 2, ...); 0 for every other kind."""


class ActionUpdate(SQLModel, table=True):
    """An update of a running action (a new description, a changed instruction), numbered per action."""

    __tablename__ = "action_update"
    __table_args__ = (UniqueConstraint("action_id", "number", name="uq_action_update_number"),)

    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="action.id", index=True, ondelete="CASCADE")
    number: int
    text: str
    instruction: str = ""
    """Empty: the action's own instruction is repeated with the update."""
    created_at: datetime
    created_by: str


class CapChangeKind(StrEnum):
    """What an incoming CAP message asks of one of our actions."""

    UPDATE = "update"
    CANCEL = "cancel"


class CapChangeStatus(StrEnum):
    """Where a CAP change stands: waiting for an operator, sent on their confirmation, thrown away, or
    lapsed because the action ended while it waited."""

    WAITING = "waiting"
    SENT = "sent"
    DISCARDED = "discarded"
    LAPSED = "lapsed"


class CapAlertIn(SQLModel, table=True):
    """A CAP Alert a dispatch system posted, and the draft action it became: its later Update or Cancel
    references this Alert, and the same Alert posted again is the same action."""

    __tablename__ = "cap_alert_in"
    __table_args__ = (UniqueConstraint("cap_sender", "cap_identifier", name="uq_cap_alert_in_message"),)

    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="action.id", index=True, ondelete="CASCADE")
    cap_sender: str
    cap_identifier: str
    cap_sent: datetime
    received_at: datetime


class CapChange(SQLModel, table=True):
    """A CAP Update or Cancel that references one of our actions, waiting until an operator confirms it
    (then it is sent as an update or a cancel) or throws it away; nothing is sent before that."""

    __tablename__ = "cap_change"
    __table_args__ = (UniqueConstraint("cap_sender", "cap_identifier", name="uq_cap_change_message"),)

    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="action.id", index=True, ondelete="CASCADE")
    kind: CapChangeKind = Field(sa_type=enum_type(CapChangeKind))
    text: str
    """An update's new text; a cancel's note (the reason, for the audit log)."""
    instruction: str = ""
    """An update's changed instruction (empty: the action's own is repeated)."""
    cap_sender: str
    cap_identifier: str
    """The CAP message's sender and identifier: the same message twice is one change."""
    cap_sent: datetime
    received_at: datetime
    status: CapChangeStatus = Field(
        default=CapChangeStatus.WAITING, index=True, sa_type=enum_type(CapChangeStatus)
    )
    decided_by: str | None = None
    decided_at: datetime | None = None
    update_no: int | None = None
    """The update it became, once sent."""


# --------------------------------------------------------------------------------------------------
# Scheduler (scheduler/, storage/reconfirmations.py, storage/reports.py)
# --------------------------------------------------------------------------------------------------


class ReconfirmRequest(SQLModel, table=True):
    """An open "do you want to stay?" question to a participant; gone once answered or expired."""

    __tablename__ = "reconfirm_request"

    participant_id: int = Field(foreign_key="participant.id", primary_key=True, ondelete="CASCADE")
    asked_at: datetime = Field(index=True)
    expires_at: datetime = Field(index=True)
    reminders: int = 0
    last_sent_at: datetime | None = Field(default=None, index=True)
    """When a question or reminder last went out (None: nobody to send it to); caps the rate per minute."""


class MunicipalityReport(SQLModel, table=True):
    """A month's figures for one municipality, as municipalities put them in their annual report."""

    __tablename__ = "municipality_report"
    __table_args__ = (UniqueConstraint("period", "municipality_code"),)

    id: int | None = Field(default=None, primary_key=True)
    period: str = Field(index=True, max_length=7)
    """The month, `YYYY-MM`."""
    municipality_code: str
    municipality_name: str
    participants: int = 0
    new: int = 0
    expired: int = 0
    unsubscribed: int = 0
    actions: int = 0
    reach: int = 0
    tips: int = 0
    solved: int = 0
    created_at: datetime


# --------------------------------------------------------------------------------------------------
# Control room operators and their sessions (bot/controlroom/, storage/operators.py)
# --------------------------------------------------------------------------------------------------


class OperatorRole(StrEnum):
    """What a control-room account may do."""

    OPERATOR = "operator"
    COORDINATOR = "coordinator"
    ADMIN = "admin"


class Operator(SQLModel, table=True):
    """A control-room account: an operator, a municipality's coordinator or an admin."""

    __tablename__ = "operator"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, index=True, max_length=64)
    password_hash: str
    role: OperatorRole = Field(sa_type=enum_type(OperatorRole))
    municipalities: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """CBS codes a coordinator looks after; empty for the other roles."""
    failed_logins: int = 0
    locked_until: datetime | None = None
    active: bool = True
    created_at: datetime


class Region(SQLModel, table=True):
    """A named set of municipalities (a police unit, a safety region) operators may launch in."""

    __tablename__ = "region"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=64)
    everywhere: bool = False
    """The whole country, whatever municipalities are merged or split later."""
    municipalities: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """CBS codes (GM0153); empty when `everywhere`."""
    created_at: datetime


class OperatorRegion(SQLModel, table=True):
    """An operator may launch in a region."""

    __tablename__ = "operator_region"

    operator_id: int = Field(foreign_key="operator.id", primary_key=True, ondelete="CASCADE")
    region_id: int = Field(foreign_key="region.id", primary_key=True, ondelete="CASCADE", index=True)


class ApprovalRule(SQLModel, table=True):
    """Four eyes: launching an action of this type (`*`: any) touching the region needs a second operator."""

    __tablename__ = "approval_rule"
    __table_args__ = (sa.UniqueConstraint("region_id", "action_type"),)

    id: int | None = Field(default=None, primary_key=True)
    region_id: int = Field(foreign_key="region.id", index=True, ondelete="CASCADE")
    action_type: str = Field(max_length=24)


class OperatorSession(SQLModel, table=True):
    """A server-side login session; the cookie holds a random token, the table only its SHA-256."""

    __tablename__ = "operator_session"

    id: str = Field(primary_key=True, max_length=64)
    operator_id: int = Field(foreign_key="operator.id", index=True, ondelete="CASCADE")
    csrf_token: str = Field(max_length=64)
    language: str = "nl"
    created_at: datetime
    expires_at: datetime = Field(index=True)
    last_seen: datetime


# --------------------------------------------------------------------------------------------------
# Neighbourhood groups that relay alerts (bot/flows/relay.py, storage/relays.py)
# --------------------------------------------------------------------------------------------------


class RelayPlatform(StrEnum):
    """Where a neighbourhood group chats."""

    WHATSAPP = "whatsapp"
    TELEGRAM = "telegram"
    OTHER = "other"


class Relay(SQLModel, table=True):
    """A neighbourhood group whose coordinator (or the group chat itself) gets alerts to pass on."""

    __tablename__ = "relay"

    id: int | None = Field(default=None, primary_key=True)
    coordinator_identity_id: int = Field(foreign_key="channel_identity.id", index=True, ondelete="CASCADE")
    group_identity_id: int | None = Field(
        default=None, foreign_key="channel_identity.id", index=True, ondelete="SET NULL"
    )
    """A Telegram group the bot posts in itself; None when the coordinator forwards by hand."""
    group_name: str = Field(max_length=64)
    platform: RelayPlatform = Field(sa_type=enum_type(RelayPlatform))
    area: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """`{"postcodes": [{"pc4", "lat", "lon"}]}` or `{"circle": {"lat", "lon", "radius_m"}}` (a PC4 centre)."""
    municipalities: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """CBS codes the area lies in, to match actions aimed at municipalities."""
    estimated_members: int = 0
    language: str = "nl"
    rules_version: str
    rules_at: datetime
    created_at: datetime
    active: bool = Field(default=True, index=True)


# One relay message per action and kind, like one alert per participant (NULL relay_id: not a relay's).
_DELIVERY = Delivery.__table__.c  # type: ignore[attr-defined]
sa.Index(
    "uq_delivery_relay",
    _DELIVERY.relay_id,
    _DELIVERY.action_id,
    _DELIVERY.kind,
    _DELIVERY.update_no,
    unique=True,
)


# --------------------------------------------------------------------------------------------------
# Tips and their forwarding (bot/flows/tip.py, bot/tips/, storage/tips.py)
# --------------------------------------------------------------------------------------------------


# "Which running actions reached this person?" is asked for every tip; without these it scans the outbox.
sa.Index("ix_delivery_identity_id", Delivery.__table__.c.identity_id)  # type: ignore[attr-defined]
sa.Index("ix_delivery_participant_id", Delivery.__table__.c.participant_id)  # type: ignore[attr-defined]


class Tip(SQLModel, table=True):
    """A citizen's answer to an action, structured; later messages of the same person extend it."""

    __tablename__ = "tip"

    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="action.id", index=True, ondelete="CASCADE")
    identity_id: int | None = Field(
        default=None, foreign_key="channel_identity.id", index=True, ondelete="SET NULL"
    )
    participant_id: int | None = Field(default=None, foreign_key="participant.id", ondelete="SET NULL")
    channel: ChannelKind = Field(sa_type=enum_type(ChannelKind))
    language: str = "nl"
    reporter: str = Field(index=True, max_length=24)
    """Pseudonymous id (a keyed hash): the same person gets the same id, nobody can reverse it."""
    sender_hash: str = Field(index=True)
    """Keyed hash of channel and address: the rate limit and duplicate folding work on it."""
    phone_enc: str | None = None
    text: str = ""
    intent: str | None = None
    seen_at: datetime | None = None
    seen_text: str | None = None
    """The tipster's time phrase as written, also when it gives no moment (then `seen_at` stays empty)."""
    location_text: str | None = None
    places: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    """Every place the tip names, most specific first, each with its town: what a geocoder tries in turn."""
    lat: float | None = None
    lon: float | None = None
    direction: str | None = None
    description: str | None = None
    vehicle_plate: str | None = None
    media: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    messages: int = 1
    truncated: bool = False
    followup_asked: bool = False
    answer_open_until: datetime | None = None
    """Until when the tipster's next message answers an operator's question (joins this tip)."""
    verdict: str | None = None
    relay_id: int | None = Field(default=None, foreign_key="relay.id", index=True, ondelete="SET NULL")
    """The neighbourhood group whose link or chat the tip came through."""
    late: bool = False
    """Sent after its action ended: operators see it apart, never as a live tip."""
    received_at: datetime = Field(index=True)
    updated_at: datetime = Field(index=True)


class TipForward(SQLModel, table=True):
    """One version of a tip to forward: the SSE stream's event (its id) and the webhook's outbox row."""

    __tablename__ = "tip_forward"
    __table_args__ = (sa.Index("ix_tip_forward_webhook", "webhook_state", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    tip_id: int = Field(foreign_key="tip.id", index=True, ondelete="CASCADE")
    action_id: int = Field(index=True)
    event: str = Field(max_length=24)
    """`tip.created` or `tip.updated`."""
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """The tip's JSON at this moment, exactly as sent (so a retry signs the same bytes)."""
    created_at: datetime
    webhook_state: str = Field(default="pending", max_length=16)
    """`pending`, `done`, or `skipped` (no webhook configured when it was written)."""
    webhook_attempts: int = 0
    webhook_next_at: datetime
    webhook_lease_until: datetime | None = None
    webhook_error: str | None = None
    webhook_sent_at: datetime | None = None


class TipMessage(SQLModel, table=True):
    """A message of a tip's conversation: the tipster's (in), or an operator's question (out: sent as an
    outbound row, `outbound_id`)."""

    __tablename__ = "tip_message"

    id: int | None = Field(default=None, primary_key=True)
    tip_id: int = Field(foreign_key="tip.id", index=True, ondelete="CASCADE")
    direction: str = Field(max_length=8)
    """`in` (from the tipster) or `out` (an operator's question)."""
    text: str = ""
    actor: str | None = None
    at: datetime
    state: str = Field(default="done", max_length=16)
    """In: `done`; out: `queued` as written (its sending state is its outbound row's, `question_states`)."""
    outbound_id: int | None = None
    """Out: the `outbound_message` row that sends the question (no foreign key: that row is purged sooner)."""


class TipMedia(SQLModel, table=True):
    """A photo or file a tipster sent: the provider's reference, then the bytes, encrypted, once fetched.

    Rows go with their tip (cascade), so the tip's retention purges them too.
    """

    __tablename__ = "tip_media"
    __table_args__ = (
        UniqueConstraint("tip_id", "position", name="uq_tip_media_position"),
        sa.Index("ix_tip_media_queue", "state", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tip_id: int = Field(foreign_key="tip.id", index=True, ondelete="CASCADE")
    position: int
    """1, 2, ... in the order the tipster sent them: the `n` of the URL operators open."""
    channel: ChannelKind = Field(sa_type=enum_type(ChannelKind))
    ref: str
    """The provider's reference (a Telegram file id, a Twilio media URL); never shown to anyone."""
    state: str = Field(default="pending", max_length=16)
    """`pending` (to fetch), `stored`, or `refused` (too large, a type we do not take, unreachable)."""
    reason: str | None = Field(default=None, max_length=32)
    attempts: int = 0
    next_attempt_at: datetime | None = None
    lease_until: datetime | None = None
    content_type: str | None = Field(default=None, max_length=64)
    size: int | None = None
    data_enc: str | None = Field(default=None, sa_type=sa.Text)
    """The bytes, Fernet-encrypted with DATA_KEY (rotated with the other encrypted columns)."""
    created_at: datetime
    fetched_at: datetime | None = None


# --------------------------------------------------------------------------------------------------
# Verification of typed phone numbers (storage/verifications.py)
# --------------------------------------------------------------------------------------------------


class PhoneVerification(SQLModel, table=True):
    """A one-time code sent to a typed number, and its own outbox row (the message to send).

    Only a keyed hash of the code is kept for checking. The rendered message (which holds the code)
    stays encrypted in `message_enc` until it is sent or given up, then it is wiped.
    """

    __tablename__ = "phone_verification"
    __table_args__ = (sa.Index("ix_phone_verification_queue", "state", "channel", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    phone_hash: str = Field(index=True)
    requester_id: int = Field(foreign_key="channel_identity.id", index=True, ondelete="CASCADE")
    channel: ChannelKind = Field(sa_type=enum_type(ChannelKind))
    salt: str = Field(max_length=32)
    code_hash: str
    created_at: datetime = Field(index=True)
    expires_at: datetime
    tries: int = 0
    verified_at: datetime | None = None
    state: str = Field(default="queued", max_length=16)
    """`queued`, `sent`, `failed`, or `withheld` (the number had opted out: nothing is sent)."""
    message_enc: str | None = None
    phone_enc: str | None = None
    attempts: int = 0
    next_attempt_at: datetime
    lease_until: datetime | None = None
    error: str | None = None
    provider_id: str | None = None


class ActionPhoto(SQLModel, table=True):
    """An action's photo: re-encoded (no EXIF), encrypted with DATA_KEY, deleted when the action ends.

    A missing person's picture must not outlive the search, so closing or expiring the action deletes
    the row in the same transaction; the row also goes with its action (cascade).
    """

    __tablename__ = "action_photo"

    action_id: int = Field(foreign_key="action.id", primary_key=True, ondelete="CASCADE")
    content_type: str = Field(max_length=16)
    width: int
    height: int
    size: int
    data_enc: str = Field(sa_type=sa.Text)
    """The bytes, Fernet-encrypted with DATA_KEY (rotated with the other encrypted columns)."""
    created_at: datetime


# --------------------------------------------------------------------------------------------------
# Messages out other than deliveries and codes (storage/outbound.py, bot/dispatch.py)
# --------------------------------------------------------------------------------------------------


class OutboundKind(StrEnum):
    """Why a message goes out: it decides its lane in the dispatcher."""

    REPLY = "reply"
    TIP_QUESTION = "tip_question"
    OPERATOR_CHAT = "operator_chat"
    TIP_RESULT = "tip_result"
    RECONFIRM = "reconfirm"


class OutboundMessage(SQLModel, table=True):
    """One message out that is not an alert or a code: a reply, a question, a reconfirmation.

    Written in the transaction of the state change that causes it; the dispatcher sends it. The
    recipient and the message (text and channel extras, JSON) stay encrypted until it is sent, failed
    or its person said STOP, then they are wiped; the row stays as a count until the scheduler purges it.
    """

    __tablename__ = "outbound_message"
    __table_args__ = (sa.Index("ix_outbound_message_queue", "status", "channel", "lane", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: ChannelKind = Field(sa_type=enum_type(ChannelKind))
    identity_id: int | None = Field(
        default=None, foreign_key="channel_identity.id", ondelete="SET NULL", index=True
    )
    kind: OutboundKind = Field(sa_type=enum_type(OutboundKind))
    lane: int = 0
    """0: a person in a conversation; 2: closings, results, reconfirmations (alerts are lane 1)."""
    recipient_enc: str | None = None
    message_enc: str | None = None
    status: DeliveryStatus = Field(default=DeliveryStatus.QUEUED, sa_type=enum_type(DeliveryStatus))
    attempts: int = 0
    next_attempt_at: datetime
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    provider_id: str | None = None
    error_code: str | None = None
    created_at: datetime = Field(index=True)
    sent_at: datetime | None = None


# --------------------------------------------------------------------------------------------------
# A person's own way: alert preferences and data exports (bot/flows/preferences.py,
# storage/preferences.py, storage/data_exports.py)
# --------------------------------------------------------------------------------------------------


class AlertPreference(SQLModel, table=True):
    """What a person chose to skip: kinds of action, and quiet hours for alerts that are not urgent.

    Only people who changed something have a row; no row means every alert, at any hour.
    """

    __tablename__ = "alert_preference"

    participant_id: int = Field(foreign_key="participant.id", primary_key=True, ondelete="CASCADE")
    skipped_types: str = Field(default="", sa_column_kwargs={"server_default": ""})
    """Action types the person turned off, comma-wrapped (`,burglary,stolen_vehicle,`) for a LIKE."""
    quiet_days: str | None = None
    """Weekdays the quiet hours hold (ISO digits), like an address's window; None: every day."""
    quiet_start: time | None = None
    quiet_end: time | None = None
    updated_at: datetime


class DataExport(SQLModel, table=True):
    """A one-time link to a person's data as JSON (AVG art. 20); only a keyed hash of its token is kept."""

    __tablename__ = "data_export"

    id: int | None = Field(default=None, primary_key=True)
    participant_id: int = Field(foreign_key="participant.id", index=True, ondelete="CASCADE")
    token_hash: str = Field(unique=True, max_length=64)
    created_at: datetime = Field(index=True)
    expires_at: datetime = Field(index=True)
    used_at: datetime | None = None


class WebSignup(SQLModel, table=True):
    """A sign-up on the public page `/aanmelden`, from the form to the chat app it continues in.

    The browser holds a random reference; only its keyed hash is kept, as for the client's address (the
    per-address limits count by it) and the Telegram link token. The form's answers wait encrypted in
    `data_enc` until the code is typed, and are wiped then.
    """

    __tablename__ = "web_signup"

    id: int | None = Field(default=None, primary_key=True)
    ref_hash: str = Field(unique=True)
    client_hash: str = Field(index=True)
    created_at: datetime = Field(index=True)
    expires_at: datetime
    state: str = Field(default="code", max_length=16)
    """`code` (waiting for the code), `done`, or `failed` (no code could be sent, or the tries ran out)."""
    data_enc: str | None = None
    verification_id: int | None = Field(
        default=None, foreign_key="phone_verification.id", ondelete="SET NULL"
    )
    requester_id: int | None = Field(default=None, foreign_key="channel_identity.id", ondelete="SET NULL")
    participant_id: int | None = Field(default=None, foreign_key="participant.id", ondelete="CASCADE")
    link_hash: str | None = Field(default=None, unique=True)
    """Keyed hash of the one-time Telegram deep-link token; the token itself is only on the done page."""
    link_expires_at: datetime | None = None
    link_used_at: datetime | None = None


class FollowedArea(SQLModel, table=True):
    """A PC4 area a person follows without giving an address (Telegram, WhatsApp).

    Only the four digits and the public centre of the PC4 (from the postcode table) are kept: never
    the location the person may have shared to find it.
    """

    __tablename__ = "followed_area"
    __table_args__ = (UniqueConstraint("participant_id", "pc4", name="uq_followed_area_pc4"),)

    id: int | None = Field(default=None, primary_key=True)
    participant_id: int = Field(foreign_key="participant.id", index=True, ondelete="CASCADE")
    pc4: str = Field(max_length=4)
    lat: float = Field(index=True)
    lon: float
    municipality_code: str = Field(index=True, max_length=8)
