"""Creating, previewing, launching and closing actions, shared by the REST API and the control room.

Each use case is written once here: validation, the storage calls, the audit row, the outbox rows
(queued by the store functions in the same transaction) and waking the dispatcher after the commit.
The web layers only parse their input and present the result: a domain error (`InvalidAction`,
`ActionNotFound`, `ActionStateError`) becomes a JSON status code in the API and a page in the control room.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bot.alerts import AlertTexts, CostEstimate, estimate_cost
from bot.cap.document import CapReference
from bot.clock import Clock
from bot.config import Settings
from storage.action_photos import NewPhoto, put_photo
from storage.actions import (
    ActionDraft,
    ActionStateError,
    ClosingAudience,
    Target,
    add_update,
    close_action,
    closing_audience,
    create_action,
    exercise_participant_ids,
    get_action,
    launch_action,
    record_approval,
    reject_approval,
    request_approval,
    stop_rings,
    tipster_identity_ids,
    widen_to,
)
from storage.cap_changes import CapAlertSeen, add_cap_alert, cap_alert_of
from storage.db import SessionFactory, transaction
from storage.geo import PostcodeBook, distance_m
from storage.models import Action, ActionOutcome, ActionStatus, ActionUpdate, DeliveryKind
from storage.participants import audit
from storage.preferences import Selection, select_for_alert
from storage.regions import coverage, needs_approval, touched_by_action
from storage.targeting import (
    Circle,
    InvalidArea,
    Polygon,
    Recipient,
    circle_contains_polygon,
    parse_area,
    polygon_contains_circle,
    polygon_contains_polygon,
)
from storage.vocabulary import ChannelKind


@dataclass(frozen=True)
class Problem:
    """One reason a new action is refused: where (`loc`, as the API's 422 names it), why (English),
    and what (`kind`: `expires_at`, `municipality` with its `name`, or `text` for a field too long)."""

    loc: tuple[str | int, ...]
    message: str
    kind: str
    name: str = ""


class InvalidAction(ValueError):
    """The fields do not make a valid action; `problems` says each reason."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Preview:
    """Who a launch would reach now, per channel, what it would cost, and the Dutch SMS text."""

    action: Action
    estimate: CostEstimate
    sms_text: str
    left_out_by_preferences: int = 0
    """People in the area who would not get it because they skip this kind, or it is their quiet hours."""


def resolve_area(book: PostcodeBook, area: Mapping[str, Any]) -> dict[str, Any]:
    """A circle or polygon as given, or municipality names and codes as sorted CBS codes.

    Raises InvalidAction.
    """
    if area.get("circle") is not None:
        return {"circle": dict(area["circle"])}
    if area.get("polygon") is not None or area.get("geojson") is not None:
        try:
            parse_area(area)
        except InvalidArea as exc:
            key = "polygon" if area.get("polygon") is not None else "geojson"
            raise InvalidAction([Problem(("area", key), str(exc), "area")]) from exc
        return dict(area)
    codes: list[str] = []
    problems = []
    for n, name in enumerate(area.get("municipalities") or []):
        if not name.strip():
            continue
        try:
            codes.append(book.municipality_code(name))
        except LookupError:
            problems.append(
                Problem(
                    ("area", "municipalities", n),
                    f"unknown municipality: {name.strip()[:60]}",
                    "municipality",
                    name.strip()[:60],
                )
            )
    if problems:
        raise InvalidAction(problems)
    return {"municipalities": sorted(set(codes))}


def closing_audience_of(session: Session, *, action_id: int) -> ClosingAudience:
    """How many closing messages closing the action now would queue. Raises ActionNotFound."""
    action = get_action(session, action_id=action_id)
    return closing_audience(
        session, action=action, tipster_identities=tipster_identity_ids(session, action_id=action_id)
    )


def close(
    session: Session,
    *,
    action_id: int,
    outcome: ActionOutcome,
    closing_text: str,
    now: datetime,
    actor: str,
) -> int:
    """End the action, queue the closing messages and audit it; returns how many were queued.

    Raises ActionNotFound or ActionStateError; the caller owns the transaction and wakes the dispatcher.
    """
    action = get_action(session, action_id=action_id)
    queued = close_action(
        session,
        action=action,
        outcome=outcome,
        closing_text=closing_text,
        now=now,
        tipster_identities=tipster_identity_ids(session, action_id=action_id),
    )
    audit(
        session,
        now=now,
        actor=actor,
        event="action_closed",
        subject=f"action:{action_id}",
        detail={"outcome": outcome.value, "closing_messages": queued},
    )
    return queued


@dataclass(frozen=True)
class Launcher:
    """Who launches or approves: an operator (launches only where their regions cover the area) or the
    API token (`operator_id` None: a system actor trusted everywhere, as its client decides who may)."""

    actor: str
    operator_id: int | None = None


SYSTEM = Launcher("api")


class LaunchRefused(PermissionError):
    """This launcher may not launch or approve this action; `reason`: `region` (with the `missing`
    municipality codes) or `self_approval`."""

    def __init__(self, reason: str, missing: Sequence[str] = ()) -> None:
        super().__init__(f"{reason}: {', '.join(missing)}" if missing else reason)
        self.reason = reason
        self.missing = list(missing)


@dataclass(frozen=True)
class LaunchResult:
    """What asking to launch did: `active` with the queued count, or `awaiting_approval` (nothing sent)."""

    status: ActionStatus
    queued: int = 0


def draft_duration(action: Action) -> timedelta:
    """How long the operator asked a draft from the form to run (whole minutes), counted from its launch."""
    return timedelta(minutes=round((action.expires_at - action.created_at).total_seconds() / 60))


def widening_problem(old: Mapping[str, Any], new: Mapping[str, Any]) -> Problem | None:
    """Why the new area is no widening of the old (`kind` widen, `name` the reason: `circle`, `polygon`,
    `same`, `municipalities` or `shape`), or None when it contains the old one.

    A circle or polygon widens to a circle or polygon that contains it (`storage.targeting` decides
    containment); municipalities widen to a list with all of them."""
    if old.get("municipalities") is not None or new.get("municipalities") is not None:
        return _municipalities_problem(old, new)
    before, after = parse_area(old), parse_area(new)
    if isinstance(before, Circle) and isinstance(after, Circle):
        return _circle_problem(before, after)
    if isinstance(after, Polygon):
        inside = (
            polygon_contains_circle(after, before)
            if isinstance(before, Circle)
            else isinstance(before, Polygon) and polygon_contains_polygon(after, before)
        )
        if not inside:
            what = "circle" if isinstance(before, Circle) else "polygon"
            message = f"the new polygon must contain the old one: part of the old {what} lies outside it"
            return Problem(("area", _shape_key(new)), message, "widen", "polygon")
        if isinstance(before, Polygon) and before.parts == after.parts:
            message = "the new polygon is the old one: nothing to widen"
            return Problem(("area", _shape_key(new)), message, "widen", "same")
        return None
    if isinstance(before, Polygon) and isinstance(after, Circle):
        if not circle_contains_polygon(after, before):
            message = "the new circle must contain the old one: a corner of the old polygon lies outside it"
            return Problem(("area", "circle"), message, "widen", "circle")
        return None
    return Problem(("area",), "the new area cannot be compared with the old one", "widen", "shape")


def _shape_key(area: Mapping[str, Any]) -> str:
    return "polygon" if area.get("polygon") is not None else "geojson"


def _circle_problem(before: Circle, after: Circle) -> Problem | None:
    apart = distance_m(before.lat, before.lon, after.lat, after.lon)
    needed = apart + before.radius_m
    # A metre of slack: a centre given again with fewer decimals is still the same centre.
    if needed > after.radius_m + 1.0:
        message = (
            "the new circle must contain the old one: its radius must be at least "
            f"{round(needed)} m from that centre"
        )
        return Problem(("area", "circle"), message, "widen", "circle")
    if after.radius_m <= before.radius_m and apart < 1.0:
        return Problem(("area", "circle"), "the new circle is the old one: nothing to widen", "widen", "same")
    return None


def _municipalities_problem(old: Mapping[str, Any], new: Mapping[str, Any]) -> Problem | None:
    if old.get("municipalities") is None or new.get("municipalities") is None:
        kind = "municipalities" if old.get("municipalities") is not None else "circle or polygon"
        message = (
            f"an area of kind {kind} widens only to a larger one of the same kind "
            "(municipalities to municipalities; a circle or polygon to a circle or polygon)"
        )
        return Problem(("area",), message, "widen", "shape")
    missing = sorted(set(old["municipalities"]) - set(new["municipalities"]))
    if missing:
        message = f"the new area must keep every municipality of the old one; missing: {', '.join(missing)}"
        return Problem(("area", "municipalities"), message, "widen", "municipalities")
    if set(new["municipalities"]) == set(old["municipalities"]):
        message = "the new area is the old one: nothing to widen"
        return Problem(("area", "municipalities"), message, "widen", "same")
    return None


@dataclass(frozen=True)
class ActionService:
    """The action use cases on one database; each opens its own transaction and wakes the dispatcher
    after a commit that queued messages."""

    sessions: SessionFactory
    clock: Clock
    book: PostcodeBook
    texts: AlertTexts
    settings: Settings
    wake: Callable[[], None] | None = None

    def _woken(self) -> None:
        if self.wake is not None:
            self.wake()

    def validate(self, draft: ActionDraft, *, with_photo: bool = False) -> ActionDraft:
        """The draft with its area resolved to codes, if it makes a valid action. Raises InvalidAction.

        `with_photo`: the action will have a photo, so its SMS carries the page's link as well."""
        now = self.clock()
        area = resolve_area(self.book, draft.area)
        problems = []
        expires_at = draft.expires_at.astimezone(UTC)
        if expires_at <= now:
            problems.append(Problem(("expires_at",), "expires_at must be in the future", "expires_at"))
        checked = ActionDraft(
            type=draft.type,
            headline=draft.headline,
            description=draft.description,
            instruction=draft.instruction,
            area=area,
            expires_at=expires_at,
            urgency=draft.urgency,
            severity=draft.severity,
            certainty=draft.certainty,
            exercise=draft.exercise,
            rings=draft.rings,
        )
        if draft.rings is not None:
            radius = float(area.get("circle", {}).get("radius_m", 0))
            radii = [float(r) for r in draft.rings.get("radii_m", [])]
            if "circle" not in area:
                problems.append(Problem(("rings",), "rings widen a circle: give a circle area", "rings"))
            elif any(b <= a for a, b in zip([radius, *radii], radii, strict=False)):
                problems.append(
                    Problem(
                        ("rings", "radii_m"), "each ring must be larger than the circle before it", "rings"
                    )
                )
        probe = Action(
            code="BN-XXXX",
            type=checked.type,
            headline=checked.headline,
            description=checked.description,
            instruction=checked.instruction,
            area=area,
            created_at=now,
            expires_at=checked.expires_at,
            has_photo=with_photo,
            exercise=checked.exercise,
        )
        problems.extend(Problem((p.field,), p.message, "text", p.field) for p in self.texts.problems(probe))
        if problems:
            raise InvalidAction(problems)
        return checked

    def create(
        self,
        draft: ActionDraft,
        *,
        actor: str,
        created_by: str,
        photo: NewPhoto | None = None,
        cap_alert: CapReference | None = None,
    ) -> Action:
        """Validate and store a draft action (with its photo, prepared by `ActionPhotos.prepare`, or the
        CAP Alert it came from), audited; nothing is sent. Raises InvalidAction, or CapAlertSeen for a
        CAP Alert received before."""
        checked = self.validate(draft, with_photo=photo is not None)
        try:
            return self._create(checked, actor=actor, created_by=created_by, photo=photo, cap_alert=cap_alert)
        except IntegrityError:
            # The same CAP Alert, posted twice at the same moment: the second loses on the unique constraint.
            if cap_alert is None:
                raise
            with self.sessions() as session:
                seen = cap_alert_of(session, sender=cap_alert.sender, identifier=cap_alert.identifier)
            if seen is None:
                raise
            raise CapAlertSeen(seen) from None

    def _create(
        self,
        checked: ActionDraft,
        *,
        actor: str,
        created_by: str,
        photo: NewPhoto | None,
        cap_alert: CapReference | None,
    ) -> Action:
        now = self.clock()
        with transaction(self.sessions) as session:
            action = create_action(session, draft=checked, now=now, created_by=created_by)
            if photo is not None:
                put_photo(session, action_id=action.id or 0, photo=photo, now=now)
            if cap_alert is not None:
                add_cap_alert(
                    session,
                    action=action,
                    sender=cap_alert.sender,
                    identifier=cap_alert.identifier,
                    sent=cap_alert.sent,
                    now=now,
                )
            audit(session, now=now, actor=actor, event="action_created", subject=f"action:{action.id}")
        return action

    def _selection(
        self, session: Session, action: Action, now: datetime, area: Mapping[str, Any] | None = None
    ) -> Selection:
        # An exercise reaches only who opted in to exercises and the test participants.
        return select_for_alert(
            session,
            area=parse_area(action.area if area is None else area),
            at=now,
            action_type=action.type,
            urgency=action.urgency,
            timezone=self.settings.timezone,
            only=exercise_participant_ids(session) if action.exercise else None,
        )

    def _recipients(self, session: Session, action: Action, now: datetime) -> list[Recipient]:
        return self._selection(session, action, now).recipients

    def _launch_in(
        self,
        session: Session,
        action: Action,
        recipients: list[Recipient],
        now: datetime,
        *,
        runs_from_launch: bool,
    ) -> int:
        targets = [
            Target(r.participant_id, r.first.identity_id, r.first.channel, r.language, r.distance_m)
            for r in recipients
        ]
        runs_for = draft_duration(action) if runs_from_launch and action.created_by != "api" else None
        return launch_action(session, action=action, targets=targets, now=now, runs_for=runs_for)

    def preview(self, action_id: int) -> Preview:
        """Who launching now would reach and what it would cost; nothing is stored. Raises ActionNotFound."""
        now = self.clock()
        with self.sessions() as session:
            action = get_action(session, action_id=action_id)
            selection = self._selection(session, action, now)
            estimate = estimate_cost(
                self.texts, action, selection.recipients, settings=self.settings, now=now
            )
            sms = self.texts.text(action, kind=DeliveryKind.ALERT, channel=ChannelKind.SMS, lang="nl")
        return Preview(
            action=action, estimate=estimate, sms_text=sms, left_out_by_preferences=selection.left_out
        )

    def launch(self, action_id: int, *, actor: str, runs_from_launch: bool) -> int:
        """Queue the alert to everyone in the area, nearest first, audited; returns how many were queued.

        With `runs_from_launch` a draft the form made (it asked how long the action runs) ends that long
        after now; a draft an API client made keeps the absolute end time it was given.
        Raises ActionNotFound or ActionStateError.
        """
        now = self.clock()
        with transaction(self.sessions) as session:
            action = get_action(session, action_id=action_id)
            recipients = self._recipients(session, action, now)
            queued = self._launch_in(session, action, recipients, now, runs_from_launch=runs_from_launch)
            audit(
                session,
                now=now,
                actor=actor,
                event="action_launched",
                subject=f"action:{action_id}",
                detail={"recipients": queued},
            )
        self._woken()
        return queued

    def _check_region(self, session: Session, action: Action, by: Launcher) -> set[str]:
        touched = touched_by_action(self.book, action)
        if by.operator_id is not None:
            missing = coverage(session, operator_id=by.operator_id).missing(touched)
            if missing:
                raise LaunchRefused("region", missing)
        return touched

    def may_launch(self, action_id: int, *, by: Launcher) -> list[str]:
        """The municipalities of the action's area the launcher's regions do not cover (none: allowed)."""
        with self.sessions() as session:
            action = get_action(session, action_id=action_id)
            try:
                self._check_region(session, action, by)
            except LaunchRefused as refused:
                return refused.missing
        return []

    def request_launch(self, action_id: int, *, by: Launcher, runs_from_launch: bool) -> LaunchResult:
        """Launch where the launcher's regions cover the area; where four eyes are configured for the
        action's type and region, put it on hold for a second operator instead (audited).

        Raises ActionNotFound, ActionStateError or LaunchRefused.
        """
        now = self.clock()
        with transaction(self.sessions) as session:
            action = get_action(session, action_id=action_id)
            touched = self._check_region(session, action, by)
            if needs_approval(session, action_type=action.type.value, touched=touched):
                request_approval(session, action=action, actor=by.actor, now=now)
                audit(
                    session,
                    now=now,
                    actor=by.actor,
                    event="launch_approval_requested",
                    subject=f"action:{action_id}",
                    detail={"municipalities": sorted(touched)},
                )
                return LaunchResult(ActionStatus.AWAITING_APPROVAL)
        return LaunchResult(
            ActionStatus.ACTIVE, self.launch(action_id, actor=by.actor, runs_from_launch=runs_from_launch)
        )

    def approve(self, action_id: int, *, by: Launcher) -> int:
        """A second operator (not the one who asked, with rights in the area) approves: the action is
        launched, audited; returns how many were queued. Raises ActionNotFound, ActionStateError or
        LaunchRefused."""
        now = self.clock()
        with transaction(self.sessions) as session:
            action = get_action(session, action_id=action_id)
            if action.status is not ActionStatus.AWAITING_APPROVAL:
                raise ActionStateError(f"action {action.code} is not awaiting approval")
            if action.approval_requested_by == by.actor:
                raise LaunchRefused("self_approval")
            self._check_region(session, action, by)
            requested_by = action.approval_requested_by
            recipients = self._recipients(session, action, now)
            queued = self._launch_in(session, action, recipients, now, runs_from_launch=True)
            record_approval(session, action=action, actor=by.actor, now=now)
            audit(
                session,
                now=now,
                actor=by.actor,
                event="launch_approved",
                subject=f"action:{action_id}",
                detail={"requested_by": requested_by, "recipients": queued},
            )
        self._woken()
        return queued

    def reject(self, action_id: int, *, by: Launcher, reason: str = "") -> None:
        """Refuse a waiting launch: the action goes back to draft, audited. Raises ActionNotFound,
        ActionStateError or LaunchRefused (the requester cannot reject in place of a second operator)."""
        now = self.clock()
        with transaction(self.sessions) as session:
            action = get_action(session, action_id=action_id)
            if action.status is not ActionStatus.AWAITING_APPROVAL:
                raise ActionStateError(f"action {action.code} is not awaiting approval")
            requested_by = action.approval_requested_by
            if requested_by != by.actor:
                self._check_region(session, action, by)
            reject_approval(session, action=action)
            audit(
                session,
                now=now,
                actor=by.actor,
                event="launch_rejected" if requested_by != by.actor else "launch_request_withdrawn",
                subject=f"action:{action_id}",
                detail={"requested_by": requested_by, "reason": reason.strip()[:200]},
            )

    def close(self, action_id: int, *, outcome: ActionOutcome, closing_text: str, actor: str) -> int:
        """End the action and queue its closing messages, audited; returns how many were queued.

        Raises ActionNotFound or ActionStateError.
        """
        with transaction(self.sessions) as session:
            queued = close(
                session,
                action_id=action_id,
                outcome=outcome,
                closing_text=closing_text,
                now=self.clock(),
                actor=actor,
            )
        self._woken()
        return queued

    def closing_audience(self, action_id: int) -> ClosingAudience:
        """How many closing messages closing now would queue. Raises ActionNotFound."""
        with self.sessions() as session:
            return closing_audience_of(session, action_id=action_id)

    def add_update(
        self, action_id: int, *, text: str, instruction: str, actor: str, photo: NewPhoto | None = None
    ) -> tuple[ActionUpdate, int]:
        """Send an update of an active action to everyone the alert reached (on the channel that reached
        them) and to the relays that got it, stored and audited; returns it and the participants queued.

        A `photo` (prepared by `ActionPhotos.prepare`) replaces the action's photo on its public page; the
        chats send it with the update, an SMS links to the page.
        Raises ActionNotFound, ActionStateError or InvalidAction (blank, or too long for an SMS)."""
        with transaction(self.sessions) as session:
            row, queued = self.update_in(
                session,
                action_id,
                text=text,
                instruction=instruction,
                actor=actor,
                now=self.clock(),
                photo=photo,
            )
        self._woken()
        return row, queued

    def update_in(
        self,
        session: Session,
        action_id: int,
        *,
        text: str,
        instruction: str,
        actor: str,
        now: datetime,
        photo: NewPhoto | None = None,
    ) -> tuple[ActionUpdate, int]:
        """`add_update` in the caller's transaction (who commits wakes the dispatcher)."""
        if not text.strip():
            raise InvalidAction([Problem(("text",), "text must not be empty", "text", "text")])
        action = get_action(session, action_id=action_id)
        probe = ActionUpdate(
            action_id=action_id,
            number=0,
            text=text.strip(),
            instruction=instruction.strip(),
            created_at=now,
            created_by=actor,
        )
        problems = self.texts.update_problems(action, probe, with_photo=photo is not None)
        if problems:
            raise InvalidAction([Problem((p.field,), p.message, "text", p.field) for p in problems])
        row, queued = add_update(
            session, action=action, text=text, instruction=instruction, now=now, created_by=actor
        )
        detail: dict[str, Any] = {"update": row.number, "recipients": queued}
        if photo is not None:
            # The same `now` as the update's: that is how its messages know it brought the photo.
            put_photo(session, action_id=action_id, photo=photo, now=now)
            detail["photo"] = True
        audit(
            session,
            now=now,
            actor=actor,
            event="action_updated",
            subject=f"action:{action_id}",
            detail=detail,
        )
        return row, queued

    def cancel(self, action_id: int, *, reason: str, actor: str) -> int:
        """Cancel an action sent in error: who got the alert gets a correction (a draft or one awaiting
        approval is cancelled without a message), the public page goes dark and the photo is deleted, as
        with a close; the reason goes in the audit log only. Returns how many corrections were queued.

        Raises ActionNotFound or ActionStateError."""
        with transaction(self.sessions) as session:
            queued = self.cancel_in(session, action_id, reason=reason, actor=actor, now=self.clock())
        self._woken()
        return queued

    def cancel_in(self, session: Session, action_id: int, *, reason: str, actor: str, now: datetime) -> int:
        """`cancel` in the caller's transaction (who commits wakes the dispatcher)."""
        action = get_action(session, action_id=action_id)
        queued = close_action(
            session,
            action=action,
            outcome=ActionOutcome.CANCELLED,
            # The reason is the control room's: the public page shows an action's closing text.
            closing_text="",
            now=now,
            tipster_identities=tipster_identity_ids(session, action_id=action_id),
            correction=True,
        )
        audit(
            session,
            now=now,
            actor=actor,
            event="action_cancelled",
            subject=f"action:{action_id}",
            detail={"reason": reason.strip()[:200], "corrections": queued},
        )
        return queued

    def woken(self) -> None:
        """Wake the dispatcher after a commit that queued messages (`update_in`, `cancel_in`)."""
        self._woken()

    def widen(self, action_id: int, area: Mapping[str, Any], *, by: Launcher) -> int:
        """Give an active action a larger area that contains the old one and alert the people newly
        inside, nearest first, nobody twice; the old and new areas go in the audit log. Returns how many
        were queued.

        Raises ActionNotFound, ActionStateError, InvalidAction (not a widening) or LaunchRefused (the
        launcher's regions do not cover the new area)."""
        resolved = resolve_area(self.book, area)
        now = self.clock()
        with transaction(self.sessions) as session:
            action = get_action(session, action_id=action_id)
            if action.status is not ActionStatus.ACTIVE:
                raise ActionStateError(f"action {action.code} is {action.status.value}, only an active one")
            problem = widening_problem(action.area, resolved)
            if problem is not None:
                raise InvalidAction([problem])
            # Widening alerts people in the new area: the launcher's regions must cover it, as for a launch.
            probe = Action(
                code=action.code,
                type=action.type,
                headline=action.headline,
                area=resolved,
                created_at=action.created_at,
                expires_at=action.expires_at,
            )
            self._check_region(session, probe, by)
            before = dict(action.area)
            queued = widen_to(session, action=action, area=resolved, now=now, timezone=self.settings.timezone)
            audit(
                session,
                now=now,
                actor=by.actor,
                event="action_widened",
                subject=f"action:{action_id}",
                detail={"from": before, "to": resolved, "recipients": queued},
            )
        self._woken()
        return queued

    def stop_rings(self, action_id: int, *, actor: str) -> Action:
        """Stop an active action's automatic widening (the rings not yet reached are left out), audited;
        the action as it now is. Raises ActionNotFound or ActionStateError (not active, no rings to stop,
        or stopped already)."""
        now = self.clock()
        with transaction(self.sessions) as session:
            action = get_action(session, action_id=action_id)
            stop_rings(session, action=action, now=now)
            audit(
                session,
                now=now,
                actor=actor,
                event="action_rings_stopped",
                subject=f"action:{action_id}",
                detail={"rings": action.rings, "radius_m": action.area.get("circle", {}).get("radius_m")},
            )
        return action
