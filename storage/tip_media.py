"""Store functions for tips' photos and files: one row per file, from the provider's reference to the
encrypted bytes.

A row is written with its tip (in the tip's transaction), then the media worker claims it, fetches the
file through its channel and stores it encrypted, or marks it refused. Rows go with their tip (the
foreign key cascades), so whatever purges a tip purges its files too. Like the other store functions
these take the caller's session and keyword-only arguments and never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col

from storage.models import ChannelKind, Tip, TipMedia

PENDING, STORED, REFUSED = "pending", "stored", "refused"
MAX_PER_TIP = 20  # files beyond these are not kept: a tip is not a photo album


class MediaNotFound(LookupError):
    """No stored file at that position of that tip."""


@dataclass(frozen=True)
class MediaToFetch:
    """A claimed row: what to fetch, and through which channel."""

    id: int
    tip_id: int
    channel: ChannelKind
    ref: str
    attempts: int


@dataclass(frozen=True)
class MediaState:
    """What the control room shows of a file without its bytes."""

    tip_id: int
    position: int
    state: str
    content_type: str | None
    reason: str | None
    size: int | None


@dataclass(frozen=True)
class StoredMedia:
    """A stored file, still encrypted."""

    tip_id: int
    position: int
    content_type: str
    data_enc: str


def add_media(
    session: Session, *, tip_id: int, channel: ChannelKind, refs: Sequence[str], known: int, now: datetime
) -> int:
    """Rows for a tip's new files (`known`: how many it had before); how many were added."""
    added = 0
    for offset, ref in enumerate(refs):
        position = known + offset + 1
        if position > MAX_PER_TIP:
            break
        session.add(
            TipMedia(
                tip_id=tip_id,
                position=position,
                channel=channel,
                ref=ref,
                state=PENDING,
                next_attempt_at=now,
                created_at=now,
            )
        )
        added += 1
    return added


def claim_media(session: Session, *, now: datetime, lease: timedelta, limit: int = 10) -> list[MediaToFetch]:
    """Pending rows that are due and not leased by another worker, leased to this one."""
    free = or_(col(TipMedia.lease_until).is_(None), col(TipMedia.lease_until) <= now)
    due = and_(col(TipMedia.state) == PENDING, col(TipMedia.next_attempt_at) <= now, free)
    rows = session.execute(
        core_select(
            col(TipMedia.id),
            col(TipMedia.tip_id),
            col(TipMedia.channel),
            col(TipMedia.ref),
            col(TipMedia.attempts),
        )
        .where(due)
        .order_by(col(TipMedia.next_attempt_at), col(TipMedia.id))
        .limit(limit)
    ).all()
    claimed = []
    for media_id, tip_id, channel, ref, attempts in rows:
        # Only the worker whose update still finds the row free gets it.
        result = session.execute(
            update(TipMedia)
            .where(col(TipMedia.id) == media_id, due)
            .values(lease_until=now + lease)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            claimed.append(MediaToFetch(media_id, tip_id, ChannelKind(channel), ref, attempts))
    return claimed


def _touch_tip(session: Session, *, tip_id: int, now: datetime) -> None:
    # Strictly later than the tip's last change, so the live page's stream sends the tip again.
    tip = session.get(Tip, tip_id)
    if tip is not None:
        updated = tip.updated_at if tip.updated_at.tzinfo else tip.updated_at.replace(tzinfo=now.tzinfo)
        tip.updated_at = max(now, updated + timedelta(microseconds=1))
        session.add(tip)


def store_media(
    session: Session, *, media_id: int, data_enc: str, content_type: str, size: int, now: datetime
) -> None:
    """The fetched file, encrypted, and the tip marked changed."""
    row = session.get(TipMedia, media_id)
    if row is None:
        return  # the tip was purged meanwhile
    row.state, row.data_enc, row.content_type, row.size = STORED, data_enc, content_type, size
    row.reason, row.lease_until, row.fetched_at = None, None, now
    row.ref = ""  # nothing left to fetch: the provider's reference is not kept
    session.add(row)
    _touch_tip(session, tip_id=row.tip_id, now=now)


def refuse_media(session: Session, *, media_id: int, reason: str, now: datetime) -> None:
    """A file we will not keep (too large, another type, not reachable); the tip marked changed."""
    row = session.get(TipMedia, media_id)
    if row is None:
        return
    row.state, row.reason, row.lease_until, row.ref = REFUSED, reason[:32], None, ""
    session.add(row)
    _touch_tip(session, tip_id=row.tip_id, now=now)


def retry_media(session: Session, *, media_id: int, at: datetime, reason: str) -> None:
    """Try this file again at `at` (the provider was unreachable)."""
    session.execute(
        update(TipMedia)
        .where(col(TipMedia.id) == media_id)
        .values(
            attempts=TipMedia.attempts + 1,
            next_attempt_at=at,
            lease_until=None,
            reason=reason[:32],
        )
        .execution_options(synchronize_session=False)
    )


def media_of(session: Session, *, tip_ids: Sequence[int]) -> dict[int, list[MediaState]]:
    """The files of some tips (without their bytes), by tip, in the order sent."""
    if not tip_ids:
        return {}
    rows = session.execute(
        core_select(
            col(TipMedia.tip_id),
            col(TipMedia.position),
            col(TipMedia.state),
            col(TipMedia.content_type),
            col(TipMedia.reason),
            col(TipMedia.size),
        )
        .where(col(TipMedia.tip_id).in_(list(tip_ids)))
        .order_by(col(TipMedia.tip_id), col(TipMedia.position))
    ).all()
    found: dict[int, list[MediaState]] = {}
    for tip_id, position, state, content_type, reason, size in rows:
        found.setdefault(tip_id, []).append(MediaState(tip_id, position, state, content_type, reason, size))
    return found


def stored_media(session: Session, *, tip_id: int, position: int) -> StoredMedia:
    """A tip's stored file by position. Raises MediaNotFound (also while it is not fetched yet)."""
    row = session.execute(
        core_select(col(TipMedia.content_type), col(TipMedia.data_enc)).where(
            col(TipMedia.tip_id) == tip_id, col(TipMedia.position) == position, col(TipMedia.state) == STORED
        )
    ).first()
    if row is None or row[0] is None or row[1] is None:
        raise MediaNotFound(f"tip {tip_id} file {position}")
    return StoredMedia(tip_id=tip_id, position=position, content_type=row[0], data_enc=row[1])


def media_paths(tip: Tip, *, prefix: str) -> list[str]:
    """The URLs of a tip's files under `prefix` (`/api/v1/tips`): `<prefix>/<id>/media/<n>`."""
    return [f"{prefix}/{tip.id}/media/{n}" for n in range(1, min(len(tip.media), MAX_PER_TIP) + 1)]
