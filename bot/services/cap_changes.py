"""CAP Update and Cancel of our actions: stored as a waiting change, sent only when an operator confirms.

A dispatch system that received our CAP (`GET /api/v1/actions/{id}/cap`) answers with an Update or a
Cancel whose `references` name our message by its sender, identifier and sent time; one whose own CAP
Alert became a draft here (`POST /api/v1/cap`) references that Alert. `receive` finds the action those
name and stores a draft update (its text is what the Update's description adds to what the
action already told) or a cancel to confirm. In the control room an operator sends it (`confirm`: the
very update or cancel of `ActionService`, in one transaction with the claim, so a double click sends it
once) or throws it away (`discard`); both are audited with the operator's name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bot.cap.document import CapChangeMessage, CapReference, cap_time, our_message
from bot.services.actions import ActionService, InvalidAction, Problem
from storage.actions import ActionStateError, action_with_code, get_action, updates_of
from storage.cap_changes import (
    CapMessageSeen,
    add_cap_change,
    cap_alert_of,
    change_of_message,
    decide_cap_change,
    get_cap_change,
    waiting_changes,
)
from storage.db import transaction
from storage.models import Action, ActionStatus, CapChange, CapChangeKind, CapChangeStatus
from storage.participants import audit

_PARAGRAPHS = re.compile(r"\n\s*\n")
# An action in these states has sent nothing: a CAP Cancel of it needs no operator to confirm.
NOT_SENT_YET = (ActionStatus.DRAFT, ActionStatus.AWAITING_APPROVAL)
MAX_TEXT = 1200
MAX_INSTRUCTION = 300


class UnknownReference(LookupError):
    """The message references none of our actions (or names one of ours that does not exist)."""


def _paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in _PARAGRAPHS.split(text.strip()) if p.strip()]


def new_text(description: str, told: Sequence[str]) -> str:
    """What an Update's description adds to the story the action told (its description, then its
    updates, in order): a CAP Update replaces the whole message, so the longest told beginning that
    leaves something is cut off; a description that does not begin with the story stays whole."""
    wanted = _PARAGRAPHS.split(description.strip())
    normal = [" ".join(p.split()) for p in wanted]
    best, story = 0, []
    for part in told:
        story.extend(_paragraphs(part))
        if normal[: len(story)] != story:
            break
        if len(story) < len(normal):
            best = len(story)
    return "\n\n".join(p.strip() for p in wanted[best:])


def _same_moment(a: datetime, b: datetime | None) -> bool:
    return b is not None and cap_time(a) == cap_time(b)


@dataclass(frozen=True)
class CapChanges:
    """Receiving, confirming and discarding CAP changes of our actions, on one database."""

    actions: ActionService
    sender: str
    """Our CAP sender: a reference to one of our messages names it."""

    def _referenced(self, session: Session, references: Sequence[CapReference]) -> Action:
        found: dict[int, Action] = {}
        for reference in references:
            action = (
                self._action_of(session, reference)
                if reference.sender == self.sender
                else self._action_of_alert_in(session, reference)
            )
            if action is not None:
                found[action.id or 0] = action
        if not found:
            raise UnknownReference(
                f"the message must reference one of our alerts (sender {self.sender}) or a CAP Alert "
                "received here"
            )
        if len(found) > 1:
            raise UnknownReference("the message references more than one of our actions")
        return next(iter(found.values()))

    def _action_of_alert_in(self, session: Session, reference: CapReference) -> Action | None:
        """The action a CAP Alert received here became (None: the reference names none, such as the
        sender's earlier Updates, which CAP also lists)."""
        alert = cap_alert_of(session, sender=reference.sender, identifier=reference.identifier)
        if alert is None or not _same_moment(reference.sent, alert.cap_sent):
            return None
        return session.get(Action, alert.action_id)

    def _action_of(self, session: Session, reference: CapReference) -> Action:
        unknown = UnknownReference(
            f"references: {reference.identifier} sent {cap_time(reference.sent)} is no message of ours"
        )
        message = our_message(reference.identifier)
        if message is None:
            raise unknown
        action = action_with_code(session, code=message.code)
        if action is None:
            raise unknown
        if message.ended is not None:
            matches = message.ended == action.status.value and _same_moment(reference.sent, action.closed_at)
        elif message.update_no is not None:
            updates = {u.number: u for u in updates_of(session, action_id=action.id or 0)}
            update = updates.get(message.update_no)
            matches = update is not None and _same_moment(reference.sent, update.created_at)
        else:
            # A draft's CAP was sent at its creation, a running action's at its launch.
            matches = _same_moment(reference.sent, action.launched_at) or _same_moment(
                reference.sent, action.created_at
            )
        if not matches:
            raise unknown
        return action

    def receive(self, message: CapChangeMessage) -> CapChange:
        """Store the Update as a draft update, or the Cancel as a cancel to confirm, of the action its
        references name; audited, nothing sent.

        Raises UnknownReference, ActionStateError (the action is not active), InvalidAction (an update
        with nothing to say, or too long) or CapMessageSeen (this message came before)."""
        try:
            return self._receive(message)
        except IntegrityError:
            # The same message, posted twice at the same moment: the second loses on the unique constraint.
            with self.actions.sessions() as session:
                seen = change_of_message(session, sender=message.sender, identifier=message.identifier)
            if seen is None:
                raise
            raise CapMessageSeen(seen) from None

    def _receive(self, message: CapChangeMessage) -> CapChange:
        now = self.actions.clock()
        actor = f"cap:{message.sender}"[:120]
        with transaction(self.actions.sessions) as session:
            action = self._referenced(session, message.references)
            # A Cancel of a draft (or one awaiting approval) takes effect at once: nothing went out, nobody
            # gets a message, and an operator can no longer launch what its source has withdrawn.
            at_once = message.msg_type == "Cancel" and action.status in NOT_SENT_YET
            if action.status is not ActionStatus.ACTIVE and not at_once:
                raise ActionStateError(
                    f"action {action.code} is {action.status.value}: only an active action takes "
                    f"a CAP {message.msg_type}"
                )
            if message.msg_type == "Update":
                kind = CapChangeKind.UPDATE
                told = [action.description, *(u.text for u in updates_of(session, action_id=action.id or 0))]
                text = new_text(message.description, told)
                # The same instruction as the action's is no change: the update repeats the action's own.
                instruction = (
                    "" if _same_text(message.instruction, action.instruction) else message.instruction
                )
                _check_update(text, instruction)
            else:
                kind = CapChangeKind.CANCEL
                text = message.note or message.description
                instruction = ""
            if at_once:
                # Before the change is stored: cancelling lapses the action's changes still waiting.
                self.actions.cancel_in(session, action.id or 0, reason=text[:MAX_TEXT], actor=actor, now=now)
            change = add_cap_change(
                session,
                action=action,
                kind=kind,
                text=text[:MAX_TEXT],
                instruction=instruction,
                sender=message.sender,
                identifier=message.identifier,
                sent=message.sent,
                now=now,
            )
            detail: dict[str, object] = {
                "change": change.id,
                "kind": kind.value,
                "identifier": message.identifier[:120],
            }
            if at_once:
                decide_cap_change(session, change=change, status=CapChangeStatus.SENT, actor=actor, now=now)
                detail["at_once"] = True
            audit(
                session,
                now=now,
                actor=actor,
                event="cap_change_received",
                subject=f"action:{action.id}",
                detail=detail,
            )
        return change

    def waiting(self, action_id: int) -> list[CapChange]:
        """The action's CAP changes waiting for an operator, oldest first."""
        with self.actions.sessions() as session:
            return waiting_changes(session, action_id=action_id)

    def confirm(
        self,
        action_id: int,
        change_id: int,
        *,
        actor: str,
        text: str | None = None,
        instruction: str | None = None,
    ) -> tuple[CapChange, int]:
        """Send a waiting change: an update (with the text and instruction the operator may have edited)
        or the cancel, by the same use case as the API's, audited with who confirmed; returns it and how
        many messages were queued.

        Raises CapChangeNotFound, CapChangeDecided, ActionNotFound, ActionStateError or InvalidAction."""
        now = self.actions.clock()
        with transaction(self.actions.sessions) as session:
            change = get_cap_change(session, action_id=action_id, change_id=change_id)
            decide_cap_change(session, change=change, status=CapChangeStatus.SENT, actor=actor, now=now)
            if change.kind is CapChangeKind.UPDATE:
                row, queued = self.actions.update_in(
                    session,
                    action_id,
                    text=change.text if text is None else text,
                    instruction=change.instruction if instruction is None else instruction,
                    actor=actor,
                    now=now,
                )
                change.update_no = row.number
                session.add(change)
            else:
                reason = f"CAP {change.cap_identifier} ({change.cap_sender}): {change.text}"
                queued = self.actions.cancel_in(session, action_id, reason=reason, actor=actor, now=now)
            audit(
                session,
                now=now,
                actor=actor,
                event="cap_change_confirmed",
                subject=f"action:{action_id}",
                detail={"change": change_id, "kind": change.kind.value, "queued": queued},
            )
        self.actions.woken()
        return change, queued

    def discard(self, action_id: int, change_id: int, *, actor: str) -> CapChange:
        """Throw a waiting change away, audited; nothing is sent. Raises CapChangeNotFound or
        CapChangeDecided."""
        now = self.actions.clock()
        with transaction(self.actions.sessions) as session:
            get_action(session, action_id=action_id)
            change = get_cap_change(session, action_id=action_id, change_id=change_id)
            decide_cap_change(session, change=change, status=CapChangeStatus.DISCARDED, actor=actor, now=now)
            audit(
                session,
                now=now,
                actor=actor,
                event="cap_change_discarded",
                subject=f"action:{action_id}",
                detail={"change": change_id, "kind": change.kind.value},
            )
        return change


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def _check_update(text: str, instruction: str) -> None:
    problems = []
    if not text.strip():
        problems.append(Problem(("info", "description"), "an Update must say what changed", "text", "text"))
    if len(text) > MAX_TEXT:
        problems.append(
            Problem(("info", "description"), f"what changed is longer than {MAX_TEXT} characters", "text")
        )
    if len(instruction) > MAX_INSTRUCTION:
        problems.append(Problem(("info", "instruction"), f"longer than {MAX_INSTRUCTION} characters", "text"))
    if problems:
        raise InvalidAction(problems)
