"""Store functions for actions and their outbox: create, launch (write deliveries), close, count, receipts.

Like the other store functions these take the caller's session and keyword-only arguments and never
commit: the caller's transaction decides, so an action's status and its deliveries change together.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Select, and_, bindparam, delete, func, insert, or_, select, update
from sqlmodel import Session, col

from storage.action_photos import delete_photo
from storage.cap_changes import lapse_waiting_changes
from storage.models import (
    Action,
    ActionOutcome,
    ActionStatus,
    ActionType,
    ActionUpdate,
    Certainty,
    ChannelIdentity,
    Delivery,
    DeliveryKind,
    Participant,
    ParticipantStatus,
    Severity,
    Urgency,
)
from storage.preferences import select_for_alert
from storage.relays import queue_relay_alerts, queue_relay_closings, queue_relay_updates
from storage.targeting import Reach, order_reaches, parse_area
from storage.vocabulary import RECEIVED, ChannelKind, DeliveryStatus, StatusUpdate

# No 0/O, 1/I/L, 5/S, 8/B, 2/Z, 6/G: a code read aloud or typed from a lock screen comes back right.
CODE_ALPHABET = "3479ACDEFHJKMNPRTUVWXY"
CODE_PREFIX = "BN-"
CODE_LENGTH = 4
# The code may be followed by `_`: a relay's Telegram link carries `BN-4821_R7`.
LAUNCHABLE = (ActionStatus.DRAFT, ActionStatus.AWAITING_APPROVAL)
CODE_PATTERN = re.compile(rf"\bBN-?\s?([{CODE_ALPHABET}]{{{CODE_LENGTH}}})(?![^\W_])", re.IGNORECASE)
# Receipts can arrive out of order (delivered before sent); a status never moves backwards.
_STATUS_ORDER = {
    DeliveryStatus.QUEUED: 0,
    DeliveryStatus.SENDING: 1,
    DeliveryStatus.SENT: 2,
    DeliveryStatus.UNDELIVERED: 3,
    DeliveryStatus.FAILED: 3,
    DeliveryStatus.DELIVERED: 4,
    DeliveryStatus.READ: 5,
}


class ActionNotFound(LookupError):
    """No action with that id or code."""


class ActionStateError(Exception):
    """The action is not in a state that allows this (launching a closed action, closing a draft)."""


@dataclass(frozen=True)
class ActionDraft:
    """The fields of a new action, validated by the caller."""

    type: ActionType
    headline: str
    description: str
    instruction: str
    area: Mapping[str, Any]
    expires_at: datetime
    urgency: Urgency = Urgency.IMMEDIATE
    severity: Severity = Severity.SEVERE
    certainty: Certainty = Certainty.OBSERVED
    exercise: bool = False
    rings: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Target:
    """One person an action goes to: the identity tried first, their language, distance and rank."""

    participant_id: int | None
    identity_id: int
    channel: ChannelKind
    language: str
    distance_m: float | None = None


def normalise_code(text: str) -> str:
    """`bn4k7p`, `BN 4K7P` → `BN-4K7P`. Raises ValueError when the text holds no code."""
    match = CODE_PATTERN.search(text or "")
    if not match:
        raise ValueError(text)
    return CODE_PREFIX + match.group(1).upper()


def new_code(session: Session, *, rng: random.Random) -> str:
    """A public code no action has yet."""
    for _ in range(50):
        code = CODE_PREFIX + "".join(rng.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if session.scalar(select(col(Action.id)).where(col(Action.code) == code)) is None:
            return code
    raise RuntimeError("no free action code after 50 tries")


def create_action(
    session: Session,
    *,
    draft: ActionDraft,
    now: datetime,
    created_by: str,
    rng: random.Random | None = None,
) -> Action:
    """Store a new draft action with a fresh public code."""
    action = Action(
        code=new_code(session, rng=rng or random.SystemRandom()),
        type=draft.type,
        headline=draft.headline.strip(),
        description=draft.description.strip(),
        instruction=draft.instruction.strip(),
        area=dict(draft.area),
        urgency=draft.urgency,
        severity=draft.severity,
        certainty=draft.certainty,
        exercise=draft.exercise,
        rings=dict(draft.rings) if draft.rings is not None else None,
        status=ActionStatus.DRAFT,
        created_by=created_by,
        created_at=now,
        expires_at=draft.expires_at,
    )
    session.add(action)
    session.flush()
    return action


def update_draft(session: Session, *, action: Action, draft: ActionDraft) -> Action:
    """Change a draft's fields; a launched action is refused (ActionStateError)."""
    claimed = session.execute(
        update(Action)
        .where(col(Action.id) == action.id, col(Action.status) == ActionStatus.DRAFT.value)
        .values(
            type=draft.type.value,
            headline=draft.headline.strip(),
            description=draft.description.strip(),
            instruction=draft.instruction.strip(),
            area=dict(draft.area),
            expires_at=draft.expires_at,
            exercise=draft.exercise,
            rings=dict(draft.rings) if draft.rings is not None else None,
        )
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise ActionStateError(f"action {action.code} is no draft")
    session.refresh(action)
    return action


def delete_draft(session: Session, *, action: Action) -> None:
    """Remove a draft that was never launched; a launched action is refused (ActionStateError)."""
    gone = session.execute(
        delete(Action).where(col(Action.id) == action.id, col(Action.status) == ActionStatus.DRAFT.value)
    )
    if gone.rowcount != 1:  # type: ignore[attr-defined]
        raise ActionStateError(f"action {action.code} is no draft")
    session.expunge(action)


def get_action(session: Session, *, action_id: int) -> Action:
    """The action with this id. Raises ActionNotFound."""
    action = session.get(Action, action_id)
    if action is None:
        raise ActionNotFound(action_id)
    return action


def find_action_by_code(session: Session, *, code: str) -> Action:
    """The action with this public code (any case, dash optional). Raises ActionNotFound."""
    try:
        wanted = normalise_code(code)
    except ValueError as exc:
        raise ActionNotFound(code) from exc
    action = action_with_code(session, code=wanted)
    if action is None:
        raise ActionNotFound(code)
    return action


def action_with_code(session: Session, *, code: str) -> Action | None:
    """The action with exactly this (normalised) code, or None."""
    return session.scalars(_by_code(), {"b_code": code}).first()


@cache
def _by_code() -> Select[Action]:
    # Built once: every tip that names its action looks it up, and building the query cost a third of it.
    return select(Action).where(col(Action.code) == bindparam("b_code"))


def list_actions(session: Session, *, status: ActionStatus | None = None, limit: int = 100) -> list[Action]:
    """Actions newest first, optionally only those with one status."""
    query = select(Action).order_by(col(Action.created_at).desc(), col(Action.id).desc()).limit(limit)
    if status is not None:
        query = query.where(col(Action.status) == status.value)
    return list(session.scalars(query))


def write_deliveries(
    session: Session,
    *,
    action_id: int,
    kind: DeliveryKind,
    targets: Sequence[Target],
    now: datetime,
    update_no: int = 0,
) -> int:
    """Queue one delivery per target (in the given order: rank 0 first) with one bulk insert."""
    if not targets:
        return 0
    rows = [
        {
            "action_id": action_id,
            "participant_id": t.participant_id,
            "identity_id": t.identity_id,
            "kind": kind.value,
            "channel": t.channel.value,
            "language": t.language,
            "rank": rank,
            "distance_m": t.distance_m,
            "status": DeliveryStatus.QUEUED.value,
            "attempts": 0,
            "next_attempt_at": now,
            "tried": "",
            "created_at": now,
            "updated_at": now,
            "update_no": update_no,
        }
        for rank, t in enumerate(targets)
    ]
    session.execute(insert(Delivery), rows)
    return len(rows)


def launch_action(
    session: Session,
    *,
    action: Action,
    targets: Sequence[Target],
    now: datetime,
    runs_for: timedelta | None = None,
) -> int:
    """Make a draft action active and queue its alert to every target, in one transaction.

    With `runs_for` the action ends that long after this launch (a duration the operator chose), not
    after the draft was made; without it the draft's own end time holds (an API client's absolute one).
    """
    if action.status not in LAUNCHABLE:
        raise ActionStateError(f"action {action.code} is {action.status.value}, only a draft can be launched")
    expires_at = now + runs_for if runs_for is not None else action.expires_at
    if expires_at <= now:
        raise ActionStateError(f"action {action.code} expired at {action.expires_at.isoformat()}")
    # Claim the transition first so two launches of one action cannot both write an outbox.
    claimed = session.execute(
        update(Action)
        .where(col(Action.id) == action.id, col(Action.status) == action.status.value)
        .values(status=ActionStatus.ACTIVE.value, launched_at=now, expires_at=expires_at)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise ActionStateError(f"action {action.code} was launched already")
    action.status, action.launched_at, action.expires_at = ActionStatus.ACTIVE, now, expires_at
    queued = write_deliveries(
        session, action_id=action.id or 0, kind=DeliveryKind.ALERT, targets=targets, now=now
    )
    # Neighbourhood groups in the area get the forward-ready alert in the same transaction;
    # they are counted apart (storage.relays.relay_figures), so the return stays the participants'.
    # A group never opted in to exercises: an exercise stays with the people who did.
    if not action.exercise:
        queue_relay_alerts(session, action=action, now=now)
    return queued


def request_approval(session: Session, *, action: Action, actor: str, now: datetime) -> None:
    """Put a draft on hold until a second operator approves its launch (ActionStateError: no draft)."""
    claimed = session.execute(
        update(Action)
        .where(col(Action.id) == action.id, col(Action.status) == ActionStatus.DRAFT.value)
        .values(
            status=ActionStatus.AWAITING_APPROVAL.value,
            approval_requested_by=actor,
            approval_requested_at=now,
        )
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise ActionStateError(f"action {action.code} is {action.status.value}, only a draft can be launched")
    session.refresh(action)


def record_approval(session: Session, *, action: Action, actor: str, now: datetime) -> None:
    """Note who approved the launch (called in the launch's transaction)."""
    action.approved_by, action.approved_at = actor, now
    session.add(action)


def reject_approval(session: Session, *, action: Action) -> None:
    """Send an action awaiting approval back to draft (ActionStateError: it was not waiting)."""
    claimed = session.execute(
        update(Action)
        .where(col(Action.id) == action.id, col(Action.status) == ActionStatus.AWAITING_APPROVAL.value)
        .values(status=ActionStatus.DRAFT.value, approval_requested_by=None, approval_requested_at=None)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise ActionStateError(f"action {action.code} is not awaiting approval")
    session.refresh(action)


def awaiting_approval(session: Session) -> list[Action]:
    """Actions waiting for a second operator, oldest request first."""
    query = (
        select(Action)
        .where(col(Action.status) == ActionStatus.AWAITING_APPROVAL.value)
        .order_by(col(Action.approval_requested_at))
    )
    return list(session.scalars(query))


def exercise_participant_ids(session: Session) -> set[int]:
    """Active participants an exercise may reach: those who opted in and the test participants."""
    query = select(col(Participant.id)).where(
        col(Participant.status) == ParticipantStatus.ACTIVE.value,
        or_(col(Participant.exercises).is_(True), col(Participant.test).is_(True)),
    )
    return {pid for pid in session.scalars(query) if pid is not None}


def tipster_identity_ids(session: Session, *, action_id: int) -> list[int]:
    """The identities that sent a tip for the action, when the tips table exists."""
    table = Delivery.metadata.tables.get("tip")
    if table is None or "action_id" not in table.c or "identity_id" not in table.c:
        return []
    query = select(table.c.identity_id).where(
        table.c.action_id == action_id, table.c.identity_id.is_not(None)
    )
    return sorted({int(i) for i in session.scalars(query.distinct())})


def close_action(
    session: Session,
    *,
    action: Action,
    outcome: ActionOutcome,
    closing_text: str,
    now: datetime,
    tipster_identities: Iterable[int] = (),
    correction: bool = False,
) -> int:
    """End an action: stop alerts still queued, queue the closing message to everyone who got the alert,
    and the result to tipsters who did not. Returns the number of closing messages queued.

    With `correction` the action was launched in error: it is cancelled (a draft or one awaiting approval
    too), and who got the alert gets the correction (kind `cancel`) in place of the closing."""
    endable = (*LAUNCHABLE, ActionStatus.ACTIVE) if correction else (ActionStatus.DRAFT, ActionStatus.ACTIVE)
    if action.status not in endable:
        raise ActionStateError(f"action {action.code} is {action.status.value} already")
    was_active = action.status is ActionStatus.ACTIVE
    if correction:
        outcome = ActionOutcome.CANCELLED
    status = ActionStatus.CANCELLED if outcome is ActionOutcome.CANCELLED else ActionStatus.CLOSED
    claimed = session.execute(
        update(Action)
        .where(col(Action.id) == action.id, col(Action.status) == action.status.value)
        .values(status=status.value, outcome=outcome.value, closing_text=closing_text.strip(), closed_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise ActionStateError(f"action {action.code} was closed already")
    action.status, action.outcome, action.closing_text, action.closed_at = status, outcome, closing_text, now
    # A missing person's picture must not stay online once the search is over (closed, cancelled, expired).
    delete_photo(session, action_id=action.id or 0)
    # A CAP update or cancel that waited for an operator has nothing left to change.
    lapse_waiting_changes(session, action_id=action.id or 0, now=now)
    if not was_active:
        return 0
    # Relays that got the alert get the closing too, counted apart from the participants'.
    relay_kind = DeliveryKind.RELAY_CANCEL if correction else DeliveryKind.RELAY_CLOSING
    queue_relay_closings(session, action_id=action.id or 0, now=now, kind=relay_kind)
    d = Delivery.__table__.c  # type: ignore[attr-defined]
    session.execute(
        update(Delivery)
        .where(
            d.action_id == action.id,
            d.kind.in_([DeliveryKind.ALERT.value, DeliveryKind.UPDATE.value]),
            d.status == DeliveryStatus.QUEUED.value,
        )
        .values(status=DeliveryStatus.FAILED.value, error_code="action_closed", updated_at=now)
    )
    closing, tipsters = _closing_targets(
        session, action_id=action.id or 0, tipster_identities=tipster_identities
    )
    kind = DeliveryKind.CANCEL if correction else DeliveryKind.CLOSING
    queued = write_deliveries(session, action_id=action.id or 0, kind=kind, targets=closing, now=now)
    if tipsters:
        queued += write_deliveries(
            session, action_id=action.id or 0, kind=DeliveryKind.TIP_RESULT, targets=tipsters, now=now
        )
    return queued


def reached_targets(session: Session, *, action_id: int) -> list[Target]:
    """Who the action's alert reached (or may have: a send in flight), on the identity that reached them,
    nearest first."""
    return _closing_targets(session, action_id=action_id, tipster_identities=())[0]


def add_update(
    session: Session, *, action: Action, text: str, instruction: str, now: datetime, created_by: str
) -> tuple[ActionUpdate, int]:
    """Store an update of an active action and queue it to everyone the alert reached, on the identity
    that reached them, and to the relays that got the alert; returns it and the participants queued."""
    if action.status is not ActionStatus.ACTIVE:
        raise ActionStateError(
            f"action {action.code} is {action.status.value}, only an active one is updated"
        )
    # Claim the row first: two updates at once are numbered one after the other on PostgreSQL, and an
    # update racing a close either comes before it (and is stopped with the alerts) or is refused.
    claimed = session.execute(
        update(Action)
        .where(col(Action.id) == action.id, col(Action.status) == ActionStatus.ACTIVE.value)
        .values(status=ActionStatus.ACTIVE.value)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise ActionStateError(f"action {action.code} was closed meanwhile")
    a = ActionUpdate.__table__.c  # type: ignore[attr-defined]
    last = session.scalar(select(func.max(a.number)).where(a.action_id == action.id))
    row = ActionUpdate(
        action_id=action.id or 0,
        number=int(last or 0) + 1,
        text=text.strip(),
        instruction=instruction.strip(),
        created_at=now,
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    targets = reached_targets(session, action_id=action.id or 0)
    queued = write_deliveries(
        session,
        action_id=action.id or 0,
        kind=DeliveryKind.UPDATE,
        targets=targets,
        now=now,
        update_no=row.number,
    )
    queue_relay_updates(session, action_id=action.id or 0, update_no=row.number, now=now)
    return row, queued


def updates_of(session: Session, *, action_id: int) -> list[ActionUpdate]:
    """An action's updates, first first."""
    query = (
        select(ActionUpdate)
        .where(col(ActionUpdate.action_id) == action_id)
        .order_by(col(ActionUpdate.number))
    )
    return list(session.scalars(query))


def update_delivery_counts(session: Session, *, action_id: int) -> dict[int, dict[str, dict[str, int]]]:
    """Per update number: its deliveries (participants' and relays') per kind and status."""
    d = Delivery.__table__.c  # type: ignore[attr-defined]
    rows = session.execute(
        select(d.update_no, d.kind, d.status, func.count())
        .where(
            d.action_id == action_id,
            d.kind.in_([DeliveryKind.UPDATE.value, DeliveryKind.RELAY_UPDATE.value]),
        )
        .group_by(d.update_no, d.kind, d.status)
    ).all()
    out: dict[int, dict[str, dict[str, int]]] = {}
    for number, kind, status, n in rows:
        out.setdefault(int(number), {}).setdefault(str(kind), {})[str(status)] = int(n)
    return out


def alerted_participant_ids(session: Session, *, action_id: int) -> set[int]:
    """Everyone the action's alert was queued for, whatever became of it: a widening skips them."""
    d = Delivery.__table__.c  # type: ignore[attr-defined]
    query = select(d.participant_id).where(
        d.action_id == action_id, d.kind == DeliveryKind.ALERT.value, d.participant_id.is_not(None)
    )
    return {int(pid) for pid in session.scalars(query)}


def widen_to(
    session: Session, *, action: Action, area: Mapping[str, Any], now: datetime, timezone: str
) -> int:
    """Give an active action its larger area (checked by the caller) and alert who is newly inside,
    nearest first, nobody twice (an exercise: only who takes part in exercises), and relays the new
    area touches; returns the participants queued."""
    if action.status is not ActionStatus.ACTIVE:
        raise ActionStateError(
            f"action {action.code} is {action.status.value}, only an active one is widened"
        )
    # Claim the row first: a second widening (or a close) waits here on PostgreSQL, so it sees these
    # alerts and queues nobody twice.
    claimed = session.execute(
        update(Action)
        .where(col(Action.id) == action.id, col(Action.status) == ActionStatus.ACTIVE.value)
        .values(area=dict(area))
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise ActionStateError(f"action {action.code} was closed meanwhile")
    action.area = dict(area)
    had = alerted_participant_ids(session, action_id=action.id or 0)
    selection = select_for_alert(
        session,
        area=parse_area(area),
        at=now,
        action_type=action.type,
        urgency=action.urgency,
        timezone=timezone,
        only=exercise_participant_ids(session) if action.exercise else None,
    )
    targets = [
        Target(r.participant_id, r.first.identity_id, r.first.channel, r.language, r.distance_m)
        for r in selection.recipients
        if r.participant_id not in had
    ]
    queued = write_deliveries(
        session, action_id=action.id or 0, kind=DeliveryKind.ALERT, targets=targets, now=now
    )
    if not action.exercise:
        queue_relay_alerts(session, action=action, now=now)
    return queued


@dataclass(frozen=True)
class Ring:
    """The next ring of an action's automatic widening: its number (from 1), radius and when it is due."""

    number: int
    radius_m: float
    due_at: datetime


@dataclass(frozen=True)
class RingStep:
    """One ring of an action's automatic widening as the live page lists it: its number (from 1), radius,
    when it is (or was) due, and whether the circle reached it."""

    number: int
    radius_m: float
    due_at: datetime
    done: bool


def rings_stopped(action: Action) -> bool:
    """Whether an operator stopped the action's rings (the rings stay stored, for the schedule's sake)."""
    return bool(action.rings and action.rings.get("stopped_at"))


def ring_schedule(action: Action) -> list[RingStep]:
    """Every ring of a launched action with rings, in order; empty before the launch or without rings."""
    if not action.rings or action.launched_at is None:
        return []
    circle = action.area.get("circle")
    # A widening to a polygon or a larger circle by hand passes rings: those count as done.
    reached = float(circle["radius_m"]) if circle is not None else float("inf")
    every = timedelta(minutes=int(action.rings["every_minutes"]))
    return [
        RingStep(n, float(r), action.launched_at + every * n, float(r) <= reached)
        for n, r in enumerate(action.rings.get("radii_m", []), start=1)
    ]


def next_ring(action: Action) -> Ring | None:
    """The ring the action widens to next, or None (no rings, stopped, not a running circle, all done)."""
    circle = action.area.get("circle")
    if not action.rings or circle is None or action.launched_at is None or rings_stopped(action):
        return None
    if action.status is not ActionStatus.ACTIVE:
        return None
    radii = [float(r) for r in action.rings.get("radii_m", [])]
    # Rings an operator's own widening already passed are skipped: the next is the first one beyond.
    done = sum(1 for r in radii if r <= float(circle["radius_m"]))
    if done >= len(radii):
        return None
    every = timedelta(minutes=int(action.rings["every_minutes"]))
    return Ring(done + 1, radii[done], action.launched_at + every * (done + 1))


def stop_rings(session: Session, *, action: Action, now: datetime) -> None:
    """Stop an active action's automatic widening: no ring is widened to after this; the rings stay
    stored with when they were stopped (`stopped_at`). Raises ActionStateError (not active, no rings to
    stop, or stopped already)."""
    if action.status is not ActionStatus.ACTIVE:
        raise ActionStateError(f"action {action.code} is {action.status.value}, only an active one has rings")
    if not action.rings or rings_stopped(action):
        raise ActionStateError(f"action {action.code} has no rings to stop")
    rings = {**action.rings, "stopped_at": now.isoformat()}
    # Claim the row as a widening does: a ring the scheduler widens to at this moment waits, then sees
    # the rings stopped.
    claimed = session.execute(
        update(Action)
        .where(col(Action.id) == action.id, col(Action.status) == ActionStatus.ACTIVE.value)
        .values(rings=rings)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise ActionStateError(f"action {action.code} was closed meanwhile")
    action.rings = rings


@dataclass(frozen=True)
class ClosingAudience:
    """Who a close would message now: participants who got the alert, and tipsters who did not."""

    participants: int
    tipsters: int

    @property
    def total(self) -> int:
        """Every closing message a close would queue."""
        return self.participants + self.tipsters


def closing_audience(
    session: Session, *, action: Action, tipster_identities: Iterable[int] = ()
) -> ClosingAudience:
    """How many closing messages closing the action now would queue (none for a draft)."""
    if action.status is not ActionStatus.ACTIVE:
        return ClosingAudience(0, 0)
    closing, tipsters = _closing_targets(
        session, action_id=action.id or 0, tipster_identities=tipster_identities
    )
    return ClosingAudience(len(closing), len(tipsters))


def _closing_targets(
    session: Session, *, action_id: int, tipster_identities: Iterable[int]
) -> tuple[list[Target], list[Target]]:
    d = Delivery.__table__.c  # type: ignore[attr-defined]
    # Whoever got the alert (or may have: a send in flight) gets the closing on the same identity.
    reached = session.execute(
        select(d.participant_id, d.identity_id, d.channel, d.language)
        .where(
            d.action_id == action_id,
            d.kind == DeliveryKind.ALERT.value,
            d.status.in_([s.value for s in (*RECEIVED, DeliveryStatus.SENDING)]),
            d.identity_id.is_not(None),
        )
        .order_by(d.rank)
    ).all()
    targets = [Target(pid, iid, ChannelKind(ch), lang) for pid, iid, ch, lang in reached]
    covered = {t.identity_id for t in targets}
    covered_people = {t.participant_id for t in targets if t.participant_id is not None}
    wanted = sorted(set(tipster_identities) - covered)
    tipsters: list[Target] = []
    if wanted:
        i = ChannelIdentity.__table__.c  # type: ignore[attr-defined]
        rows = session.execute(
            select(i.id, i.participant_id, i.channel, i.language).where(
                i.id.in_(wanted), i.opted_out.is_(False), i.address_enc.is_not(None)
            )
        ).all()
        tipsters = [
            Target(pid, iid, ChannelKind(ch), lang)
            for iid, pid, ch, lang in rows
            if pid is None or pid not in covered_people
        ]
    return targets, tipsters


@dataclass(frozen=True)
class DeliveryCounts:
    """How an action's messages stand: per kind, per channel, per status."""

    by_kind: dict[str, dict[str, dict[str, int]]]

    def total(self, kind: DeliveryKind = DeliveryKind.ALERT) -> int:
        """Every delivery of one kind."""
        return sum(sum(s.values()) for s in self.by_kind.get(kind.value, {}).values())

    def by_status(self, kind: DeliveryKind = DeliveryKind.ALERT) -> dict[str, int]:
        """Deliveries of one kind per status, over all channels."""
        out: dict[str, int] = {}
        for statuses in self.by_kind.get(kind.value, {}).values():
            for status, n in statuses.items():
                out[status] = out.get(status, 0) + n
        return out


def delivery_counts(session: Session, *, action_id: int) -> DeliveryCounts:
    """Count an action's deliveries per kind, channel and status."""
    d = Delivery.__table__.c  # type: ignore[attr-defined]
    rows = session.execute(
        select(d.kind, d.channel, d.status, func.count())
        .where(d.action_id == action_id)
        .group_by(d.kind, d.channel, d.status)
    ).all()
    out: dict[str, dict[str, dict[str, int]]] = {}
    for kind, channel, status, n in rows:
        out.setdefault(str(kind), {}).setdefault(str(channel), {})[str(status)] = int(n)
    return DeliveryCounts(out)


def next_identity(
    session: Session, *, participant_id: int | None, exclude: Iterable[int]
) -> tuple[int, ChannelKind] | None:
    """The person's next reachable identity after those excluded, in the targeting order."""
    if participant_id is None:
        return None
    i = ChannelIdentity.__table__.c  # type: ignore[attr-defined]
    skip = set(exclude)
    p = Participant.__table__.c  # type: ignore[attr-defined]
    preferred = session.scalar(select(p.preferred_channel).where(p.id == participant_id))
    rows = session.execute(
        select(i.id, i.channel).where(
            i.participant_id == participant_id,
            i.opted_out.is_(False),
            i.address_enc.is_not(None),
            i.verified.is_(True),
        )
    ).all()
    reaches = [Reach(int(iid), ChannelKind(ch)) for iid, ch in rows if iid not in skip]
    if not reaches:
        return None
    first = order_reaches(ChannelKind(preferred) if preferred else None, reaches)[0]
    return first.identity_id, first.channel


def fall_back(
    session: Session,
    *,
    delivery_id: int,
    participant_id: int | None,
    identity_id: int | None,
    tried: str,
    error_code: str | None,
    now: datetime,
) -> bool:
    """Move a delivery to the person's next channel; False (and failed) when there is none left."""
    given_up = [int(x) for x in tried.split(",") if x]
    if identity_id is not None:
        given_up.append(identity_id)
    nxt = next_identity(session, participant_id=participant_id, exclude=given_up)
    d = Delivery.__table__.c  # type: ignore[attr-defined]
    values: dict[str, Any] = {"error_code": error_code, "updated_at": now}
    values.update(claimed_by=None, claimed_at=None)
    if nxt is None:
        values["status"] = DeliveryStatus.FAILED.value
    else:
        values.update(
            status=DeliveryStatus.QUEUED.value,
            identity_id=nxt[0],
            channel=nxt[1].value,
            attempts=0,
            next_attempt_at=now,
            provider_id=None,
            segments=None,
            sent_at=None,
            tried=",".join(str(x) for x in given_up),
        )
    session.execute(update(Delivery).where(d.id == delivery_id).values(**values))
    return nxt is not None


def apply_status(session: Session, *, receipt: StatusUpdate, now: datetime) -> bool:
    """Record a provider's receipt on the delivery with that provider id; a failed alert falls back.

    Returns False when no delivery has that provider id (a reply, not an alert) or the status is older.
    """
    d = Delivery.__table__.c  # type: ignore[attr-defined]
    row = session.execute(
        select(d.id, d.status, d.kind, d.participant_id, d.identity_id, d.tried).where(
            d.provider_id == receipt.provider_id
        )
    ).first()
    if row is None:
        return False
    delivery_id, status, kind, participant_id, identity_id, tried = row
    current = DeliveryStatus(status)
    if _STATUS_ORDER[receipt.status] <= _STATUS_ORDER[current]:
        return False
    failed = receipt.status in (DeliveryStatus.FAILED, DeliveryStatus.UNDELIVERED)
    if failed and kind == DeliveryKind.ALERT.value:
        moved = fall_back(
            session,
            delivery_id=delivery_id,
            participant_id=participant_id,
            identity_id=identity_id,
            tried=tried,
            error_code=receipt.error_code or receipt.status.value,
            now=now,
        )
        if moved:
            return True
    session.execute(
        update(Delivery)
        .where(and_(d.id == delivery_id))
        .values(status=receipt.status.value, error_code=receipt.error_code, updated_at=now)
    )
    return True
