"""An action's photo, shared by the REST API and the control room: prepare, attach to a draft, remove, read.

`prepare` turns uploaded bytes into what is stored (checked by content, re-encoded without metadata,
encrypted with DATA_KEY) before any row is written, so a refused photo leaves nothing behind; creating
an action with a photo then stores both in one transaction (`ActionService.create(photo=...)`). The
photo is deleted by the store function that closes an action, whoever closes it (operator, API, expiry).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from bot.alerts import AlertTexts
from bot.clock import Clock
from bot.photos import PhotoRefused, clean_photo
from bot.services.actions import InvalidAction, Problem
from storage.action_photos import (
    NewPhoto,
    PhotoFile,
    PhotoInfo,
    delete_photo,
    photo_file,
    photo_info,
    put_photo,
)
from storage.actions import ActionStateError, get_action
from storage.crypto import DataVault
from storage.db import SessionFactory, transaction
from storage.models import Action, ActionStatus
from storage.participants import audit

__all__ = ["ActionPhotos", "PhotoRefused"]


@dataclass(frozen=True)
class ActionPhotos:
    """The photo use cases on one database; each opens its own transaction."""

    sessions: SessionFactory
    clock: Clock
    vault: DataVault
    texts: AlertTexts
    max_bytes: int

    def prepare(self, data: bytes) -> NewPhoto:
        """Uploaded bytes as a photo to store: JPEG/PNG by content, no metadata, encrypted.

        Raises PhotoRefused (`too_large`, `type`, `broken`)."""
        clean = clean_photo(data, max_bytes=self.max_bytes)
        return NewPhoto(
            data_enc=self.vault.encrypt_bytes(clean.data),
            content_type=clean.content_type,
            width=clean.width,
            height=clean.height,
            size=len(clean.data),
        )

    def attach(self, action_id: int, photo: NewPhoto, *, actor: str) -> PhotoInfo:
        """Give a draft its photo (replacing one it had), audited.

        Raises ActionNotFound, ActionStateError (not a draft) or InvalidAction (the SMS, with the page's
        link added, would no longer fit its parts with the instruction whole)."""
        now = self.clock()
        with transaction(self.sessions) as session:
            action = _draft(session, action_id)
            problems = self.texts.problems(action.model_copy(update={"has_photo": True}))
            if problems:
                raise InvalidAction([Problem((p.field,), p.message, "text", p.field) for p in problems])
            put_photo(session, action_id=action_id, photo=photo, now=now)
            audit(session, now=now, actor=actor, event="action_photo_added", subject=f"action:{action_id}")
            return photo_info(session, action_id=action_id)

    def remove(self, action_id: int, *, actor: str) -> bool:
        """Take a draft's photo away, audited; whether it had one. Raises ActionNotFound, ActionStateError."""
        now = self.clock()
        with transaction(self.sessions) as session:
            _draft(session, action_id)
            removed = delete_photo(session, action_id=action_id)
            if removed:
                audit(
                    session, now=now, actor=actor, event="action_photo_removed", subject=f"action:{action_id}"
                )
        return removed

    def info(self, action_id: int) -> PhotoInfo:
        """The action's photo without its bytes. Raises PhotoNotFound."""
        with self.sessions() as session:
            return photo_info(session, action_id=action_id)

    def file(self, action_id: int) -> PhotoFile:
        """The action's photo, decrypted. Raises PhotoNotFound (none, or deleted when the action ended)."""
        with self.sessions() as session:
            return photo_file(session, action_id=action_id, vault=self.vault)


def _draft(session: Session, action_id: int) -> Action:
    action = get_action(session, action_id=action_id)
    if action.status is not ActionStatus.DRAFT:
        raise ActionStateError(f"action {action.code} is {action.status.value}; only a draft's photo changes")
    return action
