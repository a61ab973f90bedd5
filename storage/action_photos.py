"""Store functions for an action's photo: one row per action, the re-encoded bytes encrypted.

The photo is written while the action is a draft, or with an update (it replaces the one before), and
deleted in the transaction that closes, cancels or expires the action: a missing person's picture must
not stay online after the search. `Action.has_photo` follows the row, so the alert texts know to link
to the public page without loading the bytes. Like the other store functions these take the caller's
session and keyword-only arguments and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col

from storage.crypto import DataVault
from storage.models import Action, ActionPhoto, ActionUpdate


class PhotoNotFound(LookupError):
    """The action has no photo (never had one, or it was deleted when the action ended)."""


@dataclass(frozen=True)
class PhotoInfo:
    """What is shown of a stored photo without its bytes."""

    action_id: int
    content_type: str
    width: int
    height: int
    size: int


@dataclass(frozen=True)
class NewPhoto:
    """A photo ready to store: re-encoded and encrypted by the caller."""

    data_enc: str
    content_type: str
    width: int
    height: int
    size: int


@dataclass(frozen=True)
class PhotoFile:
    """A photo's bytes, decrypted, with its type: what a page serves and a channel sends."""

    data: bytes
    content_type: str


@dataclass(frozen=True)
class StoredPhoto:
    """A stored photo, still encrypted."""

    info: PhotoInfo
    data_enc: str


def put_photo(session: Session, *, action_id: int, photo: NewPhoto, now: datetime) -> None:
    """Store (or replace) the action's photo and mark the action as having one."""
    session.execute(delete(ActionPhoto).where(col(ActionPhoto.action_id) == action_id))
    session.add(
        ActionPhoto(
            action_id=action_id,
            content_type=photo.content_type,
            width=photo.width,
            height=photo.height,
            size=photo.size,
            data_enc=photo.data_enc,
            created_at=now,
        )
    )
    _mark(session, action_id=action_id, has_photo=True)


def delete_photo(session: Session, *, action_id: int) -> bool:
    """Delete the action's photo, if it has one; whether a row was deleted."""
    gone = session.execute(delete(ActionPhoto).where(col(ActionPhoto.action_id) == action_id))
    _mark(session, action_id=action_id, has_photo=False)
    return bool(getattr(gone, "rowcount", 0))


def _mark(session: Session, *, action_id: int, has_photo: bool) -> None:
    session.execute(
        update(Action)
        .where(col(Action.id) == action_id)
        .values(has_photo=has_photo)
        .execution_options(synchronize_session=False)
    )
    # The caller may hold the action already: keep its copy true to the row without a reload.
    for held in session.identity_map.values():
        if isinstance(held, Action) and held.id == action_id:
            held.has_photo = has_photo


_INFO = (
    col(ActionPhoto.action_id),
    col(ActionPhoto.content_type),
    col(ActionPhoto.width),
    col(ActionPhoto.height),
    col(ActionPhoto.size),
)


def photo_info(session: Session, *, action_id: int) -> PhotoInfo:
    """The action's photo without its bytes. Raises PhotoNotFound."""
    row = session.execute(core_select(*_INFO).where(col(ActionPhoto.action_id) == action_id)).first()
    if row is None:
        raise PhotoNotFound(f"action {action_id} has no photo")
    return PhotoInfo(*row)


def stored_photo(session: Session, *, action_id: int) -> StoredPhoto:
    """The action's photo, still encrypted. Raises PhotoNotFound."""
    row = session.execute(
        core_select(*_INFO, col(ActionPhoto.data_enc)).where(col(ActionPhoto.action_id) == action_id)
    ).first()
    if row is None:
        raise PhotoNotFound(f"action {action_id} has no photo")
    return StoredPhoto(info=PhotoInfo(*row[:5]), data_enc=row[5])


def photo_file(session: Session, *, action_id: int, vault: DataVault) -> PhotoFile:
    """The action's photo, decrypted (for the page, and for channels that send it). Raises PhotoNotFound."""
    stored = stored_photo(session, action_id=action_id)
    return PhotoFile(data=vault.decrypt_bytes(stored.data_enc), content_type=stored.info.content_type)


def update_brought_photo(session: Session, *, action_id: int, number: int) -> bool:
    """Whether the action's photo came with this update: the update and its photo are written in one
    transaction with one reading of the clock, so their times are the same. An update whose photo a
    later one replaced no longer has its own (the page shows the newest), so it sends none."""
    found = session.execute(
        core_select(col(ActionPhoto.action_id))
        .join_from(ActionPhoto, ActionUpdate, col(ActionUpdate.action_id) == col(ActionPhoto.action_id))
        .where(
            col(ActionPhoto.action_id) == action_id,
            col(ActionUpdate.number) == number,
            col(ActionUpdate.created_at) == col(ActionPhoto.created_at),
        )
    ).first()
    return found is not None
